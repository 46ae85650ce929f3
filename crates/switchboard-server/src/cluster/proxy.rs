//! The connection's side: a WebSocket on this node in a room some node
//! owns (this one included). Its events go to the owner's events subject
//! ([`RemoteConnection`]); what the owner's room sends it comes back on
//! this node's effects subject and is written to the socket
//! ([`serve_effects`]). When the owner loses the room (it says so, or its
//! lease is seen gone or taken), the connection joins the room's new
//! owner while the client stays connected ([`reattach`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use switchboard_net::{Handler, Outbox, Traffic};
use switchboard_proto::{CloseCode, Message};
use switchboard_room::{ConnSink, ConnectRequest, Decision, RoomName, Run};
use tracing::{debug, info, warn};

use super::wire::{self, Effect, Event, Reply};
use super::{Cluster, EVENTS};
use crate::access_log;
use crate::room_conn::{open_sink, Joining, SocketSink};

/// This node's connections in rooms, by id.
#[derive(Default)]
pub(crate) struct Proxies {
    conns: Mutex<HashMap<u64, Arc<ProxyConn>>>,
}

impl Proxies {
    fn get(&self, conn: u64) -> Option<Arc<ProxyConn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner).get(&conn).cloned()
    }

    fn all(&self) -> Vec<Arc<ProxyConn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }
}

/// One connection of this node, joined to a room through its owner.
pub(crate) struct ProxyConn {
    conn: u64,
    room: String,
    /// Kept to join the room again on its next owner.
    request: ConnectRequest,
    sink: OnceLock<SocketSink>,
    /// Where its events go; held while they are sent, and while the
    /// connection joins a new owner, so none overtakes another or the join.
    link: tokio::sync::Mutex<LinkState>,
    /// Joins so far (1 after the first): a stale trigger of a move finds
    /// it changed and does nothing.
    joins: AtomicU64,
}

struct LinkState {
    owner: String,
    closed: bool,
}

impl ProxyConn {
    /// Sends one event to the room's owner, unless the connection is closed.
    async fn send(&self, cluster: &Cluster, event: Event) {
        let link = self.link.lock().await;
        if link.closed {
            return;
        }
        publish(cluster, &link.owner, event).await;
    }
}

async fn publish(cluster: &Cluster, owner: &str, event: Event) {
    cluster.metrics.events_forwarded.inc();
    if let Err(e) = cluster.client.publish(cluster.subject(owner, EVENTS), event.encode()).await {
        warn!(error = %e, owner, "cannot send a connection's event to its room's owner");
    }
}

