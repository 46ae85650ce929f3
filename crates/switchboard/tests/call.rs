//! The call room kind through real sockets against the real binary:
//! signals relayed only to their target and never under another's id;
//! unknown targets, oversized and too frequent signals refused with
//! nothing relayed; the capacity; peer-left on a close and on a connection
//! the heartbeat finds dead; the ICE servers and TURN credentials in
//! `joined` and at `GET /api/call/ice`, checked with an HMAC computed here
//! from the secret file; the secret file's errors and the secret kept out
//! of the logs.

mod common;
#[path = "support/json_client.rs"]
mod json_client;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::ServerProcess;
use hmac::{Hmac, Mac};
use json_client::{next, WAIT};
use serde_json::{json, Value};
use sha1::Sha1;
use switchboard_client::{Client, ClientOptions, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Peer {
    client: Client,
    id: String,
    joined: Value,
}

async fn connect(server: &ServerProcess, room: &str) -> Client {
    let options = ClientOptions { protocols: vec!["json".into()], ..ClientOptions::default() };
    let client = Client::connect_with(&server.ws(&format!("/rooms/call/{room}")), options).await.unwrap();
    assert_eq!(client.protocol(), Some("json"));
    client
}

/// Joins `room` and reads the `joined`.
async fn join(server: &ServerProcess, room: &str) -> Peer {
    let mut client = connect(server, room).await;
    let joined = next(&mut client).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let id = joined["id"].as_str().unwrap().to_owned();
    Peer { client, id, joined }
}

async fn send(peer: &mut Peer, message: Value) {
    peer.client.send_text(&message.to_string()).await.unwrap();
}

async fn signal(peer: &mut Peer, to: &str, data: Value) {
    send(peer, json!({"type": "signal", "to": to, "data": data})).await;
}

/// Reads `peer`'s messages until one of `kind`; fails on any other kind.
async fn expect(peer: &mut Peer, kind: &str) -> Value {
    let message = next(&mut peer.client).await;
    assert_eq!(message["type"], kind, "{message}");
    message
}

/// A marker through the room: `from` signals `to`, and `to` reads up to it,
/// returning what came before. Everything the room sent `to` before it
/// handled the marker is in that list.
async fn drain_until_marker(from: &mut Peer, to: &mut Peer, marker: &str) -> Vec<Value> {
    let to_id = to.id.clone();
    signal(from, &to_id, json!({"marker": marker})).await;
    let mut before = Vec::new();
    loop {
        let message = next(&mut to.client).await;
        if message["type"] == "signal" && message["data"]["marker"] == marker {
            assert_eq!(message["from"], from.id.as_str());
            return before;
        }
        before.push(message);
    }
}

#[tokio::test]
async fn peers_meet_and_a_signal_reaches_only_its_target_under_the_senders_id() {
    let server = ServerProcess::start();
    let mut a = join(&server, "meet").await;
    assert_eq!(a.joined["peers"], json!([]));
    assert_eq!(a.joined["room"], "meet");
    let mut b = join(&server, "meet").await;
    assert_eq!(b.joined["peers"], json!([{"id": a.id, "name": "", "muted": false, "cameraOff": false}]));
    assert_eq!(expect(&mut a, "peer-joined").await["peer"]["id"], b.id.as_str());
    let mut c = join(&server, "meet").await;
    assert_eq!(expect(&mut a, "peer-joined").await["peer"]["id"], c.id.as_str());
    assert_eq!(expect(&mut b, "peer-joined").await["peer"]["id"], c.id.as_str());

    // A sends B an offer, claiming to be C: B sees A's id and the data as sent.
    let offer = json!({"type": "offer", "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"});
    send(&mut a, json!({"type": "signal", "to": b.id, "from": c.id, "data": offer})).await;
    let got = expect(&mut b, "signal").await;
    assert_eq!(got, json!({"type": "signal", "from": a.id, "data": offer}));

    // C heard nothing of it: the first thing C gets is B's later signal.
    let c_id = c.id.clone();
    signal(&mut b, &c_id, json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host"})).await;
    let got = expect(&mut c, "signal").await;
    assert_eq!(got["from"], b.id.as_str());
    // Nor did A get anything back.
    let before = drain_until_marker(&mut c, &mut a, "m1").await;
    assert!(before.is_empty(), "{before:?}");

    // Names and media state reach the others.
    send(&mut a, json!({"type": "name", "name": "Ada"})).await;
    send(&mut a, json!({"type": "state", "muted": true, "cameraOff": true})).await;
    for other in [&mut b, &mut c] {
        assert_eq!(expect(other, "peer-state").await["peer"], json!({"id": a.id, "name": "Ada", "muted": false, "cameraOff": false}));
        assert_eq!(expect(other, "peer-state").await["peer"], json!({"id": a.id, "name": "Ada", "muted": true, "cameraOff": true}));
    }
}

#[tokio::test]
async fn unknown_targets_and_oversized_signals_get_errors_and_nothing_is_relayed() {
    let server = ServerProcess::start();
    let mut a = join(&server, "refusals").await;
    let mut b = join(&server, "refusals").await;
    expect(&mut a, "peer-joined").await;

    let stranger = "0123456789abcdef0123456789abcdef";
    signal(&mut a, stranger, json!({"type": "offer", "sdp": "x"})).await;
    let error = expect(&mut a, "error").await;
    assert_eq!((&error["code"], &error["to"]), (&json!("unknown_target"), &json!(stranger)));

    // The default limit: 64 KiB of data.
    let limit = a.joined["limits"]["maxSignalBytes"].as_u64().unwrap() as usize;
    assert_eq!(limit, 65_536);
    let b_id = b.id.clone();
    signal(&mut a, &b_id, json!("x".repeat(limit - 2))).await;
    let relayed = expect(&mut b, "signal").await;
    assert_eq!(relayed["data"].as_str().unwrap().len(), limit - 2, "exactly the limit is relayed");
    signal(&mut a, &b_id, json!("x".repeat(limit - 1))).await;
    assert_eq!(expect(&mut a, "error").await["code"], "too_large");
    // A megabyte: refused unread.
    signal(&mut a, &b_id, json!("x".repeat(1 << 20))).await;
    assert_eq!(expect(&mut a, "error").await["code"], "too_large");

    let before = drain_until_marker(&mut a, &mut b, "m").await;
    assert!(before.is_empty(), "B got nothing refused: {before:?}");
}

#[tokio::test]
async fn too_frequent_signals_get_rate_limited_and_only_the_accepted_ones_are_relayed() {
    let server = ServerProcess::start();
    let mut a = join(&server, "flood").await;
    let mut b = join(&server, "flood").await;
    let mut c = join(&server, "flood").await;
    expect(&mut a, "peer-joined").await;
    expect(&mut a, "peer-joined").await;
    expect(&mut b, "peer-joined").await;
    let burst = a.joined["limits"]["burst"].as_u64().unwrap() as usize;
    // Far more than a slow machine could refill while they are sent.
    let sent = burst + 400;
    let b_id = b.id.clone();
    for n in 0..sent {
        signal(&mut a, &b_id, json!({"n": n})).await;
    }
    // A message far over the size limit is refused unread, so whatever is
    // left in A's bucket: its too_large comes after every signal before it.
    a.client.send_text(&"x".repeat(100_000)).await.unwrap();
    let mut limited = 0;
    loop {
        let error = expect(&mut a, "error").await;
        match error["code"].as_str() {
            Some("rate_limited") => limited += 1,
            Some("too_large") => break,
            other => panic!("unexpected error {other:?}"),
        }
    }
    // Sent after A's last signal was handled, so B reads all of A's first.
    let relayed = drain_until_marker(&mut c, &mut b, "end").await;
    assert!(relayed.iter().all(|m| m["type"] == "signal" && m["from"] == a.id.as_str()));
    let numbers: Vec<u64> = relayed.iter().map(|m| m["data"]["n"].as_u64().unwrap()).collect();
    assert!(numbers.len() >= burst && numbers.len() < sent, "the burst and what refilled meanwhile: {} of {sent}", numbers.len());
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(numbers.len() + limited, sent, "every signal was relayed or refused, never both");
    assert!(numbers[..burst].iter().copied().eq(0..burst as u64), "the whole burst went through");
}

#[tokio::test]
async fn a_full_call_refuses_the_next_peer_with_an_error_and_1008() {
    let server = ServerProcess::start_with(&["--memory", "--call-max-peers", "2"]);
    let mut a = join(&server, "pair").await;
    assert_eq!(a.joined["limits"]["maxPeers"], 2);
    let mut b = join(&server, "pair").await;
    expect(&mut a, "peer-joined").await;
    let mut c = connect(&server, "pair").await;
    let error = next(&mut c).await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("room_full")));
    match tokio::time::timeout(WAIT, c.recv()).await.unwrap() {
        Ok(Some(Event::Close(frame))) => assert_eq!(frame.code.map(|c| c.as_u16()), Some(1008)),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Nobody heard of it: A's next message is B's marker.
    let before = drain_until_marker(&mut b, &mut a, "x").await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn peer_left_is_sent_whether_the_peer_closed_or_the_heartbeat_found_it_dead() {
    let server = ServerProcess::start_with(&["--memory", "--ping-interval", "200ms", "--pong-timeout", "300ms"]);
    let mut a = join(&server, "exits").await;
    let b = join(&server, "exits").await;
    let silent = join(&server, "exits").await;
    expect(&mut a, "peer-joined").await;
    expect(&mut a, "peer-joined").await;

    b.client.close(None, "bye").await.unwrap();
    assert_eq!(expect(&mut a, "peer-left").await, json!({"type": "peer-left", "id": b.id}));

    // `silent` never reads again, so it never answers the server's ping; `a`
    // keeps reading (and answering pings) while it waits.
    assert_eq!(expect(&mut a, "peer-left").await, json!({"type": "peer-left", "id": silent.id}));
    drop(silent);
}

fn hmac_base64(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Checks an `ice` object: the STUN entry, then the TURN entry whose
/// username is `expiry:id` with the expiry `ttl` after a moment between
/// `before` and `after`, and whose password is the HMAC of it under
/// `secret`. Returns the id in the username.
fn check_ice(ice: &Value, secret: &str, ttl: u64, before: u64, after: u64) -> String {
    let servers = ice["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{ice}");
    assert_eq!(servers[0], json!({"urls": ["stun:127.0.0.1:3478"]}));
    let turn = &servers[1];
    assert_eq!(turn["urls"], json!(["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]));
    let username = turn["username"].as_str().unwrap();
    let (expiry, id) = username.split_once(':').unwrap();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((before + ttl..=after + ttl).contains(&expiry), "expiry {expiry} is not {ttl} s after [{before}, {after}]");
    assert_eq!(ice["expires"], expiry);
    assert_eq!(turn["credential"], hmac_base64(secret, username).as_str(), "the password is base64(HMAC-SHA1(secret, username))");
    id.to_owned()
}

fn turn_server(secret_file: &str, ttl: &str) -> ServerProcess {
    ServerProcess::start_with(&[
        "--memory",
        "--call-stun",
        "stun:127.0.0.1:3478",
        "--call-turn",
        "turn:127.0.0.1:3478?transport=udp",
        "--call-turn",
        "turn:127.0.0.1:3478?transport=tcp",
        "--call-turn-secret-file",
        secret_file,
        "--call-turn-ttl",
        ttl,
    ])
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

async fn http(server: &ServerProcess, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream
        .write_all(format!("{method} {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

#[tokio::test]
async fn turn_credentials_in_joined_and_over_http_verify_with_the_secret_and_expire_after_the_ttl() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    // The file's text, final newline and all; the secret is without it.
    std::io::Write::write_all(&mut file, b"  a shared secret for coturn\n").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let mut text = String::new();
    std::fs::File::open(&path).unwrap().read_to_string(&mut text).unwrap();
    let secret = text.trim();

    let server = turn_server(&path, "10m");
    let before = now_s();
    let a = join(&server, "turn").await;
    let b = join(&server, "turn").await;
    let after = now_s();
    assert_eq!(check_ice(&a.joined["ice"], secret, 600, before, after), a.id, "the username names the peer");
    assert_eq!(check_ice(&b.joined["ice"], secret, 600, before, after), b.id);

    let before = now_s();
    let reply = http(&server, "GET", "/api/call/ice").await;
    let after = now_s();
    assert_eq!(reply.status, 200);
    assert!(reply.head.contains("content-type: application/json"), "{}", reply.head);
    assert!(reply.head.contains("cache-control: no-store"), "{}", reply.head);
    let ice: Value = serde_json::from_str(&reply.body).unwrap();
    let id = check_ice(&ice, secret, 600, before, after);
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "a fresh random id: {id}");
    assert!(id != a.id && id != b.id);
    let again: Value = serde_json::from_str(&http(&server, "GET", "/api/call/ice").await.body).unwrap();
    assert_ne!(again["iceServers"][1]["username"], ice["iceServers"][1]["username"], "fresh credentials each time");
    assert_eq!(http(&server, "POST", "/api/call/ice").await.status, 405);

    // A short TTL: the expiry follows it.
    let quick = turn_server(&path, "5s");
    let before = now_s();
    let c = join(&quick, "turn").await;
    assert_eq!(check_ice(&c.joined["ice"], secret, 5, before, now_s()), c.id);
}

#[tokio::test]
async fn without_ice_configuration_peers_get_no_servers() {
    let server = ServerProcess::start();
    let a = join(&server, "plain").await;
    assert_eq!(a.joined["ice"], json!({"iceServers": [], "expires": null}));
    let reply = http(&server, "GET", "/api/call/ice").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"{"iceServers":[],"expires":null}"#));
}

/// Runs `switchboard serve ARGS` expecting it to refuse to start; its stderr.
fn refused_start(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    assert!(!output.status.success(), "started with {args:?}");
    assert!(output.stdout.is_empty(), "never listened: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_missing_or_empty_secret_file_and_bad_urls_stop_the_server_from_starting() {
    let missing = refused_start(&["--call-turn", "turn:127.0.0.1:3478", "--call-turn-secret-file", "/nonexistent/turn-secret"]);
    assert!(missing.contains("cannot read the TURN secret file /nonexistent/turn-secret"), "{missing}");
    let empty = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(empty.path(), "\n").unwrap();
    let empty_path = empty.path().to_str().unwrap();
    let error = refused_start(&["--call-turn", "turn:127.0.0.1:3478", "--call-turn-secret-file", empty_path]);
    assert!(error.contains("is empty"), "{error}");
    let error = refused_start(&["--call-turn", "turn:127.0.0.1:3478"]);
    assert!(error.contains("--call-turn-secret-file"), "TURN needs its secret: {error}");
    let error = refused_start(&["--call-stun", "stun://127.0.0.1"]);
    assert!(error.contains("without //"), "{error}");
    let error = refused_start(&["--call-turn", "http://127.0.0.1", "--call-turn-secret-file", empty_path]);
    assert!(error.contains("turn:"), "{error}");
}

#[tokio::test]
async fn the_secret_never_reaches_the_log() {
    let secret = "s3cr3t-that-must-not-be-logged";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), secret).unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--memory", "--listen", "127.0.0.1:0", "--call-turn", "turn:127.0.0.1:3478"])
        .args(["--call-turn-secret-file", file.path().to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let addr = line.trim().strip_prefix("switchboard listening on http://").unwrap().to_owned();
    let mut client = Client::connect(&format!("ws://{addr}/rooms/call/logged")).await.unwrap();
    let joined: Value = serde_json::from_str(client.recv_message().await.unwrap().as_text().unwrap()).unwrap();
    assert_eq!(joined["type"], "joined");
    drop(client);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.contains("call settings"), "the log was written: {logged}");
    assert!(!logged.contains(secret), "the secret is in the log:\n{logged}");
    let credential = joined["ice"]["iceServers"][0]["credential"].as_str().unwrap();
    assert!(!logged.contains(credential), "a credential is in the log");
}

#[tokio::test]
async fn the_call_page_and_its_script_are_served() {
    let server = ServerProcess::start();
    let page = http(&server, "GET", "/apps/call/").await;
    assert_eq!(page.status, 200);
    assert!(page.head.contains("content-type: text/html"), "{}", page.head);
    assert!(page.body.contains("/apps/call/call.js"), "the page loads its script");
    let script = http(&server, "GET", "/apps/call/call.js").await;
    assert_eq!(script.status, 200);
    assert!(script.head.contains("content-type: text/javascript"), "{}", script.head);
    assert!(script.body.contains("from '/client.js'") && script.body.contains("from '/apps/common.js'"), "an ES module on the shared client and page code");
    let landing = http(&server, "GET", "/").await;
    assert!(landing.body.contains(r#"href="/apps/call/""#), "the landing page links to the call");
}
