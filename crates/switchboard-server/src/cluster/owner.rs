//! The owner's side: the events of connections in rooms this node owns,
//! from every node (this one included), run against the real room; and
//! the room's sends and closes to those connections, batched per node
//! into one NATS message per flush ([`RemoteSink`], [`PeerOutbox`]).
//! Events arrive in order on one subscription and are applied in that
//! order, so each connection's messages reach its room in the order it
//! sent them; each node's effects leave in the order the room made them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::StreamExt;
use switchboard_proto::{CloseCode, Message, SendOutcome};
use switchboard_room::{Closed, ConnId, ConnSink, ConnectRequest, Decision, RoomGone, RoomHandle, RoomName, Run, TryDeliverError};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::wire::{self, Effect, Event, Reply};
use super::{Cluster, ClusterMetrics, EFFECTS, PING};
use crate::registry::RoomUnavailable;
use switchboard_cluster::LeaseWatch;

/// A connection of another node (or of this one, through NATS too) in a
/// room this node owns.
struct Remote {
    conn: ConnId,
    room: String,
    handle: RoomHandle,
    held: LeaseWatch,
}

/// Who is where: remote connections by (node, id on that node), and the
/// outboxes of the nodes they are on.
#[derive(Default)]
pub(crate) struct Owner {
    remotes: Mutex<Remotes>,
    peers: Mutex<HashMap<String, Arc<PeerOutbox>>>,
    next_conn: AtomicU64,
    /// Set while a room runs a batch on the events task: the outboxes
    /// gather and are flushed once it ends.
    holding: Arc<AtomicBool>,
}

/// The remote connections, and how many each room has (a lease renewal
/// asks for every owned room; the count spares a walk over all of them).
#[derive(Default)]
struct Remotes {
    by_conn: HashMap<(String, u64), Remote>,
    per_room: HashMap<String, usize>,
}

impl Remotes {
    fn insert(&mut self, key: (String, u64), remote: Remote) {
        let room = remote.room.clone();
        if let Some(old) = self.by_conn.insert(key, remote) {
            self.uncount(&old.room);
        }
        *self.per_room.entry(room).or_default() += 1;
    }

    fn remove(&mut self, key: &(String, u64)) -> Option<Remote> {
        let remote = self.by_conn.remove(key)?;
        self.uncount(&remote.room);
        Some(remote)
    }

    fn uncount(&mut self, room: &str) {
        if let Some(n) = self.per_room.get_mut(room) {
            *n -= 1;
            if *n == 0 {
                self.per_room.remove(room);
            }
        }
    }

    /// Removes the connections `pick` chooses.
    fn take(&mut self, pick: impl Fn(&(String, u64), &Remote) -> bool) -> Vec<((String, u64), Remote)> {
        let keys: Vec<(String, u64)> = self.by_conn.iter().filter(|(k, r)| pick(k, r)).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| self.remove(&k).map(|r| (k, r))).collect()
    }
}

/// The outboxes held for one batch.
pub(crate) struct Holding(());

/// Ids the owner gives remote connections in its rooms, apart from those
/// of its own sockets.
const REMOTE_IDS: u64 = 1 << 62;

/// Attempts to reach a room whose actor stopped between lookup and send.
const ROOM_ATTEMPTS: usize = 3;

impl Owner {
    /// Holds every outbox's flush until [`Owner::release`].
    fn hold(&self) -> Holding {
        self.holding.store(true, Ordering::SeqCst);
        Holding(())
    }

    /// Lets the outboxes go, and wakes those that gathered something.
    fn release(&self, _: Holding) {
        self.holding.store(false, Ordering::SeqCst);
        let peers: Vec<Arc<PeerOutbox>> = self.peers.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for peer in peers {
            if peer.dirty.swap(false, Ordering::SeqCst) {
                peer.wake.notify_one();
            }
        }
    }

    pub(crate) fn has_connections(&self, room: &str) -> bool {
        self.remotes.lock().unwrap_or_else(PoisonError::into_inner).per_room.contains_key(room)
    }

    fn lookup(&self, node: &str, conn: u64) -> Option<(ConnId, RoomHandle, LeaseWatch)> {
        let remotes = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
        remotes.by_conn.get(&(node.to_owned(), conn)).map(|r| (r.conn, r.handle.clone(), r.held.clone()))
    }

    fn remove(&self, node: &str, conn: u64) -> Option<Remote> {
        self.remotes.lock().unwrap_or_else(PoisonError::into_inner).remove(&(node.to_owned(), conn))
    }

