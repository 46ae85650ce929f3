//! Server memory per idle connection: opens N WebSocket connections spread
//! over R rooms, then reads the server's resident memory (VmRSS of `--pid`)
//! while the rooms are awake and again once they have hibernated.
//!
//! cargo run --release -p switchboard-client --example idle_rss -- \
//!     --url ws://127.0.0.1:8080 --pid PID [--connections 10000] [--rooms 100] \
//!     [--kind echo] [--hibernate-wait 12] [--concurrency 64]
//!
//! Loopback only; bounded in count and time. Raise the open-file limit of
//! both processes first (`ulimit -n 20000`).

use std::time::{Duration, Instant};

use switchboard_client::Client;
use tokio::task::JoinSet;

struct Args {
    url: String,
    pid: u32,
    connections: usize,
    rooms: usize,
    kind: String,
    hibernate_wait: u64,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { url: String::new(), pid: 0, connections: 10_000, rooms: 100, kind: "echo".into(), hibernate_wait: 12, concurrency: 64 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--url" => args.url = value.clone(),
            "--pid" => args.pid = number()? as u32,
            "--connections" => args.connections = number()? as usize,
            "--rooms" => args.rooms = number()?.max(1) as usize,
            "--kind" => args.kind = value.clone(),
            "--hibernate-wait" => args.hibernate_wait = number()?,
            "--concurrency" => args.concurrency = number()?.max(1) as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !args.url.starts_with("ws://127.") && !args.url.starts_with("ws://localhost") {
        return Err("--url must be a ws:// loopback address".into());
    }
    if args.pid == 0 {
        return Err("--pid of the server is required".into());
    }
    Ok(args)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server process status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("idle_rss: {e}");
        std::process::exit(2);
    });
    let baseline = rss_kib(args.pid);
    let started = Instant::now();
    let mut open = Vec::with_capacity(args.connections);
    let mut pending = JoinSet::new();
    for i in 0..args.connections {
        let url = format!("{}/rooms/{}/idle{}", args.url, args.kind, i % args.rooms);
        pending.spawn(async move { Client::connect(&url).await });
        if pending.len() >= args.concurrency || i + 1 == args.connections {
            while let Some(done) = pending.join_next().await {
                open.push(done.expect("connect task").expect("connect"));
            }
            eprint!("\ridle_rss: {} / {} connections", open.len(), args.connections);
        }
    }
    let elapsed = started.elapsed();
    eprintln!();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let awake = rss_kib(args.pid);
    tokio::time::sleep(Duration::from_secs(args.hibernate_wait)).await;
    let hibernated = rss_kib(args.pid);
    let per = |rss: u64| (rss.saturating_sub(baseline) as f64) * 1024.0 / args.connections as f64;
    println!("connections {} in {} rooms ({}), opened in {:.2} s ({:.0} handshakes/s)", args.connections, args.rooms, args.kind, elapsed.as_secs_f64(), args.connections as f64 / elapsed.as_secs_f64());
    println!("server RSS before: {baseline} KiB");
    println!("awake:      {awake} KiB, {:.0} bytes per connection", per(awake));
    println!("hibernated: {hibernated} KiB, {:.0} bytes per connection", per(hibernated));
    drop(open);
}
