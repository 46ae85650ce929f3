//! Stores that change what happens to commits and pass everything else to
//! the store they wrap: a commit timed into metrics, held behind a gate in
//! a test. Such a wrapper implements [`Intercepts`] and is a [`Store`].

use crate::{Batch, Committed, Flushed, Store, StoreResult};

/// A store wrapper that decides what becomes of commits (and, if it must,
/// flushes); reads go to [`Intercepts::inner`] unchanged.
pub trait Intercepts: Send + Sync + 'static {
    /// The store reads go to.
    fn inner(&self) -> &dyn Store;
    /// What [`Store::commit`] does.
    fn intercept_commit(&self, batch: Batch, done: Committed);
    /// What [`Store::flush`] does: the inner store's flush unless overridden.
    fn intercept_flush(&self, done: Flushed) {
        self.inner().flush(done)
    }
}

impl<T: Intercepts> Store for T {
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner().get(room, key)
    }

    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.inner().list(room, prefix, limit)
    }

    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>> {
        self.inner().room_alarms(room)
    }

    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>> {
        self.inner().pending_alarms()
    }

    fn commit(&self, batch: Batch, done: Committed) {
        self.intercept_commit(batch, done)
    }

    fn flush(&self, done: Flushed) {
        self.intercept_flush(done)
    }
}
