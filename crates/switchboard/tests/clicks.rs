//! The clicks app through the real binary: accounts and API keys from the
//! command line, the links API with good and bad input, redirects that
//! record clicks (country, city, referrer host; never the IP), totals
//! after a graceful restart, the clicks room's own door, and a burst of
//! visitors reaching the dashboards as groups holding every click.

#[path = "support/accounts_cli.rs"]
mod accounts_cli;
mod common;
#[path = "support/http_reply.rs"]
mod http_reply;

#[path = "support/geo_fixture.rs"]
mod geo_fixture;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ServerProcess;
use http_reply::Reply;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on its own connection; `headers` are whole lines.
async fn request(server: &ServerProcess, method: &str, path: &str, headers: &[String], body: &str) -> Reply {
    http_reply::request(&server.addr, method, path, headers, body).await
}

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}")
}

/// Runs `switchboard accounts ARGS --data-dir DIR`: (success, stdout, stderr).
fn accounts(dir: &Path, args: &[&str]) -> (bool, String, String) {
    accounts_cli::run(args, &["--data-dir".as_ref(), dir.as_os_str()])
}

fn add_account(dir: &Path, name: &str) -> String {
    accounts_cli::add(&["--data-dir".as_ref(), dir.as_os_str()], name)
}

/// A server on `dir` with the test geo database, trusting loopback as a proxy.
fn server_on(dir: &Path, geo: &Path) -> ServerProcess {
    ServerProcess::start_with(&["--data-dir", dir.to_str().unwrap(), "--geo-db", geo.to_str().unwrap(), "--trusted-proxy", "127.0.0.1"])
}

fn geo_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("geo.mmdb");
    std::fs::write(&path, geo_fixture::database()).unwrap();
    path
}

#[test]
fn the_accounts_command_issues_lists_and_revokes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = add_account(dir.path(), "acme");
    assert!(key.starts_with("sbk_") && key.len() == 47, "{key}");
    let (ok, _, err) = accounts(dir.path(), &["add", "acme"]);
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = accounts(dir.path(), &["add", "no spaces"]);
    assert!(!ok && err.contains("account names"), "{err}");
    let (ok, second, _) = accounts(dir.path(), &["add-key", "acme"]);
    assert!(ok && second.starts_with("sbk_") && second != key);
    let (ok, list, _) = accounts(dir.path(), &["list"]);
    assert!(ok);
    let ids: Vec<&str> = list.strip_prefix("acme\tkeys: ").expect("one account").split(',').collect();
    assert_eq!(ids.len(), 2);
    let db = std::fs::read(dir.path().join("switchboard.db")).unwrap();
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()), "keys are stored hashed");
    let (ok, _, err) = accounts(dir.path(), &["revoke-key", ids[0]]);
    assert!(ok, "{err}");
    let (ok, _, err) = accounts(dir.path(), &["revoke-key", ids[0]]);
    assert!(!ok && err.contains("no active API key"), "{err}");
    let (_, list, _) = accounts(dir.path(), &["list"]);
    assert_eq!(list, format!("acme\tkeys: {}", ids[1]));
}

