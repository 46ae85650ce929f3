//! The `switchboard` command: parses the command line, sets up logging and
//! runs the server. No logic of its own lives here.

mod accounts_cmd;
mod auth_args;
mod cluster_args;
mod cluster_settings;
mod compression_args;
mod config_file;
mod duration;
mod edge_args;
mod edge_settings;
mod huge_pages;
mod kind_table;
mod parsed;
mod secret;
mod settings;
mod sighup;

/// mimalloc instead of the system allocator: connections borrow and return
/// buffers all the time, and glibc's malloc hands freed pages back to the
/// kernel only to fault them in again (a large share of the server's time
/// echoing large messages went to page faults; see docs/benchmarks.md).
/// Its 2.x series (see Cargo.toml for why not 3.x). The `system-allocator`
/// feature keeps glibc's, so that heap profilers
/// (heaptrack, valgrind's dhat) see each allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use switchboard_server::{ClusterConfig, IpNet, Server, ServerConfig, StopRequest};
use tokio::sync::watch;

use crate::secret::Secret;
use crate::settings::{parse_count, parse_network, parse_stun_url, parse_turn_ttl, parse_turn_url, LogFormat, Runtime, Settings};

/// A self-hosted realtime server: WebSocket rooms as durable actors.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start; the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Check or print the configuration (docs/configuration.md).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage accounts and their API keys (for the links API and dashboards).
    Accounts {
        /// Directory of the database (as `serve --data-dir`).
        #[arg(long, default_value = "./data", global = true)]
        data_dir: PathBuf,
        /// With NATS servers (`--cluster`, `[cluster]` of `--config`), the
        /// cluster's accounts instead of the database's.
        #[command(flatten)]
        cluster: cluster_args::ToolCluster,
        #[command(subcommand)]
        action: accounts_cmd::AccountsAction,
    },
    /// Print a token for an account: HS256, signed with the server's secret
    /// (docs/auth.md).
    Token {
        /// The token's subject.
        #[arg(long)]
        account: String,
        /// How long the token is valid.
        #[arg(long, default_value = "1h", value_parser = duration::parse_duration)]
        ttl: Duration,
        /// File holding the HS256 secret; by default DATA_DIR/jwt-secret.
        #[arg(long, value_name = "PATH")]
        jwt_secret_file: Option<PathBuf>,
        /// The server's data directory.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// With NATS servers (`--cluster`, `[cluster]` of `--config`) and
        /// no --jwt-secret-file, the cluster's shared secret.
        #[command(flatten)]
        cluster: cluster_args::ToolCluster,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: exit 0 when it is valid, else 1 with
    /// what is wrong (file, line, key).
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print the effective configuration as TOML: the file's settings with
    /// environment variables and flags applied, secrets masked.
    Show(Box<ServeArgs>),
}

