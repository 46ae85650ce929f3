//! A room's writer: the one task that sends the room's messages, one at a
//! time, each expecting the sequence of the message before it; it applies
//! acknowledged writes to the replica, reports the commits, keeps the alarm
//! index current and compacts the subject.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{header, HeaderMap};
use bytes::Bytes;
use switchboard_store::{StoreError, Write};

use super::codec::{self, Record};
use super::{fail_all, Pending, Shared};
use crate::lease::LeaseWatch;

/// A publish whose acknowledgement did not arrive is sent again, with the
/// same message id (JetStream stores it once), this many times in all.
const PUBLISH_ATTEMPTS: u32 = 4;
/// Room for the headers and subject within the server's maximum message size.
const HEADROOM: usize = 1024;

/// Why a publish did not succeed.
pub(crate) enum Failure {
    /// JetStream refused it: another writer changed the room first.
    Fenced(String),
    /// Not sent or refused for a reason that says it was not stored.
    Refused(String),
    /// No acknowledgement: it may or may not have been stored.
    Unknown(String),
}

/// One message's worth of queued commits.
struct Job {
    pending: Vec<Pending>,
    writes: Vec<Write>,
    expected: u64,
    lease: LeaseWatch,
    message_id: String,
}

impl Shared {
    pub(crate) fn spawn_writer(self: &Arc<Self>, room: String, generation: u64) {
        let shared = self.clone();
        self.runtime.spawn(async move { shared.write_room(room, generation).await });
    }

    async fn write_room(self: Arc<Self>, room: String, generation: u64) {
        let subject = self.cluster.inner.names.store_subject(&room);
        while let Some(job) = self.next_job(&room, generation) {
            let payload = Bytes::from(codec::encode(&Record::Writes(job.writes)));
            let outcome = self.publish(&subject, payload, job.expected, &job.message_id, &job.lease).await;
            let seq = match outcome {
                Ok(seq) => seq,
                Err(failure) => {
                    self.failed(&room, generation, failure, job.pending);
                    continue;
                }
            };
            let (index, compact) = self.stored(&room, generation, seq, &job.pending);
            // Before the commits are reported, so an acknowledged alarm is
            // in the index (only commits that move the earliest alarm wait).
            if let Some(earliest) = index {
                self.index_alarm(&room, earliest).await;
            }
            for p in job.pending {
                (p.done)(Ok(()));
            }
            if compact {
                self.compact(&room, generation, &subject).await;
            }
        }
    }

    /// Takes the queued commits that fit in one message, or ends the writer
    /// (nothing queued, room gone, or no longer writable).
    fn next_job(&self, room: &str, generation: u64) -> Option<Job> {
        let max = self.cluster.inner.client.max_payload().saturating_sub(HEADROOM).max(HEADROOM);
        loop {
            let mut rooms = self.lock();
            let loaded = rooms.get_mut(room).filter(|r| r.generation == generation)?;
            if loaded.queue.is_empty() {
                loaded.writing = false;
                return None;
            }
            let unwritable = match &loaded.broken {
                Some(why) => Some(why.clone()),
                None if !loaded.lease.is_held() => Some(format!("the lease on {room:?} was lost: this node no longer owns the room")),
                None => None,
            };
            if let Some(why) = unwritable {
                loaded.broken = Some(why.clone());
                loaded.writing = false;
                let queue = std::mem::take(&mut loaded.queue);
                drop(rooms);
                fail_all(queue, &why);
                return None;
            }
            let mut pending = Vec::new();
            let mut size = 0;
            while let Some(next) = loaded.queue.front() {
                let len = codec::encoded_len(&next.writes);
                if !pending.is_empty() && size + len > max {
                    break;
                }
                size += len;
                pending.push(loaded.queue.pop_front().expect("front exists"));
            }
            if size > max {
                drop(rooms);
                fail_all(pending, &format!("a batch of {size} bytes is more than NATS takes in one message ({max})"));
                continue;
            }
            loaded.next_message += 1;
            let message_id = format!("{}.{generation}.{}", self.writer_id, loaded.next_message);
            let writes = pending.iter().flat_map(|p| p.writes.iter().cloned()).collect();
            return Some(Job { pending, writes, expected: loaded.last_seq, lease: loaded.lease.clone(), message_id });
        }
    }

