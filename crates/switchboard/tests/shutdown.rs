//! What a stopping server does to the connections it has: WebSockets get a
//! 1001 close and time to answer it; idle keep-alive HTTP connections (a
//! browser keeps several after loading a page) are closed at once rather than
//! holding the exit back.

mod common;

use std::time::Duration;

use common::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads into `buf` until `done(buf)` holds; panics if the peer closes first
/// or stays silent for 20 s.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    while !done(buf) {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk)).await;
        match read.expect("the server answered in time").expect("read") {
            0 => panic!("the server closed the connection early; got {:?}", String::from_utf8_lossy(buf)),
            got => buf.extend_from_slice(&chunk[..got]),
        }
    }
}

/// Reads until the peer closes (bounded); returns what came before the end.
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    read.expect("the server closed the connection in time").expect("read");
    rest
}

#[tokio::test]
async fn sigterm_closes_idle_http_at_once_and_waits_for_the_websocket_close_reply() {
    let mut server = ServerProcess::start();

    // A WebSocket that will not answer the server's close frame for now.
    let mut ws = TcpStream::connect(&server.addr).await.unwrap();
    let upgrade = "GET /rooms/echo/stopping HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ws.write_all(upgrade.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut ws, &mut seen, |b| b.windows(4).any(|w| w == b"\r\n\r\n")).await;
    assert!(seen.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&seen));
    let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    seen.drain(..head_end);

    // A keep-alive HTTP connection, idle after one request.
    let mut http = TcpStream::connect(&server.addr).await.unwrap();
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    read_until(&mut http, &mut answer, |b| b.ends_with(b"ok\n")).await;

    server.send_sigterm();

    // The WebSocket is told the server is going away...
    read_until(&mut ws, &mut seen, |b| b.len() >= 4).await;
    assert_eq!((seen[0], &seen[2..4]), (0x88, &[0x03, 0xe9][..]), "a 1001 close frame: {seen:x?}");

    // ...and the idle HTTP connection is closed while the server is still
    // waiting for that WebSocket's reply, not when the process exits.
    let rest = read_to_end(&mut http).await;
    assert!(rest.is_empty(), "the idle HTTP connection ends without more bytes: {rest:x?}");
    let mut probe = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(200), ws.read(&mut probe)).await;
    assert!(still_open.is_err(), "the WebSocket was still open, waiting for the close reply: {still_open:?}");
    assert!(server.is_running());

    // The reply lets the server finish that connection and exit cleanly.
    let mask = [9u8, 8, 7, 6];
    let payload = [0x03u8, 0xe9];
    let mut close = vec![0x88, 0x82];
    close.extend_from_slice(&mask);
    close.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.write_all(&close).await.unwrap();
    let tail = read_to_end(&mut ws).await;
    assert!(tail.is_empty(), "TCP closed after the close handshake: {tail:x?}");
    let exit = tokio::task::spawn_blocking(move || server.wait_exit()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
}