/// `serve`'s settings. Each overrides the configuration file's key of the
/// same meaning, and each can come from an environment variable instead
/// (the flag wins over the variable). Defaults are in docs/configuration.md.
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free
    /// port; the address bound is printed on stdout as `switchboard
    /// listening on http://ADDR`.
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of an HTTPS / `wss://` listener beside the plain one; needs
    /// --tls-cert and --tls-key (docs/tls.md). Printed on stdout as
    /// `switchboard listening on https://ADDR`.
    #[arg(long, env = "SWITCHBOARD_LISTEN_TLS", value_name = "ADDR")]
    listen_tls: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener, the server's certificate
    /// first; reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Ping a connection after this much silence from it (e.g. 30s, 500ms)
    /// [default: 30s].
    #[arg(long, env = "SWITCHBOARD_PING_INTERVAL", value_parser = duration::parse_duration)]
    ping_interval: Option<Duration>,
    /// Drop a pinged connection that sends nothing back within this time
    /// [default: 10s].
    #[arg(long, env = "SWITCHBOARD_PONG_TIMEOUT", value_parser = duration::parse_duration)]
    pong_timeout: Option<Duration>,
    /// Park a plain (non-TLS) connection after this long without a message
    /// either way, freeing its task until its next news; 0s never parks
    /// [default: 10s].
    #[arg(long, env = "SWITCHBOARD_PARK_AFTER", value_parser = duration::parse_duration_or_zero)]
    park_after: Option<Duration>,
    /// Directory of the room database (SQLite, `switchboard.db`)
    /// [default: ./data].
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep room storage in memory only (nothing survives a restart).
    #[arg(long, env = "SWITCHBOARD_MEMORY", conflicts_with = "data_dir", num_args = 0..=1, default_missing_value = "true")]
    memory: Option<bool>,
    /// Drop an idle room's in-memory state after this long; its
    /// connections stay open and the next event rebuilds it [default: 10s].
    #[arg(long, env = "SWITCHBOARD_HIBERNATE_AFTER", value_parser = duration::parse_duration)]
    hibernate_after: Option<Duration>,
    /// MaxMind-format geo database (GeoLite2/GeoIP2 City or Country,
    /// DB-IP, ip-location-db) for client countries; repeatable (e.g. the
    /// IPv4 and the IPv6 file), first match wins. Without one countries
    /// are unknown; an unreadable file is reported and skipped.
    #[arg(long = "geo-db", env = "SWITCHBOARD_GEO_DB", value_delimiter = ',', value_name = "PATH")]
    geo_dbs: Vec<PathBuf>,
    /// A proxy (address or CIDR network) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client; repeatable.
    #[arg(long = "trusted-proxy", env = "SWITCHBOARD_TRUSTED_PROXY", value_delimiter = ',', value_name = "CIDR", value_parser = parse_network)]
    trusted_proxies: Vec<IpNet>,
    #[command(flatten)]
    chat: ChatArgs,
    #[command(flatten)]
    call: CallArgs,
    /// Let the allocator use transparent huge pages (the kernel's
    /// default). Off by default: they cost memory per idle connection
    /// and at start, for no measured speed-up (docs/benchmarks.md).
    #[arg(long, env = "SWITCHBOARD_HUGE_PAGES", num_args = 0..=1, default_missing_value = "true")]
    huge_pages: Option<bool>,
    /// How threads serve connections: `event-loops` (each thread accepts
    /// and serves its own connections) or `work-stealing` (one runtime
    /// whose threads share all tasks) [default: event-loops].
    #[arg(long, env = "SWITCHBOARD_RUNTIME", value_enum)]
    runtime: Option<Runtime>,
    /// Threads serving connections; 0: one per core the process may run
    /// on [default: 0].
    #[arg(long, env = "SWITCHBOARD_THREADS", value_parser = parse_count::<0, 1024, usize>)]
    threads: Option<usize>,
    #[command(flatten)]
    auth: auth_args::AuthArgs,
    #[command(flatten)]
    edge: edge_args::EdgeArgs,
    #[command(flatten)]
    compression: compression_args::CompressionArgs,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    cluster: cluster_args::ClusterArgs,
}

