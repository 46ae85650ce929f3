//! Cluster mode through real sockets: three switchboard nodes on loopback
//! ports joined through one `nats-server -js` of the test's own
//! (`switchboard_cluster::testing`), clients
//! of the project's client on different nodes, one room between them.
//! Every wait is bounded.

mod common;
#[path = "support/json_client.rs"]
mod json_client;
#[path = "support/openmetrics.rs"]
mod openmetrics;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ServerProcess;
use json_client::{next, next_of, WAIT};
use serde_json::{json, Value};
use switchboard_client::{Client, ClientOptions};
use switchboard_cluster::testing::NatsServer as Nats;

/// The lease TTL the nodes run with: short, so failover tests stay short.
const TTL: &str = "2s";

fn node(nats: &Nats, name: &str, extra: &[&str]) -> ServerProcess {
    let url = nats.url();
    // The chat's rate limit is per user; these tests send faster.
    let mut flags = vec!["--memory", "--cluster", &url, "--node", name, "--cluster-lease-ttl", TTL, "--chat-rate", "1000", "--chat-burst", "1000"];
    flags.extend_from_slice(extra);
    let logs = if std::env::var_os("CLUSTER_TEST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() };
    ServerProcess::start_logging(&flags, logs)
}

fn three_nodes(nats: &Nats) -> Vec<ServerProcess> {
    ["n1", "n2", "n3"].iter().map(|name| node(nats, name, &[])).collect()
}

fn json_options() -> ClientOptions {
    ClientOptions { protocols: vec!["json".into()], ..ClientOptions::default() }
}

struct Chatter {
    client: Client,
    id: String,
}

/// Joins a chat room and reads the newcomer's welcome, history, state
/// and own join; returns the history and state too.
async fn join_chat(server: &ServerProcess, room: &str) -> (Chatter, Value, Value) {
    let mut client = Client::connect_with(&server.ws(&format!("/rooms/chat/{room}")), json_options()).await.unwrap();
    let welcome = next_of(&mut client, "welcome").await;
    let history = next(&mut client).await;
    assert_eq!(history["type"], "history", "{history}");
    let state = next(&mut client).await;
    assert_eq!(state["type"], "state", "{state}");
    let id = welcome["id"].as_str().unwrap().to_owned();
    let admin = next_of(&mut client, "admin").await;
    assert_eq!((admin["event"].as_str(), admin["user"]["id"].as_str()), (Some("joined"), Some(id.as_str())));
    (Chatter { client, id }, history, state)
}

async fn say(chatter: &mut Chatter, text: &str) {
    let message = json!({"type": "message", "text": text, "ref": text}).to_string();
    chatter.client.send_text(&message).await.unwrap();
}

/// Reads `count` chat messages (skipping everything else), as (sender id, text).
async fn messages(chatter: &mut Chatter, count: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let message = next_of(&mut chatter.client, "message").await;
        seen.push((message["from"]["id"].as_str().unwrap().to_owned(), message["text"].as_str().unwrap().to_owned()));
    }
    seen
}

/// Each sender's texts, in the order they were seen.
fn by_sender(seen: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut senders: HashMap<String, Vec<String>> = HashMap::new();
    for (from, text) in seen {
        senders.entry(from.clone()).or_default().push(text.clone());
    }
    senders
}

/// One unlabelled sample of the node's metrics, read with the strict parser.
async fn metric(server: &ServerProcess, name: &str) -> u64 {
    let (status, body) = http_get(server, "/metrics").await;
    assert_eq!(status, 200);
    let samples = openmetrics::parse(&body);
    *samples.get(&format!("{name}{{}}")).unwrap_or_else(|| panic!("no {name} in the metrics")) as u64
}

