//! How a room's messages become frames for one connection: plain, or
//! compressed with the connection's permessage-deflate.
//!
//! A run (a batch, or one broadcast) is framed once for every recipient:
//! plainly for those without compression, and compressed once more for all
//! those whose compressor keeps no context (the `shared` policy), since
//! their frames are byte for byte the same. A compressor that keeps its
//! context (`dedicated`) frames for its connection alone, and its frames
//! are queued in the order they were compressed; its state is freed when
//! the connection's room hibernates (nothing sent for `hibernate_after`)
//! and made again by the next compressed message.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use switchboard_net::{Outbound, Outgoing};
use switchboard_proto::frame::{append_frame, DataOp, OpCode, SharedFrame, COPY_THRESHOLD, MAX_HEADER_LEN};
use switchboard_proto::Message;
use switchboard_proto::SendOutcome;
use switchboard_room::Run;

use crate::limits::EdgeStats;

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
pub(crate) fn encode_run_compressed(messages: &[Message], deflate: &mut Outgoing) -> Bytes {
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
    deflate: Option<Box<Compressor>>,
}

/// A connection's compressor and the server's count of those that hold
/// state (`EdgeStats::compressors_held`).
struct Compressor {
    outgoing: Mutex<Outgoing>,
    stats: Arc<EdgeStats>,
}

impl Framing {
    pub(crate) fn new(deflate: Option<Outgoing>, stats: &Arc<EdgeStats>) -> Framing {
        Framing { deflate: deflate.map(|outgoing| Box::new(Compressor { outgoing: Mutex::new(outgoing), stats: stats.clone() })) }
    }

    /// The compressor, locked; counted in `compressors_held` once it has
    /// made state of its own.
    fn lock(&self) -> Option<Held<'_>> {
        let deflate = self.deflate.as_ref()?;
        let guard = deflate.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        let held = guard.holds_state();
        Some(Held { guard, held, stats: &deflate.stats })
    }

    /// Frames one message for this connection and queues it.
    pub(crate) fn send(&self, outbound: &Outbound, message: &Message) -> SendOutcome {
        if let Some(mut deflate) = self.lock() {
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
        if let Some(mut deflate) = self.lock() {
            return outbound.push(&SharedFrame::run(encode_run_compressed(messages, &mut deflate)));
        }
        outbound.push(&SharedFrame::run(encode_run(messages)))
    }

    /// Frees the compressor's context, if it keeps one (`dedicated`): the
    /// connection has been sent nothing for a while, and the next message
    /// is compressed from a fresh state, which the peer inflates whatever
    /// window it kept (each message ends with a sync flush, so no message
    /// refers past a release).
    pub(crate) fn release_idle(&self) {
        if let Some(deflate) = &self.deflate {
            let mut outgoing = deflate.outgoing.lock().unwrap_or_else(|e| e.into_inner());
            if outgoing.holds_state() {
                outgoing.release();
                deflate.stats.compressors_held.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues a run that goes to many connections, framed once for all
    /// those that frame it the same way.
    pub(crate) fn send_run(&self, outbound: &Outbound, run: &Run) -> SendOutcome {
        let Some(mut deflate) = self.lock() else { return send_plain_run(outbound, run) };
        let frames = match deflate.shared_key() {
            Some(key) => run.encoded_keyed(key, |messages| encode_run_compressed(messages, &mut deflate)),
            None => encode_run_compressed(run.messages(), &mut deflate),
        };
        outbound.push(&SharedFrame::run(frames))
    }
}

/// A locked compressor that counts the state it makes.
struct Held<'a> {
    guard: MutexGuard<'a, Outgoing>,
    held: bool,
    stats: &'a EdgeStats,
}

impl std::ops::Deref for Held<'_> {
    type Target = Outgoing;

    fn deref(&self) -> &Outgoing {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Outgoing {
        &mut self.guard
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.held && self.guard.holds_state() {
            self.stats.compressors_held.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Framing {
    fn drop(&mut self) {
        if let Some(deflate) = &mut self.deflate {
            if deflate.outgoing.get_mut().unwrap_or_else(|e| e.into_inner()).holds_state() {
                deflate.stats.compressors_held.fetch_sub(1, Ordering::Relaxed);
            }
        }
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
