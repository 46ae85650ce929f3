//! The server's heartbeat: silent peers are pinged, and dropped when they do
//! not answer; peers that answer stay connected.

mod common;

use std::time::{Duration, Instant};

use common::ServerProcess;
use switchboard_client::{Client, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FLAGS: &[&str] = &["--memory", "--ping-interval", "200ms", "--pong-timeout", "300ms"];

#[tokio::test]
async fn a_peer_that_never_answers_is_pinged_then_dropped() {
    let server = ServerProcess::start_with(FLAGS);
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream
        .write_all(b"GET /rooms/echo/hb HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    // Read everything until the server drops us; never answer anything.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server dropped the silent peer");
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&received[head_end..], &[0x89, 0x00], "exactly one empty ping, then the socket closed");
    assert!(started.elapsed() >= Duration::from_millis(400), "not before interval + timeout");
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_connected() {
    let server = ServerProcess::start_with(FLAGS);
    let mut client = Client::connect(&server.ws("/rooms/echo/alive")).await.unwrap();
    let mut pings = 0;
    // Our client answers each ping inside recv(); keep receiving for ~1.5 s.
    let until = Instant::now() + Duration::from_millis(1500);
    while let Ok(event) = tokio::time::timeout_at(until.into(), client.recv()).await {
        match event.unwrap() {
            Some(Event::Ping(_)) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "pinged every 200 ms of silence, got {pings}");
    client.send_text("still here").await.unwrap();
    assert_eq!(client.recv_message().await.unwrap().as_text(), Some("still here"));
}
