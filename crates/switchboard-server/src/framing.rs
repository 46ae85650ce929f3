//! How a room's messages become frames for one connection: plain, or
//! compressed with the connection's permessage-deflate.
//!
//! A run (a batch, or one broadcast) is framed once for every recipient:
//! plainly for those without compression, and compressed once more for all
//! those whose compressor keeps no context (the `shared` policy), since
//! their frames are byte for byte the same. A compressor that keeps its
//! context (`dedicated`) frames for its connection alone, and its frames
//! are queued in the order they were compressed.

use std::sync::Mutex;

use bytes::Bytes;
use switchboard_net::{Outbound, Outgoing};
use switchboard_proto::frame::{append_frame, DataOp, OpCode, SharedFrame, COPY_THRESHOLD, MAX_HEADER_LEN};
use switchboard_proto::Message;
use switchboard_proto::SendOutcome;
use switchboard_room::Run;

pub(crate) fn data_op(message: &Message) -> OpCode {
    match message {
        Message::Text(_) => OpCode::Data(DataOp::Text),
        Message::Binary(_) => OpCode::Data(DataOp::Binary),
    }
}

/// A run's messages as whole frames back to back, in one buffer that every
/// recipient's queue shares.
pub(crate) fn encode_run(messages: &[Message]) -> Bytes {
    let len = messages.iter().map(|m| MAX_HEADER_LEN + m.payload().len()).sum();
    let mut frames = Vec::with_capacity(len);
    for message in messages {
        append_frame(data_op(message), false, message.payload(), &mut frames);
    }
    Bytes::from(frames)
}

/// A run's messages as frames, each compressed by `deflate` unless it is
/// below the threshold.
fn encode_run_compressed(messages: &[Message], deflate: &mut Outgoing) -> Bytes {
    let mut frames = Vec::new();
    for message in messages {
        match deflate.compress(message.payload()) {
            Some(compressed) => append_frame(data_op(message), true, &compressed, &mut frames),
            None => append_frame(data_op(message), false, message.payload(), &mut frames),
        }
    }
    Bytes::from(frames)
}

/// The framing of one connection's outbound messages.
pub(crate) struct Framing {
    /// Its permessage-deflate compressor, if agreed. Locked while a frame
    /// is compressed and queued, so frames leave in compression order.
    /// Boxed: every connection's sink holds this slot, and most connections
    /// compress nothing (see `a_plain_sink_takes_32_bytes`).
    deflate: Option<Box<Mutex<Outgoing>>>,
}

impl Framing {
    pub(crate) fn new(deflate: Option<Outgoing>) -> Framing {
        Framing { deflate: deflate.map(|deflate| Box::new(Mutex::new(deflate))) }
    }

    /// Frames one message for this connection and queues it.
    pub(crate) fn send(&self, outbound: &Outbound, message: &Message) -> SendOutcome {
        if let Some(deflate) = &self.deflate {
            let mut deflate = deflate.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(compressed) = deflate.compress(message.payload()) {
                return outbound.push(&SharedFrame::new(data_op(message), true, &compressed));
            }
        }
        // The header is made here; the queue copies a small payload and
        // shares a large one.
        outbound.push(&SharedFrame::new(data_op(message), false, message.payload()))
    }

    /// Frames messages for this connection alone and queues them as one push.
    pub(crate) fn send_all(&self, outbound: &Outbound, messages: &[Message]) -> SendOutcome {
        if let Some(deflate) = &self.deflate {
            let mut deflate = deflate.lock().unwrap_or_else(|e| e.into_inner());
            return outbound.push(&SharedFrame::run(encode_run_compressed(messages, &mut deflate)));
        }
        outbound.push(&SharedFrame::run(encode_run(messages)))
    }

    /// Queues a run that goes to many connections, framed once for all
    /// those that frame it the same way.
    pub(crate) fn send_run(&self, outbound: &Outbound, run: &Run) -> SendOutcome {
        let Some(deflate) = &self.deflate else { return send_plain_run(outbound, run) };
        let mut deflate = deflate.lock().unwrap_or_else(|e| e.into_inner());
        let frames = match deflate.shared_key() {
            Some(key) => run.encoded_keyed(key, |messages| encode_run_compressed(messages, &mut deflate)),
            None => encode_run_compressed(run.messages(), &mut deflate),
        };
        outbound.push(&SharedFrame::run(frames))
    }
}

/// A run without compression: a single large message keeps its payload
/// shared as it is; anything else is framed once into one buffer.
fn send_plain_run(outbound: &Outbound, run: &Run) -> SendOutcome {
    if let [message] = run.messages() {
        if message.payload().len() > COPY_THRESHOLD {
            return outbound.push(&SharedFrame::new(data_op(message), false, message.payload()));
        }
    }
    outbound.push(&SharedFrame::run(run.encoded(encode_run).clone()))
}
