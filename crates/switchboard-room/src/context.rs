//! What a handler can do: reach connections, broadcast, store, set alarms.
//! Storage writes and alarm changes are recorded and committed after the
//! batch of events (see the `storage` module); nothing here waits.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use switchboard_proto::{CloseCode, Message};
use switchboard_store::{Store, Write};

use crate::auto_response::{AutoResponse, AutoResponses};
use crate::conn::{target, ConnId, Local, Run, Target, MAX_ATTACHMENT_LEN};
use crate::conn_table::ConnTable;
use crate::storage::{RoomStorage, WriteBehind};
use crate::SendOutcome;

/// A room's view of its world during one handler call.
pub struct Ctx<'a> {
    pub(crate) room: &'a str,
    pub(crate) conns: &'a mut ConnTable,
    pub(crate) store: &'a dyn Store,
    pub(crate) alarms: &'a mut BTreeMap<String, SystemTime>,
    pub(crate) auto_response: &'a AutoResponses,
    pub(crate) held: &'a mut Held,
    pub(crate) pending: &'a mut WriteBehind,
    /// When the room asked to be woken (`wake_after`), the earliest.
    pub(crate) wake: &'a mut Option<Instant>,
    /// The connection whose own task runs this batch, if one does: what is
    /// sent to it goes straight to it.
    pub(crate) local: Option<Local<'a>>,
}

/// Small messages held back until the end of the room's batch of events or
/// until anything else is about to reach a connection, then queued as one
/// [`Run`]: broadcasts to the same connections (see
/// [`Ctx::broadcast`]), or sends to one connection (see [`Ctx::send`]). A
/// room that relays a burst of messages to its members, or answers a burst
/// from one connection, thus costs each connection one push for the burst
/// instead of one per message, and what each connection receives stays in
/// the order the room sent it.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Whom the held messages are for.
    to: HeldFor,
    /// The messages, in order.
    messages: Vec<Message>,
    /// Their payload bytes and per-message allowance, against [`HELD_LIMIT`].
    bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum HeldFor {
    #[default]
    Nobody,
    /// Every connection but `except`.
    All { except: Option<ConnId> },
    /// One connection, and what the push that started the hold reported
    /// (the outcome later sends to it in the batch report).
    One { conn: ConnId, outcome: SendOutcome },
}

/// A run is queued once it reaches this size, so what is held back stays
/// small next to the connections' outbound limits.
const HELD_LIMIT: usize = 64 * 1024;

/// What a held message counts for besides its payload (a frame header is
/// at most 14 bytes).
const HELD_PER_MESSAGE: usize = 16;

/// First capacity of the held list: sixteen short messages.
const HELD_START: usize = 16;

/// Messages up to this size are held and gathered into runs; larger ones go
/// out at once, on their own, so a sink can share their payload instead of
/// copying it into a run.
pub const HOLD_THRESHOLD: usize = 1024;

impl Held {
    /// Queues the held frames on every connection they are for; holds
    /// nothing after.
    pub(crate) fn flush(&mut self, conns: &ConnTable, local: &mut Option<Local<'_>>) {
        let to = std::mem::take(&mut self.to);
        if self.messages.is_empty() {
            return;
        }
        self.bytes = 0;
        match to {
            HeldFor::All { except } => {
                let run = Run::new(std::mem::take(&mut self.messages));
                fan_out(conns, local, |sink| sink.send_run(&run), |id| Some(id) != except);
                // The list's memory is kept for the room's next run.
                self.messages = run.into_messages();
            }
            HeldFor::One { conn, .. } => {
                // A dropped run needs no report: the connection is being cut
                // off, and the room hears of it as a close.
                if let Some(target) = target(conns, local, conn) {
                    target.send_all(&self.messages);
                }
            }
            HeldFor::Nobody => unreachable!("messages are held for someone"),
        }
        self.messages.clear();
    }

    /// Holds `message` for `to`, after the messages held for it already.
    #[inline]
    fn hold(&mut self, to: HeldFor, message: impl Outgoing) {
        self.to = to;
        if self.messages.capacity() == 0 {
            // Sized for a burst, not regrown message by message.
            self.messages.reserve(HELD_START);
        }
        let message = message.into_message();
        self.bytes += message.payload().len() + HELD_PER_MESSAGE;
        self.messages.push(message);
    }

    /// Whether `message` can join what is held for `to`: the same
    /// connections, a small message, and room under the limit.
    #[inline]
    fn takes(&self, to: HeldFor, message: &Message) -> bool {
        let len = message.payload().len();
        self.to == to && len <= HOLD_THRESHOLD && self.bytes + HELD_PER_MESSAGE + len <= HELD_LIMIT
    }
}

