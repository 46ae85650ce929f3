//! Token mode against the real binary (docs/auth.md): a token in each
//! place a client can put it admits and the room sees its subject; missing,
//! wrong-signature, expired, not-yet-valid and malformed tokens are refused
//! with 401 before the 101, another account's room with 403; an open
//! connection is closed with 4001 when its token expires; public keys
//! (EdDSA) verify; the HTTP API asks for a token with --auth-api token;
//! `switchboard token` mints one the server accepts; and no token or secret
//! ever reaches the log.

mod common;
#[path = "support/edge.rs"]
mod edge;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ServerProcess;
use edge::{chat_name, close_frame, echo_round_trip, good, hs256, now, open, Refused, SECRET};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TokenServer {
    server: ServerProcess,
    secret_file: String,
    _dir: tempfile::TempDir,
}

/// A server with chat and the HTTP API in token mode, chat rooms named for
/// their subject, echo public.
fn start(extra: &[&str]) -> TokenServer {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret_file = secret_file.to_str().unwrap().to_owned();
    let mut flags = vec!["--memory", "--auth-kind", "chat=token", "--auth-room-is-subject", "chat", "--jwt-secret-file", &secret_file];
    flags.extend_from_slice(extra);
    let server = ServerProcess::start_with(&flags);
    TokenServer { server, secret_file, _dir: dir }
}

