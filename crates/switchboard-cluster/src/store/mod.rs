//! Room storage in JetStream: [`JetStreamStore`], a [`Store`] whose reads
//! come from an in-memory replica of each room this node owns and whose
//! writes are messages on the room's subject in one stream.
//!
//! - Each room's storage is the sequence of messages on
//!   `<prefix>.store.<encoded room>` in the stream `<prefix>_store`: batches
//!   of writes, snapshots of the whole state, and owner markers
//!   (`codec` has the layout). A batch is one message, so it is atomic.
//! - [`JetStreamStore::load_room`] replays the subject into the replica,
//!   then publishes an owner marker that expects the last sequence it read.
//!   Every write expects the room's last sequence
//!   (`Nats-Expected-Last-Subject-Sequence`), so once the marker is stored,
//!   JetStream refuses any write from an earlier owner: that is the fence.
//! - A commit is reported `Ok` only after JetStream acknowledged the message
//!   (stored, on as many replicas as the stream has); only then does it
//!   show in reads. One message per room is in flight at a time; the
//!   batches that queue behind it go out together as the next message.
//!   Rooms do not wait for each other.
//! - Every `compact_after` messages the room's whole state goes out as a
//!   snapshot and the older messages of its subject are purged.
//! - Each room's earliest alarm is also kept in the `<prefix>_alarms`
//!   bucket, so any node can find rooms with alarms due
//!   ([`JetStreamStore::due_alarms`]) and claim them: an alarm fires on the
//!   owner only, because only the owner runs the room.

mod alarm_index;
mod codec;
mod load;
mod replica;
mod stored;
mod tickets;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_store::{Batch, Committed, Flushed, Store, StoreError, StoreResult, Write};
use tokio::runtime::Handle;

use crate::cluster::Cluster;
use crate::lease::LeaseWatch;
use replica::Replica;
use tickets::Tickets;

/// Messages on a room's subject after which its state is written as one
/// snapshot and the messages before it are purged: replaying a room on
/// failover then reads at most this many messages plus one snapshot.
pub const DEFAULT_COMPACT_AFTER: usize = 64;

/// Tuning of a [`JetStreamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// See [`DEFAULT_COMPACT_AFTER`]; at least 2.
    pub compact_after: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { compact_after: DEFAULT_COMPACT_AFTER }
    }
}

/// Room storage in JetStream, for the rooms this node owns. Cheap to clone.
#[derive(Clone)]
pub struct JetStreamStore {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) cluster: Cluster,
    pub(crate) runtime: Handle,
    pub(crate) rooms: Mutex<HashMap<String, Room>>,
    /// Apart from the rooms, so a queued commit's reply (which holds the
    /// tickets) does not keep the store alive.
    pub(crate) tickets: Arc<Tickets>,
    pub(crate) generations: AtomicU64,
    pub(crate) options: StoreOptions,
    /// Unique to this store: the first part of its message ids, which
    /// JetStream deduplicates across every writer of the stream.
    pub(crate) writer_id: String,
}

/// A loaded room.
pub(crate) struct Room {
    pub(crate) replica: Replica,
    pub(crate) lease: LeaseWatch,
    /// Tells this load of the room from a later one.
    pub(crate) generation: u64,
    /// The stream sequence of the room's last message, as far as this node
    /// knows: the next write expects it.
    pub(crate) last_seq: u64,
    pub(crate) queue: VecDeque<Pending>,
    /// A writer task is running for this room.
    pub(crate) writing: bool,
    pub(crate) since_snapshot: usize,
    /// Set when the room can take no more writes until it is loaded again
    /// (fenced off, or a write whose outcome is unknown).
    pub(crate) broken: Option<String>,
    /// The earliest alarm as last written to the alarm index.
    pub(crate) indexed_alarm: Option<u64>,
    /// Numbers this load's messages (their JetStream message ids).
    pub(crate) next_message: u64,
}

/// A commit waiting for its room's writer.
pub(crate) struct Pending {
    pub(crate) writes: Vec<Write>,
    pub(crate) done: Committed,
}

impl JetStreamStore {
    /// A store on `cluster`'s stream with the default options. Call it
    /// inside the tokio runtime: its writers run there.
    pub fn new(cluster: &Cluster) -> JetStreamStore {
        Self::with_options(cluster, StoreOptions::default())
    }

