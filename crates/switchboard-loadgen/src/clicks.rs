//! Clicks: N dashboards on the clicks rooms of one or more accounts
//! (docs/clicks.md), and probe clicks the load generator makes itself, to
//! time a click from its redirect request to its arrival on every dashboard
//! of the link's account. Something else (wrk in scripts/bench-clicks.sh)
//! drives the bulk of the redirects; the dashboards take in every click
//! of it and of the probes, as the room sends them: a `click` message for
//! a lone click, a `clicks` message for a group recorded together. With
//! `--deflate` the dashboards make a browser's permessage-deflate offer, so
//! the server compresses as it does for browsers.
//!
//! Dashboard i joins account `i mod A`'s room, `{url}/{account}`, with that
//! account's token in `Authorization`, and counts as joined once its
//! `snapshot` came. The probes go out at `--probe-rate` on one keep-alive
//! HTTP connection of their own, to the accounts' links in turn; probe k
//! carries the referrer host `probe-k.loadgen.invalid`, which its click
//! brings back (alone or inside a group). The window is `--seconds` of probing; afterwards
//! the run waits up to [`GRACE`] for the last probes' clicks, and a probe
//! click missing on any dashboard of its account then is lost and fails
//! the run, as do a dashboard cut off, a probe not answered with a 302,
//! and a probe click arriving twice or out of order on a dashboard.
//!
//! Dashboards read messages with a fixed-prefix check and substring
//! searches ([`crate::dashboard_message`]), and time the bulk clicks from
//! their `time` (a group's first, about every [`LAG_SAMPLE`]th click), so a dashboard falling behind shows
//! as a growing lag even where no probe is. Next to the CPU shares, the
//! report gives how long the server's threads and its own waited for a
//! core while ready to run: on a machine with other work, that is latency
//! no CPU share shows.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use switchboard_client::{Client, ClientOptions, Event, Message};
use tokio::time::MissedTickBehavior;

use crate::dashboard_message::{click_count, first_time, kind, probe_host, probe_seqs, Kind};
use crate::joining::{join_all, JoinArgs};
use crate::redirect_probe::RedirectProbe;
use crate::report::{grouped, latency_row, print_cpu};
use crate::target::Sources;
use crate::{cpu, fd_limit, Target};

/// Longest the run waits after the window for the last probes' clicks.
const GRACE: Duration = Duration::from_secs(5);
/// Wait between the last dashboard's snapshot and the window.
const WARM_UP: Duration = Duration::from_millis(500);
/// Every this many clicks a dashboard times one from its `time`.
const LAG_SAMPLE: u64 = 64;

/// Options of the clicks scenario.
#[derive(Args, Clone)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) target: Target,
    /// An account and one of its links, as ACCOUNT/SLUG; repeatable. The
    /// URL names the clicks rooms' prefix (`ws://HOST:PORT/rooms/clicks`):
    /// the account's dashboards join `{url}/{ACCOUNT}`, its probes click
    /// `/l/{SLUG}` on the same host.
    #[arg(long = "link", value_name = "ACCOUNT/SLUG", required = true, value_parser = parse_link)]
    links: Vec<(String, String)>,
    /// A dashboard token (JWT) of each account, in the order of --link.
    #[arg(long = "token", value_name = "JWT")]
    tokens: Vec<String>,
    /// A file holding a dashboard token of each account, one per line in
    /// the order of --link (instead of --token).
    #[arg(long, value_name = "FILE", conflicts_with = "tokens")]
    token_file: Option<PathBuf>,
    /// Dashboards in all, spread over the accounts.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    dashboards: u32,
    /// Probe clicks per second (`50` or `50/s`), over the accounts in turn.
    #[arg(long, default_value_t = 50.0, value_parser = parse_rate)]
    probe_rate: f64,
    /// Measurement time in seconds (probing), after every dashboard has
    /// joined; at most 240.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=240))]
    seconds: u64,
    #[command(flatten)]
    joins: JoinArgs,
}

/// `ACCOUNT/SLUG`.
fn parse_link(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((account, slug)) if !account.is_empty() && !slug.is_empty() && !slug.contains('/') => Ok((account.to_owned(), slug.to_owned())),
        _ => Err(format!("{s:?} is not ACCOUNT/SLUG")),
    }
}

