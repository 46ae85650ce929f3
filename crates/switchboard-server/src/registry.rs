//! Which actor runs which room: a map from room name to mailbox that starts
//! actors on demand (again after an actor stopped). The map sits behind a
//! lock held only for one lookup, or for starting one actor, so a handshake
//! finds its room without a round trip through another task.
//!
//! A stopped actor removes its own entry as its task ends, and the map's
//! memory shrinks with it, so rooms that came and went leave nothing
//! behind. Starting a room beyond `max_rooms` live ones is refused.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use switchboard_room::{spawn_room_notifying, RoomConfig, RoomHandle, RoomId, RoomKind, RoomName};
use switchboard_store::Store;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::warn;

use crate::kinds::Kinds;
use crate::limits::EdgeStats;

/// A cheap handle to the map of rooms.
#[derive(Clone)]
pub(crate) struct Registry(Arc<Inner>);

struct Inner {
    kinds: Arc<Kinds>,
    store: Arc<dyn Store>,
    config: RoomConfig,
    /// Live rooms at most; 0: no limit.
    max_rooms: usize,
    stats: Arc<EdgeStats>,
    rooms: Mutex<HashMap<RoomName, RoomHandle>>,
    /// In cluster mode, the node: HTTP to a room goes to its owner.
    cluster: std::sync::OnceLock<Weak<crate::cluster::Cluster>>,
}

/// Why no room was found or started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomUnavailable {
    /// The server has no such kind.
    UnknownKind,
    /// Starting it would exceed `max_rooms`.
    Full,
}

/// Smallest capacity the map is shrunk to; below it, shrinking would only
/// make the next rooms grow it again.
const MIN_CAPACITY: usize = 64;

