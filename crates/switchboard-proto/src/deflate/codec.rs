//! The per-message codec: one whole message compressed or inflated at a time.
//!
//! A message is compressed with a sync flush whose trailing `00 00 ff ff` is
//! stripped (RFC 7692 §7.2.1); inflation appends it back.
//!
//! Inflating from a fresh state (the peer keeps no context between messages)
//! is done in two passes when the message is larger than a scratch buffer:
//! the first only counts the output, in that small buffer, so a message that
//! would inflate past the limit is refused without allocating anything for
//! it, and the second inflates into a buffer of exactly the right size. A
//! fresh state also lets the end of the message be checked: after the tail,
//! a final empty block must end the stream at once, which it does only when
//! the message stopped at a block boundary. A message that stops partway
//! through a block is refused instead of leaving the inflater mid-block.
//!
//! Window sizes: inflation uses a 32 KiB (15-bit) window, which decodes a
//! stream made with any smaller window. Compression honours the agreed
//! window of our side. zlib cannot make raw-deflate streams with an 8-bit
//! window, so when a peer limits us to 8 bits we emit stored (uncompressed)
//! deflate blocks, which contain no back-references and are therefore valid
//! for every window size.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::DeflateConfig;
use crate::config::Role;
use crate::error::ProtocolError;

/// What a sync flush ends with; stripped from every compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// A final, empty block with fixed codes: BFINAL 1, BTYPE 01, end-of-block.
/// Fed after the tail, it ends the stream at once only at a block boundary.
const END_PROBE: [u8; 2] = [0x03, 0x00];
/// Output room of the first inflation pass. Messages that fit are inflated
/// once and copied out; larger ones are counted here, then inflated again
/// into a buffer of their exact size.
pub(crate) const SCRATCH_LEN: usize = 16 * 1024;

/// Compresses the messages of one side.
pub struct Compressor {
    stream: Compress,
    no_context_takeover: bool,
}

impl Compressor {
    /// The compressor of `role`'s own messages under `config`, with its own
    /// state (a connection's codecs choose between this and the thread's
    /// shared one: see `message`).
    pub fn new(config: &DeflateConfig, role: Role, level: u32) -> Compressor {
        match role {
            Role::Server => Compressor::with_window(config.server_max_window_bits, level, config.server_no_context_takeover),
            Role::Client => Compressor::with_window(config.client_max_window_bits, level, config.client_no_context_takeover),
        }
    }

    /// A compressor with a `window_bits` window (8-15) at `level` (0-9).
    /// `no_context_takeover`: every message is compressed from a fresh state.
    pub fn with_window(window_bits: u8, level: u32, no_context_takeover: bool) -> Compressor {
        // See the module docs: 8-bit windows get stored blocks only.
        let (bits, level) = if window_bits < 9 { (9, 0) } else { (window_bits.min(15), level.min(9)) };
        Compressor { stream: Compress::new_with_window_bits(Compression::new(level), false, bits), no_context_takeover }
    }

    /// Compresses one whole message payload (without the trailing `00 00 ff ff`).
    pub fn compress(&mut self, payload: &[u8]) -> Bytes {
        if payload.is_empty() {
            // RFC 7692 §7.2.3.6: one 0x00 byte (an empty stored block once the
            // tail is appended). zlib itself emits nothing for a sync flush
            // without input right after another one, and an empty payload
            // would leave the peer's inflater inside a stored block header.
            return Bytes::from_static(&[0x00]);
        }
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let start = self.stream.total_in();
        loop {
            let consumed = (self.stream.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            self.stream.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync).expect("deflate never fails on valid state");
            let consumed = (self.stream.total_in() - start) as usize;
            // The sync flush is complete once all input is taken and zlib
            // stopped with output space to spare.
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            self.stream.reset();
        }
        Bytes::from(out)
    }
}

/// Inflates the messages of one peer.
pub struct Decompressor {
    stream: Decompress,
    /// The peer starts every message from a fresh state.
    no_context_takeover: bool,
}

impl Decompressor {
    /// The decompressor of messages from `role`'s peer under `config`.
    pub fn new(config: &DeflateConfig, role: Role) -> Decompressor {
        Decompressor::with_takeover(match role {
            Role::Server => config.client_no_context_takeover,
            Role::Client => config.server_no_context_takeover,
        })
    }

