//! Frame headers (RFC 6455 §5.2): parsing, the per-frame MUSTs, and encoding.
//!
//! Parsing is incremental: `Ok(None)` means the header is not complete yet and
//! nothing was consumed. The rules that depend only on the header itself
//! (reserved opcodes, control frame size and FIN, the 64-bit length's top bit)
//! are checked here; rules that depend on the connection (masking by role,
//! RSV1 and negotiated extensions, continuation order, size limits) are
//! checked by `connection`.
//!
//! Encoding writes a header into a caller's buffer. A server frame is not
//! masked, so one encoded frame (see [`encode_frame`]) can be shared by every
//! recipient of a broadcast.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::mask::apply_mask;

/// Opcodes of data frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOp {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
}

/// Opcodes of control frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOp {
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

/// A frame opcode; reserved values are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// A data frame.
    Data(DataOp),
    /// A control frame (≤125 bytes, never fragmented).
    Control(ControlOp),
}

impl OpCode {
    /// Reads the 4-bit opcode.
    pub fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Data(DataOp::Continuation),
            0x1 => OpCode::Data(DataOp::Text),
            0x2 => OpCode::Data(DataOp::Binary),
            0x8 => OpCode::Control(ControlOp::Close),
            0x9 => OpCode::Control(ControlOp::Ping),
            0xa => OpCode::Control(ControlOp::Pong),
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Data(DataOp::Continuation) => 0x0,
            OpCode::Data(DataOp::Text) => 0x1,
            OpCode::Data(DataOp::Binary) => 0x2,
            OpCode::Control(ControlOp::Close) => 0x8,
            OpCode::Control(ControlOp::Ping) => 0x9,
            OpCode::Control(ControlOp::Pong) => 0xa,
        }
    }
}

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Largest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub rsv1: bool,
    /// RSV2 and RSV3, which no supported extension defines.
    pub rsv23: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on client frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header at the start of `buf`. Returns it and its length in
    /// bytes, or `Ok(None)` when more bytes are needed.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let opcode = OpCode::from_bits(b0 & 0x0f)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let short_len = b1 & 0x7f;
        if let OpCode::Control(_) = opcode {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if short_len as usize > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let len_bytes = match short_len {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(None);
        }
        let payload_len = match len_bytes {
            2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
            8 => {
                let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::PayloadLengthOverflow);
                }
                len
            }
            _ => short_len as u64,
        };
        let mask = masked.then(|| {
            let at = 2 + len_bytes;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        let header = FrameHeader { fin, rsv1: b0 & 0x40 != 0, rsv23: b0 & 0x30 != 0, opcode, mask, payload_len };
        Ok(Some((header, header_len)))
    }

    /// Appends the encoded header to `dst` (a `BytesMut`, a `Vec<u8>`),
    /// using the shortest length form.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let mut header = [0; MAX_HEADER_LEN];
        let len = self.encode_into(&mut header);
        dst.put_slice(&header[..len]);
    }

    /// Writes the encoded header at the start of `dst` and returns its
    /// length in bytes (2 to 14).
    pub fn encode_into(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let mut b0 = first_byte(self.fin, self.rsv1, self.opcode);
        if self.rsv23 {
            b0 |= 0x30;
        }
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        dst[0] = b0;
        let mut len = match self.payload_len {
            short @ 0..=125 => {
                dst[1] = mask_bit | short as u8;
                2
            }
            medium @ 126..=0xffff => {
                dst[1] = mask_bit | 126;
                dst[2..4].copy_from_slice(&(medium as u16).to_be_bytes());
                4
            }
            long => {
                dst[1] = mask_bit | 127;
                dst[2..10].copy_from_slice(&long.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            dst[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }
}

/// Encodes a whole unmasked (server) frame: one `Bytes` that can be written to
/// any number of connections.
pub fn encode_frame(opcode: OpCode, rsv1: bool, payload: &[u8]) -> Bytes {
    let mut dst = BytesMut::with_capacity(MAX_HEADER_LEN + payload.len());
    server_header(opcode, rsv1, payload.len()).encode(&mut dst);
    dst.put_slice(payload);
    dst.freeze()
}

/// Appends a whole unmasked (server) frame to `dst`, a buffer of small
/// frames that leave together.
pub fn append_frame(opcode: OpCode, rsv1: bool, payload: &[u8], dst: &mut Vec<u8>) {
    if payload.len() <= 125 {
        // The usual short frame: its two header bytes are known at once,
        // without a `FrameHeader` to encode.
        dst.reserve(2 + payload.len());
        dst.extend_from_slice(&[first_byte(true, rsv1, opcode), payload.len() as u8]);
        dst.extend_from_slice(payload);
        return;
    }
    let mut header = [0; MAX_HEADER_LEN];
    let header_len = server_header(opcode, rsv1, payload.len()).encode_into(&mut header);
    append_parts(&header, header_len, payload, dst);
}

/// A header's first byte: FIN, RSV1 and the opcode (RSV2 and RSV3 clear).
fn first_byte(fin: bool, rsv1: bool, opcode: OpCode) -> u8 {
    u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode.bits()
}

/// Appends a header (the first `header_len` bytes of `header`) and a payload.
fn append_parts(header: &[u8; MAX_HEADER_LEN], header_len: usize, payload: &[u8], dst: &mut Vec<u8>) {
    dst.reserve(MAX_HEADER_LEN + payload.len());
    let at = dst.len();
    // The whole header array, then cut to its length: a fixed-size copy is
    // two moves, where a copy of the exact length calls `memcpy`.
    dst.extend_from_slice(header);
    dst.truncate(at + header_len);
    dst.extend_from_slice(payload);
}

/// The header of a whole unmasked frame of `len` payload bytes.
fn server_header(opcode: OpCode, rsv1: bool, len: usize) -> FrameHeader {
    FrameHeader { fin: true, rsv1, rsv23: false, opcode, mask: None, payload_len: len as u64 }
}

/// Payloads up to this size are copied next to their header so that small
/// frames coalesce into one buffer; larger ones are queued as their own
/// `Bytes` and written with the header in one vectored write, without a copy.
pub const COPY_THRESHOLD: usize = 1024;

/// A whole unmasked (server) frame made once and queued for any number of
/// connections: its header, kept inline, and the sender's payload, shared.
/// Making one allocates nothing and copies no payload; a queue it is
/// pushed on copies a payload of up to [`COPY_THRESHOLD`] bytes next to
/// the other small frames it holds (for one recipient a copy is cheaper
/// than a buffer of its own, and no small message then keeps a sender's
/// whole read buffer alive) and shares a larger one, so relaying a 16 KiB
/// message copies nothing. A small frame for many recipients is better
/// encoded once as a [`SharedFrame::run`], which every queue shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFrame {
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    payload: Bytes,
}

impl SharedFrame {
    /// The frame for `payload` (FIN set, unmasked).
    pub fn new(opcode: OpCode, rsv1: bool, payload: &Bytes) -> SharedFrame {
        let mut header = [0; MAX_HEADER_LEN];
        let header_len = server_header(opcode, rsv1, payload.len()).encode_into(&mut header) as u8;
        SharedFrame { header, header_len, payload: payload.clone() }
    }

    /// A run of whole unmasked frames already encoded back to back (small
    /// broadcasts gathered over a batch, say), queued as one buffer shared
    /// by every recipient: it has no header of its own, and
    /// [`SharedFrame::payload`] is the frames.
    pub fn run(frames: Bytes) -> SharedFrame {
        SharedFrame { header: [0; MAX_HEADER_LEN], header_len: 0, payload: frames }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// Always false: a frame has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The encoded header.
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The payload, as the sender's buffer.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// True for a payload of up to [`COPY_THRESHOLD`] bytes.
    pub fn is_small(&self) -> bool {
        self.payload.len() <= COPY_THRESHOLD
    }

    /// True when a queue should copy the frame rather than share its
    /// payload: a small single frame. A run is always shared: it is an
    /// exact buffer of its own (no sender's read buffer kept alive), and a
    /// copy per recipient would cost each one an allocation.
    pub fn copy_when_queued(&self) -> bool {
        self.header_len > 0 && self.is_small()
    }

    /// The payload of each frame: one, or those of a run (for recording
    /// sinks in tests and tools; the queues never take a frame apart).
    pub fn payloads(&self) -> Vec<Bytes> {
        if self.header_len > 0 {
            return vec![self.payload.clone()];
        }
        let mut payloads = Vec::new();
        let mut rest = self.payload.clone();
        while let Ok(Some((header, len))) = FrameHeader::parse(&rest) {
            let end = len + header.payload_len as usize;
            payloads.push(rest.slice(len..end));
            rest = rest.slice(end..);
        }
        payloads
    }

    /// Appends the frame's bytes (or the run's) to `dst`.
    pub fn append_to(&self, dst: &mut Vec<u8>) {
        append_parts(&self.header, usize::from(self.header_len), &self.payload, dst);
    }

    /// The frame as one buffer (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut whole = Vec::new();
        self.append_to(&mut whole);
        Bytes::from(whole)
    }
}

/// Encodes a whole masked (client) frame with `key`.
pub fn encode_masked_frame(opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8], key: [u8; 4], dst: &mut BytesMut) {
    let header = FrameHeader { fin, rsv1, rsv23: false, opcode, mask: Some(key), payload_len: payload.len() as u64 };
    header.encode(dst);
    let start = dst.len();
    dst.put_slice(payload);
    apply_mask(&mut dst[start..], key, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::parse(bytes)
    }

    #[test]
    fn appended_frames_are_the_encoded_frames_for_every_length_form() {
        for len in [0, 1, 125, 126, 0xffff, 0x10000] {
            let payload = vec![9u8; len];
            for (opcode, rsv1) in [(OpCode::Data(DataOp::Text), false), (OpCode::Data(DataOp::Binary), true), (OpCode::Control(ControlOp::Pong), false)] {
                let mut dst = b"before".to_vec();
                append_frame(opcode, rsv1, &payload, &mut dst);
                assert_eq!(dst[6..], encode_frame(opcode, rsv1, &payload)[..], "len {len} {opcode:?} rsv1 {rsv1}");
                assert_eq!(&dst[..6], b"before");
            }
        }
    }

    #[test]
    fn a_shared_frame_keeps_its_header_inline_and_shares_the_payload() {
        let small = Bytes::from_static(b"hi");
        let frame = SharedFrame::new(OpCode::Data(DataOp::Text), false, &small);
        assert!(frame.is_small());
        assert_eq!(frame.header(), [0x81, 2]);
        assert_eq!(frame.to_bytes(), encode_frame(OpCode::Data(DataOp::Text), false, &small));

        let large = Bytes::from(vec![7u8; COPY_THRESHOLD + 1]);
        let frame = SharedFrame::new(OpCode::Data(DataOp::Binary), false, &large);
        assert!(!frame.is_small());
        assert_eq!(frame.payload().as_ptr(), large.as_ptr(), "the payload is the sender's buffer, not a copy");
        assert_eq!(frame.len(), 4 + large.len());
        assert_eq!(frame.to_bytes(), encode_frame(OpCode::Data(DataOp::Binary), false, &large));

        let mut frames = encode_frame(OpCode::Data(DataOp::Text), false, b"one").to_vec();
        frames.extend_from_slice(&encode_frame(OpCode::Data(DataOp::Binary), false, &large));
        let run = SharedFrame::run(Bytes::from(frames.clone()));
        assert!(!run.copy_when_queued() && !SharedFrame::run(Bytes::from_static(b"\x81\x00")).copy_when_queued());
        assert!(SharedFrame::new(OpCode::Data(DataOp::Text), false, &small).copy_when_queued());
        assert_eq!((run.header(), run.len(), run.to_bytes()), (&[][..], frames.len(), Bytes::from(frames)));
        assert_eq!(run.payloads(), [Bytes::from_static(b"one"), large.clone()]);
        assert_eq!(frame.payloads(), std::slice::from_ref(&large));

        let huge = Bytes::from(vec![0u8; 70_000]);
        assert_eq!(SharedFrame::new(OpCode::Data(DataOp::Binary), true, &huge).header(), [0xc2, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn every_header_form_encodes_as_it_parses() {
        for payload_len in [0, 125, 126, 0xffff, 0x1_0000, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = FrameHeader { fin: true, rsv1: false, rsv23: false, opcode: OpCode::Data(DataOp::Binary), mask, payload_len };
                let mut wire = BytesMut::new();
                header.encode(&mut wire);
                assert_eq!(parse(&wire).unwrap(), Some((header, wire.len())), "{payload_len} {mask:?}");
            }
        }
    }

    #[test]
    fn rfc_examples_parse() {
        // RFC 6455 §5.7: unmasked "Hello", masked "Hello", unmasked ping "Hello".
        let (h, n) = parse(&[0x81, 0x05, 0x48, 0x65]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.mask, h.payload_len, n), (true, OpCode::Data(DataOp::Text), None, 5, 2));
        let (h, n) = parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f]).unwrap().unwrap();
        assert_eq!((h.mask, h.payload_len, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 5, 6));
        let (h, _) = parse(&[0x89, 0x05]).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Control(ControlOp::Ping));
        // 256 bytes binary in one unmasked frame, 64 KiB in one unmasked frame.
        let (h, n) = parse(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let (h, n) = parse(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn every_prefix_of_a_header_needs_more_bytes() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for end in 0..full.len() {
            assert_eq!(parse(&full[..end]), Ok(None), "prefix {end}");
        }
        assert_eq!(parse(&full).unwrap().unwrap().1, 14);
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(parse(&[0x80 | op, 0x80]), Err(ProtocolError::ReservedOpcode(op)));
        }
    }

    #[test]
    fn control_frames_must_not_be_fragmented() {
        assert_eq!(parse(&[0x09, 0x80]), Err(ProtocolError::FragmentedControlFrame));
    }

    #[test]
    fn control_frames_must_not_exceed_125_bytes() {
        assert_eq!(parse(&[0x89, 0xfe, 0x00, 0x7e]), Err(ProtocolError::ControlFrameTooLong));
        assert!(parse(&[0x89, 0xfd]).unwrap().is_none());
    }

    #[test]
    fn a_64_bit_length_must_have_its_top_bit_clear() {
        let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse(&bytes), Err(ProtocolError::PayloadLengthOverflow));
    }

    #[test]
    fn encoding_uses_the_shortest_length_and_round_trips() {
        for (len, header_len) in [(0u64, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = FrameHeader { fin: true, rsv1: false, rsv23: false, opcode: OpCode::Data(DataOp::Binary), mask, payload_len: len };
                let mut buf = BytesMut::new();
                h.encode(&mut buf);
                let extra = if mask.is_some() { 4 } else { 0 };
                assert_eq!(buf.len(), header_len + extra);
                assert_eq!(parse(&buf).unwrap().unwrap(), (h, header_len + extra));
            }
        }
    }

    #[test]
    fn encode_frame_matches_the_rfc_bytes() {
        assert_eq!(&encode_frame(OpCode::Data(DataOp::Text), false, b"Hello")[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut dst = BytesMut::new();
        encode_masked_frame(OpCode::Data(DataOp::Text), true, false, b"Hello", [0x37, 0xfa, 0x21, 0x3d], &mut dst);
        assert_eq!(&dst[..], &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
