//! The actor's table of open connections: one record per connection,
//! hibernated or not, kept in connection order.
//!
//! A sorted vector rather than a tree or a hash map: the table is in memory
//! for every idle connection, and a vector holds 32 bytes per record where
//! a B-tree's part-filled nodes hold about twice that. Connection ids grow,
//! so an open almost always appends; lookups are binary searches; a
//! broadcast walks contiguous memory. A leave moves the records after it,
//! which is a plain `memmove` even in rooms of many thousands.

use crate::conn::{ConnId, ConnRecord};

#[derive(Default)]
pub(crate) struct ConnTable {
    records: Vec<(ConnId, ConnRecord)>,
}

impl ConnTable {
    fn position(&self, conn: ConnId) -> Result<usize, usize> {
        self.records.binary_search_by_key(&conn, |(id, _)| *id)
    }

    /// Adds `conn`'s record, replacing one it had.
    pub(crate) fn insert(&mut self, conn: ConnId, record: ConnRecord) {
        match self.records.last() {
            Some((last, _)) if *last >= conn => match self.position(conn) {
                Ok(at) => self.records[at].1 = record,
                Err(at) => self.records.insert(at, (conn, record)),
            },
            _ => self.records.push((conn, record)),
        }
    }

    /// Takes `conn`'s record out. A table that emptied to a quarter of its
    /// capacity gives half of it back, so a room that shrank does not keep
    /// the memory of its busiest moment.
    pub(crate) fn remove(&mut self, conn: ConnId) -> Option<ConnRecord> {
        let at = self.position(conn).ok()?;
        let (_, record) = self.records.remove(at);
        if self.records.capacity() > 16 && self.records.len() * 4 <= self.records.capacity() {
            self.records.shrink_to(self.records.len() * 2);
        }
        Some(record)
    }

    pub(crate) fn get(&self, conn: ConnId) -> Option<&ConnRecord> {
        self.position(conn).ok().map(|at| &self.records[at].1)
    }

    pub(crate) fn get_mut(&mut self, conn: ConnId) -> Option<&mut ConnRecord> {
        self.position(conn).ok().map(|at| &mut self.records[at].1)
    }

    pub(crate) fn contains(&self, conn: ConnId) -> bool {
        self.position(conn).is_ok()
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, in connection order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ConnId, &ConnRecord)> {
        self.records.iter().map(|(id, record)| (id, record))
    }
}

#[cfg(test)]
mod tests {
    use super::ConnTable;
    use crate::conn::{ConnId, ConnRecord};
    use crate::testing::RecordingSink;

    fn record() -> ConnRecord {
        ConnRecord::new(Box::new(RecordingSink::default()), Vec::new(), None)
    }

    #[test]
    fn records_stay_in_connection_order_whatever_the_order_of_opens() {
        let mut table = ConnTable::default();
        for id in [5, 1, 9, 3, 7, 2] {
            table.insert(ConnId(id), record());
        }
        table.insert(ConnId(3), record());
        assert_eq!(table.iter().map(|(id, _)| id.0).collect::<Vec<_>>(), [1, 2, 3, 5, 7, 9]);
        assert!(table.remove(ConnId(5)).is_some());
        assert!(table.remove(ConnId(5)).is_none());
        assert!(table.contains(ConnId(7)) && !table.contains(ConnId(5)));
        assert!(table.get(ConnId(9)).is_some() && table.get_mut(ConnId(4)).is_none());
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn a_table_that_empties_gives_memory_back() {
        let mut table = ConnTable::default();
        for id in 0..1000 {
            table.insert(ConnId(id), record());
        }
        let full = table.records.capacity();
        for id in 0..990 {
            table.remove(ConnId(id));
        }
        assert!(table.records.capacity() * 16 <= full, "{} of {full}", table.records.capacity());
        assert_eq!(table.iter().map(|(id, _)| id.0).collect::<Vec<_>>(), (990..1000).collect::<Vec<_>>());
        for id in 990..1000 {
            table.remove(ConnId(id));
        }
        assert!(table.is_empty());
    }
}