    /// A decompressor; `no_context_takeover`: the peer compresses every
    /// message from a fresh state (then each message is checked to end at
    /// a block boundary, and inflated within the limit without allocating
    /// past it).
    pub fn with_takeover(no_context_takeover: bool) -> Decompressor {
        Decompressor { stream: Decompress::new_with_window_bits(false, 15), no_context_takeover }
    }

    /// Inflates one whole message payload, failing with `MessageTooBig` as
    /// soon as the output would pass `max_size`.
    pub fn decompress(&mut self, payload: &[u8], max_size: usize) -> Result<Bytes, ProtocolError> {
        let mut scratch = [0u8; SCRATCH_LEN];
        self.decompress_with(payload, max_size, &mut scratch)
    }

    /// [`Decompressor::decompress`] with a caller's scratch buffer (kept
    /// per thread by the shared codecs).
    pub(crate) fn decompress_with(&mut self, payload: &[u8], max_size: usize, scratch: &mut [u8]) -> Result<Bytes, ProtocolError> {
        if payload.is_empty() {
            // Some peers send an empty compressed payload for an empty
            // message; the tail alone would open a stored block, not close one.
            return Ok(Bytes::new());
        }
        if !self.no_context_takeover {
            let result = self.inflate_growing(payload, max_size);
            if result.is_err() {
                self.stream.reset(false);
            }
            return result;
        }
        let result = self.inflate_fresh(payload, max_size, scratch);
        self.stream.reset(false);
        result
    }

    /// Inflates a message that starts from a fresh state: see the module docs.
    fn inflate_fresh(&mut self, payload: &[u8], max_size: usize, scratch: &mut [u8]) -> Result<Bytes, ProtocolError> {
        let room = scratch.len();
        let (mut small, mut fits) = (Vec::new(), true);
        let len = self.pass(payload, max_size, scratch, |chunk| {
            if fits && small.len() + chunk.len() <= room {
                small.extend_from_slice(chunk);
            } else if fits {
                fits = false;
                small = Vec::new();
            }
        })?;
        if fits {
            return Ok(Bytes::from(small));
        }
        // Larger than the scratch: known to fit, inflated again into its exact size.
        self.stream.reset(false);
        let mut out = Vec::with_capacity(len);
        let again = self.pass(payload, max_size, scratch, |chunk| out.extend_from_slice(chunk))?;
        debug_assert_eq!(again, len);
        Ok(Bytes::from(out))
    }

    /// One inflation of `payload`, the tail and the end probe through
    /// `scratch`, each filled part handed to `sink`. Returns the length.
    fn pass(&mut self, payload: &[u8], max_size: usize, scratch: &mut [u8], mut sink: impl FnMut(&[u8])) -> Result<usize, ProtocolError> {
        let mut total = 0;
        let mut ended = false;
        for (part, input) in [payload, &TAIL[..], &END_PROBE[..]].into_iter().enumerate() {
            if ended {
                break;
            }
            let start = self.stream.total_in();
            loop {
                let consumed = (self.stream.total_in() - start) as usize;
                let before = self.stream.total_out();
                let status = self.stream.decompress(&input[consumed..], scratch, FlushDecompress::Sync).map_err(|_| ProtocolError::BadCompressedData)?;
                let produced = (self.stream.total_out() - before) as usize;
                let consumed_now = (self.stream.total_in() - start) as usize;
                if part == 2 && produced > 0 {
                    // The probe's bytes became message data: the message
                    // stopped partway through a block.
                    return Err(ProtocolError::BadCompressedData);
                }
                total += produced;
                if total > max_size {
                    return Err(ProtocolError::MessageTooBig);
                }
                if produced > 0 {
                    sink(&scratch[..produced]);
                }
                if status == Status::StreamEnd {
                    // A final block ends the message (the message's own, or the probe's).
                    ended = true;
                    break;
                }
                if consumed_now == input.len() && produced < scratch.len() {
                    break;
                }
                if consumed_now == consumed && produced == 0 {
                    return Err(ProtocolError::BadCompressedData);
                }
            }
        }
        if !ended {
            // The probe did not end the stream: the message stopped inside a block.
            return Err(ProtocolError::BadCompressedData);
        }
        Ok(total)
    }

