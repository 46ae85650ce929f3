//! One WebSocket connection after the handshake: the sans-IO state machine.
//!
//! The caller owns the socket. It appends what it reads to a `BytesMut` and
//! calls [`Connection::handle_read`] until it returns `Ok(None)`; each call
//! yields at most one [`Event`]. Whatever must go on the wire (messages the
//! caller sends, the automatic pong, the close echo, the close frame of a
//! protocol error) is queued inside the connection and taken with
//! [`Connection::transmit_chunks`] / [`Connection::advance`], so many frames
//! leave in one vectored write.
//!
//! What this module owns: message assembly from fragments with control frames
//! interleaved, UTF-8 validation of text as it arrives, permessage-deflate per
//! message, the per-connection MUSTs (masking by role, RSV bits, continuation
//! order), the size limits, and the closing handshake state. It does not own
//! timers: the caller decides how long to wait for a close reply or a pong.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::{Config, Role};
use crate::deflate::{DeflateParams, Incoming, Outgoing};
use crate::error::ProtocolError;
use crate::frame::{append_frame, ControlOp, DataOp, FrameHeader, OpCode, COPY_THRESHOLD, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::{apply_mask, apply_mask_ascii};
use crate::utf8::Utf8Validator;

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message. The bytes were validated as UTF-8 on receipt.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message from a string.
    pub fn text(s: impl Into<String>) -> Message {
        Message::Text(Bytes::from(s.into()))
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Message {
        Message::Binary(b.into())
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        match self {
            Message::Text(b) | Message::Binary(b) => b,
        }
    }

    /// The text, for a text message. (Validated on receipt; this re-checks
    /// cheaply rather than trusting an invariant with `unsafe`.)
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(b) => simdutf8::basic::from_utf8(b).ok(),
            Message::Binary(_) => None,
        }
    }

    fn opcode(&self) -> DataOp {
        match self {
            Message::Text(_) => DataOp::Text,
            Message::Binary(_) => DataOp::Binary,
        }
    }
}

/// What the peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete message.
    Message(Message),
    /// A ping; the pong is already queued.
    Ping(Bytes),
    /// A pong (solicited or not).
    Pong(Bytes),
    /// The peer's close frame. If we had not closed yet the connection is now
    /// [`State::CloseReceived`]: the caller may still send what it must (RFC
    /// 6455 §5.5.1 lets an endpoint finish its message first), then calls
    /// [`Connection::reply_close`] to echo the close.
    Close(CloseFrame),
}

/// Where the closing handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Our close frame is due: the peer sent its close, or broke the
    /// protocol. Input is ignored; sending is still allowed, so replies to
    /// earlier messages can go first; [`Connection::reply_close`] then sends
    /// the close frame (the peer's code echoed, or the error's code).
    CloseReceived,
    /// Both close frames were exchanged, or the connection failed: flush what
    /// is queued, then close the TCP connection.
    Closed,
}

/// Sending after our close frame went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionClosed;

impl std::fmt::Display for ConnectionClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection is closing")
    }
}

impl std::error::Error for ConnectionClosed {}

/// Source of client masking keys. Clients must use unpredictable keys
/// (RFC 6455 §5.3); this crate has no randomness, so the caller provides it.
pub type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// A message being reassembled from fragments.
struct Partial {
    opcode: DataOp,
    compressed: bool,
    data: BytesMut,
}

/// The frame whose header was read and whose payload is still arriving.
struct InFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes already unmasked (and, for text, validated).
    scanned: usize,
    /// Whether this frame's payload is UTF-8 to validate as it arrives.
    validate: bool,
}

/// The permessage-deflate codecs of a connection that negotiated it (each
/// a few bytes until a direction that keeps its context needs zlib state).
struct Deflate {
    /// Compresses what the engine sends; `None` once the caller took it
    /// (see [`Connection::split_outgoing_deflate`]).
    outgoing: Option<Outgoing>,
    incoming: Incoming,
}

