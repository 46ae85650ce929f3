//! The HTTP publish API against the real binary: a publication reaches
//! exactly the room's members, the batch form many rooms, the key is
//! required, and publishing to a room that does not run starts nothing.

mod common;

use std::time::Duration;

use common::ServerProcess;
use switchboard_client::{Client, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "publish-key-for-tests-0123456789";

/// A server with a publish key; the key file lives as long as the server.
fn server_with_key() -> (ServerProcess, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, format!("{KEY}\n").as_bytes()).unwrap();
    let server = ServerProcess::start_with(&["--memory", "--publish-key-file", file.path().to_str().unwrap()]);
    (server, file)
}

/// A POST on a fresh connection: status and body.
async fn post(server: &ServerProcess, path: &str, auth: Option<&str>, content_type: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let request =
        format!("POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut out)).await.unwrap().unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

async fn publish(server: &ServerProcess, room: &str, body: &str) -> serde_json::Value {
    let (status, body) = post(server, &format!("/api/rooms/{room}/publish"), Some(&bearer()), "application/json", body).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The next message that is not the broadcast room's own welcome or count.
async fn next_published(client: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.recv_message()).await.unwrap().unwrap();
        let text = message.as_text().expect("text").to_owned();
        if !text.contains("\"type\":\"welcome\"") && !text.contains("\"type\":\"count\"") {
            return text;
        }
    }
}

/// Joins `room` and returns once the room has handled the join: the 101 comes
/// before the room sees the connection, so a publication sent right after the
/// upgrade could miss it. An echo's round trip, or the first message the room
/// sends a newcomer (broadcast's welcome, call's joined), is the room's own
/// word that the member is in.
async fn join(server: &ServerProcess, room: &str) -> Client {
    let mut client = Client::connect(&server.ws(&format!("/rooms/{room}"))).await.unwrap();
    if room.starts_with("echo/") {
        client.send_text("joined?").await.unwrap();
        assert_eq!(client.recv_message().await.unwrap(), Message::text("joined?"));
    } else {
        tokio::time::timeout(Duration::from_secs(10), client.recv_message()).await.unwrap().unwrap();
    }
    client
}

#[tokio::test]
async fn a_publication_reaches_exactly_the_rooms_members() {
    let (server, _key) = server_with_key();
    let mut a1 = join(&server, "broadcast/a").await;
    let mut a2 = join(&server, "broadcast/a").await;
    let mut b = join(&server, "broadcast/b").await;
    let mut e = join(&server, "echo/a").await;

    assert_eq!(publish(&server, "broadcast/a", r#"{"type":"news","n":1}"#).await["reached"], 2);
    assert_eq!(next_published(&mut a1).await, r#"{"type":"news","n":1}"#);
    assert_eq!(next_published(&mut a2).await, r#"{"type":"news","n":1}"#);
    // The other rooms' members got nothing: their next message is their own.
    assert_eq!(publish(&server, "broadcast/b", r#"{"type":"news","n":2}"#).await["reached"], 1);
    assert_eq!(next_published(&mut b).await, r#"{"type":"news","n":2}"#);
    assert_eq!(publish(&server, "echo/a", r#""only echo""#).await["reached"], 1);
    assert_eq!(e.recv_message().await.unwrap(), Message::text(r#""only echo""#));

    // Text and binary bodies.
    let (status, body) = post(&server, "/api/rooms/broadcast/b/publish", Some(&bearer()), "text/plain", "plain words").await;
    assert_eq!((status, body.as_str()), (200, r#"{"reached":1}"#));
    assert_eq!(next_published(&mut b).await, "plain words");
    let (status, _) = post(&server, "/api/rooms/echo/a/publish", Some(&bearer()), "application/octet-stream", "raw").await;
    assert_eq!(status, 200);
    assert_eq!(e.recv_message().await.unwrap(), Message::binary(b"raw".to_vec()));
    let (status, body) = post(&server, "/api/rooms/echo/a/publish", Some(&bearer()), "application/json", "{not json").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_batch_publishes_to_many_rooms_and_reports_each() {
    let (server, _key) = server_with_key();
    let mut a = join(&server, "broadcast/a").await;
    let mut b1 = join(&server, "broadcast/b").await;
    let mut b2 = join(&server, "broadcast/b").await;
    let batch = r#"[{"kind":"broadcast","id":"a","data":"to a"},{"kind":"broadcast","id":"b","data":{"to":"b"}},{"kind":"nope","id":"x","data":1},{"kind":"echo","id":"nobody","data":"x"}]"#;
    let (status, body) = post(&server, "/api/publish", Some(&bearer()), "application/json", batch).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["reached"], 3);
    assert_eq!(answer["results"][0]["reached"], 1);
    assert_eq!(answer["results"][1]["reached"], 2);
    assert_eq!(answer["results"][2]["status"], 404);
    assert_eq!(answer["results"][3]["reached"], 0);
    assert_eq!(next_published(&mut a).await, "to a");
    assert_eq!(next_published(&mut b1).await, r#"{"to":"b"}"#);
    assert_eq!(next_published(&mut b2).await, r#"{"to":"b"}"#);
    let (status, _) = post(&server, "/api/publish", Some(&bearer()), "application/json", r#"{"kind":"echo"}"#).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn publishing_needs_the_key_and_is_off_without_one() {
    let (server, _key) = server_with_key();
    for auth in [None, Some("Bearer wrong"), Some(&format!("Basic {KEY}")[..]), Some(&format!("Bearer {KEY}x")[..])] {
        let (status, _) = post(&server, "/api/rooms/echo/a/publish", auth, "text/plain", "x").await;
        assert_eq!(status, 401, "{auth:?}");
        let (status, _) = post(&server, "/api/publish", auth, "application/json", "[]").await;
        assert_eq!(status, 401, "{auth:?}");
    }
    assert_eq!(post(&server, "/api/rooms/echo/a/publish", Some(&format!("bearer {KEY}")), "text/plain", "x").await.0, 200);

    let without = ServerProcess::start();
    let (status, body) = post(&without, "/api/rooms/echo/a/publish", Some(&bearer()), "text/plain", "x").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--publish-key-file"), "{body}");
}

#[tokio::test]
async fn publishing_to_a_room_that_does_not_run_starts_nothing() {
    let (server, _key) = server_with_key();
    for i in 0..50 {
        assert_eq!(publish(&server, &format!("broadcast/ghost-{i}"), "1").await["reached"], 0);
    }
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(b"GET /api/stats HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(stats["rooms"], 0, "{stats}");
    let (status, _) = post(&server, "/api/rooms/nokind/a/publish", Some(&bearer()), "text/plain", "x").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_room_kind_may_refuse_publications() {
    let (server, _key) = server_with_key();
    let _peer = join(&server, "call/c1").await;
    let (status, body) = post(&server, "/api/rooms/call/c1/publish", Some(&bearer()), "application/json", "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("signaling"), "{body}");
}
