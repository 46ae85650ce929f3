//! In-memory backend: the same contract as SQLite, nothing survives the
//! process. A commit is applied on the caller's thread and reported at once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{prefix_end, Batch, Committed, Flushed, Store, StoreError, StoreResult, Write};

/// A [`Store`] in memory. Lock held only inside each call, never across an await.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    kv: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    alarms: BTreeMap<(String, String), u64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| StoreError("memory store poisoned".into()))
    }

    fn apply(&self, batch: Batch) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let room = batch.room;
        for write in batch.writes {
            match write {
                Write::Put(k, v) => {
                    inner.kv.insert((room.clone(), k.into_bytes()), v);
                }
                Write::Delete(k) => {
                    inner.kv.remove(&(room.clone(), k.into_bytes()));
                }
                Write::SetAlarm(name, at) => {
                    inner.alarms.insert((room.clone(), name), at);
                }
                Write::DeleteAlarm(name) => {
                    inner.alarms.remove(&(room.clone(), name));
                }
            }
        }
        Ok(())
    }
}

impl Store for MemoryStore {
    fn get(&self, room: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.lock()?.kv.get(&(room.to_owned(), key.as_bytes().to_vec())).cloned())
    }

    fn list(&self, room: &str, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let inner = self.lock()?;
        let start = (room.to_owned(), prefix.as_bytes().to_vec());
        let end = prefix_end(prefix.as_bytes());
        Ok(inner
            .kv
            .range(start..)
            .take_while(|((r, k), _)| r == room && end.as_ref().is_none_or(|end| k < end))
            .take(limit)
            .map(|((_, k), v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
            .collect())
    }

    fn room_alarms(&self, room: &str) -> StoreResult<Vec<(String, u64)>> {
        Ok(self.pending_alarms()?.into_iter().filter(|(r, _, _)| r == room).map(|(_, n, at)| (n, at)).collect())
    }

    fn pending_alarms(&self) -> StoreResult<Vec<(String, String, u64)>> {
        let mut all: Vec<_> = self.lock()?.alarms.iter().map(|((r, n), at)| (r.clone(), n.clone(), *at)).collect();
        all.sort_by_key(|(_, _, at)| *at);
        Ok(all)
    }

    fn commit(&self, batch: Batch, done: Committed) {
        done(self.apply(batch));
    }

    fn flush(&self, done: Flushed) {
        done();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_meets_the_contract() {
        crate::contract::check(&super::MemoryStore::new());
    }
}
