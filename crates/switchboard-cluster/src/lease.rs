//! Room leases: one owner node per room, held in the lease bucket.
//!
//! A claim creates the room's key (create means "expected revision 0",
//! which JetStream applies atomically, so of two racing nodes exactly one
//! succeeds). The owner renews it every third of the TTL with an update
//! that expects the revision it last wrote; the bucket's max age is the
//! TTL, so an entry nobody renews disappears and the next claim succeeds.
//!
//! The holder considers its lease gone as soon as a renewal is refused or
//! the TTL since the last renewal it sent has run out, whichever comes
//! first, and never holds it again: [`Lease::is_held`] reads the clock, so
//! a process resumed after a pause sees the loss before any task runs. The
//! server-side expiry counts from when the renewal was stored, which is
//! after it was sent, so the holder always gives up first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, REQUEST_TIMEOUT};
use crate::error::{nats, ClusterError};
use crate::names::encode_room;
use crate::stats::Counters;

/// A claim that keeps failing because the entry changes under it (created,
/// expired, released between our calls) gives up after this many tries.
const CLAIM_ATTEMPTS: usize = 4;

/// The outcome of [`Cluster::claim`].
#[derive(Debug)]
pub enum Claim {
    /// This node owns the room now.
    Owned(Lease),
    /// Another live node owns it; send the room's traffic there.
    Held {
        /// The owner's node name.
        node: String,
    },
}

/// Who holds a room's lease, as read from the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner's node name.
    pub node: String,
    /// The holder's fencing token ([`Lease::revision`]).
    pub token: u64,
}

/// The lease entry's value: `node instance token`. The token is 0 in the
/// entry written by the claim itself (its revision is the token) and the
/// claim's revision in every renewal.
fn entry_value(node: &str, instance: &str, token: u64) -> Bytes {
    Bytes::from(format!("{node} {instance} {token}"))
}

struct Parsed<'a> {
    node: &'a str,
    instance: &'a str,
    token: u64,
}

fn parse_entry(entry: &kv::Entry) -> Option<Parsed<'_>> {
    let text = std::str::from_utf8(&entry.value).ok()?;
    let mut parts = text.split(' ');
    let (node, instance, token) = (parts.next()?, parts.next()?, parts.next()?.parse::<u64>().ok()?);
    Some(Parsed { node, instance, token: if token == 0 { entry.revision } else { token } })
}

impl Cluster {
    /// Claims `room` for this node: [`Claim::Owned`] if nobody held it (or
    /// the holder's lease expired or was released), [`Claim::Held`] with the
    /// live owner otherwise. A lease left by an earlier process with this
    /// node's name is taken over at once. If this process already holds the
    /// room, the answer is `Held` with this node's name.
    pub async fn claim(&self, room: &str) -> Result<Claim, ClusterError> {
        if room.is_empty() {
            return Err(ClusterError::BadRoom("a room name cannot be empty".into()));
        }
        let inner = &self.inner;
        let key = encode_room(room);
        let mine = |token| entry_value(&inner.settings.node, &inner.instance, token);
        for _ in 0..CLAIM_ATTEMPTS {
            let sent = Instant::now();
            inner.counters.round_trip();
            match inner.leases.update(&key, mine(0), 0).await {
                Ok(revision) => return Ok(Claim::Owned(self.start_lease(room, key, revision, revision, sent))),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(nats("claiming a room lease", e)),
            }
            inner.counters.round_trip();
            let entry = inner.leases.entry(key.as_str()).await.map_err(|e| nats("reading a room lease", e))?;
            let Some(entry) = entry else { continue };
            let sent = Instant::now();
            let taken = match (entry.operation, parse_entry(&entry)) {
                (Operation::Put, Some(held)) if held.node == inner.settings.node && held.instance != inner.instance => {
                    tracing::info!(room, "taking over a lease left by an earlier process of this node");
                    inner.counters.round_trip();
                    inner.leases.update(&key, mine(0), entry.revision).await
                }
                (Operation::Put, Some(held)) => {
                    inner.counters.held_elsewhere();
                    return Ok(Claim::Held { node: held.node.to_owned() });
                }
                (Operation::Put, None) => return Err(ClusterError::Setup(format!("the lease of {room:?} holds a value this version cannot read"))),
                (Operation::Delete | Operation::Purge, _) => {
                    inner.counters.round_trip();
                    inner.leases.update(&key, mine(0), entry.revision).await
                }
            };
            match taken {
                Ok(revision) => return Ok(Claim::Owned(self.start_lease(room, key, revision, revision, sent))),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(nats("claiming a room lease", e)),
            }
        }
        Err(ClusterError::Nats(format!("the lease of {room:?} kept changing during {CLAIM_ATTEMPTS} claim attempts")))
    }

    /// The node that owns `room` now, if any.
    pub async fn owner(&self, room: &str) -> Result<Option<String>, ClusterError> {
        Ok(self.holder(room).await?.map(|h| h.node))
    }

