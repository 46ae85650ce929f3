//! The `switchboard` command: parses the command line, sets up logging and
//! runs the server. No logic of its own lives here.

mod duration;

/// mimalloc instead of the system allocator: connections borrow and return
/// buffers all the time, and glibc's malloc hands freed pages back to the
/// kernel only to fault them in again (page faults were 15 % of the
/// server's time echoing 16 KiB messages; see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchboard_server::{Server, ServerConfig};
use tokio::sync::watch;

/// A self-hosted realtime server: WebSocket rooms as durable actors.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve { listen, ping_interval, pong_timeout, data_dir, memory, hibernate_after } => {
            let mut config = ServerConfig { data_dir: (!memory).then_some(data_dir), ..ServerConfig::default() };
            config.net.ping_interval = ping_interval;
            config.net.pong_timeout = pong_timeout;
            config.rooms.hibernate_after = hibernate_after;
            runtime.block_on(serve(listen, config))
        }
    }
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

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing connections with 1001");
        let _ = stop_tx.send(true);
    });
    server.run(stop_rx).await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
