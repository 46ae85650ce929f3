//! The trusted-header and forward modes against the real binary
//! (docs/auth.md). Loopback has all of 127.0.0.0/8: the "gateway" connects
//! from 127.0.0.2, the only trusted proxy, and everyone else from
//! 127.0.0.1. The forward mode's auth backend is a small server of the
//! test's own (tests/support/auth_backend.rs).

#[path = "support/auth_backend.rs"]
mod auth_backend;
mod common;
#[path = "support/edge.rs"]
mod edge;

use auth_backend::AuthBackend;
use common::ServerProcess;
use edge::{chat_name, open, open_from, Refused};

const GATEWAY: &str = "127.0.0.2";

#[tokio::test]
async fn the_identity_header_is_believed_from_the_trusted_proxy_only() {
    let server = ServerProcess::start_with(&["--memory", "--trusted-proxy", GATEWAY, "--auth-kind", "chat=trusted-header", "--auth-room-is-subject", "chat"]);
    let url = server.ws("/rooms/chat/acme");
    let account = [("x-switchboard-account", "acme")];

    let (mut ws, _) = open_from(Some(GATEWAY), &url, &account, &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme", "the room sees the gateway's identity");
    // The same header from anyone else is not believed: refused, not ignored
    // into an anonymous member.
    let refusal = open_from(Some("127.0.0.1"), &url, &account, &[]).await.unwrap_err();
    assert_eq!(refusal.status, 401);
    assert!(refusal.body.contains("trusted proxies"), "{refusal:?}");
    assert_eq!(open_from(Some("127.0.0.3"), &url, &[], &[]).await.unwrap_err().status, 401);
    // The gateway without the header, and a gateway's account for another room.
    assert_eq!(open_from(Some(GATEWAY), &url, &[], &[]).await.unwrap_err(), Refused { status: 401, body: "the gateway sent no identity\n".into() });
    let other = open_from(Some(GATEWAY), &server.ws("/rooms/chat/globex"), &account, &[]).await.unwrap_err();
    assert_eq!(other.status, 403);
    // Kinds left public are untouched.
    assert!(open(&server.ws("/rooms/echo/x"), &[], &[]).await.is_ok());
}

/// A plain HTTP/1.1 GET from a chosen local address; the status.
async fn http_get_from(local: &str, addr: &str, path: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(edge::WAIT, stream.read_to_string(&mut out)).await.expect("answered in time").unwrap();
    out[9..12].parse().unwrap()
}

#[tokio::test]
async fn the_http_api_behind_the_gateway_takes_its_header_from_it_only() {
    let server = ServerProcess::start_with(&["--memory", "--trusted-proxy", GATEWAY, "--auth-api", "trusted-header"]);
    let account = "X-Switchboard-Account: acme\r\n";
    assert_eq!(http_get_from(GATEWAY, &server.addr, "/api/stats", account).await, 200);
    assert_eq!(http_get_from(GATEWAY, &server.addr, "/api/stats", "").await, 401);
    assert_eq!(http_get_from("127.0.0.1", &server.addr, "/api/stats", account).await, 401);
    assert_eq!(http_get_from("127.0.0.1", &server.addr, "/healthz", "").await, 200);
    // WebSockets stay public: only the API's mode was set.
    assert!(open(&server.ws("/rooms/echo/x"), &[], &[]).await.is_ok());
}

#[tokio::test]
async fn a_server_in_trusted_header_mode_without_trusted_proxies_does_not_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--memory", "--auth", "trusted-header"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--trusted-proxy"));
}

#[tokio::test]
async fn forward_mode_admits_what_the_backend_admits_and_passes_its_refusals_on() {
    let backend = AuthBackend::start("x-switchboard-account").await;
    let url = format!("http://{}/auth/check", backend.addr);
    let server = ServerProcess::start_with(&[
        "--memory",
        "--auth-kind",
        "chat=forward",
        "--auth-room-is-subject",
        "chat",
        "--auth-forward-url",
        &url,
        "--auth-forward-timeout",
        "1s",
    ]);
    let room = server.ws("/rooms/chat/acme");

    let cookie = [("cookie", "theme=dark; session=acme"), ("authorization", "Basic YWNtZTpwdw==")];
    let (mut ws, _) = open(&format!("{room}?token=should-not-travel"), &cookie, &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme");
    let seen = backend.seen();
    let head = seen.last().unwrap();
    assert!(head.starts_with("GET /auth/check HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("theme=dark; session=acme"), "the cookie is forwarded: {head}");
    assert!(head.contains("Basic YWNtZTpwdw=="), "the authorization is forwarded: {head}");
    assert!(head.contains("/rooms/chat/acme?token=REDACTED"), "the original URI, without the token: {head}");
    assert!(!head.contains("should-not-travel"), "{head}");

    let refused = |status: u16, body: &str| Refused { status, body: format!("{body}\n") };
    assert_eq!(open(&room, &[], &[]).await.unwrap_err(), refused(401, "refused by the auth backend"));
    assert_eq!(open(&room, &[("cookie", "session=banned")], &[]).await.unwrap_err(), refused(403, "refused by the auth backend"));
    assert_eq!(open(&room, &[("cookie", "session=slow")], &[]).await.unwrap_err(), refused(503, "the auth backend did not answer in time"));
    assert_eq!(open(&room, &[("cookie", "session=no-header")], &[]).await.unwrap_err(), refused(503, "the auth backend answered without an identity"));
    // The backend admits globex, but not into acme's room.
    assert_eq!(open(&room, &[("cookie", "session=globex")], &[]).await.unwrap_err().status, 403);

    // Every refusal is counted by its kind in /api/stats.
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /api/stats HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut out).await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    let refused = &stats["refused"];
    assert_eq!(
        (refused["unauthenticated"].as_u64(), refused["forbidden"].as_u64(), refused["auth_unavailable"].as_u64()),
        (Some(1), Some(2), Some(2)),
        "{stats}"
    );
}

#[tokio::test]
async fn forward_mode_with_the_backend_down_is_503() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/check");
    let server = ServerProcess::start_with(&["--memory", "--auth", "forward", "--auth-forward-url", &url]);
    let refusal = open(&server.ws("/rooms/echo/x"), &[("cookie", "session=acme")], &[]).await.unwrap_err();
    assert_eq!(refusal, Refused { status: 503, body: "the auth backend is unavailable\n".into() });
}