/// Draining and logs (docs/operations.md; `[drain]` and `log_format`).
#[derive(clap::Args)]
struct OpsArgs {
    /// On SIGTERM, how long the listener keeps accepting after /readyz
    /// turned 503, so load balancers stop sending clients first (0s: none)
    /// [default: 5s].
    #[arg(long, env = "SWITCHBOARD_DRAIN_GRACE", value_parser = duration::parse_duration_or_zero)]
    drain_grace: Option<Duration>,
    /// On SIGTERM, how long open connections may stay after the listener
    /// closed; those left are then closed with 1001 (0s: at once)
    /// [default: 20s].
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT", value_parser = duration::parse_duration_or_zero)]
    drain_timeout: Option<Duration>,
    /// Log lines as human-readable text, or as one JSON object per line
    /// for log shippers [default: text].
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

/// The chat room kind's limits (`[kinds.chat]`).
#[derive(clap::Args)]
struct ChatArgs {
    /// Users per chat room [default: 100].
    #[arg(long, env = "SWITCHBOARD_CHAT_MAX_USERS", value_parser = parse_count::<1, 100_000, usize>)]
    chat_max_users: Option<usize>,
    /// Longest chat message, in characters [default: 500].
    #[arg(long, env = "SWITCHBOARD_CHAT_MAX_LENGTH", value_parser = parse_count::<1, 65_536, usize>)]
    chat_max_length: Option<usize>,
    /// Chat messages per second per user, sustained [default: 5].
    #[arg(long, env = "SWITCHBOARD_CHAT_RATE", value_parser = parse_count::<1, 10_000, u32>)]
    chat_rate: Option<u32>,
    /// Chat messages a user may send in one burst [default: 10].
    #[arg(long, env = "SWITCHBOARD_CHAT_BURST", value_parser = parse_count::<1, 10_000, u32>)]
    chat_burst: Option<u32>,
    /// Chat messages kept per room and sent to newcomers [default: 50].
    #[arg(long, env = "SWITCHBOARD_CHAT_HISTORY", value_parser = parse_count::<0, 10_000, usize>)]
    chat_history: Option<usize>,
}

/// The call room kind's limits and ICE servers (`[kinds.call]`, docs/call.md).
#[derive(clap::Args)]
struct CallArgs {
    /// A STUN server for call peers, `stun:HOST[:PORT]`; repeatable.
    #[arg(long = "call-stun", env = "SWITCHBOARD_CALL_STUN", value_delimiter = ',', value_name = "URL", value_parser = parse_stun_url)]
    call_stun: Vec<String>,
    /// A TURN server for call peers, `turn:HOST[:PORT][?transport=udp|tcp]`
    /// or `turns:`; repeatable. Needs a TURN secret.
    #[arg(long = "call-turn", env = "SWITCHBOARD_CALL_TURN", value_delimiter = ',', value_name = "URL", value_parser = parse_turn_url)]
    call_turn: Vec<String>,
    /// File holding the TURN server's shared secret (coturn's
    /// `static-auth-secret`; white space around it is ignored). The server
    /// does not start if it cannot read it. The secret is never logged.
    #[arg(long, env = "SWITCHBOARD_CALL_TURN_SECRET_FILE", value_name = "PATH")]
    call_turn_secret_file: Option<PathBuf>,
    /// The TURN server's shared secret itself, for deployments that pass
    /// secrets in the environment; prefer the variable to the flag, which
    /// other users of the machine can see. Never logged or shown.
    #[arg(long, env = "SWITCHBOARD_CALL_TURN_SECRET", hide_env_values = true, value_name = "SECRET", conflicts_with = "call_turn_secret_file")]
    call_turn_secret: Option<Secret>,
    /// How long the TURN credentials handed to a peer stay valid
    /// [default: 1h].
    #[arg(long, env = "SWITCHBOARD_CALL_TURN_TTL", value_parser = parse_turn_ttl)]
    call_turn_ttl: Option<Duration>,
    /// Peers per call [default: 6].
    #[arg(long, env = "SWITCHBOARD_CALL_MAX_PEERS", value_parser = parse_count::<2, 100, usize>)]
    call_max_peers: Option<usize>,
}

impl ServeArgs {
    /// The effective settings: the configuration file's (or the defaults),
    /// then every flag or environment variable given.
    fn settings(&self) -> Result<Settings, String> {
        let mut settings = match &self.config {
            Some(file) => config_file::read(file).map_err(|e| e.to_string())?,
            None => Settings::default(),
        };
        self.apply(&mut settings);
        self.auth.apply(&mut settings)?;
        self.edge.apply(&mut settings)?;
        self.compression.apply(&mut settings)?;
        self.cluster.apply(&mut settings);
        settings.validate()?;
        Ok(settings)
    }

