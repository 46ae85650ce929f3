//! The leases this node holds: claimed when a connection needs a room
//! nobody owns, renewed every third of the TTL while the room has
//! connections or runs, released once it has neither, and lost for good
//! when a renewal fails or comes too late. A lease is trusted only while
//! its last renewal, counted from before the request left, is younger
//! than the TTL less a margin: a node paused past that (SIGSTOP, a long GC
//! of the host) stops acting as the owner before it has even run its
//! renewal, and never applies what arrived meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use switchboard_room::RoomName;
use tracing::{info, warn};

use super::lease::{self, Claim};
use super::Cluster;

/// One lease this node holds.
pub(crate) struct Held {
    key: String,
    revision: AtomicU64,
    renewed_at: Mutex<Instant>,
    lost: AtomicBool,
    ttl: Duration,
}

impl Held {
    /// Whether this node may still act as the room's owner.
    pub(crate) fn is_valid(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        let renewed_at = *self.renewed_at.lock().unwrap_or_else(PoisonError::into_inner);
        renewed_at.elapsed() < self.ttl - self.ttl / 5
    }
}

/// The leases held now, by room name (its storage namespace, `kind/id`).
#[derive(Default)]
pub(crate) struct Owned {
    rooms: Mutex<HashMap<String, Arc<Held>>>,
    /// One claim at a time: two claims of one room by this node would each
    /// take the lease from the other.
    claiming: tokio::sync::Mutex<()>,
}

impl Owned {
    fn get(&self, room: &str) -> Option<Arc<Held>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner).get(room).cloned()
    }

    fn remove(&self, room: &str, held: &Arc<Held>) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.get(room).is_some_and(|h| Arc::ptr_eq(h, held)) {
            rooms.remove(room);
            return true;
        }
        false
    }
}

impl Cluster {
    /// The lease of `room` if this node holds it and may act on it now.
    pub(crate) fn held(&self, room: &str) -> Option<Arc<Held>> {
        self.owned.get(room).filter(|held| held.is_valid())
    }

    /// The node that owns `room`, claiming it for this one if nobody does.
    pub(crate) async fn owner_of(self: &Arc<Self>, room: &str) -> Result<String, String> {
        if self.held(room).is_some() {
            return Ok(self.node().to_owned());
        }
        let _claiming = self.owned.claiming.lock().await;
        if self.held(room).is_some() {
            return Ok(self.node().to_owned());
        }
        let key = lease::key(room);
        let started = Instant::now();
        self.metrics.round_trips.inc();
        match self.leases.claim(&key).await? {
            Claim::Held(node) => Ok(node),
            Claim::Owned(revision) => {
                let held = Arc::new(Held {
                    key,
                    revision: AtomicU64::new(revision),
                    renewed_at: Mutex::new(started),
                    lost: AtomicBool::new(false),
                    ttl: self.config.lease_ttl,
                });
                self.owned.rooms.lock().unwrap_or_else(PoisonError::into_inner).insert(room.to_owned(), held.clone());
                self.metrics.leases_held.inc();
                info!(room, revision, "room lease claimed");
                tokio::spawn(keep(Arc::downgrade(self), room.to_owned(), held));
                Ok(self.node().to_owned())
            }
        }
    }

    /// Whether the room still needs its owner: it has connections here
    /// (from any node), or its actor runs (an alarm is due, say).
    fn needs(&self, room: &str) -> bool {
        if self.owner.has_connections(room) {
            return true;
        }
        RoomName::from_namespace(room).is_some_and(|name| self.registry.live_room(&name.kind, name.id).is_some())
    }

    fn lose(&self, room: &str, held: &Arc<Held>, why: &str) {
        held.lost.store(true, Ordering::Release);
        if self.owned.remove(room, held) {
            self.metrics.leases_held.dec();
        }
        warn!(room, why, "room lease lost: its connections move to the new owner");
        self.owner.evict(self, room);
    }
}

/// Renews `room`'s lease until it is no longer needed (then releases it)
/// or it is lost.
async fn keep(cluster: std::sync::Weak<Cluster>, room: String, held: Arc<Held>) {
    let period = held.ttl / 3;
    loop {
        tokio::time::sleep(period).await;
        let Some(cluster) = cluster.upgrade() else { return };
        let renewed_at = *held.renewed_at.lock().unwrap_or_else(PoisonError::into_inner);
        if renewed_at.elapsed() >= held.ttl - held.ttl / 5 {
            // Paused or starved past the TTL: another node may own it now.
            cluster.lose(&room, &held, "not renewed in time");
            return;
        }
        let revision = held.revision.load(Ordering::Acquire);
        if !cluster.needs(&room) {
            held.lost.store(true, Ordering::Release);
            if cluster.owned.remove(&room, &held) {
                cluster.metrics.leases_held.dec();
            }
            cluster.metrics.round_trips.inc();
            cluster.leases.release(&held.key, revision).await;
            info!(room, "room lease released");
            // A connection that arrived meanwhile finds no owner and claims it again.
            cluster.owner.evict(&cluster, &room);
            return;
        }
        let started = Instant::now();
        cluster.metrics.round_trips.inc();
        match tokio::time::timeout(period, cluster.leases.renew(&held.key, revision)).await {
            Ok(Ok(revision)) => {
                held.revision.store(revision, Ordering::Release);
                *held.renewed_at.lock().unwrap_or_else(PoisonError::into_inner) = started;
            }
            Ok(Err(e)) => {
                cluster.lose(&room, &held, &e);
                return;
            }
            Err(_) => warn!(room, "a lease renewal timed out; retrying"),
        }
    }
}