    fn peer(&self, cluster: &Cluster, node: &str) -> Arc<PeerOutbox> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(peer) = peers.get(node) {
            return peer.clone();
        }
        let peer = Arc::new(PeerOutbox { holding: self.holding.clone(), ..PeerOutbox::default() });
        let from = cluster.node().to_owned();
        tokio::spawn(flush(cluster.client.clone(), from, cluster.subject(node, EFFECTS), cluster.metrics.clone(), Arc::downgrade(&peer)));
        peers.insert(node.to_owned(), peer.clone());
        peer
    }

    /// The nodes with connections in this node's rooms, but this one.
    fn peer_nodes(&self, me: &str) -> Vec<String> {
        let remotes = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut nodes: Vec<String> = remotes.by_conn.keys().map(|(node, _)| node.clone()).filter(|node| node != me).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// A node stopped answering: its connections leave their rooms here,
    /// as if they had dropped (a node that comes back finds them gone and
    /// joins them again).
    fn drop_node(&self, node: &str) -> usize {
        let gone = self.remotes.lock().unwrap_or_else(PoisonError::into_inner).take(|(n, _), _| n == node);
        for (_, remote) in &gone {
            let closed = Closed { code: Some(CloseCode::ABNORMAL), reason: "the connection's node stopped answering".into(), clean: false, attachment: None };
            remote.handle.close_detached(remote.conn, closed);
        }
        gone.len()
    }

    /// The room's lease is gone: every connection in it is told to move to
    /// the new owner and leaves the room here (whose sends to it no longer
    /// go anywhere: the lease fences them).
    pub(crate) fn evict(&self, cluster: &Cluster, room: &str) {
        let evicted = self.remotes.lock().unwrap_or_else(PoisonError::into_inner).take(|_, r| r.room == room);
        for ((node, conn), remote) in evicted {
            self.peer(cluster, &node).push(Effect::Moved { conn });
            remote.handle.close_detached(remote.conn, moved());
        }
    }
}

fn moved() -> Closed {
    Closed { code: Some(CloseCode::new(1012).unwrap_or(CloseCode::ABNORMAL)), reason: "the room moved to another node".into(), clean: false, attachment: None }
}

/// Applies the events that reach this node's events subject, in order.
pub(crate) async fn serve(cluster: Weak<Cluster>, mut events: async_nats::Subscriber) {
    while let Some(message) = events.next().await {
        let Some(cluster) = cluster.upgrade() else { return };
        let event = match Event::decode(message.payload) {
            Ok(event) => event,
            Err(_) => {
                warn!(subject = %message.subject, "a malformed cluster event was ignored");
                continue;
            }
        };
        apply(&cluster, event, message.reply).await;
    }
}

async fn apply(cluster: &Arc<Cluster>, event: Event, reply: Option<async_nats::Subject>) {
    match event {
        Event::Connect { node, conn, room, request } => {
            // Not awaited here: a room's decision must not hold up other
            // connections' events. This connection sends nothing more
            // until it has the answer.
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let answer = connect(&cluster, node, conn, room, *request).await;
                if let Some(reply) = reply {
                    if let Err(e) = cluster.client.publish(reply, answer.encode()).await {
                        debug!(error = %e, "cannot answer a join");
                    }
                }
            });
        }
        Event::Open { node, conn, tags, attachment } => {
            let Some((id, handle, held)) = current(cluster, &node, conn) else { return };
            let sink = RemoteSink { conn, peer: cluster.owner.peer(cluster, &node), held };
            if handle.open(id, Box::new(sink), tags, attachment).await.is_err() {
                cluster.owner.remove(&node, conn);
                cluster
                    .owner
                    .peer(cluster, &node)
                    .push(Effect::Close { conn, code: CloseCode::TRY_AGAIN_LATER.as_u16(), reason: "room unavailable".into() });
            }
        }
        Event::Messages { node, conn, messages } => {
            let Some((id, handle, held)) = current(cluster, &node, conn) else { return };
            // Run here and now when the room is free, with the outboxes
            // held: a broadcast's recipients on each node then leave in one
            // message, whatever the flush tasks do meanwhile.
            let local = RemoteSink { conn, peer: cluster.owner.peer(cluster, &node), held };
            let holding = cluster.owner.hold();
            let tried = handle.try_deliver(id, messages, &mut &local);
            cluster.owner.release(holding);
            if let Err(TryDeliverError::Full(messages)) = tried {
                let _ = handle.deliver(id, messages).await;
            }
        }
        Event::Error { node, conn, error } => {
            let Some((id, handle, _)) = current(cluster, &node, conn) else { return };
            let _ = handle.error(id, error).await;
        }
        Event::Close { node, conn, code, reason, clean } => {
            if let Some(remote) = cluster.owner.remove(&node, conn) {
                let _ = remote.handle.close(remote.conn, wire::closed(code, reason, clean), None).await;
            }
        }
    }
}

