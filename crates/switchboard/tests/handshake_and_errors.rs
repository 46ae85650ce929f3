//! The server's answers to raw bytes: bad handshakes, protocol errors and
//! plain HTTP, checked on the wire.

mod common;

use std::time::Duration;

use common::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Writes `request`, reads until the server closes (bounded), returns all bytes.
async fn exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    read.expect("server closed the connection in time").unwrap();
    out
}

fn head(bytes: &[u8]) -> String {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [1u8, 2, 3, 4];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

#[tokio::test]
async fn the_accept_key_is_the_rfc_value_and_leftover_bytes_are_frames() {
    let server = ServerProcess::start();
    // Request head and two frames in one write: the frames must not be lost.
    let mut request = upgrade("/rooms/echo/raw", "").into_bytes();
    request.extend(frame(0x81, b"first"));
    request.extend(frame(0x88, &[0x03, 0xe8]));
    let out = exchange(&server.addr, &request).await;
    let head = head(&out);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let frames = &out[head.len()..];
    assert_eq!(&frames[..7], &[0x81, 5, b'f', b'i', b'r', b's', b't']);
    assert_eq!(&frames[7..], &[0x88, 2, 0x03, 0xe8], "close echoed, then TCP closed");
}

#[tokio::test]
async fn bad_handshakes_get_400_426_and_404() {
    let server = ServerProcess::start();
    let no_key = "GET /rooms/echo/x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert!(head(&exchange(&server.addr, no_key.as_bytes()).await).starts_with("HTTP/1.1 400"));

    let v8 = upgrade("/rooms/echo/x", "").replace("Version: 13", "Version: 8");
    let answer = head(&exchange(&server.addr, v8.as_bytes()).await);
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{answer}");

    let answer = head(&exchange(&server.addr, upgrade("/rooms/nope/x", "").as_bytes()).await);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    let post = upgrade("/rooms/echo/x", "").replacen("GET", "POST", 1);
    assert!(head(&exchange(&server.addr, post.as_bytes()).await).starts_with("HTTP/1.1 400"));
}

#[tokio::test]
async fn plain_http_is_served_on_the_same_port() {
    let server = ServerProcess::start();
    let out = exchange(&server.addr, b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok\n"), "{text}");
    let out = exchange(&server.addr, b"GET /rooms/echo/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 426"));
    let out = exchange(&server.addr, b"GET /nothing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 404"));
}

async fn close_code_for(server: &ServerProcess, frames: &[u8]) -> u16 {
    let mut request = upgrade("/rooms/echo/err", "").into_bytes();
    request.extend_from_slice(frames);
    let out = exchange(&server.addr, &request).await;
    let rest = &out[head(&out).len()..];
    assert_eq!(rest[0], 0x88, "a close frame: {rest:x?}");
    u16::from_be_bytes([rest[2], rest[3]])
}

#[tokio::test]
async fn protocol_errors_close_with_their_codes() {
    let server = ServerProcess::start();
    // Unmasked client frame.
    assert_eq!(close_code_for(&server, &[0x81, 0x02, b'h', b'i']).await, 1002);
    // Reserved opcode.
    assert_eq!(close_code_for(&server, &frame(0x83, b"")).await, 1002);
    // Invalid UTF-8.
    assert_eq!(close_code_for(&server, &frame(0x81, &[0xff])).await, 1007);
    // Control frame fragmented.
    assert_eq!(close_code_for(&server, &frame(0x09, b"")).await, 1002);
    // Frame length over the 16 MiB default limit: the header alone is enough.
    let huge = [0x82, 0xff, 0, 0, 0, 0, 0x10, 0, 0, 1, 1, 2, 3, 4];
    assert_eq!(close_code_for(&server, &huge).await, 1009);
}