#[tokio::test]
async fn a_good_token_in_every_carrier_admits_and_the_room_sees_its_subject() {
    let s = start(&[]);
    let url = s.server.ws("/rooms/chat/acme");
    let token = good("acme");

    let (mut ws, _) = open(&format!("{url}?token={token}"), &[], &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme", "?token=");
    let (mut ws, _) = open(&url, &[("authorization", &format!("Bearer {token}"))], &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme", "Authorization");
    let (mut ws, _) = open(&url, &[("cookie", &format!("theme=dark; switchboard_token={token}"))], &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme", "cookie");
    // The subprotocol form: the kind's protocol is selected, never the token.
    let offered = format!("switchboard.token.{token}");
    let (mut ws, protocol) = open(&url, &[], &["json", &offered]).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("json"));
    assert_eq!(chat_name(&mut ws).await, "acme", "subprotocol");
    // Offering only the token and the bare marker: the marker is selected.
    let (mut ws, protocol) = open(&url, &[], &[&offered, "switchboard.token"]).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("switchboard.token"));
    assert_eq!(chat_name(&mut ws).await, "acme", "subprotocol with the marker");

    // Echo stays public: no token needed.
    let (mut ws, _) = open(&s.server.ws("/rooms/echo/e"), &[], &[]).await.unwrap();
    echo_round_trip(&mut ws, "still public").await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_and_another_account_with_403() {
    let s = start(&[]);
    let url = s.server.ws("/rooms/chat/acme");
    let t = now();
    let refused = |status: u16, body: &str| Refused { status, body: format!("{body}\n") };
    let with = |token: String| format!("{url}?token={token}");

    assert_eq!(open(&url, &[], &[]).await.unwrap_err(), refused(401, "a token is required"));
    let wrong_signature = hs256(json!({ "sub": "acme", "exp": t + 3600 }), "another secret, also long enough to be used");
    assert_eq!(open(&with(wrong_signature), &[], &[]).await.unwrap_err(), refused(401, "the token's signature is invalid"));
    let expired = hs256(json!({ "sub": "acme", "exp": t - 5 }), SECRET);
    assert_eq!(open(&with(expired), &[], &[]).await.unwrap_err(), refused(401, "the token has expired"));
    let not_yet = hs256(json!({ "sub": "acme", "exp": t + 3600, "nbf": t + 600 }), SECRET);
    assert_eq!(open(&with(not_yet), &[], &[]).await.unwrap_err(), refused(401, "the token is not valid yet (nbf)"));
    let no_exp = hs256(json!({ "sub": "acme" }), SECRET);
    assert_eq!(open(&with(no_exp), &[], &[]).await.unwrap_err(), refused(401, "the token has no expiry (exp)"));
    assert_eq!(open(&with("garbage".into()), &[], &[]).await.unwrap_err(), refused(401, "the token is malformed"));
    // A valid token for another account.
    let other = open(&s.server.ws("/rooms/chat/globex"), &[("authorization", &format!("Bearer {}", good("acme")))], &[]).await.unwrap_err();
    assert_eq!(other, refused(403, "this identity may not enter chat/globex"));
}

#[tokio::test]
async fn an_open_connection_is_closed_with_4001_when_its_token_expires() {
    let s = start(&["--auth-kind", "echo=token"]);
    let token = hs256(json!({ "sub": "acme", "exp": now() + 2 }), SECRET);
    let (mut ws, _) = open(&format!("{}?token={token}", s.server.ws("/rooms/echo/x")), &[], &[]).await.unwrap();
    echo_round_trip(&mut ws, "before expiry").await;
    let (code, reason) = close_frame(&mut ws, Duration::from_secs(10)).await;
    assert_eq!((u16::from(code), reason.as_str()), (4001, "token expired"));
    // A connection with a longer token stays open meanwhile.
    let (mut long, _) = open(&format!("{}?token={}", s.server.ws("/rooms/echo/x"), good("acme")), &[], &[]).await.unwrap();
    echo_round_trip(&mut long, "still here").await;
}

#[tokio::test]
async fn public_keys_verify_tokens_of_their_algorithm_only() {
    for (name, algorithm, flag) in [("ed25519", Algorithm::EdDSA, "EdDSA"), ("es256", Algorithm::ES256, "ES256"), ("rs256", Algorithm::RS256, "RS256")] {
        let public = edge::test_public_key_path(name);
        let server = ServerProcess::start_with(&["--memory", "--auth", "token", "--jwt-public-key-file", &public, "--jwt-algorithm", flag]);
        let url = server.ws("/rooms/echo/k");
        let token = edge::signed_with_test_key(algorithm, json!({ "sub": "acme", "exp": now() + 3600 }));
        let (mut ws, _) = open(&format!("{url}?token={token}"), &[], &[]).await.unwrap_or_else(|e| panic!("{flag}: {e:?}"));
        echo_round_trip(&mut ws, "signed with a private key").await;
        // No secret is configured, so an HS256 token is not even tried.
        let refusal = open(&format!("{url}?token={}", good("acme")), &[], &[]).await.unwrap_err();
        assert_eq!(refusal, Refused { status: 401, body: "the token's algorithm is not accepted\n".into() }, "{flag}");
    }
}

#[tokio::test]
async fn unusable_keys_stop_the_server_at_start_with_the_file_named() {
    let serve = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--memory", "--auth", "token"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let rsa = edge::test_public_key_path("rs256");
    assert!(serve(&["--jwt-public-key-file", &rsa, "--jwt-algorithm", "ES256"]).contains("rs256-test-public.pem is not a PEM"));
    assert!(serve(&["--jwt-public-key-file", &rsa]).contains("--jwt-algorithm"));
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "too short").unwrap();
    let err = serve(&["--jwt-secret-file", short.to_str().unwrap()]);
    assert!(err.contains("at least 32 bytes") && !err.contains("too short"), "{err}");
    assert!(serve(&["--jwt-secret-file", "/nonexistent/secret"]).contains("cannot read the JWT secret file"));
}

/// A plain HTTP/1.1 GET; the status and body.
async fn http_get(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(edge::WAIT, stream.read_to_end(&mut out)).await.expect("answered in time").unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_http_api_asks_for_a_token_with_auth_api_token() {
    let s = start(&["--auth-api", "token"]);
    let addr = &s.server.addr;
    // A live room (HTTP does not start rooms); its WebSocket kind is public.
    let (_member, _) = open(&s.server.ws("/rooms/broadcast/news"), &[], &[]).await.unwrap();
    let (status, body) = http_get(addr, "/api/rooms/broadcast/news/_stats", "").await;
    assert_eq!((status, body.as_str()), (401, "a token is required\n"));
    let bearer = format!("Authorization: Bearer {}\r\n", good("acme"));
    assert_eq!(http_get(addr, "/api/rooms/broadcast/news/_stats", &bearer).await.0, 200);
    assert_eq!(http_get(addr, "/api/call/ice", "").await.0, 401);
    assert_eq!(http_get(addr, "/api/call/ice", &bearer).await.0, 200);
    assert_eq!(http_get(addr, "/api/stats", "").await.0, 401);
    assert_eq!(http_get(addr, "/api/stats", &bearer).await.0, 200);
    // Rooms named for subjects: another account's room is 403 here too.
    assert_eq!(http_get(addr, "/api/rooms/chat/globex/_stats", &bearer).await.0, 403);
    // Pages and health checks stay public.
    assert_eq!(http_get(addr, "/healthz", "").await.0, 200);
}

#[tokio::test]
async fn switchboard_token_mints_a_token_the_server_accepts() {
    let s = start(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--account", "acme", "--ttl", "1h", "--jwt-secret-file", &s.secret_file])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (mut ws, _) = open(&format!("{}?token={token}", s.server.ws("/rooms/chat/acme")), &[], &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme");
    // Without the secret it explains and fails.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--account", "acme", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--jwt-secret-file"));
}

#[tokio::test]
async fn token_mode_makes_its_own_secret_in_the_data_dir_and_token_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = ServerProcess::start_with(&["--data-dir", data, "--auth-kind", "echo=token"]);
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard")).args(["token", "--account", "acme", "--data-dir", data]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (mut ws, _) = open(&format!("{}?token={token}", server.ws("/rooms/echo/d")), &[], &[]).await.unwrap();
    echo_round_trip(&mut ws, "with the made secret").await;
}

#[tokio::test]
async fn no_token_or_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let log_path = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--memory", "--auth", "token", "--jwt-secret-file", secret_file.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("switchboard listening on http://").unwrap().to_owned();
    let token = good("acme");
    let expired = hs256(json!({ "sub": "acme", "exp": now() - 5 }), SECRET);
    let (mut ws, _) = open(&format!("ws://{addr}/rooms/echo/l?token={token}"), &[], &[]).await.unwrap();
    echo_round_trip(&mut ws, "hello").await;
    drop(ws);
    let _ = open(&format!("ws://{addr}/rooms/echo/l?token={expired}"), &[], &[]).await.unwrap_err();
    let _ = open(&format!("ws://{addr}/rooms/echo/l"), &[("authorization", &format!("Bearer {expired}"))], &[]).await.unwrap_err();
    let _ = http_get(&addr, &format!("/api/rooms/echo/l/_stats?token={token}"), "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.is_empty(), "the server logs at trace level");
    for secret in [token.as_str(), expired.as_str(), SECRET] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
        // Not even the signature part alone.
        assert!(!log.contains(secret.rsplit('.').next().unwrap()), "a signature in the log:\n{log}");
    }
}