async fn http_get(server: &ServerProcess, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.expect("an answer in time").unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// How many nodes hold a room lease now.
async fn leases(nodes: &[ServerProcess]) -> u64 {
    let mut held = 0;
    for node in nodes {
        held += metric(node, "switchboard_cluster_leases_held").await;
    }
    held
}

#[tokio::test]
async fn chat_users_on_three_nodes_see_one_room() {
    let nats = Nats::start();
    let nodes = three_nodes(&nats);
    let (mut a, _, _) = join_chat(&nodes[0], "lobby").await;
    let (mut b, _, state) = join_chat(&nodes[1], "lobby").await;
    assert_eq!(state["count"], 2, "{state}");
    let (mut c, _, state) = join_chat(&nodes[2], "lobby").await;
    let roster: Vec<&str> = state["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    for id in [&a.id, &b.id, &c.id] {
        assert!(roster.contains(&id.as_str()), "{id} missing from the roster {roster:?}");
    }
    // Each sends five messages; everyone sees the others', each sender's in
    // order (a sender gets acks for its own).
    for i in 0..5 {
        say(&mut a, &format!("a{i}")).await;
        say(&mut b, &format!("b{i}")).await;
        say(&mut c, &format!("c{i}")).await;
    }
    let expected = |p: &str| (0..5).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let ids = [a.id.clone(), b.id.clone(), c.id.clone()];
    for (me, chatter) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
        let seen = by_sender(&messages(chatter, 10).await);
        for (other, prefix) in ["a", "b", "c"].into_iter().enumerate().filter(|(other, _)| *other != me) {
            assert_eq!(seen[ids[other].as_str()], expected(prefix), "per-sender order");
        }
    }
    // A newcomer on the second node finds the whole history and the roster.
    let (_d, history, state) = join_chat(&nodes[1], "lobby").await;
    let history: Vec<(String, String)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from"]["id"].as_str().unwrap().to_owned(), m["text"].as_str().unwrap().to_owned()))
        .collect();
    let history = by_sender(&history);
    for (id, prefix) in [(&a.id, "a"), (&b.id, "b"), (&c.id, "c")] {
        assert_eq!(history[id.as_str()], expected(prefix), "history of {prefix}");
    }
    assert_eq!(state["count"], 4, "{state}");
    assert_eq!(leases(&nodes).await, 1, "one owner");
}

/// Connects to a broadcast room and reads its welcome.
async fn join_broadcast(server: &ServerProcess, room: &str) -> Client {
    let mut client = Client::connect(&server.ws(&format!("/rooms/broadcast/{room}"))).await.unwrap();
    next_of(&mut client, "welcome").await;
    client
}

#[tokio::test]
async fn a_broadcast_reaches_members_on_every_node_crossing_once_per_node() {
    let nats = Nats::start();
    let nodes = three_nodes(&nats);
    let mut sender = join_broadcast(&nodes[0], "news").await;
    let mut members = Vec::new();
    for round in 0..4 {
        for node in &nodes {
            members.push(join_broadcast(node, "news").await);
        }
        let _ = round;
    }
    // Everyone has seen the final count of 13 before the message goes out.
    for client in members.iter_mut().chain(std::iter::once(&mut sender)) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "the count never reached 13");
            let message = next(client).await;
            if message["type"] == "count" && message["online"] == 13 {
                break;
            }
        }
    }
    let owner = {
        let mut owner = None;
        for (i, node) in nodes.iter().enumerate() {
            if metric(node, "switchboard_cluster_leases_held").await == 1 {
                owner = Some(i);
            }
        }
        owner.expect("one node owns the room")
    };
    let before = metric(&nodes[owner], "switchboard_cluster_effects_forwarded_total").await;
    sender.send_text(r#"{"type":"note","text":"hello"}"#).await.unwrap();
    for client in &mut members {
        let message = next(client).await;
        assert_eq!(message["text"], "hello", "{message}");
    }
    let after = metric(&nodes[owner], "switchboard_cluster_effects_forwarded_total").await;
    // Twelve recipients on three nodes: one message per node carries each
    // node's recipients.
    let sent = after - before;
    assert_eq!(sent, 3, "the broadcast crossed NATS {sent} times for 12 recipients on 3 nodes");
}

