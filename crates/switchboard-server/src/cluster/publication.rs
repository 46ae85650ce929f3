//! The HTTP publish API in cluster mode: a publication for a room goes
//! to the room's owner, which hands it to the room as a single node would
//! and answers with what the room made of it. A room that no node owns
//! runs nowhere, and, as on one node, reaches nobody.

use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use switchboard_proto::Message;
use switchboard_room::{Published, RoomGone, RoomName};
use tracing::{debug, warn};

use super::wire;
use super::{Cluster, PUBLISH};

impl Cluster {
    /// Publishes `message` to `room` on its owner: the room's answer, or
    /// `RoomGone` when the room runs nowhere (or its owner did not answer).
    pub(crate) async fn publish(&self, room: &RoomName, message: Message) -> Result<Published, RoomGone> {
        let namespace = room.namespace();
        if self.held(&namespace).is_some() {
            return self.publish_here(room, message).await.ok_or(RoomGone);
        }
        let owner = match self.nats.owner(&namespace).await {
            Ok(Some(owner)) => owner,
            Ok(None) => return Err(RoomGone),
            Err(e) => {
                warn!(room = namespace, error = %e, "cannot find a room's owner for a publication");
                return Err(RoomGone);
            }
        };
        self.metrics.join_round_trips.inc();
        let request = self.client.request(self.subject(&owner, PUBLISH), wire::encode_publication(&namespace, &message));
        let answer = match tokio::time::timeout(self.forward_timeout, request).await {
            Ok(Ok(answer)) => answer,
            _ => {
                debug!(room = namespace, owner, "no answer to a publication");
                return Err(RoomGone);
            }
        };
        wire::decode_published(answer.payload).ok().flatten().ok_or(RoomGone)
    }

    /// The room's answer, if it runs here and this node still owns it.
    async fn publish_here(&self, room: &RoomName, message: Message) -> Option<Published> {
        self.held(&room.namespace())?;
        let handle = self.registry.live_room(&room.kind, room.id.clone())?;
        handle.publish(message).await.ok()
    }
}

/// Answers the publications sent to this node, each on a task of its own
/// (a room's answer must not hold up another room's).
pub(crate) async fn serve(cluster: Weak<Cluster>, mut publications: async_nats::Subscriber) {
    while let Some(request) = publications.next().await {
        let Some(cluster) = cluster.upgrade() else { return };
        let Some(reply) = request.reply else { continue };
        let Ok((room, message)) = wire::decode_publication(request.payload) else {
            warn!("a malformed publication was ignored");
            continue;
        };
        tokio::spawn(answer(cluster, room, message, reply));
    }
}

async fn answer(cluster: Arc<Cluster>, room: String, message: Message, reply: async_nats::Subject) {
    let published = match RoomName::from_namespace(&room) {
        Some(name) => cluster.publish_here(&name, message).await,
        None => None,
    };
    if let Err(e) = cluster.client.publish(reply, wire::encode_published(published.as_ref())).await {
        debug!(error = %e, "cannot answer a publication");
    }
}
