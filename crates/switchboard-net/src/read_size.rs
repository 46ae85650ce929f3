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
    fn what_is_reserved_ahead_of_the_bytes_is_bounded() {
        let huge = 16 << 20;
        assert_eq!(next_read(Some((huge, huge)), CHUNK), MAX_AHEAD_CHUNKS * CHUNK + MAX_HEADER_LEN);
    }
}
