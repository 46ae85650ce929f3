//! The switchboard server: joins the connection layer to the room layer.
//!
//! This crate owns routing (which path reaches which room kind), identity
//! at the edge, the plain HTTP routes and embedded pages, the client's IP
//! and location, the registry of live rooms, the adapters between a socket
//! and a room, TLS (the HTTPS listener and its certificate), and
//! starting/stopping the listeners. The built-in room kinds come from
//! `switchboard-apps`.

mod access_line;
pub mod access_log;
pub mod accounts;
mod accounts_store;
mod assets;
pub mod auth;
mod click_recorder;
mod clicks_edge;
mod client_ip;
mod cluster;
mod conn_handler;
mod drain;
mod edge;
mod event_loops;
mod framing;
mod geo;
mod http;
mod kinds;
mod limits;
pub mod links;
mod links_api;
mod links_store;
mod metrics;
mod ops;
mod origin;
mod process_stats;
mod publish;
mod readiness;
mod redirect;
mod registry;
mod room_conn;
mod routes;
mod service;
mod timed_store;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use switchboard_room::RoomFactory;
use switchboard_store::{MemoryStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use accounts::{AccountError, Accounts};
pub use client_ip::TrustedProxies;
pub use cluster::{
    check_node_name, default_node_name, ClusterConfig, ClusterSettings, DEFAULT_FORWARD_TIMEOUT, DEFAULT_LEASE_TTL, DEFAULT_PREFIX, MAX_LEASE_TTL,
    MIN_LEASE_TTL,
};
pub use drain::{DrainConfig, StopRequest};
pub use edge::EdgeConfig;
pub use geo::GeoDb;
pub use ipnet::IpNet;
pub use kinds::RoomKindSpec;
pub use limits::{EdgeStats, Limits};
pub use origin::{BadOrigin, OriginPolicy};
pub use publish::PublishKey;
pub use routes::{is_kind_name, ApiRoute, RoomId, RoomKind, Route, RouteError};
pub use switchboard_apps::{call, AppsConfig, CallConfig, ChatConfig};
pub use switchboard_net::{DeflateOptions, NetConfig, Policy};
pub use switchboard_room::RoomConfig;
pub use tls::{check_files as check_tls_files, log_reload as log_tls_reload, TlsFiles, TlsReloader};

/// Server settings.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Connection-layer limits and timers.
    pub net: NetConfig,
    /// Room actors: hibernation and mailbox size.
    pub rooms: RoomConfig,
    /// Directory of the SQLite database (`switchboard.db`); `None` keeps
    /// room storage in memory (lost at exit).
    pub data_dir: Option<PathBuf>,
    /// Settings of the built-in room kinds (chat limits).
    pub apps: AppsConfig,
    /// Where client IPs are looked up; `None`: every location is unknown.
    pub geo: Option<Arc<GeoDb>>,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed
    /// (and, in `trusted-header` auth mode, the identity header).
    pub trusted_proxies: TrustedProxies,
    /// permessage-deflate policy per room kind, where it differs from the
    /// server's (`net.deflate.policy`); see docs/compression.md.
    pub compression_kinds: BTreeMap<String, Policy>,
    /// Limits, `Origin` allow-lists, HTTP body timeout, publish key.
    pub edge: EdgeConfig,
    /// How a drain ([`StopRequest::Drain`]) is timed.
    pub drain: DrainConfig,
    /// Identity at the edge: a mode per room kind and for the HTTP API.
    pub auth: auth::AuthConfig,
    /// An HTTPS / `wss://` listener beside the plain one.
    pub tls: Option<TlsFiles>,
    /// Cluster mode: join these NATS servers and share the rooms with the
    /// other nodes (docs/cluster.md); `None`: a single node.
    pub cluster: Option<ClusterConfig>,
    /// Event loops serving the listeners: with more than one, each loop
    /// beyond the first is a thread with a current-thread runtime and
    /// sockets of its own on the same addresses (`SO_REUSEPORT`), and a
    /// connection stays on the loop that accepted it. 0 or 1: the
    /// listeners are served on the caller's runtime only.
    pub event_loops: usize,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsListener>,
    /// The sockets of the event loops beyond the first.
    more_loops: Vec<event_loops::LoopSockets>,
    config: ServerConfig,
    store: Arc<dyn Store>,
    kinds: kinds::Kinds,
    accounts: Arc<Accounts>,
    links: Arc<links::Links>,
    origins: origin::OriginCheck,
    edge_stats: Arc<EdgeStats>,
    cluster: Option<cluster::Link>,
}

