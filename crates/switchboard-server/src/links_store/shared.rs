//! The link table in cluster mode: the shared table `links` (bucket
//! `<prefix>_links`), one key per slug holding the link as JSON
//! (`{"account", "url", "geo", "created"}`). Slugs are unique because a
//! link is stored with a create, which the server applies only to a key
//! without a live value; a delete expects the revision it checked the
//! owner of. Every node's index follows the table through a watch, so a
//! link made on one node redirects on the others as soon as the watch
//! delivers it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_apps::clicks::LinkInfo;
use switchboard_cluster::{Change, ClusterError, Follower, Table, Tables};

use crate::links::{Link, LinkError, LinkIndex};

/// The shared table's name.
const TABLE: &str = "links";
/// How long a writer waits for its own write to reach its node's index, so
/// that the link shows (or is gone) on this node when the call returns.
const OWN_WRITE_WAIT: Duration = Duration::from_secs(2);

/// A link as stored under its slug.
#[derive(Serialize, Deserialize)]
struct Record {
    account: String,
    url: String,
    #[serde(default)]
    geo: BTreeMap<String, String>,
    created: u64,
}

pub(crate) struct SharedLinks {
    table: Table,
    index: Arc<LinkIndex>,
    follower: Follower,
}

fn unavailable(e: ClusterError) -> LinkError {
    LinkError::Unavailable(e.to_string())
}

impl SharedLinks {
    pub(crate) async fn open(tables: &Tables, index: Arc<LinkIndex>) -> Result<SharedLinks, LinkError> {
        let table = tables.open(TABLE).await.map_err(unavailable)?;
        let follower = table.follow(apply_to(index.clone())).await.map_err(unavailable)?;
        Ok(SharedLinks { table, index, follower })
    }

    pub(crate) async fn insert(&self, link: Arc<Link>) -> Result<bool, LinkError> {
        let info = &link.info;
        let record = Record { account: link.account.clone(), url: info.url.clone(), geo: info.geo.clone(), created: info.created };
        let value = serde_json::to_vec(&record).expect("links serialize");
        let Some(revision) = self.table.create(&info.slug, value.into()).await.map_err(unavailable)? else { return Ok(false) };
        self.follower.wait_until(OWN_WRITE_WAIT, |applied| applied >= revision).await;
        Ok(true)
    }

    pub(crate) async fn remove(&self, account: &str, slug: &str) -> Result<bool, LinkError> {
        let Some((value, revision)) = self.table.entry(slug).await.map_err(unavailable)? else { return Ok(false) };
        if serde_json::from_slice::<Record>(&value).map_or(true, |r| r.account != account) {
            return Ok(false);
        }
        // Expecting the revision read: a slug deleted and taken by another
        // account in between is not deleted.
        if !self.table.delete(slug, revision).await.map_err(unavailable)? {
            return Ok(false);
        }
        self.follower.wait_until(OWN_WRITE_WAIT, |_| self.index.get(slug).is_none_or(|(seen, _)| seen != revision)).await;
        Ok(true)
    }
}

/// Applies the table's changes to the index.
fn apply_to(index: Arc<LinkIndex>) -> impl FnMut(Change) + Send + 'static {
    move |change| match change {
        Change::Put { key, value, revision } => match serde_json::from_slice::<Record>(&value) {
            Ok(record) => {
                let info = LinkInfo { slug: key, url: record.url, geo: record.geo, created: record.created };
                index.insert(revision, Arc::new(Link { account: record.account, info }));
            }
            Err(e) => tracing::warn!(slug = key, error = %e, "a link in the shared table is not readable; skipped"),
        },
        Change::Delete { key, .. } => index.remove(&key),
    }
}
