//! Frames and signals that other tasks hand to one connection.
//!
//! The queue is bounded in bytes: a peer that stops reading fills it, and
//! the next frame past `limit` is dropped and the connection is cut off
//! (closed with 1008) instead of growing server memory. An empty queue
//! takes any one frame, so the bound is `limit` plus one message. Frames are
//! made once by the sender ([`SharedFrame`]); queueing one copies a small
//! frame behind the small frames already waiting (one buffer for a whole
//! batch, which the connection then writes as it is) or shares a large
//! payload or a room's run of broadcasts, so a broadcast costs each member
//! a reference count or a short copy, a short uncontended lock and at most
//! one wake-up per batch.
//!
//! Write-through: while the connection's task waits with nothing of its
//! own to write (its engine's queue empty, the socket taking everything),
//! it may let the queue write pushed frames straight to its socket, which
//! the queue then holds a share of ([`SharedTcp`]): a room's broadcast
//! reaches an idle member with one system call on the room's task and no
//! wake-up of the member's. Only frames pushed on the thread where the
//! task waits: that thread would write them anyway, while a member on
//! another event loop is left to its own loop's thread, so a large room's
//! sends stay spread over the loops its members are on; a frame queued
//! from another thread ends it, so that no later frame overtakes that one.
//! The first frame the socket does not take whole ends it too: the rest is
//! queued and the task woken, as for any frame. The task ends it as well,
//! under this lock, before it writes anything itself, so the bytes of the
//! two never interleave. The bytes written through are counted here until
//! the task collects them.
//!
//! It is also how the listener's timer sweep and shutdown reach the
//! connection (see `timers`): the connection publishes its next deadline
//! here, and the sweep marks it due. Everything that can wake an idle
//! connection, apart from its socket, goes through this one struct and the
//! one waker stored in it, so an idle connection's task waits on no future
//! of its own besides the socket's readiness.

use std::cell::Cell;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use switchboard_proto::frame::SharedFrame;
use switchboard_proto::SendOutcome;
use tokio::net::TcpStream;

#[cfg(doc)]
use crate::shared_tcp::SharedTcp;

/// The shared outbound side of one connection.
///
/// At most 96 bytes (a test pins it), so that with its `Arc` it takes a
/// 112-byte block: one per open connection. What few connections use is
/// boxed in `Rare`.
pub struct Outbound {
    queue: Mutex<Queue>,
    /// The connection's next timer deadline on the listener's clock
    /// (`Timers::now`), 0 for none. Written by the connection, read (and
    /// cleared when it fires) by the listener's sweep without taking the
    /// lock.
    deadline: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Taken all at once by the connection, so a `Vec` (no capacity while
    /// empty).
    frames: Vec<Chunk>,
    /// Bytes in `frames` (saturating; one frame larger than 4 GiB would
    /// only count as 4 GiB).
    bytes: u32,
    /// Above this the connection is cut off (at most 4 GiB).
    limit: u32,
    closing: bool,
    overflowed: bool,
    /// The deadline passed (set by the sweep, taken by the connection).
    due: bool,
    /// The server is stopping.
    stopping: bool,
    /// The listener's sweep asks whether the connection is idle (set by
    /// the sweep, taken by the connection).
    idle_check: bool,
    /// The connection is parked (see `park`): its waker resumes it, and
    /// idle checks leave it alone.
    parked: bool,
    /// Pushed frames go straight to `socket` when pushed on this thread
    /// (a [`thread_token`]; 0: none; see Write-through above); only while
    /// `frames` is empty and the queue not closing.
    through: u32,
    /// Bytes written through since the task last collected them
    /// (saturating).
    written: u32,
    /// The connection's socket, for writing through (plain TCP only).
    socket: Option<Arc<TcpStream>>,
    rare: Option<Box<Rare>>,
    /// The connection's task while it waits, or what resumes it while it
    /// is parked.
    waker: Option<Waker>,
}

/// What only some connections ever use.
#[derive(Default)]
struct Rare {
    close: Option<(u16, String)>,
}

impl Queue {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Whether there is something for the connection: a close request, a
    /// cut-off, a due deadline, the server stopping, or frames if `frames`.
    fn has_news(&self, frames: bool) -> bool {
        let close = self.rare.as_ref().is_some_and(|rare| rare.close.is_some());
        close || self.overflowed || self.due || self.stopping || (frames && !self.frames.is_empty())
    }