/// `--probe-rate`: 0.1 to 1,000 per second, with or without `/s`.
fn parse_rate(s: &str) -> Result<f64, String> {
    let number = s.strip_suffix("/s").unwrap_or(s);
    let rate: f64 = number.parse().map_err(|_| format!("{s:?} is not a rate such as 50/s"))?;
    if (0.1..=1000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("the probe rate must be between 0.1/s and 1000/s".into())
    }
}

impl Options {
    /// One token per account, from --token or --token-file.
    fn tokens(&self) -> Result<Vec<String>, String> {
        let tokens = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            None => self.tokens.clone(),
        };
        if tokens.len() != self.links.len() {
            return Err(format!("{} --link but {} tokens: give one token per account, in the same order", self.links.len(), tokens.len()));
        }
        Ok(tokens)
    }
}

/// A probe click on its way.
struct Probe {
    sent: Instant,
    account: usize,
    /// Dashboards it has reached.
    received: u32,
}

/// What the dashboards, the probes and the run share (one thread: cells,
/// no locks).
struct Shared {
    /// Dashboards of each account.
    per_account: Vec<u32>,
    probes: RefCell<Vec<Probe>>,
    /// Probes that reached every dashboard of their account.
    complete: Cell<u64>,
    /// Probe clicks received, counting each dashboard.
    deliveries: Cell<u64>,
    /// Clicks received, bulk and probes, counting each dashboard.
    clicks: Cell<u64>,
    /// `click` and `clicks` messages received, counting each dashboard.
    messages: Cell<u64>,
    /// Probe clicks a dashboard received twice or after a later one.
    disordered: Cell<u64>,
    /// Redirect request sent to probe click on a dashboard, microseconds.
    delivery_us: RefCell<Histogram<u64>>,
    /// Redirect request sent to probe click on the last of its account's
    /// dashboards, microseconds.
    everywhere_us: RefCell<Histogram<u64>>,
    /// Redirect request sent to its 302, microseconds.
    redirect_us: RefCell<Histogram<u64>>,
    /// A click's `time` to its arrival, milliseconds, sampled.
    lag_ms: RefCell<Histogram<u64>>,
    /// Dashboards cut off during the run, and why the first was.
    lost: Cell<usize>,
    first_loss: RefCell<Option<String>>,
    running: Cell<bool>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

impl Shared {
    /// Takes in a `click` or `clicks` message that dashboard `account`'s
    /// `last` probe sequence was the latest of.
    fn clicks(&self, message: &[u8], kind: Kind, account: usize, last: &mut Option<u64>) {
        let before = self.clicks.get();
        let clicks = before + click_count(kind, message);
        self.clicks.set(clicks);
        self.messages.set(self.messages.get() + 1);
        if before / LAG_SAMPLE != clicks / LAG_SAMPLE {
            // The group's first click: the one that waited longest.
            if let (Some(time), Ok(now)) = (first_time(kind, message), SystemTime::now().duration_since(UNIX_EPOCH)) {
                self.lag_ms.borrow_mut().saturating_record((now.as_millis() as u64).saturating_sub(time).max(1));
            }
        }
        for seq in probe_seqs(message) {
            self.probe(seq, account, last);
        }
    }

