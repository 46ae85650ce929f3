//! Memory comes back: after 10,000 rooms are started and left, the
//! registry forgets them as they stop and the server's resident memory
//! returns close to where it was before (loopback, bounded in count and
//! time).

mod common;

use std::time::Duration;

use common::ServerProcess;
use switchboard_client::{Client, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Rooms used at once.
const CONCURRENCY: usize = 50;

async fn live_rooms(server: &ServerProcess) -> u64 {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(b"GET /api/stats HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    stats["rooms"].as_u64().unwrap()
}

/// The process's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Opens rooms `from..to`, one connection each with one echo, and closes them.
async fn rooms_come_and_go(server: &ServerProcess, from: usize, to: usize) {
    let mut tasks = Vec::new();
    for lane in 0..CONCURRENCY {
        let url = server.ws("/rooms/echo/");
        tasks.push(tokio::spawn(async move {
            for i in (from + lane..to).step_by(CONCURRENCY) {
                let mut client = Client::connect(&format!("{url}churn-{i}")).await.unwrap();
                client.send_text("hi").await.unwrap();
                assert_eq!(client.recv_message().await.unwrap(), Message::text("hi"));
                client.close(None, "").await.unwrap();
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task).await.expect("rooms come and go in time").unwrap();
    }
}

/// Waits (at most 20 s) until no room runs.
async fn until_no_room_runs(server: &ServerProcess) {
    for _ in 0..200 {
        if live_rooms(server).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} rooms still run 20 s after their last connection left", live_rooms(server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_10000_rooms_come_and_go_the_registry_is_empty_and_memory_returns() {
    // The handshake rate limit is not what this test is about: 10,000
    // connections from one address come faster than its default allows.
    let server =
        ServerProcess::start_with(&["--memory", "--hibernate-after", "100ms", "--handshake-rate-per-ip", "1000000", "--handshake-burst-per-ip", "1000000"]);
    // The first rooms size the allocator's and the runtime's caches.
    rooms_come_and_go(&server, 0, 1_000).await;
    until_no_room_runs(&server).await;
    let baseline = rss_kib(server.pid());
    rooms_come_and_go(&server, 1_000, 11_000).await;
    until_no_room_runs(&server).await;
    // Freed pages go back to the kernel after the allocator's purge delay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(server.pid());
    eprintln!("RSS baseline {baseline} KiB, after 10,000 rooms {after} KiB");
    assert!(after <= baseline + 4 * 1024, "RSS grew from {baseline} KiB to {after} KiB after 10,000 rooms came and went");
}
