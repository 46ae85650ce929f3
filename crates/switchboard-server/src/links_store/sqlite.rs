//! The link table in the node's SQLite file (`links`), through a
//! connection of its own; statements run on blocking threads.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection};
use switchboard_apps::clicks::LinkInfo;

use crate::accounts::open_database;
use crate::links::{Link, LinkError, LinkIndex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS links (
    slug       TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    url        TEXT NOT NULL,
    geo        TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS links_by_account ON links (account, created_ms);
";

pub(crate) struct SqliteLinks {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteLinks {
    pub(crate) fn open(path: Option<&Path>, index: &LinkIndex) -> Result<SqliteLinks, LinkError> {
        let conn = open_database(path)?;
        conn.execute_batch(SCHEMA)?;
        {
            let mut rows = conn.prepare("SELECT slug, account, url, geo, created_ms FROM links")?;
            let links = rows.query_map([], |r| {
                let geo: String = r.get(3)?;
                Ok(Link {
                    account: r.get(1)?,
                    info: LinkInfo {
                        slug: r.get(0)?,
                        url: r.get(2)?,
                        geo: serde_json::from_str(&geo).unwrap_or_default(),
                        created: r.get::<_, i64>(4)? as u64,
                    },
                })
            })?;
            for link in links {
                index.insert(0, Arc::new(link?));
            }
        }
        Ok(SqliteLinks { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn blocking<T: Send + 'static>(&self, call: impl FnOnce(&Connection) -> Result<T, LinkError> + Send + 'static) -> Result<T, LinkError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || call(&conn.lock().unwrap_or_else(PoisonError::into_inner)))
            .await
            .map_err(|_| LinkError::Database("the database call failed".into()))?
    }

    pub(crate) async fn insert(&self, link: Arc<Link>, index: &LinkIndex) -> Result<bool, LinkError> {
        let row = link.clone();
        let inserted = self
            .blocking(move |conn| {
                let info = &row.info;
                let geo = serde_json::to_string(&info.geo).expect("maps serialize");
                let inserted = conn.execute(
                    "INSERT INTO links (slug, account, url, geo, created_ms) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    params![info.slug, row.account, info.url, geo, info.created as i64],
                )?;
                Ok(inserted == 1)
            })
            .await?;
        if inserted {
            index.insert(0, link);
        }
        Ok(inserted)
    }

    pub(crate) async fn remove(&self, account: &str, slug: &str, index: &LinkIndex) -> Result<bool, LinkError> {
        let (account, doomed) = (account.to_owned(), slug.to_owned());
        let deleted = self
            .blocking(move |conn| Ok(conn.execute("DELETE FROM links WHERE slug = ?1 AND account = ?2", params![doomed, account])? == 1))
            .await?;
        index.remove(slug);
        Ok(deleted)
    }
}