/// The TLS listener: its socket, its transport and its certificate's reloader.
struct TlsListener {
    listener: TcpListener,
    transport: Arc<tls::TlsTransport>,
    reloader: TlsReloader,
}

/// A room kind name that is not 1-32 characters of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKindName(pub String);

/// Pending connections the kernel may hold before we accept them. Bursts of
/// thousands of connects (a reconnect storm after a restart) must not be
/// dropped and retried after the 1 s SYN timeout. The kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr`; `shared` lets the sockets of the other
/// event loops bind the same address ([`bind_listener`]).
fn listen(addr: SocketAddr, shared: bool) -> std::io::Result<TcpListener> {
    // With SO_REUSEPORT a bind succeeds beside another process's listener
    // of the same user, which would then get a share of the connections. A
    // plain bind first makes an address in use an error, as without event
    // loops (and picks the port, for port 0).
    let addr = match shared {
        true => {
            let probe = tcp_socket(addr)?;
            probe.set_reuseaddr(true)?;
            probe.bind(addr)?;
            probe.local_addr()?
        }
        false => addr,
    };
    bind_listener(addr, shared)
}

/// A TCP socket of `addr`'s family.
fn tcp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
}

/// A listening socket on `addr`, with `SO_REUSEPORT` if `shared` (the
/// kernel lets only processes of the same user share an address).
fn bind_listener(addr: SocketAddr, shared: bool) -> std::io::Result<TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.set_reuseaddr(true)?;
    if shared {
        socket.set_reuseport(true)?;
    }
    // Accepted sockets inherit it (on Linux), which saves each connection a
    // system call (see switchboard-net's `nodelay`).
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Longest wait at shutdown for the rooms' last writes to be committed. A
/// healthy disk commits in milliseconds; this only bounds a stuck one.
pub const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "switchboard.db";

