//! Where accounts and API-key hashes are stored: the node's SQLite file (a
//! single node) or the cluster's shared table (cluster mode).

mod shared;
mod sqlite;

use std::path::Path;

use switchboard_cluster::Tables;

use crate::accounts::{AccountError, AccountInfo};

/// The accounts' backend.
pub(crate) enum AccountStore {
    Sqlite(sqlite::SqliteAccounts),
    // Boxed: the NATS handles are large, the SQLite one is a pointer.
    Shared(Box<shared::SharedAccounts>),
}

impl AccountStore {
    pub(crate) fn open_sqlite(path: Option<&Path>) -> Result<AccountStore, AccountError> {
        sqlite::SqliteAccounts::open(path).map(AccountStore::Sqlite)
    }

    pub(crate) async fn open_shared(tables: &Tables) -> Result<AccountStore, AccountError> {
        shared::SharedAccounts::open(tables).await.map(|store| AccountStore::Shared(Box::new(store)))
    }

    /// Creates the (checked) account with a first key; the key.
    pub(crate) async fn add(&self, name: &str) -> Result<String, AccountError> {
        match self {
            AccountStore::Sqlite(store) => store.call(name, sqlite::add).await,
            AccountStore::Shared(store) => store.add(name).await,
        }
    }

    pub(crate) async fn add_key(&self, name: &str) -> Result<String, AccountError> {
        match self {
            AccountStore::Sqlite(store) => store.call(name, sqlite::add_key).await,
            AccountStore::Shared(store) => store.add_key(name).await,
        }
    }

    pub(crate) async fn list(&self) -> Result<Vec<AccountInfo>, AccountError> {
        match self {
            AccountStore::Sqlite(store) => store.call("", |conn, _| sqlite::list(conn)).await,
            AccountStore::Shared(store) => Ok(store.list()),
        }
    }

    pub(crate) async fn revoke_key(&self, id: &str) -> Result<String, AccountError> {
        match self {
            AccountStore::Sqlite(store) => store.call(id, sqlite::revoke_key).await,
            AccountStore::Shared(store) => store.revoke_key(id).await,
        }
    }

    /// The account of the key with this hash, if the key is active.
    pub(crate) async fn resolve(&self, hash: [u8; 32]) -> Result<Option<String>, AccountError> {
        match self {
            AccountStore::Sqlite(store) => store.resolve(hash).await,
            AccountStore::Shared(store) => Ok(store.resolve(&hash)),
        }
    }
}