    /// Publishes one message on the room's subject expecting `expected` as
    /// the subject's last sequence; the stream sequence it got.
    pub(crate) async fn publish(&self, subject: &str, payload: Bytes, expected: u64, message_id: &str, lease: &LeaseWatch) -> Result<u64, Failure> {
        let counters = &self.cluster.inner.counters;
        let mut last_error = String::new();
        for attempt in 0..PUBLISH_ATTEMPTS {
            if !lease.is_held() {
                let why = format!("the lease on {:?} was lost: this node no longer owns the room", lease.room());
                return Err(if attempt == 0 { Failure::Refused(why) } else { Failure::Unknown(why) });
            }
            let mut headers = HeaderMap::new();
            headers.insert(header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string().as_str());
            headers.insert(header::NATS_MESSAGE_ID, message_id);
            counters.round_trip();
            let sent = self.cluster.inner.js.publish_with_headers(subject.to_owned(), headers, payload.clone()).await;
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    counters.fenced();
                    return Err(Failure::Fenced(format!("another owner wrote to room {:?} first: {e}", lease.room())));
                }
                Err(e) if attempt == 0 && matches!(e.kind(), PublishErrorKind::MaxPayloadExceeded | PublishErrorKind::StreamNotFound) => {
                    return Err(Failure::Refused(format!("JetStream refused the write: {e}")));
                }
                Err(e) => {
                    tracing::debug!(subject, attempt, error = %e, "storage publish failed; retrying");
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(100) * (attempt + 1)).await;
                }
            }
        }
        Err(Failure::Unknown(format!("no acknowledgement from JetStream after {PUBLISH_ATTEMPTS} attempts: {last_error}")))
    }

    /// Applies an acknowledged message's writes; returns the alarm index
    /// change and whether a snapshot is due.
    fn stored(&self, room: &str, generation: u64, seq: u64, pending: &[Pending]) -> (Option<Option<u64>>, bool) {
        let mut rooms = self.lock();
        let Some(loaded) = rooms.get_mut(room).filter(|r| r.generation == generation) else {
            return (None, false);
        };
        for p in pending {
            loaded.replica.apply(&p.writes);
        }
        loaded.last_seq = seq;
        loaded.since_snapshot += 1;
        let earliest = loaded.replica.earliest_alarm();
        let index = (earliest != loaded.indexed_alarm).then(|| {
            loaded.indexed_alarm = earliest;
            earliest
        });
        (index, loaded.since_snapshot >= self.options.compact_after)
    }

    fn failed(&self, room: &str, generation: u64, failure: Failure, pending: Vec<Pending>) {
        let why = match failure {
            Failure::Refused(why) => why,
            Failure::Fenced(why) | Failure::Unknown(why) => {
                // Our idea of the room's last sequence may be wrong now:
                // nothing more is written until the room is loaded again.
                let why = format!("{why}; room {room:?} must be loaded again");
                tracing::warn!(room, why, "room storage stopped");
                if let Some(loaded) = self.lock().get_mut(room).filter(|r| r.generation == generation) {
                    loaded.broken = Some(why.clone());
                }
                why
            }
        };
        for p in pending {
            (p.done)(Err(StoreError(why.clone())));
        }
    }

    /// Writes the room's whole state as one message and purges the
    /// messages before it.
    async fn compact(&self, room: &str, generation: u64, subject: &str) {
        let max = self.cluster.inner.client.max_payload().saturating_sub(HEADROOM);
        let (snapshot, expected, lease, message_id) = {
            let mut rooms = self.lock();
            let Some(loaded) = rooms.get_mut(room).filter(|r| r.generation == generation && r.broken.is_none()) else { return };
            loaded.since_snapshot = 0;
            if loaded.replica.size() > max {
                tracing::warn!(room, size = loaded.replica.size(), max, "room state is larger than one NATS message: not compacted");
                return;
            }
            loaded.next_message += 1;
            let id = format!("{}.{generation}.{}", self.writer_id, loaded.next_message);
            (loaded.replica.snapshot(), loaded.last_seq, loaded.lease.clone(), id)
        };
        let payload = Bytes::from(codec::encode(&Record::Snapshot(snapshot)));
        if payload.len() > max {
            tracing::warn!(room, size = payload.len(), max, "room snapshot is larger than one NATS message: not compacted");
            return;
        }
        let seq = match self.publish(subject, payload, expected, &message_id, &lease).await {
            Ok(seq) => seq,
            Err(failure) => return self.failed(room, generation, failure, Vec::new()),
        };
        if let Some(loaded) = self.lock().get_mut(room).filter(|r| r.generation == generation) {
            loaded.last_seq = seq;
        }
        self.cluster.inner.counters.round_trip();
        let stream = self.cluster.inner.names.store_stream();
        let purged = match self.cluster.inner.js.get_stream_no_info(&stream).await {
            Ok(stream) => stream.purge().filter(subject).sequence(seq).await.map(|r| r.purged).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match purged {
            Ok(purged) => tracing::debug!(room, seq, purged, "room storage compacted"),
            // The snapshot is stored; the old messages only cost replay time.
            Err(e) => tracing::warn!(room, error = %e, "purging a room's old storage messages failed"),
        }
    }
}