    fn probe(&self, seq: u64, account: usize, last: &mut Option<u64>) {
        if last.is_some_and(|l| seq <= l) {
            self.disordered.set(self.disordered.get() + 1);
            return;
        }
        *last = Some(seq);
        let mut probes = self.probes.borrow_mut();
        let Some(probe) = probes.get_mut(seq as usize).filter(|p| p.account == account) else {
            // Not one of this run's probes for this account.
            self.disordered.set(self.disordered.get() + 1);
            return;
        };
        let us = (probe.sent.elapsed().as_micros() as u64).max(1);
        probe.received += 1;
        self.deliveries.set(self.deliveries.get() + 1);
        self.delivery_us.borrow_mut().saturating_record(us);
        if probe.received == self.per_account[account] {
            self.complete.set(self.complete.get() + 1);
            self.everywhere_us.borrow_mut().saturating_record(us);
        }
    }
}

/// What one clicks run measured.
pub(crate) struct ClicksReport {
    dashboards: u32,
    accounts: usize,
    sources: String,
    joined_in: Duration,
    elapsed: Duration,
    probe_rate: f64,
    probes: u64,
    /// Probe deliveries expected: each probe times its account's dashboards.
    expected: u64,
    deliveries: u64,
    complete: u64,
    disordered: u64,
    clicks_in_window: u64,
    messages_in_window: u64,
    /// The dashboards offered permessage-deflate as browsers do.
    deflate: bool,
    delivery_us: Histogram<u64>,
    everywhere_us: Histogram<u64>,
    redirect_us: Histogram<u64>,
    lag_ms: Histogram<u64>,
    lost: usize,
    first_loss: Option<String>,
    client_cpu: Option<cpu::CpuTime>,
    server_cpu: Option<cpu::CpuTime>,
    /// Seconds the threads spent ready to run but waiting for a core.
    client_wait: Option<f64>,
    server_wait: Option<f64>,
}

pub(crate) async fn run(options: &Options) -> Result<ClicksReport, String> {
    let tokens = options.tokens()?;
    let total = options.dashboards as usize;
    let accounts = options.links.len();
    if total < accounts {
        return Err(format!("{total} dashboards cannot cover {accounts} accounts"));
    }
    let sources = Rc::new(Sources::for_url(&options.target.url, options.joins.source_addrs)?);
    fd_limit::check(total + 1)?;
    let prefix = options.target.url.trim_end_matches('/');
    let urls: Rc<[String]> = options.links.iter().map(|(account, _)| format!("{prefix}/{account}")).collect();
    let per_account = (0..accounts).map(|a| (total - a).div_ceil(accounts) as u32).collect();
    let shared = Rc::new(Shared {
        per_account,
        probes: RefCell::new(Vec::new()),
        complete: Cell::new(0),
        deliveries: Cell::new(0),
        clicks: Cell::new(0),
        messages: Cell::new(0),
        disordered: Cell::new(0),
        delivery_us: RefCell::new(histogram()),
        everywhere_us: RefCell::new(histogram()),
        redirect_us: RefCell::new(histogram()),
        lag_ms: RefCell::new(histogram()),
        lost: Cell::new(0),
        first_loss: RefCell::new(None),
        running: Cell::new(true),
    });

    let by_url: Rc<[(String, String)]> = urls.iter().cloned().zip(tokens).collect();
    let deflate = options.target.client_options().deflate;
    let join = move |url: String, mut client_options: ClientOptions| {
        let by_url = by_url.clone();
        client_options.deflate = deflate;
        async move {
            let (_, token) = by_url.iter().find(|(u, _)| *u == url).expect("every URL has its token");
            client_options.headers.push(("Authorization".into(), format!("Bearer {token}")));
            join(&url, client_options).await
        }
    };
    let dashboards = shared.clone();
    let start_dashboard = move |i: usize, client: Client| {
        tokio::task::spawn_local(dashboard(client, i % accounts, dashboards.clone()));
    };
    let joining = join_all(total, options.joins.concurrency as usize, urls, sources.clone(), "dashboard", join, start_dashboard);
    let joined_in = joining.await.inspect_err(|_| shared.running.set(false))?;
    let mut probe = RedirectProbe::connect(&options.target.url).await?;
    tokio::time::sleep(WARM_UP).await;

    let pid = options.target.server_pid;
    let (client_cpu0, server_cpu0) = (cpu::seconds(None), pid.and_then(|p| cpu::seconds(Some(p))));
    let (client_wait0, server_wait0) = (cpu::run_queue_wait(None), pid.and_then(|p| cpu::run_queue_wait(Some(p))));
    let (clicks0, messages0) = (shared.clicks.get(), shared.messages.get());
    shared.lag_ms.borrow_mut().reset();
    let window_start = Instant::now();
    let duration = Duration::from_secs(options.seconds);
    let probing = send_probes(&mut probe, options, &shared, window_start, duration).await;
    let elapsed = window_start.elapsed();
    let (clicks_in_window, messages_in_window) = (shared.clicks.get() - clicks0, shared.messages.get() - messages0);
    let delta = |before: Option<cpu::CpuTime>, pid| Some(cpu::seconds(pid)? - before?);
    let (client_cpu, server_cpu) = (delta(client_cpu0, None), delta(server_cpu0, pid));
    let wait_delta = |before: Option<f64>, pid| Some(cpu::run_queue_wait(pid)? - before?);
    let (client_wait, server_wait) = (wait_delta(client_wait0, None), wait_delta(server_wait0, pid));
    if let Err(e) = probing {
        shared.running.set(false);
        return Err(e);
    }

    let probes = shared.probes.borrow().len() as u64;
    let grace_end = Instant::now() + GRACE;
    while shared.complete.get() < probes && shared.lost.get() == 0 && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.running.set(false);
    let expected = shared.probes.borrow().iter().map(|p| u64::from(shared.per_account[p.account])).sum();
    let report = ClicksReport {
        dashboards: options.dashboards,
        accounts,
        sources: sources.describe(),
        joined_in,
        elapsed,
        probe_rate: options.probe_rate,
        probes,
        expected,
        deliveries: shared.deliveries.get(),
        complete: shared.complete.get(),
        disordered: shared.disordered.get(),
        clicks_in_window,
        messages_in_window,
        deflate: options.target.deflate,
        delivery_us: shared.delivery_us.borrow().clone(),
        everywhere_us: shared.everywhere_us.borrow().clone(),
        redirect_us: shared.redirect_us.borrow().clone(),
        lag_ms: shared.lag_ms.borrow().clone(),
        lost: shared.lost.get(),
        first_loss: shared.first_loss.take(),
        client_cpu,
        server_cpu,
        client_wait,
        server_wait,
    };
    Ok(report)
}

/// Probes at the configured rate for `duration` from `start`, each waiting
/// for its 302 before the next goes out, with a progress line a second.
async fn send_probes(probe: &mut RedirectProbe, options: &Options, shared: &Shared, start: Instant, duration: Duration) -> Result<(), String> {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / options.probe_rate));
    // A probe answered late delays the next one instead of sending the
    // missed ones back to back.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut progress = (Instant::now(), shared.clicks.get());
    while start.elapsed() < duration {
        ticks.tick().await;
        if shared.lost.get() > 0 {
            return Err(format!("a dashboard was cut off: {}", shared.first_loss.borrow().as_deref().unwrap_or("")));
        }
        let seq = shared.probes.borrow().len() as u64;
        let account = seq as usize % options.links.len();
        let sent = Instant::now();
        shared.probes.borrow_mut().push(Probe { sent, account, received: 0 });
        probe.send(&options.links[account].1, &probe_host(seq)).await?;
        let status = probe.answer().await?;
        if status != 302 {
            return Err(format!("probe {seq} on /l/{} was answered {status}, not 302", options.links[account].1));
        }
        shared.redirect_us.borrow_mut().saturating_record((sent.elapsed().as_micros() as u64).max(1));
        if progress.0.elapsed() >= Duration::from_secs(1) {
            let clicks = shared.clicks.get();
            eprintln!(
                "loadgen: t={:>3.0}s  {} probes, {} complete, {} clicks/s on the dashboards, p99 {} us so far",
                start.elapsed().as_secs_f64(),
                seq + 1,
                shared.complete.get(),
                grouped(((clicks - progress.1) as f64 / progress.0.elapsed().as_secs_f64()) as u64),
                shared.delivery_us.borrow().value_at_quantile(0.99)
            );
            progress = (Instant::now(), clicks);
        }
    }
    Ok(())
}