#[tokio::test]
async fn the_links_api_answers_good_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let geo = geo_file(dir.path());
    let a = add_account(dir.path(), "acme");
    let b = add_account(dir.path(), "bravo");
    let server = server_on(dir.path(), &geo);
    let post = |key: &str, body: Value| {
        let headers = vec![bearer(key), "Content-Type: application/json".to_owned()];
        let server = &server;
        async move { request(server, "POST", "/api/links", &headers, &body.to_string()).await }
    };

    let created = post(&a, json!({"url": "https://example.com/a", "slug": "promo", "geo": {"de": "https://example.de/a"}})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("location"), Some("/api/links/promo"));
    let link = created.json();
    assert_eq!((link["slug"].as_str(), link["url"].as_str()), (Some("promo"), Some("https://example.com/a")));
    assert_eq!(link["short_url"], "http://sb.test/l/promo");
    assert_eq!(link["geo"], json!({"DE": "https://example.de/a"}));
    let generated = post(&a, json!({"url": "http://example.org"})).await.json();
    assert!(generated["slug"].as_str().unwrap().chars().all(|c| c.is_ascii_alphanumeric()));

    for (body, needle) in [
        (json!({"url": "ftp://example.com"}), "http"),
        (json!({"url": "javascript:alert(1)"}), "http"),
        (json!({"url": "https://"}), "host"),
        (json!({"url": format!("https://e.com/{}", "a".repeat(3000))}), "limited"),
        (json!({"url": "https://e.com", "slug": "has space"}), "slugs"),
        (json!({"url": "https://e.com", "slug": "x".repeat(65)}), "slugs"),
        (json!({"url": "https://e.com", "geo": {"Germany": "https://e.de"}}), "country code"),
        (json!({"url": "https://e.com", "geo": {"DE": "mailto:x@e.de"}}), "geo.DE"),
        (json!({"url": "https://e.com", "colour": "red"}), "unknown field"),
        (json!({"slug": "nourl"}), "url"),
    ] {
        let reply = post(&a, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.json()["error"].as_str().unwrap().contains(needle), "{body}: {}", reply.body);
    }
    let not_json = request(&server, "POST", "/api/links", &[bearer(&a)], "{url").await;
    assert_eq!(not_json.status, 400);
    assert!(not_json.json()["error"].is_string());
    let huge = request(&server, "POST", "/api/links", &[bearer(&a)], &"x".repeat(70_000)).await;
    assert_eq!(huge.status, 413);

    let taken = post(&a, json!({"url": "https://e.com", "slug": "promo"})).await;
    assert_eq!((taken.status, taken.json()["error"].as_str().unwrap()), (409, "the slug \"promo\" is taken"));
    assert_eq!(post(&b, json!({"url": "https://e.com", "slug": "promo"})).await.status, 409, "slugs are unique across accounts");
    assert_eq!(post(&b, json!({"url": "https://bravo.example", "slug": "bravo1"})).await.status, 201);

    for headers in [vec![], vec![bearer("sbk_not-a-key")], vec!["Authorization: Basic YTpi".to_owned()]] {
        let reply = request(&server, "GET", "/api/links", &headers, "").await;
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(reply.json()["error"].is_string());
    }

    let list = request(&server, "GET", "/api/links", &[bearer(&a)], "").await.json();
    let slugs: Vec<&str> = list["links"].as_array().unwrap().iter().map(|l| l["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["promo", generated["slug"].as_str().unwrap()], "oldest first, only the account's own");
    assert_eq!(list["links"][0]["clicks"], 0);

    let one = request(&server, "GET", "/api/links/promo", &[bearer(&a)], "").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["clicks"], 0);
    for (key, path) in [(&b, "/api/links/promo"), (&a, "/api/links/bravo1"), (&a, "/api/links/nope")] {
        let reply = request(&server, "GET", path, &[bearer(key)], "").await;
        assert_eq!((reply.status, reply.json()["error"].as_str().unwrap()), (404, "no such link"), "{path}");
        let reply = request(&server, "DELETE", path, &[bearer(key)], "").await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let wrong = request(&server, "PUT", "/api/links/promo", &[bearer(&a)], "").await;
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET, DELETE")));
    let wrong = request(&server, "DELETE", "/api/links", &[bearer(&a)], "").await;
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET, POST")));

    assert_eq!(request(&server, "DELETE", "/api/links/promo", &[bearer(&a)], "").await.status, 204);
    assert_eq!(request(&server, "GET", "/api/links/promo", &[bearer(&a)], "").await.status, 404);
    assert_eq!(request(&server, "GET", "/l/promo", &[], "").await.status, 404, "a deleted link redirects no more");
    assert_eq!(post(&b, json!({"url": "https://e.com", "slug": "promo"})).await.status, 201, "a deleted slug is free again");
}

#[tokio::test]
async fn redirects_record_clicks_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let geo = geo_file(dir.path());
    let key = add_account(dir.path(), "acme");
    let mut server = server_on(dir.path(), &geo);
    let body = json!({"url": "https://example.com/", "slug": "go", "geo": {"DE": "https://example.de/"}}).to_string();
    assert_eq!(request(&server, "POST", "/api/links", &[bearer(&key)], &body).await.status, 201);

    let visit = |ip: &str, referer: Option<&str>| {
        let mut headers = vec![format!("X-Forwarded-For: {ip}")];
        headers.extend(referer.map(|r| format!("Referer: {r}")));
        let server = &server;
        async move { request(server, "GET", "/l/go", &headers, "").await }
    };
    let berlin = visit("203.0.113.9", Some("https://news.example.net/item?id=7")).await;
    assert_eq!(berlin.status, 302);
    assert_eq!(berlin.header("location"), Some("https://example.de/"), "Germany has its own target");
    assert_eq!(berlin.header("cache-control"), Some("private, max-age=0"));
    let tokyo = visit("198.51.100.20", None).await;
    assert_eq!(tokyo.header("location"), Some("https://example.com/"));
    let head = request(&server, "HEAD", "/l/go", &[], "").await;
    assert_eq!(head.status, 302, "HEAD answers, without counting a click");
    let missing = request(&server, "GET", "/l/nothing-here", &[], "").await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").unwrap().starts_with("text/html") && missing.body.contains("Link not found"));
    assert_eq!(request(&server, "POST", "/l/go", &[], "").await.status, 405);

    // The clicks reach the room without waiting for anyone; ask until they show.
    let mut report = Value::Null;
    for _ in 0..100 {
        report = request(&server, "GET", "/api/links/go", &[bearer(&key)], "").await.json();
        if report["clicks"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(report["clicks"], 2, "{report}");
    assert_eq!(report["countries"], json!({"DE": 1, "JP": 1}));
    assert_eq!(report["cities"], json!({"DE/Berlin": 1, "JP/Tokyo": 1}));
    let series: u64 = report["series"].as_array().unwrap().iter().map(|p| p[1].as_u64().unwrap()).sum();
    assert_eq!(series, 2);

    // Clicks right before a graceful shutdown are kept too.
    for _ in 0..5 {
        assert_eq!(visit("203.0.113.50", None).await.status, 302);
    }
    assert!(server.terminate().success());
    let db = std::fs::read(dir.path().join("switchboard.db")).unwrap();
    let wal = std::fs::read(dir.path().join("switchboard.db-wal")).unwrap_or_default();
    for ip in ["203.0.113.9", "203.0.113.50", "198.51.100.20"] {
        for file in [&db, &wal] {
            assert!(!file.windows(ip.len()).any(|w| w == ip.as_bytes()), "raw IP {ip} stored");
        }
    }
    assert!(db.windows(16).any(|w| w == b"news.example.net") || wal.windows(16).any(|w| w == b"news.example.net"), "the referrer host is kept");

    let server = server_on(dir.path(), &geo);
    let report = request(&server, "GET", "/api/links/go", &[bearer(&key)], "").await.json();
    assert_eq!(report["clicks"], 7, "{report}");
    assert_eq!(report["countries"], json!({"DE": 6, "JP": 1}));
    let list = request(&server, "GET", "/api/links", &[bearer(&key)], "").await.json();
    assert_eq!(list["links"][0]["clicks"], 7);
    assert_eq!(request(&server, "GET", "/l/go", &["X-Forwarded-For: 203.0.113.9".to_owned()], "").await.header("location"), Some("https://example.de/"));
}

#[tokio::test]
async fn clicks_rooms_take_no_public_http_and_no_dashboard_without_identity() {
    let dir = tempfile::tempdir().unwrap();
    let geo = geo_file(dir.path());
    add_account(dir.path(), "acme");
    let server = server_on(dir.path(), &geo);
    let forged = json!([{"time": 1, "slug": "x"}]).to_string();
    let reply = request(&server, "POST", "/api/rooms/clicks/acme/clicks", &[], &forged).await;
    // The edge asks for the account's identity before any room is asked.
    assert_eq!(reply.status, 401, "clicks cannot be forged through the room's HTTP path");
    let upgrade = [
        "Upgrade: websocket".to_owned(),
        "Connection: Upgrade".to_owned(),
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
        "Sec-WebSocket-Version: 13".to_owned(),
    ];
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let head: String = upgrade.iter().map(|h| format!("{h}\r\n")).collect();
    stream.write_all(format!("GET /rooms/clicks/acme HTTP/1.1\r\nHost: sb.test\r\n{head}\r\n").as_bytes()).await.unwrap();
    let mut raw = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "a path alone does not open a dashboard: {text}");
}

/// The status line of a WebSocket upgrade to `path` with extra header lines.
async fn upgrade_status(server: &ServerProcess, path: &str, extra: &[String]) -> String {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let extra: String = extra.iter().map(|h| format!("{h}\r\n")).collect();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: sb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = vec![0; 2048];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut raw)).await.unwrap().unwrap();
    String::from_utf8_lossy(&raw[..n]).lines().next().unwrap_or_default().to_owned()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn next_json(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a message within 10 s").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn api_keys_buy_dashboard_tokens_that_open_only_their_own_accounts_room() {
    let dir = tempfile::tempdir().unwrap();
    let geo = geo_file(dir.path());
    let a = add_account(dir.path(), "acme");
    let b = add_account(dir.path(), "bravo");
    let server = server_on(dir.path(), &geo);
    assert_eq!(request(&server, "POST", "/api/token", &[], "").await.status, 401);
    assert_eq!(request(&server, "POST", "/api/token", &[bearer("sbk_wrong")], "").await.status, 401);
    assert_eq!(request(&server, "GET", "/api/token", &[bearer(&a)], "").await.status, 405);
    let reply = request(&server, "POST", "/api/token", &[bearer(&a)], "").await;
    assert_eq!(reply.status, 200);
    let answer = reply.json();
    assert_eq!((answer["account"].as_str(), answer["expires_in"].as_u64()), (Some("acme"), Some(3600)));
    let token_a = answer["token"].as_str().unwrap().to_owned();
    let token_b = request(&server, "POST", "/api/token", &[bearer(&b)], "").await.json()["token"].as_str().unwrap().to_owned();

    assert!(upgrade_status(&server, "/rooms/clicks/acme", &[]).await.contains(" 401 "), "no token");
    assert!(upgrade_status(&server, "/rooms/clicks/acme?token=not.a.jwt", &[]).await.contains(" 401 "), "a bad token");
    let at = token_a.len() - 10;
    let swapped = if &token_a[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &token_a[..at], &token_a[at + 1..]);
    assert!(upgrade_status(&server, &format!("/rooms/clicks/acme?token={forged}"), &[]).await.contains(" 401 "), "a wrong signature");
    assert!(upgrade_status(&server, &format!("/rooms/clicks/bravo?token={token_a}"), &[]).await.contains(" 403 "), "A's token for B's room");
    assert!(upgrade_status(&server, "/rooms/clicks/acme", &[format!("Sec-WebSocket-Protocol: json, switchboard.token.{token_a}")])
        .await
        .contains(" 101 "));

    let body = json!({"url": "https://example.com/", "slug": "live"}).to_string();
    assert_eq!(request(&server, "POST", "/api/links", &[bearer(&a)], &body).await.status, 201);
    let (mut dash_a, _) = tokio_tungstenite::connect_async(server.ws(&format!("/rooms/clicks/acme?token={token_a}"))).await.unwrap();
    let (mut dash_b, _) = tokio_tungstenite::connect_async(server.ws(&format!("/rooms/clicks/bravo?token={token_b}"))).await.unwrap();
    let snapshot = next_json(&mut dash_a).await;
    assert_eq!((snapshot["type"].as_str(), snapshot["account"].as_str(), snapshot["total"].as_u64()), (Some("snapshot"), Some("acme"), Some(0)));
    assert_eq!(snapshot["links"][0]["slug"], "live");
    assert_eq!(next_json(&mut dash_b).await["account"], "bravo");

    request(&server, "GET", "/l/live", &["X-Forwarded-For: 203.0.113.1".to_owned(), "Referer: https://t.example/x".to_owned()], "").await;
    let click = next_json(&mut dash_a).await;
    assert_eq!(click["type"], "click");
    assert_eq!((click["slug"].as_str(), click["country"].as_str(), click["city"].as_str()), (Some("live"), Some("DE"), Some("Berlin")));
    assert_eq!((click["lat"].as_f64(), click["lon"].as_f64(), click["referrer"].as_str()), (Some(52.52), Some(13.40), Some("t.example")));
    assert_eq!(click["total"], 1);

    // B hears of its own link and click, never of A's.
    let body = json!({"url": "https://example.org/", "slug": "bee"}).to_string();
    assert_eq!(request(&server, "POST", "/api/links", &[bearer(&b)], &body).await.status, 201);
    let links = next_json(&mut dash_b).await;
    assert_eq!((links["type"].as_str(), links["links"][0]["slug"].as_str()), (Some("links"), Some("bee")));
    request(&server, "GET", "/l/bee", &[], "").await;
    let own = next_json(&mut dash_b).await;
    assert_eq!((own["type"].as_str(), own["slug"].as_str(), own["total"].as_u64()), (Some("click"), Some("bee"), Some(1)));
}

