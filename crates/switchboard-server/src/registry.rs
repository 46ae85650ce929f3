//! Which actor runs which room: one task owns the map from room name to
//! mailbox and starts actors on demand (again after an actor stopped).
//! Other tasks ask it through a channel; nothing shares the map.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_room::{spawn_room, RoomConfig, RoomHandle};
use switchboard_store::Store;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::kinds::Kinds;
use crate::routes::RoomId;

struct Lookup {
    kind: String,
    id: RoomId,
    reply: oneshot::Sender<RoomHandle>,
}

/// A cheap handle to the registry task.
#[derive(Clone)]
pub(crate) struct Registry {
    tx: mpsc::Sender<Lookup>,
}

impl Registry {
    /// Starts the registry task and revives every room with a stored alarm,
    /// so alarms fire after a restart.
    pub(crate) fn start(kinds: Arc<Kinds>, store: Arc<dyn Store>, config: RoomConfig) -> Registry {
        let (tx, mut rx) = mpsc::channel::<Lookup>(1024);
        let pending = store.pending_alarms().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read pending alarms");
            Vec::new()
        });
        tokio::spawn(async move {
            let mut rooms: HashMap<String, RoomHandle> = HashMap::new();
            while let Some(Lookup { kind, id, reply }) = rx.recv().await {
                // Unknown kinds get no room; the caller answers 404.
                let Some(spec) = kinds.get(&kind) else { continue };
                let name = format!("{kind}/{}", id.as_str());
                let live = rooms.get(&name).filter(|h| !h.is_closed()).cloned();
                let handle = live.unwrap_or_else(|| {
                    let handle = spawn_room(name.clone(), id.as_str().to_owned(), spec.factory.clone(), store.clone(), config);
                    rooms.insert(name, handle.clone());
                    handle
                });
                let _ = reply.send(handle);
                // Forget stopped actors now and then, so the map does not keep every room ever seen.
                if rooms.len() > 1024 && rooms.len().is_power_of_two() {
                    rooms.retain(|_, h| !h.is_closed());
                }
            }
        });
        let registry = Registry { tx };
        for (room, _, _) in pending {
            let Some((kind, id)) = room.split_once('/') else { continue };
            let Some(id) = RoomId::parse(id) else { continue };
            let (registry, kind) = (registry.clone(), kind.to_owned());
            tokio::spawn(async move { registry.room(&kind, id).await });
        }
        registry
    }

    /// The mailbox of a room, starting its actor if needed; `None` for an
    /// unknown kind (or while the server stops).
    pub(crate) async fn room(&self, kind: &str, id: RoomId) -> Option<RoomHandle> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Lookup { kind: kind.to_owned(), id, reply }).await.ok()?;
        rx.await.ok()
    }
}
