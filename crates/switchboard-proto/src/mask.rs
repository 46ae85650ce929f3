//! Masking of frame payloads (RFC 6455 §5.3).
//!
//! Every client-to-server payload byte is XORed with a 4-byte key; the key
//! repeats, so the same routine masks and unmasks. It is the hottest loop of
//! the read path, so it works a block at a time: the key is repeated over a
//! 64-byte block and the payload is processed in such blocks, which the
//! compiler turns into vector instructions, then what is left in 8-byte
//! words. This needs no `unsafe`: `as_chunks_mut` gives the compiler the
//! same aligned-free loads that pointer casts would.

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the payload.
///
/// `offset` lets a caller unmask a payload piece by piece as it arrives: the
/// key byte for payload byte `i` is `key[i % 4]`.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    if buf.len() >= BLOCK {
        mask_blocks(buf, key);
    } else {
        mask_words(buf, key);
    }
}

/// Whole blocks, then the rest in words: a fixed-size block of bytes
/// becomes a few vector XORs with no loop of its own. Not inlined, so that
/// the short payloads of the usual frame keep the lean word loop alone.
#[inline(never)]
fn mask_blocks(buf: &mut [u8], key: u32) {
    let block_key = block_key(key);
    let (blocks, rest) = buf.as_chunks_mut::<BLOCK>();
    for block in blocks {
        for (byte, k) in block.iter_mut().zip(block_key) {
            *byte ^= k;
        }
    }
    mask_words(rest, key);
}

/// Eight bytes at a time, then a 4-byte group, then single bytes; `key`
/// is already in the phase of `buf`'s first byte (see [`rotate`]). The
/// key stays in registers as integers: byte `i` of the little-endian
/// word is the key byte for payload byte `i`.
#[inline]
fn mask_words(buf: &mut [u8], key: u32) {
    let wide = u64::from(key) | u64::from(key) << 32;
    let (words, rest) = buf.as_chunks_mut::<8>();
    for word in words {
        *word = (u64::from_le_bytes(*word) ^ wide).to_le_bytes();
    }
    // Whole words keep the key's phase; what is left is at most one
    // 4-byte group, then at most three single bytes.
    let (groups, bytes) = rest.as_chunks_mut::<4>();
    for group in groups {
        *group = (u32::from_le_bytes(*group) ^ key).to_le_bytes();
    }
    for (byte, k) in bytes.iter_mut().zip(key.to_le_bytes()) {
        *byte ^= k;
    }
}

/// The key repeated over a block, in the phase of the block's first byte.
fn block_key(key: u32) -> [u8; BLOCK] {
    let key = key.to_le_bytes();
    std::array::from_fn(|i| key[i & 3])
}

/// [`apply_mask`] for a text payload: also says whether every unmasked byte
/// is ASCII, which spares the UTF-8 check a second pass over the bytes
/// (most text is ASCII). Reads and writes each byte once.
pub fn apply_mask_ascii(buf: &mut [u8], key: [u8; 4], offset: usize) -> bool {
    let key = rotate(key, offset);
    if buf.len() < BLOCK {
        // The usual short message: no block key or accumulator to set up.
        mask_words(buf, key);
        return buf.is_ascii();
    }
    let wide = block_key(key);
    // Fixed-size blocks of bytes, OR-ed into one accumulator block: the
    // compiler turns each block into a few vector loads, XORs, ORs and
    // stores (a loop of words with a running OR it leaves scalar).
    let mut seen = [0u8; BLOCK];
    let (blocks, rest) = buf.as_chunks_mut::<BLOCK>();
    for block in blocks {
        for i in 0..BLOCK {
            let byte = block[i] ^ wide[i];
            seen[i] |= byte;
            block[i] = byte;
        }
    }
    // A block keeps the key's phase; the tail is short.
    mask_words(rest, key);
    seen.is_ascii() && rest.is_ascii()
}

/// Bytes per step of [`apply_mask_ascii`].
const BLOCK: usize = 64;

/// The simple byte-by-byte form, kept as the reference the fast one is tested
/// (and benchmarked) against.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(i + offset) & 3];
    }
}

/// The key as a little-endian word whose first byte is the key byte for
/// payload byte `offset`: a rotation, where an array of bytes would take a
/// load and a shift per byte.
fn rotate(key: [u8; 4], offset: usize) -> u32 {
    u32::from_le_bytes(key).rotate_right(8 * (offset & 3) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&data, b"Hello");
    }

    #[test]
    fn word_at_a_time_matches_bytewise_for_every_length_and_offset() {
        let key = [0xa1, 0x02, 0xf3, 0x4c];
        let original: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..original.len() {
            for offset in 0..4 {
                let mut fast = original[..len].to_vec();
                let mut slow = original[..len].to_vec();
                apply_mask(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn the_ascii_form_unmasks_alike_and_finds_any_byte_above_ascii() {
        let key = [0xa1, 0x02, 0xf3, 0x4c];
        let text: Vec<u8> = (0..200u32).map(|i| b' ' + (i * 7 % 90) as u8).collect();
        for len in 0..text.len() {
            for offset in 0..4 {
                let mut masked = text[..len].to_vec();
                apply_mask_bytewise(&mut masked, key, offset);
                let mut unmasked = masked.clone();
                assert!(apply_mask_ascii(&mut unmasked, key, offset), "len {len} offset {offset}");
                assert_eq!(unmasked, text[..len], "len {len} offset {offset}");
                // One byte above 0x7f anywhere is seen, in a block or in the tail.
                for at in 0..len {
                    let mut one = text[..len].to_vec();
                    one[at] = 0xc3;
                    apply_mask_bytewise(&mut one, key, offset);
                    assert!(!apply_mask_ascii(&mut one, key, offset), "len {len} offset {offset} at {at}");
                }
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [1, 2, 3, 4];
        let original: Vec<u8> = (0..97u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..original.len() {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split {split}");
        }
    }
}