/// What `reply_close` sends.
#[derive(Debug, Clone, Copy)]
enum CloseReply {
    /// The peer's status code, echoed.
    Echo(Option<CloseCode>),
    /// The code and reason of the peer's protocol error.
    Fail(ProtocolError),
}

/// First capacity of the buffer small frames are gathered in: sixteen
/// short messages' worth.
const PENDING_START: usize = 1024;

/// Bytes queued for the wire. Exists only while something is queued.
///
/// Small frames are gathered in `pending` and written from there, so the
/// usual batch (small frames only) is one buffer that is never frozen or
/// queued; larger chunks wait in `queue`, before `pending`.
#[derive(Default)]
struct Output {
    /// Frames ready to write, in order, before `pending`.
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued_bytes: usize,
    /// Small frames being gathered, written after `queue`.
    pending: Vec<u8>,
    /// Bytes of `pending` already written.
    pending_sent: usize,
    /// Bytes of a handshake response at the front of what is queued, not
    /// yet written (not frames: traffic counts leave them out).
    head_unsent: usize,
}

impl Output {
    /// Moves what `pending` holds unwritten to the end of `queue`, so that
    /// a chunk queued next goes after it.
    fn flush_pending(&mut self) {
        if self.pending.len() > self.pending_sent {
            let mut chunk = Bytes::from(std::mem::take(&mut self.pending));
            chunk.advance(std::mem::take(&mut self.pending_sent));
            self.queued_bytes += chunk.len();
            self.queue.push_back(chunk);
        }
    }

    /// Queues a chunk after everything before it, as its own slice.
    fn push_chunk(&mut self, chunk: Bytes) {
        self.flush_pending();
        self.queued_bytes += chunk.len();
        self.queue.push_back(chunk);
    }

    /// Room for `additional` more bytes in `pending`. The first frame of a
    /// batch sizes it for the ones that usually follow, rather than growing
    /// it step by step.
    fn pending_for(&mut self, additional: usize) -> &mut Vec<u8> {
        if self.pending.capacity() - self.pending.len() < additional {
            self.pending.reserve(additional.max(PENDING_START));
        }
        &mut self.pending
    }

    fn unsent(&self) -> usize {
        self.queued_bytes + self.pending.len() - self.pending_sent
    }
}

/// A server engine at rest reduced to its settings ([`Connection::rest`]):
/// its permessage-deflate compressor's, if it negotiated one that keeps no
/// context.
pub struct Resting {
    outgoing: Option<Outgoing>,
}

/// The protocol state of one connection. See the module docs.
///
/// A server keeps one per open connection, idle or not, so what only some
/// connections or some moments need is boxed and exists only then: the
/// deflate contexts (large, and only if negotiated), a frame whose payload
/// is still arriving, a fragmented message being assembled, the bytes
/// queued for the wire, a client's source of masking keys. What an idle
/// connection holds in all is in docs/benchmarks.md.
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    frame: Option<Box<InFrame>>,
    partial: Option<Box<Partial>>,
    utf8: Utf8Validator,
    deflate: Option<Box<Deflate>>,
    mask_source: Option<Box<MaskSource>>,
    close_reply: CloseReply,
    output: Option<Box<Output>>,
}

impl Connection {
    /// A server-side connection. `deflate` is what the handshake agreed, if
    /// anything, with our level and threshold.
    pub fn server(config: Config, deflate: Option<DeflateParams>) -> Connection {
        Connection::new(Role::Server, config, deflate, None)
    }

    /// A client-side connection; `mask_source` yields a fresh key per frame.
    pub fn client(config: Config, deflate: Option<DeflateParams>, mask_source: MaskSource) -> Connection {
        Connection::new(Role::Client, config, deflate, Some(mask_source))
    }

    fn new(role: Role, config: Config, deflate: Option<DeflateParams>, mask_source: Option<MaskSource>) -> Connection {
        let deflate = deflate.map(|params| Box::new(Deflate { outgoing: Some(Outgoing::new(&params, role)), incoming: Incoming::new(&params, role) }));
        Connection {
            role,
            config,
            state: State::Open,
            frame: None,
            partial: None,
            utf8: Utf8Validator::new(),
            deflate,
            mask_source: mask_source.map(Box::new),
            close_reply: CloseReply::Echo(None),
            output: None,
        }
    }