/// Connects and waits for the `snapshot`, which a clicks room sends first.
async fn join(url: &str, options: ClientOptions) -> Result<Client, String> {
    let mut client = Client::connect_with(url, options).await.map_err(|e| format!("connect: {e}"))?;
    let first = client.recv_message().await.map_err(|e| format!("waiting for the snapshot: {e}"))?;
    match (&first, kind(first.payload())) {
        (Message::Text(_), Kind::Snapshot) => Ok(client),
        _ => Err(format!("the first message was not a snapshot: {:?}", String::from_utf8_lossy(&first.payload()[..first.payload().len().min(120)]))),
    }
}

/// One dashboard: takes in every message, a whole read's worth at a time.
async fn dashboard(mut client: Client, account: usize, shared: Rc<Shared>) {
    let mut last = None;
    let why = 'read: loop {
        let mut event = match client.recv().await {
            Ok(event) => event,
            Err(e) => break e.to_string(),
        };
        loop {
            match event {
                Some(Event::Message(message)) => {
                    let kind = kind(message.payload());
                    if matches!(kind, Kind::Click | Kind::Clicks) {
                        shared.clicks(message.payload(), kind, account, &mut last);
                    }
                }
                Some(Event::Close(frame)) => {
                    let code = frame.code.map_or_else(|| "no code".to_owned(), |c| c.as_u16().to_string());
                    break 'read format!("closed by the server with {code} {:?}", frame.reason);
                }
                Some(_) => {}
                None => break 'read "the server ended the TCP connection".to_owned(),
            }
            event = match client.try_recv() {
                Ok(Some(next)) => Some(next),
                Ok(None) => break,
                Err(e) => break 'read e.to_string(),
            };
        }
        if !shared.running.get() {
            return;
        }
    };
    if shared.running.get() {
        shared.lost.set(shared.lost.get() + 1);
        shared.first_loss.borrow_mut().get_or_insert(why);
    }
}

