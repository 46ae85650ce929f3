//! What a connection's owner calls as messages arrive.

use switchboard_proto::connection::ConnectionClosed;
use switchboard_proto::{CloseCode, Connection, Message};

/// Receives one connection's events. Called from the task that owns the
/// socket, one event at a time, in arrival order.
pub trait Handler: Send + 'static {
    /// The handshake completed. Messages sent here go out right after the 101.
    fn on_open(&mut self, _out: &mut Outbox<'_>) {}

    /// A complete message arrived. Replies sent through `out` are batched:
    /// every reply to the messages of one read leaves in one write.
    fn on_message(&mut self, message: Message, out: &mut Outbox<'_>);

    /// The connection ended. `code` is the peer's close code (`None` when the
    /// close frame had none), or ours when we failed the connection; `clean`
    /// is false when the TCP connection dropped without a closing handshake.
    fn on_close(&mut self, _code: Option<CloseCode>, _reason: &str, _clean: bool) {}
}

/// Sending side of a connection, lent to a [`Handler`].
pub struct Outbox<'a> {
    conn: &'a mut Connection,
}

impl<'a> Outbox<'a> {
    pub(crate) fn new(conn: &'a mut Connection) -> Self {
        Outbox { conn }
    }

    /// Queues a message.
    pub fn send(&mut self, message: &Message) -> Result<(), ConnectionClosed> {
        self.conn.send(message)
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ConnectionClosed> {
        self.conn.send_text(text)
    }

    /// Starts the closing handshake.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.conn.close(Some(code), reason)
    }
}