impl Server {
    /// Opens the storage, loads the TLS certificate if there is a TLS
    /// listener, and binds the listening sockets. Port 0 picks a free port;
    /// see [`Server::local_addr`]. Errors say which address or file failed.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> std::io::Result<Server> {
        // In cluster mode rooms live in JetStream, so any node can take one over.
        if let Some(settings) = config.cluster.clone() {
            let link = cluster::Link::connect(settings, true).await.map_err(std::io::Error::other)?;
            let store = link.store().expect("a link made with its store");
            return Server::bind_inner(addr, config, store, Some(link)).await;
        }
        let store: Arc<dyn Store> = match &config.data_dir {
            Some(dir) => Arc::new(SqliteStore::open(&dir.join(DATABASE_FILE)).map_err(std::io::Error::other)?),
            None => Arc::new(MemoryStore::new()),
        };
        Server::bind_inner(addr, config, store, None).await
    }

    /// Like [`Server::bind`], with rooms stored in `store` instead of the
    /// one `config.data_dir` names (a store of the embedder's own, or a
    /// wrapper around one in tests).
    /// In cluster mode, `store` must be one every node shares, for a room
    /// to survive its owner.
    pub async fn bind_with_store(addr: SocketAddr, config: ServerConfig, store: Arc<dyn Store>) -> std::io::Result<Server> {
        let link = match config.cluster.clone() {
            Some(settings) => Some(cluster::Link::connect(settings, false).await.map_err(std::io::Error::other)?),
            None => None,
        };
        Server::bind_inner(addr, config, store, link).await
    }

    async fn bind_inner(addr: SocketAddr, mut config: ServerConfig, store: Arc<dyn Store>, cluster: Option<cluster::Link>) -> std::io::Result<Server> {
        if let Some(link) = &cluster {
            auth::use_shared_secret(&mut config.auth, &link.tables()).await.map_err(std::io::Error::other)?;
        }
        auth::apply_kind_defaults(&mut config.auth, config.data_dir.as_deref()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        config.auth.check(!config.trusted_proxies.is_empty()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let origins = origin::OriginCheck::new(&config.edge.origins).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = match &config.tls {
            None => None,
            Some(files) => {
                let (transport, reloader) = tls::setup(files).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let listener = listen(files.listen, config.event_loops > 1)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", files.listen)))?;
                Some(TlsListener { listener, transport, reloader })
            }
        };
        let listener = listen(addr, config.event_loops > 1).map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let more_loops = event_loops::bind_more(config.event_loops, &listener, tls.as_ref().map(|tls| &tls.listener))?;
        let mut kinds = kinds::built_in(&config.apps);
        let (accounts, links) = match &cluster {
            // In cluster mode every node sees the same accounts and links.
            Some(link) => {
                let tables = link.tables();
                let accounts = Accounts::open_shared(&tables).await.map_err(std::io::Error::other)?;
                (accounts, links::Links::open_shared(&tables).await.map_err(|e| std::io::Error::other(e.to_string()))?)
            }
            // Else they share the rooms' database file, in tables of their own.
            None => {
                let database = config.data_dir.as_ref().map(|dir| dir.join(DATABASE_FILE));
                let accounts = Accounts::open(database.as_deref()).map_err(std::io::Error::other)?;
                (accounts, links::Links::open(database.as_deref()).map_err(|e| std::io::Error::other(e.to_string()))?)
            }
        };
        let (accounts, links) = (Arc::new(accounts), Arc::new(links));
        let clicks = RoomKindSpec { factory: switchboard_apps::clicks::factory(links.clone()), subprotocols: vec!["json".into()] };
        kinds.insert(switchboard_apps::clicks::KIND.to_owned(), clicks);
        Ok(Server { listener, tls, more_loops, config, store, kinds, origins, edge_stats: Arc::default(), accounts, links, cluster })
    }

    /// The edge's counters (connections, rooms, refusals by reason), for
    /// a metrics exporter; they move once the server runs.
    pub fn edge_stats(&self) -> Arc<EdgeStats> {
        self.edge_stats.clone()
    }

    /// Registers a room kind (or replaces a built-in one): rooms of it are
    /// at `/rooms/{name}/{id}`. `subprotocols` are in order of preference.
    pub fn add_room_kind(&mut self, name: &str, subprotocols: &[&str], factory: Arc<dyn RoomFactory>) -> Result<(), InvalidKindName> {
        if !is_kind_name(name) {
            return Err(InvalidKindName(name.to_owned()));
        }
        let subprotocols = subprotocols.iter().map(|p| p.to_string()).collect();
        self.kinds.insert(name.to_owned(), RoomKindSpec { factory, subprotocols });
        Ok(())
    }

    /// The accounts table: the HTTP API resolves `Bearer` API keys with
    /// [`Accounts::resolve_api_key`].
    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts.clone()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The TLS listener's address, when there is one.
    pub fn local_tls_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.tls.as_ref().map(|tls| tls.listener.local_addr())
    }

    /// Reloads the TLS certificate on demand (e.g. on `SIGHUP`); the server
    /// also reloads it by itself when its files change.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.as_ref().map(|tls| tls.reloader.clone())
    }

    /// Serves until `stop` becomes true, then closes every WebSocket with
    /// 1001, waits for their closing handshakes (bounded by the close
    /// timeout), hands the last recorded clicks to their rooms, and waits until the rooms' storage writes are committed
    /// (bounded by [`SETTLE_LIMIT`]).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let (requests, requested) = watch::channel(StopRequest::Serve);
        tokio::spawn(async move {
            let _ = stop.wait_for(|stop| *stop).await;
            let _ = requests.send(StopRequest::Now);
        });
        self.run_until(requested).await
    }

    /// Serves until `requests` asks it to stop: at once (as [`Server::run`])
    /// or after a drain timed by [`ServerConfig::drain`] (`/readyz` turns
    /// 503, the listener closes after the grace period, connections still
    /// open after the drain timeout are closed with 1001).
    pub async fn run_until(self, requests: watch::Receiver<StopRequest>) {
        for kind in self.config.compression_kinds.keys().filter(|kind| !self.kinds.contains_key(*kind)) {
            tracing::warn!(kind, "a compression policy is set for a room kind this server does not have");
        }
        let net_stats = Arc::new(switchboard_net::NetStats::new());
        let tls_stats = self.tls.as_ref().map(|tls| tls.transport.stats());
        let mut metrics = metrics::Metrics::new(net_stats.clone(), self.edge_stats.clone(), tls_stats);
        let cluster_metrics = cluster::ClusterMetrics::default();
        if self.cluster.is_some() {
            metrics.register_cluster(&cluster_metrics);
        }
        let store: Arc<dyn Store> = Arc::new(timed_store::TimedStore::new(self.store, metrics.storage().clone()));
        let readiness = Arc::new(readiness::Readiness::new(store.clone()));
        let ops = Arc::new(ops::Ops { metrics, readiness: readiness.clone() });
        let kinds = Arc::new(self.kinds);
        let edge = self.config.edge;
        let registry = registry::Registry::start(kinds.clone(), store, self.config.rooms, edge.limits.max_rooms, self.edge_stats.clone());
        let cluster = match self.cluster {
            Some(link) => match cluster::Cluster::start(link, registry.clone(), cluster_metrics).await {
                Ok(cluster) => {
                    readiness.watch_cluster(cluster.clone());
                    registry.join_cluster(&cluster);
                    Some(cluster)
                }
                Err(e) => {
                    tracing::error!(error = e, "cannot join the cluster");
                    return;
                }
            },
            None => None,
        };
        let recorder = click_recorder::ClickRecorder::start(registry.clone());
        let clicks = Arc::new(clicks_edge::ClicksEdge {
            accounts: self.accounts,
            links: self.links,
            tokens: self.config.auth.jwt.clone().filter(|_| self.config.auth.mode_for(switchboard_apps::clicks::KIND) == auth::AuthMode::Token),
            recorder: recorder.clone(),
            registry: registry.clone(),
            geo: self.config.geo.clone(),
            trusted_proxies: self.config.trusted_proxies.clone(),
        });
        let auth = Arc::new(auth::Gate::new(self.config.auth, self.config.trusted_proxies.clone()));
        let http = http::HttpSettings {
            max_head_len: self.config.net.max_head_len,
            body_timeout: edge.body_timeout,
            publish_key: edge.publish_key,
            clicks: clicks.clone(),
            auth: auth.clone(),
        };
        let edge = service::SwitchboardService {
            registry: registry.clone(),
            kinds,
            next_conn: AtomicU64::new(1),
            close_wait: self.config.net.close_timeout,
            geo: self.config.geo,
            auth,
            trusted_proxies: self.config.trusted_proxies,
            call_ice: Arc::new(self.config.apps.call.ice.clone()),
            compression_kinds: self.config.compression_kinds,
            limits: Arc::new(limits::EdgeLimits::new(edge.limits, self.edge_stats)),
            origins: self.origins,
            http: Arc::new(http),
            ops,
        };
        let (stop_accepting, accepting) = watch::channel(false);
        let (shut_down, running) = watch::channel(false);
        let control = drain::Control { requests, config: self.config.drain, readiness, net: net_stats.clone(), stop_accepting, shut_down };
        let control = tokio::spawn(control.run());
        let (accepting, running) = (switchboard_net::Shutdown::from(accepting), switchboard_net::Shutdown::from(running));
        let listening =
            Listening { listener: self.listener, tls: self.tls, more_loops: self.more_loops, net: self.config.net, accepting, running, stats: net_stats };
        let loops = match cluster {
            None => listening.serve(service::Served { edge, mode: service::Local }).await,
            Some(cluster) => listening.serve(service::Served { edge, mode: service::Clustered(cluster) }).await,
        };
        control.abort();
        // The last redirects' clicks reach their rooms before the rooms settle.
        recorder.flush().await;
        registry.settle(SETTLE_LIMIT).await;
        // Only now: rooms created on the other loops run on their runtimes.
        loops.finish().await;
    }
}