#[tokio::test]
async fn dashboard_tokens_and_the_edges_token_mode_agree() {
    let dir = tempfile::tempdir().unwrap();
    let key = add_account(dir.path(), "acme");
    let data = dir.path().to_str().unwrap();
    let server = ServerProcess::start_with(&["--data-dir", data, "--auth-kind", "clicks=token"]);
    let token = request(&server, "POST", "/api/token", &[bearer(&key)], "").await.json()["token"].as_str().unwrap().to_owned();
    assert!(upgrade_status(&server, &format!("/rooms/clicks/acme?token={token}"), &[]).await.contains(" 101 "), "the edge's token mode takes it");
    assert!(upgrade_status(&server, &format!("/rooms/clicks/bravo?token={token}"), &[]).await.contains(" 403 "));
    assert!(upgrade_status(&server, "/rooms/clicks/acme", &[]).await.contains(" 401 "));
    drop(server);

    // `switchboard token` signs with the same secret: its tokens open dashboards too.
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--account", "acme", "--ttl", "1h", "--data-dir", data])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let server = ServerProcess::start_with(&["--data-dir", data]);
    assert!(upgrade_status(&server, &format!("/rooms/clicks/acme?token={printed}"), &[]).await.contains(" 101 "));
}

#[tokio::test]
async fn an_operators_mode_for_clicks_replaces_dashboard_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let key = add_account(dir.path(), "acme");
    let data = dir.path().to_str().unwrap();
    let server = ServerProcess::start_with(&["--data-dir", data, "--trusted-proxy", "127.0.0.1", "--auth-kind", "clicks=trusted-header"]);
    let gateway_says = |account: &str| vec![format!("X-Switchboard-Account: {account}")];
    assert!(upgrade_status(&server, "/rooms/clicks/acme", &gateway_says("acme")).await.contains(" 101 "), "the gateway names the account");
    assert!(upgrade_status(&server, "/rooms/clicks/acme", &gateway_says("bravo")).await.contains(" 403 "), "the room is still the subject's own");
    assert!(upgrade_status(&server, "/rooms/clicks/acme", &[]).await.contains(" 401 "));
    let reply = request(&server, "POST", "/api/token", &[bearer(&key)], "").await;
    assert_eq!(reply.status, 404, "no tokens where no token opens a dashboard");
    assert!(!dir.path().join("jwt-secret").exists(), "no secret is made for a mode that does not use it");
}

