//! Room kinds: the table the server routes by, and the built-in kinds,
//! written only against the public room API like any user's room: `echo`
//! (the conformance target) and `broadcast` (the classic WebSocket server:
//! welcome, visitor count, relay).

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_room::{ConnId, Ctx, Message, Room, RoomFactory, RoomStorage};

/// A room kind as the server knows it.
#[derive(Clone)]
pub struct RoomKindSpec {
    /// Builds the kind's rooms.
    pub factory: Arc<dyn RoomFactory>,
    /// Subprotocols the kind speaks, in order of preference.
    pub subprotocols: Vec<String>,
}

/// Every kind by name. Fixed once the server runs, then shared read-only.
pub(crate) type Kinds = HashMap<String, RoomKindSpec>;

pub(crate) fn built_in() -> Kinds {
    let json = vec!["json".to_owned()];
    let echo: Arc<dyn RoomFactory> = Arc::new(|_: &str, _: &RoomStorage<'_>| Box::new(Echo) as Box<dyn Room>);
    let broadcast: Arc<dyn RoomFactory> = Arc::new(|_: &str, storage: &RoomStorage<'_>| Box::new(Broadcast::load(storage)) as Box<dyn Room>);
    HashMap::from([
        ("echo".to_owned(), RoomKindSpec { factory: echo, subprotocols: json.clone() }),
        ("broadcast".to_owned(), RoomKindSpec { factory: broadcast, subprotocols: json }),
    ])
}

/// Echoes every message unchanged to its sender.
pub(crate) struct Echo;

impl Room for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        ctx.send(conn, &message);
    }
}

/// Welcomes each newcomer, tells everyone the visitor count on every join and
/// leave, and relays every message to everyone else.
///
/// Wire format (text, JSON): to the newcomer
/// `{"type":"welcome","id":"c12","online":3,"visits":41}`; to everyone
/// `{"type":"count","online":3}`; messages are relayed as sent. `visits`
/// counts every connection the room ever accepted and is kept in room
/// storage, so it survives restarts.
pub(crate) struct Broadcast {
    visits: u64,
}

const VISITS: &str = "visits";

impl Broadcast {
    pub(crate) fn load(storage: &RoomStorage<'_>) -> Broadcast {
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

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _conn: ConnId, _closed: &switchboard_room::Closed) {
        Broadcast::announce_count(ctx);
    }
}
