//! Accounts and API-key hashes in cluster mode: the shared table
//! `accounts` (bucket `<prefix>_accounts`) with two kinds of keys,
//! `account.<name>` (`{"created_ms"}`) and `key.<SHA-256 of the API key,
//! 64 hex digits>` (`{"id", "account", "created_ms", "revoked_ms"}`). An
//! account is created with a create of its key, so a name is taken once in
//! the whole cluster; a key is revoked by an update that expects the
//! revision read. Every node follows the table into memory, so checking an
//! API key never waits on NATS.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_cluster::{Change, ClusterError, Follower, Table, Tables};

use crate::accounts::{key_id, new_key, now_ms, AccountError, AccountInfo};

/// The shared table's name.
const TABLE: &str = "accounts";
const ACCOUNT: &str = "account.";
const KEY: &str = "key.";
/// How long a writer waits for its own write to reach its node's copy.
const OWN_WRITE_WAIT: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct AccountRecord {
    created_ms: u64,
}

#[derive(Serialize, Deserialize, Clone)]
struct KeyRecord {
    id: String,
    account: String,
    created_ms: u64,
    #[serde(default)]
    revoked_ms: Option<u64>,
}

/// The node's copy of the table.
#[derive(Default)]
struct Copy {
    accounts: BTreeMap<String, u64>,
    /// By the hash's hex digits.
    keys: HashMap<String, KeyRecord>,
}

pub(crate) struct SharedAccounts {
    table: Table,
    copy: Arc<RwLock<Copy>>,
    follower: Follower,
}

fn unavailable(e: ClusterError) -> AccountError {
    AccountError::Unavailable(e.to_string())
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl SharedAccounts {
    pub(crate) async fn open(tables: &Tables) -> Result<SharedAccounts, AccountError> {
        let table = tables.open(TABLE).await.map_err(unavailable)?;
        let copy = Arc::new(RwLock::new(Copy::default()));
        let follower = table.follow(apply_to(copy.clone())).await.map_err(unavailable)?;
        Ok(SharedAccounts { table, copy, follower })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Copy> {
        self.copy.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) async fn add(&self, name: &str) -> Result<String, AccountError> {
        let record = serde_json::to_vec(&AccountRecord { created_ms: now_ms() }).expect("records serialize");
        if self.table.create(&format!("{ACCOUNT}{name}"), record.into()).await.map_err(unavailable)?.is_none() {
            return Err(AccountError::Exists(name.to_owned()));
        }
        self.insert_key(name).await
    }

    pub(crate) async fn add_key(&self, name: &str) -> Result<String, AccountError> {
        if self.table.entry(&format!("{ACCOUNT}{name}")).await.map_err(unavailable)?.is_none() {
            return Err(AccountError::NoAccount(name.to_owned()));
        }
        self.insert_key(name).await
    }

    async fn insert_key(&self, account: &str) -> Result<String, AccountError> {
        let (key, hash) = new_key();
        let record = KeyRecord { id: key_id(&hash), account: account.to_owned(), created_ms: now_ms(), revoked_ms: None };
        let value = serde_json::to_vec(&record).expect("records serialize");
        let revision = self.table.create(&format!("{KEY}{}", hex(&hash)), value.into()).await.map_err(unavailable)?;
        let revision = revision.ok_or_else(|| AccountError::Database("a new key's hash is taken".into()))?;
        self.follower.wait_until(OWN_WRITE_WAIT, |applied| applied >= revision).await;
        Ok(key)
    }

    pub(crate) fn list(&self) -> Vec<AccountInfo> {
        let copy = self.read();
        let mut keys: BTreeMap<&str, Vec<&KeyRecord>> = BTreeMap::new();
        for record in copy.keys.values().filter(|k| k.revoked_ms.is_none()) {
            keys.entry(record.account.as_str()).or_default().push(record);
        }
        copy.accounts
            .iter()
            .map(|(name, created)| {
                let mut records = keys.remove(name.as_str()).unwrap_or_default();
                records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
                AccountInfo { name: name.clone(), created_ms: *created, keys: records.iter().map(|r| r.id.clone()).collect() }
            })
            .collect()
    }

    pub(crate) async fn revoke_key(&self, id: &str) -> Result<String, AccountError> {
        let hash = self.read().keys.iter().find(|(_, k)| k.id == id && k.revoked_ms.is_none()).map(|(hash, _)| hash.clone());
        let Some(hash) = hash else { return Err(AccountError::NoKey(id.to_owned())) };
        let name = format!("{KEY}{hash}");
        let no_key = || AccountError::NoKey(id.to_owned());
        let (value, revision) = self.table.entry(&name).await.map_err(unavailable)?.ok_or_else(no_key)?;
        let mut record: KeyRecord = serde_json::from_slice(&value).map_err(|_| no_key())?;
        if record.revoked_ms.is_some() {
            return Err(no_key());
        }
        record.revoked_ms = Some(now_ms());
        let value = serde_json::to_vec(&record).expect("records serialize");
        // Expecting the revision read: of two revokes, one reports it.
        let revision = self.table.update(&name, value.into(), revision).await.map_err(unavailable)?.ok_or_else(no_key)?;
        self.follower.wait_until(OWN_WRITE_WAIT, |applied| applied >= revision).await;
        Ok(record.account)
    }

    pub(crate) fn resolve(&self, hash: &[u8; 32]) -> Option<String> {
        self.read().keys.get(&hex(hash)).filter(|k| k.revoked_ms.is_none()).map(|k| k.account.clone())
    }
}

/// Applies the table's changes to the node's copy.
fn apply_to(copy: Arc<RwLock<Copy>>) -> impl FnMut(Change) + Send + 'static {
    move |change| {
        let mut copy = copy.write().unwrap_or_else(PoisonError::into_inner);
        match change {
            Change::Put { key, value, .. } => {
                if let Some(name) = key.strip_prefix(ACCOUNT) {
                    match serde_json::from_slice::<AccountRecord>(&value) {
                        Ok(record) => drop(copy.accounts.insert(name.to_owned(), record.created_ms)),
                        Err(e) => tracing::warn!(key, error = %e, "an account in the shared table is not readable; skipped"),
                    }
                } else if let Some(hash) = key.strip_prefix(KEY) {
                    match serde_json::from_slice::<KeyRecord>(&value) {
                        Ok(record) => drop(copy.keys.insert(hash.to_owned(), record)),
                        Err(e) => tracing::warn!(key, error = %e, "an API key in the shared table is not readable; skipped"),
                    }
                }
            }
            Change::Delete { key, .. } => {
                if let Some(name) = key.strip_prefix(ACCOUNT) {
                    copy.accounts.remove(name);
                } else if let Some(hash) = key.strip_prefix(KEY) {
                    copy.keys.remove(hash);
                }
            }
        }
    }
}
