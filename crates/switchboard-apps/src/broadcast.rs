//! `broadcast`: the classic WebSocket server. Welcomes each newcomer, tells
//! everyone the visitor count on every join and leave, and relays every
//! message to everyone else.
//!
//! Wire format (text, JSON): to the newcomer
//! `{"type":"welcome","id":"c12","online":3,"visits":41}`; to everyone
//! `{"type":"count","online":3}`; messages are relayed as sent. `visits`
//! counts every connection the room ever accepted and is kept in room
//! storage, so it survives restarts.

use std::sync::Arc;

use switchboard_room::{Closed, ConnId, Ctx, Message, Room, RoomFactory, RoomStorage};

/// The broadcast room.
pub struct Broadcast {
    visits: u64,
}

const VISITS: &str = "visits";

impl Broadcast {
    /// Loads the visit count from storage.
    pub fn load(storage: &RoomStorage<'_>) -> Broadcast {
        let visits = storage
            .get(VISITS)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        Broadcast { visits }
    }

    fn announce_count(ctx: &mut Ctx<'_>) {
        let count = format!(r#"{{"type":"count","online":{}}}"#, ctx.connection_count());
        ctx.broadcast(&Message::text(count), None);
    }
}

impl Room for Broadcast {
    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        self.visits += 1;
        if let Err(e) = ctx.storage().put(VISITS, &self.visits.to_be_bytes()) {
            tracing::warn!(room = ctx.room(), error = %e, "cannot store the visit count");
        }
        let welcome = format!(r#"{{"type":"welcome","id":"{conn}","online":{},"visits":{}}}"#, ctx.connection_count(), self.visits);
        ctx.send(conn, &Message::text(welcome));
        Broadcast::announce_count(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        ctx.broadcast(&message, Some(conn));
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _conn: ConnId, _closed: &Closed) {
        Broadcast::announce_count(ctx);
    }
}

/// Builds broadcast rooms.
pub fn factory() -> Arc<dyn RoomFactory> {
    Arc::new(|_: &str, storage: &RoomStorage<'_>| Box::new(Broadcast::load(storage)) as Box<dyn Room>)
}
