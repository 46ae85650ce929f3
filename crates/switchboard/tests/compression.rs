//! permessage-deflate against the real binary, on the wire: what each policy
//! answers, the threshold, a broadcast to compressing and plain members, a
//! payload cut inside a deflate block, and memory after decompression bombs.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::ServerProcess;
use switchboard_proto::deflate::{Compressor, Decompressor, DeflateConfig};
use switchboard_proto::frame::{encode_masked_frame, FrameHeader, OpCode};
use switchboard_proto::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// What Chromium sends.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket client on a bare socket, to see frames as they are (RSV1).
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    /// The server's Sec-WebSocket-Extensions answer ("" without one).
    agreed: String,
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    rsv1: bool,
    opcode: OpCode,
    payload: Vec<u8>,
}

impl Raw {
    async fn open(server: &ServerProcess, path: &str, offer: Option<&str>) -> Raw {
        let mut stream = TcpStream::connect(&server.addr).await.unwrap();
        let extension = offer.map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n")).unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extension}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = tokio::time::timeout(WAIT, stream.read_buf(&mut buf)).await.expect("handshake in time").unwrap();
            assert!(n > 0, "closed during the handshake");
        };
        let head = String::from_utf8(buf.split_to(end).to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let agreed = head
            .lines()
            .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions")).map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_default();
        Raw { stream, buf, agreed }
    }

