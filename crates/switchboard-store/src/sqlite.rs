//! The embedded default: every room's data in one SQLite file.
//!
//! WAL mode lets readers proceed during a write; `synchronous = FULL` makes
//! every committed write durable (fsync'd) before the call returns, which is
//! the contract rooms rely on: what a handler stored survives `kill -9` and
//! power loss. One connection serialises all calls; each call holds its lock
//! only for its own statements, never across an await.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::{prefix_end, Store, StoreError, StoreResult, Write};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    room  TEXT NOT NULL,
    key   BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (room, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarms (
    room  TEXT NOT NULL,
    name  TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (room, name)
) WITHOUT ROWID;
";

const UPSERT: &str = "INSERT INTO kv (room, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (room, key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM kv WHERE room = ?1 AND key = ?2";

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError("sqlite store poisoned".into()))
    }
}

impl Store for SqliteStore {
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.conn()?
            .prepare_cached("SELECT value FROM kv WHERE room = ?1 AND key = ?2")
            .and_then(|mut s| s.query_row(params![room, key.as_bytes()], |row| row.get(0)).optional())
            .map_err(err)
    }

    fn put(&self, room: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        self.conn()?
            .prepare_cached(UPSERT)
            .and_then(|mut s| s.execute(params![room, key.as_bytes(), value]))
            .map(|_| ())
            .map_err(err)
    }

    fn delete(&self, room: &str, key: &str) -> StoreResult<bool> {
        self.conn()?
            .prepare_cached(DELETE)
            .and_then(|mut s| s.execute(params![room, key.as_bytes()]))
            .map(|n| n > 0)
            .map_err(err)
    }

    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let conn = self.conn()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let row = |row: &rusqlite::Row<'_>| {
            let key: Vec<u8> = row.get(0)?;
            Ok((String::from_utf8_lossy(&key).into_owned(), row.get(1)?))
        };
        let rows = match prefix_end(prefix.as_bytes()) {
            Some(end) => conn
                .prepare_cached("SELECT key, value FROM kv WHERE room = ?1 AND key >= ?2 AND key < ?3 ORDER BY key LIMIT ?4")
                .and_then(|mut s| s.query_map(params![room, prefix.as_bytes(), end, limit], row)?.collect()),
            None => conn
                .prepare_cached("SELECT key, value FROM kv WHERE room = ?1 AND key >= ?2 ORDER BY key LIMIT ?3")
                .and_then(|mut s| s.query_map(params![room, prefix.as_bytes(), limit], row)?.collect()),
        };
        rows.map_err(err)
    }

    fn write_batch(&self, room: &str, writes: &[Write]) -> StoreResult<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(err)?;
        for write in writes {
            match write {
                Write::Put(k, v) => tx.execute(UPSERT, params![room, k.as_bytes(), v]),
                Write::Delete(k) => tx.execute(DELETE, params![room, k.as_bytes()]),
            }
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn set_alarm(&self, room: &str, name: &str, at_ms: u64) -> StoreResult<()> {
        self.conn()?
            .prepare_cached("INSERT INTO alarms (room, name, at_ms) VALUES (?1, ?2, ?3) ON CONFLICT (room, name) DO UPDATE SET at_ms = excluded.at_ms")
            .and_then(|mut s| s.execute(params![room, name, at_ms as i64]))
            .map(|_| ())
            .map_err(err)
    }

    fn delete_alarm(&self, room: &str, name: &str) -> StoreResult<bool> {
        self.conn()?
            .prepare_cached("DELETE FROM alarms WHERE room = ?1 AND name = ?2")
            .and_then(|mut s| s.execute(params![room, name]))
            .map(|n| n > 0)
            .map_err(err)
    }

    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>> {
        self.conn()?
            .prepare_cached("SELECT name, at_ms FROM alarms WHERE room = ?1 ORDER BY at_ms")
            .and_then(|mut s| s.query_map([room], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?.collect())
            .map_err(err)
    }

    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>> {
        self.conn()?
            .prepare_cached("SELECT room, name, at_ms FROM alarms ORDER BY at_ms")
            .and_then(|mut s| s.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64)))?.collect())
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::contract::check(&SqliteStore::open(&dir.path().join("rooms.db")).unwrap());
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/rooms.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.put("chat/lobby", "history/1", b"hello").unwrap();
            store.set_alarm("chat/lobby", "cleanup", 42).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.get("chat/lobby", "history/1").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.pending_alarms().unwrap(), [("chat/lobby".into(), "cleanup".into(), 42)]);
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("rooms.db")).unwrap();
        store.put("r", "keep", b"1").unwrap();
        // Poison the batch: a second statement fails because the table is gone.
        store.conn().unwrap().execute_batch("CREATE TABLE kv_backup AS SELECT * FROM kv; DROP TABLE kv; CREATE TABLE kv (room TEXT, key BLOB PRIMARY KEY, value BLOB NOT NULL CHECK (length(value) < 3));").unwrap();
        let result = store.write_batch("r", &[Write::Put("a".into(), b"ok".to_vec()), Write::Put("b".into(), b"too long".to_vec())]);
        assert!(result.is_err());
        assert_eq!(store.get("r", "a").unwrap(), None, "the first write of the failed batch was rolled back");
    }
}
