//! What a handler can do: reach connections, broadcast, store, set alarms.
//! Storage writes and alarm changes are recorded and committed after the
//! batch of events (see the `storage` module); nothing here waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchboard_proto::frame::{append_frame, encode_frame, DataOp, OpCode, SharedFrame, COPY_THRESHOLD, MAX_HEADER_LEN};
use switchboard_proto::{CloseCode, Message};
use switchboard_store::{Store, Write};

use crate::conn::{ConnId, ConnRecord, SendOutcome, MAX_ATTACHMENT_LEN};
use crate::storage::{RoomStorage, WriteBehind};

/// A room's view of its world during one handler call.
pub struct Ctx<'a> {
    pub(crate) room: &'a str,
    pub(crate) conns: &'a mut BTreeMap<ConnId, ConnRecord>,
    pub(crate) store: &'a dyn Store,
    pub(crate) alarms: &'a mut BTreeMap<String, SystemTime>,
    pub(crate) auto_response: &'a mut Option<Arc<(Bytes, Bytes)>>,
    pub(crate) held: &'a mut Held,
    pub(crate) pending: &'a mut WriteBehind,
}

/// Small frames held back until the end of the room's batch of events or
/// until anything else is about to reach a connection, then queued as one
/// run of frames: broadcasts to the same connections (see
/// [`Ctx::broadcast`]), or sends to one connection (see [`Ctx::send`]). A
/// room that relays a burst of messages to its members, or answers a burst
/// from one connection, thus costs each connection one push for the burst
/// instead of one per message, and what each connection receives stays in
/// the order the room sent it.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Whom the held frames are for.
    to: HeldFor,
    /// Whole encoded frames, back to back.
    frames: Vec<u8>,
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

/// First capacity of the held frames: sixteen short messages' worth.
const HELD_START: usize = 1024;

impl Held {
    /// Queues the held frames on every connection they are for; holds
    /// nothing after.
    pub(crate) fn flush(&mut self, conns: &BTreeMap<ConnId, ConnRecord>) {
        let to = std::mem::take(&mut self.to);
        if self.frames.is_empty() {
            return;
        }
        let run = SharedFrame::run(Bytes::from(std::mem::take(&mut self.frames)));
        match to {
            HeldFor::All { except } => {
                fan_out(conns, &run, |id| Some(id) != except);
            }
            HeldFor::One { conn, .. } => {
                // A dropped run needs no report: the connection is being cut
                // off, and the room hears of it as a close.
                if let Some(record) = conns.get(&conn) {
                    record.sink.send_frame(&run);
                }
            }
            HeldFor::Nobody => unreachable!("frames are held for someone"),
        }
    }

    /// Holds `message` for `to`, after the frames held for it already.
    fn hold(&mut self, to: HeldFor, message: &Message) {
        self.to = to;
        if self.frames.capacity() == 0 {
            // Sized for a burst, not regrown frame by frame.
            self.frames.reserve(HELD_START);
        }
        append_frame(OpCode::Data(data_op(message)), false, message.payload(), &mut self.frames);
    }

    /// Whether `message` can join what is held for `to`: the same
    /// connections, a small message, and room under the limit.
    fn takes(&self, to: HeldFor, message: &Message) -> bool {
        let len = message.payload().len();
        self.to == to && len <= COPY_THRESHOLD && self.frames.len() + MAX_HEADER_LEN + len <= HELD_LIMIT
    }
}

/// Queues `frame` on every connection `to` picks, in id order. Returns how
/// many queued it.
fn fan_out(conns: &BTreeMap<ConnId, ConnRecord>, frame: &SharedFrame, mut to: impl FnMut(ConnId) -> bool) -> usize {
    conns.iter().filter(|(id, _)| to(**id)).filter(|(_, c)| c.sink.send_frame(frame) != SendOutcome::Dropped).count()
}

/// An attachment over [`MAX_ATTACHMENT_LEN`], or for an unknown connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentRejected;

fn data_op(message: &Message) -> DataOp {
    match message {
        Message::Text(_) => DataOp::Text,
        Message::Binary(_) => DataOp::Binary,
    }
}

