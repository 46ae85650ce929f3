//! Which commits are still open, so a flush can wait for exactly the
//! commits submitted before it (commits of different rooms finish in any
//! order).

use std::collections::BTreeSet;
use std::sync::Mutex;

use switchboard_store::Flushed;

#[derive(Default)]
pub(crate) struct Tickets {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: BTreeSet<u64>,
    /// (first ticket not waited for, callback)
    waiters: Vec<(u64, Flushed)>,
}

impl Tickets {
    pub(crate) fn open(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = inner.next;
        inner.next += 1;
        inner.open.insert(ticket);
        ticket
    }

    pub(crate) fn close(&self, ticket: u64) {
        let ready = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.open.remove(&ticket);
            let oldest = inner.open.first().copied().unwrap_or(u64::MAX);
            let (ready, waiting) = std::mem::take(&mut inner.waiters).into_iter().partition(|(until, _)| *until <= oldest);
            inner.waiters = waiting;
            ready
        };
        for (_, done) in ready {
            done();
        }
    }

    pub(crate) fn flush(&self, done: Flushed) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let until = inner.next;
        if inner.open.first().is_none_or(|oldest| *oldest >= until) {
            drop(inner);
            done();
        } else {
            inner.waiters.push((until, done));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_flush_waits_for_the_commits_before_it_only() {
        let tickets = Tickets::default();
        let flushed = Arc::new(AtomicUsize::new(0));
        let count = |f: &Arc<AtomicUsize>| {
            let f = f.clone();
            Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            }) as Flushed
        };
        tickets.flush(count(&flushed));
        assert_eq!(flushed.load(Ordering::SeqCst), 1, "nothing open: at once");
        let (a, b) = (tickets.open(), tickets.open());
        tickets.flush(count(&flushed));
        let c = tickets.open();
        tickets.close(b);
        assert_eq!(flushed.load(Ordering::SeqCst), 1);
        tickets.close(a);
        assert_eq!(flushed.load(Ordering::SeqCst), 2, "a later commit does not hold the flush back");
        tickets.close(c);
    }
}
