//! Shared tables: small key-value buckets (`<prefix>_<table>`) that every
//! node mirrors in memory, for data all nodes must see alike (accounts,
//! API-key hashes, short links).
//!
//! A [`Table`] writes with compare-and-set only: [`Table::create`] stores a
//! key only if it has no live value (atomic on the server, so of racing
//! creators exactly one wins), [`Table::update`] and [`Table::delete`] only
//! if the key is still at the revision the caller read. Readers do not ask
//! NATS: [`Table::follow`] replays the bucket (the last value of every key)
//! into the caller's callback, returns once that replay reached the
//! bucket's state at the call, and keeps applying changes as they come, so
//! the caller's in-memory copy is current within the watch's delivery time.
//! While NATS is unreachable the copy stays as it was; the watch resumes
//! from the last applied revision when NATS is back.
//!
//! Not a database: no transactions across keys and no queries; the bucket
//! keeps one value per key (history 1), deletes leave a marker.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::{connect_client, open_bucket, Cluster, REQUEST_TIMEOUT};
use crate::error::{nats, ClusterError};
use crate::settings::ClusterSettings;
use crate::stats::Counters;

/// How long the first replay of a table may take before `follow` fails.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause before a broken watch is started again (NATS down, consumer lost).
const REWATCH_PAUSE: Duration = Duration::from_millis(500);

/// One shared table (a key-value bucket of the cluster).
#[derive(Clone)]
pub struct Table {
    store: kv::Store,
    bucket: String,
    js: async_nats::jetstream::Context,
}

/// A change to a table, as [`Table::follow`] delivers it, in bucket order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key's value is now `value`, at `revision`.
    Put {
        /// The key.
        key: String,
        /// Its value.
        value: Bytes,
        /// The bucket revision of this value.
        revision: u64,
    },
    /// The key was deleted (at `revision`).
    Delete {
        /// The key.
        key: String,
        /// The bucket revision of the delete.
        revision: u64,
    },
}

impl Change {
    fn revision(&self) -> u64 {
        match self {
            Change::Put { revision, .. } | Change::Delete { revision, .. } => *revision,
        }
    }
}

/// The task that keeps a follower's copy current; dropping it stops it.
pub struct Follower {
    applied: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// The latest revision applied to the copy.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits (at most `limit`) until `done` holds, checking it now and after
    /// each applied change: how a writer waits for its own write to reach
    /// its copy. False when the time ran out.
    pub async fn wait_until(&self, limit: Duration, mut done: impl FnMut(u64) -> bool) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(limit, applied.wait_for(|revision| done(*revision))).await.is_ok_and(|r| r.is_ok())
    }
}

/// Where a process opens shared tables: a node's connection
/// ([`Cluster::tables`]) or one of a command-line tool's own
/// ([`Tables::connect`], which touches nothing else of the cluster).
#[derive(Clone)]
pub struct Tables {
    js: async_nats::jetstream::Context,
    prefix: String,
    replicas: usize,
}

impl Cluster {
    /// The shared tables, through this node's connection.
    pub fn tables(&self) -> Tables {
        let inner = &self.inner;
        Tables { js: inner.js.clone(), prefix: inner.settings.prefix.clone(), replicas: inner.settings.replicas }
    }
}

impl Tables {
    /// Connects to NATS for the shared tables only (no leases, no room
    /// storage), as a command-line tool does.
    pub async fn connect(settings: ClusterSettings) -> Result<Tables, ClusterError> {
        settings.validate()?;
        let client = connect_client(&settings, Arc::new(Counters::default())).await?;
        let js = async_nats::jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).ack_timeout(REQUEST_TIMEOUT).build(client);
        Ok(Tables { js, prefix: settings.prefix, replicas: settings.replicas })
    }

    /// Opens the shared table `name` (bucket `<prefix>_<name>`), creating
    /// it if nobody did yet; `name` is letters, digits, `-` and `_`.
    pub async fn open(&self, name: &str) -> Result<Table, ClusterError> {
        let bucket = format!("{}_{name}", self.prefix);
        let config = kv::Config {
            bucket: bucket.clone(),
            description: format!("switchboard shared table {name}"),
            history: 1,
            storage: async_nats::jetstream::stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        };
        let store = open_bucket(&self.js, config).await?;
        Ok(Table { store, bucket, js: self.js.clone() })
    }
}

