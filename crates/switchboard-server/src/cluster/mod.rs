//! Cluster mode (docs/cluster.md): several nodes share the rooms through
//! NATS with JetStream. Each room has one owner, the node holding the
//! room's lease (`lease`, `ownership`); the owner runs the room as on one
//! node and serves the events of every connection to it (`owner`), which
//! reach it from the connection's node (`proxy`) in the encoding of
//! `wire`. Settings and the connection to NATS are here.

mod lease;
mod metrics;
mod owner;
mod ownership;
mod proxy;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

pub use metrics::ClusterMetrics;
pub(crate) use proxy::RemoteConnection;

use crate::registry::Registry;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); the client
    /// connects to one and fails over to the others.
    pub servers: Vec<String>,
    /// This node's name, unique in the cluster: `A-Z a-z 0-9 - _`, at most
    /// 64 characters.
    pub node: String,
    /// Prefix of the NATS subjects and JetStream buckets, so several
    /// clusters can share one NATS deployment.
    pub prefix: String,
    /// How long a room's lease lives without renewal: after an owner dies,
    /// its rooms move after at most this long.
    pub lease_ttl: Duration,
    /// How long a node waits for the owner's answer to a connection's join.
    pub forward_timeout: Duration,
    /// A NATS credentials file (`.creds`: JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// PEM CA certificates to trust for NATS over TLS.
    pub tls_ca: Option<PathBuf>,
    /// A PEM client certificate and its key, for NATS servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

impl ClusterConfig {
    /// The settings of a node named `node` joining the NATS servers `servers`, with the defaults.
    pub fn new(servers: Vec<String>, node: String) -> ClusterConfig {
        ClusterConfig {
            servers,
            node,
            prefix: DEFAULT_PREFIX.into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            credentials: None,
            tls_ca: None,
            tls_client: None,
        }
    }
}

/// The default subject and bucket prefix.
pub const DEFAULT_PREFIX: &str = "switchboard";
/// The default lease TTL: an owner renews every third of it, so a node
/// survives one slow renewal; after a crash its rooms move within it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// The default wait for an owner's answer to a join.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Shortest lease TTL accepted: renewals every third of it must fit a NATS round trip with room to spare.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// Checks a node name: it is a token of NATS subjects.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("node name {name:?} must be 1-64 characters of A-Z a-z 0-9 - _"))
    }
}

/// A node name from the host's name and the listener's port, for a node
/// not given one: unique as long as no two nodes share a host and port.
pub fn default_node_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::env::var("HOSTNAME")).unwrap_or_else(|_| "node".into());
    let host: String = host.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).take(50).collect();
    let host = if host.is_empty() { "node".to_owned() } else { host };
    format!("{host}-{port}")
}

/// A node connected to NATS, not yet serving rooms.
pub(crate) struct Link {
    config: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    leases: lease::Leases,
}

impl Link {
    /// Connects to NATS and opens the lease bucket. The first connection
    /// must succeed (a node that cannot reach NATS cannot serve a room);
    /// later ones are retried for ever.
    pub(crate) async fn connect(config: ClusterConfig) -> Result<Link, String> {
        check_node_name(&config.node)?;
        if config.servers.is_empty() {
            return Err("no NATS server given".into());
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("switchboard {}", config.node))
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(config.forward_timeout))
            .max_reconnects(None::<usize>);
        if let Some(path) = &config.credentials {
            options = options.credentials_file(path).await.map_err(|e| format!("cannot read the NATS credentials {}: {e}", path.display()))?;
        }
        if let Some(ca) = &config.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &config.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        let servers: Vec<async_nats::ServerAddr> =
            config.servers.iter().map(|s| s.parse().map_err(|e| format!("bad NATS server URL {s:?}: {e}"))).collect::<Result<_, _>>()?;
        let client = options.connect(servers).await.map_err(|e| format!("cannot connect to NATS at {}: {e}", config.servers.join(",")))?;
        let js = jetstream::new(client.clone());
        let leases = lease::Leases::open(&js, &format!("{}_leases", config.prefix), &config.node, config.lease_ttl).await?;
        Ok(Link { config, client, js, leases })
    }
}

/// A node of the cluster, serving rooms.
pub(crate) struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    #[allow(dead_code)] // the cluster store is opened from it
    js: jetstream::Context,
    leases: lease::Leases,
    registry: Registry,
    metrics: ClusterMetrics,
    owned: ownership::Owned,
    owner: owner::Owner,
    proxies: proxy::Proxies,
}

impl Cluster {
    /// Starts serving: the owner's events, the effects for this node's
    /// connections, lease renewals and the watch over the owners of rooms
    /// this node's connections are in.
    pub(crate) async fn start(link: Link, registry: Registry, metrics: ClusterMetrics) -> Result<Arc<Cluster>, String> {
        let Link { config, client, js, leases } = link;
        let events = client.subscribe(subject(&config, &config.node, EVENTS)).await.map_err(|e| format!("cannot subscribe to NATS: {e}"))?;
        let effects = client.subscribe(subject(&config, &config.node, EFFECTS)).await.map_err(|e| format!("cannot subscribe to NATS: {e}"))?;
        let cluster = Arc::new(Cluster {
            owned: ownership::Owned::default(),
            owner: owner::Owner::default(),
            proxies: proxy::Proxies::default(),
            config,
            client,
            js,
            leases,
            registry,
            metrics,
        });
        tokio::spawn(owner::serve(Arc::downgrade(&cluster), events));
        tokio::spawn(proxy::serve_effects(Arc::downgrade(&cluster), effects));
        tokio::spawn(proxy::watch_owners(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// Whether the node's NATS connection is up now.
    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn node(&self) -> &str {
        &self.config.node
    }

    fn subject(&self, node: &str, kind: &str) -> String {
        subject(&self.config, node, kind)
    }
}

/// A node's events subject (`<prefix>.node.<node>.ev`): the events of
/// connections in rooms the node owns.
const EVENTS: &str = "ev";
/// A node's effects subject (`<prefix>.node.<node>.fx`): what owners do to
/// the node's connections.
const EFFECTS: &str = "fx";

fn subject(config: &ClusterConfig, node: &str, kind: &str) -> String {
    format!("{}.node.{node}.{kind}", config.prefix)
}