/// The connection's place in its room, if this node still owns the room;
/// otherwise the connection is told to move (and leaves the room here).
fn current(cluster: &Cluster, node: &str, conn: u64) -> Option<(ConnId, RoomHandle, LeaseWatch)> {
    match cluster.owner.lookup(node, conn) {
        Some((id, handle, held)) if held.is_held() => Some((id, handle, held)),
        Some(_) => {
            if let Some(remote) = cluster.owner.remove(node, conn) {
                remote.handle.close_detached(remote.conn, moved());
            }
            cluster.owner.peer(cluster, node).push(Effect::Moved { conn });
            None
        }
        None => {
            // Not (or no longer) here: a room that moved, or one released
            // after its last connection left while this one was joining.
            cluster.owner.peer(cluster, node).push(Effect::Moved { conn });
            None
        }
    }
}

/// Asks the room whether the connection may join; registers it if so.
async fn connect(cluster: &Arc<Cluster>, node: String, conn: u64, room: String, mut request: ConnectRequest) -> Reply {
    let Some(held) = cluster.held(&room) else { return Reply::NotOwner };
    let Some(name) = RoomName::from_namespace(&room) else {
        return Reply::Decided(Decision::Reject { status: 404, reason: "no such room".into() });
    };
    // A connection re-joining after a move replaces its old place.
    if let Some(old) = cluster.owner.remove(&node, conn) {
        let _ = old.handle.close(old.conn, moved(), None).await;
    }
    let id = ConnId(REMOTE_IDS | cluster.owner.next_conn.fetch_add(1, Ordering::Relaxed));
    request.conn = id;
    for _ in 0..ROOM_ATTEMPTS {
        let handle = match cluster.registry.room(&name.kind, name.id.clone()) {
            Ok(handle) => handle,
            Err(RoomUnavailable::UnknownKind) => return Reply::Decided(Decision::Reject { status: 404, reason: "no such room kind".into() }),
            Err(RoomUnavailable::Full) => {
                return Reply::Decided(Decision::Reject { status: 503, reason: "the room's node is at its room limit; try again later".into() })
            }
        };
        match handle.connect(request.clone()).await {
            Ok(decision) => {
                if matches!(decision, Decision::Accept { .. }) {
                    let remote = Remote { conn: id, room: room.clone(), handle, held: held.clone() };
                    cluster.owner.remotes.lock().unwrap_or_else(PoisonError::into_inner).insert((node.clone(), conn), remote);
                }
                return Reply::Decided(decision);
            }
            Err(RoomGone) => continue,
        }
    }
    Reply::Decided(Decision::Reject { status: 503, reason: "room unavailable, try again".into() })
}

/// What the owner's rooms did to one node's connections, not yet sent.
#[derive(Default)]
pub(crate) struct PeerOutbox {
    pending: Mutex<Pending>,
    wake: Notify,
    /// The owner's hold ([`Owner::hold`]): while set, nothing is taken
    /// and pushes mark the outbox `dirty` instead of waking its task.
    holding: Arc<AtomicBool>,
    dirty: AtomicBool,
}

#[derive(Default)]
struct Pending {
    effects: Vec<Effect>,
    /// The run the last effect came from (its address), while that effect
    /// is last: the next recipient of the same run joins it.
    run: usize,
}

