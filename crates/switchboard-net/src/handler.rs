//! What a connection's owner calls as messages arrive.

use std::future::Future;
use std::sync::Arc;

use switchboard_proto::connection::ConnectionClosed;
use switchboard_proto::deflate::Outgoing;
use switchboard_proto::{CloseCode, Connection, Message};

use bytes::Bytes;

use crate::driver::move_frames;
use crate::outbound::Outbound;

/// Receives one connection's events, from the task that owns the socket,
/// one at a time, in arrival order. Handlers may await (e.g. a full room
/// mailbox): while they do, the connection reads nothing more, which is the
/// backpressure a flooding peer should feel.
///
/// Memory: the handler and the futures of `on_message` and `on_read_end`
/// are part of every connection's task for the connection's whole life
/// (the task is as large as its largest state). Keep them to a few dozen
/// bytes: do the work before making the future (these need not be `async
/// fn`s) and box a rare large await (e.g. a full room mailbox: `try_send`
/// first, a boxed `send` only when it is full). `on_open` and `on_close` run
/// once and are boxed by the caller.
pub trait Handler: Send + 'static {
    /// The handshake was accepted. Its 101 goes out right after this
    /// returns, in one write with whatever this sent, so anything that
    /// should know of the connection before its peer can act (its room)
    /// is told here. `out.outbound()` is the queue other tasks use to
    /// reach this connection.
    fn on_open(&mut self, _out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A complete message arrived. Replies queued through `out` are batched:
    /// every reply to the messages of one read leaves in one write.
    fn on_message(&mut self, message: Message, out: Outbox<'_>) -> impl Future<Output = ()> + Send;

    /// Takes a message at once, without a future, when the handler needs
    /// neither `out` nor a wait for it (one that gathers a read's messages
    /// for `on_read_end`, say); gives it back otherwise, and the message
    /// then goes to `on_message`. Saves a future per message on the
    /// connection's hottest path. The default takes none.
    fn take_message(&mut self, message: Message) -> Result<(), Message> {
        Err(message)
    }

    /// Every message of one read has been handed over (`take_message` or
    /// `on_message`): a handler that batches (e.g. one room event per read)
    /// sends its batch here.
    fn on_read_end(&mut self, _out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The connection ended. `clean` means the peer sent a close frame:
    /// resolve once everything that must precede our close reply is queued
    /// on the outbound queue. Otherwise `code` says why (1006: dropped or no
    /// answer to pings; 1002/1007/1009: the peer broke the protocol).
    fn on_close(&mut self, _code: Option<CloseCode>, _reason: &str, _clean: bool) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The connection's task is ending, after `on_close` and the last write
    /// (an access log's moment). Not called when a handler panicked.
    fn on_end(&mut self, _traffic: Traffic) {}
}

/// What one connection read and wrote after its handshake, in bytes on the
/// stream (frame headers, masks and close frames included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes read.
    pub read: u64,
    /// Bytes written.
    pub written: u64,
}

/// Sending side of a connection, handed to a [`Handler`] for one event.
pub struct Outbox<'a> {
    conn: &'a mut Connection,
    outbound: &'a Arc<Outbound>,
}

impl<'a> Outbox<'a> {
    pub(crate) fn new(conn: &'a mut Connection, outbound: &'a Arc<Outbound>) -> Self {
        Outbox { conn, outbound }
    }

    /// Queues a message.
    pub fn send(&mut self, message: &Message) -> Result<(), ConnectionClosed> {
        self.conn.send(message)
    }

    /// Moves the frames other tasks queued on the outbound queue so far into
    /// the engine, so that what is sent through this outbox next follows
    /// them. A handler that sends on behalf of others who may also have
    /// queued for this connection (a room handled on this task) calls it
    /// once, before its first send, at a point where nobody else can queue
    /// more for the connection (under the room's lock).
    pub fn catch_up(&mut self) {
        move_frames(self.outbound, self.conn);
    }

    /// Queues messages uncompressed, framed straight into the engine's
    /// output buffer (see `Connection::send_uncompressed`).
    pub fn send_uncompressed(&mut self, messages: &[Message]) -> Result<(), ConnectionClosed> {
        self.conn.send_uncompressed(messages)
    }

    /// Queues messages framed straight into the engine's output buffer,
    /// compressed when the engine kept a compressor (see
    /// `Connection::send_direct`).
    #[inline]
    pub fn send_direct(&mut self, messages: &[Message]) -> Result<(), ConnectionClosed> {
        self.conn.send_direct(messages)
    }

    /// Queues whole encoded, unmasked frames made once for many
    /// connections (shared, not copied, when large).
    pub fn send_frames(&mut self, frames: Bytes) -> Result<(), ConnectionClosed> {
        self.conn.send_prepared(frames)
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ConnectionClosed> {
        self.conn.send_text(text)
    }

    /// Starts the closing handshake.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.conn.close(Some(code), reason)
    }

    /// The compressor of this connection's messages (permessage-deflate,
    /// if agreed), for a caller that frames them for the outbound queue:
    /// see `Connection::split_outgoing_deflate`.
    pub fn split_outgoing_deflate(&mut self) -> Option<Outgoing> {
        self.conn.split_outgoing_deflate()
    }

    /// The compressor the engine kept for its own sends, if any.
    pub fn outgoing_deflate(&mut self) -> Option<&mut Outgoing> {
        self.conn.outgoing_deflate()
    }

    /// The connection's shared outbound queue, for other tasks.
    pub fn outbound(&self) -> Arc<Outbound> {
        self.outbound.clone()
    }
}
