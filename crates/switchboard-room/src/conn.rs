//! Connections as a room sees them: an id, a sink for frames, tags and an
//! attachment.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use switchboard_proto::frame::SharedFrame;
use switchboard_proto::CloseCode;

/// A connection's id, unique for the life of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What happened to a frame handed to a connection.
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

/// The outbound side of one connection, implemented by the server over a
/// socket (and by fakes in tests). Calls must not block.
pub trait ConnSink: Send + Sync + 'static {
    /// Queues an encoded server frame (encoded once, shared by every
    /// recipient; a large payload is the sender's buffer, not a copy).
    fn send_frame(&self, frame: &SharedFrame) -> SendOutcome;
    /// Starts the closing handshake with `code` and `reason`.
    fn close(&self, code: CloseCode, reason: &str);
    /// Sets the exact text request the connection layer answers by itself,
    /// with the encoded response frame, without waking the room. One pair
    /// is shared by every connection of the room.
    fn set_auto_response(&self, pair: Option<Arc<(Bytes, Bytes)>>);
    /// When the connection layer last answered an auto-response request.
    fn last_auto_response(&self) -> Option<SystemTime>;
}

/// A shared sink, e.g. a fake kept by a test to see what the room sent.
impl<T: ConnSink + ?Sized> ConnSink for Arc<T> {
    fn send_frame(&self, frame: &SharedFrame) -> SendOutcome {
        (**self).send_frame(frame)
    }

    fn close(&self, code: CloseCode, reason: &str) {
        (**self).close(code, reason)
    }

    fn set_auto_response(&self, pair: Option<Arc<(Bytes, Bytes)>>) {
        (**self).set_auto_response(pair)
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
/// connections lack) are boxed together: an entry is 32 bytes with its id.
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
