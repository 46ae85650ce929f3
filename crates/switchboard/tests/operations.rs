//! What an operator sees of a running server: `/metrics` parsed by an
//! independent OpenMetrics parser (Python's `prometheus_client`, installed
//! by `scripts/test.sh --part deps`) with its counters moving as traffic
//! flows, `/readyz` and the drain on SIGTERM, and the access logs (JSON
//! lines, no query strings or tokens).

mod common;
#[path = "support/openmetrics.rs"]
mod openmetrics;
#[allow(dead_code)] // the certificate's DER is for the TLS tests
#[path = "support/test_ca.rs"]
mod test_ca;

use std::collections::HashMap;
use std::time::Duration;

use common::ServerProcess;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A token a client puts in its query string; it must never reach a log.
const SECRET: &str = "sekrit-token-4f1c9a";

/// One GET on a fresh connection: (status, body).
async fn get(addr: &str, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await.expect("answered in time").unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

async fn scrape(addr: &str) -> HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    openmetrics::parse(&body)
}

fn value(metrics: &HashMap<String, f64>, sample: &str) -> f64 {
    metrics.get(sample).copied().unwrap_or(0.0)
}

/// Reads the log file until `done` holds for its lines (bounded).
async fn wait_for_log(path: &std::path::Path, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Whole lines only: a batch of them may be being written.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        let lines: Vec<serde_json::Value> = whole
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}")))
            .collect();
        if done(&lines) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the expected log lines did not appear:\n{}", std::fs::read_to_string(path).unwrap_or_default());
}

fn sessions_in(lines: &[serde_json::Value], room: &str) -> Vec<serde_json::Value> {
    lines.iter().filter(|l| l["target"] == "access" && l["kind"] == "websocket" && l["room"] == room).cloned().collect()
}

