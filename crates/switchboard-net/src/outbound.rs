//! Frames and signals that other tasks hand to one connection.
//!
//! The queue is bounded in bytes: a peer that stops reading fills it, and
//! the next frame past `limit` is dropped and the connection is cut off
//! (closed with 1008) instead of growing server memory. An empty queue
//! takes any one frame, so the bound is `limit` plus one message. Frames are encoded
//! once by the sender and shared (`Bytes`), so queueing a broadcast costs a
//! reference count, a short uncontended lock and a wake-up.
//!
//! It is also how the listener's timer sweep and shutdown reach the
//! connection (see `timers`): the connection publishes its next deadline
//! here, and the sweep marks it due. Everything that can wake an idle
//! connection, apart from its socket, goes through this one struct and the
//! one waker stored in it, so an idle connection's task waits on no future
//! of its own besides the socket's readiness.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// Queued, but more than half the limit is waiting: the peer is slow.
    Backpressure,
    /// Not queued: the connection is closing or was just cut off.
    Dropped,
}

/// The shared outbound side of one connection.
pub struct Outbound {
    queue: Mutex<Queue>,
    limit: usize,
    /// The connection's next timer deadline on the `timers::now_ms` clock,
    /// 0 for none. Written by the connection, read (and cleared when it
    /// fires) by the listener's sweep without taking the lock.
    deadline: AtomicU64,
    /// Set whenever the auto-response pair changes, so the connection's
    /// task can cache the pair and check it with one atomic load per read.
    auto_changed: AtomicBool,
    last_auto_ms: AtomicU64,
}

/// 72 bytes; the whole `Outbound` fits a 128-byte allocation with its `Arc`.
#[derive(Default)]
struct Queue {
    /// Taken all at once by the connection, so a `Vec` (no capacity while
    /// empty).
    frames: Vec<Bytes>,
    bytes: usize,
    closing: bool,
    /// Boxed: rare.
    close: Option<Box<(u16, String)>>,
    overflowed: bool,
    /// The deadline passed (set by the sweep, taken by the connection).
    due: bool,
    /// The server is stopping.
    stopping: bool,
    auto: Option<Arc<(Bytes, Bytes)>>,
    /// The connection's task while it waits.
    waker: Option<Waker>,
}

/// What the connection's task takes out in one go.
pub(crate) struct Taken {
    pub(crate) frames: Vec<Bytes>,
    pub(crate) close: Option<Box<(u16, String)>>,
    pub(crate) overflowed: bool,
    pub(crate) due: bool,
    pub(crate) stopping: bool,
}

impl Outbound {
    /// An empty queue that cuts the connection off past `limit` bytes.
    pub fn new(limit: usize) -> Outbound {
        Outbound {
            queue: Mutex::new(Queue::default()),
            limit,
            deadline: AtomicU64::new(0),
            auto_changed: AtomicBool::new(false),
            last_auto_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves only plain data behind.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an encoded (unmasked) frame.
    pub fn push(&self, frame: Bytes) -> Push {
        let mut q = self.lock();
        if q.closing {
            return Push::Dropped;
        }
        // One frame is always taken into an empty queue, so a single message
        // larger than the limit (up to the message size limit) still goes out.
        if q.bytes > 0 && q.bytes + frame.len() > self.limit {
            q.closing = true;
            q.overflowed = true;
            q.frames = Vec::new();
            q.bytes = 0;
            wake(q);
            return Push::Dropped;
        }
        q.bytes += frame.len();
        q.frames.push(frame);
        let outcome = if q.bytes > self.limit / 2 { Push::Backpressure } else { Push::Queued };
        if q.frames.len() == 1 {
            // One wake-up per batch: later frames join the queue the task will drain anyway.
            wake(q);
        }
        outcome
    }

    /// Asks the connection to close after the frames queued so far.
    pub fn close(&self, code: u16, reason: &str) {
        let mut q = self.lock();
        if !q.closing {
            q.closing = true;
            q.close = Some(Box::new((code, reason.to_owned())));
        }
        wake(q);
    }

    /// Sets the exact text request answered by the connection itself with
    /// the encoded response frame; `None` turns it off. Shared, so that a
    /// room's connections hold one pointer each, not a copy each.
    pub fn set_auto_response(&self, pair: Option<Arc<(Bytes, Bytes)>>) {
        self.lock().auto = pair;
        self.auto_changed.store(true, Ordering::Release);
    }

    /// When the connection last answered with the auto-response.
    pub fn last_auto_response(&self) -> Option<SystemTime> {
        match self.last_auto_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + std::time::Duration::from_millis(ms)),
        }
    }

