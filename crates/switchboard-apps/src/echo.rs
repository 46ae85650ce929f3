//! `echo`: every message goes back to its sender unchanged, text or binary.
//! The Autobahn conformance target.

use std::sync::Arc;

use switchboard_room::{ConnId, Ctx, Message, Room, RoomFactory, RoomStorage};

/// The echo room. It has no state.
pub struct Echo;

impl Room for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        ctx.send(conn, message);
    }
}

/// Builds echo rooms.
pub fn factory() -> Arc<dyn RoomFactory> {
    Arc::new(|_: &str, _: &RoomStorage<'_>| Box::new(Echo) as Box<dyn Room>)
}
