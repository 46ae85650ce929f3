//! Connections as a room sees them: an id, a sink for messages, tags and
//! an attachment. The room hands its sink messages, never wire frames:
//! how a message is framed (or compressed, or forwarded to another node) is
//! the sink's business.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use switchboard_proto::{CloseCode, Message};

/// A connection's id, unique for the life of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What happened to a message handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued for writing.
    Queued,
    /// Queued, but the connection's queue is above its low watermark: the
    /// peer reads slowly.
    Backpressure,
    /// Not queued: the connection is closing, or its queue limit was passed
    /// and it is being cut off.
    Dropped,
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

/// A text request the connection layer answers with a text response by
/// itself, without waking the room (an application-level `ping` → `pong`).
/// One is shared by every connection of a room.
#[derive(Debug)]
pub struct AutoResponse {
    request: Bytes,
    response: Bytes,
    wire: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl AutoResponse {
    /// Answer the exact text `request` with `response`.
    pub fn new(request: &str, response: &str) -> AutoResponse {
        AutoResponse { request: Bytes::copy_from_slice(request.as_bytes()), response: Bytes::copy_from_slice(response.as_bytes()), wire: OnceLock::new() }
    }

    /// The request's text, as bytes.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// The response's text, as bytes.
    pub fn response(&self) -> &Bytes {
        &self.response
    }

    /// The pair in a sink's own form (say, the response framed), made by
    /// `make` for the first connection that asks and shared by the others.
    /// A sink should always ask for the same type; another type gets `None`.
    pub fn wire<T: Any + Send + Sync>(&self, make: impl FnOnce(&AutoResponse) -> T) -> Option<Arc<T>> {
        let made = self.wire.get_or_init(|| Arc::new(make(self)));
        made.clone().downcast::<T>().ok()
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
    /// Sets the auto-response the connection layer answers by itself, or
    /// none.
    fn set_auto_response(&self, auto: Option<Arc<AutoResponse>>);
    /// When the connection layer last answered an auto-response request.
    fn last_auto_response(&self) -> Option<SystemTime>;
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

    fn set_auto_response(&self, auto: Option<Arc<AutoResponse>>) {
        (**self).set_auto_response(auto)
    }

    fn last_auto_response(&self) -> Option<SystemTime> {
        (**self).last_auto_response()
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

    #[test]
    fn an_auto_response_keeps_one_wire_form() {
        let auto = AutoResponse::new("ping", "pong");
        let first = auto.wire(|a| (a.request().clone(), a.response().len())).unwrap();
        let second = auto.wire(|_| unreachable!("made once")).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, (Bytes::from_static(b"ping"), 4));
        assert!(auto.wire(|_| 0u8).is_none(), "another type is not the wire form");
    }
}