    /// Queues `head`, the handshake's HTTP response, to go out before any
    /// frame and as it is. A server that queues its `101` here instead of
    /// writing it first can let the application take the connection in
    /// (and queue its first messages) before the peer can learn that the
    /// handshake succeeded: whatever the peer does once it sees the `101`
    /// finds the connection already known.
    ///
    /// # Panics
    ///
    /// If anything was queued before: the response must come first.
    pub fn queue_handshake_response(&mut self, head: &[u8]) {
        assert!(self.output.is_none(), "the handshake response goes before any frame");
        let out = self.output();
        out.pending.extend_from_slice(head);
        out.head_unsent = head.len();
    }

    /// The closing handshake state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits it enforces.
    pub fn config(&self) -> Config {
        self.config
    }

    /// True when the engine holds nothing but its settings: a server
    /// engine, open, with no frame or message in progress and nothing
    /// queued, and permessage-deflate either not in use or keeping no
    /// context either way and holding no codec (the `shared` policy).
    /// Such an engine can be reduced to a [`Resting`] and made anew when
    /// the connection needs it again (a server's parked connections keep
    /// no engine).
    pub fn is_at_rest(&self) -> bool {
        self.resting().is_some()
    }

    /// The engine reduced to its settings if it is at rest
    /// ([`Connection::is_at_rest`]), else the engine itself.
    pub fn rest(self) -> Result<Resting, Connection> {
        self.resting().ok_or(self)
    }

    /// An engine at rest made anew, with the limits `config` (those it had).
    pub fn wake(resting: Resting, config: Config) -> Connection {
        let deflate = resting.outgoing.map(|outgoing| Box::new(Deflate { outgoing: Some(outgoing), incoming: Incoming::stateless() }));
        Connection { deflate, ..Connection::new(Role::Server, config, None, None) }
    }

    fn resting(&self) -> Option<Resting> {
        let idle = self.role == Role::Server
            && self.state == State::Open
            && self.frame.is_none()
            && self.partial.is_none()
            && self.mask_source.is_none()
            && self.output.is_none()
            && self.utf8.is_between_characters()
            && matches!(self.close_reply, CloseReply::Echo(None));
        if !idle {
            return None;
        }
        let outgoing = match self.deflate.as_deref() {
            None => None,
            Some(Deflate { outgoing: Some(outgoing), incoming }) if outgoing.is_stateless() && incoming.is_stateless() => outgoing.shared_copy(),
            Some(_) => return None,
        };
        Some(Resting { outgoing })
    }

    /// True when permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// The compressor of our messages, for a caller that frames messages
    /// for this connection itself (a server queueing frames from other
    /// tasks). One without context (`shared`) keeps nothing between
    /// messages, so it is copied and the engine goes on compressing its own
    /// sends the same way ([`Connection::send_direct`]). One with context is
    /// taken, since a single compressor must compress all of a connection's
    /// messages in order: from then on the engine sends its own
    /// uncompressed (RSV1 clear, always valid). `None` without
    /// permessage-deflate or once taken.
    pub fn split_outgoing_deflate(&mut self) -> Option<Outgoing> {
        let outgoing = &mut self.deflate.as_mut()?.outgoing;
        match outgoing.as_ref()?.shared_copy() {
            Some(copy) => Some(copy),
            None => outgoing.take(),
        }
    }

    /// The compressor the engine compresses its own sends with, if it has
    /// one (see [`Connection::split_outgoing_deflate`]).
    pub fn outgoing_deflate(&mut self) -> Option<&mut Outgoing> {
        self.deflate.as_mut()?.outgoing.as_mut()
    }

