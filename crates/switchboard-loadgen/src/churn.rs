//! Churn: C loops, each opening a connection, sending one message, waiting
//! for its echo and closing it with the closing handshake, over and over for
//! `--seconds`. It measures whole connection lifetimes per second, counts
//! the ones that failed, and checks for leaks: the server's open files and
//! memory (from /proc) before the run and after it, once the server has had
//! a moment (at most 5 s) to release what the last connections held. More
//! open files afterwards than before is flagged `LEAK?`; memory is printed,
//! not judged, because allocators keep freed memory for later.
//!
//! The endpoint must echo (switchboard's echo room does). Each closed
//! connection leaves a socket in TIME_WAIT for 60 s on the side that ended
//! the TCP connection first. Here that is the server (the client waits for
//! it, RFC 6455 §7.1.1), so this side's ports are free again at once, but
//! the server keeps one TIME_WAIT entry per client address and port; with
//! ~28,000 ephemeral ports per source address, thousands of connections a
//! second would soon reuse a pair still in TIME_WAIT, so the loops connect
//! from 127.0.0.1 … 127.0.0.N in turn. (A client that ends the TCP
//! connection first holds the TIME_WAIT itself, and then its own ports run
//! out.)

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use switchboard_client::{Client, ClientOptions, CloseCode, Message};
use tokio::sync::Notify;

use crate::proc_stats::Sample;
use crate::report::{grouped, mib, print_cpu};
use crate::target::Sources;
use crate::{cpu, fd_limit, Target};

/// Longest lifetime of one connection before it counts as failed; it also
/// bounds how long the run waits for the last ones after `--seconds`.
const CYCLE_LIMIT: Duration = Duration::from_secs(10);
/// Pause of a loop after a failure, so a server that refuses everything is
/// not hammered in a tight loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(10);
/// Longest wait after the run for the server's open files to come back down.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);
/// Open files the server may hold above its count before the run without
/// being flagged: a log file rotated, a storage file opened lazily.
const FD_TOLERANCE: u64 = 2;

/// Options of the churn scenario.
#[derive(Args, Clone)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Loops running at once; each has at most one connection open.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Run time in seconds. At most 280, so that the last connections (10 s
    /// at most) and the server's settling (5 s at most) fit within 300 s.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=280))]
    seconds: u64,
    /// Payload of the one message each connection sends, in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Connect from 127.0.0.1 … 127.0.0.N in turn (IPv4 loopback targets
    /// only), so that address pairs repeat N times less often while their
    /// last connection may still be in TIME_WAIT.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..))]
    source_addrs: u8,
}

/// What the loops and the run share (one thread: cells, no locks).
struct Shared {
    /// Loops start no new connection after this.
    until: Instant,
    /// Connections started, also the index that picks the source address.
    started: Cell<usize>,
    completed: Cell<u64>,
    failures: Cell<u64>,
    first_error: RefCell<Option<String>>,
    /// Connect-to-closed time of each completed connection, microseconds.
    cycle_us: RefCell<Histogram<u64>>,
    /// Loops still running.
    loops: Cell<usize>,
    /// Wakes the run when the last loop ends.
    done: Notify,
}

/// What one churn run measured.
pub(crate) struct ChurnReport {
    concurrency: u32,
    sources: String,
    size: usize,
    elapsed: Duration,
    completed: u64,
    failures: u64,
    first_error: Option<String>,
    cycle_us: Histogram<u64>,
    /// Server samples before and after, and how long the settling took.
    server: Option<(Sample, Sample, Duration)>,
    client_cpu: Option<cpu::CpuTime>,
    server_cpu: Option<cpu::CpuTime>,
}