pub(crate) fn encode(message: &Message) -> SharedFrame {
    SharedFrame::new(OpCode::Data(data_op(message)), false, message.payload())
}

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
    pub fn send(&mut self, conn: ConnId, message: &Message) -> SendOutcome {
        if self.pending.is_waiting(conn) {
            // Behind a reply that waits for a commit: keep the order.
            self.pending.queue_behind(conn, encode(message));
            return SendOutcome::Queued;
        }
        let held = &mut *self.held;
        if let HeldFor::One { conn: target, outcome } = held.to {
            if target == conn && outcome != SendOutcome::Dropped && held.takes(held.to, message) {
                held.hold(held.to, message);
                return outcome;
            }
        }
        held.flush(self.conns);
        let Some(record) = self.conns.get(&conn) else { return SendOutcome::Dropped };
        let frame = encode(message);
        let outcome = record.sink.send_frame(&frame);
        if frame.is_small() {
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
    pub fn broadcast(&mut self, message: &Message, except: Option<ConnId>) -> usize {
        if self.pending.any_waiting() {
            return self.broadcast_where(message, |id| Some(id) != except);
        }
        let recipients = self.conns.len() - usize::from(except.is_some_and(|id| self.conns.contains_key(&id)));
        let held = &mut *self.held;
        let to = HeldFor::All { except };
        if held.takes(to, message) {
            held.hold(to, message);
            return recipients;
        }
        held.flush(self.conns);
        if message.payload().len() > COPY_THRESHOLD || recipients == 0 {
            // A large payload is shared by the queues as it is.
            return fan_out(self.conns, &encode(message), |id| Some(id) != except);
        }
        held.hold(to, message);
        recipients
    }

    /// Sends a message to every connection for which `to` says yes, in id
    /// order, encoding it once, now (after any held broadcasts). Returns how
    /// many connections queued it.
    pub fn broadcast_where(&mut self, message: &Message, mut to: impl FnMut(ConnId) -> bool) -> usize {
        self.held.flush(self.conns);
        let mut frame = encode(message);
        if frame.is_small() {
            // One buffer for every recipient to share: a reference count
            // each, where a small frame would be copied into each queue.
            frame = SharedFrame::run(frame.to_bytes());
        }
        if !self.pending.any_waiting() {
            return fan_out(self.conns, &frame, to);
        }
        // Connections waiting for a reply after a commit get it behind that.
        let pending = &mut *self.pending;
        let mut queued = 0;
        for (id, record) in self.conns.iter().filter(|(id, _)| to(**id)) {
            if pending.is_waiting(*id) {
                pending.queue_behind(*id, frame.clone());
                queued += 1;
            } else if record.sink.send_frame(&frame) != SendOutcome::Dropped {
                queued += 1;
            }
        }
        queued
    }

    /// Starts closing a connection.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        self.held.flush(self.conns);
        if let Some(record) = self.conns.get(&conn) {
            record.sink.close(code, reason);
        }
    }

    /// The tags a connection was accepted with.
    pub fn tags(&self, conn: ConnId) -> &[String] {
        self.conns.get(&conn).map_or(&[], |c| c.tags())
    }

    /// The connection's attachment (kept while the room hibernates).
    pub fn attachment(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(&conn).and_then(|c| c.attachment())
    }

    /// Replaces the connection's attachment (at most [`MAX_ATTACHMENT_LEN`] bytes).
    pub fn set_attachment(&mut self, conn: ConnId, value: Option<Vec<u8>>) -> Result<(), AttachmentRejected> {
        if value.as_ref().is_some_and(|v| v.len() > MAX_ATTACHMENT_LEN) {
            return Err(AttachmentRejected);
        }
        let record = self.conns.get_mut(&conn).ok_or(AttachmentRejected)?;
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
        self.held.flush(self.conns);
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

    /// Pending alarms of this room.
    pub fn alarms(&self) -> impl Iterator<Item = (&str, SystemTime)> {
        self.alarms.iter().map(|(n, at)| (n.as_str(), *at))
    }

    /// Makes the connection layer answer the exact text `request` with
    /// `response` on every connection of this room, without waking the room
    /// (e.g. an application-level `ping` → `pong`). `None` turns it off.
    pub fn set_auto_response(&mut self, pair: Option<(&str, &str)>) {
        let encoded = pair.map(|(req, resp)| {
            Arc::new((Bytes::copy_from_slice(req.as_bytes()), encode_frame(OpCode::Data(DataOp::Text), false, resp.as_bytes())))
        });
        for record in self.conns.values() {
            record.sink.set_auto_response(encoded.clone());
        }
        *self.auto_response = encoded;
    }

    /// When the connection layer last answered an auto-response for `conn`.
    pub fn last_auto_response(&self, conn: ConnId) -> Option<SystemTime> {
        self.conns.get(&conn).and_then(|c| c.sink.last_auto_response())
    }
}

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