/// Fires `count` redirects at once, each on its own connection, each with
/// the referrer host `v{first + i}.burst.example`.
async fn burst(server: &ServerProcess, slug: &str, first: usize, count: usize) {
    let path = format!("/l/{slug}");
    let visits = (first..first + count).map(|i| {
        let headers = vec!["X-Forwarded-For: 203.0.113.1".to_owned(), format!("Referer: https://v{i}.burst.example/")];
        let path = path.clone();
        async move { request(server, "GET", &path, &headers, "").await.status }
    });
    for status in futures_util::future::join_all(visits).await {
        assert_eq!(status, 302);
    }
}

#[tokio::test]
async fn a_burst_of_visitors_reaches_the_dashboards_as_groups_holding_every_click() {
    const BURST: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let geo = geo_file(dir.path());
    let key = add_account(dir.path(), "acme");
    let server = server_on(dir.path(), &geo);
    let body = json!({"url": "https://example.com/", "slug": "many"}).to_string();
    assert_eq!(request(&server, "POST", "/api/links", &[bearer(&key)], &body).await.status, 201);
    let token = request(&server, "POST", "/api/token", &[bearer(&key)], "").await.json()["token"].as_str().unwrap().to_owned();
    let mut dashboards = Vec::new();
    for _ in 0..2 {
        let (mut socket, _) = tokio_tungstenite::connect_async(server.ws(&format!("/rooms/clicks/acme?token={token}"))).await.unwrap();
        assert_eq!(next_json(&mut socket).await["type"], "snapshot");
        dashboards.push(socket);
    }

    // The recorder groups whatever waits while the previous group is
    // delivered; a burst of visitors at once makes groups of more than one.
    // Bounded: a few bursts at most until a group shows.
    let mut sent = 0;
    let mut grouped = false;
    let mut seen: Vec<Vec<String>> = vec![Vec::new(); dashboards.len()];
    for _ in 0..5 {
        burst(&server, "many", sent, BURST).await;
        sent += BURST;
        for (socket, seen) in dashboards.iter_mut().zip(&mut seen) {
            let mut total = 0;
            while seen.len() < sent {
                let message = next_json(socket).await;
                let clicks = match message["type"].as_str() {
                    Some("click") => vec![message.clone()],
                    Some("clicks") => {
                        let clicks = message["clicks"].as_array().unwrap().clone();
                        assert!(clicks.len() > 1, "a group of one is a click message");
                        assert_eq!(message.as_object().unwrap().len(), 3, "type, clicks, total: {message}");
                        for click in &clicks {
                            let fields: Vec<&str> = click.as_object().unwrap().keys().map(String::as_str).collect();
                            assert_eq!(fields.len(), 7, "{fields:?}");
                            assert_eq!((click["slug"].as_str(), click["country"].as_str(), click["city"].as_str()), (Some("many"), Some("DE"), Some("Berlin")));
                            assert_eq!((click["lat"].as_f64(), click["lon"].as_f64()), (Some(52.52), Some(13.40)));
                        }
                        grouped = true;
                        clicks
                    }
                    other => panic!("unexpected {other:?}: {message}"),
                };
                total = message["total"].as_u64().unwrap();
                seen.extend(clicks.iter().map(|c| c["referrer"].as_str().unwrap().to_owned()));
            }
            assert_eq!(total, sent as u64, "the total after the last group counts every click");
        }
        if grouped {
            break;
        }
    }
    assert!(grouped, "{sent} visitors in bursts of {BURST} made no group of more than one click");
    let mut expected: Vec<String> = (0..sent).map(|i| format!("v{i}.burst.example")).collect();
    expected.sort();
    for mut seen in seen {
        seen.sort();
        assert_eq!(seen, expected, "every click once on every dashboard");
    }
}
