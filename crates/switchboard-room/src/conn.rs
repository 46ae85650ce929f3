//! Connections as a room sees them: an id, a sink for messages, tags and
//! an attachment. The room hands its sink messages, never wire frames:
//! how a message is framed (or compressed, or forwarded to another node) is
//! the sink's business.

use crate::conn_table::ConnTable;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use switchboard_proto::{CloseCode, Message, SendOutcome};

/// A connection's id, unique for the life of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Messages that go out together, to one connection or to many: a room's
/// sends of one batch, gathered, or one broadcast. A sink that must encode
/// them (a socket frames them) does it once for every recipient through
/// [`Run::encoded`], and once for the recipients that share a second
/// encoding (compressed frames, say) through [`Run::encoded_keyed`].
#[derive(Debug)]
pub struct Run {
    messages: Vec<Message>,
    encoded: OnceLock<Bytes>,
    keyed: OnceLock<(u64, Bytes)>,
}

impl Run {
    /// The run of `messages`, in order.
    pub fn new(messages: Vec<Message>) -> Run {
        Run { messages, encoded: OnceLock::new(), keyed: OnceLock::new() }
    }

    /// The messages, in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The messages back (their list's memory can serve the next run).
    pub fn into_messages(self) -> Vec<Message> {
        self.messages
    }

    /// The run in a sink's encoding: made by `encode` for the first
    /// recipient that asks, shared by the others.
    pub fn encoded(&self, encode: impl FnOnce(&[Message]) -> Bytes) -> &Bytes {
        self.encoded.get_or_init(|| encode(&self.messages))
    }

    /// The run in a second encoding, which `key` names: made by `encode`
    /// for the first recipient that asks and shared by the others that ask
    /// with the same key; a recipient with another key gets its own.
    pub fn encoded_keyed(&self, key: u64, encode: impl FnOnce(&[Message]) -> Bytes) -> Bytes {
        let mut encode = Some(encode);
        let (made_for, bytes) = self.keyed.get_or_init(|| (key, (encode.take().expect("unused"))(&self.messages)));
        match encode {
            Some(encode) if *made_for != key => encode(&self.messages),
            _ => bytes.clone(),
        }
    }
}

/// The outbound side of one connection, implemented by the server over a
/// socket (and by fakes in tests). Calls must not block.
pub trait ConnSink: Send + Sync + 'static {
    /// Queues one message (a large payload is the sender's buffer, to
    /// share rather than copy).
    fn send(&self, message: &Message) -> SendOutcome;
    /// Queues small messages for this connection alone, in order, as one
    /// push.
    fn send_all(&self, messages: &[Message]) -> SendOutcome;
    /// Queues a run of small messages, in order, as one push; the same run
    /// goes to many connections.
    fn send_run(&self, run: &Run) -> SendOutcome;
    /// Starts the closing handshake with `code` and `reason`.
    fn close(&self, code: CloseCode, reason: &str);
    /// The room is hibernating: it handled nothing, so sent this connection
    /// nothing, for its `hibernate_after`. A sink may free what it keeps
    /// only to send (a compressor's context); the default keeps everything.
    fn hibernating(&self) {}
}

/// The connection whose own task runs the room's handlers for its own
/// messages ([`crate::RoomHandle::try_deliver`]): what the room sends that
/// connection meanwhile is handed here, straight to it, instead of to its
/// [`ConnSink`], whose queue exists for other tasks to reach it. Only ever
/// called while the room's state is held.
pub trait LocalSink {
    /// Sends one message.
    fn send(&mut self, message: &Message) -> SendOutcome;
    /// Sends small messages, in order.
    fn send_all(&mut self, messages: &[Message]) -> SendOutcome;
    /// Sends a run of small messages that goes to other connections too.
    fn send_run(&mut self, run: &Run) -> SendOutcome;
    /// False when this connection's messages must take its `ConnSink`
    /// after all (the sink encodes them in a way this one cannot, say
    /// compressed); the room then sends through the sink.
    fn is_direct(&self) -> bool {
        true
    }
}

/// A connection's own sink as its local one: sends take the queue, as
/// from any other task (tests, and callers without a faster way in).
impl<T: ConnSink + ?Sized> LocalSink for &T {
    fn send(&mut self, message: &Message) -> SendOutcome {
        ConnSink::send(*self, message)
    }

    fn send_all(&mut self, messages: &[Message]) -> SendOutcome {
        ConnSink::send_all(*self, messages)
    }

    fn send_run(&mut self, run: &Run) -> SendOutcome {
        ConnSink::send_run(*self, run)
    }
}

/// The local connection during a batch handled on its own task.
pub(crate) struct Local<'a> {
    pub(crate) conn: ConnId,
    pub(crate) sink: &'a mut dyn LocalSink,
}

