//! A room's storage as its handlers see it: reads answered from the room's
//! own writes that are not committed yet, then from the store; writes
//! recorded and committed after the batch of events, off the runtime.
//!
//! Handlers never wait on a disk. What a handler writes during a batch of
//! events becomes one [`Batch`] (one transaction) handed to the store when
//! the batch ends; at most one batch per room is in flight, and writes made
//! meanwhile wait for it and go out together as the next one, so a busy
//! room commits in groups of its own too. Until a write is reported
//! committed it stays in the room's overlay, so the room reads its own
//! writes at once (also after hibernating, since the overlay belongs to the
//! actor, not to the room object).
//!
//! Durable replies: [`crate::Ctx::send_after_commit`] queues a message that
//! leaves only once every write made before it is committed; if the commit
//! fails it is not sent and the room hears of it
//! ([`crate::Room::on_commit_failed`]). Whatever the room sends that
//! connection meanwhile (sends, broadcasts) queues behind it, so each
//! connection still receives what the room sent in the order it sent it.

use std::collections::{BTreeMap, VecDeque};

use std::sync::{Arc, Mutex, PoisonError};
use switchboard_proto::Message;
use switchboard_store::{prefix_end, Batch, Store, StoreError, StoreResult, Write};

use tokio::sync::Notify;

use crate::conn::ConnId;

/// A commit's outcome on its way back to the room's actor: the batch's
/// number and the result.
pub(crate) type CommitReport = (u64, StoreResult<()>);

/// Where the store leaves a room's commit report and wakes the room's
/// actor. One slot is enough: a room has at most one batch in flight. It
/// allocates nothing until used, so rooms that never write (and idle
/// ones) pay only its few words.
#[derive(Default)]
pub(crate) struct CommitSlot {
    report: Mutex<Option<CommitReport>>,
    ready: Notify,
}

impl CommitSlot {
    fn put(&self, report: CommitReport) {
        *self.report.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
        self.ready.notify_one();
    }

    /// Waits until a report is (or was, since the last take) left here.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// The report left here, if any.
    pub(crate) fn take(&self) -> Option<CommitReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The room's writes between its handlers and the store.
pub(crate) struct WriteBehind {
    /// Writes of the batch being built, not yet handed to the store.
    writes: Vec<Write>,
    /// Keys written and not yet reported committed: the number of the
    /// batch that holds the latest write, and the value (`None`: deleted).
    overlay: BTreeMap<String, (u64, Option<Vec<u8>>)>,
    /// The number the batch being built will have.
    next: u64,
    /// The batch handed to the store and not yet reported.
    in_flight: Option<u64>,
    /// What waits for a batch's commit: its number, the connection, what
    /// to send. Numbers never decrease along the queue.
    deferred: VecDeque<(u64, ConnId, Deferred)>,
    /// Connections with something in `deferred`, and how many entries.
    waiting: BTreeMap<ConnId, usize>,
    /// Where the store's reports go (the actor's task takes them).
    reports: Arc<CommitSlot>,
}

/// Something a connection receives once a commit is reported.
#[derive(Debug)]
pub(crate) enum Deferred {
    /// A reply that promises durability: sent only if the commit succeeded.
    Durable(Message),
    /// A message the room sent the connection after a durable reply,
    /// queued behind it to keep the order: sent either way.
    Behind(Message),
}

/// What a commit report releases.
pub(crate) struct Released {
    /// What waited for the commit, in order.
    pub(crate) messages: Vec<(ConnId, Deferred)>,
    /// Set when the commit failed: the messages were not sent.
    pub(crate) failed: Option<StoreError>,
}

impl WriteBehind {
    pub(crate) fn new(reports: Arc<CommitSlot>) -> WriteBehind {
        WriteBehind { writes: Vec::new(), overlay: BTreeMap::new(), next: 1, in_flight: None, deferred: VecDeque::new(), waiting: BTreeMap::new(), reports }
    }

    /// Nothing written that is not committed, nothing waiting.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.writes.is_empty() && self.in_flight.is_none() && self.deferred.is_empty()
    }

    pub(crate) fn record(&mut self, write: Write) {
        match &write {
            Write::Put(key, value) => drop(self.overlay.insert(key.clone(), (self.next, Some(value.clone())))),
            Write::Delete(key) => drop(self.overlay.insert(key.clone(), (self.next, None))),
            Write::SetAlarm(..) | Write::DeleteAlarm(..) => {}
        }
        self.writes.push(write);
    }

    /// Whether anything waits for a commit before reaching `conn`.
    #[inline]
    pub(crate) fn is_waiting(&self, conn: ConnId) -> bool {
        !self.waiting.is_empty() && self.waiting.contains_key(&conn)
    }

