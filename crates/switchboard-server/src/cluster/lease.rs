//! Room leases in a JetStream key-value bucket: one key per room whose
//! value is the owner's node name. Creating the key claims the room
//! (create-if-absent is atomic, so of two nodes racing one wins), updating
//! it with the revision last written renews it, and the bucket's `max_age`
//! is the lease's TTL: a key nobody renews disappears, and the room is free
//! to claim. nats-server 2.9 has no per-key TTL and no expiry notice, so a
//! node that needs the room polls the key (docs/cluster.md).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This node holds the lease at this revision.
    Owned(u64),
    /// Another node does.
    Held(String),
}

/// The bucket of leases, as one node sees it.
pub(crate) struct Leases {
    kv: kv::Store,
    node: String,
}

/// Attempts at a claim when the key vanishes or appears between our reads.
const CLAIM_ATTEMPTS: usize = 4;

impl Leases {
    /// Opens the bucket, creating it with `ttl` as its `max_age` if it does
    /// not exist yet (a bucket made by another node keeps that node's TTL).
    pub(crate) async fn open(js: &jetstream::Context, bucket: &str, node: &str, ttl: Duration) -> Result<Leases, String> {
        let kv = match js.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.to_owned(),
                    history: 1,
                    max_age: ttl,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .or_else(|e| Err(format!("cannot create the lease bucket {bucket}: {e}")))?,
        };
        Ok(Leases { kv, node: node.to_owned() })
    }

    /// Claims the room `key`: owned when nobody held it (or this node
    /// already did, in a previous life of the process), else who holds it.
    pub(crate) async fn claim(&self, key: &str) -> Result<Claim, String> {
        for _ in 0..CLAIM_ATTEMPTS {
            match self.kv.create(key, Bytes::from(self.node.clone())).await {
                Ok(revision) => return Ok(Claim::Owned(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot claim a room: {e}")),
            }
            match self.holder(key).await? {
                Some((node, revision)) if node == self.node => match self.kv.update(key, Bytes::from(self.node.clone()), revision).await {
                    Ok(revision) => return Ok(Claim::Owned(revision)),
                    Err(_) => continue,
                },
                Some((node, _)) => return Ok(Claim::Held(node)),
                // Expired or released since the create: try again.
                None => continue,
            }
        }
        Err("the room's lease changed hands too often to claim it".into())
    }

    /// Renews a held lease: its new revision, or an error when the lease
    /// was lost (it expired and another node, or nobody, holds it now).
    pub(crate) async fn renew(&self, key: &str, revision: u64) -> Result<u64, String> {
        self.kv.update(key, Bytes::from(self.node.clone()), revision).await.map_err(|e| e.to_string())
    }

    /// Gives a held lease up, so the next node that needs the room claims
    /// it at once instead of after the TTL.
    pub(crate) async fn release(&self, key: &str, revision: u64) {
        if let Err(e) = self.kv.purge_expect_revision(key, Some(revision)).await {
            tracing::debug!(key, error = %e, "lease release refused (it moved on)");
        }
    }

    /// Who holds the lease now, at which revision; `None` when nobody does.
    pub(crate) async fn holder(&self, key: &str) -> Result<Option<(String, u64)>, String> {
        let entry = self.kv.entry(key).await.map_err(|e| format!("cannot read a room's lease: {e}"))?;
        Ok(entry.filter(|e| e.operation == kv::Operation::Put).map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision)))
    }
}

/// The key of a room's lease: its name in hex, which any name fits into
/// the key alphabet.
pub(crate) fn key(room: &str) -> String {
    let mut key = String::with_capacity(2 + 2 * room.len());
    key.push_str("r.");
    for b in room.bytes() {
        key.push_str(&format!("{b:02x}"));
    }
    key
}
