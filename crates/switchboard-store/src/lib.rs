//! Durable storage for rooms: one key-value space and one set of named
//! alarms per room, behind the [`Store`] trait.
//!
//! Keys are UTF-8 strings, values opaque bytes; this crate knows nothing of
//! WebSockets or rooms beyond the room's namespace string.
//!
//! The trait is shaped for a writer that is not the caller: reads are
//! synchronous and short, but writes arrive as a [`Batch`] (one room's
//! writes, applied all or none) handed to [`Store::commit`], which returns at
//! once and reports through a callback when the batch is durable. A backend
//! commits the batches of many rooms together where it can (group commit),
//! on its own thread or connection, so no room and no async worker thread
//! ever waits on a disk or a network. Backends: [`SqliteStore`] (the
//! embedded default, one file in WAL mode, one writer thread) and
//! [`MemoryStore`] (tests, and rooms that need no durability).
//!
//! The durability contract: when `done` is called with `Ok(())`, every
//! write of the batch survives `kill -9` and power loss (for SQLite: the
//! transaction that holds it was committed with `synchronous = FULL`).
//! Batches of one room are applied in the order they were submitted.

mod intercept;
mod memory;
mod sqlite;

use std::sync::mpsc;

pub use intercept::Intercepts;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Sets `key` to the value.
    Put(String, Vec<u8>),
    /// Removes `key` (absent keys are fine).
    Delete(String),
    /// Sets (or moves) the alarm `name` to fire at Unix milliseconds `at_ms`.
    SetAlarm(String, u64),
    /// Cancels the alarm `name` (absent alarms are fine).
    DeleteAlarm(String),
}

/// One room's writes, applied all or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The room's namespace, e.g. `chat/lobby`.
    pub room: String,
    /// The writes, applied in order.
    pub writes: Vec<Write>,
}

/// Called once with the outcome of a [`Store::commit`], on whatever thread
/// finished it (possibly the caller's, for a backend with nothing to wait
/// for). It must not block: hand the outcome on and return.
pub type Committed = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Called by [`Store::flush`] once the batches before it are done.
pub type Flushed = Box<dyn FnOnce() + Send>;

/// A storage failure (disk full, corrupt file, ...). Rooms report it; the
/// server keeps running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Per-room durable key-value storage and alarms. `room` is the room's
/// namespace (e.g. `chat/lobby`); rooms never see each other's keys.
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, as committed.
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Committed keys starting with `prefix`, in ascending byte order, at
    /// most `limit`.
    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// The pending alarms of one room as (name, at_ms), earliest first.
    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>>;
    /// Every pending alarm as (room, name, at_ms), earliest first. Read at
    /// startup so alarms fire after a restart.
    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>>;
    /// Applies the batch's writes all or none, after the batches submitted
    /// before it, and calls `done` once they are durable or have failed.
    /// Returns at once.
    fn commit(&self, batch: Batch, done: Committed);
    /// Calls `done` once every batch submitted before this call is done
    /// (committed or failed); used at shutdown.
    fn flush(&self, done: Flushed);
}

/// Commits `batch` and waits for the outcome on this thread. For tests,
/// tools and startup code: never call it on an async worker thread.
pub fn commit_blocking(store: &dyn Store, batch: Batch) -> StoreResult<()> {
    let (tx, rx) = mpsc::sync_channel(1);
    store.commit(
        batch,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    rx.recv().unwrap_or_else(|_| Err(StoreError("the store stopped before committing".into())))
}

/// Waits on this thread until every batch submitted so far is done.
pub fn flush_blocking(store: &dyn Store) {
    let (tx, rx) = mpsc::sync_channel(1);
    store.flush(Box::new(move || {
        let _ = tx.send(());
    }));
    let _ = rx.recv();
}

/// The exclusive upper bound of the keys that start with `prefix`, or `None`
/// when every key above `prefix` matches (a prefix of only 0xff bytes).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(any(test, feature = "contract"))]
pub mod contract;