/// Sends `signal` (`STOP`, `CONT`) to a node, by its PID.
fn signal(server: &ServerProcess, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits (bounded) until exactly one node holds a lease.
async fn one_owner(nodes: &[&ServerProcess]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut holders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if metric(node, "switchboard_cluster_leases_held").await > 0 {
                holders.push(i);
            }
        }
        if holders.len() == 1 {
            return holders[0];
        }
        assert!(Instant::now() < deadline, "owners: {holders:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The connection was moved to the room's new owner: the room welcomes it
/// again (its new id) and sends the history, whose texts come back.
async fn rejoined(chatter: &mut Chatter) -> Vec<String> {
    // A move takes up to about three lease TTLs and the forward timeout,
    // longer on a loaded machine: more than one message's usual wait.
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    let welcome = loop {
        let message = tokio::time::timeout_at(deadline, chatter.client.recv_message()).await.expect("moved in time").expect("a message");
        let message: Value = serde_json::from_str(message.as_text().expect("text frames only")).expect("JSON");
        if message["type"] == "welcome" {
            break message;
        }
    };
    chatter.id = welcome["id"].as_str().unwrap().to_owned();
    let history = next(&mut chatter.client).await;
    assert_eq!(history["type"], "history", "{history}");
    history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn when_the_owner_is_killed_the_room_moves_and_members_elsewhere_stay() {
    let nats = Nats::start();
    let mut nodes = three_nodes(&nats);
    // The first join claims the room for the first node.
    let (_a, _, _) = join_chat(&nodes[0], "lobby").await;
    let (mut b, _, _) = join_chat(&nodes[1], "lobby").await;
    let (mut c, _, _) = join_chat(&nodes[2], "lobby").await;
    assert_eq!(one_owner(&nodes.iter().collect::<Vec<_>>()).await, 0);
    // Twenty messages, each acknowledged (stored in JetStream) before the kill.
    let acked: Vec<String> = (0..20).map(|i| format!("before{i}")).collect();
    for text in &acked {
        say(&mut b, text).await;
        let ack = next_of(&mut b.client, "ack").await;
        assert_eq!(ack["ref"], text.as_str());
    }
    assert_eq!(messages(&mut c, 20).await.into_iter().map(|(_, text)| text).collect::<Vec<_>>(), acked);

    let killed = Instant::now();
    nodes[0].kill9();
    // b and c keep their sockets and are joined to the room on its new
    // owner, which rebuilt it from JetStream: every acknowledged message is
    // in the history.
    assert_eq!(rejoined(&mut b).await, acked);
    assert_eq!(rejoined(&mut c).await, acked);
    let moved_after = killed.elapsed();
    let survivors = [&nodes[1], &nodes[2]];
    let owner = one_owner(&survivors).await;
    assert!(
        metric(survivors[owner], "switchboard_cluster_failovers_total").await + metric(survivors[1 - owner], "switchboard_cluster_failovers_total").await >= 2
    );
    say(&mut b, "after").await;
    assert_eq!(messages(&mut c, 1).await[0], (b.id.clone(), "after".to_owned()));
    eprintln!("the room moved {} ms after the kill (lease TTL {TTL})", moved_after.as_millis());
}

#[tokio::test]
async fn an_owner_paused_past_its_lease_does_not_act_as_owner_when_it_resumes() {
    let nats = Nats::start();
    let nodes = three_nodes(&nats);
    let (mut a, _, _) = join_chat(&nodes[0], "lobby").await;
    let (mut b, _, _) = join_chat(&nodes[1], "lobby").await;
    let (mut c, _, _) = join_chat(&nodes[2], "lobby").await;
    assert_eq!(one_owner(&nodes.iter().collect::<Vec<_>>()).await, 0);

    signal(&nodes[0], "STOP");
    assert!(rejoined(&mut b).await.is_empty());
    assert!(rejoined(&mut c).await.is_empty());
    say(&mut b, "while-paused").await;
    assert_eq!(messages(&mut c, 1).await[0], (b.id.clone(), "while-paused".to_owned()));

    signal(&nodes[0], "CONT");
    // The old owner finds its lease lost and moves its own member to the
    // new owner; it never applies anything as the owner again.
    assert_eq!(rejoined(&mut a).await, ["while-paused"]);
    let owner = one_owner(&nodes.iter().collect::<Vec<_>>()).await;
    assert_ne!(owner, 0, "the paused node owns the room again");
    say(&mut c, "after-resume").await;
    say(&mut a, "from-a").await;
    // Exactly once each for every member (two senders: either order).
    let mut seen = messages(&mut b, 2).await;
    seen.sort();
    let mut expected = vec![(c.id.clone(), "after-resume".to_owned()), (a.id.clone(), "from-a".to_owned())];
    expected.sort();
    assert_eq!(seen, expected);
    let seen = messages(&mut a, 1).await;
    assert_eq!(seen, vec![(c.id.clone(), "after-resume".to_owned())]);
    let seen = messages(&mut c, 1).await;
    assert_eq!(seen, vec![(a.id.clone(), "from-a".to_owned())]);
    // A newcomer finds each message once in the history.
    let (_d, history, state) = join_chat(&nodes[0], "lobby").await;
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    let mut texts = texts;
    if texts.len() == 3 {
        texts[1..].sort_unstable();
    }
    // The last two came from two senders at once: either order.
    assert_eq!(texts, ["while-paused", "after-resume", "from-a"], "nothing lost, nothing applied twice");
    assert_eq!(state["count"], 4, "{state}");
}

#[tokio::test]
async fn clients_racing_into_a_fresh_room_through_every_node_find_one_owner() {
    let nats = Nats::start();
    let nodes = three_nodes(&nats);
    let joins = (0..12).map(|i| {
        let url = nodes[i % 3].ws("/rooms/broadcast/race");
        async move {
            let mut client = Client::connect(&url).await.unwrap();
            next_of(&mut client, "welcome").await;
            client
        }
    });
    let mut clients = futures_util::future::join_all(joins).await;
    one_owner(&nodes.iter().collect::<Vec<_>>()).await;
    // One room: a message from any member reaches the eleven others.
    clients[0].send_text(r#"{"hello":1}"#).await.unwrap();
    for client in &mut clients[1..] {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline);
            if next(client).await["hello"] == 1 {
                break;
            }
        }
    }
}

#[tokio::test]
async fn nodes_carry_on_after_nats_restarts() {
    let mut nats = Nats::start();
    let nodes = three_nodes(&nats);
    let (mut a, _, _) = join_chat(&nodes[0], "lobby").await;
    let (mut b, _, _) = join_chat(&nodes[1], "lobby").await;
    for node in &nodes {
        assert_eq!(http_get(node, "/readyz").await.0, 200);
    }
    nats.restart();
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(node, "/readyz").await.0 != 200 {
            assert!(Instant::now() < deadline, "a node did not reconnect to NATS");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Messages cross nodes again (once the room has an owner again, if
    // the outage outlived its lease): b says something until a hears it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut heard = false;
    for i in 0.. {
        assert!(Instant::now() < deadline, "no message crossed after the restart");
        say(&mut b, &format!("ping{i}")).await;
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(500), next_of(&mut a.client, "message")).await {
            assert!(message["text"].as_str().unwrap().starts_with("ping"));
            heard = true;
            break;
        }
    }
    assert!(heard);
}

#[tokio::test]
async fn members_of_a_dead_node_leave_the_room_and_the_rest_carry_on() {
    let nats = Nats::start();
    let mut nodes = three_nodes(&nats);
    let (mut a, _, _) = join_chat(&nodes[0], "lobby").await;
    let (b, _, _) = join_chat(&nodes[1], "lobby").await;
    let (mut c, _, _) = join_chat(&nodes[2], "lobby").await;
    assert_eq!(one_owner(&nodes.iter().collect::<Vec<_>>()).await, 0);
    assert_eq!(metric(&nodes[0], "switchboard_cluster_nats_connected").await, 1);
    // The second node dies: the owner stops hearing from it, and its member leaves.
    nodes[1].kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the dead node's member never left");
        let admin = next_of(&mut a.client, "admin").await;
        if admin["event"] == "left" {
            assert_eq!(admin["user"]["id"], b.id.as_str());
            break;
        }
    }
    say(&mut c, "still-here").await;
    assert_eq!(messages(&mut a, 1).await, vec![(c.id.clone(), "still-here".to_owned())]);
}

/// `POST /api/rooms/{room}/publish` on `server`: the answer's status and body.
async fn publish(server: &ServerProcess, room: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "POST /api/rooms/{room}/publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {PUBLISH_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.expect("an answer in time").unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

const PUBLISH_KEY: &str = "cluster-publish-key-0123456789abcdef";

#[tokio::test]
async fn a_publication_through_any_node_reaches_the_room_on_its_owner() {
    let nats = Nats::start();
    let nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--publish-key", PUBLISH_KEY])).collect();
    let mut members = Vec::new();
    for node in &nodes {
        members.push(join_broadcast(node, "news").await);
    }
    // Everyone has seen the final count before anything is published.
    for client in &mut members {
        loop {
            let message = next(client).await;
            if message["type"] == "count" && message["online"] == 3 {
                break;
            }
        }
    }
    assert_eq!(one_owner(&nodes.iter().collect::<Vec<_>>()).await, 0);
    for (i, node) in nodes.iter().enumerate() {
        let (status, body) = publish(node, "broadcast/news", &format!(r#"{{"n":{i}}}"#)).await;
        assert_eq!((status, body.trim()), (200, r#"{"reached":3}"#), "through node {i}");
        for client in &mut members {
            assert_eq!(next(client).await["n"], i);
        }
    }
    // A room that runs nowhere reaches nobody, as on one node.
    assert_eq!(publish(&nodes[2], "broadcast/empty", "{}").await.1.trim(), r#"{"reached":0}"#);
}

/// The room's `_stats` as one node answers it (from the owner).
async fn room_stats(server: &ServerProcess, room: &str) -> Value {
    let (status, body) = http_get(server, &format!("/api/rooms/{room}/_stats")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn an_idle_room_hibernates_on_its_owner_and_members_elsewhere_stay() {
    let nats = Nats::start();
    let nodes: Vec<ServerProcess> = ["n1", "n2", "n3"].iter().map(|name| node(&nats, name, &["--hibernate-after", "1s"])).collect();
    let (mut a, _, _) = join_chat(&nodes[0], "quiet").await;
    let (mut b, _, _) = join_chat(&nodes[1], "quiet").await;
    let (mut c, _, _) = join_chat(&nodes[2], "quiet").await;
    assert_eq!(metric(&nodes[0], "switchboard_cluster_leases_held").await, 1, "the first member's node owns the room");
    say(&mut b, "before").await;
    for chatter in [&mut a, &mut c] {
        assert_eq!(messages(chatter, 1).await[0].1, "before");
    }
    // Idle past the hibernation delay: the owner drops the room's state,
    // and the members on every node keep their connections.
    let deadline = Instant::now() + 3 * WAIT;
    let asleep = loop {
        let stats = room_stats(&nodes[2], "chat/quiet").await;
        if stats["awake"] == false {
            break stats;
        }
        assert!(Instant::now() < deadline, "the room never hibernated: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(asleep["connections"], 3, "{asleep}");
    // A member on a node that does not own the room wakes it; everyone,
    // on every node, gets the message, and the room still knows what it
    // stored before it slept.
    say(&mut c, "after").await;
    for chatter in [&mut a, &mut b] {
        assert_eq!(messages(chatter, 1).await[0].1, "after");
    }
    let awake = room_stats(&nodes[1], "chat/quiet").await;
    assert_eq!(awake["awake"], true, "{awake}");
    assert!(awake["wakeups"].as_u64() > asleep["wakeups"].as_u64(), "no wake-up counted: {asleep} then {awake}");
    let (_d, history, state) = join_chat(&nodes[1], "quiet").await;
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["before", "after"]);
    assert_eq!(state["count"], 4, "{state}");
    assert_eq!(metric(&nodes[0], "switchboard_cluster_leases_held").await, 1, "the room stayed on its owner");
    assert_eq!(leases(&nodes).await, 1, "one owner");
}