    /// The owner of `room` and its fencing token, if any.
    pub async fn holder(&self, room: &str) -> Result<Option<Holder>, ClusterError> {
        self.inner.counters.round_trip();
        let entry = self.inner.leases.entry(encode_room(room)).await.map_err(|e| nats("reading a room lease", e))?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| parse_entry(&e).map(|p| Holder { node: p.node.to_owned(), token: p.token })))
    }

    /// Whether `token` is the fencing token of `room`'s current lease.
    pub async fn is_current(&self, room: &str, token: u64) -> Result<bool, ClusterError> {
        Ok(self.holder(room).await?.is_some_and(|h| h.token == token))
    }

    fn start_lease(&self, room: &str, key: String, token: u64, revision: u64, sent: Instant) -> Lease {
        let inner = &self.inner;
        let ttl = inner.settings.lease_ttl;
        inner.counters.lease_won();
        let (lost_tx, _) = watch::channel(false);
        let base = Instant::now();
        let state = Arc::new(LeaseState {
            room: room.to_owned(),
            node: inner.settings.node.clone(),
            token,
            revision: AtomicU64::new(revision),
            base,
            deadline_ns: AtomicU64::new(0),
            lost_tx,
            paused: AtomicBool::new(false),
            counters: inner.counters.clone(),
        });
        state.extend(sent, ttl);
        let renewer =
            Renewer { state: state.clone(), kv: inner.leases.clone(), key: key.clone(), value: entry_value(&inner.settings.node, &inner.instance, token), ttl };
        let task = tokio::spawn(renewer.run());
        tracing::debug!(room, token, "room lease claimed");
        Lease { watch: LeaseWatch { state }, task, kv: Box::new(inner.leases.clone()), key }
    }
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Released,
    Lost,
    /// Released by [`Lease::release`], which counts the lease as ended once
    /// its entry is deleted (so the gauge of held leases reaching zero
    /// means other nodes can claim the rooms).
    Releasing,
}

struct LeaseState {
    room: String,
    node: String,
    token: u64,
    /// The entry's revision as last written by this holder.
    revision: AtomicU64,
    base: Instant,
    /// Nanoseconds after `base` when the lease runs out unless renewed.
    deadline_ns: AtomicU64,
    /// Becomes true once, when the lease ends for good.
    lost_tx: watch::Sender<bool>,
    paused: AtomicBool,
    counters: Arc<Counters>,
}

impl LeaseState {
    fn deadline(&self) -> Instant {
        self.base + Duration::from_nanos(self.deadline_ns.load(Ordering::Acquire))
    }

    /// A renewal sent at `sent` was stored: the lease runs until `sent + ttl`,
    /// less a twentieth for clocks that tick at slightly different rates.
    fn extend(&self, sent: Instant, ttl: Duration) {
        let until = sent + ttl - ttl / 20;
        self.deadline_ns.store(until.saturating_duration_since(self.base).as_nanos() as u64, Ordering::Release);
    }

    fn ended(&self) -> bool {
        *self.lost_tx.borrow()
    }

    fn is_held(&self) -> bool {
        !self.ended() && Instant::now() < self.deadline()
    }

    /// Ends the lease (once): later calls do nothing. True for the call
    /// that ended it.
    fn end(&self, how: End, why: &str) -> bool {
        if self.lost_tx.send_replace(true) {
            return false;
        }
        self.deadline_ns.store(0, Ordering::Release);
        match how {
            End::Lost => {
                self.counters.lease_ended(true);
                tracing::warn!(room = %self.room, node = %self.node, token = self.token, why, "room lease lost");
            }
            End::Released | End::Releasing => {
                if how == End::Released {
                    self.counters.lease_ended(false);
                }
                tracing::debug!(room = %self.room, token = self.token, why, "room lease ended");
            }
        }
        true
    }
}

/// A held room lease. It renews itself in the background until it is
/// released, lost, or dropped (dropping it stops the renewals and ends it
/// here; the entry then expires after the TTL, so prefer
/// [`Lease::release`], which lets another node claim the room at once).
#[derive(Debug)]
pub struct Lease {
    watch: LeaseWatch,
    task: JoinHandle<()>,
    kv: Box<kv::Store>,
    key: String,
}

impl Lease {
    /// A cheap handle that observes this lease (for the store, the room).
    pub fn watch(&self) -> LeaseWatch {
        self.watch.clone()
    }

    /// The room this lease is for.
    pub fn room(&self) -> &str {
        self.watch.room()
    }

    /// Whether this node still owns the room: false for good once a renewal
    /// was refused, the TTL ran out without one, or the lease was released.
    pub fn is_held(&self) -> bool {
        self.watch.is_held()
    }

    /// Resolves once the lease is no longer held.
    pub async fn lost(&self) {
        self.watch.lost().await
    }

    /// The fencing token: the bucket revision of the claim. Every later
    /// claim of the room (by any node) has a larger token.
    pub fn revision(&self) -> u64 {
        self.watch.revision()
    }