/// Why a connection could not join its room through the cluster.
pub(crate) struct JoinError {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

/// Joins left to a connection whose owner keeps changing under it.
const JOIN_ATTEMPTS: usize = 4;

impl Cluster {
    /// Asks the room's owner (claiming the room if nobody owns it) whether
    /// the connection may join: its tags and attachment and its place
    /// among this node's connections, or the refusal.
    pub(crate) async fn join(self: &Arc<Self>, room: &RoomName, request: ConnectRequest) -> Result<(Vec<String>, Option<Vec<u8>>, Arc<ProxyConn>), JoinError> {
        let namespace = room.namespace();
        let unavailable = |reason: String| JoinError { status: 503, reason };
        for _ in 0..JOIN_ATTEMPTS {
            let owner = match self.owner_of(&namespace).await {
                Ok(owner) => owner,
                Err(e) => {
                    debug!(room = namespace, error = e, "no owner yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.ask(&owner, &namespace, &request).await {
                Ok(Reply::Decided(Decision::Accept { tags, attachment })) => {
                    let proxy = Arc::new(ProxyConn {
                        conn: request.conn.0,
                        room: namespace,
                        request,
                        sink: OnceLock::new(),
                        link: tokio::sync::Mutex::new(LinkState { owner, closed: false }),
                        joins: AtomicU64::new(1),
                    });
                    return Ok((tags, attachment, proxy));
                }
                Ok(Reply::Decided(Decision::Reject { status, reason })) => return Err(JoinError { status, reason }),
                // The lease moved between our read and its answer.
                Ok(Reply::NotOwner) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(unavailable("the room is changing nodes; try again".into()))
    }

    /// One join request to `owner`, answered within the forward timeout.
    async fn ask(&self, owner: &str, room: &str, request: &ConnectRequest) -> Result<Reply, String> {
        let event = Event::Connect { node: self.node().to_owned(), conn: request.conn.0, room: room.to_owned(), request: Box::new(request.clone()) };
        self.metrics.join_round_trips.inc();
        self.metrics.events_forwarded.inc();
        let request = self.client.request(self.subject(owner, EVENTS), event.encode());
        let answer = match tokio::time::timeout(self.forward_timeout, request).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(format!("the room's node {owner} did not answer: {e}")),
            Err(_) => return Err(format!("the room's node {owner} did not answer in time")),
        };
        Reply::decode(answer.payload).map_err(|_| format!("the room's node {owner} answered nonsense"))
    }
}

/// Writes what owners send this node's connections to their sockets.
pub(crate) async fn serve_effects(cluster: Weak<Cluster>, mut effects: async_nats::Subscriber) {
    while let Some(message) = effects.next().await {
        let Some(cluster) = cluster.upgrade() else { return };
        let Ok((from, effects)) = wire::decode_effects(message.payload) else {
            warn!("malformed effects from another node were ignored");
            continue;
        };
        for effect in effects {
            apply(&cluster, &from, effect);
        }
    }
}

fn apply(cluster: &Arc<Cluster>, from: &str, effect: Effect) {
    let sink = |conn: u64| cluster.proxies.get(conn);
    match effect {
        Effect::Send { conn, messages } => {
            if let Some(sink) = sink(conn).as_ref().and_then(|p| p.sink.get()) {
                sink.send_all(&messages);
            }
        }
        Effect::Run { conns, messages } => {
            // Framed once for all its recipients here, as on the owner.
            let run = Run::new(messages);
            for conn in conns {
                if let Some(sink) = sink(conn).as_ref().and_then(|p| p.sink.get()) {
                    sink.send_run(&run);
                }
            }
        }
        Effect::Close { conn, code, reason } => {
            if let Some(sink) = sink(conn).as_ref().and_then(|p| p.sink.get()) {
                sink.close(CloseCode::new(code).unwrap_or(CloseCode::TRY_AGAIN_LATER), &reason);
            }
        }
        Effect::Moved { conn } => {
            if let Some(proxy) = sink(conn) {
                let joins = proxy.joins.load(Ordering::Acquire);
                tokio::spawn(reattach(cluster.clone(), proxy, from.to_owned(), joins));
            }
        }
    }
}

/// Joins the connection to its room's current owner (claiming the room
/// if nobody owns it), unless it is no longer `from`'s or joined again
/// since `joins` (the trigger is stale). The client
/// stays connected; the room sees it join again. Its messages wait
/// meanwhile, in order. A connection the new owner refuses is closed with
/// the refusal; one that finds no owner in time, with 1013.
async fn reattach(cluster: Arc<Cluster>, proxy: Arc<ProxyConn>, from: String, joins: u64) {
    let mut link = proxy.link.lock().await;
    if link.closed || link.owner != from || proxy.joins.load(Ordering::Acquire) != joins {
        return;
    }
    let deadline = Instant::now() + 3 * cluster.lease_ttl() + cluster.forward_timeout;
    while Instant::now() < deadline {
        let owner = match cluster.owner_of(&proxy.room).await {
            Ok(owner) => owner,
            Err(e) => {
                debug!(room = proxy.room, error = e, "no owner yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match cluster.ask(&owner, &proxy.room, &proxy.request).await {
            Ok(Reply::Decided(Decision::Accept { tags, attachment })) => {
                info!(room = proxy.room, from = link.owner, to = owner, "connection moved to the room's new owner");
                link.owner = owner;
                proxy.joins.fetch_add(1, Ordering::AcqRel);
                cluster.metrics.failovers.inc();
                let event = Event::Open { node: cluster.node().to_owned(), conn: proxy.conn, tags, attachment };
                publish(&cluster, &link.owner, event).await;
                return;
            }
            Ok(Reply::Decided(Decision::Reject { status, reason })) => {
                info!(room = proxy.room, status, reason, "the room's new owner refused a moving connection");
                link.closed = true;
                if let Some(sink) = proxy.sink.get() {
                    sink.close(CloseCode::POLICY_VIOLATION, &reason);
                }
                return;
            }
            // Its lease moved again, or the old owner is dead and its
            // lease not yet expired: ask again shortly.
            Ok(Reply::NotOwner) | Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    warn!(room = proxy.room, "no owner for a connection's room in time; closing it");
    link.closed = true;
    if let Some(sink) = proxy.sink.get() {
        sink.close(CloseCode::TRY_AGAIN_LATER, "room unavailable, try again");
    }
}

/// A connection and how many joins it had when seen.
type Joined = (Arc<ProxyConn>, u64);

/// Watches the owners of the rooms this node's connections are in: an
/// owner that died or was paused says nothing, but its lease expires (or
/// is taken); its connections here then join the new owner.
pub(crate) async fn watch_owners(cluster: Weak<Cluster>) {
    loop {
        let period = match cluster.upgrade() {
            // A dead owner's lease expires within the TTL; a quarter more
            // finds it gone.
            Some(cluster) => cluster.lease_ttl() / 4,
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(cluster) = cluster.upgrade() else { return };
        // (room, owner) -> the connections there, with their join counts.
        let mut by_room: HashMap<(String, String), Vec<Joined>> = HashMap::new();
        for proxy in cluster.proxies.all() {
            let Ok(link) = proxy.link.try_lock() else { continue };
            if link.closed || link.owner == cluster.node() {
                continue;
            }
            let key = (proxy.room.clone(), link.owner.clone());
            drop(link);
            let joins = proxy.joins.load(Ordering::Acquire);
            by_room.entry(key).or_default().push((proxy, joins));
        }
        for ((room, owner), proxies) in by_room {
            match cluster.nats.owner(&room).await {
                Ok(Some(holder)) if holder == owner => {}
                Ok(_) => {
                    info!(room, owner, "the owner of a room lost it; moving this node's connections");
                    for (proxy, joins) in proxies {
                        tokio::spawn(reattach(cluster.clone(), proxy, owner.clone(), joins));
                    }
                }
                Err(e) => debug!(room, error = %e, "cannot read a room's lease"),
            }
        }
    }
}

/// A connection on this node in a room run by its owner (this node or
/// another), through NATS.
pub(crate) struct RemoteConnection {
    cluster: Arc<Cluster>,
    proxy: Arc<ProxyConn>,
    name: RoomName,
    joining: Option<Box<Joining>>,
    pending: Vec<Message>,
    opened: bool,
    client: IpAddr,
    started_ms: u64,
    close_code: u16,
}

/// Most messages sent to the owner in one event; a longer read is split.
const MAX_BATCH: usize = 64;

impl RemoteConnection {
    pub(crate) fn new(cluster: Arc<Cluster>, proxy: Arc<ProxyConn>, name: RoomName, joining: Joining, client: IpAddr) -> RemoteConnection {
        let started_ms = access_log::session_clock_ms();
        RemoteConnection { cluster, proxy, name, joining: Some(Box::new(joining)), pending: Vec::new(), opened: false, client, started_ms, close_code: 0 }
    }

    fn forward(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let messages = std::mem::take(&mut self.pending);
        let (cluster, proxy) = (self.cluster.clone(), self.proxy.clone());
        async move {
            if !messages.is_empty() {
                let event = Event::Messages { node: cluster.node().to_owned(), conn: proxy.conn, messages };
                proxy.send(&cluster, event).await;
            }
        }
    }
}

impl Handler for RemoteConnection {
    async fn on_open(&mut self, mut out: Outbox<'_>) {
        let Some(joining) = self.joining.take() else { return };
        let Joining { tags, attachment, permit, expires } = *joining;
        let (sink, _) = open_sink(&mut out, permit, expires);
        let _ = self.proxy.sink.set(sink);
        self.cluster.proxies.conns.lock().unwrap_or_else(PoisonError::into_inner).insert(self.proxy.conn, self.proxy.clone());
        self.opened = true;
        let event = Event::Open { node: self.cluster.node().to_owned(), conn: self.proxy.conn, tags, attachment };
        self.proxy.send(&self.cluster, event).await;
    }

    fn take_message(&mut self, message: Message) -> Result<(), Message> {
        if self.pending.len() + 1 >= MAX_BATCH {
            return Err(message);
        }
        self.pending.push(message);
        Ok(())
    }

    fn on_message(&mut self, message: Message, _out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        self.pending.push(message);
        let full = self.pending.len() >= MAX_BATCH;
        let forward = full.then(|| self.forward());
        async move {
            if let Some(forward) = forward {
                forward.await;
            }
        }
    }

    fn on_read_end(&mut self, _out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        self.forward()
    }

    async fn on_close(&mut self, code: Option<CloseCode>, reason: &str, clean: bool) {
        self.close_code = code.unwrap_or(CloseCode::NO_STATUS).as_u16();
        if !self.opened {
            return;
        }
        self.opened = false;
        self.forward().await;
        let (node, conn) = (self.cluster.node().to_owned(), self.proxy.conn);
        if !clean && code != Some(CloseCode::ABNORMAL) {
            self.proxy.send(&self.cluster, Event::Error { node: node.clone(), conn, error: reason.to_owned() }).await;
        }
        let close = Event::Close { node, conn, code: code.map(CloseCode::as_u16), reason: reason.to_owned(), clean };
        self.proxy.send(&self.cluster, close).await;
        self.proxy.link.lock().await.closed = true;
        self.cluster.proxies.conns.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.proxy.conn);
    }

    fn on_end(&mut self, traffic: Traffic) {
        let code = (self.close_code != 0).then_some(self.close_code);
        access_log::session(self.client, &self.name, access_log::since(self.started_ms), traffic, code);
    }
}

impl Drop for RemoteConnection {
    fn drop(&mut self) {
        // Ended without on_close (a panic, the runtime stopping) or never
        // opened after the room accepted it: the owner must forget it.
        if !self.opened && self.joining.is_none() {
            return;
        }
        self.cluster.proxies.conns.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.proxy.conn);
        let (cluster, proxy) = (self.cluster.clone(), self.proxy.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let close =
                    Event::Close { node: cluster.node().to_owned(), conn: proxy.conn, code: Some(1006), reason: "connection task ended".into(), clean: false };
                proxy.send(&cluster, close).await;
                proxy.link.lock().await.closed = true;
            });
        }
    }
}
