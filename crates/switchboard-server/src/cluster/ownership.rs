//! The leases this node holds (`switchboard-cluster` claims and renews
//! them): one per room whose owner this node is, kept while the room has
//! connections (from any node) or runs, released once it has neither, and
//! forgotten when lost, when the room's connections here are told to move.
//! A lost lease is lost for good and at once, by the clock, so a node
//! paused past the TTL stops acting as the owner before it has even run
//! its renewal, and never applies what arrived meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use switchboard_cluster::{Claim, Lease, LeaseWatch};
use switchboard_room::RoomName;
use tracing::{info, warn};

use super::Cluster;

/// The leases held now, by room name (its storage namespace, `kind/id`).
#[derive(Default)]
pub(crate) struct Owned {
    rooms: Mutex<HashMap<String, LeaseWatch>>,
    /// One claim at a time: the map must know a lease before the next
    /// claim of the same room asks NATS.
    claiming: tokio::sync::Mutex<()>,
}

impl Owned {
    fn get(&self, room: &str) -> Option<LeaseWatch> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner).get(room).cloned()
    }

    /// Forgets `room`'s lease if it is still `lease`.
    fn remove(&self, room: &str, lease: &Lease) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.get(room).is_some_and(|w| w.revision() == lease.revision()) {
            rooms.remove(room);
        }
    }
}

impl Cluster {
    /// The lease of `room` if this node holds it and may act on it now.
    pub(crate) fn held(&self, room: &str) -> Option<LeaseWatch> {
        self.owned.get(room).filter(LeaseWatch::is_held)
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
        // The room's actor from a lease this node lost still runs (its
        // connections are leaving it): a new lease must start a new actor
        // from storage, never reuse that one's state.
        if RoomName::from_namespace(room).is_some_and(|name| self.registry.live_room(&name.kind, name.id).is_some()) {
            return match self.nats.owner(room).await {
                Ok(Some(node)) if node != self.node() => Ok(node),
                _ => Err("the room's previous actor here is still stopping; try again".into()),
            };
        }
        match self.nats.claim(room).await.map_err(|e| e.to_string())? {
            Claim::Owned(lease) => {
                if let Some(store) = &self.store {
                    // The room's state, as its last owner left it, before it starts here.
                    if let Err(e) = store.load_room(&lease).await {
                        store.forget_room(room);
                        let _ = lease.release().await;
                        return Err(format!("cannot load the room from JetStream: {e}"));
                    }
                }
                info!(room, revision = lease.revision(), "room lease claimed");
                self.owned.rooms.lock().unwrap_or_else(PoisonError::into_inner).insert(room.to_owned(), lease.watch());
                tokio::spawn(keep(Arc::downgrade(self), room.to_owned(), lease));
                Ok(self.node().to_owned())
            }
            // Our own lease, ending (lost or being released): claimable soon.
            Claim::Held { node } if node == self.node() => Err("the room is changing owners; try again".into()),
            Claim::Held { node } => Ok(node),
        }
    }

    /// Drops this node's replica of a room it no longer owns.
    fn forget(&self, room: &str) {
        if let Some(store) = &self.store {
            store.forget_room(room);
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
}

/// Keeps `room`'s lease while the room needs it, then releases it; when it
/// is lost, moves the room's connections to the new owner.
async fn keep(cluster: Weak<Cluster>, room: String, lease: Lease) {
    let Some(period) = cluster.upgrade().map(|c| c.lease_ttl() / 3) else { return };
    loop {
        let lost = tokio::select! {
            () = lease.lost() => true,
            () = tokio::time::sleep(period) => false,
        };
        let Some(cluster) = cluster.upgrade() else { return };
        if lost {
            cluster.owned.remove(&room, &lease);
            cluster.forget(&room);
            cluster.metrics.lease_lost();
            warn!(room, "room lease lost: its connections move to the new owner");
            cluster.owner.evict(&cluster, &room);
            return;
        }
        if !cluster.needs(&room) {
            cluster.owned.remove(&room, &lease);
            cluster.forget(&room);
            if let Err(e) = lease.release().await {
                info!(room, error = %e, "room lease not released");
            }
            info!(room, "room lease released");
            // A connection that joined meanwhile is told to join again (and claims it again).
            cluster.owner.evict(&cluster, &room);
            return;
        }
    }
}

/// How often the cluster-wide alarm index is scanned.
const ALARM_SCAN: std::time::Duration = std::time::Duration::from_secs(1);

/// Alarms fire on the room's owner: rooms with an alarm due within the
/// next scan that nobody owns are claimed (by whichever node scans first)
/// and started, and their actor fires them as on one node.
pub(crate) async fn wake_for_alarms(cluster: Weak<Cluster>) {
    loop {
        tokio::time::sleep(ALARM_SCAN).await;
        let Some(cluster) = cluster.upgrade() else { return };
        let Some(store) = &cluster.store else { return };
        let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + ALARM_SCAN;
        let due = match store.due_alarms(until.as_millis() as u64).await {
            Ok(due) => due,
            Err(e) => {
                tracing::debug!(error = %e, "cannot scan the alarm index");
                continue;
            }
        };
        for (room, _) in due {
            if cluster.held(&room).is_some() {
                continue;
            }
            let Some(name) = RoomName::from_namespace(&room) else { continue };
            if cluster.owner_of(&room).await.is_ok_and(|owner| owner == cluster.node()) {
                let _ = cluster.registry.owned_room(&name.kind, name.id);
            }
        }
    }
}
