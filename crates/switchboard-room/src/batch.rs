//! A read's messages on their way to the room, and one spare list per
//! thread.
//!
//! A connection gathers the messages of one read ([`ReadBatch`]) and hands
//! them to its room as one event ([`RoomHandle::try_deliver`]). Every
//! connection holds its batch, and an idle connection's holdings are what
//! an idle connection costs, so a batch is one pointer: its list lives in
//! a box that exists only between a read's first message and the moment
//! the list leaves. The box then goes back to the thread, and the room,
//! once it has handled the messages, leaves the emptied list in it, so the
//! next read on the same thread, by any connection, takes both back: a
//! connection that reads one message at a time allocates nothing per read.
//!
//! [`RoomHandle::try_deliver`]: crate::RoomHandle::try_deliver

// The box around the list is the point: one pointer in every connection
// instead of the list's three words.
#![allow(clippy::box_collection)]

use std::cell::Cell;

use switchboard_proto::Message;

/// Lists that grew past this many messages are freed, not kept.
const KEEP_UP_TO: usize = 256;

/// Room for a read's worth of short messages, so that a read's list is not
/// regrown message by message.
const FIRST_CAPACITY: usize = 16;

thread_local! {
    static SPARE: Cell<Option<Box<Vec<Message>>>> = const { Cell::new(None) };
}

/// The messages of a connection's current read, if it has any.
#[derive(Default)]
pub struct ReadBatch(Option<Box<Vec<Message>>>);

impl ReadBatch {
    /// How many messages wait.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Some(list) => list.len(),
            None => 0,
        }
    }

    /// True when none wait.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a message.
    #[inline]
    pub fn push(&mut self, message: Message) {
        match &mut self.0 {
            Some(list) => list.push(message),
            None => self.first(message),
        }
    }

    /// The first message of a read takes the thread's spare box, with the
    /// list in it if the room left one.
    #[inline]
    fn first(&mut self, message: Message) {
        let list = self.0.insert(SPARE.with(Cell::take).unwrap_or_default());
        if list.capacity() < FIRST_CAPACITY {
            list.reserve(FIRST_CAPACITY);
        }
        list.push(message);
    }

    /// The messages, in order, for the room; the box goes back to the
    /// thread.
    pub fn take(&mut self) -> Vec<Message> {
        let Some(mut list) = self.0.take() else { return Vec::new() };
        let messages = std::mem::take(&mut *list);
        SPARE.with(|spare| {
            let kept = spare.take();
            spare.set(kept.or(Some(list)));
        });
        messages
    }
}

/// Leaves a list whose messages were handled for the thread's next read,
/// in the spare box. One is kept; a second is freed, as is a large one.
pub(crate) fn put_batch(mut list: Vec<Message>) {
    if list.capacity() == 0 || list.capacity() > KEEP_UP_TO {
        return;
    }
    list.clear();
    SPARE.with(|spare| {
        let mut kept = spare.take().unwrap_or_default();
        if kept.capacity() == 0 {
            *kept = list;
        }
        spare.set(Some(kept));
    });
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn text(t: &'static str) -> Message {
        Message::Text(Bytes::from_static(t.as_bytes()))
    }

    /// Where the batch's list is, if it has one.
    fn list_at(batch: &ReadBatch) -> Option<*const Message> {
        batch.0.as_ref().map(|list| list.as_ptr())
    }

    #[test]
    fn a_batch_is_one_pointer_and_keeps_its_messages_in_order() {
        assert_eq!(std::mem::size_of::<ReadBatch>(), std::mem::size_of::<usize>());
        let mut batch = ReadBatch::default();
        assert_eq!((batch.len(), batch.take().len()), (0, 0));
        for t in ["a", "b", "c"] {
            batch.push(text(t));
        }
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.take(), [text("a"), text("b"), text("c")]);
        assert!(batch.0.is_none(), "the box went back to the thread");
        assert!(batch.is_empty());
    }

    #[test]
    fn a_handled_list_is_taken_back_by_the_next_read_on_the_thread() {
        SPARE.with(Cell::take);
        let mut batch = ReadBatch::default();
        batch.push(text("hi"));
        let list = batch.take();
        let allocation = list.as_ptr();
        put_batch(list);
        batch.push(text("again"));
        assert_eq!(list_at(&batch), Some(allocation), "the same list came back");
        assert_eq!(batch.len(), 1);
        // Only once: a second read while the first holds it gets its own.
        let mut other = ReadBatch::default();
        other.push(text("other"));
        assert_ne!(list_at(&other), Some(allocation));
    }

    #[test]
    fn a_spare_too_small_or_a_list_too_large_is_not_used() {
        SPARE.with(Cell::take);
        put_batch(Vec::with_capacity(4));
        let mut batch = ReadBatch::default();
        batch.push(text("a"));
        assert!(batch.0.as_ref().is_some_and(|list| list.capacity() >= FIRST_CAPACITY));
        SPARE.with(Cell::take);
        put_batch(Vec::with_capacity(KEEP_UP_TO + 1));
        assert!(SPARE.with(Cell::take).is_none_or(|list| list.capacity() == 0));
    }
}
