//! What became of a message handed to a connection's sending side: one
//! answer for every layer that queues messages (the room that sends, the
//! queue that other tasks reach a connection through, the connection
//! itself).

/// What happened to a message handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued for writing.
    Queued,
    /// Queued, but more than half of what the connection may hold is
    /// waiting: the peer reads slowly.
    Backpressure,
    /// Not queued: the connection is closing, or its queue limit was passed
    /// and it is being cut off.
    Dropped,
}
