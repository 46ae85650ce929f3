//! Rooms through real sockets against the real binary: the broadcast room's
//! welcome, counts and relay; ordering; hibernation; storage across restarts
//! and `kill -9`; leaves found by the heartbeat; a slow reader cut off.

mod common;

use std::time::Duration;

use common::ServerProcess;
use switchboard_client::{Client, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn field(message: &Message, name: &str) -> String {
    let text = message.as_text().expect("text");
    let start = text.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("no {name} in {text}")) + name.len() + 3;
    text[start..].chars().take_while(|c| !matches!(c, ',' | '}')).collect::<String>().trim_matches('"').to_owned()
}

/// Joins a broadcast room, returning the client and its welcome.
async fn join(server: &ServerProcess, room: &str) -> (Client, Message) {
    let mut client = Client::connect(&server.ws(&format!("/rooms/broadcast/{room}"))).await.unwrap();
    let welcome = client.recv_message().await.unwrap();
    assert_eq!(field(&welcome, "type"), "welcome");
    (client, welcome)
}

async fn next_count(client: &mut Client) -> u64 {
    loop {
        let message = client.recv_message().await.unwrap();
        if field(&message, "type") == "count" {
            return field(&message, "online").parse().unwrap();
        }
    }
}

/// An HTTP GET on a fresh connection; returns the body.
async fn get(server: &ServerProcess, path: &str) -> String {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn broadcast_welcomes_counts_and_relays_to_everyone_else() {
    let server = ServerProcess::start();
    let (mut a, welcome) = join(&server, "lobby").await;
    assert_eq!(field(&welcome, "online"), "1");
    assert_eq!(next_count(&mut a).await, 1);
    let (mut b, welcome) = join(&server, "lobby").await;
    assert_eq!(field(&welcome, "online"), "2");
    assert_eq!(next_count(&mut a).await, 2);
    assert_eq!(next_count(&mut b).await, 2);

    a.send_text("hello from a").await.unwrap();
    assert_eq!(b.recv_message().await.unwrap(), Message::text("hello from a"));
    b.send_binary(vec![1, 2, 3]).await.unwrap();
    assert_eq!(a.recv_message().await.unwrap(), Message::binary(vec![1, 2, 3]), "a got b's message, not its own echo");

    b.close(None, "").await.unwrap();
    assert_eq!(next_count(&mut a).await, 1, "the leave is announced");
}

#[tokio::test]
async fn messages_from_many_concurrent_clients_keep_each_senders_order() {
    let server = ServerProcess::start();
    let (mut listener, _) = join(&server, "order").await;
    let mut senders = Vec::new();
    for s in 0..8 {
        let url = server.ws("/rooms/broadcast/order");
        senders.push(tokio::spawn(async move {
            let mut client = Client::connect(&url).await.unwrap();
            for i in 0..100 {
                client.queue(&Message::text(format!("{s}:{i}"))).unwrap();
            }
            client.flush().await.unwrap();
            client
        }));
    }
    let mut next = [0u32; 8];
    while next.iter().any(|&n| n < 100) {
        let message = listener.recv_message().await.unwrap();
        let text = message.as_text().unwrap();
        if text.starts_with('{') {
            continue;
        }
        let (s, i) = text.split_once(':').unwrap();
        let (s, i): (usize, u32) = (s.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[s], "sender {s} out of order");
        next[s] += 1;
    }
    for sender in senders {
        drop(sender.await.unwrap());
    }
}

fn wakeups(stats: &str) -> u64 {
    let at = stats.find("\"wakeups\":").expect("wakeups field") + 10;
    stats[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

#[tokio::test]
async fn a_hibernated_room_keeps_its_connections_and_wakes_on_the_next_message() {
    let server = ServerProcess::start_with(&["--memory", "--hibernate-after", "200ms"]);
    let (mut a, _) = join(&server, "sleepy").await;
    let (mut b, _) = join(&server, "sleepy").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asleep = get(&server, "/api/rooms/broadcast/sleepy/_stats").await;
    assert!(asleep.starts_with(r#"{"connections":2,"#) && asleep.ends_with(r#""awake":false}"#), "{asleep}");
    a.send_text("wake up").await.unwrap();
    while b.recv_message().await.unwrap() != Message::text("wake up") {}
    let awake = get(&server, "/api/rooms/broadcast/sleepy/_stats").await;
    assert!(awake.starts_with(r#"{"connections":2,"#) && awake.ends_with(r#""awake":true}"#), "{awake}");
    assert_eq!(wakeups(&awake), wakeups(&asleep) + 1, "woken exactly once, connections intact");
    drop(a);
}

#[tokio::test]
async fn room_storage_survives_a_restart_and_kill_9() {
    let dir = std::env::temp_dir().join(format!("switchboard-test-{}", std::process::id()));
    let flags = ["--data-dir", dir.to_str().unwrap()];
    let mut server = ServerProcess::start_with(&flags);
    for expected in 1..=2 {
        let (client, welcome) = join(&server, "durable").await;
        assert_eq!(field(&welcome, "visits"), expected.to_string());
        client.close(None, "").await.unwrap();
    }
    server.terminate();
    let mut server = ServerProcess::start_with(&flags);
    let (_client, welcome) = join(&server, "durable").await;
    assert_eq!(field(&welcome, "visits"), "3", "kept across a clean restart");
    server.kill9();
    let server = ServerProcess::start_with(&flags);
    let (_client, welcome) = join(&server, "durable").await;
    assert_eq!(field(&welcome, "visits"), "4", "the write before kill -9 was durable");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_dead_peer_found_by_the_heartbeat_leaves_the_room() {
    let server = ServerProcess::start_with(&["--memory", "--ping-interval", "200ms", "--pong-timeout", "300ms"]);
    let (mut alive, _) = join(&server, "hb").await;
    assert_eq!(next_count(&mut alive).await, 1);
    // A peer that completes the handshake, then never reads or answers.
    let mut dead = TcpStream::connect(&server.addr).await.unwrap();
    dead.write_all(b"GET /rooms/broadcast/hb HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    // `alive` answers pings inside recv_message, so only the silent peer is dropped.
    assert_eq!(next_count(&mut alive).await, 2);
    assert_eq!(next_count(&mut alive).await, 1, "the silent peer was dropped and its leave announced");
    drop(dead);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_others_keep_receiving() {
    let server = ServerProcess::start();
    // The slow peer: joins, then never reads again.
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /rooms/broadcast/flood HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    let (mut reader, _) = join(&server, "flood").await;
    let (mut publisher, _) = join(&server, "flood").await;
    let before = rss_kib(server.pid());
    // 64 MiB of broadcasts: 16 times the default 4 MiB outbound limit. The
    // publisher keeps at most 1 MiB ahead of the reading client, so only the
    // stuck peer's queue can overflow.
    let chunk = vec![7u8; 64 * 1024];
    let sent = 1024u32;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u32);
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < sent {
            if let Message::Binary(b) = reader.recv_message().await.unwrap() {
                assert_eq!(b.len(), 64 * 1024);
                got += 1;
                let _ = progress_tx.send(got);
            }
        }
        reader
    });
    for i in 0..sent {
        progress.wait_for(|got| i < got + 16).await.unwrap();
        publisher.send_binary(chunk.clone()).await.unwrap();
    }
    let _reader = tokio::time::timeout(Duration::from_secs(60), reading).await.expect("the reading client got everything").unwrap();
    let grown = rss_kib(server.pid()).saturating_sub(before);
    assert!(grown < 48 * 1024, "server RSS grew by {grown} KiB for 64 MiB sent to a stuck reader");
    // The slow peer was closed: draining its socket ends in EOF or a reset.
    let mut sink = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match slow.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow reader's connection was closed");
}
