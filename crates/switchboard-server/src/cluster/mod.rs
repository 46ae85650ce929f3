//! Cluster mode (docs/cluster.md): several nodes share the rooms through
//! NATS with JetStream. Each room has one owner, the node holding the
//! room's lease (`switchboard-cluster`; which leases this node holds, in
//! `ownership`); the owner runs the room as on one
//! node and serves the events of every connection to it (`owner`), which
//! reach it from the connection's node (`proxy`) in the encoding of
//! `wire`; HTTP to rooms goes to their owner too (`publication`,
//! `room_request`). Settings and the connection to NATS are here.

mod metrics;
mod owner;
mod ownership;
mod proxy;
mod publication;
mod room_request;
mod wire;

use std::sync::Arc;
use std::time::Duration;

pub use metrics::ClusterMetrics;
pub(crate) use proxy::RemoteConnection;
pub(crate) use room_request::{http_answer, Reach, RoomAnswer};
pub use switchboard_cluster::{ClusterSettings, DEFAULT_LEASE_TTL, DEFAULT_PREFIX, MAX_LEASE_TTL, MIN_LEASE_TTL};

use switchboard_cluster::JetStreamStore;
use switchboard_store::Store;

use crate::registry::Registry;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS servers, node name, credentials and TLS, lease TTL, prefix.
    pub settings: ClusterSettings,
    /// How long a node waits for the owner's answer to a connection's join.
    pub forward_timeout: Duration,
}

/// The default wait for an owner's answer to a join.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

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
    nats: switchboard_cluster::Cluster,
    store: Option<JetStreamStore>,
    forward_timeout: Duration,
}

impl Link {
    /// Connects to NATS and opens what the cluster keeps in JetStream, and
    /// with `store`, the rooms' storage there. The first connection must
    /// succeed (a node that cannot reach NATS cannot serve a room); later
    /// ones are retried for ever.
    pub(crate) async fn connect(config: ClusterConfig, store: bool) -> Result<Link, String> {
        let nats = switchboard_cluster::Cluster::connect(config.settings).await.map_err(|e| e.to_string())?;
        let store = store.then(|| JetStreamStore::new(&nats));
        Ok(Link { nats, store, forward_timeout: config.forward_timeout })
    }

    /// The cluster's shared tables (accounts, links).
    pub(crate) fn tables(&self) -> switchboard_cluster::Tables {
        self.nats.tables()
    }

    /// The rooms' storage in JetStream, when the link opened it.
    pub(crate) fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.clone().map(|store| Arc::new(store) as Arc<dyn Store>)
    }
}

/// A node of the cluster, serving rooms.
pub(crate) struct Cluster {
    nats: switchboard_cluster::Cluster,
    /// The rooms' storage, loaded for a room when this node claims it.
    store: Option<JetStreamStore>,
    client: async_nats::Client,
    forward_timeout: Duration,
    registry: Registry,
    metrics: ClusterMetrics,
    owned: ownership::Owned,
    owner: owner::Owner,
    proxies: proxy::Proxies,
}

impl Cluster {
    /// Starts serving: the owner's events, the effects for this node's
    /// connections, and the watch over the owners of rooms this node's
    /// connections are in.
    pub(crate) async fn start(link: Link, registry: Registry, metrics: ClusterMetrics) -> Result<Arc<Cluster>, String> {
        let Link { nats, store, forward_timeout } = link;
        let client = nats.client().clone();
        let subscribe = |kind: &'static str| {
            let (client, subject) = (client.clone(), subject(&nats, nats.node(), kind));
            async move { client.subscribe(subject).await.map_err(|e| format!("cannot subscribe to NATS: {e}")) }
        };
        let (events, effects, pings) = (subscribe(EVENTS).await?, subscribe(EFFECTS).await?, subscribe(PING).await?);
        let publications = subscribe(PUBLISH).await?;
        let room_requests = subscribe(REQUEST).await?;
        metrics.watch(nats.clone());
        let cluster = Arc::new(Cluster {
            owned: ownership::Owned::default(),
            owner: owner::Owner::default(),
            proxies: proxy::Proxies::default(),
            nats,
            store,
            client,
            forward_timeout,
            registry,
            metrics,
        });
        tokio::spawn(owner::serve(Arc::downgrade(&cluster), events));
        tokio::spawn(proxy::serve_effects(Arc::downgrade(&cluster), effects));
        tokio::spawn(proxy::watch_owners(Arc::downgrade(&cluster)));
        tokio::spawn(ownership::wake_for_alarms(Arc::downgrade(&cluster)));
        tokio::spawn(owner::answer_pings(pings, cluster.client.clone()));
        tokio::spawn(owner::watch_peers(Arc::downgrade(&cluster)));
        tokio::spawn(publication::serve(Arc::downgrade(&cluster), publications));
        tokio::spawn(room_request::serve(Arc::downgrade(&cluster), room_requests));
        Ok(cluster)
    }

    /// Whether the node's NATS connection is up now.
    pub(crate) fn is_connected(&self) -> bool {
        self.nats.is_connected()
    }

    fn node(&self) -> &str {
        self.nats.node()
    }

    fn lease_ttl(&self) -> Duration {
        self.nats.settings().lease_ttl
    }

    fn subject(&self, node: &str, kind: &str) -> String {
        subject(&self.nats, node, kind)
    }
}

/// A node's events subject (`<prefix>.node.<node>.ev`): the events of
/// connections in rooms the node owns.
const EVENTS: &str = "ev";
/// A node's effects subject (`<prefix>.node.<node>.fx`): what owners do to
/// the node's connections.
const EFFECTS: &str = "fx";
/// A node's liveness subject (`<prefix>.node.<node>.ping`): owners check
/// that the nodes of their rooms' connections still answer.
const PING: &str = "ping";
/// A node's publications subject (`<prefix>.node.<node>.pub`): the HTTP
/// publish API's messages for rooms the node owns.
const PUBLISH: &str = "pub";
/// A node's room requests subject (`<prefix>.node.<node>.req`): HTTP to
/// rooms the node owns, and the server's own requests to them (clicks).
const REQUEST: &str = "req";

fn subject(nats: &switchboard_cluster::Cluster, node: &str, kind: &str) -> String {
    format!("{}.node.{node}.{kind}", nats.settings().prefix)
}
