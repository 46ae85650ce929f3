//! Which actor runs which room: one task owns the map from room name to
//! mailbox and starts actors on demand (again after an actor stopped).
//! Other tasks ask it through a channel; nothing shares the map.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_room::{spawn_room, RoomConfig, RoomFactory, RoomHandle};
use switchboard_store::Store;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::routes::{RoomId, RoomKind};

struct Lookup {
    kind: RoomKind,
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
    pub(crate) fn start(factories: HashMap<RoomKind, Arc<dyn RoomFactory>>, store: Arc<dyn Store>, config: RoomConfig) -> Registry {
        let (tx, mut rx) = mpsc::channel::<Lookup>(1024);
        let pending = store.pending_alarms().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read pending alarms");
            Vec::new()
        });
        tokio::spawn(async move {
            let mut rooms: HashMap<String, RoomHandle> = HashMap::new();
            while let Some(Lookup { kind, id, reply }) = rx.recv().await {
                let name = format!("{}/{}", kind.name(), id.as_str());
                let live = rooms.get(&name).filter(|h| !h.is_closed()).cloned();
                let handle = live.unwrap_or_else(|| {
                    let handle = spawn_room(name.clone(), id.as_str().to_owned(), factories[&kind].clone(), store.clone(), config);
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
            let (Some(kind), Some(id)) = (RoomKind::from_name(kind), RoomId::parse(id)) else { continue };
            let registry = registry.clone();
            tokio::spawn(async move { registry.room(kind, id).await });
        }
        registry
    }

    /// The mailbox of a room, starting its actor if needed.
    pub(crate) async fn room(&self, kind: RoomKind, id: RoomId) -> Option<RoomHandle> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Lookup { kind, id, reply }).await.ok()?;
        rx.await.ok()
    }
}