impl Table {
    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes and reads fail at once while NATS is unreachable, rather than
    /// after the request timeout: the caller answers "try again" now.
    fn connected(&self) -> Result<(), ClusterError> {
        match self.js.client().connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(ClusterError::Nats(format!("{}: not connected to NATS", self.bucket))),
        }
    }

    /// Stores `value` under `key` if the key has no live value; its revision,
    /// or `None` when the key is taken.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<Option<u64>, ClusterError> {
        self.connected()?;
        match self.store.create(key, value).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(nats(&format!("creating {key} in {}", self.bucket), e)),
        }
    }

    /// The key's live value and its revision, read from the server.
    pub async fn entry(&self, key: &str) -> Result<Option<(Bytes, u64)>, ClusterError> {
        self.connected()?;
        let entry = self.store.entry(key).await.map_err(|e| nats(&format!("reading {key} from {}", self.bucket), e))?;
        Ok(entry.filter(|e| e.operation == Operation::Put).map(|e| (e.value, e.revision)))
    }

    /// Replaces the key's value if it is still at `revision`; the new
    /// revision, or `None` when the key changed in between.
    pub async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<Option<u64>, ClusterError> {
        self.connected()?;
        match self.store.update(key, value, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(nats(&format!("updating {key} in {}", self.bucket), e)),
        }
    }

    /// Deletes the key if it is still at `revision`; false when it changed
    /// in between.
    pub async fn delete(&self, key: &str, revision: u64) -> Result<bool, ClusterError> {
        self.connected()?;
        match self.store.delete_expect_revision(key, Some(revision)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(nats(&format!("deleting {key} from {}", self.bucket), e)),
        }
    }

    /// Replays the table into `apply` (the last change of every key, in
    /// revision order) and returns once everything stored before this call
    /// was applied; a task then applies every later change until the
    /// [`Follower`] is dropped.
    pub async fn follow(&self, apply: impl FnMut(Change) + Send + 'static) -> Result<Follower, ClusterError> {
        let stream = format!("KV_{}", self.bucket);
        let last = self.js.get_stream(&stream).await.map_err(|e| nats(&format!("reading {stream}"), e))?.cached_info().state.last_sequence;
        let mut watch = self.store.watch_with_history(">").await.map_err(|e| nats(&format!("watching {}", self.bucket), e))?;
        let (applied_tx, applied) = watch::channel(0u64);
        let mut apply = apply;
        let replay = async {
            while *applied_tx.borrow() < last {
                match watch.next().await {
                    Some(Ok(entry)) => deliver(&mut apply, &applied_tx, entry),
                    Some(Err(e)) => return Err(nats(&format!("watching {}", self.bucket), e)),
                    None => return Err(ClusterError::Nats(format!("the watch of {} ended", self.bucket))),
                }
            }
            Ok(())
        };
        tokio::time::timeout(REPLAY_TIMEOUT, replay)
            .await
            .map_err(|_| ClusterError::Nats(format!("replaying {} timed out", self.bucket)))??;
        let store = self.store.clone();
        let task = tokio::spawn(keep_following(store, watch, apply, applied_tx));
        Ok(Follower { applied, task })
    }
}

fn deliver(apply: &mut impl FnMut(Change), applied: &watch::Sender<u64>, entry: kv::Entry) {
    let change = match entry.operation {
        Operation::Put => Change::Put { key: entry.key, value: entry.value, revision: entry.revision },
        Operation::Delete | Operation::Purge => Change::Delete { key: entry.key, revision: entry.revision },
    };
    let revision = change.revision();
    // A watch started again may repeat what was applied.
    if revision > *applied.borrow() {
        apply(change);
        applied.send_replace(revision);
    }
}

async fn keep_following(store: kv::Store, mut watch: kv::Watch, mut apply: impl FnMut(Change), applied: watch::Sender<u64>) {
    loop {
        loop {
            match watch.next().await {
                Some(Ok(entry)) => deliver(&mut apply, &applied, entry),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a shared table's watch failed; watching again");
                    break;
                }
                None => break,
            }
        }
        // From the revision after the last applied one: the changes in
        // between come now, none is applied twice.
        loop {
            tokio::time::sleep(REWATCH_PAUSE).await;
            let from = *applied.borrow() + 1;
            match store.watch_all_from_revision(from).await {
                Ok(again) => {
                    watch = again;
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "watching a shared table again failed; retrying"),
            }
        }
    }
}