impl Local<'_> {
    /// A shorter borrow of the same, for one handler call.
    pub(crate) fn reborrow(&mut self) -> Local<'_> {
        Local { conn: self.conn, sink: &mut *self.sink }
    }
}

/// Where a message for one connection goes: its queue, or straight to it
/// when it is the local connection.
pub(crate) enum Target<'s> {
    Queue(&'s dyn ConnSink),
    Local(&'s mut dyn LocalSink),
}

impl Target<'_> {
    pub(crate) fn send(self, message: &Message) -> SendOutcome {
        match self {
            Target::Queue(sink) => sink.send(message),
            Target::Local(sink) => sink.send(message),
        }
    }

    pub(crate) fn send_all(self, messages: &[Message]) -> SendOutcome {
        match self {
            Target::Queue(sink) => sink.send_all(messages),
            Target::Local(sink) => sink.send_all(messages),
        }
    }

    pub(crate) fn send_run(self, run: &Run) -> SendOutcome {
        match self {
            Target::Queue(sink) => sink.send_run(run),
            Target::Local(sink) => sink.send_run(run),
        }
    }
}

/// Where a message for `conn` goes, if it is open.
#[inline]
pub(crate) fn target<'s>(conns: &'s ConnTable, local: &'s mut Option<Local<'_>>, conn: ConnId) -> Option<Target<'s>> {
    let record = conns.get(conn)?;
    Some(match local {
        Some(local) if local.conn == conn => Target::Local(&mut *local.sink),
        _ => Target::Queue(&*record.sink),
    })
}

/// A shared sink, e.g. a fake kept by a test to see what the room sent.
impl<T: ConnSink + ?Sized> ConnSink for Arc<T> {
    fn send(&self, message: &Message) -> SendOutcome {
        (**self).send(message)
    }

    fn send_all(&self, messages: &[Message]) -> SendOutcome {
        (**self).send_all(messages)
    }

    fn send_run(&self, run: &Run) -> SendOutcome {
        (**self).send_run(run)
    }

    fn close(&self, code: CloseCode, reason: &str) {
        (**self).close(code, reason)
    }
}

/// Largest attachment per connection. 2 KiB holds a user id, a name and a
/// few flags; larger per-user state belongs in storage. Attachments stay in
/// memory while the room hibernates, so their size is the memory floor of
/// every hibernated connection.
pub const MAX_ATTACHMENT_LEN: usize = 2048;

/// A live connection in the actor's table. The table holds one per open
/// connection, hibernated or not, so tags and attachment (which most
/// connections lack) are boxed together (the test
/// `a_connection_record_stays_small` pins its size).
pub(crate) struct ConnRecord {
    pub(crate) sink: Box<dyn ConnSink>,
    extra: Option<Box<Extra>>,
}

struct Extra {
    tags: Vec<String>,
    attachment: Option<Vec<u8>>,
}

impl ConnRecord {
    pub(crate) fn new(sink: Box<dyn ConnSink>, tags: Vec<String>, attachment: Option<Vec<u8>>) -> ConnRecord {
        let mut record = ConnRecord { sink, extra: None };
        record.set(tags, attachment);
        record
    }

    fn set(&mut self, tags: Vec<String>, attachment: Option<Vec<u8>>) {
        self.extra = (!tags.is_empty() || attachment.is_some()).then(|| Box::new(Extra { tags, attachment }));
    }

    pub(crate) fn tags(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |extra| extra.tags.as_slice())
    }

    pub(crate) fn attachment(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|extra| extra.attachment.as_deref())
    }

    pub(crate) fn set_attachment(&mut self, attachment: Option<Vec<u8>>) {
        let tags = self.extra.take().map_or(Vec::new(), |extra| extra.tags);
        self.set(tags, attachment);
    }

    pub(crate) fn into_attachment(self) -> Option<Vec<u8>> {
        self.extra.and_then(|extra| extra.attachment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_record_stays_small() {
        // The table holds one per open connection, hibernated or not: a
        // boxed sink and one optional box.
        assert!(std::mem::size_of::<ConnRecord>() <= 24, "{}", std::mem::size_of::<ConnRecord>());
    }

    #[test]
    fn a_run_is_encoded_once_for_every_recipient() {
        let run = Run::new(vec![Message::text("a"), Message::text("b")]);
        let mut calls = 0;
        for _ in 0..3 {
            let encoded = run.encoded(|messages| {
                calls += 1;
                Bytes::from(messages.iter().map(|m| m.as_text().unwrap()).collect::<String>())
            });
            assert_eq!(&encoded[..], b"ab");
        }
        assert_eq!(calls, 1);
    }
}
