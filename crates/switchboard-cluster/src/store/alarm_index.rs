//! The alarm index: each room's earliest alarm in the `<prefix>_alarms`
//! bucket (key: encoded room, value: Unix milliseconds in decimal), so a
//! node can find rooms whose alarms are due although no node runs them.
//! It is a hint: the room's storage is the truth, and loading a room
//! rewrites its entry.

use std::time::Duration;

use super::{JetStreamStore, Shared};
use crate::error::ClusterError;
use crate::names::{decode_room, encode_room};
use async_nats::jetstream::consumer::DeliverPolicy;

/// The longest a scan of the index may take.
const SCAN_TIMEOUT: Duration = Duration::from_secs(10);

impl JetStreamStore {
    /// Rooms (anywhere in the cluster) whose earliest alarm is at or before
    /// `until_ms`, with that time, earliest first. A node scans this now
    /// and then, claims the rooms nobody owns and loads them, so their
    /// alarms fire on their owner.
    pub async fn due_alarms(&self, until_ms: u64) -> Result<Vec<(String, u64)>, ClusterError> {
        let inner = &self.shared.cluster.inner;
        let bucket = inner.names.alarm_bucket();
        let (stream, prefix) = (format!("KV_{bucket}"), format!("$KV.{bucket}."));
        let filter = format!("{prefix}>");
        let mut due = Vec::new();
        let scan = self.shared.scan(&stream, &filter, DeliverPolicy::LastPerSubject, |_, message| {
            let removed = message.headers.as_ref().and_then(|h| h.get("KV-Operation")).is_some();
            let at = std::str::from_utf8(&message.payload).ok().and_then(|v| v.parse::<u64>().ok());
            let room = message.subject.strip_prefix(prefix.as_str()).and_then(decode_room);
            if let (false, Some(at), Some(room)) = (removed, at, room) {
                if at <= until_ms {
                    due.push((room, at));
                }
            }
        });
        tokio::time::timeout(SCAN_TIMEOUT, scan).await.map_err(|_| ClusterError::Nats("scanning the alarm index timed out".into()))??;
        due.sort_by_key(|(_, at)| *at);
        Ok(due)
    }
}

impl Shared {
    /// Writes the room's earliest alarm to the index (or removes its entry).
    pub(crate) async fn index_alarm(&self, room: &str, earliest: Option<u64>) {
        let inner = &self.cluster.inner;
        inner.counters.round_trip();
        let key = encode_room(room);
        let written = match earliest {
            Some(at) => inner.alarms.put(&key, at.to_string().into()).await.map(drop).map_err(|e| e.to_string()),
            None => inner.alarms.delete(&key).await.map_err(|e| e.to_string()),
        };
        if let Err(e) = written {
            tracing::warn!(room, error = %e, "updating the alarm index failed; the room's next load fixes it");
        }
    }

    /// After a load: makes the index entry match the room's alarms.
    pub(crate) async fn sync_alarm_index(&self, room: &str, earliest: Option<u64>) {
        let inner = &self.cluster.inner;
        inner.counters.round_trip();
        let current = inner.alarms.get(encode_room(room)).await.ok().flatten();
        let current = current.and_then(|v| std::str::from_utf8(&v).ok().and_then(|v| v.parse::<u64>().ok()));
        if current != earliest {
            self.index_alarm(room, earliest).await;
        }
    }
}