    /// A store with the given options (see [`JetStreamStore::new`]).
    pub fn with_options(cluster: &Cluster, options: StoreOptions) -> JetStreamStore {
        let options = StoreOptions { compact_after: options.compact_after.max(2) };
        let shared = Shared {
            cluster: cluster.clone(),
            runtime: Handle::current(),
            rooms: Mutex::default(),
            tickets: Arc::default(),
            generations: AtomicU64::new(1),
            options,
            writer_id: cluster.client().new_inbox().rsplit('.').next().unwrap_or_default().to_owned(),
        };
        JetStreamStore { shared: Arc::new(shared) }
    }

    /// Drops the room's replica (the room stopped, or its lease was lost).
    /// Commits still queued for it fail; one already sent finishes.
    pub fn forget_room(&self, room: &str) {
        let removed = self.shared.lock().remove(room);
        if let Some(removed) = removed {
            fail_all(removed.queue, &format!("room {room:?} was stopped on this node"));
        }
    }

    /// Whether the room is loaded on this node.
    pub fn is_loaded(&self, room: &str) -> bool {
        self.shared.lock().contains_key(room)
    }

    /// Why the room takes no more writes until it is loaded again (JetStream
    /// refused a write as stale, a write's outcome is unknown, or the lease
    /// was lost); `None` while it is writable or not loaded.
    pub fn unwritable(&self, room: &str) -> Option<String> {
        self.shared.lock().get(room).and_then(|r| r.broken.clone())
    }

    /// The rooms loaded on this node.
    pub fn loaded_rooms(&self) -> Vec<String> {
        self.shared.lock().keys().cloned().collect()
    }

    fn read<T>(&self, room: &str, read: impl FnOnce(&Replica) -> T) -> StoreResult<T> {
        match self.shared.lock().get(room) {
            Some(loaded) => Ok(read(&loaded.replica)),
            None => Err(not_loaded(room)),
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_loaded(room: &str) -> StoreError {
    StoreError(format!("room {room:?} is not loaded on this node (claim it and load it first)"))
}

/// A commit's callback and its flush ticket. Dropped without an answer
/// (its writer task ended with the runtime, or the store was dropped with
/// it queued), it reports a failure, so every commit is answered once and
/// no flush waits for ever.
struct Reply {
    done: Option<Committed>,
    ticket: u64,
    tickets: Arc<Tickets>,
}

impl Reply {
    fn send(mut self, result: StoreResult<()>) {
        if let Some(done) = self.done.take() {
            done(result);
        }
        self.tickets.close(self.ticket);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(Err(StoreError("the store stopped before JetStream acknowledged the batch".into())));
            self.tickets.close(self.ticket);
        }
    }
}

pub(crate) fn fail_all(pending: impl IntoIterator<Item = Pending>, why: &str) {
    for p in pending {
        (p.done)(Err(StoreError(why.to_owned())));
    }
}

impl Store for JetStreamStore {
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(room, |r| r.get(key))
    }

    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.read(room, |r| r.list(prefix, limit))
    }

    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>> {
        self.read(room, Replica::alarms)
    }

    /// The alarms of the rooms loaded on this node; rooms elsewhere are
    /// found through [`JetStreamStore::due_alarms`].
    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>> {
        let rooms = self.shared.lock();
        let mut all: Vec<_> = rooms.iter().flat_map(|(room, r)| r.replica.alarms().into_iter().map(|(n, at)| (room.clone(), n, at))).collect();
        all.sort_by_key(|(_, _, at)| *at);
        Ok(all)
    }

    fn commit(&self, batch: Batch, done: Committed) {
        let reply = Reply { done: Some(done), ticket: self.shared.tickets.open(), tickets: self.shared.tickets.clone() };
        let done: Committed = Box::new(move |result| reply.send(result));
        let mut rooms = self.shared.lock();
        let Some(room) = rooms.get_mut(&batch.room) else {
            drop(rooms);
            return done(Err(not_loaded(&batch.room)));
        };
        room.queue.push_back(Pending { writes: batch.writes, done });
        if !room.writing {
            room.writing = true;
            let generation = room.generation;
            drop(rooms);
            self.shared.spawn_writer(batch.room, generation);
        }
    }

    fn flush(&self, done: Flushed) {
        self.shared.tickets.flush(done);
    }
}