impl Registry {
    /// An empty registry; every room with a stored alarm is revived at once,
    /// so alarms fire after a restart. Call from within the runtime (actors
    /// are tasks).
    pub(crate) fn start(kinds: Arc<Kinds>, store: Arc<dyn Store>, config: RoomConfig, max_rooms: usize, stats: Arc<EdgeStats>) -> Registry {
        let pending = store.pending_alarms().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read pending alarms");
            Vec::new()
        });
        let registry =
            Registry(Arc::new(Inner { kinds, store, config, max_rooms, stats, rooms: Mutex::new(HashMap::new()), cluster: std::sync::OnceLock::new() }));
        for (namespace, _, _) in pending {
            let Some(name) = RoomName::from_namespace(&namespace) else { continue };
            // Rooms with alarms are revived whatever the cap: they exist.
            let _ = registry.start_room(&name.kind, name.id, false);
        }
        registry
    }

    /// The mailbox of a room, starting its actor if needed.
    pub(crate) fn room(&self, kind: &RoomKind, id: RoomId) -> Result<RoomHandle, RoomUnavailable> {
        self.start_room(kind, id, true)
    }

    /// The mailbox of a room whose actor runs now, or of one that has
    /// stored data or alarms (started for it); `None` for a room that does
    /// not exist, which is not created. For HTTP, which anyone can send:
    /// a request to a made-up room must cost no actor and leave nothing.
    pub(crate) fn existing(&self, kind: &RoomKind, id: RoomId) -> Option<RoomHandle> {
        self.0.kinds.get(kind.as_str())?;
        let name = RoomName::new(kind.clone(), id);
        if let Some(live) = self.live(&name) {
            return Some(live);
        }
        let namespace = name.namespace();
        let stored = self.0.store.list(&namespace, "", 1).is_ok_and(|keys| !keys.is_empty())
            || self.0.store.room_alarms(&namespace).is_ok_and(|alarms| !alarms.is_empty());
        if !stored {
            return None;
        }
        self.start_room(&name.kind, name.id, true).ok()
    }

    /// Makes this registry a cluster node's: publications go to rooms' owners.
    pub(crate) fn join_cluster(&self, cluster: &Arc<crate::cluster::Cluster>) {
        let _ = self.0.cluster.set(Arc::downgrade(cluster));
    }

    /// The cluster node, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<Arc<crate::cluster::Cluster>> {
        self.0.cluster.get().and_then(Weak::upgrade)
    }

    /// True when the server has rooms of this kind.
    pub(crate) fn has_kind(&self, kind: &RoomKind) -> bool {
        self.0.kinds.contains_key(kind.as_str())
    }

    /// The mailbox of a room the server itself addresses for records it
    /// holds (an account's clicks room), starting it whatever the cap: like
    /// a room with an alarm, it exists, and its events must not be lost.
    pub(crate) fn owned_room(&self, kind: &RoomKind, id: RoomId) -> Result<RoomHandle, RoomUnavailable> {
        self.start_room(kind, id, false)
    }

    /// The mailbox of a room whose actor runs now, never starting one.
    pub(crate) fn live_room(&self, kind: &RoomKind, id: RoomId) -> Option<RoomHandle> {
        self.live(&RoomName::new(kind.clone(), id))
    }

    fn live(&self, name: &RoomName) -> Option<RoomHandle> {
        let rooms = self.0.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.get(name).filter(|h| !h.is_closed()).cloned()
    }

    fn start_room(&self, kind: &RoomKind, id: RoomId, capped: bool) -> Result<RoomHandle, RoomUnavailable> {
        let spec = self.0.kinds.get(kind.as_str()).ok_or(RoomUnavailable::UnknownKind)?;
        let name = RoomName::new(kind.clone(), id);
        // A panic while holding this lock leaves a consistent map behind.
        let mut rooms = self.0.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let replacing = match rooms.get(&name) {
            Some(live) if !live.is_closed() => return Ok(live.clone()),
            Some(_) => true,
            None => false,
        };
        if capped && !replacing && self.0.max_rooms != 0 && rooms.len() >= self.0.max_rooms {
            return Err(RoomUnavailable::Full);
        }
        let weak = Arc::downgrade(&self.0);
        let handle_slot: Arc<Mutex<Option<RoomHandle>>> = Arc::default();
        let on_stop = {
            let (name, slot) = (name.clone(), handle_slot.clone());
            Box::new(move || forget(&weak, &name, &slot))
        };
        let handle = spawn_room_notifying(name.clone(), spec.factory.clone(), self.0.store.clone(), self.0.config, on_stop);
        *handle_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle.clone());
        rooms.insert(name, handle.clone());
        self.0.stats.rooms.store(rooms.len(), Ordering::Relaxed);
        Ok(handle)
    }

    /// At shutdown, once no more events come: waits (at most `limit`) until
    /// every room has handed its storage writes to the store and seen them
    /// committed, then until the store has finished every commit, so
    /// nothing acknowledged and nothing written before the shutdown is lost.
    pub(crate) async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let unsettled = {
                let rooms = self.0.rooms.lock().unwrap_or_else(PoisonError::into_inner);
                rooms.values().filter(|h| !h.is_closed() && !h.is_settled()).count()
            };
            if unsettled == 0 {
                break;
            }
            if Instant::now() >= deadline {
                warn!(rooms = unsettled, "shutting down with room writes not yet committed");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (done, flushed) = oneshot::channel();
        self.0.store.flush(Box::new(move || {
            let _ = done.send(());
        }));
        let _ = tokio::time::timeout_at(deadline.max(Instant::now() + Duration::from_secs(1)), flushed).await;
    }
}

/// Removes a stopped actor's entry (unless a newer actor has taken the
/// name), and gives the map's memory back once it is mostly empty.
fn forget(registry: &Weak<Inner>, name: &RoomName, slot: &Mutex<Option<RoomHandle>>) {
    let Some(inner) = registry.upgrade() else { return };
    // Taken, so the entry's handle is the map's last one and the actor's
    // channel is freed with it.
    let Some(stopped) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
    let mut rooms = inner.rooms.lock().unwrap_or_else(PoisonError::into_inner);
    if rooms.get(name).is_some_and(|h| h.same_actor(&stopped)) {
        rooms.remove(name);
    }
    if rooms.capacity() > MIN_CAPACITY && rooms.capacity() > 4 * rooms.len() {
        let keep = (2 * rooms.len()).max(MIN_CAPACITY);
        rooms.shrink_to(keep);
    }
    inner.stats.rooms.store(rooms.len(), Ordering::Relaxed);
}
