//! One room's state held in memory on its owner node: the keys and alarms
//! as of the last acknowledged message, read by the room without I/O.

use std::collections::BTreeMap;

use switchboard_store::Write;

/// The committed state of one room.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Replica {
    kv: BTreeMap<String, Vec<u8>>,
    alarms: BTreeMap<String, u64>,
    /// Bytes of keys and values, to decide when a snapshot is due.
    size: usize,
}

impl Replica {
    pub(crate) fn apply(&mut self, writes: &[Write]) {
        for write in writes {
            match write {
                Write::Put(key, value) => {
                    self.size += key.len() + value.len();
                    if let Some(old) = self.kv.insert(key.clone(), value.clone()) {
                        self.size -= key.len() + old.len();
                    }
                }
                Write::Delete(key) => {
                    if let Some(old) = self.kv.remove(key) {
                        self.size -= key.len() + old.len();
                    }
                }
                Write::SetAlarm(name, at_ms) => {
                    self.alarms.insert(name.clone(), *at_ms);
                }
                Write::DeleteAlarm(name) => {
                    self.alarms.remove(name);
                }
            }
        }
    }

    /// The whole state as writes that rebuild it in an empty room.
    pub(crate) fn snapshot(&self) -> Vec<Write> {
        let puts = self.kv.iter().map(|(k, v)| Write::Put(k.clone(), v.clone()));
        puts.chain(self.alarms.iter().map(|(n, at)| Write::SetAlarm(n.clone(), *at))).collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.get(key).cloned()
    }

    /// Keys starting with `prefix`, ascending (byte order: `String`'s order).
    pub(crate) fn list(&self, prefix: &str, limit: usize) -> Vec<(String, Vec<u8>)> {
        self.kv
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Alarms, earliest first.
    pub(crate) fn alarms(&self) -> Vec<(String, u64)> {
        let mut all: Vec<_> = self.alarms.iter().map(|(n, at)| (n.clone(), *at)).collect();
        all.sort_by_key(|(_, at)| *at);
        all
    }

    pub(crate) fn earliest_alarm(&self) -> Option<u64> {
        self.alarms.values().min().copied()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_rebuilds_the_same_state() {
        let mut r = Replica::default();
        r.apply(&[Write::Put("b".into(), b"2".to_vec()), Write::Put("a".into(), b"1".to_vec()), Write::SetAlarm("t".into(), 5)]);
        r.apply(&[Write::Put("a".into(), b"11".to_vec()), Write::Delete("b".into()), Write::SetAlarm("u".into(), 3)]);
        assert_eq!(r.size(), 3);
        let mut rebuilt = Replica::default();
        rebuilt.apply(&r.snapshot());
        assert_eq!(rebuilt, r);
        assert_eq!(r.alarms(), [("u".to_owned(), 3), ("t".to_owned(), 5)]);
        assert_eq!(r.earliest_alarm(), Some(3));
    }
}
