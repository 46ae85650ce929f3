//! A [`Store`] wrapper that times every commit into the metrics' histogram:
//! from `commit` until the backend reports the batch durable (or failed).
//! Reads and flushes pass through untouched. The wrapper costs one boxed
//! callback and two clock reads per commit, and a commit is one room
//! batch's writes, never one message's.

use std::sync::Arc;
use std::time::Instant;

use switchboard_store::{Batch, Committed, Flushed, Store, StoreResult};

use crate::metrics::StorageMetrics;

pub(crate) struct TimedStore {
    inner: Arc<dyn Store>,
    metrics: StorageMetrics,
}

impl TimedStore {
    pub(crate) fn new(inner: Arc<dyn Store>, metrics: StorageMetrics) -> TimedStore {
        TimedStore { inner, metrics }
    }
}

impl Store for TimedStore {
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get(room, key)
    }

    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.inner.list(room, prefix, limit)
    }

    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>> {
        self.inner.room_alarms(room)
    }

    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>> {
        self.inner.pending_alarms()
    }

    fn commit(&self, batch: Batch, done: Committed) {
        let started = Instant::now();
        let metrics = self.metrics.clone();
        self.inner.commit(
            batch,
            Box::new(move |result| {
                metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                if result.is_err() {
                    metrics.commit_failures.inc();
                }
                done(result)
            }),
        )
    }

    fn flush(&self, done: Flushed) {
        self.inner.flush(done)
    }
}
