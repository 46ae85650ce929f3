//! A WebSocket connection joined to a room: the two small adapters between
//! the connection layer and the room layer.
//!
//! [`RoomConnection`] is the connection's `Handler`: it answers the room's
//! auto-response request itself, hands every other message to the room
//! (handled at once on this connection's task when the room is free, queued
//! in its mailbox otherwise) and the end of the connection to the room's
//! mailbox. [`SocketSink`] is
//! the room's `ConnSink`: it frames the room's messages and puts them on
//! the connection's outbound queue, for other tasks. [`OwnTask`] is the
//! room's `LocalSink` while the room handles a read's messages on the
//! connection's own task: what the room sends this connection then goes
//! straight into its engine's output buffer, compressed there under the
//! `shared` policy (the thread's compressor keeps nothing per connection).
//! A connection admitted with a token is closed when the token expires.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::access_log;
use crate::auth::TOKEN_EXPIRED_CLOSE;
use crate::framing::{encode_run, encode_run_compressed, Framing};
use crate::limits::ConnPermit;
use switchboard_net::{Handler, Outbound, Outbox, Traffic};
use switchboard_proto::connection::ConnectionClosed;
use switchboard_proto::{CloseCode, Message};
use switchboard_room::{Closed, ConnId, ConnSink, LocalSink, ReadBatch, RoomHandle, Run, SendOutcome, TryDeliverError};
use tokio::task::AbortHandle;

/// The room side of a connection's outbound queue: frames the room's
/// messages (a run once for all its recipients, see `framing`) and queues
/// them. It holds the connection's place in the limits, given back when the
/// room lets go of the connection, and a token's expiry timer.
pub(crate) struct SocketSink {
    outbound: Arc<Outbound>,
    framing: Framing,
    _permit: ConnPermit,
    _expiry: Option<ExpiryTimer>,
}

/// The task that closes a token-authenticated connection when its token
/// expires; it lives with the room's sink, so it ends when the room lets
/// go of the connection (and the handler stays small for every other one).
pub(crate) struct ExpiryTimer(AbortHandle);

impl Drop for ExpiryTimer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ConnSink for SocketSink {
    fn send(&self, message: &Message) -> SendOutcome {
        self.framing.send(&self.outbound, message)
    }

    fn send_all(&self, messages: &[Message]) -> SendOutcome {
        self.framing.send_all(&self.outbound, messages)
    }

    fn send_run(&self, run: &Run) -> SendOutcome {
        self.framing.send_run(&self.outbound, run)
    }

    fn close(&self, code: CloseCode, reason: &str) {
        self.outbound.close(code.as_u16(), reason)
    }

    fn hibernating(&self) {
        self.framing.release_idle()
    }
}

/// The room's way straight into this connection while it handles the
/// connection's messages on its task (`RoomHandle::try_deliver`, under the
/// room's lock). Messages are framed into the engine's output buffer, with
/// no queue, lock or wake-up, and compressed there when the engine kept a
/// compressor (the `shared` policy: the thread's compressor, above the
/// threshold); only the first send first takes what other tasks queued
/// before (`Outbox::catch_up`), so nothing overtakes it. A connection whose
/// compressor keeps its context (`dedicated`) is not `direct`: that one
/// compressor is the sink's, and its messages take the sink.
struct OwnTask<'o, 'a> {
    out: &'o mut Outbox<'a>,
    caught_up: bool,
    direct: bool,
}

impl<'a> OwnTask<'_, 'a> {
    #[inline]
    fn out(&mut self) -> &mut Outbox<'a> {
        if !self.caught_up {
            self.caught_up = true;
            self.out.catch_up();
        }
        self.out
    }
}

fn outcome(sent: Result<(), ConnectionClosed>) -> SendOutcome {
    match sent {
        Ok(()) => SendOutcome::Queued,
        Err(ConnectionClosed) => SendOutcome::Dropped,
    }
}

impl LocalSink for OwnTask<'_, '_> {
    fn send(&mut self, message: &Message) -> SendOutcome {
        outcome(self.out().send_direct(std::slice::from_ref(message)))
    }

    fn send_all(&mut self, messages: &[Message]) -> SendOutcome {
        outcome(self.out().send_direct(messages))
    }

    fn send_run(&mut self, run: &Run) -> SendOutcome {
        // Framed once for every recipient of the run that frames it the
        // same way, this one included (see `framing`).
        let out = self.out();
        let frames = match out.outgoing_deflate() {
            None => run.encoded(encode_run).clone(),
            Some(deflate) => match deflate.shared_key() {
                Some(key) => run.encoded_keyed(key, |messages| encode_run_compressed(messages, deflate)),
                None => encode_run_compressed(run.messages(), deflate),
            },
        };
        outcome(out.send_frames(frames))
    }

    fn is_direct(&self) -> bool {
        self.direct
    }
}

/// Whether a connection is open in its room. A connection whose compressor
/// keeps its context is open `ViaSink`: the room's replies to it take the
/// sink, which holds that compressor, rather than the engine's path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opened {
    No,
    Direct,
    ViaSink,
}

