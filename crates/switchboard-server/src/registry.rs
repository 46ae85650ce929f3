//! Which actor runs which room: a map from room name to mailbox that starts
//! actors on demand (again after an actor stopped). The map sits behind a
//! lock held only for one lookup, or for starting one actor, so a handshake
//! finds its room without a round trip through another task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchboard_room::{spawn_room, RoomConfig, RoomHandle, RoomId, RoomKind, RoomName};
use switchboard_store::Store;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::warn;

use crate::kinds::Kinds;

/// A cheap handle to the map of rooms.
#[derive(Clone)]
pub(crate) struct Registry(Arc<Inner>);

struct Inner {
    kinds: Arc<Kinds>,
    store: Arc<dyn Store>,
    config: RoomConfig,
    rooms: Mutex<HashMap<RoomName, RoomHandle>>,
}

impl Registry {
    /// An empty registry; every room with a stored alarm is revived at once,
    /// so alarms fire after a restart. Call from within the runtime (actors
    /// are tasks).
    pub(crate) fn start(kinds: Arc<Kinds>, store: Arc<dyn Store>, config: RoomConfig) -> Registry {
        let pending = store.pending_alarms().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read pending alarms");
            Vec::new()
        });
        let registry = Registry(Arc::new(Inner { kinds, store, config, rooms: Mutex::new(HashMap::new()) }));
        for (namespace, _, _) in pending {
            let Some(name) = RoomName::from_namespace(&namespace) else { continue };
            registry.room(&name.kind, name.id);
        }
        registry
    }

    /// The mailbox of a room, starting its actor if needed; `None` for an
    /// unknown kind.
    pub(crate) fn room(&self, kind: &RoomKind, id: RoomId) -> Option<RoomHandle> {
        let spec = self.0.kinds.get(kind.as_str())?;
        let name = RoomName::new(kind.clone(), id);
        // A panic while holding this lock leaves a consistent map behind.
        let mut rooms = self.0.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = rooms.get(&name).filter(|h| !h.is_closed()) {
            return Some(live.clone());
        }
        let handle = spawn_room(name.clone(), spec.factory.clone(), self.0.store.clone(), self.0.config);
        rooms.insert(name, handle.clone());
        // Forget stopped actors now and then, so the map does not keep every room ever seen.
        if rooms.len() > 1024 && rooms.len().is_power_of_two() {
            rooms.retain(|_, h| !h.is_closed());
        }
        Some(handle)
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
