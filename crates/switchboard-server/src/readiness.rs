//! `/readyz`: whether a load balancer should send this server new
//! connections. Ready means all three of: the listener accepts, the
//! storage takes a write, and no drain has begun. `/healthz` (alive) is
//! separate and stays 200 through a drain: a draining server is healthy,
//! only unwilling to take new work.
//!
//! The storage check commits one small batch (one key, overwritten each
//! time, in a namespace no room can have: room namespaces are `kind/id`)
//! and waits for it to be durable. Probes arrive every few seconds from
//! each load balancer, and anyone can request `/readyz`, so a result is
//! reused for [`PROBE_REUSE`] and only one check runs at a time.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use switchboard_store::{Batch, Store, Write};
use tokio::sync::{oneshot, Mutex};

/// How long a storage check's result answers later probes.
const PROBE_REUSE: Duration = Duration::from_secs(1);

/// How long a storage check may take before the store counts as not
/// writable. A healthy disk commits in milliseconds; load balancers time
/// their probes out after a second or a few.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// The storage namespace of the check's key (not `kind/id`, so no room's).
const PROBE_NAMESPACE: &str = "_readiness";

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const NOT_ACCEPTING: u8 = 2;

/// The server's readiness, shared by the HTTP routes and the drain.
pub(crate) struct Readiness {
    state: AtomicU8,
    store: Arc<dyn Store>,
    last_probe: Mutex<Option<(Instant, Result<(), String>)>>,
    /// In cluster mode, the node: not ready while NATS is unreachable.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Readiness {
    /// A serving server's readiness (the listener is bound and accepting).
    pub(crate) fn new(store: Arc<dyn Store>) -> Readiness {
        Readiness { state: AtomicU8::new(SERVING), store, last_probe: Mutex::new(None), cluster: std::sync::OnceLock::new() }
    }

    /// A drain began: not ready from now on.
    /// Makes readiness depend on the node's NATS connection too.
    pub(crate) fn watch_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    pub(crate) fn begin_drain(&self) {
        let _ = self.state.compare_exchange(SERVING, DRAINING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The listener closed.
    pub(crate) fn stop_accepting(&self) {
        self.state.store(NOT_ACCEPTING, Ordering::Release);
    }

    /// `Ok` when ready, or why not.
    pub(crate) async fn check(&self) -> Result<(), String> {
        match self.state.load(Ordering::Acquire) {
            SERVING => {}
            DRAINING => return Err("draining: shutting down, finishing open connections".into()),
            _ => return Err("not accepting connections: shutting down".into()),
        }
        // In cluster mode the rooms' storage is JetStream, reached through
        // that connection (and written only for rooms this node owns).
        if let Some(cluster) = self.cluster.get() {
            return if cluster.is_connected() { Ok(()) } else { Err("not connected to NATS: rooms and their storage are out of reach".into()) };
        }
        self.storage_writable().await.map_err(|e| format!("storage not writable: {e}"))
    }

    async fn storage_writable(&self) -> Result<(), String> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, result)) = last.as_ref() {
            if at.elapsed() < PROBE_REUSE {
                return result.clone();
            }
        }
        let result = self.probe().await;
        *last = Some((Instant::now(), result.clone()));
        result
    }

    async fn probe(&self) -> Result<(), String> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let batch = Batch { room: PROBE_NAMESPACE.into(), writes: vec![Write::Put("probe".into(), now_ms.to_be_bytes().to_vec())] };
        let (tx, rx) = oneshot::channel();
        self.store.commit(
            batch,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        match tokio::time::timeout(PROBE_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(_)) => Err("the store stopped".into()),
            Err(_) => Err(format!("a write took longer than {} ms", PROBE_TIMEOUT.as_millis())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::MemoryStore;

    #[tokio::test]
    async fn ready_until_a_drain_begins() {
        let readiness = Readiness::new(Arc::new(MemoryStore::new()));
        assert_eq!(readiness.check().await, Ok(()));
        readiness.begin_drain();
        assert!(readiness.check().await.unwrap_err().starts_with("draining"));
        readiness.stop_accepting();
        assert!(readiness.check().await.unwrap_err().starts_with("not accepting"));
    }
}