impl ClicksReport {
    pub(crate) fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!("scenario      clicks");
        let plural = if self.accounts == 1 { "" } else { "s" };
        println!("dashboards    {} over {} account{plural}, from {}", grouped(u64::from(self.dashboards)), self.accounts, self.sources);
        println!("offer         {}", if self.deflate { "permessage-deflate; client_max_window_bits (a browser's)" } else { "none" });
        println!("join time     {:.2} s (before the window)", self.joined_in.as_secs_f64());
        println!("duration      {secs:.2} s");
        println!("probes        {} sent at {}/s, every one answered 302", grouped(self.probes), self.probe_rate);
        println!("deliveries    {} of {} (probe clicks on their account's dashboards)", grouped(self.deliveries), grouped(self.expected));
        println!("complete      {} of {} probes on every dashboard of their account", grouped(self.complete), grouped(self.probes));
        println!("disordered    {}", grouped(self.disordered));
        if !self.delivery_us.is_empty() {
            println!("latency us    {} (redirect request to click on a dashboard)", latency_row(&self.delivery_us));
        }
        if !self.everywhere_us.is_empty() {
            println!("everywhere us {} (redirect request to click on the last dashboard)", latency_row(&self.everywhere_us));
        }
        if !self.redirect_us.is_empty() {
            println!("redirect us   {} (probe's redirect request to its 302)", latency_row(&self.redirect_us));
        }
        println!("clicks/s      {} clicks received by the dashboards", grouped((self.clicks_in_window as f64 / secs).round() as u64));
        let per_message = if self.messages_in_window == 0 { 0.0 } else { self.clicks_in_window as f64 / self.messages_in_window as f64 };
        println!(
            "messages/s    {} click and clicks messages received by the dashboards, {per_message:.1} clicks per message",
            grouped((self.messages_in_window as f64 / secs).round() as u64)
        );
        if !self.lag_ms.is_empty() {
            println!("lag ms        {} (a click's time to its arrival, 1 in {LAG_SAMPLE})", latency_row(&self.lag_ms));
        }
        if self.lost > 0 {
            println!("lost          {} dashboards cut off during the run; first: {}", self.lost, self.first_loss.as_deref().unwrap_or(""));
        }
        let share = |wait: Option<f64>| wait.map_or_else(|| "unknown".to_owned(), |w| format!("{:.0} %", w / secs * 100.0));
        if self.client_wait.is_some() || self.server_wait.is_some() {
            println!(
                "core wait     loadgen {}, server {} of the window (threads ready to run but waiting for a core, summed)",
                share(self.client_wait),
                share(self.server_wait)
            );
        }
        print_cpu(secs, self.client_cpu, self.server_cpu, (self.clicks_in_window, "click delivered"));
        let starved = |wait: Option<f64>, cpu: Option<cpu::CpuTime>| matches!((wait, cpu), (Some(w), Some(c)) if w > c.total());
        if starved(self.client_wait, self.client_cpu) || starved(self.server_wait, self.server_cpu) {
            println!(
                "oversubscribed threads waited for a core longer than they ran: the machine had more work than cores, and the latencies include that wait"
            );
        }
    }

    /// Fails a run in which a probe click went missing on a dashboard, came
    /// twice or out of order, or a dashboard was cut off.
    pub(crate) fn outcome(&self) -> Result<(), String> {
        if self.lost > 0 {
            return Err(format!("{} dashboards were cut off during the run", self.lost));
        }
        if self.probes == 0 {
            return Err("no probe was sent".into());
        }
        if self.disordered > 0 {
            return Err(format!("{} probe clicks came twice, out of order or to the wrong account", self.disordered));
        }
        if self.deliveries < self.expected {
            return Err(format!(
                "{} probe clicks lost: {} of {} probes reached every dashboard of their account within {} s of the end",
                self.expected - self.deliveries,
                self.complete,
                self.probes,
                GRACE.as_secs()
            ));
        }
        Ok(())
    }
}