    /// Writes `frame` to the socket now; true if the socket took it whole.
    /// Otherwise write-through ends and the rest of the frame is queued
    /// (the caller wakes the task): the socket is full, or failed, which
    /// the task then learns from its own write.
    fn write_through(&mut self, frame: &SharedFrame) -> bool {
        let (header, payload) = (frame.header(), frame.payload());
        let written = match (&self.socket, header) {
            (Some(socket), []) => socket.try_write(payload),
            (Some(socket), header) => socket.try_write_vectored(&[IoSlice::new(header), IoSlice::new(payload)]),
            (None, _) => Ok(0),
        }
        .unwrap_or(0);
        self.written = self.written.saturating_add(u32::try_from(written).unwrap_or(u32::MAX));
        if written == frame.len() {
            return true;
        }
        self.through = 0;
        self.bytes = u32::try_from(frame.len() - written).unwrap_or(u32::MAX);
        let rest = payload.slice(written.saturating_sub(header.len())..);
        enqueue(&mut self.frames, &header[written.min(header.len())..], &rest, frame.copy_when_queued());
        false
    }

    /// What a push tells the room: whether the queue is past half its limit.
    fn outcome(&self) -> SendOutcome {
        if self.bytes > self.limit / 2 {
            SendOutcome::Backpressure
        } else {
            SendOutcome::Queued
        }
    }
}

/// Queued frames, in wire order.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Whole small frames (and the headers of large ones), copied one after
    /// the other.
    Copied(Vec<u8>),
    /// A large payload, or a room's run of frames, shared with the sender
    /// and every other queue that holds it.
    Shared(Bytes),
}

/// First capacity of a `Chunk::Copied`: sixteen 20-byte messages with
/// their headers, so that a batch of short replies usually takes one
/// allocation, not a series of regrowths.
const COPIED_START: usize = 512;

/// The buffer the next small frame (or header) is copied to: the last
/// chunk if that is one, or a new one.
fn copy_target(frames: &mut Vec<Chunk>, additional: usize) -> &mut Vec<u8> {
    if !matches!(frames.last(), Some(Chunk::Copied(_))) {
        frames.push(Chunk::Copied(Vec::with_capacity(additional.max(COPIED_START))));
    }
    match frames.last_mut() {
        Some(Chunk::Copied(buf)) => buf,
        _ => unreachable!("a copied chunk was just made the last"),
    }
}

/// Queues a frame's bytes, `header` then `payload`: copied behind the
/// small frames waiting if `copy`, else the header copied and the payload
/// shared.
fn enqueue(frames: &mut Vec<Chunk>, header: &[u8], payload: &Bytes, copy: bool) {
    if copy {
        let buf = copy_target(frames, header.len() + payload.len());
        buf.extend_from_slice(header);
        buf.extend_from_slice(payload);
        return;
    }
    match (header, frames.last_mut()) {
        ([], _) => {}
        (header, Some(Chunk::Copied(buf))) => buf.extend_from_slice(header),
        // Exactly the header: a large message to 10,000 members must not
        // cost each one a batch-sized buffer.
        (header, _) => frames.push(Chunk::Copied(header.to_vec())),
    }
    frames.push(Chunk::Shared(payload.clone()));
}

/// What the connection's task takes out in one go.
pub(crate) struct Taken {
    pub(crate) frames: Vec<Chunk>,
    pub(crate) close: Option<(u16, String)>,
    pub(crate) overflowed: bool,
    pub(crate) due: bool,
    pub(crate) stopping: bool,
    pub(crate) idle_check: bool,
}

impl Outbound {
    /// An empty queue that cuts the connection off past `limit` bytes (at
    /// most 4 GiB).
    pub fn new(limit: usize) -> Outbound {
        Outbound::with_socket(limit, None)
    }