impl PeerOutbox {
    fn push(&self, effect: Effect) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.effects.push(effect);
        pending.run = 0;
        drop(pending);
        self.wake_up();
    }

    fn wake_up(&self) {
        if self.holding.load(Ordering::SeqCst) {
            self.dirty.store(true, Ordering::SeqCst);
            // The hold may have ended between the two: its release may
            // have missed this mark.
            if self.holding.load(Ordering::SeqCst) || !self.dirty.swap(false, Ordering::SeqCst) {
                return;
            }
        }
        self.wake.notify_one();
    }

    /// One more recipient of `run`: added to the last effect if that one
    /// carries the same run (a broadcast's recipients on this node travel
    /// together), else a new effect.
    fn push_run(&self, conn: u64, run: &Run) {
        let address = run as *const Run as usize;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.run == address {
            if let Some(Effect::Run { conns, messages }) = pending.effects.last_mut() {
                if messages.as_slice() == run.messages() {
                    conns.push(conn);
                    return;
                }
            }
        }
        pending.effects.push(Effect::Run { conns: vec![conn], messages: run.messages().to_vec() });
        pending.run = address;
        drop(pending);
        self.wake_up();
    }

    /// What is pending, unless the outboxes are held (the holder wakes
    /// this one again when it lets go).
    fn take(&self) -> Vec<Effect> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if self.holding.load(Ordering::SeqCst) {
            if !pending.effects.is_empty() {
                self.dirty.store(true, Ordering::SeqCst);
            }
            return Vec::new();
        }
        pending.run = 0;
        std::mem::take(&mut pending.effects)
    }
}

/// Sends a node's pending effects whenever there are some, one NATS
/// message per flush, in order.
async fn flush(client: async_nats::Client, from: String, subject: String, metrics: ClusterMetrics, peer: Weak<PeerOutbox>) {
    loop {
        let Some(outbox) = peer.upgrade() else { return };
        outbox.wake.notified().await;
        // Whatever else the room sends in this turn joins the same message.
        tokio::task::yield_now().await;
        let effects = outbox.take();
        drop(outbox);
        if effects.is_empty() {
            continue;
        }
        metrics.effects_forwarded.inc();
        if let Err(e) = client.publish(subject.clone(), wire::encode_effects(&from, &effects)).await {
            warn!(error = %e, subject, "cannot send effects to a node");
        }
    }
}

/// A connection of another node, as its room on this node sees it: sends
/// and closes go to the connection's node, as long as this node still
/// holds the room's lease.
struct RemoteSink {
    conn: u64,
    peer: Arc<PeerOutbox>,
    held: LeaseWatch,
}

impl RemoteSink {
    fn fenced(&self) -> bool {
        !self.held.is_held()
    }
}

impl ConnSink for RemoteSink {
    fn send(&self, message: &Message) -> SendOutcome {
        self.send_all(std::slice::from_ref(message))
    }

    fn send_all(&self, messages: &[Message]) -> SendOutcome {
        if self.fenced() {
            return SendOutcome::Dropped;
        }
        self.peer.push(Effect::Send { conn: self.conn, messages: messages.to_vec() });
        SendOutcome::Queued
    }

    fn send_run(&self, run: &Run) -> SendOutcome {
        if self.fenced() {
            return SendOutcome::Dropped;
        }
        self.peer.push_run(self.conn, run);
        SendOutcome::Queued
    }

    fn close(&self, code: CloseCode, reason: &str) {
        if !self.fenced() {
            self.peer.push(Effect::Close { conn: self.conn, code: code.as_u16(), reason: reason.to_owned() });
        }
    }
}

/// Answers other nodes' liveness checks.
pub(crate) async fn answer_pings(mut pings: async_nats::Subscriber, client: async_nats::Client) {
    while let Some(ping) = pings.next().await {
        if let Some(reply) = ping.reply {
            let _ = client.publish(reply, bytes::Bytes::new()).await;
        }
    }
}

/// Checks, every lease TTL, that the nodes with connections in this
/// node's rooms still answer; one that misses two checks in a row is
/// taken for dead and its connections leave their rooms (their clients
/// reconnect elsewhere and join again).
pub(crate) async fn watch_peers(cluster: Weak<Cluster>) {
    let mut misses: HashMap<String, u32> = HashMap::new();
    loop {
        let Some(period) = cluster.upgrade().map(|c| c.lease_ttl()) else { return };
        tokio::time::sleep(period).await;
        let Some(cluster) = cluster.upgrade() else { return };
        let peers = cluster.owner.peer_nodes(cluster.node());
        misses.retain(|node, _| peers.contains(node));
        for node in peers {
            cluster.metrics.join_round_trips.inc();
            let ping = cluster.client.request(cluster.subject(&node, PING), bytes::Bytes::new());
            let answered = matches!(tokio::time::timeout(cluster.forward_timeout, ping).await, Ok(Ok(_)));
            if answered {
                misses.remove(&node);
                continue;
            }
            let missed = misses.entry(node.clone()).or_default();
            *missed += 1;
            if *missed >= 2 {
                misses.remove(&node);
                let dropped = cluster.owner.drop_node(&node);
                warn!(node, connections = dropped, "a node stopped answering: its connections left their rooms here");
            }
        }
    }
}
