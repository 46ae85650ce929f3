//! HTTP to rooms and recorded clicks in cluster mode, through real
//! sockets: three switchboard nodes on loopback ports joined through one
//! `nats-server -js` of the test's own. Whatever node a request reaches,
//! it is answered by the room's one actor on its owner; a request to a
//! made-up room creates nothing anywhere. Every wait is bounded.

mod common;
#[path = "support/json_client.rs"]
mod json_client;
#[path = "support/openmetrics.rs"]
mod openmetrics;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ServerProcess;
use json_client::{next_of, WAIT};
use serde_json::{json, Value};
use switchboard_client::{Client, ClientOptions};
use switchboard_cluster::testing::NatsServer as Nats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The lease TTL the nodes run with: short, so a released room is free soon.
const TTL: &str = "2s";

fn node(nats: &Nats, name: &str, storage: &[&str], extra: &[&str]) -> ServerProcess {
    let url = nats.url();
    let mut flags = storage.to_vec();
    flags.extend_from_slice(&["--cluster", &url, "--node", name, "--cluster-lease-ttl", TTL]);
    flags.extend_from_slice(extra);
    let logs = if std::env::var_os("CLUSTER_TEST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() };
    ServerProcess::start_logging(&flags, logs)
}

/// One request on its own connection: the status and the body.
async fn http(server: &ServerProcess, method: &str, path: &str, headers: &[String], body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: sb.test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.expect("an answer in time").unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// One unlabelled sample of the node's metrics, read with the strict parser.
async fn metric(server: &ServerProcess, name: &str) -> u64 {
    let (status, body) = http(server, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let samples = openmetrics::parse(&body);
    *samples.get(&format!("{name}{{}}")).unwrap_or_else(|| panic!("no {name} in the metrics")) as u64
}

/// A metric summed over every node.
async fn total(nodes: &[ServerProcess], name: &str) -> u64 {
    let mut sum = 0;
    for node in nodes {
        sum += metric(node, name).await;
    }
    sum
}

/// Waits (bounded) until the nodes hold `want` leases in all.
async fn leases_become(nodes: &[ServerProcess], want: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let held = total(nodes, "switchboard_cluster_leases_held").await;
        if held == want {
            return;
        }
        assert!(Instant::now() < deadline, "{held} leases held, not {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node that holds a lease, when exactly one does.
async fn owner(nodes: &[ServerProcess]) -> usize {
    let mut holders = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if metric(node, "switchboard_cluster_leases_held").await > 0 {
            holders.push(i);
        }
    }
    assert_eq!(holders.len(), 1, "holders: {holders:?}");
    holders[0]
}

fn stats(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[tokio::test]
async fn http_to_a_room_is_answered_by_its_one_actor_through_every_node() {
    let nats = Nats::start();
    // Rooms stop soon after their last connection leaves (then their lease is released).
    let nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--memory"], &["--hibernate-after", "3s"])).collect();
    let options = ClientOptions { protocols: vec!["json".into()], ..ClientOptions::default() };
    let mut ann = Client::connect_with(&nodes[0].ws("/rooms/chat/lobby"), options).await.unwrap();
    next_of(&mut ann, "welcome").await;
    ann.send_text(&json!({"type": "message", "text": "stored", "ref": "r1"}).to_string()).await.unwrap();
    // The message is in the room's history (JetStream) once it is acknowledged.
    assert_eq!(next_of(&mut ann, "ack").await["ref"], "r1");
    let owner_index = owner(&nodes).await;

    // Every node answers as the owner does, from the one actor there.
    let mut seen = Vec::new();
    for node in &nodes {
        let (status, body) = http(node, "GET", "/api/rooms/chat/lobby/_stats", &[], "").await;
        assert_eq!(status, 200, "{body}");
        seen.push(stats(&body));
        assert_eq!(http(node, "GET", "/api/rooms/chat/lobby/anything", &[], "").await, (404, "not found\n".to_owned()), "the room's own answer");
        assert_eq!(http(node, "POST", "/api/rooms/chat/lobby/anything", &[], "{}").await, (404, "not found\n".to_owned()));
    }
    assert_eq!(seen[0]["connections"], 1);
    assert!(seen.iter().all(|s| s["connections"] == seen[0]["connections"] && s["wakeups"] == seen[0]["wakeups"]), "{seen:?}");
    assert_eq!(total(&nodes, "switchboard_rooms_live").await, 1, "one actor in the cluster");
    let forwarded = total(&nodes, "switchboard_cluster_room_requests_forwarded_total").await;
    assert_eq!(forwarded, 6, "three requests from each of the two other nodes");
    assert_eq!(metric(&nodes[owner_index], "switchboard_cluster_room_requests_forwarded_total").await, 0, "the owner runs its own");

    // A made-up room is created nowhere, and no node claims it.
    for node in &nodes {
        assert_eq!(http(node, "GET", "/api/rooms/chat/nowhere/anything", &[], "").await, (404, "no such room\n".to_owned()));
        assert_eq!(http(node, "POST", "/api/rooms/broadcast/nowhere/x", &[], "{}").await, (404, "no such room\n".to_owned()));
        assert_eq!(http(node, "GET", "/api/rooms/chat/nowhere/_stats", &[], "").await, (404, "no such room is running\n".to_owned()));
    }
    assert_eq!(total(&nodes, "switchboard_cluster_leases_held").await, 1, "no lease for a made-up room");
    assert_eq!(total(&nodes, "switchboard_rooms_live").await, 1);

    // Once the room has stopped and its lease is released, no node owns it;
    // it has stored data, so a request through another node claims it
    // there, and every node then reaches that one actor.
    ann.close(None, "").await.unwrap();
    leases_become(&nodes, 0).await;
    for node in &nodes {
        assert_eq!(http(node, "GET", "/api/rooms/chat/lobby/_stats", &[], "").await.0, 404, "no actor runs anywhere");
    }
    let asked = (owner_index + 1) % nodes.len();
    assert_eq!(http(&nodes[asked], "GET", "/api/rooms/chat/lobby/anything", &[], "").await, (404, "not found\n".to_owned()), "the stored room answers");
    assert_eq!(owner(&nodes).await, asked, "the node asked claimed the room");
    let mut seen = Vec::new();
    for node in &nodes {
        let (status, body) = http(node, "GET", "/api/rooms/chat/lobby/_stats", &[], "").await;
        assert_eq!(status, 200, "{body}");
        seen.push(stats(&body));
    }
    assert_eq!(seen[0]["connections"], 0);
    assert!(seen.iter().all(|s| s["connections"] == seen[0]["connections"] && s["wakeups"] == seen[0]["wakeups"]), "{seen:?}");
    assert_eq!(total(&nodes, "switchboard_rooms_live").await, 1);
}

/// Runs `switchboard accounts --cluster URL add NAME`: the new API key,
/// good on every node.
fn add_account(nats: &Nats, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["accounts", "--cluster", &nats.url(), "add", name])
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "accounts add: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Makes the link `slug` through `nodes[0]` and waits (bounded) until
/// every node redirects it.
async fn link_everywhere(nodes: &[ServerProcess], key: &str, slug: &str) {
    let body = json!({"url": "https://example.com/", "slug": slug}).to_string();
    let (status, answer) = http(&nodes[0], "POST", "/api/links", &[format!("Authorization: Bearer {key}")], &body).await;
    assert_eq!(status, 201, "{answer}");
    let deadline = Instant::now() + WAIT;
    for node in nodes {
        // HEAD: answered like a visit, without counting a click.
        while http(node, "HEAD", &format!("/l/{slug}"), &[], "").await.0 != 302 {
            assert!(Instant::now() < deadline, "{slug} never redirected on {}", node.addr);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(WAIT, socket.next()).await.expect("a message in time").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn clicks_recorded_through_every_node_reach_the_one_clicks_room() {
    const PER_NODE: usize = 20;
    let nats = Nats::start();
    let key = add_account(&nats, "acme");
    let nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--memory"], &[])).collect();
    link_everywhere(&nodes, &key, "go").await;
    let (status, answer) = http(&nodes[0], "POST", "/api/token", &[format!("Authorization: Bearer {key}")], "").await;
    assert_eq!(status, 200, "{answer}");
    let token = stats(&answer)["token"].as_str().unwrap().to_owned();
    let (mut dashboard, _) = tokio_tungstenite::connect_async(nodes[0].ws(&format!("/rooms/clicks/acme?token={token}"))).await.unwrap();
    let snapshot = next_json(&mut dashboard).await;
    assert_eq!((snapshot["type"].as_str(), snapshot["total"].as_u64()), (Some("snapshot"), Some(0)), "{snapshot}");

    // Visitors through every node, at once.
    let visits = nodes.iter().flat_map(|node| (0..PER_NODE).map(move |_| async move { http(node, "GET", "/l/go", &[], "").await.0 }));
    for status in futures_util::future::join_all(visits).await {
        assert_eq!(status, 302);
    }
    let sent = (PER_NODE * nodes.len()) as u64;
    let (mut clicks, mut last_total) = (0, 0);
    while last_total < sent {
        let message = next_json(&mut dashboard).await;
        match message["type"].as_str() {
            Some("click") => clicks += 1,
            Some("clicks") => clicks += message["clicks"].as_array().unwrap().len() as u64,
            _ => continue,
        }
        last_total = message["total"].as_u64().unwrap();
    }
    assert_eq!((clicks, last_total), (sent, sent), "every click once, in the one room");
    assert_eq!(total(&nodes, "switchboard_rooms_live").await, 1, "one clicks actor in the cluster");
    assert_eq!(total(&nodes, "switchboard_cluster_leases_held").await, 1);
    // The links API on another node reads the counts from that room too.
    let (status, answer) = http(&nodes[2], "GET", "/api/links/go", &[format!("Authorization: Bearer {key}")], "").await;
    assert_eq!((status, stats(&answer)["clicks"].as_u64()), (200, Some(sent)), "{answer}");
}

#[tokio::test]
async fn a_request_reaches_the_rooms_new_owner_after_the_old_one_is_killed() {
    let nats = Nats::start();
    let mut nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--memory"], &[])).collect();
    let mut members = Vec::new();
    for node in &nodes[..2] {
        let mut member = Client::connect(&node.ws("/rooms/broadcast/news")).await.unwrap();
        next_of(&mut member, "welcome").await;
        members.push(member);
    }
    let first = owner(&nodes).await;
    nodes[first].kill9();
    // The member on the surviving node moves to the room's next owner, and
    // every live node then reaches the room there.
    let alive: Vec<usize> = (0..nodes.len()).filter(|&i| i != first).collect();
    let deadline = Instant::now() + 3 * WAIT;
    loop {
        let (status, body) = http(&nodes[alive[0]], "GET", "/api/rooms/broadcast/news/_stats", &[], "").await;
        if status == 200 && stats(&body)["connections"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the room never came back on a live node: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = http(&nodes[alive[1]], "GET", "/api/rooms/broadcast/news/_stats", &[], "").await;
    assert_eq!((status, stats(&body)["connections"].as_u64()), (200, Some(1)), "{body}");
}

#[tokio::test]
async fn clicks_recorded_while_the_clicks_rooms_owner_is_dead_reach_its_next_owner() {
    const CLICKS: u64 = 10;
    let nats = Nats::start();
    let key = add_account(&nats, "acme");
    let mut nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--memory"], &[])).collect();
    // The new link is told to the account's room, which the first node claims.
    link_everywhere(&nodes, &key, "go").await;
    assert_eq!(owner(&nodes).await, 0);
    nodes[0].kill9();
    // Its lease lives on for up to a TTL: the recorder on the second node
    // keeps trying until the room has a new owner.
    for _ in 0..CLICKS {
        assert_eq!(http(&nodes[1], "GET", "/l/go", &[], "").await.0, 302);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, answer) = http(&nodes[2], "GET", "/api/links/go", &[format!("Authorization: Bearer {key}")], "").await;
        let counted = if status == 200 { stats(&answer)["clicks"].as_u64() } else { None };
        if counted == Some(CLICKS) {
            break;
        }
        assert!(Instant::now() < deadline, "the clicks never all arrived: {status} {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The dead owner's subject had no listener: asked again, not lost.
    assert!(metric(&nodes[1], "switchboard_cluster_room_requests_gone_total").await > 0);
}

/// Sends `signal` (`STOP`, `CONT`) to a node, by its PID.
fn signal(server: &ServerProcess, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Asks `node` for the room's `_stats` until its connection count is
/// `want` (bounded): that answer.
async fn stats_until(node: &ServerProcess, room: &str, want: u64) -> Value {
    let deadline = Instant::now() + 3 * WAIT;
    loop {
        let (status, body) = http(node, "GET", &format!("/api/rooms/{room}/_stats"), &[], "").await;
        if status == 200 && stats(&body)["connections"] == want {
            return stats(&body);
        }
        assert!(Instant::now() < deadline, "_stats never showed {want} connections: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_owner_paused_past_its_lease_answers_from_the_new_owner_when_it_resumes() {
    let nats = Nats::start();
    let nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--memory"], &["--hibernate-after", "1s"])).collect();
    let mut members = Vec::new();
    for node in &nodes[..2] {
        let mut member = Client::connect(&node.ws("/rooms/broadcast/hall")).await.unwrap();
        next_of(&mut member, "welcome").await;
        members.push(member);
    }
    assert_eq!(owner(&nodes).await, 0);

    signal(&nodes[0], "STOP");
    // The second node's member takes the room to a new owner; the third
    // node reaches it there (its first asks may time out on the paused one).
    stats_until(&nodes[2], "broadcast/hall", 1).await;
    signal(&nodes[0], "CONT");
    // The resumed node holds the room's old actor, but no lease: it asks
    // the new owner, where its own member joins again.
    let seen = stats_until(&nodes[0], "broadcast/hall", 2).await;
    for node in &nodes[1..] {
        let (status, body) = http(node, "GET", "/api/rooms/broadcast/hall/_stats", &[], "").await;
        assert_eq!((status, stats(&body)["wakeups"].clone()), (200, seen["wakeups"].clone()), "{body}");
    }
    assert_ne!(owner(&nodes).await, 0, "the paused node owns the room again");
    // Once the old actor has stopped, one actor is left, and the resumed
    // node still answers from it.
    let deadline = Instant::now() + 3 * WAIT;
    while total(&nodes, "switchboard_rooms_live").await != 1 {
        assert!(Instant::now() < deadline, "the old actor never stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats_until(&nodes[0], "broadcast/hall", 2).await["wakeups"], seen["wakeups"]);
}
