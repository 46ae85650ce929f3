//! `switchboard-loadgen`: drives a WebSocket server with many connections
//! from one thread and reports throughput, latency and who was the
//! bottleneck. It speaks plain RFC 6455, so it measures any server.
//!
//! Every run is bounded in time (at most 300 s) and refuses targets outside
//! 127.0.0.0/8 unless `--allow-remote` is given.

mod broadcast;
mod call;
mod chat;
mod churn;
mod clicks;
mod cpu;
mod dashboard_message;
mod echo;
mod fd_limit;
mod idle;
mod joining;
mod payload;
mod proc_stats;
mod redirect_probe;
mod report;
mod target;
mod tls;

/// mimalloc, as in the server: the generator must cost less than what it
/// measures, and with glibc's malloc it spent noticeably more instructions
/// per echoed message.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchboard_client::{ClientOptions, DeflateOptions};

/// Load generator for WebSocket servers.
#[derive(Parser)]
#[command(name = "switchboard-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N connections each keep W messages in flight to an echo endpoint.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
    },
    /// S subscribers in one room; one publisher keeps W broadcasts not yet
    /// received by every subscriber. The endpoint must relay each message to
    /// every other member (switchboard's broadcast room does).
    Broadcast {
        #[command(flatten)]
        common: Common,
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
    },
    /// N idle connections spread over R rooms: handshakes per second, and the
    /// server's memory and open files per connection. The URL names the rooms'
    /// common prefix: with `ws://HOST:PORT/rooms/echo/idle`, connection i joins
    /// room `/rooms/echo/idle-{i mod R}`.
    Idle(idle::Options),
    /// C loops that each connect, send one message, wait for its echo and
    /// close cleanly, over and over: connections per second, failures, and
    /// whether the server's open files and memory come back down afterwards.
    Churn(churn::Options),
    /// R rooms of U users on the chat room kind, each user sending chat
    /// messages at a steady rate once welcomed: acknowledged messages per
    /// second, send-to-ack latency, deliveries per second and errors by
    /// code. The URL names the rooms' common prefix, as for idle.
    Chat(chat::Options),
    /// R rooms of P peers on the call room kind, each peer sending WebRTC
    /// signals to the next peer of its room at a steady rate once all have
    /// joined: signals relayed per second, send-to-relay latency, errors by
    /// code, signals never relayed and the server's memory per call room.
    /// The URL names the rooms' common prefix, as for idle.
    Call(call::Options),
    /// D dashboards on the clicks rooms of one or more accounts, taking in
    /// every click (a message per group the room records), and probe clicks at a steady rate on a
    /// keep-alive HTTP connection of their own: the time from a probe's
    /// redirect request to its click on each dashboard of its account, and
    /// probe clicks lost. The bulk of the redirects comes from elsewhere
    /// (wrk in scripts/bench-clicks.sh). The URL names the clicks rooms'
    /// prefix, `ws://HOST:PORT/rooms/clicks`.
    Clicks(clicks::Options),
}

/// Where to connect and which server process to watch.
#[derive(Args, Clone)]
pub(crate) struct Target {
    /// WebSocket URL of the endpoint.
    #[arg(long)]
    url: String,
    /// PID of the server, to report its CPU use (and memory and open files,
    /// where the scenario reports them) next to ours.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Allow a target outside 127.0.0.0/8.
    #[arg(long)]
    allow_remote: bool,
    /// PEM file of the CA to trust for a `wss://` URL.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Offer permessage-deflate as a browser does (Chromium's offer,
    /// `permessage-deflate; client_max_window_bits`), so the server pays
    /// what browsers cost it. Messages we send are compressed from any size.
    #[arg(long)]
    pub(crate) deflate: bool,
}

impl Target {
    /// Client options for this target: the browser's offer with `--deflate`,
    /// the CA of `--tls-ca` for `wss://`.
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions { deflate: self.deflate.then(DeflateOptions::browser), ..crate::tls::client_options() }
    }
}

/// Options of the echo and broadcast scenarios.
#[derive(Args, Clone)]
pub(crate) struct Common {
    #[command(flatten)]
    target: Target,
    /// Messages in flight per connection (echo) or broadcasts not yet
    /// received by everyone (broadcast).
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Message payload size in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Send binary messages instead of text.
    #[arg(long)]
    binary: bool,
    /// Send JSON documents of about `--size` bytes (a list of records, as
    /// apps send) instead of filler bytes: text that compresses like app
    /// traffic, for servers that compress.
    #[arg(long)]
    json: bool,
    /// Measurement time in seconds (after connecting), at most 300.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

impl Common {
    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds.clamp(1, 300))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = match &cli.scenario {
        Scenario::Echo { common, .. } | Scenario::Broadcast { common, .. } => &common.target,
        Scenario::Idle(options) => &options.target,
        Scenario::Churn(options) => &options.target,
        Scenario::Chat(options) => &options.target,
        Scenario::Call(options) => &options.target,
        Scenario::Clicks(options) => &options.target,
    };
    if let Err(why) = target::check(&target.url, target.allow_remote) {
        eprintln!("switchboard-loadgen: {why}");
        return ExitCode::from(2);
    }
    if let Some(ca) = &target.tls_ca {
        if let Err(why) = tls::trust(ca) {
            eprintln!("switchboard-loadgen: {why}");
            return ExitCode::from(2);
        }
    }
    // Every connection is an open file; the usual soft limit (1024) is far
    // below what the idle and broadcast scenarios open.
    fd_limit::raise();
    // One thread: the load generator must cost less than what it measures.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, async {
        match cli.scenario {
            Scenario::Echo { common, connections } => echo::run(&common, connections).await.map(|r| r.print()),
            Scenario::Broadcast { common, subscribers } => broadcast::run(&common, subscribers).await.map(|r| r.print()),
            // These print their table even when connections failed or
            // ended early; the exit status still says so.
            Scenario::Idle(options) => idle::run(&options).await.and_then(|r| {
                r.print();
                r.outcome()
            }),
            Scenario::Churn(options) => churn::run(&options).await.and_then(|r| {
                r.print();
                r.outcome()
            }),
            Scenario::Chat(options) => chat::run(&options).await.and_then(|r| {
                r.print();
                r.outcome()
            }),
            Scenario::Call(options) => call::run(&options).await.and_then(|r| {
                r.print();
                r.outcome()
            }),
            Scenario::Clicks(options) => clicks::run(&options).await.and_then(|r| {
                r.print();
                r.outcome()
            }),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