#[tokio::test]
async fn metrics_move_with_traffic_and_logs_are_json_without_secrets() {
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let server = ServerProcess::start_logging(&["--memory", "--log-format", "json"], log_file);

    let before = scrape(&server.addr).await;
    for family in ["process_resident_memory_bytes{}", "process_open_fds{}", "process_cpu_seconds_total{}", "switchboard_rooms_live{}"] {
        assert!(before.contains_key(family), "{family} missing from {before:?}");
    }

    // Three clients echo messages; two leave with 1000, one with 4001.
    const MESSAGES: usize = 20;
    const PAYLOAD: usize = 100;
    let mut payload_bytes = 0;
    for (c, code) in [1000u16, 1000, 4001].into_iter().enumerate() {
        let url = server.ws(&format!("/rooms/echo/ops?token={SECRET}"));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        for i in 0..MESSAGES {
            let text = format!("{c}:{i}:{}", "x".repeat(PAYLOAD));
            payload_bytes += text.len();
            ws.send(Message::text(text.clone())).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
        }
        ws.send(Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: "bye".into() }))).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    }
    // Refusals: an unknown room kind (404) and an old protocol version (426).
    let (status, _) = get(&server.addr, "/api/rooms/nope/x").await;
    assert_eq!(status, 404);
    let mut old = TcpStream::connect(&server.addr).await.unwrap();
    old.write_all(b"GET /rooms/echo/ops HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), old.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 426"), "{}", String::from_utf8_lossy(&answer));
    let unknown_kind = tokio_tungstenite::connect_async(server.ws("/rooms/nope/x")).await;
    assert!(unknown_kind.is_err(), "an unknown room kind is refused");
    // An HTTP request with a token in its query string.
    assert_eq!(get(&server.addr, &format!("/healthz?token={SECRET}")).await.0, 200);

    // The sessions end on the server shortly after the clients saw the
    // close, and an event loop writes its access lines up to 100 ms late
    // (each loop its own): wait for every line asserted below, then read
    // the counters.
    let lines = wait_for_log(&log_path, |lines| {
        let http = |path: &str| lines.iter().any(|l| l["target"] == "access" && l["kind"] == "http" && l["path"] == path);
        sessions_in(lines, "echo/ops").len() == 3 && http("/healthz") && http("/api/rooms/nope/x")
    })
    .await;
    let after = scrape(&server.addr).await;
    let delta = |sample: &str| value(&after, sample) - value(&before, sample);
    assert_eq!(delta("switchboard_connections_opened_total{}"), 3.0);
    assert_eq!(value(&after, "switchboard_connections_open{}"), 0.0);
    assert_eq!(delta(r#"switchboard_connections_closed_total{outcome="clean"}"#), 3.0);
    assert_eq!(delta(r#"switchboard_connections_closed_by_code_total{code="1000"}"#), 2.0);
    assert_eq!(delta(r#"switchboard_connections_closed_by_code_total{code="4xxx"}"#), 1.0);
    assert_eq!(delta("switchboard_messages_received_total{}"), (3 * MESSAGES) as f64);
    // Masked client frames: payload plus at least 6 header bytes each.
    let received = delta("switchboard_received_bytes_total{}");
    assert!(received >= (payload_bytes + 6 * 3 * MESSAGES) as f64, "received {received} bytes for {payload_bytes} of payload");
    let sent = delta("switchboard_sent_bytes_total{}");
    assert!(sent >= (payload_bytes + 2 * 3 * MESSAGES) as f64 && sent < received, "sent {sent}, received {received}");
    assert_eq!(delta(r#"switchboard_handshake_refusals_total{reason="wrong_version"}"#), 1.0);
    assert_eq!(delta(r#"switchboard_handshake_refusals_total{reason="not_found"}"#), 1.0);
    assert!(value(&after, "switchboard_room_wakeups_total{}") >= 1.0);
    assert!(value(&after, "switchboard_rooms_live{}") >= 1.0);
    assert_eq!(delta("switchboard_outbound_cutoffs_total{}"), 0.0);

    // The access lines: every HTTP request, each session with its traffic.
    let sessions = sessions_in(&lines, "echo/ops");
    let mut codes: Vec<String> = sessions.iter().map(|s| s["close_code"].as_str().unwrap().to_owned()).collect();
    codes.sort();
    assert_eq!(codes, ["1000", "1000", "4001"]);
    for session in &sessions {
        assert!(session["bytes_in"].as_u64().unwrap() > (MESSAGES * PAYLOAD) as u64, "{session}");
        assert!(session["bytes_out"].as_u64().unwrap() > (MESSAGES * PAYLOAD) as u64, "{session}");
        assert!(session["duration_ms"].as_f64().is_some() && session["client"] == "127.0.0.1", "{session}");
    }
    let http: Vec<&serde_json::Value> = lines.iter().filter(|l| l["target"] == "access" && l["kind"] == "http").collect();
    assert!(http.iter().any(|l| l["path"] == "/healthz" && l["status"] == 200 && l["method"] == "GET"), "{http:?}");
    assert!(http.iter().any(|l| l["path"] == "/api/rooms/nope/x" && l["status"] == 404), "{http:?}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains(SECRET), "a token reached the log:\n{text}");
    assert!(!text.contains("token="), "a query string reached the log:\n{text}");
}

#[tokio::test]
async fn sigterm_drains_readyz_first_then_the_listener_then_the_clients_with_1001() {
    let mut server = ServerProcess::start_with(&["--memory", "--drain-grace", "3s", "--drain-timeout", "3s"]);
    assert_eq!(get(&server.addr, "/readyz").await, (200, "ready\n".to_owned()));
    let (mut staying, _) = tokio_tungstenite::connect_async(server.ws("/rooms/echo/drain")).await.unwrap();

    server.send_sigterm();
    // Not ready at once (polled only until the signal is handled)...
    let mut readyz = get(&server.addr, "/readyz").await;
    for _ in 0..40 {
        if readyz.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        readyz = get(&server.addr, "/readyz").await;
    }
    assert_eq!(readyz.0, 503, "{readyz:?}");
    assert!(readyz.1.contains("draining"), "{readyz:?}");
    // ...while the listener still serves: a new client is welcome, and
    // the liveness probe stays 200.
    let (mut late, _) = tokio_tungstenite::connect_async(server.ws("/rooms/echo/drain")).await.expect("accepted during the grace period");
    late.send(Message::text("still here")).await.unwrap();
    assert_eq!(late.next().await.unwrap().unwrap(), Message::text("still here"));
    assert_eq!(get(&server.addr, "/healthz").await.0, 200);

    // After the grace the listener closes; open clients are served on.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(&server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the listener never closed");
    staying.send(Message::text("served while draining")).await.unwrap();
    assert_eq!(staying.next().await.unwrap().unwrap(), Message::text("served while draining"));

    // The one that leaves goes; the one that stays gets 1001 at the timeout.
    late.close(None).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match staying.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed by the drain timeout");
    assert_eq!(closed.map(|f| f.code), Some(CloseCode::Away));
    while let Some(Ok(_)) = staying.next().await {}
    let exit = tokio::task::spawn_blocking(move || server.wait_exit()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// An event loop's access lines wait there briefly to leave together
/// (docs/operations.md, "Logs"); those of the last sessions before a stop
/// are in the log once the server has exited.
#[tokio::test]
async fn the_last_access_lines_reach_the_log_before_the_server_exits() {
    const SESSIONS: usize = 12;
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut server = ServerProcess::start_logging(&["--memory", "--log-format", "json", "--threads", "2"], log_file);
    for n in 0..SESSIONS {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws("/rooms/echo/last-lines")).await.unwrap();
        ws.send(Message::text(format!("session {n}"))).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("session {n}")));
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    }
    let exit = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    assert_eq!(sessions_in(&lines, "echo/last-lines").len(), SESSIONS, "{text}");
}

#[tokio::test]
async fn text_logs_written_to_a_file_carry_no_colour_codes() {
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let server = ServerProcess::start_logging(&["--memory", "--log-format", "text"], log_file);
    assert_eq!(get(&server.addr, "/healthz").await.0, 200);
    // The access line of that request is the last thing the server writes.
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("/healthz") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.contains("/healthz") && text.contains("INFO"), "no access line for /healthz:\n{text}");
    assert!(!text.contains('\x1b'), "escape codes in a log that is not a terminal:\n{text:?}");
}

/// Each way a TLS handshake fails, driven through a real socket to the TLS
/// listener, shows in /metrics under its reason; a handshake that works
/// counts nowhere.
#[tokio::test]
async fn failed_tls_handshakes_are_counted_by_reason() {
    use rustls::pki_types::ServerName;
    use tokio_rustls::TlsConnector;

    let ca = test_ca::TestCa::new("switchboard test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.server_cert("server").write(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = ServerProcess::start_with(&["--memory", "--listen-tls", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key]);
    let tls_addr = server.tls_addr.clone().expect("the TLS listener's address");
    let failures = |metrics: &HashMap<String, f64>, reason: &str| value(metrics, &format!("switchboard_tls_handshake_failures_total{{reason=\"{reason}\"}}"));
    let before = scrape(&server.addr).await;
    for reason in ["not_tls", "alert", "protocol", "closed", "timeout", "other"] {
        assert_eq!(failures(&before, reason), 0.0, "{reason}");
    }

    // Plain HTTP to the TLS port.
    let mut plain = TcpStream::connect(&tls_addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut answer)).await.expect("closed in time");
    // A client that does not trust the certificate (it sends an alert).
    let stranger = TlsConnector::from(switchboard_client::tls_config(test_ca::TestCa::new("another CA").roots()));
    let tcp = TcpStream::connect(&tls_addr).await.unwrap();
    assert!(stranger.connect(ServerName::try_from("localhost").unwrap(), tcp).await.is_err(), "an untrusted certificate was accepted");
    // A client that offers only h2 (no common ALPN protocol).
    let mut h2_only = (*switchboard_client::tls_config(ca.roots())).clone();
    h2_only.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(&tls_addr).await.unwrap();
    assert!(TlsConnector::from(std::sync::Arc::new(h2_only)).connect(ServerName::try_from("localhost").unwrap(), tcp).await.is_err());
    // A client that connects and leaves without a word.
    drop(TcpStream::connect(&tls_addr).await.unwrap());
    // And one that works.
    let tcp = TcpStream::connect(&tls_addr).await.unwrap();
    let mut good = TlsConnector::from(switchboard_client::tls_config(ca.roots()))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    good.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = good.read_to_end(&mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));

    // The server counts a failure as the handshake ends, around the time
    // the client sees it: wait (bounded) for all four.
    let expected = [("not_tls", 1.0), ("alert", 1.0), ("protocol", 1.0), ("closed", 1.0), ("timeout", 0.0), ("other", 0.0)];
    let mut after = HashMap::new();
    for _ in 0..100 {
        after = scrape(&server.addr).await;
        if expected.iter().all(|(reason, n)| failures(&after, reason) == *n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<(&str, f64)> = expected.iter().map(|(reason, _)| (*reason, failures(&after, reason))).collect();
    panic!("expected {expected:?}, /metrics says {seen:?}");
}
