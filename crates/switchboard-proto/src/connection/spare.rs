//! One spare write queue per thread.
//!
//! A connection holds its write queue (`Output`: the gathering buffer for
//! small frames and the queue of larger chunks) only while bytes wait for
//! the socket, so an idle connection holds none. A connection that answers
//! one message at a time would then allocate the queue and its buffer for
//! every reply and free both once it is written. Instead an emptied queue
//! is left here, and the next connection on the same thread that queues
//! bytes takes it back, buffer capacity and all.

use std::cell::Cell;

use super::Output;

/// A queue whose buffers grew past this is freed, not kept: a thread holds
/// at most this much for its next writer.
const KEEP_UP_TO: usize = 64 * 1024;

/// Chunks a kept queue may have room for (the usual reply queues none).
const KEEP_CHUNKS_UP_TO: usize = 64;

thread_local! {
    static SPARE: Cell<Option<Box<Output>>> = const { Cell::new(None) };
}

/// An empty write queue: the thread's spare if there is one.
pub(super) fn take() -> Box<Output> {
    SPARE.with(Cell::take).unwrap_or_default()
}

/// Leaves a queue with nothing left to write for the thread's next writer.
/// One is kept; a second is freed, as is one holding large buffers.
pub(super) fn put(mut out: Box<Output>) {
    if out.pending.capacity() > KEEP_UP_TO || out.queue.capacity() > KEEP_CHUNKS_UP_TO {
        return;
    }
    out.queue.clear();
    out.queued_bytes = 0;
    out.pending.clear();
    out.pending_sent = 0;
    out.head_unsent = 0;
    SPARE.with(|spare| {
        let kept = spare.take();
        spare.set(kept.or(Some(out)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_queue_is_taken_back_by_the_next_writer_on_the_thread() {
        // Whatever an earlier test on this thread left.
        drop(take());
        let mut out = take();
        out.pending.extend_from_slice(b"a frame");
        out.pending_sent = 7;
        let buffer = out.pending.as_ptr();
        put(out);
        let again = take();
        assert_eq!(again.pending.as_ptr(), buffer, "the same buffer came back");
        assert!(again.pending.is_empty() && again.pending_sent == 0 && again.queue.is_empty() && again.queued_bytes == 0);
        assert_eq!(take().pending.capacity(), 0, "and only once");
    }

    #[test]
    fn a_queue_with_a_large_buffer_is_not_kept() {
        drop(take());
        let mut out = take();
        out.pending.reserve(KEEP_UP_TO + 1);
        put(out);
        assert_eq!(take().pending.capacity(), 0);
    }
}
