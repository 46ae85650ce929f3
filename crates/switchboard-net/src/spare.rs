//! One spare read buffer per thread.
//!
//! An idle connection keeps no read buffer, so a busy one would allocate a
//! fresh buffer for every read and free it after. Instead, a connection
//! that has consumed everything it read leaves its buffer here, and the
//! next read on the same thread, by any connection, takes it back. If the
//! messages cut from it have all been dropped by then (an echo's have: the
//! replies are copies), the buffer is reused in place; if some are still
//! held, `reserve` allocates a new one as before, and the held messages keep
//! the old one alive only as long as they live.

use std::cell::Cell;

use bytes::BytesMut;

thread_local! {
    static SPARE: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// A buffer to read into: the thread's spare if there is one, else an
/// empty one (which allocates on its first `reserve`).
pub(crate) fn take() -> BytesMut {
    SPARE.with(Cell::take).unwrap_or_default()
}

/// Leaves an emptied buffer for the thread's next read. One is kept; a
/// second is freed, as is one too large to keep (at most `keep_up_to`
/// bytes of capacity are held per thread).
pub(crate) fn put(mut buf: BytesMut, keep_up_to: usize) {
    if buf.capacity() == 0 || buf.capacity() > keep_up_to {
        return;
    }
    buf.clear();
    // The one already there stays; a second is dropped.
    SPARE.with(|spare| {
        let kept = spare.take();
        spare.set(kept.or(Some(buf)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_buffer_is_taken_back_by_the_next_read_on_the_thread() {
        let mut buf = BytesMut::with_capacity(4096);
        let allocation = buf.as_ptr();
        buf.extend_from_slice(b"a frame");
        let message = buf.split_to(7).freeze();
        let rest = buf.as_ptr();
        put(buf, 8192);
        let mut again = take();
        assert_eq!(again.as_ptr(), rest, "the same buffer came back");
        assert_eq!(take().capacity(), 0, "and only once");
        drop(message);
        // With the message cut from it gone, a read's reserve reuses the
        // whole allocation instead of making a new one.
        again.reserve(4096);
        assert_eq!(again.as_ptr(), allocation);
    }

    #[test]
    fn one_buffer_is_kept_and_large_or_empty_ones_are_not() {
        put(BytesMut::with_capacity(64 * 1024), 32 * 1024);
        assert_eq!(take().capacity(), 0, "too large to keep");
        put(BytesMut::new(), 32 * 1024);
        assert_eq!(take().capacity(), 0, "nothing to keep");
        let first = BytesMut::with_capacity(1024);
        let at = first.as_ptr();
        put(first, 32 * 1024);
        put(BytesMut::with_capacity(2048), 32 * 1024);
        assert_eq!(take().as_ptr(), at, "the first one stays");
        assert_eq!(take().capacity(), 0);
    }
}