pub(crate) async fn run(options: &Options) -> Result<ChurnReport, String> {
    let sources = Rc::new(Sources::for_url(&options.target.url, options.source_addrs)?);
    fd_limit::check(options.concurrency as usize)?;
    let pid = options.target.server_pid;
    let before = match pid {
        Some(pid) => Some(Sample::take(pid).ok_or_else(|| format!("cannot read /proc/{pid} (is --server-pid right?)"))?),
        None => None,
    };
    let message = Message::Text(Bytes::from(vec![b'x'; options.size]));
    let url: Rc<str> = options.target.url.as_str().into();
    let loops = options.concurrency as usize;
    let start = Instant::now();
    let duration = Duration::from_secs(options.seconds);
    let shared = Rc::new(Shared {
        until: start + duration,
        started: Cell::new(0),
        completed: Cell::new(0),
        failures: Cell::new(0),
        first_error: RefCell::new(None),
        cycle_us: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")),
        loops: Cell::new(loops),
        done: Notify::new(),
    });
    let (client_cpu0, server_cpu0) = (cpu::seconds(None), pid.and_then(|p| cpu::seconds(Some(p))));
    for _ in 0..loops {
        tokio::task::spawn_local(churn(shared.clone(), url.clone(), message.clone(), sources.clone()));
    }
    let mut last = (0, start);
    loop {
        let woken = tokio::time::timeout(Duration::from_secs(1), shared.done.notified()).await.is_ok();
        if woken && shared.loops.get() == 0 {
            break;
        }
        let (completed, now) = (shared.completed.get(), Instant::now());
        let rate = (completed - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
        eprintln!("loadgen: t={:>3.0}s  {} connections/s, {} failures", start.elapsed().as_secs_f64(), grouped(rate as u64), grouped(shared.failures.get()));
        last = (completed, now);
        // Cannot happen while each connection is bounded by CYCLE_LIMIT.
        if start.elapsed() > duration + CYCLE_LIMIT + Duration::from_secs(1) {
            return Err("the loops did not stop".into());
        }
    }
    let elapsed = start.elapsed();
    let delta = |before: Option<cpu::CpuTime>, pid| Some(cpu::seconds(pid)? - before?);
    let (client_cpu, server_cpu) = (delta(client_cpu0, None), delta(server_cpu0, pid));
    let server = match (pid, before) {
        (Some(pid), Some(before)) => Some(settle(pid, before).await?),
        _ => None,
    };
    let cycle_us = shared.cycle_us.borrow().clone();
    let first_error = shared.first_error.take();
    Ok(ChurnReport {
        concurrency: options.concurrency,
        sources: sources.describe(),
        size: options.size,
        elapsed,
        completed: shared.completed.get(),
        failures: shared.failures.get(),
        first_error,
        cycle_us,
        server,
        client_cpu,
        server_cpu,
    })
}

/// Samples the server until its open files are back within FD_TOLERANCE of
/// `before`, or SETTLE_LIMIT has passed.
async fn settle(pid: u32, before: Sample) -> Result<(Sample, Sample, Duration), String> {
    let start = Instant::now();
    loop {
        let after = Sample::take(pid).ok_or_else(|| format!("the server (PID {pid}) is gone"))?;
        if after.fds <= before.fds + FD_TOLERANCE || start.elapsed() >= SETTLE_LIMIT {
            return Ok((before, after, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One loop: connection after connection until the run's end.
async fn churn(shared: Rc<Shared>, url: Rc<str>, message: Message, sources: Rc<Sources>) {
    while Instant::now() < shared.until {
        let i = shared.started.get();
        shared.started.set(i + 1);
        let options = ClientOptions { local_addr: sources.nth(i), ..crate::tls::client_options() };
        let began = Instant::now();
        let result = tokio::time::timeout(CYCLE_LIMIT, lifetime(&url, options, &message)).await;
        match result.unwrap_or_else(|_| Err(format!("not closed within {} s", CYCLE_LIMIT.as_secs()))) {
            Ok(()) => {
                shared.completed.set(shared.completed.get() + 1);
                let _ = shared.cycle_us.borrow_mut().record((began.elapsed().as_micros() as u64).max(1));
            }
            Err(e) => {
                shared.failures.set(shared.failures.get() + 1);
                shared.first_error.borrow_mut().get_or_insert(e);
                tokio::time::sleep(FAILURE_PAUSE).await;
            }
        }
    }
    shared.loops.set(shared.loops.get() - 1);
    if shared.loops.get() == 0 {
        shared.done.notify_one();
    }
}

/// The life of one connection: open, one message and its echo, the closing
/// handshake (which waits for the server to end the TCP connection).
async fn lifetime(url: &str, options: ClientOptions, message: &Message) -> Result<(), String> {
    let mut client = Client::connect_with(url, options).await.map_err(|e| format!("connect: {e}"))?;
    client.send(message).await.map_err(|e| format!("send: {e}"))?;
    let echo = client.recv_message().await.map_err(|e| format!("waiting for the echo: {e}"))?;
    if echo != *message {
        return Err(format!("the echo differs from the message: {} bytes back for {}", echo.payload().len(), message.payload().len()));
    }
    client.close(Some(CloseCode::NORMAL), "").await.map_err(|e| format!("close: {e}"))?;
    Ok(())
}

impl ChurnReport {
    pub(crate) fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!("scenario      churn");
        println!("concurrency   {} loops, from {}", self.concurrency, self.sources);
        println!("payload       {} B", self.size);
        println!("duration      {secs:.2} s");
        println!("completed     {} connections (connect, one echo, closing handshake)", grouped(self.completed));
        println!("conns/s       {}", grouped((self.completed as f64 / secs) as u64));
        match &self.first_error {
            Some(first) => println!("failures      {} (first: {first})", grouped(self.failures)),
            None => println!("failures      0"),
        }
        let h = &self.cycle_us;
        if !h.is_empty() {
            println!("lifetime us   p50 {}  p99 {}  max {}", grouped(h.value_at_quantile(0.5)), grouped(h.value_at_quantile(0.99)), grouped(h.max()));
        }
        match self.server {
            Some((before, after, settled)) => {
                println!("server fds    before {}, after {} (read {:.1} s after the run)", grouped(before.fds), grouped(after.fds), settled.as_secs_f64());
                println!(
                    "server RSS    anonymous: before {}, after {} ({:+.1} MiB)",
                    mib(before.anon_kib),
                    mib(after.anon_kib),
                    (after.anon_kib as f64 - before.anon_kib as f64) / 1024.0
                );
                if after.fds > before.fds + FD_TOLERANCE {
                    println!(
                        "leak check    LEAK? the server holds {} more open files than before the run ({} vs {})",
                        after.fds - before.fds,
                        after.fds,
                        before.fds
                    );
                } else {
                    println!("leak check    ok (open files back within {FD_TOLERANCE} of the count before the run)");
                }
            }
            None => println!("leak check    not done (pass --server-pid)"),
        }
        print_cpu(secs, self.client_cpu, self.server_cpu, (self.completed, "connection"));
    }

    /// Err when connections failed: the rate above then counts only the
    /// ones that worked.
    pub(crate) fn outcome(&self) -> Result<(), String> {
        match self.failures {
            0 => Ok(()),
            failures => Err(format!("{failures} of {} connections failed (first: {})", self.completed + failures, self.first_error.as_deref().unwrap_or("?"))),
        }
    }
}
