//! Accounts and their API keys, in the server's database file (tables of
//! their own next to the rooms', through a connection of their own) or in
//! memory.
//!
//! An API key is 256 random bits, shown once when it is made
//! (`sbk_` and 43 characters of URL-safe base64); only its SHA-256 is
//! stored, so a copy of the database does not hold usable keys. A key's
//! id (the first 12 hex digits of its hash) names it in listings and for
//! revoking. Calls are short blocking SQLite statements: async callers run
//! them on a blocking thread.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    name       TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash       BLOB PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    account    TEXT NOT NULL REFERENCES accounts(name),
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
";

/// What every API key starts with, so a leaked one is recognisable.
pub const API_KEY_PREFIX: &str = "sbk_";

/// Longest account name: account names are room ids (`clicks/{account}`).
pub const MAX_ACCOUNT_NAME_LEN: usize = 64;

/// The accounts table.
pub struct Accounts {
    conn: Mutex<Connection>,
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
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::BadName(name) => write!(f, "account names are 1-{MAX_ACCOUNT_NAME_LEN} characters of A-Z a-z 0-9 _ - (not {name:?})"),
            AccountError::Exists(name) => write!(f, "account {name:?} exists already"),
            AccountError::NoAccount(name) => write!(f, "no account {name:?}"),
            AccountError::NoKey(id) => write!(f, "no active API key with id {id:?}"),
            AccountError::Database(e) => write!(f, "database error: {e}"),
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

fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn key_id(hash: &[u8; 32]) -> String {
    hash[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl Accounts {
    /// Opens the accounts tables in the database file at `path` (creating
    /// them), or in memory for `None`.
    pub fn open(path: Option<&Path>) -> Result<Accounts, AccountError> {
        let conn = open_database(path)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Accounts { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates an account and its first API key; returns the key (shown
    /// once: only its hash is kept).
    pub fn add(&self, name: &str) -> Result<String, AccountError> {
        if !is_account_name(name) {
            return Err(AccountError::BadName(name.to_owned()));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute("INSERT INTO accounts (name, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![name, now_ms() as i64])?;
        if inserted == 0 {
            return Err(AccountError::Exists(name.to_owned()));
        }
        let key = insert_key(&tx, name)?;
        tx.commit()?;
        Ok(key)
    }

    /// A further API key for an existing account.
    pub fn add_key(&self, name: &str) -> Result<String, AccountError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx.query_row("SELECT 1 FROM accounts WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some();
        if !exists {
            return Err(AccountError::NoAccount(name.to_owned()));
        }
        let key = insert_key(&tx, name)?;
        tx.commit()?;
        Ok(key)
    }

    /// Every account with the ids of its active keys, by name.
    pub fn list(&self) -> Result<Vec<AccountInfo>, AccountError> {
        let conn = self.conn();
        let mut accounts = conn.prepare("SELECT name, created_ms FROM accounts ORDER BY name")?;
        let mut keys = conn.prepare("SELECT id FROM api_keys WHERE account = ?1 AND revoked_ms IS NULL ORDER BY created_ms, id")?;
        let rows = accounts.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(name, created)| {
                let keys = keys.query_map([&name], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
                Ok(AccountInfo { name, created_ms: created as u64, keys })
            })
            .collect()
    }

    /// Revokes the key with this id: requests bearing it are refused from
    /// now on. Returns the account it belonged to.
    pub fn revoke_key(&self, id: &str) -> Result<String, AccountError> {
        let conn = self.conn();
        let account: Option<String> = conn
            .query_row("UPDATE api_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL RETURNING account", params![now_ms() as i64, id], |r| r.get(0))
            .optional()?;
        account.ok_or_else(|| AccountError::NoKey(id.to_owned()))
    }

    /// The account an API key belongs to; `None` for an unknown or revoked
    /// key. This is how the HTTP API and the token exchange authenticate a
    /// `Bearer` API key. Blocking: call it off the async workers.
    pub fn resolve_api_key(&self, key: &str) -> Result<Option<String>, AccountError> {
        if !key.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        let hash = key_hash(key);
        let account = self
            .conn()
            .query_row("SELECT account FROM api_keys WHERE hash = ?1 AND revoked_ms IS NULL", [&hash[..]], |r| r.get(0))
            .optional()?;
        Ok(account)
    }
}

fn insert_key(tx: &rusqlite::Transaction<'_>, account: &str) -> Result<String, AccountError> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{API_KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let hash = key_hash(&key);
    tx.execute("INSERT INTO api_keys (hash, id, account, created_ms) VALUES (?1, ?2, ?3, ?4)", params![&hash[..], key_id(&hash), account, now_ms() as i64])?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_until_revoked_and_only_hashes_are_stored() {
        let accounts = Accounts::open(None).unwrap();
        let key = accounts.add("acme").unwrap();
        assert!(key.starts_with(API_KEY_PREFIX) && key.len() == API_KEY_PREFIX.len() + 43);
        assert_eq!(accounts.resolve_api_key(&key).unwrap().as_deref(), Some("acme"));
        assert_eq!(accounts.resolve_api_key("sbk_nope").unwrap(), None);
        let stored: i64 = accounts.conn().query_row("SELECT count(*) FROM api_keys WHERE instr(hash, ?1) > 0", [key.as_bytes()], |r| r.get(0)).unwrap();
        assert_eq!(stored, 0);
        let second = accounts.add_key("acme").unwrap();
        let list = accounts.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].keys.len(), 2);
        let first_id = key_id(&key_hash(&key));
        assert!(list[0].keys.contains(&first_id));
        assert_eq!(accounts.revoke_key(&first_id).unwrap(), "acme");
        assert_eq!(accounts.resolve_api_key(&key).unwrap(), None);
        assert_eq!(accounts.resolve_api_key(&second).unwrap().as_deref(), Some("acme"));
        assert_eq!(accounts.revoke_key(&first_id), Err(AccountError::NoKey(first_id.clone())));
    }

    #[test]
    fn names_are_checked_and_unique() {
        let accounts = Accounts::open(None).unwrap();
        assert!(matches!(accounts.add("a b"), Err(AccountError::BadName(_))));
        assert!(matches!(accounts.add(&"a".repeat(65)), Err(AccountError::BadName(_))));
        accounts.add("a").unwrap();
        assert_eq!(accounts.add("a"), Err(AccountError::Exists("a".into())));
        assert_eq!(accounts.add_key("b"), Err(AccountError::NoAccount("b".into())));
    }
}
