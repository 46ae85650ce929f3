//! The `switchboard` command: parses the command line, sets up logging and
//! runs the server. No logic of its own lives here.

mod auth_args;
mod compression_args;
mod duration;
mod edge_args;
mod huge_pages;

/// mimalloc instead of the system allocator: connections borrow and return
/// buffers all the time, and glibc's malloc hands freed pages back to the
/// kernel only to fault them in again (a large share of the server's time
/// echoing large messages went to page faults; see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use switchboard_server::call::ice::{check_url, DEFAULT_TURN_TTL};
use switchboard_server::call::{IceConfig, TurnSecret};
use switchboard_server::{CallConfig, ChatConfig, DrainConfig, GeoDb, IpNet, Server, ServerConfig, StopRequest, TrustedProxies};
use tokio::sync::watch;

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
    Serve {
        /// Address to listen on. Port 0 picks a free port; the address bound
        /// is printed on stdout as `switchboard listening on http://ADDR`.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Ping a connection after this much silence from it (e.g. 30s, 500ms).
        #[arg(long, default_value = "30s", value_parser = duration::parse_duration)]
        ping_interval: Duration,
        /// Drop a pinged connection that sends nothing back within this time.
        #[arg(long, default_value = "10s", value_parser = duration::parse_duration)]
        pong_timeout: Duration,
        /// Directory of the room database (SQLite, `switchboard.db`).
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Keep room storage in memory only (nothing survives a restart).
        #[arg(long, conflicts_with = "data_dir")]
        memory: bool,
        /// Drop an idle room's in-memory state after this long; its
        /// connections stay open and the next event rebuilds it.
        #[arg(long, default_value = "10s", value_parser = duration::parse_duration)]
        hibernate_after: Duration,
        /// MaxMind-format geo database (GeoLite2/GeoIP2 City or Country,
        /// DB-IP, ip-location-db) for client countries; repeatable (e.g. the
        /// IPv4 and the IPv6 file), first match wins. Without one countries
        /// are unknown; an unreadable file is reported and skipped.
        #[arg(long = "geo-db", value_name = "PATH")]
        geo_dbs: Vec<PathBuf>,
        /// A proxy (address or CIDR network) whose `Forwarded` /
        /// `X-Forwarded-For` headers name the client; repeatable.
        #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_network)]
        trusted_proxies: Vec<IpNet>,
        #[command(flatten)]
        chat: ChatArgs,
        #[command(flatten)]
        call: CallArgs,
        #[command(flatten)]
        compression: compression_args::CompressionArgs,
        #[command(flatten)]
        auth: auth_args::AuthArgs,
        #[command(flatten)]
        edge: edge_args::EdgeArgs,
        /// Let the allocator use transparent huge pages (the kernel's
        /// default). Off by default: they cost memory per idle connection
        /// and at start, for no measured speed-up (docs/benchmarks.md).
        #[arg(long)]
        huge_pages: bool,
        #[command(flatten)]
        ops: OpsArgs,
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
    },
}

