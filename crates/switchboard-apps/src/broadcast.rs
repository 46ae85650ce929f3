//! `broadcast`: the classic WebSocket server. Welcomes each newcomer, tells
//! everyone the visitor count after joins and leaves, and relays every
//! message to everyone else.
//!
//! Wire format (text, JSON): to the newcomer
//! `{"type":"welcome","id":"c12","online":3,"visits":41}`; to everyone
//! `{"type":"count","online":3}`; messages are relayed as sent. `visits`
//! counts every connection the room ever accepted and is kept in room
//! storage, so it survives restarts.
//!
//! The count goes out once per batch of room events (`on_batch_end`), not
//! once per join: with N members, announcing every join costs N frames, so
//! N clients joining at once would cost N²/2 (50 million frames for 10,000).
//! Joins that arrive together share one announcement of the final count;
//! a lone join is still announced at once. The visit counter is stored once
//! per batch for the same reason (one storage write, not one per join), and
//! the batch's newcomers are welcomed once that write is committed
//! (`Ctx::send_after_commit`): a welcome never tells a visit number that a
//! crash could take back, and whatever the room sends a newcomer meanwhile
//! waits behind its welcome. A newcomer is not sent the messages relayed in
//! the batch it joined in; it joins at its welcome.

use std::sync::Arc;

use switchboard_room::{Closed, ConnId, Ctx, Message, Room, RoomFactory, RoomStorage};

/// The broadcast room.
pub struct Broadcast {
    visits: u64,
    /// `visits` as last written to storage.
    stored_visits: u64,
    /// This batch's newcomers and the visit number each is told.
    welcoming: Vec<(ConnId, u64)>,
    /// Someone joined or left since the last announcement.
    count_changed: bool,
}

const VISITS: &str = "visits";

impl Broadcast {
    /// Loads the visit count from storage.
    pub fn load(storage: &RoomStorage<'_>) -> Broadcast {
        let visits = storage.get(VISITS).ok().flatten().and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_be_bytes);
        Broadcast { visits, stored_visits: visits, welcoming: Vec::new(), count_changed: false }
    }
}

impl Room for Broadcast {
    fn on_open(&mut self, _ctx: &mut Ctx<'_>, conn: ConnId) {
        self.visits += 1;
        self.welcoming.push((conn, self.visits));
        self.count_changed = true;
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        if self.welcoming.is_empty() {
            ctx.broadcast(message, Some(conn));
            return;
        }
        // Rare: a join and a message in one batch. Newcomers not yet
        // welcomed (at most one batch of them) are left out.
        let mut waiting: Vec<ConnId> = self.welcoming.iter().map(|(w, _)| *w).collect();
        waiting.sort_unstable();
        ctx.broadcast_where(&message, |c| c != conn && waiting.binary_search(&c).is_err());
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _closed: &Closed) {
        self.count_changed = true;
    }

    fn on_batch_end(&mut self, ctx: &mut Ctx<'_>) {
        if self.visits != self.stored_visits {
            ctx.storage().put(VISITS, &self.visits.to_be_bytes());
            self.stored_visits = self.visits;
        }
        let online = ctx.connection_count();
        for (conn, visits) in std::mem::take(&mut self.welcoming) {
            let welcome = format!(r#"{{"type":"welcome","id":"{conn}","online":{online},"visits":{visits}}}"#);
            // After the visit is stored: the count it shows survives a crash.
            ctx.send_after_commit(conn, Message::text(welcome));
        }
        if std::mem::take(&mut self.count_changed) {
            let count = format!(r#"{{"type":"count","online":{}}}"#, ctx.connection_count());
            ctx.broadcast(Message::text(count), None);
        }
    }
}

/// Builds broadcast rooms.
pub fn factory() -> Arc<dyn RoomFactory> {
    Arc::new(|_: &str, storage: &RoomStorage<'_>| Box::new(Broadcast::load(storage)) as Box<dyn Room>)
}
