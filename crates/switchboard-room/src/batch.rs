//! One spare message list per thread.
//!
//! A connection gathers the messages of one read in a list and hands the
//! list to its room as one event ([`RoomHandle::try_deliver`]). The list
//! leaves the connection with each batch, so that an idle connection holds
//! none; a connection that reads one message at a time would then allocate
//! a list for every read and the room would free it. Instead the room
//! leaves each list it has emptied here, and the next read on the same
//! thread, by any connection, takes it back.
//!
//! [`RoomHandle::try_deliver`]: crate::RoomHandle::try_deliver

use std::cell::Cell;

use switchboard_proto::Message;

/// Lists that grew past this many messages are freed, not kept.
const KEEP_UP_TO: usize = 256;

thread_local! {
    static SPARE: Cell<Vec<Message>> = const { Cell::new(Vec::new()) };
}

/// An empty list with room for at least `capacity` messages: the thread's
/// spare if it has that room, else a new one.
pub fn take_batch(capacity: usize) -> Vec<Message> {
    let spare = SPARE.with(Cell::take);
    if spare.capacity() >= capacity {
        spare
    } else {
        Vec::with_capacity(capacity)
    }
}

/// Leaves a list whose messages were handled for the thread's next read.
/// One is kept; a second is freed, as is a large one.
pub(crate) fn put_batch(mut list: Vec<Message>) {
    if list.capacity() == 0 || list.capacity() > KEEP_UP_TO {
        return;
    }
    list.clear();
    SPARE.with(|spare| {
        let kept = spare.take();
        spare.set(if kept.capacity() > 0 { kept } else { list });
    });
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_handled_list_is_taken_back_by_the_next_read_on_the_thread() {
        drop(take_batch(0));
        let mut list = take_batch(16);
        list.push(Message::Text(Bytes::from_static(b"hi")));
        let allocation = list.as_ptr();
        put_batch(list);
        let again = take_batch(16);
        assert_eq!(again.as_ptr(), allocation, "the same list came back");
        assert!(again.is_empty());
        assert_eq!(take_batch(0).capacity(), 0, "and only once");
    }

    #[test]
    fn a_spare_too_small_or_a_list_too_large_is_not_used() {
        drop(take_batch(0));
        put_batch(Vec::with_capacity(4));
        assert!(take_batch(16).capacity() >= 16);
        put_batch(Vec::with_capacity(KEEP_UP_TO + 1));
        assert_eq!(take_batch(0).capacity(), 0);
    }
}