    /// Inflates a message that may refer to earlier ones (the peer keeps its
    /// context), into a buffer grown up to the limit.
    fn inflate_growing(&mut self, payload: &[u8], max_size: usize) -> Result<Bytes, ProtocolError> {
        let limit = max_size.saturating_add(1);
        let mut out = Vec::with_capacity(payload.len().saturating_mul(3).saturating_add(256).min(limit));
        let ended = self.inflate_into(payload, &mut out, limit)?;
        if !ended {
            self.inflate_into(&TAIL, &mut out, limit)?;
        }
        if out.len() > max_size {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(Bytes::from(out))
    }

    /// Feeds `input`; returns true if the deflate stream ended (a final block).
    fn inflate_into(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<bool, ProtocolError> {
        let start = self.stream.total_in();
        loop {
            let consumed = (self.stream.total_in() - start) as usize;
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(ProtocolError::MessageTooBig);
                }
                let grow = out.capacity().max(256).min(limit - out.len());
                out.reserve_exact(grow);
            }
            let before = out.len();
            let status = self.stream.decompress_vec(&input[consumed..], out, FlushDecompress::Sync).map_err(|_| ProtocolError::BadCompressedData)?;
            let consumed_now = (self.stream.total_in() - start) as usize;
            match status {
                Status::StreamEnd => {
                    // A final block ends this stream; the next message starts a new one.
                    self.stream.reset(false);
                    return Ok(true);
                }
                Status::Ok | Status::BufError => {
                    let progressed = consumed_now > consumed || out.len() > before;
                    if consumed_now == input.len() && out.len() < out.capacity() {
                        return Ok(false);
                    }
                    if !progressed && out.len() < out.capacity() {
                        return Err(ProtocolError::BadCompressedData);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides keep their context, 15-bit windows.
    fn takeover() -> DeflateConfig {
        DeflateConfig { server_no_context_takeover: false, client_no_context_takeover: false, server_max_window_bits: 15, client_max_window_bits: 15 }
    }

    fn fresh() -> DeflateConfig {
        DeflateConfig { server_no_context_takeover: true, client_no_context_takeover: true, ..takeover() }
    }

    #[test]
    fn rfc7692_hello_vectors_inflate() {
        let mut d = Decompressor::new(&takeover(), Role::Client);
        // §7.2.3.1 a message compressed in one block
        assert_eq!(&d.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap()[..], b"Hello");
        // §7.2.3.2 the same again, referring back to the first (context takeover)
        assert_eq!(&d.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap()[..], b"Hello");
        // §7.2.3.3 a stored (uncompressed) block
        let mut d = Decompressor::new(&takeover(), Role::Client);
        assert_eq!(&d.decompress(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 100).unwrap()[..], b"Hello");
        // §7.2.3.5 two deflate blocks in one message
        let mut d = Decompressor::new(&takeover(), Role::Client);
        let two_blocks = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(&d.decompress(&two_blocks, 100).unwrap()[..], b"Hello");
        // §7.2.3.4 a final (BFINAL) block
        let mut d = Decompressor::new(&takeover(), Role::Client);
        assert_eq!(&d.decompress(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], 100).unwrap()[..], b"Hello");
    }

    #[test]
    fn compressing_hello_twice_uses_the_shared_context() {
        let mut c = Compressor::new(&takeover(), Role::Server, 6);
        assert_eq!(&c.compress(b"Hello")[..], &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let second = c.compress(b"Hello");
        assert!(second.len() < 7, "the second Hello refers back to the first: {second:x?}");
    }

    #[test]
    fn an_empty_message_compresses_to_one_zero_byte_and_back() {
        let mut c = Compressor::new(&takeover(), Role::Server, 1);
        assert_eq!(&c.compress(b"")[..], &[0x00]);
        let mut d = Decompressor::new(&takeover(), Role::Client);
        assert_eq!(d.decompress(&[0x00], 10).unwrap().len(), 0);
    }

    #[test]
    fn round_trips_for_every_window_and_takeover_setting() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| format!("{{\"n\":{},\"t\":\"msg\"}}", i % 97).into_bytes()).collect();
        for bits in 8..=15u8 {
            for nct in [false, true] {
                let config = DeflateConfig {
                    server_no_context_takeover: nct,
                    client_no_context_takeover: nct,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                for role in [Role::Server, Role::Client] {
                    let peer = if role == Role::Server { Role::Client } else { Role::Server };
                    let mut c = Compressor::new(&config, role, 6);
                    let mut d = Decompressor::new(&config, peer);
                    for chunk in [&text[..10], &text[..], b"", &text[100..5000]] {
                        let compressed = c.compress(chunk);
                        let back = d.decompress(&compressed, 1 << 24).unwrap();
                        let diff = back.iter().zip(chunk).position(|(a, b)| a != b);
                        assert!(
                            back.len() == chunk.len() && diff.is_none(),
                            "bits {bits} nct {nct} {role:?}: {} -> {} bytes, first difference at {diff:?}",
                            chunk.len(),
                            back.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_8_bit_window_emits_no_back_references() {
        // Stored blocks: the output holds the input bytes verbatim.
        let config = DeflateConfig { server_max_window_bits: 8, ..takeover() };
        let mut c = Compressor::new(&config, Role::Server, 9);
        let data = b"abcabcabcabcabcabcabcabcabcabc".repeat(20);
        let out = c.compress(&data);
        assert!(out.len() > data.len());
        assert!(out.windows(data.len()).any(|w| w == &data[..]));
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_cap() {
        let mut c = Compressor::new(&takeover(), Role::Client, 9);
        let bomb = c.compress(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 16 * 1024);
        let mut d = Decompressor::new(&takeover(), Role::Server);
        assert_eq!(d.decompress(&bomb, 1 << 20), Err(ProtocolError::MessageTooBig));
    }

    #[test]
    fn corrupt_data_is_rejected() {
        let mut d = Decompressor::new(&takeover(), Role::Server);
        assert_eq!(d.decompress(&[0xff, 0xff, 0xff, 0xff], 100), Err(ProtocolError::BadCompressedData));
    }

    #[test]
    fn a_bomb_from_a_fresh_state_is_refused_before_any_output_is_kept() {
        let mut c = Compressor::new(&fresh(), Role::Client, 9);
        let bomb = c.compress(&vec![0u8; 8 << 20]);
        let mut d = Decompressor::new(&fresh(), Role::Server);
        assert_eq!(d.decompress(&bomb, 1 << 20), Err(ProtocolError::MessageTooBig));
        // One byte under the cap's worth fits, in a buffer of exactly its size.
        let fits = c.compress(&vec![7u8; 1 << 20]);
        let out = d.decompress(&fits, 1 << 20).unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert!(out.iter().all(|&b| b == 7));
    }

    #[test]
    fn messages_on_both_sides_of_the_scratch_size_inflate_whole() {
        let mut c = Compressor::new(&fresh(), Role::Client, 1);
        let mut d = Decompressor::new(&fresh(), Role::Server);
        for len in [1, 100, SCRATCH_LEN - 1, SCRATCH_LEN, SCRATCH_LEN + 1, 3 * SCRATCH_LEN + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(&d.decompress(&c.compress(&data), 1 << 20).unwrap()[..], &data[..], "{len} bytes");
        }
    }

    #[test]
    fn a_payload_cut_inside_a_deflate_block_is_refused_and_the_next_message_is_whole() {
        let mut c = Compressor::new(&fresh(), Role::Client, 6);
        let text = b"the quick brown fox jumps over the lazy dog, again and again and again".repeat(20);
        let whole = c.compress(&text);
        let stored = Compressor::with_window(8, 0, true).compress(&text);
        let mut d = Decompressor::new(&fresh(), Role::Server);
        for (name, payload) in [("huffman", &whole), ("stored", &stored)] {
            // Stored blocks: cuts inside the first block's data (its first
            // byte alone is the empty message, RFC 7692 §7.2.3.6, and a cut
            // just after a block's first byte is a valid shorter message).
            let cuts = if name == "stored" { 2..700 } else { 1..payload.len() };
            for cut in cuts {
                let result = d.decompress(&payload[..cut], 1 << 20);
                assert!(result.is_err(), "{name}: cut at {cut} of {} inflated to {:?}", payload.len(), result.map(|b| b.len()));
                assert_eq!(&d.decompress(payload, 1 << 20).unwrap()[..], &text[..], "{name}: the message after a cut at {cut}");
            }
        }
    }

    #[test]
    fn a_message_ended_by_a_final_block_is_accepted() {
        // RFC 7692 §7.2.3.4: BFINAL set, no sync flush.
        let mut d = Decompressor::new(&fresh(), Role::Server);
        assert_eq!(&d.decompress(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], 100).unwrap()[..], b"Hello");
        assert_eq!(&d.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap()[..], b"Hello");
    }
}
