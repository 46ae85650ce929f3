//! Idle: N connections that open, join one of R rooms and stay quiet. It
//! measures how fast the server accepts them (handshakes per second, with at
//! most `--concurrency` handshakes under way) and what each one costs the
//! server while idle: resident memory and open files from /proc, read before
//! the first connection, once all are open, and optionally again after
//! `--hibernate-wait` seconds (long enough for the server's
//! `--hibernate-after`, the rooms' memory is then dropped).
//!
//! Every connection keeps a task reading it, so the server's pings are
//! answered (inside [`Client::recv`]) and no connection is dropped as dead
//! while the run waits. Any connection that ends before the run does fails
//! the run, because the per-connection figures would then be wrong. Nothing
//! is sent: this is not a throughput test. The CPU rows cover the opening.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use switchboard_client::{Client, ClientOptions, Event, Message};
use tokio::sync::Notify;

use crate::proc_stats::{self, Sample};
use crate::report::{grouped, mib, print_cpu};
use crate::target::Sources;
use crate::{cpu, fd_limit, Target};

/// Every run ends within this, like the other scenarios.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// Shortest opening whose CPU use is reported: /proc counts CPU time in
/// 10 ms ticks, too coarse for a shorter window.
const MIN_CPU_WINDOW: Duration = Duration::from_millis(200);
/// Pause between the last handshake and the "open" sample, so that the
/// server has finished joining the last connections to their rooms.
const SETTLE: Duration = Duration::from_millis(500);

/// Options of the idle scenario.
#[derive(Args, Clone)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Connections to open and hold. Each is an open file on both sides: the
    /// open-file limits of this process and of the server bound it.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Rooms to spread the connections over (connection i joins room
    /// `{url}-{i mod R}`); 100 keeps rooms small enough that joins are cheap
    /// and many enough that per-room memory shows.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    rooms: u32,
    /// Handshakes under way at once; 64 keeps both processes busy while
    /// staying far below a listen backlog (switchboard's is 4,096), so no
    /// connect waits out a SYN retransmit.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// After all are open, wait this many seconds and read the server's
    /// memory again (set it above the server's --hibernate-after to see
    /// hibernated rooms). At most 240, so the run stays within 300 s.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=240))]
    hibernate_wait: u64,
    /// Connect from 127.0.0.1 … 127.0.0.N in turn (IPv4 loopback targets
    /// only), so one address's ~28,000 ephemeral ports are not the limit.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..))]
    source_addrs: u8,
    /// Each connection sends one text message of this many bytes (JSON-like,
    /// so it compresses as chat traffic does) once open and waits for its
    /// echo (echo rooms only), so what a first message leaves behind on the
    /// server (compression state) is counted too. 0: nothing is sent.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1 << 20))]
    echo_once: u32,
}

/// What the opening tasks, the holding tasks and the run share (one
/// thread: cells, no locks).
#[derive(Default)]
struct Shared {
    /// Index of the next connection to open.
    next: Cell<usize>,
    /// Connections opened so far.
    opened: Cell<usize>,
    /// Opened connections that have ended since.
    lost: Cell<usize>,
    /// Why the first of them ended.
    first_loss: RefCell<Option<String>>,
    /// Opening tasks still running.
    openers: Cell<usize>,
    /// The first failed handshake; it stops the opening.
    error: RefCell<Option<String>>,
    /// Wakes the run when the opening ends (all open, or a failure).
    done: Notify,
}

/// What one idle run measured.
pub(crate) struct IdleReport {
    connections: usize,
    rooms: u32,
    concurrency: u32,
    sources: String,
    opened_in: Duration,
    before: Option<Sample>,
    open: Option<Sample>,
    /// Seconds waited, and the sample taken then.
    after_wait: Option<(u64, Option<Sample>)>,
    client_cpu: Option<cpu::CpuTime>,
    server_cpu: Option<cpu::CpuTime>,
    lost: usize,
    first_loss: Option<String>,
    /// The offer made (`--deflate`), and the one message each sent.
    deflate: bool,
    echo_once: u32,
}