/// A connection accepted into a room.
///
/// It lives in its connection's task for the connection's whole life, and
/// so do the futures of `on_message` and `on_read_end`: those are kept to a
/// few dozen bytes. Messages go to the room with `try_deliver`, other
/// events with `send`; only when the room's mailbox is full does the
/// connection wait for it, in a boxed future
/// (`RoomHandle::send`'s future is several hundred bytes).
pub(crate) struct RoomConnection {
    room: RoomHandle,
    conn: ConnId,
    /// Tags, attachment and place in the limits, until `on_open` hands
    /// them to the room (boxed: needed once).
    joining: Option<Box<Joining>>,
    /// Whether the room has the connection open, and how its replies
    /// leave (one byte: this struct is in every connection).
    opened: Opened,
    /// Messages of the current read, sent to the room as one event.
    pending: ReadBatch,
    /// Longest wait in milliseconds for the room to process our close
    /// before replying anyway (a `u32`: this struct is in every connection).
    close_wait_ms: u32,
    /// For the session's access log line: the client's address, when the
    /// session began (`access_log::session_clock_ms`), and the close code
    /// it ended with (0 until `on_close`; 1005 for a close without code).
    client: IpAddr,
    started_ms: u64,
    close_code: u16,
}

/// What an accepted connection brings to its room when it opens.
pub(crate) struct Joining {
    /// The room's decision: tags and attachment.
    pub(crate) tags: Vec<String>,
    pub(crate) attachment: Option<Vec<u8>>,
    /// Its place in the edge's connection limits, held while it is open.
    pub(crate) permit: ConnPermit,
    /// When its token expires (token auth only).
    pub(crate) expires: Option<SystemTime>,
}

impl RoomConnection {
    pub(crate) fn new(room: RoomHandle, conn: ConnId, joining: Joining, close_wait: Duration, client: IpAddr) -> RoomConnection {
        let joining = Some(Box::new(joining));
        let close_wait_ms = close_wait.as_millis().try_into().unwrap_or(u32::MAX);
        let started_ms = access_log::session_clock_ms();
        RoomConnection { room, conn, joining, opened: Opened::No, pending: ReadBatch::default(), close_wait_ms, client, started_ms, close_code: 0 }
    }
}

/// Closes the connection with [`TOKEN_EXPIRED_CLOSE`] once `expires` has
/// passed. A task of its own (not the connection's timers): only
/// token-authenticated connections pay for it.
fn close_at_expiry(outbound: Arc<Outbound>, expires: SystemTime) -> ExpiryTimer {
    let left = expires.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    let task = tokio::spawn(async move {
        tokio::time::sleep(left).await;
        outbound.close(TOKEN_EXPIRED_CLOSE, "token expired");
    });
    ExpiryTimer(task.abort_handle())
}

/// The sink of a connection opening now, holding its place in the limits
/// and its token's expiry; true when its compressor keeps its context, so
/// its messages must take the sink rather than the engine's own path.
pub(crate) fn open_sink(out: &mut Outbox<'_>, permit: ConnPermit, expires: Option<SystemTime>) -> (SocketSink, bool) {
    let expiry = expires.map(|expires| close_at_expiry(out.outbound(), expires));
    let deflate = out.split_outgoing_deflate();
    let via_sink = deflate.is_some() && out.outgoing_deflate().is_none();
    let framing = Framing::new(deflate, permit.stats());
    (SocketSink { outbound: out.outbound(), framing, _permit: permit, _expiry: expiry }, via_sink)
}

impl Handler for RoomConnection {
    async fn on_open(&mut self, mut out: Outbox<'_>) {
        let Some(joining) = self.joining.take() else { return };
        let Joining { tags, attachment, permit, expires } = *joining;
        let (sink, via_sink) = open_sink(&mut out, permit, expires);
        let sink = Box::new(sink);
        self.opened = match self.room.open(self.conn, sink, tags, attachment).await {
            Ok(_) if via_sink => Opened::ViaSink,
            Ok(_) => Opened::Direct,
            Err(_) => Opened::No,
        };
        if self.opened == Opened::No {
            out.close(CloseCode::TRY_AGAIN_LATER, "room unavailable");
        }
    }

    /// Gathers the message for the read's batch, unless it completes one
    /// or is the room's auto-response request: those go through
    /// `on_message`, which sends the batch or answers the request.
    fn take_message(&mut self, message: Message) -> Result<(), Message> {
        if self.pending.len() + 1 >= MAX_BATCH || self.room.is_auto_request(&message) {
            return Err(message);
        }
        self.pending.push(message);
        Ok(())
    }

    // Not `async fn`s: the work is done before the future is made, and the
    // future holds only the rare wait for a full mailbox.
    fn on_message(&mut self, message: Message, mut out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        let waiting = match self.room.auto_answer(self.conn, &message) {
            // Answered here, on the connection's own task: the room, awake
            // or hibernated, is not involved.
            Some(response) => {
                let _ = out.send(&response);
                None
            }
            None => {
                self.pending.push(message);
                if self.pending.len() >= MAX_BATCH {
                    self.forward(&mut out)
                } else {
                    None
                }
            }
        };
        Delivery { waiting, out }
    }

