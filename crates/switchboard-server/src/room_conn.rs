//! A WebSocket connection joined to a room: the two small adapters between
//! the connection layer and the room layer.
//!
//! [`RoomConnection`] is the connection's `Handler`: it forwards messages
//! and the end of the connection to the room's mailbox. [`SocketSink`] is
//! the room's `ConnSink`: it puts the room's encoded frames on the
//! connection's outbound queue.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use switchboard_net::{Handler, Outbound, Outbox, Push};
use switchboard_proto::{CloseCode, Message};
use switchboard_room::{Closed, ConnId, ConnSink, RoomEvent, RoomHandle, SendOutcome, TrySendError};
use tokio::sync::oneshot;

/// The room side of a connection's outbound queue.
pub(crate) struct SocketSink(Arc<Outbound>);

impl ConnSink for SocketSink {
    fn send_frame(&self, frame: &Bytes) -> SendOutcome {
        match self.0.push(frame.clone()) {
            Push::Queued => SendOutcome::Queued,
            Push::Backpressure => SendOutcome::Backpressure,
            Push::Dropped => SendOutcome::Dropped,
        }
    }

    fn close(&self, code: u16, reason: &str) {
        self.0.close(code, reason)
    }

    fn set_auto_response(&self, pair: Option<(Bytes, Bytes)>) {
        self.0.set_auto_response(pair)
    }

    fn last_auto_response(&self) -> Option<SystemTime> {
        self.0.last_auto_response()
    }
}

/// A connection accepted into a room.
///
/// It lives in its connection's task for the connection's whole life, and
/// so do the futures of `on_message` and `on_read_end`: those are kept to a
/// few dozen bytes. Events go to the room with `try_send`; only when the
/// room's mailbox is full does the connection wait, in a boxed future
/// (`RoomHandle::send`'s future is several hundred bytes).
pub(crate) struct RoomConnection {
    room: RoomHandle,
    conn: ConnId,
    /// Tags and attachment from the room's decision, until `on_open` hands
    /// them to the room (boxed: most connections have neither).
    joining: Option<Box<Joining>>,
    opened: bool,
    /// Messages of the current read, sent to the room as one event.
    pending: Vec<Message>,
    /// Longest wait for the room to process our close before replying anyway.
    close_wait: Duration,
}

struct Joining {
    tags: Vec<String>,
    attachment: Option<Vec<u8>>,
}

impl RoomConnection {
    pub(crate) fn new(room: RoomHandle, conn: ConnId, tags: Vec<String>, attachment: Option<Vec<u8>>, close_wait: Duration) -> RoomConnection {
        let joining = (!tags.is_empty() || attachment.is_some()).then(|| Box::new(Joining { tags, attachment }));
        RoomConnection { room, conn, joining, opened: false, pending: Vec::new(), close_wait }
    }
}

impl Handler for RoomConnection {
    async fn on_open(&mut self, out: &mut Outbox<'_>) {
        let sink = Arc::new(SocketSink(out.outbound()));
        let (tags, attachment) = self.joining.take().map_or((Vec::new(), None), |j| (j.tags, j.attachment));
        let event = RoomEvent::Open { conn: self.conn, sink, tags, attachment };
        self.opened = self.room.send(event).await.is_ok();
        if !self.opened {
            out.close(CloseCode::TRY_AGAIN_LATER, "room unavailable");
        }
    }

    async fn on_message(&mut self, message: Message, out: &mut Outbox<'_>) {
        self.pending.push(message);
        if self.pending.len() >= MAX_BATCH {
            self.forward(out).await;
        }
    }

    async fn on_read_end(&mut self, out: &mut Outbox<'_>) {
        self.forward(out).await;
    }

    async fn on_close(&mut self, code: Option<CloseCode>, reason: &str, clean: bool) {
        if !self.opened {
            return;
        }
        // Messages read before the close or the error reach the room first.
        if !self.pending.is_empty() {
            let messages = std::mem::take(&mut self.pending);
            let _ = self.room.send(RoomEvent::Messages { conn: self.conn, messages }).await;
        }
        self.opened = false;
        if !clean && code != Some(CloseCode::ABNORMAL) {
            let _ = self.room.send(RoomEvent::Error { conn: self.conn, error: reason.to_owned() }).await;
        }
        let closed = Closed { code: code.map(CloseCode::as_u16), reason: reason.to_owned(), clean, attachment: None };
        let (done, processed) = oneshot::channel();
        let orderly = clean || code != Some(CloseCode::ABNORMAL);
        if self.room.send(RoomEvent::Close { conn: self.conn, closed, done: Some(done) }).await.is_ok() && orderly {
            // Replies the room sent before our close frame must go out before it.
            let _ = tokio::time::timeout(self.close_wait, processed).await;
        }
    }
}

/// Most messages sent to the room in one event; a longer read is split.
const MAX_BATCH: usize = 64;

impl RoomConnection {
    /// Sends the messages of the current read to the room as one event. The
    /// list goes with the event, so a connection keeps no buffer between reads.
    async fn forward(&mut self, out: &mut Outbox<'_>) {
        let mut messages = std::mem::take(&mut self.pending);
        let event = match messages.len() {
            0 => return,
            1 => RoomEvent::Message { conn: self.conn, message: messages.pop().expect("one message") },
            _ => RoomEvent::Messages { conn: self.conn, messages },
        };
        let full = match self.room.try_send(event) {
            Ok(()) => return,
            Err(TrySendError::Full(event)) => Box::pin(self.room.send(event)),
            Err(TrySendError::Gone(_)) => {
                out.close(CloseCode::TRY_AGAIN_LATER, "room unavailable");
                return;
            }
        };
        // The mailbox is full: wait, which also stops this connection's reads.
        if full.await.is_err() {
            out.close(CloseCode::TRY_AGAIN_LATER, "room unavailable");
        }
    }
}

impl Drop for RoomConnection {
    fn drop(&mut self) {
        // The task ended without on_close (it panicked, or the runtime is
        // stopping): make sure the room forgets the connection.
        if !self.opened {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let room = self.room.clone();
            let closed = Closed { code: Some(CloseCode::ABNORMAL.as_u16()), reason: "connection task ended".into(), clean: false, attachment: None };
            let event = RoomEvent::Close { conn: self.conn, closed, done: None };
            runtime.spawn(async move {
                let _ = room.send(event).await;
            });
        }
    }
}
