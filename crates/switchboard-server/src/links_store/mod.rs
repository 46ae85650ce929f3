//! Where the link table is stored: the node's SQLite file (a single node)
//! or the cluster's shared table (cluster mode). Either backend keeps the
//! in-memory [`LinkIndex`] in step with what it stored; the index is what
//! redirects read.

mod shared;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use switchboard_cluster::Tables;

use crate::links::{Link, LinkError, LinkIndex};

/// The link table's backend.
pub(crate) enum LinkStore {
    Sqlite(sqlite::SqliteLinks),
    // Boxed: the NATS handles are large, the SQLite one is a pointer.
    Shared(Box<shared::SharedLinks>),
}

impl LinkStore {
    /// Opens the table in the database file at `path` (or in memory) and
    /// loads it into `index`.
    pub(crate) fn open_sqlite(path: Option<&Path>, index: &LinkIndex) -> Result<LinkStore, LinkError> {
        sqlite::SqliteLinks::open(path, index).map(LinkStore::Sqlite)
    }

    /// Opens the cluster's shared link table, loads it into `index` and
    /// keeps `index` current.
    pub(crate) async fn open_shared(tables: &Tables, index: &Arc<LinkIndex>) -> Result<LinkStore, LinkError> {
        shared::SharedLinks::open(tables, index.clone()).await.map(|store| LinkStore::Shared(Box::new(store)))
    }

    /// Stores a new link if its slug is free everywhere, then indexes it;
    /// false when the slug is taken.
    pub(crate) async fn insert(&self, link: Arc<Link>, index: &LinkIndex) -> Result<bool, LinkError> {
        match self {
            LinkStore::Sqlite(store) => store.insert(link, index).await,
            LinkStore::Shared(store) => store.insert(link).await,
        }
    }

    /// Removes the account's link from the table, then from the index;
    /// false when the table has no such link of the account.
    pub(crate) async fn remove(&self, account: &str, slug: &str, index: &LinkIndex) -> Result<bool, LinkError> {
        match self {
            LinkStore::Sqlite(store) => store.remove(account, slug, index).await,
            LinkStore::Shared(store) => store.remove(account, slug).await,
        }
    }
}
