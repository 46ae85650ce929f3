//! The embedded default: every room's data in one SQLite file.
//!
//! Reads go through a read connection (WAL mode lets them proceed while a
//! write is being committed). Writes go to one writer thread that owns the
//! write connection: it takes every batch waiting for it, of any number of
//! rooms, applies each inside its own savepoint of one transaction (so a
//! failing batch is rolled back alone), and commits that transaction with
//! `synchronous = FULL`: one fsync for the whole group. Each batch's
//! callback runs after that commit returned, which is the contract rooms
//! rely on: a batch reported committed survives `kill -9` and power loss.
//! Under load the group grows while the previous fsync runs, so the fsync
//! rate stays flat while the batch rate grows with the writers.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tracing::warn;

use crate::{prefix_end, Batch, Committed, Flushed, Store, StoreError, StoreResult, Write};

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
const SET_ALARM: &str = "INSERT INTO alarms (room, name, at_ms) VALUES (?1, ?2, ?3) ON CONFLICT (room, name) DO UPDATE SET at_ms = excluded.at_ms";
const DELETE_ALARM: &str = "DELETE FROM alarms WHERE room = ?1 AND name = ?2";

/// Most batches committed in one transaction. Bounds how long the first
/// batch of a group waits behind the others' statements; a group this
/// large already shares one fsync among that many rooms' batches.
const MAX_GROUP: usize = 1024;

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    reader: Mutex<Connection>,
    /// `None` once dropping: the writer drains what it has and stops.
    jobs: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

enum Job {
    Commit(Batch, Committed),
    Flush(Flushed),
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and starts
    /// its writer thread.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let write = connect(path)?;
        write.execute_batch(SCHEMA).map_err(err)?;
        let reader = connect(path)?;
        let (jobs, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("switchboard-store".into())
            .spawn(move || write_loop(write, rx))
            .map_err(|e| StoreError(format!("cannot start the store's writer thread: {e}")))?;
        Ok(SqliteStore { reader: Mutex::new(reader), jobs: Some(jobs), writer: Some(writer) })
    }

    fn reader(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.reader.lock().map_err(|_| StoreError("sqlite store poisoned".into()))
    }

    fn submit(&self, job: Job) {
        let job = match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            Some(Ok(())) => return,
            Some(Err(mpsc::SendError(job))) => job,
            None => unreachable!("jobs is taken only by drop"),
        };
        // The writer thread died (it panicked): nothing will be written.
        match job {
            Job::Commit(_, done) => done(Err(StoreError("the store's writer thread has stopped".into()))),
            Job::Flush(done) => done(),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The writer commits what was submitted, then sees the channel closed.
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: one group per pass, until every sender is gone.
fn write_loop(mut conn: Connection, jobs: Receiver<Job>) {
    let mut group = Vec::new();
    while let Ok(first) = jobs.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let results = commit_group(&mut conn, &group);
        let mut results = results.into_iter();
        for job in group.drain(..) {
            match job {
                Job::Commit(_, done) => done(results.next().expect("one result per batch")),
                Job::Flush(done) => done(),
            }
        }
    }
}

/// Applies every batch of the group in one transaction, each in its own
/// savepoint, and commits it. Returns one result per batch, in order.
fn commit_group(conn: &mut Connection, group: &[Job]) -> Vec<StoreResult<()>> {
    let batches = group.iter().filter_map(|job| match job {
        Job::Commit(batch, _) => Some(batch),
        Job::Flush(_) => None,
    });
    let count = batches.clone().count();
    if count == 0 {
        return Vec::new();
    }
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return vec![Err(err(e)); count],
    };
    let mut results = Vec::with_capacity(count);
    for batch in batches {
        let result = tx.savepoint().map_err(err).and_then(|sp| {
            apply(&sp, batch)?;
            sp.commit().map_err(err)
        });
        if let Err(e) = &result {
            warn!(room = %batch.room, error = %e, "a storage batch failed and was rolled back");
        }
        results.push(result);
    }
    if let Err(e) = tx.commit() {
        let e = err(e);
        warn!(error = %e, batches = count, "a group commit failed; none of its batches were stored");
        return vec![Err(e); count];
    }
    results
}