/// Hands something to every connection `to` picks, in id order, with
/// `send` (the local connection straight). Returns how many queued it.
fn fan_out(conns: &ConnTable, local: &mut Option<Local<'_>>, send: impl Fn(Target<'_>) -> SendOutcome, mut to: impl FnMut(ConnId) -> bool) -> usize {
    let mut queued = 0;
    for (id, record) in conns.iter().filter(|(id, _)| to(**id)) {
        let target = match local {
            Some(local) if local.conn == *id => Target::Local(&mut *local.sink),
            _ => Target::Queue(&*record.sink),
        };
        if send(target) != SendOutcome::Dropped {
            queued += 1;
        }
    }
    queued
}

/// A message to send: owned (held without a copy of its handle) or
/// borrowed (cloned, which shares its payload, only if it must be held).
pub trait Outgoing {
    /// The message, to look at.
    fn message(&self) -> &Message;
    /// The message, to keep.
    fn into_message(self) -> Message;
}

impl Outgoing for Message {
    fn message(&self) -> &Message {
        self
    }

    fn into_message(self) -> Message {
        self
    }
}

impl Outgoing for &Message {
    fn message(&self) -> &Message {
        self
    }

    fn into_message(self) -> Message {
        self.clone()
    }
}

/// An attachment over [`MAX_ATTACHMENT_LEN`], or for an unknown connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentRejected;

