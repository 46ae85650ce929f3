//! How much the next read of a connection asks for.
//!
//! Between frames, and inside small ones, a read takes up to `read_chunk`
//! bytes: one system call for many pipelined messages. A frame of at least
//! `read_chunk` bytes is different: its payload rarely ends where a read
//! does, so the read that brings its header fills the buffer with the
//! start of its payload, and the buffer then has to grow, which copies
//! that start (about a whole frame per message when frames and reads are
//! the same size). While such a frame is in progress the read asks for the
//! rest of its payload and no more than the largest header after it: the
//! buffer is sized for it before the read, and the read ends just past
//! the next frame's header, so a following large frame is again read into
//! a buffer sized from its header, with at most a few bytes to move.
//!
//! What is reserved ahead of the bytes is bounded (`MAX_AHEAD_CHUNKS`
//! reads' worth): a peer that announces a huge frame gets a buffer that
//! grows as its bytes arrive, not one of the announced size.
//!
//! Between frames a read takes the room its buffer already has while that
//! is at least half a chunk (`plan`): making room (taking back the space
//! of the messages cut from the front) is a call into `bytes`, and a read
//! of small messages fills a sliver of the buffer. Inside a frame the read
//! gets its whole size, as larger reads cost the kernel less.

use switchboard_proto::frame::MAX_HEADER_LEN;

/// Most bytes one sized read asks for, in read chunks: a frame longer than
/// this arrives in reads of this size, into a buffer that grows with it.
/// One chunk: a peer that announces a huge frame and stalls holds no more
/// than a chunk beyond what it sent.
const MAX_AHEAD_CHUNKS: usize = 1;

/// The most bytes the next read may take, given the frame in progress
/// (bytes still to come, whole payload length; see
/// `Connection::frame_in_progress`); the buffer is to have that much room
/// before the read.
pub(crate) fn next_read(frame: Option<(usize, usize)>, read_chunk: usize) -> usize {
    match frame {
        Some((missing, len)) if len >= read_chunk => missing.min(MAX_AHEAD_CHUNKS * read_chunk) + MAX_HEADER_LEN,
        _ => read_chunk,
    }
}

/// Whether a buffer with `room` bytes free can take a read between
/// frames as it is (see `plan`).
pub(crate) fn has_room(room: usize, read_chunk: usize) -> bool {
    room >= read_chunk / 2
}

/// The next read given the frame in progress and the room its buffer has
/// now: how many bytes it may take, and whether the buffer must first make
/// room for them (`reserve` them).
pub(crate) fn plan(frame: Option<(usize, usize)>, read_chunk: usize, room: usize) -> (usize, bool) {
    if frame.is_none() && has_room(room, read_chunk) {
        (room.min(read_chunk), false)
    } else {
        (next_read(frame, read_chunk), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 16 * 1024;

    #[test]
    fn between_frames_and_inside_small_ones_a_read_takes_a_chunk() {
        assert_eq!(next_read(None, CHUNK), CHUNK);
        assert_eq!(next_read(Some((100, 2000)), CHUNK), CHUNK);
        assert_eq!(next_read(Some((CHUNK - 1, CHUNK - 1)), CHUNK), CHUNK);
    }

    #[test]
    fn inside_a_large_frame_a_read_ends_just_past_the_next_header() {
        assert_eq!(next_read(Some((8, CHUNK)), CHUNK), 8 + MAX_HEADER_LEN);
        assert_eq!(next_read(Some((CHUNK - 6, CHUNK)), CHUNK), CHUNK - 6 + MAX_HEADER_LEN);
    }

    #[test]
    fn between_frames_a_read_takes_the_room_there_is_while_it_is_half_a_chunk() {
        assert_eq!(plan(None, CHUNK, CHUNK - 20), (CHUNK - 20, false));
        assert_eq!(plan(None, CHUNK, 3 * CHUNK), (CHUNK, false));
        assert_eq!(plan(None, CHUNK, CHUNK / 2 - 1), (CHUNK, true));
        assert_eq!(plan(Some((100, 2000)), CHUNK, CHUNK - 20), (CHUNK, true));
        assert_eq!(plan(Some((8, CHUNK)), CHUNK, 0), (8 + MAX_HEADER_LEN, true));
    }

    #[test]
    fn what_is_reserved_ahead_of_the_bytes_is_bounded() {
        let huge = 16 << 20;
        assert_eq!(next_read(Some((huge, huge)), CHUNK), MAX_AHEAD_CHUNKS * CHUNK + MAX_HEADER_LEN);
    }
}
