//! Event loops, the default runtime, against the real binary: the kernel
//! spreads connections over every loop's thread, a room's members on
//! different loops hear each other, and a SIGTERM closes the connections
//! of every loop and keeps what rooms on every loop stored. The
//! work-stealing runtime serves the same traffic. A second server on the
//! same address is refused, as without `SO_REUSEPORT`.

mod common;
#[path = "support/config_cli.rs"]
mod config_cli;

use std::time::{Duration, Instant};

use common::ServerProcess;
use config_cli::{run_bounded, switchboard};
use switchboard_client::{Client, ClientError, Message};

/// The server's threads whose name starts with `prefix`, by thread id,
/// with their voluntary context switches (each a wait for the next event).
fn threads(pid: u32, prefix: &str) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let switches = status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:")).map_or(0, |n| n.trim().parse().unwrap());
        found.push((task.file_name().to_string_lossy().into_owned(), switches));
    }
    found.sort();
    found
}

/// The threads named `prefix…` once `enough` of them have started (a
/// thread takes its name when it first runs), or as they are after 10 s.
fn started_threads(pid: u32, prefix: &str, enough: impl Fn(usize) -> bool) -> Vec<(String, u64)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = threads(pid, prefix);
        if enough(found.len()) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The loops beyond the main thread, once all `count` have started.
fn loop_threads(pid: u32, count: usize) -> Vec<(String, u64)> {
    let found = started_threads(pid, "event-loop-", |n| n == count);
    assert_eq!(found.len(), count, "event loop threads");
    found
}

/// The text of the next message that is not the broadcast room's
/// welcome or member count.
async fn next_relayed(client: &mut Client) -> String {
    loop {
        let message = client.recv_message().await.unwrap();
        let text = message.as_text().expect("text").to_owned();
        if !text.starts_with("{\"type\":\"welcome\"") && !text.starts_with("{\"type\":\"count\"") {
            return text;
        }
    }
}

#[tokio::test]
async fn connections_spread_over_every_loop_and_a_room_spans_them() {
    let server = ServerProcess::start_with(&["--memory", "--threads", "4"]);
    let before = loop_threads(server.pid(), 3);

    // 64 connections from as many ports: the kernel hashes each to one of
    // four sockets, so every loop gets some (all but certainly: a loop is
    // left out with probability (3/4)^64 each).
    let mut clients = Vec::new();
    for i in 0..64 {
        clients.push(Client::connect(&server.ws(&format!("/rooms/echo/spread-{i}"))).await.unwrap());
    }
    for round in 0..20 {
        for client in &mut clients {
            client.send_text(&format!("round {round}")).await.unwrap();
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(10), client.recv_message()).await;
            let got = got.unwrap_or_else(|_| panic!("client {i} had no echo in round {round}"));
            assert_eq!(got.unwrap(), Message::text(format!("round {round}")));
        }
    }
    let after = loop_threads(server.pid(), 3);
    for ((thread, was), (_, now)) in before.iter().zip(&after) {
        assert!(now - was >= 20, "loop thread {thread} woke {} times for 20 rounds: it served no connection", now - was);
    }

    // One room whose members sit on every loop. Each is a member once its
    // handshake is done, so the last one to join hears the message too.
    let mut members = Vec::new();
    for _ in 0..32 {
        members.push(Client::connect(&server.ws("/rooms/broadcast/across")).await.unwrap());
    }
    members[0].send_text("to everyone").await.unwrap();
    for (i, member) in members[1..].iter_mut().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(10), next_relayed(member)).await;
        assert_eq!(got.unwrap_or_else(|_| panic!("member {} of 31 did not hear the broadcast", i + 1)), "to everyone");
    }
}

#[tokio::test]
async fn sigterm_closes_every_loops_connections_and_keeps_their_rooms_writes() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--data-dir", dir.path().to_str().unwrap(), "--threads", "4"];
    let mut server = ServerProcess::start_with(&flags);
    loop_threads(server.pid(), 3);
    // A room of its own per connection: the rooms are created on the loops
    // their first connections landed on.
    let mut clients = Vec::new();
    for i in 0..32 {
        let mut client = Client::connect(&server.ws(&format!("/rooms/broadcast/kept-{i}"))).await.unwrap();
        let welcome = client.recv_message().await.unwrap();
        assert!(welcome.as_text().unwrap().contains("\"visits\":1"), "{welcome:?}");
        clients.push(client);
    }
    server.send_sigterm();
    for mut client in clients {
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match client.recv_message().await {
                    Ok(_) => continue,
                    Err(e) => return e,
                }
            }
        })
        .await
        .expect("closed within 30 s");
        match closed {
            ClientError::Closed(frame) => assert_eq!(frame.code.map(|code| code.as_u16()), Some(1001), "{frame:?}"),
            other => panic!("expected a 1001 close, got {other}"),
        }
    }
    assert!(server.wait_exit().success());

    let server = ServerProcess::start_with(&flags);
    for i in 0..32 {
        let mut client = Client::connect(&server.ws(&format!("/rooms/broadcast/kept-{i}"))).await.unwrap();
        let welcome = client.recv_message().await.unwrap();
        assert!(welcome.as_text().unwrap().contains("\"visits\":2"), "room kept-{i}: {welcome:?}");
    }
}

#[tokio::test]
async fn the_work_stealing_runtime_serves_with_its_own_workers() {
    let server = ServerProcess::start_with(&["--memory", "--runtime", "work-stealing", "--threads", "3"]);
    let mut client = Client::connect(&server.ws("/rooms/echo/ws")).await.unwrap();
    client.send_text("hello").await.unwrap();
    assert_eq!(client.recv_message().await.unwrap(), Message::text("hello"));
    assert!(threads(server.pid(), "event-loop-").is_empty(), "no event loops");
    assert!(started_threads(server.pid(), "tokio-rt-worker", |n| n >= 3).len() >= 3, "three workers (and any blocking-pool threads, named alike)");
}

/// `SO_REUSEPORT` would let a second server of the same user bind the
/// port and take a share of the connections; it is refused instead.
#[test]
fn a_second_server_on_the_same_address_is_refused() {
    let server = ServerProcess::start_with(&["--memory", "--threads", "2"]);
    let (code, _, stderr) = run_bounded(switchboard().args(["serve", "--memory", "--threads", "2", "--listen", &server.addr]));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("cannot listen on") && stderr.contains("in use"), "{stderr}");
}