    /// An empty queue like [`Outbound::new`], with a share of the
    /// connection's socket to write through.
    pub(crate) fn with_socket(limit: usize, socket: Option<Arc<TcpStream>>) -> Outbound {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        Outbound { queue: Mutex::new(Queue { limit, socket, ..Queue::default() }), deadline: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves only plain data behind.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame: a small one is copied behind the small frames
    /// waiting; a large one's header is, and its payload is shared; a run
    /// of frames is shared whole.
    pub fn push(&self, frame: &SharedFrame) -> SendOutcome {
        let mut q = self.lock();
        if q.closing {
            return SendOutcome::Dropped;
        }
        if q.through != 0 && q.through == thread_token() {
            if q.write_through(frame) {
                return SendOutcome::Queued;
            }
            let outcome = q.outcome();
            wake(q);
            return outcome;
        }
        // A frame that waits here (pushed on another thread) ends
        // write-through: a later one must not overtake it.
        q.through = 0;
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        // One frame is always taken into an empty queue, so a single message
        // larger than the limit (up to the message size limit) still goes out.
        if q.bytes > 0 && u64::from(q.bytes) + u64::from(len) > u64::from(q.limit) {
            q.closing = true;
            q.overflowed = true;
            q.frames = Vec::new();
            q.bytes = 0;
            wake(q);
            return SendOutcome::Dropped;
        }
        q.bytes = q.bytes.saturating_add(len);
        let was_empty = q.frames.is_empty();
        enqueue(&mut q.frames, frame.header(), frame.payload(), frame.copy_when_queued());
        let outcome = q.outcome();
        if was_empty {
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
            q.rare().close = Some((code, reason.to_owned()));
        }
        wake(q);
    }

    /// Ready when there is something to take: a close request, a cut-off,
    /// a due deadline, the server stopping, an idle check, or frames if
    /// `frames`. Otherwise the task's waker is kept and woken by
    /// the next of these, and, if `through` (the task has nothing of its
    /// own to write), frames pushed meanwhile are written through.
    pub(crate) fn poll_news(&self, cx: &mut Context<'_>, frames: bool, through: bool) -> Poll<()> {
        let mut q = self.lock();
        if q.has_news(frames) || q.idle_check {
            return Poll::Ready(());
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        q.parked = false;
        // No news and frames counted: nothing is queued.
        q.through = match through && frames && q.socket.is_some() {
            true => thread_token(),
            false => 0,
        };
        Poll::Pending
    }

    /// Ends write-through (the task is about to write): returns the bytes
    /// written through since the last collection.
    pub(crate) fn end_through(&self) -> u32 {
        let mut q = self.lock();
        q.through = 0;
        std::mem::take(&mut q.written)
    }

    /// Gives the queue a share of the connection's socket to write
    /// through (a plain TCP connection's, new or resumed).
    pub(crate) fn attach(&self, socket: Arc<TcpStream>) {
        self.lock().socket = Some(socket);
    }

    /// Takes the queue's share of the socket back (the connection parks).
    pub(crate) fn detach(&self) -> Option<Arc<TcpStream>> {
        let mut q = self.lock();
        q.through = 0;
        q.socket.take()
    }

    /// Takes the queued frames alone, leaving the signals.
    pub(crate) fn take_frames(&self) -> Vec<Chunk> {
        let mut q = self.lock();
        q.through = 0;
        if q.frames.is_empty() {
            return Vec::new();
        }
        q.bytes = 0;
        std::mem::take(&mut q.frames)
    }

    /// Takes the signals (close request, cut-off, due deadline, stopping),
    /// and the queued frames if `frames` (the
    /// connection leaves them here while its socket is full).
    pub(crate) fn take(&self, frames: bool) -> Taken {
        let mut q = self.lock();
        q.through = 0;
        let frames = if frames {
            q.bytes = 0;
            std::mem::take(&mut q.frames)
        } else {
            Vec::new()
        };
        Taken {
            frames,
            close: q.rare.as_mut().and_then(|rare| rare.close.take()),
            overflowed: std::mem::take(&mut q.overflowed),
            due: std::mem::take(&mut q.due),
            stopping: std::mem::take(&mut q.stopping),
            idle_check: std::mem::take(&mut q.idle_check),
        }
    }

    /// The connection parks: `waker` resumes it on the next news (the
    /// same news that wakes a waiting task; an idle check it no longer
    /// needs). False, with nothing changed, if there already is news: the
    /// connection carries on instead.
    pub(crate) fn park(&self, waker: Waker) -> bool {
        let mut q = self.lock();
        if q.has_news(true) {
            return false;
        }
        q.idle_check = false;
        q.through = 0;
        q.parked = true;
        q.waker = Some(waker);
        true
    }

    /// Called by the sweep: asks a waiting connection whether it has been
    /// idle (a parked one has, and is left alone).
    pub(crate) fn check_idle(&self) {
        let mut q = self.lock();
        if !q.parked {
            q.idle_check = true;
            wake(q);
        }
    }

    /// Refuses further frames (the connection is ending), and lets go of
    /// the socket, which closes with the task's share.
    pub(crate) fn shut(&self) {
        let mut q = self.lock();
        q.closing = true;
        q.through = 0;
        q.socket = None;
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

/// This thread's token: a number no other thread of the process has, never
/// 0.
fn thread_token() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static TOKEN: Cell<u32> = const { Cell::new(0) };
    }
    TOKEN.with(|token| match token.get() {
        0 => {
            // Wrapping past 4 billion threads would need as many to have
            // been started; 0 is skipped all the same.
            let new = NEXT.fetch_add(1, Ordering::Relaxed).max(1);
            token.set(new);
            new
        }
        known => known,
    })
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
    use switchboard_proto::frame::{DataOp, OpCode, COPY_THRESHOLD};

    use super::*;

    /// A binary frame of `len` bytes on the wire (2 to 125 bytes: a 2-byte
    /// header and the payload).
    fn frame(len: usize) -> SharedFrame {
        SharedFrame::new(OpCode::Data(DataOp::Binary), false, &Bytes::from(vec![0; len - 2]))
    }

    #[test]
    fn frames_queue_until_the_limit_then_the_connection_is_cut_off() {
        let out = Outbound::new(100);
        assert_eq!(out.push(&frame(40)), SendOutcome::Queued);
        assert_eq!(out.push(&frame(40)), SendOutcome::Backpressure);
        assert_eq!(out.push(&frame(40)), SendOutcome::Dropped);
        assert_eq!(out.push(&frame(2)), SendOutcome::Dropped, "nothing after the cut-off");
        let taken = out.take(true);
        assert!(taken.overflowed);
        assert!(taken.frames.is_empty(), "queued frames are released at once");
    }

    #[test]
    fn one_frame_larger_than_the_limit_fits_an_empty_queue() {
        let out = Outbound::new(10);
        assert_eq!(out.push(&frame(100)), SendOutcome::Backpressure);
        assert_eq!(out.push(&frame(2)), SendOutcome::Dropped);
    }

    #[test]
    fn small_frames_are_copied_into_one_buffer_and_large_payloads_shared() {
        let out = Outbound::new(1 << 20);
        let payload = Bytes::from(vec![1; COPY_THRESHOLD + 1]);
        let small = SharedFrame::new(OpCode::Data(DataOp::Text), false, &Bytes::from_static(b"hi"));
        out.push(&small);
        out.push(&frame(10));
        out.push(&SharedFrame::new(OpCode::Data(DataOp::Binary), false, &payload));
        out.push(&small);
        let taken = out.take(true);
        let [Chunk::Copied(first), Chunk::Shared(large), Chunk::Copied(last)] = &taken.frames[..] else {
            panic!("expected copied, shared, copied: {:?}", taken.frames);
        };
        let mut expected = small.to_bytes().to_vec();
        expected.extend_from_slice(&frame(10).to_bytes());
        expected.extend_from_slice(&[0x82, 126, 0x04, 0x01]);
        assert_eq!(&first[..], expected, "two whole frames, then the large frame's header");
        assert_eq!(large.as_ptr(), payload.as_ptr(), "not copied");
        assert_eq!(&last[..], &small.to_bytes()[..]);
    }

    #[test]
    fn a_run_of_frames_is_shared_whatever_its_size() {
        let out = Outbound::new(1 << 20);
        let small = Bytes::from(frame(10).to_bytes().repeat(3));
        out.push(&SharedFrame::run(small.clone()));
        let large = Bytes::from(frame(100).to_bytes().repeat(20));
        out.push(&SharedFrame::run(large.clone()));
        let taken = out.take(true);
        let [Chunk::Shared(first), Chunk::Shared(second)] = &taken.frames[..] else {
            panic!("expected two shared chunks: {:?}", taken.frames);
        };
        assert_eq!((first.as_ptr(), second.as_ptr()), (small.as_ptr(), large.as_ptr()), "no header of their own, nothing copied");
    }

    #[test]
    fn the_shared_part_of_a_connection_fits_a_112_byte_block() {
        // With the Arc's two counters; one per open connection.
        assert!(std::mem::size_of::<Outbound>() <= 96, "Outbound is {} bytes", std::mem::size_of::<Outbound>());
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counted(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counted {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_parked_connection_is_resumed_by_news_and_left_out_of_idle_checks() {
        let out = Outbound::new(1000);
        let resumer = std::sync::Arc::new(Counted::default());
        assert!(out.park(Waker::from(resumer.clone())));
        out.check_idle();
        assert_eq!(resumer.0.load(Ordering::Relaxed), 0, "an idle check does not resume it");
        out.push(&frame(3));
        assert_eq!(resumer.0.load(Ordering::Relaxed), 1, "a frame does");
        assert!(!out.park(Waker::from(resumer.clone())), "no parking while a frame waits");
        assert_eq!(out.take(true).frames.len(), 1);
        assert!(out.park(Waker::from(resumer.clone())));
        out.close(1000, "bye");
        assert_eq!(resumer.0.load(Ordering::Relaxed), 2, "a close request does");
    }

    #[test]
    fn a_close_request_comes_after_the_frames_before_it() {
        let out = Outbound::new(1000);
        out.push(&frame(3));
        out.close(1000, "bye");
        assert_eq!(out.push(&frame(3)), SendOutcome::Dropped);
        let taken = out.take(true);
        assert_eq!(taken.frames.len(), 1);
        assert_eq!(taken.close, Some((1000, "bye".into())));
    }
}
