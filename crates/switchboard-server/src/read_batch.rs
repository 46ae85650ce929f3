//! The messages of one read, on their way to the room as one event.
//!
//! Every connection's handler holds the list of the messages its current
//! read carried until they leave for the room, and an idle connection's
//! handler is what an idle connection costs. So the handler holds one
//! pointer, not a list: the list lives in a box that exists only between a
//! read's first message and the moment the batch leaves, and goes back to
//! the thread then, for the next read on the thread to take (as the
//! list's buffer does, through the room: `switchboard_room::take_batch`).
//! A parked connection keeps neither.

// The box around the list is the point: one pointer in every handler
// instead of the list's three words.
#![allow(clippy::box_collection)]

use std::cell::Cell;

use switchboard_proto::Message;
use switchboard_room::take_batch;

thread_local! {
    static SPARE: Cell<Option<Box<Vec<Message>>>> = const { Cell::new(None) };
}

/// The messages of the current read, if it has any.
#[derive(Default)]
pub(crate) struct ReadBatch(Option<Box<Vec<Message>>>);

impl ReadBatch {
    /// How many messages wait.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Some(list) => list.len(),
            None => 0,
        }
    }

    /// Adds a message.
    #[inline]
    pub(crate) fn push(&mut self, message: Message) {
        match &mut self.0 {
            Some(list) => list.push(message),
            None => self.first(message),
        }
    }

    /// The first message of a read takes the thread's spare box, and a
    /// list sized for a read's worth of short messages, so that a read is
    /// not regrown message by message.
    #[inline]
    fn first(&mut self, message: Message) {
        let list = self.0.insert(SPARE.with(Cell::take).unwrap_or_default());
        if list.capacity() == 0 {
            **list = take_batch(16);
        }
        list.push(message);
    }

    /// The messages, in order; the box goes back to the thread.
    pub(crate) fn take(&mut self) -> Vec<Message> {
        let Some(mut list) = self.0.take() else { return Vec::new() };
        let messages = std::mem::take(&mut *list);
        SPARE.with(|spare| spare.set(Some(list)));
        messages
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_batch_is_one_pointer_and_keeps_its_messages_in_order() {
        assert_eq!(std::mem::size_of::<ReadBatch>(), std::mem::size_of::<usize>());
        let mut batch = ReadBatch::default();
        assert_eq!((batch.len(), batch.take().len()), (0, 0));
        for text in ["a", "b", "c"] {
            batch.push(Message::Text(Bytes::from_static(text.as_bytes())));
        }
        assert_eq!(batch.len(), 3);
        let taken = batch.take();
        assert_eq!(taken, ["a", "b", "c"].map(|t| Message::Text(Bytes::from_static(t.as_bytes()))));
        assert!(batch.0.is_none(), "the box went back to the thread");
        // The next read on the thread takes the same box back.
        let spare = SPARE.with(|spare| {
            let kept = spare.take();
            let at = kept.as_ref().map(|b| &**b as *const Vec<Message>);
            spare.set(kept);
            at
        });
        batch.push(Message::Text(Bytes::from_static(b"d")));
        assert_eq!(batch.0.as_ref().map(|b| &**b as *const Vec<Message>), spare);
        assert_eq!(batch.len(), 1);
    }
}
