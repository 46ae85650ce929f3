//! Parked connections through the real binary (`--park-after`): idle chat
//! members park, and a message one of them sends reaches the other (the
//! sender resumed by its socket, the receiver by the room's frame); an
//! independent client (tokio-tungstenite) parked in an echo room is
//! resumed by its heartbeat and by a drain's 1001. `/metrics`, read with
//! the OpenMetrics parser, shows the parked gauge and the resumptions.
//! Compressed connections park under both compression policies.

mod common;
#[path = "support/http_reply.rs"]
mod http_reply;
#[path = "support/json_client.rs"]
mod json_client;
#[path = "support/openmetrics.rs"]
mod openmetrics;

use std::time::Duration;

use common::ServerProcess;
use futures_util::{SinkExt, StreamExt};
use json_client::next_of;
use serde_json::json;
use switchboard_client::{Client, ClientOptions};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// The parked gauge and the resumption counter.
async fn parking(server: &ServerProcess) -> (f64, f64) {
    let reply = http_reply::request(&server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let metrics = openmetrics::parse(&reply.body);
    let value = |name: &str| metrics.get(name).copied().unwrap_or_else(|| panic!("{name} missing from /metrics"));
    (value("switchboard_connections_parked{}"), value("switchboard_connections_resumed_total{}"))
}

/// Waits (at most 10 s) until the parked gauge and the resumptions so far
/// satisfy `done`; returns the resumptions.
async fn until(server: &ServerProcess, what: &str, done: impl Fn(f64, f64) -> bool) -> f64 {
    for _ in 0..100 {
        let (parked, resumed) = parking(server).await;
        if done(parked, resumed) {
            return resumed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}: {:?} (parked, resumed)", parking(server).await);
}

/// Waits until `parked` connections are parked; returns the resumptions so far.
async fn until_parked(server: &ServerProcess, parked: f64) -> f64 {
    until(server, &format!("{parked} connections parked"), |now, _| now == parked).await
}

async fn chatter(server: &ServerProcess, room: &str) -> Client {
    let options = ClientOptions { protocols: vec!["json".into()], ..ClientOptions::default() };
    let mut client = Client::connect_with(&server.ws(&format!("/rooms/chat/{room}")), options).await.unwrap();
    next_of(&mut client, "admin").await;
    client
}

#[tokio::test]
async fn parked_chat_members_still_talk() {
    let server = ServerProcess::start_with(&["--memory", "--park-after", "300ms"]);
    let mut ann = chatter(&server, "parked").await;
    let mut bob = chatter(&server, "parked").await;
    // Ann hears of Bob joining; then both go quiet and park.
    next_of(&mut ann, "admin").await;
    let resumed = until_parked(&server, 2.0).await;

    let said = json!({"type": "message", "text": "anyone there?", "ref": "r1"}).to_string();
    ann.send_text(&said).await.unwrap();
    let heard = next_of(&mut bob, "message").await;
    assert_eq!(heard["text"], "anyone there?", "{heard}");
    let ack = next_of(&mut ann, "ack").await;
    assert_eq!(ack["ref"], "r1", "{ack}");
    let (_, after) = parking(&server).await;
    assert!(after >= resumed + 2.0, "both resumed: {resumed} then {after}");

    // Both park again, and a leave reaches the parked one.
    until_parked(&server, 2.0).await;
    ann.close(None, "").await.unwrap();
    let left = next_of(&mut bob, "admin").await;
    assert_eq!(left["event"], "left", "{left}");
}

#[tokio::test]
async fn a_parked_connection_answers_its_heartbeat_and_hears_a_drain() {
    let server = ServerProcess::start_with(&["--memory", "--park-after", "300ms", "--ping-interval", "2s", "--drain-grace", "0s", "--drain-timeout", "0s"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws("/rooms/echo/parked")).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let resumed = until_parked(&server, 1.0).await;

    // tokio-tungstenite answers the ping while reading; the connection
    // parks again after the pong.
    let ping = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a ping within 10 s").unwrap().unwrap();
    assert!(ping.is_ping(), "{ping:?}");
    ws.flush().await.unwrap();
    until(&server, "parked again after the heartbeat", |parked, now| parked == 1.0 && now > resumed).await;

    server.send_sigterm();
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a close within 10 s").unwrap().unwrap();
    match close {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
}

#[tokio::test]
async fn one_broadcast_resumes_every_parked_member() {
    const MEMBERS: usize = 200;
    let server = ServerProcess::start_with(&["--memory", "--park-after", "300ms"]);
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws("/rooms/broadcast/many")).await.unwrap();
        members.push(ws);
    }
    until_parked(&server, MEMBERS as f64).await;

    let (mut speaker, _) = tokio_tungstenite::connect_async(server.ws("/rooms/broadcast/many")).await.unwrap();
    speaker.send(Message::text("wake up")).await.unwrap();
    // Each member reads past the room's counts to the message.
    let heard = members.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            loop {
                let message = ws.next().await.expect("open").expect("a message");
                if message == Message::text("wake up") {
                    return;
                }
            }
        })
    });
    let all = futures_util::future::join_all(heard);
    for member in tokio::time::timeout(Duration::from_secs(20), all).await.expect("every member heard it within 20 s") {
        member.unwrap();
    }
    let (_, resumed) = parking(&server).await;
    assert!(resumed >= MEMBERS as f64, "{resumed} resumptions for {MEMBERS} parked members");
}

/// A compressed connection parks too: under the default `shared` policy
/// its engine is at rest between messages and is made anew from its
/// settings, under `dedicated` it keeps its compression state and parks
/// with it. Either way messages after the resumption still inflate in a
/// real client, on both sides.
#[tokio::test]
async fn compressed_connections_park_and_keep_compressing() {
    use switchboard_client::{DeflateOptions, Message};
    for policy in ["shared", "dedicated"] {
        let server = ServerProcess::start_with(&["--memory", "--park-after", "300ms", "--compression", policy]);
        let options = ClientOptions { deflate: Some(DeflateOptions::browser()), ..ClientOptions::default() };
        let mut client = Client::connect_with(&server.ws("/rooms/echo/squeezed"), options).await.unwrap();
        assert!(client.is_compressed(), "{policy}");
        let text = "a line that compresses well, ".repeat(40);
        client.send_text(&text).await.unwrap();
        assert_eq!(client.recv_message().await.unwrap(), Message::text(text.clone()));
        let resumed = until_parked(&server, 1.0).await;

        for i in 0..3 {
            let again = format!("{i}: {text}");
            client.send_text(&again).await.unwrap();
            assert_eq!(client.recv_message().await.unwrap(), Message::text(again), "{policy}");
        }
        let (_, after) = parking(&server).await;
        assert!(after > resumed, "{policy}: resumed by the first message after parking");
    }
}
