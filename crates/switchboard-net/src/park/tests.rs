//! Parking over real loopback sockets, through `serve`: an idle connection
//! parks, and each thing that can reach it (its peer's bytes, a room's
//! frame, its heartbeat, its peer going away, shutdown) resumes it.

use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::frame::{DataOp, OpCode, SharedFrame};
use switchboard_proto::{CloseCode, CloseFrame, Event, Message};

use crate::testing::{Call, Listening};
use crate::NetConfig;

/// Short timers: a tick of 100 ms, idle checks every 200 ms, a ping after
/// 2 s of silence from the peer.
fn config() -> NetConfig {
    NetConfig {
        ping_interval: Duration::from_secs(2),
        pong_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_millis(400),
        park_after: Some(Duration::from_millis(200)),
        ..NetConfig::default()
    }
}

/// Waits (at most 10 s) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

fn text_frame(text: &'static str) -> SharedFrame {
    SharedFrame::new(OpCode::Data(DataOp::Text), false, &Bytes::from_static(text.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_parks_and_whatever_reaches_it_resumes_it() {
    let server = Listening::start(config()).await;
    let mut peer = server.connect("/room").await;
    peer.send(&Message::text("hello")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("hello"))));
    until("parked", || server.stats().connections_parked == 1).await;

    // Bytes from the peer.
    peer.send(&Message::text("after parking")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("after parking"))));
    assert_eq!(server.stats().resumed, 1);
    until("parked after a message", || server.stats().connections_parked == 1).await;

    // A frame from another task, as a room sends one.
    server.outbound().push(&text_frame("from the room"));
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("from the room"))));
    assert_eq!(server.stats().resumed, 2);
    until("parked after a frame", || server.stats().connections_parked == 1).await;

    // The heartbeat: parked, the connection still pings a silent peer, and
    // the pong (no message) lets it park again at once.
    assert_eq!(peer.next_event().await, Some(Event::Ping(Bytes::new())));
    peer.flush().await;
    until("parked after the pong", || server.stats().resumed >= 3 && server.stats().connections_parked == 1).await;

    // The peer's close.
    peer.close(CloseCode::NORMAL, "bye").await;
    assert!(matches!(peer.next_event().await, Some(Event::Close(_))), "our close reply");
    assert_eq!(peer.next_event().await, None, "then the server closes the socket");
    until("closed", || server.stats().connections_open == 0).await;
    let stats = server.stats();
    assert_eq!((stats.connections_parked, stats.closed_clean, stats.messages_in), (0, 1, 2));
    let calls = server.calls();
    assert_eq!(calls.first(), Some(&Call::Open));
    assert_eq!(calls.last(), Some(&Call::Close { code: Some(CloseCode::NORMAL), reason: "bye".into(), clean: true }));
    server.stop().await;
}

/// A connection resumed by a room's frame gets its socket's share back in
/// its outbound queue: the next frame is written through, on the wire
/// before this thread (the connection's too) yields.
#[tokio::test]
async fn a_resumed_connection_writes_frames_through_again() {
    let server = Listening::start(config()).await;
    let mut peer = server.connect("/room").await;
    until("parked", || server.stats().connections_parked == 1).await;
    server.outbound().push(&text_frame("resumes it"));
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("resumes it"))));
    // Past the wait that ends its pass, well before idle checks 200 ms
    // apart could park it again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(server.stats().connections_parked, 0);
    server.outbound().push(&text_frame("written through"));
    assert_eq!(peer.event_now(), Some(Event::Message(Message::text("written through"))));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_hear_of_their_peer_going_away_and_of_shutdown() {
    let server = Listening::start(config()).await;
    let gone = server.connect("/room").await;
    let mut staying = server.connect("/room").await;
    until("both parked", || server.stats().connections_parked == 2).await;

    drop(gone);
    until("the dropped one ended", || server.stats().closed_abnormal == 1).await;
    assert!(server.calls().contains(&Call::Close { code: Some(CloseCode::ABNORMAL), reason: "connection dropped".into(), clean: false }));
    assert_eq!(server.stats().connections_parked, 1);

    let stopping = tokio::spawn(server.stop());
    assert_eq!(staying.next_event().await, Some(Event::Close(CloseFrame { code: Some(CloseCode::GOING_AWAY), reason: "server shutting down".into() })));
    staying.close(CloseCode::GOING_AWAY, "").await;
    assert_eq!(staying.next_event().await, None);
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_park_after_connections_keep_their_tasks() {
    let server = Listening::start(NetConfig { park_after: None, ..config() }).await;
    let mut peer = server.connect("/room").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.stats().connections_parked, 0);
    peer.send(&Message::text("still here")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("still here"))));
    assert_eq!(server.stats().resumed, 0);
    server.stop().await;
}

#[test]
fn the_waker_of_a_parked_connection_fits_a_32_byte_block() {
    // With the `Arc`'s two counts; one per parked connection.
    assert!(std::mem::size_of::<super::Unpark>() <= 16, "Unpark is {} bytes", std::mem::size_of::<super::Unpark>());
}
