//! The codecs shared by every connection of a thread, for the directions
//! that keep no context between messages (`*_no_context_takeover`).
//!
//! Such a message is compressed or inflated from a fresh state and leaves
//! nothing behind, so one compressor per window size and level, one
//! decompressor and one scratch buffer per thread serve any number of
//! connections: an idle connection holds no zlib state at all.

use std::cell::RefCell;

use bytes::Bytes;

use super::codec::{Compressor, Decompressor, SCRATCH_LEN};
use crate::error::ProtocolError;

#[derive(Default)]
struct Shared {
    /// One per (window bits, level) in use on this thread: a handful at most.
    compressors: Vec<(u8, u32, Compressor)>,
    decompressor: Option<(Decompressor, Box<[u8]>)>,
}

thread_local! {
    static SHARED: RefCell<Shared> = RefCell::new(Shared::default());
}

/// Compresses one message from a fresh state with this thread's compressor
/// for `window_bits` and `level`.
pub(crate) fn compress(window_bits: u8, level: u32, payload: &[u8]) -> Bytes {
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let at = match shared.compressors.iter().position(|(bits, lvl, _)| *bits == window_bits && *lvl == level) {
            Some(at) => at,
            None => {
                shared.compressors.push((window_bits, level, Compressor::with_window(window_bits, level, true)));
                shared.compressors.len() - 1
            }
        };
        shared.compressors[at].2.compress(payload)
    })
}

/// Inflates one message that starts from a fresh state with this thread's
/// decompressor (see the codec: bounded by `max_size` without allocating
/// past it, refused when it stops inside a block).
pub(crate) fn decompress(payload: &[u8], max_size: usize) -> Result<Bytes, ProtocolError> {
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let (decompressor, scratch) = shared.decompressor.get_or_insert_with(|| (Decompressor::with_takeover(true), vec![0; SCRATCH_LEN].into_boxed_slice()));
        decompressor.decompress_with(payload, max_size, scratch)
    })
}
