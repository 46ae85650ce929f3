//! Whether a room has anything in JetStream, asked without claiming it:
//! HTTP may only start a room that exists, and a request to a made-up
//! room must leave no lease and no message behind.

use async_nats::jetstream::stream::LastRawMessageErrorKind;

use super::JetStreamStore;
use crate::error::{nats, ClusterError};

impl JetStreamStore {
    /// Whether any message is stored on `room`'s subject: `false` for a
    /// room that was never written (nor claimed). One read of the stream's
    /// last message on the subject; the replica is not loaded. A room with
    /// messages may still hold no data (only owner markers, or every key
    /// deleted): load it to know.
    pub async fn has_messages(&self, room: &str) -> Result<bool, ClusterError> {
        let inner = &self.shared.cluster.inner;
        inner.counters.round_trip();
        let stream = inner.js.get_stream_no_info(inner.names.store_stream()).await.map_err(|e| nats("opening the store stream", e))?;
        match stream.get_last_raw_message_by_subject(&inner.names.store_subject(room)).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(nats("reading a room's last stored message", e)),
        }
    }
}
