//! Connections as a room sees them: an id, a sink for frames, tags and an
//! attachment.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

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
    /// Queues an encoded server frame (encoded once, shared by every recipient).
    fn send_frame(&self, frame: &Bytes) -> SendOutcome;
    /// Starts the closing handshake with `code` and `reason`.
    fn close(&self, code: u16, reason: &str);
    /// Sets the exact text request the connection layer answers by itself,
    /// with the encoded response frame, without waking the room. One pair
    /// is shared by every connection of the room.
    fn set_auto_response(&self, pair: Option<Arc<(Bytes, Bytes)>>);
    /// When the connection layer last answered an auto-response request.
    fn last_auto_response(&self) -> Option<SystemTime>;
}

/// Largest attachment per connection. 2 KiB holds a user id, a name and a
/// few flags; larger per-user state belongs in storage. Attachments stay in
/// memory while the room hibernates, so their size is the memory floor of
/// every hibernated connection.
pub const MAX_ATTACHMENT_LEN: usize = 2048;

/// A live connection in the actor's table.
pub(crate) struct ConnRecord {
    pub(crate) sink: Arc<dyn ConnSink>,
    pub(crate) tags: Vec<String>,
    pub(crate) attachment: Option<Vec<u8>>,
}