/// The server's listening sockets, plain and TLS, until shutdown.
struct Listening {
    listener: TcpListener,
    tls: Option<TlsListener>,
    more_loops: Vec<event_loops::LoopSockets>,
    net: switchboard_net::NetConfig,
    accepting: switchboard_net::Shutdown,
    running: switchboard_net::Shutdown,
    stats: Arc<switchboard_net::NetStats>,
}

impl Listening {
    /// Serves both listeners with one service (of the server's mode), on
    /// this runtime and on the other event loops, until every loop has
    /// drained; the loops' runtimes are still up when it returns.
    async fn serve<Svc: switchboard_net::Service>(self, service: Svc) -> event_loops::Loops {
        let Listening { listener, tls, more_loops, net, accepting, running, stats } = self;
        let serving = event_loops::Serving { service: Arc::new(service), tls: tls.as_ref().map(|tls| tls.transport.clone()), net, accepting, running, stats };
        let mut loops = event_loops::Loops::start(more_loops, &serving);
        let (tls, watcher) = match tls {
            Some(TlsListener { listener, reloader, .. }) => (Some(listener), Some(tokio::spawn(tls::watch_files(reloader)))),
            None => (None, None),
        };
        tokio::join!(event_loops::serve_listeners(listener, tls, serving), loops.drained());
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        loops
    }
}