fn apply(conn: &Connection, batch: &Batch) -> StoreResult<()> {
    let room = batch.room.as_str();
    for write in &batch.writes {
        match write {
            Write::Put(k, v) => conn.prepare_cached(UPSERT).and_then(|mut s| s.execute(params![room, k.as_bytes(), v])),
            Write::Delete(k) => conn.prepare_cached(DELETE).and_then(|mut s| s.execute(params![room, k.as_bytes()])),
            Write::SetAlarm(name, at) => conn.prepare_cached(SET_ALARM).and_then(|mut s| s.execute(params![room, name, *at as i64])),
            Write::DeleteAlarm(name) => conn.prepare_cached(DELETE_ALARM).and_then(|mut s| s.execute(params![room, name])),
        }
        .map_err(err)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.reader()?
            .prepare_cached("SELECT value FROM kv WHERE room = ?1 AND key = ?2")
            .and_then(|mut s| s.query_row(params![room, key.as_bytes()], |row| row.get(0)).optional())
            .map_err(err)
    }

    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let conn = self.reader()?;
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

    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>> {
        self.reader()?
            .prepare_cached("SELECT name, at_ms FROM alarms WHERE room = ?1 ORDER BY at_ms")
            .and_then(|mut s| s.query_map([room], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?.collect())
            .map_err(err)
    }

    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>> {
        self.reader()?
            .prepare_cached("SELECT room, name, at_ms FROM alarms ORDER BY at_ms")
            .and_then(|mut s| s.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64)))?.collect())
            .map_err(err)
    }

    fn commit(&self, batch: Batch, done: Committed) {
        self.submit(Job::Commit(batch, done));
    }

    fn flush(&self, done: Flushed) {
        self.submit(Job::Flush(done));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{commit_blocking, flush_blocking};

    fn put(key: &str, value: &[u8]) -> Write {
        Write::Put(key.into(), value.to_vec())
    }

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
            let writes = vec![put("history/1", b"hello"), Write::SetAlarm("cleanup".into(), 42)];
            commit_blocking(&store, Batch { room: "chat/lobby".into(), writes }).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.get("chat/lobby", "history/1").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.pending_alarms().unwrap(), [("chat/lobby".into(), "cleanup".into(), 42)]);
    }

    #[test]
    fn dropping_the_store_commits_what_was_submitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rooms.db");
        let (tx, rx) = mpsc::channel();
        {
            let store = SqliteStore::open(&path).unwrap();
            for i in 0..100u32 {
                let tx = tx.clone();
                store.commit(Batch { room: "r".into(), writes: vec![put(&format!("k{i:03}"), b"v")] }, Box::new(move |r| tx.send(r).unwrap()));
            }
        }
        drop(tx);
        assert_eq!(rx.iter().filter(Result::is_ok).count(), 100, "every batch reported committed before the drop returned");
        assert_eq!(SqliteStore::open(&path).unwrap().list("r", "k", 1000).unwrap().len(), 100);
    }

    #[test]
    fn a_failed_batch_changes_nothing_and_spares_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("rooms.db")).unwrap();
        commit_blocking(&store, Batch { room: "r".into(), writes: vec![put("keep", b"1")] }).unwrap();
        // Poison the table: values of three bytes or more now fail.
        store.reader().unwrap().execute_batch("CREATE TABLE kv_backup AS SELECT * FROM kv; DROP TABLE kv; CREATE TABLE kv (room TEXT, key BLOB, value BLOB NOT NULL CHECK (length(value) < 3), PRIMARY KEY (room, key));").unwrap();
        // Three batches in one group (the writer takes all that wait): the
        // middle one fails and is rolled back alone.
        let (tx, rx) = mpsc::channel();
        let batches = [vec![put("a", b"ok")], vec![put("b", b"ok"), put("c", b"too long")], vec![put("d", b"ok")]];
        for (i, writes) in batches.into_iter().enumerate() {
            let tx = tx.clone();
            store.commit(Batch { room: "r".into(), writes }, Box::new(move |r| tx.send((i, r.is_ok())).unwrap()));
        }
        flush_blocking(&store);
        drop(tx);
        let mut outcomes: Vec<_> = rx.iter().collect();
        outcomes.sort();
        assert_eq!(outcomes, [(0, true), (1, false), (2, true)]);
        assert_eq!(store.get("r", "b").unwrap(), None, "the first write of the failed batch was rolled back");
        assert_eq!(store.get("r", "a").unwrap().as_deref(), Some(&b"ok"[..]));
        assert_eq!(store.get("r", "d").unwrap().as_deref(), Some(&b"ok"[..]));
    }
}