/// Draining and logs (docs/operations.md).
#[derive(clap::Args)]
struct OpsArgs {
    /// On SIGTERM, how long the listener keeps accepting after /readyz
    /// turned 503, so load balancers stop sending clients first (0s: none).
    #[arg(long, default_value = "5s", value_parser = duration::parse_duration_or_zero)]
    drain_grace: Duration,
    /// On SIGTERM, how long open connections may stay after the listener
    /// closed; those left are then closed with 1001 (0s: at once).
    #[arg(long, default_value = "20s", value_parser = duration::parse_duration_or_zero)]
    drain_timeout: Duration,
    /// Log lines as human-readable text, or as one JSON object per line
    /// for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The chat room kind's limits.
#[derive(clap::Args)]
struct ChatArgs {
    /// Users per chat room.
    #[arg(long, default_value_t = ChatConfig::default().max_users, value_parser = clap::value_parser!(u32).range(1..=100_000).map(|v| v as usize))]
    chat_max_users: usize,
    /// Longest chat message, in characters.
    #[arg(long, default_value_t = ChatConfig::default().max_length, value_parser = clap::value_parser!(u32).range(1..=65_536).map(|v| v as usize))]
    chat_max_length: usize,
    /// Chat messages per second per user, sustained.
    #[arg(long, default_value_t = ChatConfig::default().per_second, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    chat_rate: u32,
    /// Chat messages a user may send in one burst.
    #[arg(long, default_value_t = ChatConfig::default().burst, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    chat_burst: u32,
    /// Chat messages kept per room and sent to newcomers.
    #[arg(long, default_value_t = ChatConfig::default().history, value_parser = clap::value_parser!(u32).range(0..=10_000).map(|v| v as usize))]
    chat_history: usize,
}

impl ChatArgs {
    fn config(&self) -> ChatConfig {
        ChatConfig {
            max_users: self.chat_max_users,
            max_length: self.chat_max_length,
            per_second: self.chat_rate,
            burst: self.chat_burst,
            history: self.chat_history,
        }
    }
}

/// The call room kind's limits and ICE servers (docs/call.md).
#[derive(clap::Args)]
struct CallArgs {
    /// A STUN server for call peers, `stun:HOST[:PORT]`; repeatable.
    #[arg(long = "call-stun", value_name = "URL", value_parser = |url: &str| check_url(url, &["stun", "stuns"]).map(|()| url.to_owned()))]
    call_stun: Vec<String>,
    /// A TURN server for call peers, `turn:HOST[:PORT][?transport=udp|tcp]`
    /// or `turns:`; repeatable. Needs --call-turn-secret-file.
    #[arg(long = "call-turn", value_name = "URL", requires = "call_turn_secret_file",
          value_parser = |url: &str| check_url(url, &["turn", "turns"]).map(|()| url.to_owned()))]
    call_turn: Vec<String>,
    /// File holding the TURN server's shared secret (coturn's
    /// `static-auth-secret`; white space around it is ignored). The server
    /// does not start if it cannot read it. The secret is never logged.
    #[arg(long, value_name = "PATH", requires = "call_turn")]
    call_turn_secret_file: Option<PathBuf>,
    /// How long the TURN credentials handed to a peer stay valid.
    #[arg(long, default_value = "1h", value_parser = turn_ttl)]
    call_turn_ttl: Duration,
    /// Peers per call.
    #[arg(long, default_value_t = CallConfig::default().max_peers, value_parser = clap::value_parser!(u32).range(2..=100).map(|v| v as usize))]
    call_max_peers: usize,
}

impl CallArgs {
    /// The call's settings, with the TURN secret read from its file; the
    /// error names the file and why, never its content.
    fn config(&self) -> Result<CallConfig, String> {
        let turn_secret = match &self.call_turn_secret_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the TURN secret file {}: {e}", path.display()))?;
                let secret = TurnSecret::from_file_text(&text).ok_or_else(|| format!("the TURN secret file {} is empty", path.display()))?;
                Some(secret)
            }
        };
        let ice = IceConfig { stun: self.call_stun.clone(), turn: self.call_turn.clone(), turn_secret, turn_ttl: self.call_turn_ttl };
        Ok(CallConfig { max_peers: self.call_max_peers, ice, ..CallConfig::default() })
    }
}

/// A TURN credential lifetime: whole seconds (the expiry in the username
/// is in seconds), at least one.
fn turn_ttl(text: &str) -> Result<Duration, String> {
    let ttl = duration::parse_duration(text)?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("TURN credentials must live at least 1s (default {}s)", DEFAULT_TURN_TTL.as_secs()));
    }
    Ok(ttl)
}