    /// Sends one masked frame (`first`: FIN, RSV1 and opcode bits), framed
    /// by the engine's client-side encoder.
    async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let opcode = OpCode::from_bits(first & 0x0f).unwrap();
        let mut out = BytesMut::new();
        encode_masked_frame(opcode, first & 0x80 != 0, first & 0x40 != 0, payload, [0x5a, 0x17, 0xc3, 0x08], &mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    async fn send_text(&mut self, text: &str) {
        self.send_frame(0x81, text.as_bytes()).await;
    }

    /// The next frame, or `None` when the server closed the socket.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((header, len)) = FrameHeader::parse(&self.buf).unwrap() {
                let total = len + header.payload_len as usize;
                if self.buf.len() >= total {
                    let bytes = self.buf.split_to(total);
                    return Some(Frame { rsv1: header.rsv1, opcode: header.opcode, payload: bytes[len..].to_vec() });
                }
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf)).await.expect("a frame in time").unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// The next text or binary frame, skipping what the room says to
    /// everyone that is not JSON from a member (welcome and count lines).
    async fn next_relayed(&mut self) -> Frame {
        loop {
            let frame = self.next_frame().await.expect("a frame");
            let plain = !frame.rsv1 && frame.payload.starts_with(b"{\"type\":");
            if !plain {
                return frame;
            }
        }
    }

    /// The close code the server sent, reading past anything before it.
    async fn close_code(&mut self) -> u16 {
        while let Some(frame) = self.next_frame().await {
            if frame.opcode == OpCode::Control(switchboard_proto::frame::ControlOp::Close) {
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
        panic!("the server closed without a close frame");
    }
}

/// The config both ends agree to under `shared`.
fn shared() -> DeflateConfig {
    DeflateConfig { server_no_context_takeover: true, client_no_context_takeover: true, server_max_window_bits: 15, client_max_window_bits: 15 }
}

fn inflate(frame: &Frame) -> Vec<u8> {
    assert!(frame.rsv1, "a compressed frame");
    Decompressor::new(&shared(), Role::Client).decompress(&frame.payload, 1 << 24).expect("inflates").to_vec()
}

fn json_text(len: usize) -> String {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < len - 40 {
        text.push_str(&format!("{{\"id\":{i},\"name\":\"user{}\"}},", i % 13));
        i += 1;
    }
    text.push_str("{}]");
    text
}

#[tokio::test]
async fn each_policy_answers_the_browser_offer_as_documented() {
    for (policy, answer) in [
        ("off", ""),
        ("shared", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ("dedicated", "permessage-deflate; client_no_context_takeover"),
    ] {
        let server = ServerProcess::start_with(&["--memory", "--compression", policy]);
        let raw = Raw::open(&server, "/rooms/echo/policy", Some(BROWSER_OFFER)).await;
        assert_eq!(raw.agreed, answer, "--compression {policy}");
    }
}

#[tokio::test]
async fn a_room_kind_can_have_its_own_policy() {
    let server = ServerProcess::start_with(&["--memory", "--compression", "off", "--compression-kind", "echo=shared"]);
    assert!(Raw::open(&server, "/rooms/echo/k", Some(BROWSER_OFFER)).await.agreed.starts_with("permessage-deflate"));
    assert_eq!(Raw::open(&server, "/rooms/broadcast/k", Some(BROWSER_OFFER)).await.agreed, "");
}

#[tokio::test]
async fn messages_below_the_threshold_go_out_uncompressed() {
    let server = ServerProcess::start_with(&["--memory", "--compression-threshold", "200"]);
    let mut raw = Raw::open(&server, "/rooms/echo/threshold", Some(BROWSER_OFFER)).await;
    let small = "x".repeat(199);
    raw.send_text(&small).await;
    let frame = raw.next_frame().await.unwrap();
    assert!(!frame.rsv1, "199 bytes go out as they are");
    assert_eq!(frame.payload, small.as_bytes());
    let large = json_text(4000);
    raw.send_text(&large).await;
    let frame = raw.next_frame().await.unwrap();
    assert!(frame.payload.len() < large.len() / 2, "compressed: {} of {} bytes", frame.payload.len(), large.len());
    assert_eq!(inflate(&frame), large.as_bytes());
    // The client's own compressed message comes back too.
    let compressed = Compressor::new(&shared(), Role::Client, 6).compress(large.as_bytes());
    raw.send_frame(0xc1, &compressed).await;
    assert_eq!(inflate(&raw.next_frame().await.unwrap()), large.as_bytes());
}

#[tokio::test]
async fn a_broadcast_reaches_compressing_and_plain_members_each_in_a_frame_it_can_read() {
    let server = ServerProcess::start();
    let path = "/rooms/broadcast/mix";
    let mut sender = Raw::open(&server, path, None).await;
    let mut compressing = Vec::new();
    for _ in 0..3 {
        let raw = Raw::open(&server, path, Some(BROWSER_OFFER)).await;
        assert!(raw.agreed.contains("server_no_context_takeover"));
        compressing.push(raw);
    }
    let mut plain = vec![Raw::open(&server, path, None).await, Raw::open(&server, path, Some("x-webkit-deflate-frame")).await];
    assert!(plain.iter().all(|raw| raw.agreed.is_empty()));
    // Let every join settle (the welcome and counts arrive first).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, len) in [3000, 70_000].into_iter().enumerate() {
        let text = format!("{i}{}", json_text(len));
        sender.send_text(&text).await;
        let mut compressed_frames = Vec::new();
        for raw in &mut compressing {
            let frame = raw.next_relayed().await;
            assert_eq!(inflate(&frame), text.as_bytes());
            compressed_frames.push(frame.payload);
        }
        assert!(compressed_frames.windows(2).all(|w| w[0] == w[1]), "one compression, the same bytes for every member");
        for raw in &mut plain {
            let frame = raw.next_relayed().await;
            assert!(!frame.rsv1);
            assert_eq!(frame.payload, text.as_bytes());
        }
    }
    // A batch of small messages (below the threshold) goes out plain to all.
    sender.send_text("{\"hi\":1}").await;
    for raw in compressing.iter_mut().chain(plain.iter_mut()) {
        let frame = raw.next_relayed().await;
        assert_eq!((frame.rsv1, &frame.payload[..]), (false, &b"{\"hi\":1}"[..]));
    }
}

#[tokio::test]
async fn a_payload_cut_inside_a_deflate_block_closes_with_1002() {
    let server = ServerProcess::start();
    let text = json_text(2000);
    let whole = Compressor::new(&shared(), Role::Client, 6).compress(text.as_bytes());
    let mut raw = Raw::open(&server, "/rooms/echo/cut", Some(BROWSER_OFFER)).await;
    raw.send_frame(0xc1, &whole[..whole.len() / 2]).await;
    raw.send_frame(0xc1, &whole).await;
    assert_eq!(raw.close_code().await, 1002);
}

/// A /proc/PID/status field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn decompression_bombs_cost_no_memory_for_their_output() {
    let server = ServerProcess::start();
    // 64 MiB of zeros against the 16 MiB message cap: 64 KiB on the wire.
    let bomb = Compressor::new(&shared(), Role::Client, 9).compress(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 << 10);
    // Warm up: connections, the thread's codecs, a legitimate large message.
    for _ in 0..4 {
        let mut raw = Raw::open(&server, "/rooms/echo/warm", Some(BROWSER_OFFER)).await;
        let text = json_text(100_000);
        raw.send_frame(0xc1, &Compressor::new(&shared(), Role::Client, 6).compress(text.as_bytes())).await;
        assert_eq!(inflate(&raw.next_frame().await.unwrap()), text.as_bytes());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.pid();
    let (rss_before, peak_before) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    for round in 0..20 {
        let mut raw = Raw::open(&server, &format!("/rooms/echo/bomb{round}"), Some(BROWSER_OFFER)).await;
        raw.send_frame(0xc2, &bomb).await;
        assert_eq!(raw.close_code().await, 1009, "bomb {round}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, peak_after) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    eprintln!("VmRSS {rss_before} -> {rss_after} KiB, VmHWM {peak_before} -> {peak_after} KiB");
    // The cap is 16 MiB: inflating up to it even once would lift the peak by that much.
    assert!(peak_after.saturating_sub(rss_before) < 8 << 10, "peak RSS rose from {rss_before} to {peak_after} KiB");
    assert!(rss_after.saturating_sub(rss_before) < 4 << 10, "RSS {rss_before} -> {rss_after} KiB after 20 bombs");
}

#[tokio::test]
async fn an_idle_dedicated_compressor_is_freed_and_later_messages_still_inflate_in_a_real_client() {
    use switchboard_client::{Client, ClientOptions, DeflateOptions};
    let server = ServerProcess::start_with(&["--memory", "--compression", "dedicated", "--hibernate-after", "1s"]);
    let pid = server.pid();
    let options = ClientOptions { deflate: Some(DeflateOptions::browser()), ..ClientOptions::default() };
    let base = status_kib(pid, "VmRSS:");
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut client = Client::connect_with(&server.ws(&format!("/rooms/echo/free-{}", i % 8)), options.clone()).await.unwrap();
        assert!(client.is_compressed());
        echo(&mut client, json_text(3000)).await;
        clients.push(client);
    }
    let busy = status_kib(pid, "VmRSS:");
    assert_eq!(compressors(&server).await, 200, "each echo made its connection's compressor");
    // The rooms hibernate after 1 s without events and free them.
    let mut held = 200;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        held = compressors(&server).await;
        if held == 0 {
            break;
        }
    }
    assert_eq!(held, 0, "compressors still held once every room hibernated");
    eprintln!("VmRSS {base} KiB, {busy} KiB with 200 compressors, {} KiB once freed", status_kib(pid, "VmRSS:"));
    // Messages after the release come from a fresh compressor, which the
    // client's inflater (keeping its window) decodes; the next one uses
    // the new compressor's context again.
    for (i, client) in clients.iter_mut().enumerate() {
        echo(client, format!("{i}{}", json_text(3000))).await;
        echo(client, format!("again {i}{}", json_text(2500))).await;
    }
    assert_eq!(compressors(&server).await, 200);
    drop(clients);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = compressors(&server).await;
        if held == 0 {
            break;
        }
    }
    assert_eq!(held, 0, "a closed connection's compressor is not counted");
}

/// The server's `switchboard_deflate_compressors` gauge.
async fn compressors(server: &ServerProcess) -> u64 {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut body)).await.expect("metrics in time").unwrap();
    body.lines()
        .find_map(|line| line.strip_prefix("switchboard_deflate_compressors "))
        .unwrap_or_else(|| panic!("no compressor gauge in {body}"))
        .trim()
        .parse()
        .unwrap()
}

/// Sends `text` and checks that it comes back whole.
async fn echo(client: &mut switchboard_client::Client, text: String) {
    client.send(&switchboard_client::Message::text(text.clone())).await.unwrap();
    let back = tokio::time::timeout(WAIT, client.recv_message()).await.expect("echo in time").unwrap();
    assert_eq!(back.payload(), text.as_bytes());
}
