//! Loading a room on its new owner: replay the room's subject into a
//! replica, then fence out earlier owners with an owner marker.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use super::codec::{self, Record};
use super::replica::Replica;
use super::writer::Failure;
use super::{fail_all, JetStreamStore, Room, Shared};
use crate::error::{nats, ClusterError};
use crate::lease::LeaseWatch;

/// An earlier owner that still writes between our replay and our marker
/// makes us read again; after this many tries the load fails.
const LOAD_ATTEMPTS: usize = 3;
/// The longest a replay may take before the load fails.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages asked for per fetch during a replay.
const FETCH_BATCH: usize = 256;

impl JetStreamStore {
    /// Loads the room of `lease` from JetStream into this node's memory, so
    /// the room can start here: replays the room's messages (its last
    /// snapshot and what came after), then stores an owner marker that
    /// expects the last message read. From then on JetStream refuses every
    /// write of an earlier owner. Loading a room again replaces its replica
    /// (commits still queued for the old one fail).
    pub async fn load_room(&self, lease: impl Into<LeaseWatch>) -> Result<(), ClusterError> {
        let lease = lease.into();
        let shared = &self.shared;
        let room = lease.room().to_owned();
        let subject = shared.cluster.inner.names.store_subject(&room);
        for _ in 0..LOAD_ATTEMPTS {
            if !lease.is_held() {
                return Err(ClusterError::LeaseLost(format!("{room:?} was lost before it was loaded")));
            }
            let (replica, last_seq, messages) = tokio::time::timeout(REPLAY_TIMEOUT, shared.replay(&subject))
                .await
                .map_err(|_| ClusterError::Nats(format!("replaying room {room:?} took more than {REPLAY_TIMEOUT:?}")))??;
            let generation = shared.generations.fetch_add(1, Ordering::Relaxed);
            let marker = Record::Owner { node: shared.cluster.node().to_owned(), token: lease.revision() };
            let message_id = format!("{}.{generation}.0", shared.writer_id);
            let seq = match shared.publish(&subject, Bytes::from(codec::encode(&marker)), last_seq, &message_id, &lease).await {
                Ok(seq) => seq,
                Err(Failure::Fenced(_)) => continue,
                Err(Failure::Refused(why) | Failure::Unknown(why)) => return Err(ClusterError::Nats(format!("loading room {room:?}: {why}"))),
            };
            let earliest = replica.earliest_alarm();
            let loaded = Room {
                replica,
                lease: lease.clone(),
                generation,
                last_seq: seq,
                queue: VecDeque::new(),
                writing: false,
                since_snapshot: messages,
                broken: None,
                indexed_alarm: earliest,
                next_message: 0,
            };
            let replaced = shared.lock().insert(room.clone(), loaded);
            if let Some(old) = replaced {
                fail_all(old.queue, &format!("room {room:?} was loaded again"));
            }
            shared.sync_alarm_index(&room, earliest).await;
            tracing::debug!(room, seq, messages, "room loaded from JetStream");
            return Ok(());
        }
        Err(ClusterError::Fenced(format!("room {room:?} kept changing while it was loaded: is another node still writing to it?")))
    }
}

impl Shared {
    /// Reads every message of `subject`: the state they build, the last
    /// message's stream sequence (0 for none) and how many there were.
    async fn replay(&self, subject: &str) -> Result<(Replica, u64, usize), ClusterError> {
        let stream = self.cluster.inner.names.store_stream();
        let mut replica = Replica::default();
        let (mut last_seq, mut count) = (0, 0);
        let mut failure = None;
        self.scan(&stream, subject, DeliverPolicy::All, |seq, message| {
            match codec::decode(&message.payload) {
                Ok(Record::Writes(writes)) => replica.apply(&writes),
                Ok(Record::Snapshot(writes)) => {
                    replica = Replica::default();
                    replica.apply(&writes);
                }
                Ok(Record::Owner { .. }) => {}
                Err(e) => failure = Some(ClusterError::Nats(format!("{subject} message {seq}: {e}"))),
            }
            last_seq = seq;
            count += 1;
        })
        .await?;
        match failure {
            Some(e) => Err(e),
            None => Ok((replica, last_seq, count)),
        }
    }

    /// Reads the messages of `stream` on `filter` that `policy` selects, in
    /// order, through a short-lived consumer; `each` gets the stream
    /// sequence and the message.
    pub(crate) async fn scan(
        &self,
        stream: &str,
        filter: &str,
        policy: DeliverPolicy,
        mut each: impl FnMut(u64, &async_nats::Message),
    ) -> Result<(), ClusterError> {
        let inner = &self.cluster.inner;
        let config = pull::Config {
            filter_subject: filter.to_owned(),
            deliver_policy: policy,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        };
        inner.counters.round_trip();
        let consumer = inner.js.create_consumer_on_stream(config, stream).await.map_err(|e| nats("reading JetStream", e))?;
        let name = consumer.cached_info().name.clone();
        let mut remaining = consumer.cached_info().num_pending;
        let result = async {
            while remaining > 0 {
                inner.counters.round_trip();
                let want = usize::try_from(remaining).unwrap_or(FETCH_BATCH).min(FETCH_BATCH);
                let mut batch =
                    consumer.fetch().max_messages(want).expires(Duration::from_secs(2)).messages().await.map_err(|e| nats("reading JetStream", e))?;
                let mut got = 0;
                while let Some(message) = batch.next().await {
                    let message = message.map_err(|e| nats("reading JetStream", e))?;
                    let info = message.info().map_err(|e| nats("reading JetStream", e))?;
                    let (seq, pending) = (info.stream_sequence, info.pending);
                    each(seq, &message.message);
                    got += 1;
                    remaining = pending;
                }
                if got == 0 {
                    return Err(ClusterError::Nats(format!("{filter}: JetStream sent nothing while {remaining} messages were pending")));
                }
            }
            Ok(())
        }
        .await;
        let (js, stream) = (inner.js.clone(), stream.to_owned());
        self.runtime.spawn(async move {
            let _ = js.delete_consumer_from_stream(&name, &stream).await;
        });
        result
    }
}