/// `10.0.0.0/8`, or a single address (`10.0.0.5`, `::1`).
fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR network like 10.0.0.0/8"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve { huge_pages, ops, .. } => {
            init_logs(ops.log_format);
            if !huge_pages {
                huge_pages::disable();
            }
        }
        _ => init_logs(LogFormat::Text),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve {
            listen,
            ping_interval,
            pong_timeout,
            data_dir,
            memory,
            hibernate_after,
            geo_dbs,
            trusted_proxies,
            chat,
            call,
            compression,
            auth,
            edge,
            huge_pages: _,
            ops,
        } => {
            let mut config = ServerConfig { data_dir: (!memory).then_some(data_dir), ..ServerConfig::default() };
            config.auth = match auth.config(config.data_dir.as_deref()) {
                Ok(auth) => auth,
                Err(e) => {
                    eprintln!("switchboard: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = config.auth.check(!trusted_proxies.is_empty()) {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
            config.apps.call = match call.config() {
                Ok(call) => call,
                Err(e) => {
                    eprintln!("switchboard: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let ice = &config.apps.call.ice;
            tracing::info!(
                stun = ice.stun.len(),
                turn = ice.turn.len(),
                turn_ttl_s = ice.turn_ttl.as_secs(),
                max_peers = config.apps.call.max_peers,
                "call settings"
            );
            config.net.ping_interval = ping_interval;
            config.net.pong_timeout = pong_timeout;
            config.rooms.hibernate_after = hibernate_after;
            config.apps.chat = chat.config();
            compression.apply(&mut config);
            config.trusted_proxies = TrustedProxies::new(trusted_proxies);
            config.edge = match edge.config() {
                Ok(edge) => edge,
                Err(e) => {
                    eprintln!("switchboard: {e}");
                    return ExitCode::FAILURE;
                }
            };
            config.geo = load_geo(&geo_dbs);
            config.drain = DrainConfig { grace: ops.drain_grace, timeout: ops.drain_timeout };
            runtime.block_on(serve(listen, config))
        }
        Command::Token { account, ttl, jwt_secret_file, data_dir } => print_token(&account, ttl, jwt_secret_file.as_deref(), &data_dir),
    }
}

fn print_token(account: &str, ttl: Duration, secret_file: Option<&std::path::Path>, data_dir: &std::path::Path) -> ExitCode {
    let token = auth_args::minting_keys(secret_file, data_dir).and_then(|keys| keys.mint(account, ttl).map_err(|e| e.to_string()));
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

/// Loads every readable geo database. A missing file must not keep the
/// server from starting (countries are a nicety), so it is reported loudly
/// and skipped.
fn load_geo(paths: &[PathBuf]) -> Option<Arc<GeoDb>> {
    let mut db = GeoDb::new();
    for path in paths {
        match db.add(path) {
            Ok(kind) => tracing::info!(path = %path.display(), kind, "geo database loaded"),
            Err(e) => tracing::warn!("{e}; skipped"),
        }
    }
    if db.is_empty() && !paths.is_empty() {
        tracing::warn!("no geo database could be read: client countries will be unknown");
    }
    (!db.is_empty()).then(|| Arc::new(db))
}

async fn serve(listen: SocketAddr, config: ServerConfig) -> ExitCode {
    let server = match Server::bind(listen, config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("switchboard: cannot listen on {listen}: {e}");
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
    // Tests and scripts read this line to learn the port.
    println!("switchboard listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "try: new WebSocket('ws://{addr}/rooms/echo/x')");

    let (stop_tx, stop_rx) = watch::channel(StopRequest::Serve);
    tokio::spawn(forward_signals(stop_tx));
    server.run_until(stop_rx).await;
    ExitCode::SUCCESS
}

/// Text for people, or one JSON object per line (tracing-subscriber's
/// `json` format, the event's fields at the top level) for log shippers.
fn init_logs(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// SIGTERM drains (what an orchestrator or a rolling deploy sends); SIGINT
/// (Ctrl-C at a terminal) stops at once, as does a second SIGTERM during a
/// drain. The sender stays with this task for the process's life: the
/// server takes a dropped sender as a request to stop.
async fn forward_signals(stop: watch::Sender<StopRequest>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGTERM; only Ctrl-C stops the server");
            None
        }
    };
    loop {
        let request = tokio::select! {
            _ = tokio::signal::ctrl_c() => StopRequest::Now,
            Some(()) = async { term.as_mut()?.recv().await } => {
                if *stop.borrow() == StopRequest::Serve { StopRequest::Drain } else { StopRequest::Now }
            }
        };
        tracing::info!(?request, "signal received");
        let _ = stop.send(request);
        if request == StopRequest::Now {
            std::future::pending::<()>().await;
        }
    }
}
