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
//! once per join, and at most once per [`COUNT_PACE`] per member: with N
//! members, announcing every join costs N frames, so N clients joining
//! one after another would cost N²/2 (50 million frames for 10,000).
//! Joins that arrive together share one announcement of the final count,
//! and while members pour in the announcements are spaced so that they
//! cost at most one frame per [`COUNT_PACE`] (10 members: one count each
//! 10 ms; 100: each 100 ms; 1,000 and more: each second; every change
//! within it announced at its end); a lone join to a quiet room is still
//! announced at once. The visit counter is stored once
//! per batch for the same reason (one storage write, not one per join), and
//! the batch's newcomers are welcomed once that write is committed
//! (`Ctx::send_after_commit`): a welcome never tells a visit number that a
//! crash could take back, and whatever the room sends a newcomer meanwhile
//! waits behind its welcome. A newcomer is not sent the messages relayed in
//! the batch it joined in; it joins at its welcome.

use std::sync::Arc;
use std::time::Duration;

use switchboard_room::{Closed, ConnId, Ctx, Message, Room, RoomFactory, RoomStorage};
// The clock `Ctx::wake_after` runs on.
use tokio::time::Instant;

/// Time an announcement of the count waits after the previous one, per
/// member it goes to: announcements then cost at most one frame per this
/// much time, whatever the room's size. A crowd joining hears the count
/// about a thousand times a second in all, as many frames as a thousand
/// joins' responses: a count is for people to read, and a tenth of a
/// second is soon enough for a room of a hundred.
pub const COUNT_PACE: Duration = Duration::from_millis(1);

/// The longest wait between announcements, however large the room.
const MAX_COUNT_WAIT: Duration = Duration::from_secs(1);

/// The broadcast room.
pub struct Broadcast {
    visits: u64,
    /// `visits` as last written to storage.
    stored_visits: u64,
    /// This batch's newcomers and the visit number each is told.
    welcoming: Vec<(ConnId, u64)>,
    /// Someone joined or left since the last announcement.
    count_changed: bool,
    /// When the count was last announced, and to how many.
    announced: Option<(Instant, usize)>,
    /// A wake is pending for the next announcement.
    waking: bool,
}

const VISITS: &str = "visits";

impl Broadcast {
    /// Loads the visit count from storage.
    pub fn load(storage: &RoomStorage<'_>) -> Broadcast {
        let visits = storage.get(VISITS).ok().flatten().and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_be_bytes);
        Broadcast { visits, stored_visits: visits, welcoming: Vec::new(), count_changed: false, announced: None, waking: false }
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
        if self.count_changed && !self.waking {
            let next = self.announced.map(|(at, members)| at + COUNT_PACE.saturating_mul(members as u32).min(MAX_COUNT_WAIT));
            match next.map(|next| next.saturating_duration_since(Instant::now())).filter(|wait| !wait.is_zero()) {
                Some(wait) => {
                    ctx.wake_after(wait);
                    self.waking = true;
                }
                None => {
                    let members = ctx.connection_count();
                    ctx.broadcast(Message::text(format!(r#"{{"type":"count","online":{members}}}"#)), None);
                    self.count_changed = false;
                    self.announced = Some((Instant::now(), members));
                }
            }
        }
    }

    /// The announcement's time has come: the batch end that follows makes it.
    fn on_wake(&mut self, _ctx: &mut Ctx<'_>) {
        self.waking = false;
    }
}

/// Builds broadcast rooms.
pub fn factory() -> Arc<dyn RoomFactory> {
    Arc::new(|_: &str, storage: &RoomStorage<'_>| Box::new(Broadcast::load(storage)) as Box<dyn Room>)
}