    /// Whether anything waits for a commit before reaching any connection.
    #[inline]
    pub(crate) fn any_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Queues `message` for `conn` until the writes made so far are
    /// committed; gives it back when there are none to wait for.
    pub(crate) fn defer(&mut self, conn: ConnId, message: Message) -> Option<Message> {
        let after = if !self.writes.is_empty() { Some(self.next) } else { self.in_flight };
        let Some(after) = after.or_else(|| self.deferred.back().map(|(n, _, _)| *n)) else { return Some(message) };
        self.push(after, conn, Deferred::Durable(message));
        None
    }

    /// Queues `message` for `conn` behind what already waits for it. Only
    /// for a connection that [`WriteBehind::is_waiting`].
    pub(crate) fn queue_behind(&mut self, conn: ConnId, message: Message) {
        let after = self.deferred.back().map_or(self.next, |(n, _, _)| *n);
        self.push(after, conn, Deferred::Behind(message));
    }

    fn push(&mut self, after: u64, conn: ConnId, what: Deferred) {
        self.deferred.push_back((after, conn, what));
        *self.waiting.entry(conn).or_default() += 1;
    }

    /// Hands the writes of the batch to the store, unless one is in flight
    /// (they go when it is reported). True when a batch went to the store.
    #[inline]
    pub(crate) fn submit(&mut self, store: &dyn Store, room: &str) -> bool {
        if self.in_flight.is_some() || self.writes.is_empty() {
            return false;
        }
        self.submit_now(store, room);
        true
    }

    fn submit_now(&mut self, store: &dyn Store, room: &str) {
        let number = self.next;
        self.next += 1;
        self.in_flight = Some(number);
        let batch = Batch { room: room.to_owned(), writes: last_write_per_key(std::mem::take(&mut self.writes)) };
        let reports = self.reports.clone();
        store.commit(batch, Box::new(move |result| reports.put((number, result))));
    }

    /// The report of the batch just submitted, when the store made it
    /// before `commit` returned (the memory store does; asked only after
    /// [`WriteBehind::submit`] handed one, so that a batch without writes
    /// takes no lock): the actor then
    /// releases what waited for it in the same batch, not on a wake-up.
    pub(crate) fn take_report(&self) -> Option<CommitReport> {
        self.reports.take()
    }

    /// The store reported batch `number`: its writes leave the overlay
    /// (committed, or failed and so never applied) and the messages that
    /// waited for it are released.
    pub(crate) fn committed(&mut self, number: u64, result: StoreResult<()>) -> Released {
        if self.in_flight == Some(number) {
            self.in_flight = None;
        }
        self.overlay.retain(|_, (n, _)| *n > number);
        let mut messages = Vec::new();
        while self.deferred.front().is_some_and(|(n, _, _)| *n <= number) {
            let (_, conn, what) = self.deferred.pop_front().expect("checked");
            if let Some(count) = self.waiting.get_mut(&conn) {
                *count -= 1;
                if *count == 0 {
                    self.waiting.remove(&conn);
                }
            }
            messages.push((conn, what));
        }
        Released { messages, failed: result.err() }
    }
}

/// The writes that matter of a batch: each one replaces its key (or alarm)
/// whole, so only the last write of each survives the transaction; a busy
/// room that rewrites a counter per event writes it once per batch. Order
/// among the survivors is kept.
fn last_write_per_key(writes: Vec<Write>) -> Vec<Write> {
    if writes.len() < 2 {
        return writes;
    }
    let mut seen = std::collections::HashSet::with_capacity(writes.len());
    let mut kept: Vec<Write> = writes
        .into_iter()
        .rev()
        .filter(|write| match write {
            Write::Put(key, _) | Write::Delete(key) => seen.insert((false, key.clone())),
            Write::SetAlarm(name, _) | Write::DeleteAlarm(name) => seen.insert((true, name.clone())),
        })
        .collect();
    kept.reverse();
    kept
}

/// One room's slice of the store, as its handlers see it. Reads include the
/// room's own writes that are not committed yet.
pub struct RoomStorage<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) room: &'a str,
    pub(crate) pending: &'a mut WriteBehind,
}