    /// Stops renewing while keeping the lease until its TTL runs out, as if
    /// the process were paused. For fault tests.
    pub fn stop_renewing(&self) {
        self.watch.state.paused.store(true, Ordering::Release);
    }

    /// Gives the room up: deletes the entry if it is still this lease's, so
    /// another node can claim the room at once. Errors if the lease was
    /// already lost (nothing to release) or NATS did not answer (the entry
    /// then expires after the TTL).
    pub async fn release(self) -> Result<(), ClusterError> {
        self.task.abort();
        let state = &self.watch.state;
        if !state.is_held() {
            state.end(End::Lost, "released after it was lost");
            return Err(ClusterError::LeaseLost(format!("{:?} was no longer held when released", state.room)));
        }
        let ended_here = state.end(End::Releasing, "released");
        let deleted = self.delete_entry().await;
        if ended_here {
            state.counters.lease_ended(false);
        }
        deleted
    }

    /// Deletes the entry if it is still this lease's.
    async fn delete_entry(&self) -> Result<(), ClusterError> {
        let state = &self.watch.state;
        // A renewal cut short by the abort may have been stored: read the
        // revision rather than trust the one we last saw.
        state.counters.round_trips(2);
        let entry = self.kv.entry(self.key.as_str()).await.map_err(|e| nats("reading a room lease", e))?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else { return Ok(()) };
        if parse_entry(&entry).is_none_or(|p| p.token != state.token || p.node != state.node) {
            return Ok(());
        }
        self.kv.delete_expect_revision(self.key.as_str(), Some(entry.revision)).await.map_err(|e| nats("releasing a room lease", e))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
        self.watch.state.end(End::Released, "dropped");
    }
}

impl From<&Lease> for LeaseWatch {
    fn from(lease: &Lease) -> Self {
        lease.watch()
    }
}

/// Observes a [`Lease`] from elsewhere (the store, a room task); cloning is cheap.
#[derive(Clone)]
pub struct LeaseWatch {
    state: Arc<LeaseState>,
}

impl std::fmt::Debug for LeaseWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseWatch")
            .field("room", &self.state.room)
            .field("token", &self.state.token)
            .field("held", &self.is_held())
            .finish()
    }
}

impl LeaseWatch {
    /// The room the lease is for.
    pub fn room(&self) -> &str {
        &self.state.room
    }

    /// See [`Lease::is_held`].
    pub fn is_held(&self) -> bool {
        self.state.is_held()
    }

    /// See [`Lease::revision`].
    pub fn revision(&self) -> u64 {
        self.state.token
    }

    /// Resolves once the lease is no longer held.
    pub async fn lost(&self) {
        let mut ended = self.state.lost_tx.subscribe();
        while self.is_held() {
            let deadline = tokio::time::Instant::from_std(self.state.deadline());
            tokio::select! {
                _ = ended.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// The background task that keeps a lease alive.
struct Renewer {
    state: Arc<LeaseState>,
    kv: kv::Store,
    key: String,
    value: Bytes,
    ttl: Duration,
}

impl Renewer {
    async fn run(self) {
        let every = self.ttl / 3;
        let retry = self.ttl / 10;
        let state = &self.state;
        let mut next = Instant::now() + every;
        loop {
            let wake = next.min(state.deadline());
            tokio::time::sleep_until(wake.into()).await;
            let now = Instant::now();
            if now >= state.deadline() {
                state.end(End::Lost, "the TTL passed without a renewal");
                return;
            }
            if state.paused.load(Ordering::Acquire) {
                next = state.deadline();
                continue;
            }
            let left = state.deadline() - now;
            state.counters.round_trip();
            let sent = now;
            let renewed =
                tokio::time::timeout(left.min(REQUEST_TIMEOUT), self.kv.update(&self.key, self.value.clone(), state.revision.load(Ordering::Acquire))).await;
            match renewed {
                Ok(Ok(revision)) => {
                    state.revision.store(revision, Ordering::Release);
                    state.extend(sent, self.ttl);
                    next = sent + every;
                }
                Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    // A renewal whose answer we missed may have been
                    // stored; the entry is still ours if it holds our value.
                    if !self.adopt_stored_renewal().await {
                        state.end(End::Lost, "another node holds the room now");
                        return;
                    }
                    next = Instant::now();
                }
                Ok(Err(e)) => {
                    tracing::debug!(room = %state.room, error = %e, "lease renewal failed; retrying");
                    next = Instant::now() + retry;
                }
                Err(_) => next = Instant::now(),
            }
        }
    }

    async fn adopt_stored_renewal(&self) -> bool {
        self.state.counters.round_trip();
        match self.kv.entry(self.key.as_str()).await {
            Ok(Some(entry)) if entry.operation == Operation::Put && entry.value == self.value => {
                self.state.revision.store(entry.revision, Ordering::Release);
                true
            }
            _ => false,
        }
    }
}
