//! The edge against the real binary: `Origin` allow-lists, connections per
//! IP and in all, handshakes per second per IP, rooms per node; each
//! refusal with its status (and `Retry-After`) before any room is asked,
//! and counted in `/api/stats`.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::ServerProcess;
use switchboard_client::{Client, ClientError, ClientOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects with extra headers from `from` (a loopback address); the
/// handshake's status when refused.
async fn connect(server: &ServerProcess, path: &str, headers: &[(&str, &str)], from: &str) -> Result<Client, u16> {
    let options = ClientOptions {
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        local_addr: Some(from.parse::<IpAddr>().unwrap()),
        ..ClientOptions::default()
    };
    match Client::connect_with(&server.ws(path), options).await {
        Ok(client) => Ok(client),
        Err(ClientError::Handshake(e)) => Err(e.status),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// A raw upgrade request from 127.0.0.1; the whole response head.
async fn raw_upgrade(server: &ServerProcess, path: &str) -> String {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await.unwrap().unwrap(), 1, "closed before a whole head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// `GET /api/stats` as JSON.
async fn stats(server: &ServerProcess) -> serde_json::Value {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(b"GET /api/stats HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// Retries `attempt` every 20 ms for at most 10 s until it succeeds.
async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn by_default_the_own_origin_and_local_pages_may_connect_and_other_sites_may_not() {
    let server = ServerProcess::start();
    let own = format!("http://{}", server.addr);
    for origin in [own.as_str(), "http://localhost:5173", "http://127.0.0.1:3000"] {
        assert!(connect(&server, "/rooms/echo/o", &[("Origin", origin)], "127.0.0.1").await.is_ok(), "{origin}");
    }
    assert!(connect(&server, "/rooms/echo/o", &[], "127.0.0.1").await.is_ok(), "no Origin: not a browser");
    for origin in ["https://evil.example", "null", "http://127.0.0.1.evil.example"] {
        assert_eq!(connect(&server, "/rooms/echo/o", &[("Origin", origin)], "127.0.0.1").await.err(), Some(403), "{origin}");
    }
    assert_eq!(stats(&server).await["refused"]["origin"], 3);
}

#[tokio::test]
async fn configured_origins_replace_the_default_per_kind_and_origin_can_be_required() {
    let server = ServerProcess::start_with(&[
        "--memory",
        "--allowed-origin",
        "https://app.example",
        "--allowed-origin-kind",
        "chat=https://chat.example",
        "--require-origin",
    ]);
    let ok = |r: &Result<Client, u16>| r.is_ok();
    assert!(ok(&connect(&server, "/rooms/broadcast/o", &[("Origin", "https://app.example")], "127.0.0.1").await));
    assert_eq!(connect(&server, "/rooms/broadcast/o", &[("Origin", "http://localhost:5173")], "127.0.0.1").await.err(), Some(403));
    assert_eq!(connect(&server, "/rooms/chat/o?name=a", &[("Origin", "https://app.example")], "127.0.0.1").await.err(), Some(403));
    assert!(ok(&connect(&server, "/rooms/chat/o?name=a", &[("Origin", "https://chat.example")], "127.0.0.1").await));
    let own = format!("http://{}", server.addr);
    assert!(ok(&connect(&server, "/rooms/chat/o?name=b", &[("Origin", own.as_str())], "127.0.0.1").await));
    assert_eq!(connect(&server, "/rooms/echo/o", &[], "127.0.0.1").await.err(), Some(403), "no Origin, and one is required");
}

#[tokio::test]
async fn a_bad_origin_on_the_command_line_stops_the_server() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--memory", "--listen", "127.0.0.1:0", "--allowed-origin", "app.example"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an origin"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn handshakes_beyond_an_ips_rate_get_429_with_retry_after() {
    let server = ServerProcess::start_with(&["--memory", "--handshake-rate-per-ip", "1", "--handshake-burst-per-ip", "3"]);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(&server, "/rooms/echo/rate", &[], "127.0.0.1").await.expect("within the burst"));
    }
    let head = raw_upgrade(&server, "/rooms/echo/rate").await;
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"));
    assert!(connect(&server, "/rooms/echo/rate", &[], "127.0.0.2").await.is_ok(), "another address has its own bucket");
    // The bucket refills at 1/s.
    let again = eventually("a refilled token", async || connect(&server, "/rooms/echo/rate", &[], "127.0.0.1").await.ok()).await;
    drop((open, again));
    assert!(stats(&server).await["refused"]["handshake_rate"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn connections_beyond_an_ips_share_get_429_and_beyond_the_server_cap_503() {
    let server = ServerProcess::start_with(&["--memory", "--max-connections-per-ip", "2", "--max-connections", "3"]);
    let a1 = connect(&server, "/rooms/echo/cap", &[], "127.0.0.1").await.unwrap();
    let _a2 = connect(&server, "/rooms/echo/cap", &[], "127.0.0.1").await.unwrap();
    let head = raw_upgrade(&server, "/rooms/echo/cap").await;
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    assert!(header(&head, "retry-after").is_some(), "{head}");
    let _b = connect(&server, "/rooms/echo/cap", &[], "127.0.0.2").await.unwrap();
    assert_eq!(connect(&server, "/rooms/echo/cap", &[], "127.0.0.3").await.err(), Some(503), "the server is full");
    let s = stats(&server).await;
    assert_eq!((s["connections"].as_u64(), s["refused"]["connections_per_ip"].as_u64(), s["refused"]["max_connections"].as_u64()), (Some(3), Some(1), Some(1)));
    // A place comes back when a connection ends.
    a1.close(None, "").await.unwrap();
    let _a3 = eventually("a freed place", async || connect(&server, "/rooms/echo/cap", &[], "127.0.0.1").await.ok()).await;
    let head = raw_upgrade(&server, "/rooms/echo/cap").await;
    assert!(head.starts_with("HTTP/1.1 429 ") || head.starts_with("HTTP/1.1 503 "), "{head}");
}

#[tokio::test]
async fn a_connection_that_would_start_a_room_beyond_the_cap_gets_503() {
    let server = ServerProcess::start_with(&["--memory", "--max-rooms", "2", "--hibernate-after", "100ms"]);
    let a = connect(&server, "/rooms/echo/a", &[], "127.0.0.1").await.unwrap();
    let _b = connect(&server, "/rooms/echo/b", &[], "127.0.0.1").await.unwrap();
    let head = raw_upgrade(&server, "/rooms/echo/c").await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(header(&head, "retry-after").is_some(), "{head}");
    assert!(connect(&server, "/rooms/echo/a", &[], "127.0.0.1").await.is_ok(), "a live room takes more connections");
    assert_eq!(stats(&server).await["rooms"], 2);
    // Room a stops once its connections are gone and it has hibernated.
    a.close(None, "").await.unwrap();
    let _c = eventually("a room's place freed", async || connect(&server, "/rooms/echo/c", &[], "127.0.0.1").await.ok()).await;
    assert_eq!(stats(&server).await["refused"]["max_rooms"].as_u64().map(|n| n >= 1), Some(true));
}