impl RoomStorage<'_> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self.pending.overlay.get(key) {
            Some((_, value)) => Ok(value.clone()),
            None => self.store.get(self.room, key),
        }
    }

    /// Keys starting with `prefix`, ascending, at most `limit`.
    pub fn list(&self, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let end = prefix_end(prefix.as_bytes());
        let in_range = |key: &String| key.as_bytes() >= prefix.as_bytes() && end.as_ref().is_none_or(|end| key.as_bytes() < end.as_slice());
        let pending: Vec<_> = self.pending.overlay.range(prefix.to_owned()..).take_while(|(k, _)| in_range(k)).collect();
        if pending.is_empty() {
            return self.store.list(self.room, prefix, limit);
        }
        // Each pending delete can hide one stored key: read that many more.
        let stored = self.store.list(self.room, prefix, limit.saturating_add(pending.len()))?;
        let mut merged: BTreeMap<String, Vec<u8>> = stored.into_iter().collect();
        for (key, (_, value)) in pending {
            match value {
                Some(value) => drop(merged.insert(key.clone(), value.clone())),
                None => drop(merged.remove(key)),
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Sets `key`. Readable at once; committed after the batch of events.
    pub fn put(&mut self, key: &str, value: &[u8]) {
        self.pending.record(Write::Put(key.to_owned(), value.to_vec()));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &str) {
        self.pending.record(Write::Delete(key.to_owned()));
    }

    /// Records several writes; like every write of a batch of events, they
    /// are committed together, all or none.
    pub fn write_all(&mut self, writes: impl IntoIterator<Item = Write>) {
        for write in writes {
            self.pending.record(write);
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_store::MemoryStore;

    use super::*;

    fn storage<'a>(store: &'a MemoryStore, pending: &'a mut WriteBehind) -> RoomStorage<'a> {
        RoomStorage { store, room: "t/r", pending }
    }

    #[test]
    fn reads_see_uncommitted_writes_over_the_store() {
        let store = MemoryStore::new();
        switchboard_store::commit_blocking(&store, Batch { room: "t/r".into(), writes: (1..=5).map(|i| Write::Put(format!("k/{i}"), vec![i])).collect() })
            .unwrap();
        let mut pending = WriteBehind::new(Arc::default());
        let mut view = storage(&store, &mut pending);
        view.delete("k/1");
        view.delete("k/2");
        view.put("k/3", &[30]);
        view.put("k/9", &[9]);
        view.put("other", &[0]);
        assert_eq!(view.get("k/1").unwrap(), None);
        assert_eq!(view.get("k/3").unwrap(), Some(vec![30]));
        assert_eq!(view.get("k/4").unwrap(), Some(vec![4]));
        let keys = |limit| view.list("k/", limit).unwrap();
        assert_eq!(keys(10), [("k/3".into(), vec![30]), ("k/4".into(), vec![4]), ("k/5".into(), vec![5]), ("k/9".into(), vec![9])]);
        assert_eq!(keys(2), [("k/3".into(), vec![30]), ("k/4".into(), vec![4])], "deleted keys do not shorten a limited list");
    }

    #[test]
    fn only_the_last_write_of_each_key_is_committed() {
        let put = |k: &str, v: u8| Write::Put(k.into(), vec![v]);
        let writes =
            vec![put("seq", 1), put("h/1", 1), put("seq", 2), Write::Delete("h/1".into()), put("h/2", 2), Write::SetAlarm("seq".into(), 5), put("seq", 3)];
        assert_eq!(last_write_per_key(writes), [Write::Delete("h/1".into()), put("h/2", 2), Write::SetAlarm("seq".into(), 5), put("seq", 3)]);
    }

    #[test]
    fn deferred_messages_wait_for_the_batch_that_holds_the_writes_before_them() {
        let store = MemoryStore::new();
        let slot = Arc::new(CommitSlot::default());
        let mut pending = WriteBehind::new(slot.clone());
        let text = |s: &str| Message::text(s.to_owned());
        assert!(pending.defer(ConnId(1), text("nothing to wait for")).is_some());
        pending.record(Write::Put("a".into(), vec![1]));
        assert!(pending.defer(ConnId(1), text("after a")).is_none());
        pending.submit(&store, "t/r");
        pending.record(Write::Put("b".into(), vec![2]));
        pending.submit(&store, "t/r"); // waits: batch 1 is in flight
        assert!(pending.defer(ConnId(2), text("after b")).is_none());
        let (number, result) = slot.take().unwrap();
        assert_eq!(number, 1);
        assert!(slot.take().is_none(), "one batch in flight at a time");
        let released = pending.committed(number, result);
        assert_eq!(released.messages.len(), 1);
        assert!(released.failed.is_none());
        assert!(!pending.is_idle());
        pending.submit(&store, "t/r");
        let (number, result) = slot.take().unwrap();
        let released = pending.committed(number, result);
        assert!(matches!(&released.messages[..], [(ConnId(2), Deferred::Durable(m))] if *m == text("after b")));
        assert!(pending.is_idle());
        assert_eq!(store.get("t/r", "b").unwrap(), Some(vec![2]));
    }
}
