//! Accounts and short links in cluster mode through real binaries: nodes
//! joined through one `nats-server -js` of the test's own
//! (`switchboard_cluster::testing`), accounts made with `switchboard
//! accounts --cluster`, links made and deleted through one node's API and
//! seen by the others' redirects. Every wait is bounded.

#[path = "support/accounts_cli.rs"]
mod accounts_cli;
mod common;
#[path = "support/http_reply.rs"]
mod http_reply;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ServerProcess;
use http_reply::Reply;
use serde_json::json;
use switchboard_cluster::testing::NatsServer as Nats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a change may take to reach another node's index.
const SPREAD: Duration = Duration::from_secs(5);

fn node(nats: &Nats, name: &str) -> ServerProcess {
    let url = nats.url();
    let flags = ["--memory", "--cluster", &url, "--node", name, "--cluster-lease-ttl", "2s"];
    let logs = if std::env::var_os("CLUSTER_TEST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() };
    ServerProcess::start_logging(&flags, logs)
}

/// Runs `switchboard accounts ARGS --cluster URL`: (success, stdout, stderr).
fn accounts(nats: &Nats, args: &[&str]) -> (bool, String, String) {
    accounts_cli::run(args, &["--cluster".as_ref(), nats.url().as_ref()])
}

fn add_account(nats: &Nats, name: &str) -> String {
    accounts_cli::add(&["--cluster".as_ref(), nats.url().as_ref()], name)
}

/// One request on its own connection, with the API key if there is one.
async fn request(server: &ServerProcess, method: &str, path: &str, key: Option<&str>, body: &str) -> Reply {
    let headers: Vec<String> = key.map(|k| format!("Authorization: Bearer {k}")).into_iter().collect();
    http_reply::request(&server.addr, method, path, &headers, body).await
}

async fn create_link(server: &ServerProcess, key: &str, slug: &str, url: &str) -> Reply {
    request(server, "POST", "/api/links", Some(key), &json!({"url": url, "slug": slug}).to_string()).await
}

/// Asks `path` until `done` holds for the answer; panics after [`SPREAD`].
async fn eventually(server: &ServerProcess, method: &str, path: &str, key: Option<&str>, what: &str, done: impl Fn(&Reply) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let reply = request(server, method, path, key, "").await;
        if done(&reply) {
            return start.elapsed();
        }
        assert!(start.elapsed() < SPREAD, "{what} on {}: still {} after {SPREAD:?}", server.addr, reply.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn redirects_to(server: &ServerProcess, slug: &str, url: &str) {
    let path = format!("/l/{slug}");
    eventually(server, "GET", &path, None, &format!("{path} redirecting"), |r| r.status == 302 && r.header("location") == Some(url)).await;
}

/// The key's account on this node, or the status that refused it
/// (`POST /api/token` checks the key and nothing else).
async fn key_account(server: &ServerProcess, key: &str) -> Result<String, u16> {
    let reply = request(server, "POST", "/api/token", Some(key), "").await;
    match reply.status {
        200 => Ok(reply.json()["account"].as_str().unwrap().to_owned()),
        status => Err(status),
    }
}

#[tokio::test]
async fn an_account_made_against_the_cluster_holds_on_every_node_until_its_key_is_revoked() {
    let nats = Nats::start();
    let nodes = [node(&nats, "n1"), node(&nats, "n2"), node(&nats, "n3")];
    let key = add_account(&nats, "acme");
    assert!(key.starts_with("sbk_"), "{key}");
    let (ok, _, err) = accounts(&nats, &["add", "acme"]);
    assert!(!ok && err.contains("exists"), "a name is taken once in the cluster: {err}");
    for node in &nodes {
        let start = Instant::now();
        loop {
            match key_account(node, &key).await {
                Ok(account) => break assert_eq!(account, "acme"),
                Err(status) => assert!(start.elapsed() < SPREAD, "the key on {}: {status}", node.addr),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (ok, second, _) = accounts(&nats, &["add-key", "acme"]);
    assert!(ok);
    let (ok, _, err) = accounts(&nats, &["add-key", "no such"]);
    assert!(!ok && err.contains("no account"), "{err}");
    let (ok, list, _) = accounts(&nats, &["list"]);
    assert!(ok);

    // The settings `serve` reads work too: `[cluster]` of a file, and the environment.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, format!("[cluster]\nservers = [\"{}\"]\n", nats.url())).unwrap();
    let from = |envs: &[(&str, &str)], args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["accounts"])
            .args(args)
            .env_remove("SWITCHBOARD_CONFIG")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(from(&[], &["--config", file.to_str().unwrap(), "list"]), list);
    assert_eq!(from(&[], &["list", "--cluster", &nats.url()]), list, "the flags after the action");
    assert_eq!(from(&[("SWITCHBOARD_CLUSTER", &nats.url())], &["list"]), list);
    let ids: Vec<&str> = list.strip_prefix("acme\tkeys: ").unwrap_or_else(|| panic!("{list}")).split(',').collect();
    assert_eq!(ids.len(), 2, "{list}");

    // The first key's id comes first (keys are listed oldest first).
    let (ok, _, err) = accounts(&nats, &["revoke-key", ids[0]]);
    assert!(ok, "{err}");
    for node in &nodes {
        eventually(node, "POST", "/api/token", Some(&key), "the revoked key refused", |r| r.status == 401).await;
        assert_eq!(key_account(node, &second).await, Ok("acme".to_owned()), "the other key still works");
    }
    let (ok, _, err) = accounts(&nats, &["revoke-key", ids[0]]);
    assert!(!ok && err.contains("no active API key"), "{err}");
}

#[tokio::test]
async fn links_made_on_one_node_redirect_on_every_node_and_deletes_reach_them_all() {
    let nats = Nats::start();
    let key = add_account(&nats, "acme");
    let nodes = [node(&nats, "n1"), node(&nats, "n2"), node(&nats, "n3")];
    let made = create_link(&nodes[0], &key, "promo", "https://example.com/promo").await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(request(&nodes[0], "GET", "/l/promo", None, "").await.status, 302, "at once on the node that made it");
    for node in &nodes[1..] {
        redirects_to(node, "promo", "https://example.com/promo").await;
    }
    let generated = create_link(&nodes[1], &key, "", "https://example.com/x").await;
    assert_eq!(generated.status, 400, "an empty slug is bad input: {}", generated.body);
    let generated = request(&nodes[1], "POST", "/api/links", Some(&key), &json!({"url": "https://example.org/g"}).to_string()).await;
    assert_eq!(generated.status, 201, "{}", generated.body);
    let slug = generated.json()["slug"].as_str().unwrap().to_owned();

    // A node that starts now loads what is there before it serves.
    let late = node(&nats, "n4");
    for (slug, url) in [("promo", "https://example.com/promo"), (slug.as_str(), "https://example.org/g")] {
        let reply = request(&late, "GET", &format!("/l/{slug}"), None, "").await;
        assert_eq!((reply.status, reply.header("location")), (302, Some(url)), "{slug} on the late node");
    }

    // Another account can neither take nor delete the slug, on any node.
    let other = add_account(&nats, "bravo");
    // The new key reaches each node through the key-value watch, a moment
    // after the command that made it returns.
    eventually(&late, "GET", "/api/links", Some(&other), "the new account's key", |r| r.status == 200).await;
    assert_eq!(create_link(&late, &other, "promo", "https://example.net/").await.status, 409);
    eventually(&nodes[2], "DELETE", "/api/links/promo", Some(&other), "another account's delete", |r| r.status == 404).await;

    assert_eq!(request(&nodes[1], "DELETE", "/api/links/promo", Some(&key), "").await.status, 204);
    assert_eq!(request(&nodes[1], "GET", "/l/promo", None, "").await.status, 404, "gone at once on the node that deleted it");
    for node in [&nodes[0], &nodes[2], &late] {
        eventually(node, "GET", "/l/promo", None, "the deleted link gone", |r| r.status == 404).await;
    }
    assert_eq!(request(&nodes[0], "DELETE", "/api/links/promo", Some(&key), "").await.status, 404, "deleted once");
    // A deleted slug is free again, for anyone.
    assert_eq!(create_link(&nodes[2], &other, "promo", "https://example.net/").await.status, 201);
    redirects_to(&nodes[0], "promo", "https://example.net/").await;
}

#[tokio::test]
async fn one_slug_asked_for_on_two_nodes_at_once_is_given_once() {
    let nats = Nats::start();
    let (a, b) = (add_account(&nats, "acme"), add_account(&nats, "bravo"));
    let nodes = [node(&nats, "n1"), node(&nats, "n2")];
    for round in 0..10 {
        let slug = format!("race{round}");
        let (first, second) =
            tokio::join!(create_link(&nodes[0], &a, &slug, "https://example.com/a"), create_link(&nodes[1], &b, &slug, "https://example.com/b"),);
        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}: {} / {}", first.body, second.body);
        let winner = if first.status == 201 { "https://example.com/a" } else { "https://example.com/b" };
        for node in &nodes {
            redirects_to(node, &slug, winner).await;
        }
    }
}

#[tokio::test]
async fn while_nats_is_down_redirects_go_on_and_link_changes_are_refused_with_503() {
    let mut nats = Nats::start();
    let key = add_account(&nats, "acme");
    let nodes = [node(&nats, "n1"), node(&nats, "n2")];
    assert_eq!(create_link(&nodes[0], &key, "kept", "https://example.com/kept").await.status, 201);
    redirects_to(&nodes[1], "kept", "https://example.com/kept").await;

    nats.kill();
    for node in &nodes {
        let reply = request(node, "GET", "/l/kept", None, "").await;
        assert_eq!((reply.status, reply.header("location")), (302, Some("https://example.com/kept")), "redirects come from memory");
        assert_eq!(key_account(node, &key).await, Ok("acme".to_owned()), "keys are checked from memory");
        // The client notices the lost connection within moments.
        let start = Instant::now();
        let reply = loop {
            let reply = create_link(node, &key, "new", "https://example.com/new").await;
            if reply.status != 201 || start.elapsed() > SPREAD {
                break reply;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(reply.json()["error"].as_str().unwrap().contains("unavailable"), "{}", reply.body);
    }

    // Back: writes work again and the watches carry on from where they were.
    nats.restart();
    let start = Instant::now();
    loop {
        let reply = create_link(&nodes[0], &key, "after", "https://example.com/after").await;
        if reply.status == 201 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "creating after NATS came back: {} {}", reply.status, reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redirects_to(&nodes[1], "after", "https://example.com/after").await;
}

/// The first line of the answer to a WebSocket upgrade of `path`.
async fn upgrade_status(server: &ServerProcess, path: &str) -> String {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: sb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = vec![0; 2048];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut raw)).await.expect("an answer within 10 s").unwrap();
    String::from_utf8_lossy(&raw[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn dashboard_tokens_from_any_node_or_the_command_line_open_the_dashboard_through_every_node() {
    let nats = Nats::start();
    let key = add_account(&nats, "acme");
    let nodes = [node(&nats, "n1"), node(&nats, "n2")];
    let reply = request(&nodes[0], "POST", "/api/token", Some(&key), "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let minted = reply.json()["token"].as_str().unwrap().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--account", "acme", "--ttl", "1h", "--cluster", &nats.url()])
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    for node in &nodes {
        for token in [&minted, &printed] {
            assert!(upgrade_status(node, &format!("/rooms/clicks/acme?token={token}")).await.contains(" 101 "), "on {}", node.addr);
            assert!(upgrade_status(node, &format!("/rooms/clicks/bravo?token={token}")).await.contains(" 403 "));
        }
    }
}