    /// True while this connection holds zlib state of its own (a direction
    /// that keeps its context, after its first compressed message).
    pub fn holds_deflate_state(&self) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.incoming.holds_state() || d.outgoing.as_ref().is_some_and(Outgoing::holds_state))
    }

    /// True while a frame or a fragmented message is partly received: the
    /// caller must keep its read buffer.
    pub fn is_mid_message(&self) -> bool {
        self.frame.is_some() || self.partial.is_some()
    }

    /// Payload bytes of the frame in progress that have not arrived yet,
    /// and the frame's whole payload length; `None` between frames. A
    /// reader can size its next read with it (see `switchboard-net`'s
    /// read buffer), so that a large frame's payload is read into place
    /// rather than copied when the buffer grows.
    pub fn frame_in_progress(&self) -> Option<(usize, usize)> {
        self.frame.as_ref().map(|frame| (frame.len - frame.scanned, frame.len))
    }

    // ---- input ----

    /// Consumes bytes from `buf` and returns the next event, or `Ok(None)`
    /// when more bytes are needed. On error the connection is failing: the
    /// state is `CloseReceived` and [`Connection::reply_close`] sends a close
    /// frame with the error's code (after whatever the caller still sends);
    /// then the caller flushes and closes the socket. Once our side has seen
    /// the peer's close or an error, further input is discarded.
    pub fn handle_read(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        if matches!(self.state, State::Closed | State::CloseReceived) {
            buf.clear();
            return Ok(None);
        }
        match self.read_frames(buf) {
            Ok(event) => Ok(event),
            Err(error) => {
                self.fail(error);
                buf.clear();
                Err(error)
            }
        }
    }

    fn read_frames(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        if self.frame.is_none() {
            if let Some(message) = self.read_short_message(buf) {
                return message.map(|message| Some(Event::Message(message)));
            }
        }
        loop {
            let mut frame = match self.frame.take() {
                Some(frame) => *frame,
                None => {
                    let Some((header, header_len)) = FrameHeader::parse(buf)? else { return Ok(None) };
                    let frame = self.check_header(header)?;
                    buf.advance(header_len);
                    frame
                }
            };
            let available = buf.len().min(frame.len);
            if available > frame.scanned {
                let fresh = &mut buf[frame.scanned..available];
                // Masked text is checked for ASCII as it is unmasked; ASCII
                // between characters needs no UTF-8 check.
                let ascii = match frame.header.mask {
                    Some(key) if frame.validate => apply_mask_ascii(fresh, key, frame.scanned),
                    Some(key) => {
                        apply_mask(fresh, key, frame.scanned);
                        false
                    }
                    None => false,
                };
                if frame.validate && !(ascii && self.utf8.is_between_characters()) {
                    self.utf8.feed(fresh).map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                frame.scanned = available;
            }
            if available < frame.len {
                // The rest of the payload comes with a later read.
                self.frame = Some(Box::new(frame));
                return Ok(None);
            }
            let payload = buf.split_to(frame.len).freeze();
            if let Some(event) = self.handle_frame(frame.header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// The usual frame of a chat or an echo, a whole unfragmented text or
    /// binary message of up to 125 bytes, read without the general path's
    /// bookkeeping (the parsed header, the frame in progress, incremental
    /// validation), which is most of what such a frame costs there. `None`
    /// when the next frame is anything else or not all here yet; the general
    /// path then reads it, and checks whatever this one does not (a data
    /// frame in the middle of a fragmented message, say).
    #[inline]
    fn read_short_message(&mut self, buf: &mut BytesMut) -> Option<Result<Message, ProtocolError>> {
        let &[b0, b1, ..] = &buf[..] else { return None };
        let masked = self.role == Role::Server;
        let len = usize::from(b1 & 0x7f);
        // FIN, no RSV bit, text (1) or binary (2); the mask bit our role expects.
        if (b0 != 0x81 && b0 != 0x82) || (b1 & 0x80 != 0) != masked || len > 125 || self.partial.is_some() {
            return None;
        }
        let header_len = if masked { 6 } else { 2 };
        if buf.len() < header_len + len || len > self.config.max_message_size || len > self.config.max_frame_size {
            return None;
        }
        let (header, payload) = buf[..header_len + len].split_at_mut(header_len);
        if masked {
            apply_mask(payload, [header[2], header[3], header[4], header[5]], 0);
        }
        let text = b0 == 0x81;
        // Unmasked now, so this frame cannot be handed to the general path.
        if text && !payload.is_ascii() && simdutf8::basic::from_utf8(payload).is_err() {
            return Some(Err(ProtocolError::InvalidUtf8));
        }
        // One split for header and payload; skipping the header in the
        // frozen `Bytes` is a pointer move.
        let mut payload = buf.split_to(header_len + len).freeze();
        payload.advance(header_len);
        Some(Ok(if text { Message::Text(payload) } else { Message::Binary(payload) }))
    }

    /// The MUSTs that depend on this connection's state, checked before any
    /// payload byte is read so a bad frame fails at once.
    fn check_header(&self, h: FrameHeader) -> Result<InFrame, ProtocolError> {
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        if h.rsv23 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig);
        }
        let len = h.payload_len as usize;
        let validate = match h.opcode {
            OpCode::Control(_) => {
                if h.rsv1 {
                    return Err(if self.deflate.is_some() { ProtocolError::CompressedContinuation } else { ProtocolError::ReservedBitsSet });
                }
                false
            }
            OpCode::Data(DataOp::Continuation) => {
                let Some(partial) = &self.partial else { return Err(ProtocolError::UnexpectedContinuation) };
                if h.rsv1 {
                    return Err(if self.deflate.is_some() { ProtocolError::CompressedContinuation } else { ProtocolError::ReservedBitsSet });
                }
                if partial.data.len() + len > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooBig);
                }
                partial.opcode == DataOp::Text && !partial.compressed
            }
            OpCode::Data(op) => {
                if self.partial.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if h.rsv1 && self.deflate.is_none() {
                    return Err(ProtocolError::ReservedBitsSet);
                }
                if len > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooBig);
                }
                op == DataOp::Text && !h.rsv1
            }
        };
        Ok(InFrame { header: h, len, scanned: 0, validate })
    }

    fn handle_frame(&mut self, h: FrameHeader, payload: Bytes) -> Result<Option<Event>, ProtocolError> {
        match h.opcode {
            OpCode::Control(ControlOp::Ping) => {
                if self.state == State::Open {
                    self.queue_frame(OpCode::Control(ControlOp::Pong), false, &payload);
                }
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Control(ControlOp::Pong) => Ok(Some(Event::Pong(payload))),
            OpCode::Control(ControlOp::Close) => {
                let frame = CloseFrame::parse(&payload)?;
                self.state = match self.state {
                    State::Open => {
                        self.close_reply = CloseReply::Echo(frame.code);
                        State::CloseReceived
                    }
                    _ => State::Closed,
                };
                self.partial = None;
                Ok(Some(Event::Close(frame)))
            }
            OpCode::Data(DataOp::Continuation) => {
                let partial = self.partial.as_mut().expect("checked by check_header");
                partial.data.extend_from_slice(&payload);
                if !h.fin {
                    return Ok(None);
                }
                let partial = self.partial.take().expect("present");
                self.finish_message(partial.opcode, partial.compressed, partial.data.freeze()).map(Some)
            }
            OpCode::Data(op) => {
                if h.fin {
                    return self.finish_message(op, h.rsv1, payload).map(Some);
                }
                let mut data = BytesMut::with_capacity(payload.len() * 2);
                data.extend_from_slice(&payload);
                self.partial = Some(Box::new(Partial { opcode: op, compressed: h.rsv1, data }));
                Ok(None)
            }
        }
    }

    fn finish_message(&mut self, op: DataOp, compressed: bool, payload: Bytes) -> Result<Event, ProtocolError> {
        let payload = if compressed {
            let deflate = self.deflate.as_mut().expect("RSV1 only accepted with deflate");
            let data = deflate.incoming.decompress(&payload, self.config.max_message_size)?;
            if op == DataOp::Text && simdutf8::basic::from_utf8(&data).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
            data
        } else {
            if op == DataOp::Text {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            payload
        };
        Ok(Event::Message(match op {
            DataOp::Text => Message::Text(payload),
            _ => Message::Binary(payload),
        }))
    }

    fn fail(&mut self, error: ProtocolError) {
        self.state = match self.state {
            State::Open => {
                self.close_reply = CloseReply::Fail(error);
                State::CloseReceived
            }
            _ => State::Closed,
        };
        self.frame = None;
        self.partial = None;
    }

    // ---- output ----

    /// Queues a message (compressed when permessage-deflate is in use). The
    /// payload is shared, not copied, when it is large and goes out as is.
    pub fn send(&mut self, message: &Message) -> Result<(), ConnectionClosed> {
        if !self.can_send() {
            return Err(ConnectionClosed);
        }
        let op = OpCode::Data(message.opcode());
        match self.deflate.as_mut().and_then(|d| d.outgoing.as_mut()).and_then(|out| out.compress(message.payload())) {
            Some(compressed) => self.queue_owned(op, true, &compressed),
            None => self.queue_owned(op, false, message.payload()),
        }
        Ok(())
    }

    /// Queues messages as they are, never compressed (RSV1 clear: valid
    /// whether or not permessage-deflate was negotiated), as a server sends
    /// what it also sends to many connections framed once. Small ones are
    /// framed straight into the output buffer, one after the other; a large
    /// payload is shared, not copied. Server role only: the frames are
    /// unmasked.
    pub fn send_uncompressed(&mut self, messages: &[Message]) -> Result<(), ConnectionClosed> {
        debug_assert_eq!(self.role, Role::Server, "uncompressed frames are queued unmasked");
        if !self.can_send() {
            return Err(ConnectionClosed);
        }
        for message in messages {
            let (op, payload) = (OpCode::Data(message.opcode()), message.payload());
            if payload.len() > COPY_THRESHOLD {
                self.queue_shared(op, false, payload.clone());
            } else {
                append_frame(op, false, payload, self.output().pending_for(MAX_HEADER_LEN + payload.len()));
            }
        }
        Ok(())
    }

    /// Queues messages framed straight into the output buffer, as
    /// [`Connection::send_uncompressed`] does, except that those at or above
    /// the threshold are compressed when the engine has a compressor of its
    /// own (see [`Connection::split_outgoing_deflate`]). Server role only.
    #[inline]
    pub fn send_direct(&mut self, messages: &[Message]) -> Result<(), ConnectionClosed> {
        if self.deflate.as_ref().is_none_or(|d| d.outgoing.is_none()) {
            return self.send_uncompressed(messages);
        }
        debug_assert_eq!(self.role, Role::Server, "direct frames are queued unmasked");
        if !self.can_send() {
            return Err(ConnectionClosed);
        }
        for message in messages {
            let (op, payload) = (OpCode::Data(message.opcode()), message.payload());
            match self.deflate.as_mut().and_then(|d| d.outgoing.as_mut()).and_then(|out| out.compress(payload)) {
                Some(compressed) => self.queue_owned(op, true, &compressed),
                None if payload.len() > COPY_THRESHOLD => self.queue_shared(op, false, payload.clone()),
                None => append_frame(op, false, payload, self.output().pending_for(MAX_HEADER_LEN + payload.len())),
            }
        }
        Ok(())
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ConnectionClosed> {
        self.send_data(DataOp::Text, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ConnectionClosed> {
        self.send_data(DataOp::Binary, data)
    }

    fn send_data(&mut self, op: DataOp, payload: &[u8]) -> Result<(), ConnectionClosed> {
        if !self.can_send() {
            return Err(ConnectionClosed);
        }
        match self.deflate.as_mut().and_then(|d| d.outgoing.as_mut()).and_then(|out| out.compress(payload)) {
            Some(compressed) => self.queue_owned(OpCode::Data(op), true, &compressed),
            None => self.queue_frame(OpCode::Data(op), false, payload),
        }
        Ok(())
    }

    /// Queues a frame encoded once for many recipients (see
    /// [`crate::frame::encode_frame`]). Server role only: client frames are
    /// masked per frame. An uncompressed frame is valid on a connection that
    /// negotiated permessage-deflate too (RSV1 clear).
    pub fn send_prepared(&mut self, frame: Bytes) -> Result<(), ConnectionClosed> {
        debug_assert_eq!(self.role, Role::Server, "prepared frames are unmasked");
        if !self.can_send() {
            return Err(ConnectionClosed);
        }
        self.push_bytes(frame);
        Ok(())
    }

    /// Queues whole encoded unmasked frames gathered in one buffer (a
    /// batch other tasks queued, see [`crate::frame::SharedFrame`]); when
    /// nothing small is waiting, the buffer itself is written from: no copy.
    /// Server role only.
    pub fn send_coalesced(&mut self, frames: Vec<u8>) -> Result<(), ConnectionClosed> {
        debug_assert_eq!(self.role, Role::Server, "coalesced frames are unmasked");
        if !self.can_send() {
            return Err(ConnectionClosed);
        }
        let out = self.output();
        if out.pending.is_empty() {
            // Nothing small waits: the buffer becomes the one written from.
            out.pending = frames;
        } else if frames.len() <= COPY_THRESHOLD {
            out.pending.extend_from_slice(&frames);
        } else {
            out.push_chunk(Bytes::from(frames));
        }
        Ok(())
    }

    /// Queues a ping. The payload is cut to 125 bytes.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), ConnectionClosed> {
        if self.state != State::Open {
            return Err(ConnectionClosed);
        }
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.queue_frame(OpCode::Control(ControlOp::Ping), false, payload);
        Ok(())
    }

    /// Sends our close frame. From `Open` this starts the closing handshake;
    /// after the peer's close (`CloseReceived`) it completes it. `code`
    /// `None` sends an empty close frame. Does nothing once ours was sent.
    pub fn close(&mut self, code: Option<CloseCode>, reason: &str) {
        let next = match self.state {
            State::Open => State::CloseSent,
            State::CloseReceived => State::Closed,
            State::CloseSent | State::Closed => return,
        };
        let code = code.filter(|c| c.is_sendable());
        self.queue_frame(OpCode::Control(ControlOp::Close), false, &CloseFrame::payload(code, reason));
        self.state = next;
    }

    /// Sends the close frame that is due in `CloseReceived`: the peer's own
    /// status code (RFC 6455 §5.5.1), or the code of its protocol error.
    pub fn reply_close(&mut self) {
        if self.state == State::CloseReceived {
            let (code, reason) = match self.close_reply {
                CloseReply::Echo(code) => (code, ""),
                CloseReply::Fail(error) => (Some(error.close_code()), error.reason()),
            };
            self.close(code, reason);
        }
    }

    fn can_send(&self) -> bool {
        matches!(self.state, State::Open | State::CloseReceived)
    }

    /// Bytes queued for the wire.
    pub fn queued_bytes(&self) -> usize {
        self.output.as_ref().map_or(0, |out| out.unsent())
    }

    /// True when something is queued for the wire.
    pub fn wants_write(&self) -> bool {
        self.queued_bytes() > 0
    }

    /// The bytes waiting to be written when they are one piece (the
    /// gathered small frames alone, or one queued chunk alone), as a reply
    /// to one read usually is: written as it is, without the slices of
    /// [`Connection::transmit_chunks`]; then call [`Connection::advance`]
    /// as after those. `None` when nothing waits or the bytes are in
    /// several pieces.
    pub fn single_chunk(&self) -> Option<&[u8]> {
        let out = self.output.as_deref()?;
        let unsent = &out.pending[out.pending_sent..];
        match (out.queue.len(), unsent.is_empty()) {
            (0, false) => Some(unsent),
            (1, true) => out.queue.front().map(|chunk| &chunk[..]),
            _ => None,
        }
    }

    /// Fills `dst` with the queued bytes, in order, and returns how many
    /// slices were filled. Write them with one vectored write, then call
    /// [`Connection::advance`] with the number of bytes written.
    pub fn transmit_chunks<'a>(&'a mut self, dst: &mut [IoSlice<'a>]) -> usize {
        let Some(out) = self.output.as_deref() else { return 0 };
        let unsent = &out.pending[out.pending_sent..];
        let chunks = out.queue.iter().map(|chunk| &chunk[..]).chain((!unsent.is_empty()).then_some(unsent));
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(chunks) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front of the queue. Once everything
    /// is written the write buffer is released: an idle connection holds none.
    /// Returns how many of the `n` bytes were WebSocket frames: all of them
    /// but those of a queued handshake response
    /// ([`Connection::queue_handshake_response`]), which traffic counts
    /// leave out.
    pub fn advance(&mut self, mut n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let out = self.output.as_mut().expect("advanced past the queued bytes");
        let head = out.head_unsent.min(n);
        out.head_unsent -= head;
        let frames = n - head;
        while n > 0 {
            let Some(front) = out.queue.front_mut() else { break };
            if n < front.len() {
                front.advance(n);
                out.queued_bytes -= n;
                return frames;
            }
            n -= front.len();
            out.queued_bytes -= front.len();
            out.queue.pop_front();
        }
        out.pending_sent += n;
        assert!(out.pending_sent <= out.pending.len(), "advanced past the queued bytes");
        if out.unsent() == 0 {
            // Released, for the next connection on this thread to write with.
            spare::put(self.output.take().expect("checked above"));
        }
        frames
    }

    /// The write queue, made when the first bytes are queued.
    fn output(&mut self) -> &mut Output {
        self.output.get_or_insert_with(spare::take)
    }

    fn push_bytes(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let out = self.output();
        if chunk.len() <= COPY_THRESHOLD && !out.pending.is_empty() {
            // Joins the small frames already waiting; alone, it is written
            // as it is (a room's run of broadcasts, shared by its members).
            out.pending.extend_from_slice(&chunk);
        } else {
            out.push_chunk(chunk);
        }
    }

    /// Queues a frame whose payload is borrowed; copies it.
    fn queue_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8]) {
        if self.mask_source.is_none() && payload.len() > COPY_THRESHOLD {
            return self.queue_shared(opcode, rsv1, Bytes::copy_from_slice(payload));
        }
        let mask = self.mask_source.as_mut().map(|source| source());
        let header = FrameHeader { fin: true, rsv1, rsv23: false, opcode, mask, payload_len: payload.len() as u64 };
        let pending = self.output().pending_for(MAX_HEADER_LEN + payload.len());
        header.encode(pending);
        let start = pending.len();
        pending.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut pending[start..], key, 0);
        }
    }

    /// Queues a frame whose payload is already a `Bytes`: large unmasked
    /// payloads are queued as they are, without a copy; the rest is copied
    /// next to its header (a client masks every frame's copy) without taking
    /// a reference to the payload.
    fn queue_owned(&mut self, opcode: OpCode, rsv1: bool, payload: &Bytes) {
        if self.mask_source.is_some() || payload.len() <= COPY_THRESHOLD {
            self.queue_frame(opcode, rsv1, payload);
        } else {
            self.queue_shared(opcode, rsv1, payload.clone());
        }
    }

    /// Queues a large unmasked payload as its own chunk after its header.
    fn queue_shared(&mut self, opcode: OpCode, rsv1: bool, payload: Bytes) {
        let header = FrameHeader { fin: true, rsv1, rsv23: false, opcode, mask: None, payload_len: payload.len() as u64 };
        let out = self.output();
        header.encode(out.pending_for(MAX_HEADER_LEN));
        out.push_chunk(payload);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("compressed", &self.is_compressed())
            .field("queued_bytes", &self.queued_bytes())
            .finish()
    }
}

mod spare;
#[cfg(test)]
mod tests;