    fn apply(&self, s: &mut Settings) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        fn set_list<T: Clone>(target: &mut Vec<T>, values: &[T]) {
            if !values.is_empty() {
                *target = values.to_vec();
            }
        }
        set(&mut s.listen, &self.listen);
        if self.listen_tls.is_some() {
            s.tls.listen = self.listen_tls;
        }
        if self.tls_cert.is_some() {
            s.tls.cert = self.tls_cert.clone();
        }
        if self.tls_key.is_some() {
            s.tls.key = self.tls_key.clone();
        }
        set(&mut s.connections.ping_interval, &self.ping_interval);
        set(&mut s.connections.pong_timeout, &self.pong_timeout);
        set(&mut s.connections.park_after, &self.park_after);
        if let Some(dir) = &self.data_dir {
            // Naming a directory means storing there, whatever the file says.
            s.data_dir = dir.clone();
            s.memory = false;
        }
        set(&mut s.memory, &self.memory);
        set(&mut s.hibernate_after, &self.hibernate_after);
        set_list(&mut s.geo_dbs, &self.geo_dbs);
        set_list(&mut s.trusted_proxies, &self.trusted_proxies);
        set(&mut s.huge_pages, &self.huge_pages);
        set(&mut s.runtime, &self.runtime);
        set(&mut s.threads, &self.threads);
        set(&mut s.log_format, &self.ops.log_format);
        set(&mut s.drain.grace, &self.ops.drain_grace);
        set(&mut s.drain.timeout, &self.ops.drain_timeout);
        let chat = &mut s.kinds.chat;
        set(&mut chat.max_users, &self.chat.chat_max_users);
        set(&mut chat.max_length, &self.chat.chat_max_length);
        set(&mut chat.rate, &self.chat.chat_rate);
        set(&mut chat.burst, &self.chat.chat_burst);
        set(&mut chat.history, &self.chat.chat_history);
        let call = &mut s.kinds.call;
        set_list(&mut call.stun, &self.call.call_stun);
        set_list(&mut call.turn, &self.call.call_turn);
        if self.call.call_turn_secret_file.is_some() {
            call.turn_secret_file = self.call.call_turn_secret_file.clone();
            call.turn_secret = None;
        }
        if self.call.call_turn_secret.is_some() {
            call.turn_secret = self.call.call_turn_secret.clone();
            call.turn_secret_file = None;
        }
        set(&mut call.turn_ttl, &self.call.call_turn_ttl);
        set(&mut call.max_peers, &self.call.call_max_peers);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match args.settings() {
            Ok(settings) => {
                init_logs(settings.log_format);
                run(settings)
            }
            Err(e) => {
                eprintln!("switchboard: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Config(ConfigCommand::Check { file }) => match config_file::load(&file).and_then(|s| config_file::check_files(&file, &s)) {
            Ok(()) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchboard: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Config(ConfigCommand::Show(args)) => match args.settings().and_then(|s| toml::to_string(&s).map_err(|e| e.to_string())) {
            Ok(text) => {
                print!("{text}");
                if !text.ends_with('\n') {
                    println!();
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchboard: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Token { account, ttl, jwt_secret_file, data_dir, cluster } => {
            init_logs(LogFormat::Text);
            match cluster.config() {
                Ok(cluster) => print_token(&account, ttl, jwt_secret_file.as_deref(), &data_dir, cluster),
                Err(e) => {
                    eprintln!("switchboard: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Accounts { data_dir, cluster, action } => {
            init_logs(LogFormat::Text);
            match cluster.config() {
                Ok(cluster) => accounts_cmd::run(&data_dir, cluster, action),
                Err(e) => {
                    eprintln!("switchboard: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Starts the server with the effective settings.
fn run(settings: Settings) -> ExitCode {
    if !settings.huge_pages {
        huge_pages::disable();
    }
    let config = match settings.server_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::FAILURE;
        }
    };

    let ice = &config.apps.call.ice;
    tracing::info!(stun = ice.stun.len(), turn = ice.turn.len(), turn_ttl_s = ice.turn_ttl.as_secs(), max_peers = config.apps.call.max_peers, "call settings");
    let threads = settings.thread_count();
    tracing::info!(runtime = ?settings.runtime, threads, "threads serving connections");
    // With event loops the main thread is the first loop; the server
    // starts the others (switchboard-server's `event_loops`).
    let mut runtime = match settings.runtime {
        Runtime::EventLoops => tokio::runtime::Builder::new_current_thread(),
        Runtime::WorkStealing => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(settings.listen, config))
}

fn print_token(account: &str, ttl: Duration, secret_file: Option<&std::path::Path>, data_dir: &std::path::Path, cluster: Option<ClusterConfig>) -> ExitCode {
    let keys = match cluster.filter(|_| secret_file.is_none()) {
        Some(cluster) => auth_args::cluster_minting_keys(cluster),
        None => auth_args::minting_keys(secret_file, data_dir),
    };
    let token = keys.and_then(|keys| keys.mint(account, ttl).map_err(|e| e.to_string()));
    match token {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr, config: ServerConfig) -> ExitCode {
    let tls_cert = config.tls.as_ref().map(|tls| tls.cert.clone());
    let server = match Server::bind(listen, config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match server.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before the address lines: whoever reads them may send SIGHUP at once,
    // and without the handler it would stop the process.
    if let (Some(reloader), Some(cert)) = (server.tls_reloader(), tls_cert) {
        sighup::reload_tls_on_sighup(reloader, cert);
    }
    // So are the stop signals': one that came before its handler would
    // stop the process without a drain, or be lost where the parent
    // ignores it.
    let stop_signals = StopSignals::listen();
    // Tests and scripts read these lines to learn the ports; the plain
    // listener's comes first.
    println!("switchboard listening on http://{addr}");
    if let Some(tls_addr) = server.local_tls_addr() {
        match tls_addr {
            Ok(tls_addr) => println!("switchboard listening on https://{tls_addr}"),
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "try: new WebSocket('ws://{addr}/rooms/echo/x')");

    let (stop_tx, stop_rx) = watch::channel(StopRequest::Serve);
    tokio::spawn(forward_signals(stop_signals, stop_tx));
    server.run_until(stop_rx).await;
    ExitCode::SUCCESS
}

/// Text for people, or one JSON object per line (tracing-subscriber's
/// `json` format, the event's fields at the top level) for log shippers.
/// Colours only on a terminal: in a file or a log collector the escape
/// codes are noise around every field.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    use switchboard_server::access_log::{write_directly, LineFormat};
    let colours = std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    // The access lines, one per request and per session, skip the generic
    // formatter where their own writer gives the same bytes: everywhere
    // but a terminal, which gets the colours.
    match format {
        LogFormat::Text => {
            logs.init();
            if !colours {
                write_directly(LineFormat::Text);
            }
        }
        LogFormat::Json => {
            logs.json().flatten_event(true).init();
            write_directly(LineFormat::Json);
        }
    }
}

/// The handlers of SIGTERM and SIGINT, installed before the server says
/// where it listens.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle {name}");
                None
            }
        };
        StopSignals { term: handler(SignalKind::terminate(), "SIGTERM"), interrupt: handler(SignalKind::interrupt(), "SIGINT") }
    }
}

/// SIGTERM drains (what an orchestrator or a rolling deploy sends); SIGINT
/// (Ctrl-C at a terminal) stops at once, as does a second SIGTERM during a
/// drain. The sender stays with this task for the process's life: the
/// server takes a dropped sender as a request to stop.
async fn forward_signals(mut signals: StopSignals, stop: watch::Sender<StopRequest>) {
    loop {
        let request = tokio::select! {
            Some(()) = async { signals.interrupt.as_mut()?.recv().await } => StopRequest::Now,
            Some(()) = async { signals.term.as_mut()?.recv().await } => {
                if *stop.borrow() == StopRequest::Serve { StopRequest::Drain } else { StopRequest::Now }
            }
            // Neither handler could be installed: nothing stops the server but a kill.
            else => std::future::pending::<StopRequest>().await,
        };
        tracing::info!(?request, "signal received");
        let _ = stop.send(request);
        if request == StopRequest::Now {
            std::future::pending::<()>().await;
        }
    }
}