    fn on_read_end(&mut self, mut out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        let waiting = self.forward(&mut out);
        Delivery { waiting, out }
    }

    async fn on_close(&mut self, code: Option<CloseCode>, reason: &str, clean: bool) {
        self.close_code = code.unwrap_or(CloseCode::NO_STATUS).as_u16();
        if self.opened == Opened::No {
            return;
        }
        // Messages read before the close or the error reach the room first.
        let _ = self.room.deliver(self.conn, self.pending.take()).await;
        self.opened = Opened::No;
        if !clean && code != Some(CloseCode::ABNORMAL) {
            let _ = self.room.error(self.conn, reason.to_owned()).await;
        }
        let closed = Closed { code, reason: reason.to_owned(), clean, attachment: None };
        let orderly = clean || code != Some(CloseCode::ABNORMAL);
        // Replies the room sent before our close frame must go out before it.
        let wait = orderly.then(|| Duration::from_millis(self.close_wait_ms.into()));
        let _ = self.room.close(self.conn, closed, wait).await;
    }

    fn on_end(&mut self, traffic: Traffic) {
        let code = (self.close_code != 0).then_some(self.close_code);
        access_log::session(self.client, self.room.name(), access_log::since(self.started_ms), traffic, code);
    }
}

/// Most messages sent to the room in one event; a longer read is split.
const MAX_BATCH: usize = 64;

impl RoomConnection {
    /// Hands the messages of the current read to the room as one event:
    /// handled here and now if the room is free, queued if its mailbox has
    /// room; otherwise returns the wait. The list
    /// goes with the event, so a connection keeps no buffer between reads.
    /// The wait resolves to false if the room is gone.
    fn forward(&mut self, out: &mut Outbox<'_>) -> Option<Pin<Box<impl Future<Output = bool> + Send + '_>>> {
        let messages = self.pending.take();
        if messages.is_empty() {
            return None;
        }
        match self.room.try_deliver(self.conn, messages, &mut OwnTask { out, caught_up: false, direct: self.opened != Opened::ViaSink }) {
            Ok(()) => None,
            Err(TryDeliverError::Full(messages)) => {
                let (room, conn) = (&self.room, self.conn);
                Some(Box::pin(async move { room.deliver(conn, messages).await.is_ok() }))
            }
            Err(TryDeliverError::Gone) => {
                out.close(CloseCode::TRY_AGAIN_LATER, "room unavailable");
                None
            }
        }
    }
}

/// The end of a delivery: ready at once, or waiting for room in a full
/// mailbox (which also stops the connection's reads); closes the
/// connection if the room is gone. Three pointers, where an `async fn`
/// would keep its arguments twice.
struct Delivery<'o, W> {
    waiting: Option<Pin<Box<W>>>,
    out: Outbox<'o>,
}

impl<W: Future<Output = bool>> Future for Delivery<'_, W> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(waiting) = self.waiting.as_mut() else { return Poll::Ready(()) };
        let delivered = std::task::ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        if !delivered {
            self.out.close(CloseCode::TRY_AGAIN_LATER, "room unavailable");
        }
        Poll::Ready(())
    }
}

impl Drop for RoomConnection {
    fn drop(&mut self) {
        // The task ended without on_close (it panicked, or the runtime is
        // stopping), or the connection was accepted and never opened (the
        // 101 could not be written): make sure the room forgets it.
        if self.opened == Opened::No && self.joining.is_none() {
            return;
        }
        let closed = Closed { code: Some(CloseCode::ABNORMAL), reason: "connection task ended".into(), clean: false, attachment: None };
        self.room.close_detached(self.conn, closed);
    }
}

#[cfg(test)]
mod tests {
    use super::{RoomConnection, SocketSink};

    /// Every open connection's sink is a box of its own in the room's
    /// table; at 32 bytes it takes mimalloc's 32-byte class, half the next
    /// one (docs/benchmarks.md, idle memory).
    #[test]
    fn a_plain_sink_takes_32_bytes() {
        let size = std::mem::size_of::<SocketSink>();
        assert!(size <= 32, "SocketSink is {size} bytes");
    }

    /// The handler lives in every connection's box beside the protocol
    /// engine and the read buffer; that box stays within mimalloc's
    /// 192-byte size class. A parked connection keeps it in one block with
    /// its timers and counters; at 72 bytes that block takes the 160-byte
    /// class, not the 192 (`driver::parked` in switchboard-net pins that;
    /// docs/benchmarks.md, idle memory).
    #[test]
    fn a_room_connection_takes_at_most_72_bytes() {
        let size = std::mem::size_of::<RoomConnection>();
        assert!(size <= 72, "RoomConnection is {size} bytes");
        let boxed = size + std::mem::size_of::<switchboard_proto::Connection>() + std::mem::size_of::<bytes::BytesMut>();
        assert!(boxed <= 192, "a connection's box is {boxed} bytes");
    }
}