impl Ctx<'_> {
    /// The room's storage namespace, `kind/id`.
    pub fn room(&self) -> &str {
        self.room
    }

    /// Open connections, all of them or those with `tag`, in id order.
    pub fn connections<'s>(&'s self, tag: Option<&'s str>) -> impl Iterator<Item = ConnId> + 's {
        self.conns.iter().filter(move |(_, c)| tag.is_none_or(|t| c.tags().iter().any(|x| x == t))).map(|(id, _)| *id)
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Sends a message to one connection. The first small message of a
    /// batch to a connection is queued at once and reports what its queue
    /// says; the small messages after it to the same connection are held
    /// back and queued with it as one run at the end of the batch (sooner if
    /// anything else reaches a connection first), and report the same
    /// outcome. So a room that answers a burst of messages pays one push
    /// for the burst, and a slow reader still shows as `Backpressure`
    /// within a batch.
    pub fn send(&mut self, conn: ConnId, message: impl Outgoing) -> SendOutcome {
        if self.pending.is_waiting(conn) {
            // Behind a reply that waits for a commit: keep the order.
            self.pending.queue_behind(conn, message.into_message());
            return SendOutcome::Queued;
        }
        let held = &mut *self.held;
        if let HeldFor::One { conn: target, outcome } = held.to {
            if target == conn && outcome != SendOutcome::Dropped && held.takes(held.to, message.message()) {
                held.hold(held.to, message);
                return outcome;
            }
        }
        held.flush(self.conns, &mut self.local);
        let Some(target) = target(self.conns, &mut self.local, conn) else { return SendOutcome::Dropped };
        let message = message.message();
        let outcome = target.send(message);
        if message.payload().len() <= HOLD_THRESHOLD {
            // Nothing held yet: this records whom the next sends may join.
            held.to = HeldFor::One { conn, outcome };
        }
        outcome
    }

    /// Sends a message to every connection but `except`, encoding it once.
    /// A small message (up to 1 KiB) is held back and queued with the other
    /// broadcasts to the same connections at the end of the room's batch of
    /// events (sooner if anything else is sent first); order is kept. Returns
    /// how many connections it goes to: those open now (one that is closing
    /// drops it).
    pub fn broadcast(&mut self, message: impl Outgoing, except: Option<ConnId>) -> usize {
        if self.pending.any_waiting() {
            return self.broadcast_where(message.message(), |id| Some(id) != except);
        }
        let recipients = self.conns.len() - usize::from(except.is_some_and(|id| self.conns.contains(id)));
        let held = &mut *self.held;
        let to = HeldFor::All { except };
        if held.takes(to, message.message()) {
            held.hold(to, message);
            return recipients;
        }
        held.flush(self.conns, &mut self.local);
        if message.message().payload().len() > HOLD_THRESHOLD || recipients == 0 {
            // A large payload goes now, as a run of one: the queues share it
            // (and a sink that compresses does so once for all).
            let run = Run::new(vec![message.into_message()]);
            return fan_out(self.conns, &mut self.local, |sink| sink.send_run(&run), |id| Some(id) != except);
        }
        held.hold(to, message);
        recipients
    }

    /// Sends a message to every connection for which `to` says yes, in id
    /// order, encoding it once, now (after any held broadcasts). Returns how
    /// many connections queued it.
    pub fn broadcast_where(&mut self, message: &Message, mut to: impl FnMut(ConnId) -> bool) -> usize {
        self.held.flush(self.conns, &mut self.local);
        // A run of one: encoded once and shared (a small message, which
        // each queue would copy; a large one, which a compressing sink
        // would compress for each).
        let run = Run::new(vec![message.clone()]);
        let send = |sink: Target<'_>| sink.send_run(&run);
        if !self.pending.any_waiting() {
            return fan_out(self.conns, &mut self.local, send, to);
        }
        // Connections waiting for a reply after a commit get it behind that.
        let pending = &mut *self.pending;
        let mut queued = 0;
        for (id, record) in self.conns.iter().filter(|(id, _)| to(**id)) {
            if pending.is_waiting(*id) {
                pending.queue_behind(*id, message.clone());
                queued += 1;
                continue;
            }
            let target = match &mut self.local {
                Some(local) if local.conn == *id => Target::Local(&mut *local.sink),
                _ => Target::Queue(&*record.sink),
            };
            if send(target) != SendOutcome::Dropped {
                queued += 1;
            }
        }
        queued
    }

    /// Starts closing a connection.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        self.held.flush(self.conns, &mut self.local);
        if let Some(record) = self.conns.get(conn) {
            record.sink.close(code, reason);
        }
    }

    /// The tags a connection was accepted with.
    pub fn tags(&self, conn: ConnId) -> &[String] {
        self.conns.get(conn).map_or(&[], |c| c.tags())
    }

    /// The connection's attachment (kept while the room hibernates).
    pub fn attachment(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(conn).and_then(|c| c.attachment())
    }

    /// Replaces the connection's attachment (at most [`MAX_ATTACHMENT_LEN`] bytes).
    pub fn set_attachment(&mut self, conn: ConnId, value: Option<Vec<u8>>) -> Result<(), AttachmentRejected> {
        if value.as_ref().is_some_and(|v| v.len() > MAX_ATTACHMENT_LEN) {
            return Err(AttachmentRejected);
        }
        let record = self.conns.get_mut(conn).ok_or(AttachmentRejected)?;
        record.set_attachment(value);
        Ok(())
    }

    /// The room's durable storage: reads see this room's writes at once;
    /// writes are committed together after the batch of events.
    pub fn storage(&mut self) -> RoomStorage<'_> {
        RoomStorage { store: self.store, room: self.room, pending: self.pending }
    }

    /// Sends `message` to `conn` once every storage write made so far by
    /// this room is committed (at once when there is none to wait for): a
    /// reply that promises durability, such as an acknowledgement. What
    /// the room sends that connection after it (sends and broadcasts)
    /// waits behind it, so the connection receives everything in the order
    /// it was sent; other connections are not held up. If the commit fails
    /// the message is not sent (what queued behind it is), and
    /// [`crate::Room::on_commit_failed`] is told whom it was for.
    pub fn send_after_commit(&mut self, conn: ConnId, message: Message) {
        // What the room sent before goes first.
        self.held.flush(self.conns, &mut self.local);
        if let Some(message) = self.pending.defer(conn, message) {
            self.send(conn, &message);
        }
    }

    /// Sets (or moves) the alarm `name`. It is stored with the batch's
    /// other writes and fires after a restart too; `on_alarm` runs once it
    /// is due.
    pub fn set_alarm(&mut self, name: &str, at: SystemTime) {
        self.pending.record(Write::SetAlarm(name.to_owned(), unix_ms(at)));
        self.alarms.insert(name.to_owned(), at);
    }

    /// Cancels an alarm; true if it was pending.
    pub fn delete_alarm(&mut self, name: &str) -> bool {
        self.pending.record(Write::DeleteAlarm(name.to_owned()));
        self.alarms.remove(name).is_some()
    }

    /// Asks for [`crate::Room::on_wake`] once `after` has passed (then the
    /// batch ends as any other, with `on_batch_end`); of several requests
    /// the earliest wins. Unlike an alarm it is not stored and not kept
    /// over a restart: it paces work within a live room, such as
    /// announcing a count at most so often while members pour in. The room
    /// does not hibernate while a wake is pending.
    pub fn wake_after(&mut self, after: Duration) {
        let at = Instant::now() + after;
        if self.wake.is_none_or(|wake| at < wake) {
            *self.wake = Some(at);
        }
    }

    /// Pending alarms of this room.
    pub fn alarms(&self) -> impl Iterator<Item = (&str, SystemTime)> {
        self.alarms.iter().map(|(n, at)| (n.as_str(), *at))
    }

    /// Makes the reader of every connection of this room answer the exact
    /// text `request` with `response` by itself, without this room's
    /// handlers and without waking the room (e.g. an application-level
    /// `ping` → `pong`). `None` turns it off.
    pub fn set_auto_response(&mut self, pair: Option<(&str, &str)>) {
        self.auto_response.set(pair.map(|(request, response)| AutoResponse::new(request, response)));
    }

    /// When `conn`'s reader last answered it with the auto-response.
    pub fn last_auto_response(&self, conn: ConnId) -> Option<SystemTime> {
        self.auto_response.last_answered(conn)
    }
}

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
