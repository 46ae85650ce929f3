//! Durable storage for rooms: one key-value space and one set of named
//! alarms per room, behind the [`Store`] trait.
//!
//! Keys are UTF-8 strings, values opaque bytes; this crate knows nothing of
//! WebSockets or rooms beyond the room's namespace string. Calls are
//! synchronous and short: a write is durable when the call that made it
//! returns. Backends: [`SqliteStore`] (the embedded default, one file in WAL
//! mode) and [`MemoryStore`] (tests, and rooms that need no durability).

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Sets `key` to the value.
    Put(String, Vec<u8>),
    /// Removes `key` (absent keys are fine).
    Delete(String),
}

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
    /// The value of `key`.
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets `key`.
    fn put(&self, room: &str, key: &str, value: &[u8]) -> StoreResult<()>;
    /// Removes `key`; true if it existed.
    fn delete(&self, room: &str, key: &str) -> StoreResult<bool>;
    /// Keys starting with `prefix`, in ascending byte order, at most `limit`.
    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Applies every write or none.
    fn write_batch(&self, room: &str, writes: &[Write]) -> StoreResult<()>;
    /// Sets (or moves) the alarm `name` to fire at `at_ms` (Unix milliseconds).
    fn set_alarm(&self, room: &str, name: &str, at_ms: u64) -> StoreResult<()>;
    /// Cancels an alarm; true if it existed.
    fn delete_alarm(&self, room: &str, name: &str) -> StoreResult<bool>;
    /// The pending alarms of one room as (name, at_ms), earliest first.
    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>>;
    /// Every pending alarm as (room, name, at_ms), earliest first. Read at
    /// startup so alarms fire after a restart.
    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>>;
}

/// The exclusive upper bound of the keys that start with `prefix`, or `None`
/// when every key above `prefix` matches (a prefix of only 0xff bytes).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod contract;
