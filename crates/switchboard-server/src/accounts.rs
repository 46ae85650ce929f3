//! Accounts and their API keys, in the server's database file (tables of
//! their own next to the rooms', through a connection of their own), in
//! memory, or in cluster mode in a shared table every node reads
//! (`accounts_store`).
//!
//! An API key is 256 random bits, shown once when it is made
//! (`sbk_` and 43 characters of URL-safe base64); only its SHA-256 is
//! stored, so a copy of the database does not hold usable keys. A key's
//! id (the first 12 hex digits of its hash) names it in listings and for
//! revoking.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::RngCore;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use switchboard_cluster::Tables;

use crate::accounts_store::AccountStore;

/// What every API key starts with, so a leaked one is recognisable.
pub const API_KEY_PREFIX: &str = "sbk_";

/// Longest account name: account names are room ids (`clicks/{account}`).
pub const MAX_ACCOUNT_NAME_LEN: usize = 64;

/// The accounts and their keys.
pub struct Accounts {
    store: AccountStore,
}

/// An account as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The account's name.
    pub name: String,
    /// When it was created, Unix milliseconds.
    pub created_ms: u64,
    /// Ids of its keys that are not revoked.
    pub keys: Vec<String>,
}

/// Why an accounts call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    /// A name outside `[A-Za-z0-9_-]{1,64}`.
    BadName(String),
    /// `add` for a name that exists.
    Exists(String),
    /// No account of that name.
    NoAccount(String),
    /// No unrevoked key with that id.
    NoKey(String),
    /// The database failed.
    Database(String),
    /// The cluster's shared table cannot be reached: NATS is down.
    Unavailable(String),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::BadName(name) => write!(f, "account names are 1-{MAX_ACCOUNT_NAME_LEN} characters of A-Z a-z 0-9 _ - (not {name:?})"),
            AccountError::Exists(name) => write!(f, "account {name:?} exists already"),
            AccountError::NoAccount(name) => write!(f, "no account {name:?}"),
            AccountError::NoKey(id) => write!(f, "no active API key with id {id:?}"),
            AccountError::Database(e) => write!(f, "database error: {e}"),
            AccountError::Unavailable(e) => write!(f, "the cluster's account table is unavailable: {e}"),
        }
    }
}

impl std::error::Error for AccountError {}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> AccountError {
        AccountError::Database(e.to_string())
    }
}

/// True for `[A-Za-z0-9_-]{1,64}`.
pub fn is_account_name(name: &str) -> bool {
    (1..=MAX_ACCOUNT_NAME_LEN).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Opens a connection to the database file (WAL, like the room store, so
/// the two writers wait for each other briefly instead of failing).
pub(crate) fn open_database(path: Option<&Path>) -> Result<Connection, rusqlite::Error> {
    let conn = match path {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn
        }
        None => Connection::open_in_memory()?,
    };
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

pub(crate) fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub(crate) fn key_id(hash: &[u8; 32]) -> String {
    hash[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh API key and its hash.
pub(crate) fn new_key() -> (String, [u8; 32]) {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{API_KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let hash = key_hash(&key);
    (key, hash)
}

impl Accounts {
    /// Opens the accounts tables in the database file at `path` (creating
    /// them), or in memory for `None`.
    pub fn open(path: Option<&Path>) -> Result<Accounts, AccountError> {
        Ok(Accounts { store: AccountStore::open_sqlite(path)? })
    }

    /// Opens the cluster's shared account table (docs/cluster.md,
    /// "Accounts and links") and loads what key checks need, which a watch
    /// keeps current.
    pub async fn open_shared(tables: &Tables) -> Result<Accounts, AccountError> {
        Ok(Accounts { store: AccountStore::open_shared(tables).await? })
    }

    /// Connects to the cluster's NATS servers for the shared account table
    /// only (no room leases or storage), as `switchboard accounts` does.
    pub async fn connect_shared(settings: switchboard_cluster::ClusterSettings) -> Result<Accounts, AccountError> {
        let tables = Tables::connect(settings).await.map_err(|e| AccountError::Unavailable(e.to_string()))?;
        Accounts::open_shared(&tables).await
    }

    /// Creates an account and its first API key; returns the key (shown
    /// once: only its hash is kept).
    pub async fn add(&self, name: &str) -> Result<String, AccountError> {
        if !is_account_name(name) {
            return Err(AccountError::BadName(name.to_owned()));
        }
        self.store.add(name).await
    }

    /// A further API key for an existing account.
    pub async fn add_key(&self, name: &str) -> Result<String, AccountError> {
        if !is_account_name(name) {
            return Err(AccountError::NoAccount(name.to_owned()));
        }
        self.store.add_key(name).await
    }

    /// Every account with the ids of its active keys, by name.
    pub async fn list(&self) -> Result<Vec<AccountInfo>, AccountError> {
        self.store.list().await
    }

    /// Revokes the key with this id: requests bearing it are refused from
    /// now on (in cluster mode, on every node once the change reached it).
    /// Returns the account it belonged to.
    pub async fn revoke_key(&self, id: &str) -> Result<String, AccountError> {
        self.store.revoke_key(id).await
    }

    /// The account an API key belongs to; `None` for an unknown or revoked
    /// key. This is how the HTTP API and the token exchange authenticate a
    /// `Bearer` API key. SQLite lookups run on a blocking thread; in
    /// cluster mode the answer comes from memory.
    pub async fn resolve_api_key(&self, key: &str) -> Result<Option<String>, AccountError> {
        if !key.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        self.store.resolve(key_hash(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_resolve_until_revoked_and_only_hashes_are_stored() {
        let accounts = Accounts::open(None).unwrap();
        let key = accounts.add("acme").await.unwrap();
        assert!(key.starts_with(API_KEY_PREFIX) && key.len() == API_KEY_PREFIX.len() + 43);
        assert_eq!(accounts.resolve_api_key(&key).await.unwrap().as_deref(), Some("acme"));
        assert_eq!(accounts.resolve_api_key("sbk_nope").await.unwrap(), None);
        let second = accounts.add_key("acme").await.unwrap();
        let list = accounts.list().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].keys.len(), 2);
        let first_id = key_id(&key_hash(&key));
        assert!(list[0].keys.contains(&first_id));
        assert_eq!(accounts.revoke_key(&first_id).await.unwrap(), "acme");
        assert_eq!(accounts.resolve_api_key(&key).await.unwrap(), None);
        assert_eq!(accounts.resolve_api_key(&second).await.unwrap().as_deref(), Some("acme"));
        assert_eq!(accounts.revoke_key(&first_id).await, Err(AccountError::NoKey(first_id.clone())));
    }

    #[tokio::test]
    async fn names_are_checked_and_unique() {
        let accounts = Accounts::open(None).unwrap();
        assert!(matches!(accounts.add("a b").await, Err(AccountError::BadName(_))));
        assert!(matches!(accounts.add(&"a".repeat(65)).await, Err(AccountError::BadName(_))));
        accounts.add("a").await.unwrap();
        assert_eq!(accounts.add("a").await, Err(AccountError::Exists("a".into())));
        assert_eq!(accounts.add_key("b").await, Err(AccountError::NoAccount("b".into())));
    }
}
