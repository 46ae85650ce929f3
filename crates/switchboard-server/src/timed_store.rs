//! A [`Store`] wrapper that times every commit into the metrics' histogram:
//! from `commit` until the backend reports the batch durable (or failed).
//! Reads and flushes pass through untouched ([`Intercepts`]). The wrapper
//! costs one boxed callback and two clock reads per commit, and a commit is
//! one room batch's writes, never one message's.

use std::sync::Arc;
use std::time::Instant;

use switchboard_store::{Batch, Committed, Intercepts, Store};

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

impl Intercepts for TimedStore {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    fn intercept_commit(&self, batch: Batch, done: Committed) {
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
}