    pub(crate) fn record_auto_response(&self) {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64);
        self.last_auto_ms.store(ms, Ordering::Relaxed);
    }

    /// True (once) if the pair changed since the last call.
    pub(crate) fn take_auto_changed(&self) -> bool {
        self.auto_changed.load(Ordering::Acquire) && self.auto_changed.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn auto_pair(&self) -> Option<Arc<(Bytes, Bytes)>> {
        self.lock().auto.clone()
    }

    /// Ready when there is something to take: a close request, a cut-off,
    /// a due deadline, the server stopping, or frames if `frames`.
    /// Otherwise the task's waker is kept and woken by the next of these.
    pub(crate) fn poll_news(&self, cx: &mut Context<'_>, frames: bool) -> Poll<()> {
        let mut q = self.lock();
        if q.close.is_some() || q.overflowed || q.due || q.stopping || (frames && !q.frames.is_empty()) {
            return Poll::Ready(());
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Takes the signals (close request, cut-off, due deadline, stopping),
    /// and the queued frames if `frames` (the connection leaves them here
    /// while its socket is full).
    pub(crate) fn take(&self, frames: bool) -> Taken {
        let mut q = self.lock();
        let frames = if frames {
            q.bytes = 0;
            std::mem::take(&mut q.frames)
        } else {
            Vec::new()
        };
        Taken {
            frames,
            close: q.close.take(),
            overflowed: std::mem::take(&mut q.overflowed),
            due: std::mem::take(&mut q.due),
            stopping: std::mem::take(&mut q.stopping),
        }
    }

    /// Refuses further frames (the connection is ending).
    pub(crate) fn shut(&self) {
        self.lock().closing = true;
    }

    /// Publishes the connection's next deadline (0: none) for the sweep.
    pub(crate) fn set_deadline(&self, at_ms: u64) {
        self.deadline.store(at_ms, Ordering::Relaxed);
    }

    /// Called by the sweep: marks the connection due and wakes it if its
    /// deadline is not after `now_ms`. A deadline fires once; the
    /// connection publishes the next one.
    pub(crate) fn fire_if_due(&self, now_ms: u64) {
        let at = self.deadline.load(Ordering::Relaxed);
        if at == 0 || at > now_ms {
            return;
        }
        // Lost only to the connection publishing a new deadline meanwhile.
        if self.deadline.compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let mut q = self.lock();
            q.due = true;
            wake(q);
        }
    }

    /// Tells the connection that the server is stopping.
    pub(crate) fn stop(&self) {
        let mut q = self.lock();
        q.stopping = true;
        wake(q);
    }
}

/// Wakes the waiting task, after releasing the lock.
fn wake(mut q: std::sync::MutexGuard<'_, Queue>) {
    let waker = q.waker.take();
    drop(q);
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_queue_until_the_limit_then_the_connection_is_cut_off() {
        let out = Outbound::new(100);
        assert_eq!(out.push(Bytes::from_static(&[0; 40])), Push::Queued);
        assert_eq!(out.push(Bytes::from_static(&[0; 40])), Push::Backpressure);
        assert_eq!(out.push(Bytes::from_static(&[0; 40])), Push::Dropped);
        assert_eq!(out.push(Bytes::from_static(&[0; 1])), Push::Dropped, "nothing after the cut-off");
        let taken = out.take(true);
        assert!(taken.overflowed);
        assert!(taken.frames.is_empty(), "queued frames are released at once");
    }

    #[test]
    fn one_frame_larger_than_the_limit_fits_an_empty_queue() {
        let out = Outbound::new(10);
        assert_eq!(out.push(Bytes::from(vec![0; 100])), Push::Backpressure);
        assert_eq!(out.push(Bytes::from_static(&[0])), Push::Dropped);
    }

    #[test]
    fn a_close_request_comes_after_the_frames_before_it() {
        let out = Outbound::new(1000);
        out.push(Bytes::from_static(b"a"));
        out.close(1000, "bye");
        assert_eq!(out.push(Bytes::from_static(b"b")), Push::Dropped);
        let taken = out.take(true);
        assert_eq!(taken.frames.len(), 1);
        assert_eq!(taken.close.as_deref(), Some(&(1000, "bye".into())));
    }
}