pub(crate) async fn run(options: &Options) -> Result<IdleReport, String> {
    let total = options.connections as usize;
    let sources = Rc::new(Sources::for_url(&options.target.url, options.source_addrs)?);
    fd_limit::check(total)?;
    if let Some(capacity) = sources.port_capacity().filter(|&c| total as u64 > c) {
        return Err(format!(
            "{total} connections from {} need more ephemeral ports than those addresses have ({capacity}); pass a larger --source-addrs",
            sources.describe()
        ));
    }
    let pid = options.target.server_pid;
    let before = match pid {
        Some(pid) => Some(Sample::take(pid).ok_or_else(|| format!("cannot read /proc/{pid} (is --server-pid right?)"))?),
        None => None,
    };
    if let (Some(pid), Some(before)) = (pid, before) {
        if let Some(limit) = proc_stats::open_files_limit(pid).filter(|&l| before.fds + total as u64 > l) {
            return Err(format!(
                "the server (PID {pid}) may open {limit} files and has {} open, so {total} more connections do not fit; \
                 start it from a shell with a higher limit (`ulimit -n 20000`, up to its hard limit)",
                before.fds
            ));
        }
    }
    let urls: Rc<[String]> = (0..options.rooms).map(|room| room_url(&options.target.url, room)).collect();

    let shared = Rc::new(Shared::default());
    let openers = (options.concurrency as usize).min(total);
    shared.openers.set(openers);
    let start = Instant::now();
    let open_limit = RUN_LIMIT - SETTLE - Duration::from_secs(options.hibernate_wait);
    let (client_cpu0, server_cpu0) = (cpu::seconds(None), pid.and_then(|p| cpu::seconds(Some(p))));
    for _ in 0..openers {
        tokio::task::spawn_local(open_some(shared.clone(), urls.clone(), sources.clone(), total, options.clone()));
    }
    let mut last = (0, start);
    loop {
        let woken = tokio::time::timeout(Duration::from_secs(1), shared.done.notified()).await.is_ok();
        if let Some(error) = shared.error.borrow().as_ref() {
            return Err(format!("{error} ({} of {total} were open)", shared.opened.get()));
        }
        if shared.openers.get() == 0 {
            break;
        }
        if !woken {
            let (opened, now) = (shared.opened.get(), Instant::now());
            let rate = (opened - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
            eprintln!("loadgen: {}/{} open, {} handshakes/s", grouped(opened as u64), grouped(total as u64), grouped(rate as u64));
            last = (opened, now);
        }
        if start.elapsed() >= open_limit {
            return Err(format!("only {} of {total} connections open after {} s", shared.opened.get(), open_limit.as_secs()));
        }
    }
    let opened_in = start.elapsed();
    let delta = |before: Option<cpu::CpuTime>, pid| Some(cpu::seconds(pid)? - before?);
    let (client_cpu, server_cpu) = (delta(client_cpu0, None), delta(server_cpu0, pid));
    eprintln!("loadgen: {} open in {:.2} s", grouped(total as u64), opened_in.as_secs_f64());

    tokio::time::sleep(SETTLE).await;
    let open = pid.and_then(Sample::take);
    let after_wait = if options.hibernate_wait > 0 {
        eprintln!("loadgen: holding them for {} s", options.hibernate_wait);
        tokio::time::sleep(Duration::from_secs(options.hibernate_wait)).await;
        Some((options.hibernate_wait, pid.and_then(Sample::take)))
    } else {
        None
    };
    let first_loss = shared.first_loss.take();
    Ok(IdleReport {
        connections: total,
        rooms: options.rooms,
        concurrency: options.concurrency,
        sources: sources.describe(),
        opened_in,
        before,
        open,
        after_wait,
        client_cpu,
        server_cpu,
        lost: shared.lost.get(),
        first_loss,
        deflate: options.target.deflate,
        echo_once: options.echo_once,
    })
}

/// Room `room` under the URL's path: `ws://h/rooms/echo/idle?x` becomes
/// `ws://h/rooms/echo/idle-7?x`.
pub(crate) fn room_url(url: &str, room: u32) -> String {
    match url.split_once('?') {
        Some((path, query)) => format!("{}-{room}?{query}", path.trim_end_matches('/')),
        None => format!("{}-{room}", url.trim_end_matches('/')),
    }
}

/// One of `--concurrency` tasks that open connections until all `total` are
/// open or one fails, and hand each to a [`hold`] task.
async fn open_some(shared: Rc<Shared>, urls: Rc<[String]>, sources: Rc<Sources>, total: usize, run: Options) {
    let echo = (run.echo_once > 0).then(|| Message::Text(json_like(run.echo_once as usize).into()));
    loop {
        let i = shared.next.get();
        if i >= total || shared.error.borrow().is_some() {
            break;
        }
        shared.next.set(i + 1);
        let url = &urls[i % urls.len()];
        let options = ClientOptions { local_addr: sources.nth(i), ..run.target.client_options() };
        let opened = match Client::connect_with(url, options).await {
            Ok(client) => match &echo {
                Some(message) => echo_once(client, message).await,
                None => Ok(client),
            },
            Err(e) => Err(e.to_string()),
        };
        match opened {
            Ok(client) => {
                shared.opened.set(shared.opened.get() + 1);
                tokio::task::spawn_local(hold(client, shared.clone()));
            }
            Err(e) => {
                shared.error.borrow_mut().get_or_insert_with(|| format!("connection {i} to {url}: {e}"));
                shared.done.notify_one();
                break;
            }
        }
    }
    shared.openers.set(shared.openers.get() - 1);
    if shared.openers.get() == 0 {
        shared.done.notify_one();
    }
}

/// Sends `message` and waits for it to come back.
async fn echo_once(mut client: Client, message: &Message) -> Result<Client, String> {
    client.send(message).await.map_err(|e| e.to_string())?;
    let back = tokio::time::timeout(Duration::from_secs(30), client.recv_message()).await.map_err(|_| "no echo within 30 s".to_owned())?;
    match back.map_err(|e| e.to_string())? {
        got if got == *message => Ok(client),
        _ => Err("the echo differs from the message sent".to_owned()),
    }
}

/// About `len` bytes of JSON objects, as a chat or a dashboard sends.
fn json_like(len: usize) -> String {
    let mut text = String::with_capacity(len + 64);
    text.push('[');
    let mut i = 0;
    while text.len() + 48 < len {
        text.push_str(&format!("{{\"id\":{i},\"user\":\"u{}\",\"ok\":true}},", i % 17));
        i += 1;
    }
    while text.len() + 1 < len {
        text.push(' ');
    }
    text.push(']');
    text
}

/// Reads `client` until it ends: pings are answered inside `recv`, anything
/// a room sends (a welcome, a visitor count) is dropped.
async fn hold(mut client: Client, shared: Rc<Shared>) {
    let why = loop {
        match client.recv().await {
            Ok(Some(Event::Close(frame))) => {
                let code = frame.code.map_or_else(|| "no code".to_owned(), |c| c.as_u16().to_string());
                break format!("closed by the server with {code} {:?}", frame.reason);
            }
            Ok(Some(_)) => {}
            Ok(None) => break "the server ended the TCP connection".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    shared.lost.set(shared.lost.get() + 1);
    shared.first_loss.borrow_mut().get_or_insert(why);
}

impl IdleReport {
    pub(crate) fn print(&self) {
        let n = self.connections as u64;
        let secs = self.opened_in.as_secs_f64();
        // Signed: memory may also shrink between samples.
        let per_connection = |kib: u64, base: u64| (kib as f64 - base as f64) * 1024.0 / n as f64;
        println!("scenario      idle");
        println!("connections   {} over {} rooms, from {}", grouped(n), self.rooms, self.sources);
        println!("concurrency   {} handshake{} at a time", self.concurrency, if self.concurrency == 1 { "" } else { "s" });
        println!("offer         {}", if self.deflate { "permessage-deflate; client_max_window_bits (a browser's)" } else { "none" });
        if self.echo_once > 0 {
            println!("echo once     {} bytes each, echoed before counting as open", grouped(self.echo_once.into()));
        }
        println!("open time     {secs:.2} s");
        println!("handshakes/s  {}", grouped((n as f64 / secs) as u64));
        match (self.before, self.open) {
            (Some(before), Some(open)) => {
                println!(
                    "server fds    before {}, open {} ({:.2} per connection)",
                    grouped(before.fds),
                    grouped(open.fds),
                    (open.fds as f64 - before.fds as f64) / n as f64
                );
                println!(
                    "server RSS    anonymous: before {}, open {} ({} B per connection)",
                    mib(before.anon_kib),
                    mib(open.anon_kib),
                    signed_grouped(per_connection(open.anon_kib, before.anon_kib))
                );
            }
            (Some(_), None) => println!("server        gone before all were open"),
            _ => println!("server RSS    unknown (pass --server-pid)"),
        }
        match (self.before, self.after_wait) {
            (Some(before), Some((secs, Some(after)))) => println!(
                "after wait    {secs} s: anonymous RSS {} ({} B per connection), fds {}",
                mib(after.anon_kib),
                signed_grouped(per_connection(after.anon_kib, before.anon_kib)),
                grouped(after.fds)
            ),
            (Some(_), Some((secs, None))) => println!("after wait    {secs} s: server gone"),
            _ => {}
        }
        if self.lost > 0 {
            println!("lost          {} connections ended early (first: {})", grouped(self.lost as u64), self.first_loss.as_deref().unwrap_or("?"));
        }
        if secs >= MIN_CPU_WINDOW.as_secs_f64() {
            print_cpu(secs, self.client_cpu, self.server_cpu, (n, "handshake"));
        } else {
            println!("verdict       CPU not measured: the opening took under {} s", MIN_CPU_WINDOW.as_secs_f64());
        }
    }

    /// Err when connections ended during the run: the figures above count
    /// connections that were no longer there.
    pub(crate) fn outcome(&self) -> Result<(), String> {
        match self.lost {
            0 => Ok(()),
            lost => Err(format!("{lost} of {} connections ended before the run did", self.connections)),
        }
    }
}

/// `-1234.6` as `-1,235`.
fn signed_grouped(v: f64) -> String {
    let sign = if v < -0.5 { "-" } else { "" };
    format!("{sign}{}", grouped(v.abs().round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_urls_keep_the_query() {
        assert_eq!(room_url("ws://127.0.0.1:1/rooms/echo/idle", 7), "ws://127.0.0.1:1/rooms/echo/idle-7");
        assert_eq!(room_url("ws://127.0.0.1:1/rooms/echo/idle/", 0), "ws://127.0.0.1:1/rooms/echo/idle-0");
        assert_eq!(room_url("ws://127.0.0.1:1/rooms/echo/idle?token=t", 12), "ws://127.0.0.1:1/rooms/echo/idle-12?token=t");
    }

    #[test]
    fn signed_figures() {
        assert_eq!(signed_grouped(5234.4), "5,234");
        assert_eq!(signed_grouped(-1234.6), "-1,235");
        assert_eq!(signed_grouped(-0.2), "0");
    }
}
