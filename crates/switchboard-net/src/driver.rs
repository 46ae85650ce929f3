//! The task that owns one WebSocket connection after its handshake.
//!
//! One loop does everything for the stream, one step per function: hand
//! every message already read to the handler (`Link::next_message`); move
//! frames other tasks queued on the [`Outbound`] into the protocol engine
//! (`Link::take_outbound`); act on a due deadline (`Link::on_deadline`);
//! write as much as the stream takes without blocking (`Link::poll_write`,
//! vectored where the stream supports it, so replies to one read leave in
//! one write); shut the stream when the closing handshake is over; then
//! wait for whichever comes first (`Wait`): bytes read, room to write, or
//! news on the outbound queue (frames, a close request, a due deadline,
//! shutdown).
//!
//! The stream is any [`ByteStream`] (TCP, TLS over TCP, an in-memory pipe in
//! tests); the driver is compiled for each, so TCP pays for no indirection.
//! A stream that buffers a lot itself (TLS) is better boxed: `Box<S>` is a
//! stream too, and keeps the task small (see Memory below).
//!
//! Backpressure: while more than `max_pending_write` bytes wait for the
//! stream, the connection stops reading, so a peer that does not read its
//! replies stops being served; frames from other tasks wait in the bounded
//! outbound queue, and a peer that lets that queue overflow is cut off.
//!
//! Memory: an idle connection is this task's state and little else, so that
//! state is kept small. The read buffer exists only while bytes are being
//! processed: a wait that finds nothing to read gives it back to the
//! thread's spare (`spare`) once every frame in it is consumed. The wait is
//! a future of references (no per-connection timer or notification
//! future); deadlines are checked by the listener's sweep (`timers`); the
//! handler's `on_open` and `on_close`, which run once, are boxed. What stays
//! inline are the handler's per-message futures: a [`Handler`] should keep
//! those small. The budget: tokio allocates the task as this future plus
//! its own header and trailer in a block aligned to 128, and mimalloc
//! serves 128-aligned blocks without over-allocating only at powers of two,
//! so the task should fit 256 bytes, which leaves the future 152 (a test in
//! `listener` pins that). The engine, read buffer and handler therefore
//! live in a box of their own (`Parts`), and the task keeps the stream, the
//! timers and a few pointers (`Link`).
//!
//! Timers: the engine's (`switchboard_proto::timers::Timers`, kept here
//! next to the `Connection`, on the listener's clock) decide: after
//! `ping_interval` without a frame from the peer the server pings; if
//! nothing arrives within `pong_timeout` the peer is dead, the stream is
//! dropped and the handler learns it with 1006; a closing handshake longer
//! than `close_timeout` is cut the same way. The driver only publishes the
//! engine's next deadline (`poll_timeout`) for the listener's sweep, which
//! wakes it once per timer tick (see `NetConfig::timer_tick`) when it has
//! passed, and then calls `handle_timeout`.
//!
//! Parking: a plain TCP connection that the listener's idle checks find
//! without messages (see `NetConfig::park_after`) does not wait at the end
//! of its pass but parks (`parked`, the lot in `park`): its task ends and
//! what it held goes to the lot until something would have woken it; the
//! same loop then resumes it in a new task, starting with that wait.
//!
//! Write-through: a connection whose last pass only wrote frames other
//! tasks queued (a room's broadcasts, with nothing read) lets its outbound
//! queue write the next ones straight to the socket while it waits with
//! nothing of its own to write (see `outbound`), so a broadcast costs an
//! idle member no wake-up. Plain TCP only (the stream is a
//! [`SharedTcp`](crate::SharedTcp), which the queue holds a share of).
//! Whatever wakes the task ends it before the pass writes anything, and
//! the bytes written meanwhile are counted then.
//!
//! Counting: each read adds its bytes and the number of messages it carried
//! to the listener's [`NetStats`](crate::NetStats), each write its bytes;
//! the connection's outcome is counted when its task ends.

use std::borrow::Cow;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::ops::{Deref, DerefMut};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncReadExt;

use switchboard_proto::connection::State;
use switchboard_proto::timers::{Expired, Timers};
use switchboard_proto::{CloseCode, Connection, Event, Message, ProtocolError};

use crate::config::NetConfig;
use crate::handler::{Handler, Outbox, Traffic};
use crate::io::{may_read, spend_budget, ByteStream};
use crate::listener::Common;
use crate::outbound::{Chunk, Outbound};
use crate::read_size;
use crate::shared_tcp::{as_shared_tcp, is_shared_tcp};
use crate::spare;
use crate::stats::{NetStats, Outcome};
use crate::timers::Ms;

use parked::{park, Parking};

/// Slices handed to one vectored write. Linux takes up to 1024; 64 covers a
/// read's worth of replies without a large array on the stack.
const MAX_WRITE_SLICES: usize = 64;

/// Below twice this, a waiting connection's partial frame stays where it
/// was read (`keep_only_the_rest`): moving it would save too little.
const MIN_KEPT: usize = 4096;

/// Drives one connection until it ends.
///
/// Its state is what an idle connection costs, so every value that lives
/// across an `.await` here is weighed: the engine, the buffer and the
/// handler live in one box (`Parts`), rare paths are boxed (`on_open`,
/// `on_close`), a handler's future is made where the message is at hand
/// and awaited after (so the message is not kept beside it), and the
/// failures that end the connection leave the loop to one report. The
/// steps are plain functions; only the handler's futures, the write, the
/// wait and the shutdown are awaited here.
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: an `async fn` keeps its arguments in its state (the engine, buffer
/// and handler too, beside their box), and each `mut` one twice.
#[allow(clippy::manual_async_fn)]
pub(crate) fn drive<S, H, C>(stream: S, conn: Connection, buf: BytesMut, handler: H, common: C) -> impl Future<Output = ()> + Send + 'static
where
    S: ByteStream,
    H: Handler,
    C: Deref<Target = Common> + Send + 'static,
{
    let parts = Box::new(Parts { conn, buf, handler });
    let link = Link::new(stream, common, parts.buf.len());
    run(link, parts, false)
}

/// The connection's loop, from its opening (`on_open` first) or, if
/// `waiting`, from where it parked: a resumed connection waits first, for
/// whatever resumed it. One future for both, so that a resumed connection
/// is the same task as a new one.
#[allow(clippy::manual_async_fn)]
fn run<S, H, C>(mut link: Link<S, C>, mut parts: Box<Parts<H>>, mut waiting: bool) -> impl Future<Output = ()> + Send + 'static
where
    S: ByteStream,
    H: Handler,
    C: Deref<Target = Common> + Send + 'static,
{
    async move {
        if !waiting {
            // Once per connection, boxed like `on_close`.
            Box::pin(parts.handler.on_open(Outbox::new(&mut parts.conn, &link.outbound))).await;
        }

        let cut = loop {
            if waiting {
                let woken = link.wait(&mut parts).await;
                // Before anything is written: see Write-through.
                link.end_through();
                if let Err(cut) = woken {
                    break cut;
                }
            }
            waiting = true;

            // 1. Everything already read goes to the handler.
            let mut delivered = false;
            // Scoped so that nothing of the read's end is kept while later
            // steps await.
            {
                // Whether the peer's close or error ends the pass, and the
                // handler's `on_close` to await first (two values rather
                // than a nested option, which would take more room in this
                // future's state).
                let (closing, on_close) = {
                    let end = loop {
                        let delivering = match link.next_message(&mut parts, &mut delivered) {
                            Next::Message(message) => parts.handler.on_message(message, Outbox::new(&mut parts.conn, &link.outbound)),
                            Next::End(end) => break end,
                        };
                        delivering.await;
                        delivered = true;
                    };
                    match end {
                        ReadEnd::Drained => (false, None),
                        ReadEnd::Closed(code, reason) => (true, link.report(&mut parts.handler, Outcome::Clean, code, reason.into(), true)),
                        ReadEnd::Failed(error) => {
                            // The handler hears of the messages before the error in `on_close`.
                            delivered = false;
                            (true, link.report(&mut parts.handler, Outcome::ProtocolError, Some(error.close_code()), error.reason().into(), false))
                        }
                    }
                };
                // Let the handler queue what must precede our close frame
                // (replies to earlier messages), then send it.
                if let Some(on_close) = on_close {
                    on_close.await;
                }
                if closing {
                    link.reply_close(&mut parts.conn);
                }
            }
            if delivered {
                parts.handler.on_read_end(Outbox::new(&mut parts.conn, &link.outbound)).await;
            }
            link.count_messages();

            // 2. Frames from other tasks while the engine's queue is short; a
            //    close request, a cut-off, a due deadline, an idle check or
            //    shutdown in any case.
            let signals = link.take_outbound(&mut parts.conn);
            link.note_activity(delivered || signals.frames, signals.idle_check);
            // Other tasks' frames and no message read: the next ones may be
            // written through (over plain TCP), until the connection reads a
            // message.
            link.wants_through = is_shared_tcp::<S>() && (link.wants_through || signals.frames) && !delivered;
            if signals.overflowed {
                parts.conn.close(Some(CloseCode::POLICY_VIOLATION), "outbound queue limit exceeded: the client reads too slowly");
                if let Some(on_close) = link.report(&mut parts.handler, Outcome::SlowConsumer, Some(CloseCode::POLICY_VIOLATION), "slow consumer".into(), false)
                {
                    on_close.await;
                }
            }
            if signals.stopping && parts.conn.state() == State::Open {
                parts.conn.close(Some(CloseCode::GOING_AWAY), "server shutting down");
            }

            // 3. Timers.
            if signals.due {
                if let Some(cut) = link.on_deadline(&mut parts.conn) {
                    break cut;
                }
            }

            // 4. Write what the stream takes now.
            if poll_fn(|cx| Poll::Ready(link.write_now(&mut parts.conn, cx))).await.is_err() {
                break Cut::WriteFailed;
            }

            // 5. Closing: over once both close frames are exchanged and
            //    written; the server closes the TCP connection first (RFC
            //    6455 §7.1.1).
            if parts.conn.state() == State::Closed && !link.blocked {
                link.shutdown().await;
                parts.handler.on_end(link.traffic);
                return;
            }
            link.publish_deadline(&parts.conn);

            // 6. Park (an idle plain TCP connection with nothing in flight:
            //    see `park`), or wait at the top of the loop.
            if link.may_park(&parts) {
                // An emptied read buffer is the thread's again, not parked.
                release(&mut parts.buf, link.config().read_chunk);
                match park(link, parts) {
                    Parking::Parked => return,
                    Parking::Refused(refused_link, refused_parts) => {
                        link = refused_link;
                        parts = refused_parts;
                    }
                }
            }
        };
        // The stream failed or the peer went silent: the handler learns it
        // (unless it already heard of the end) and the stream is dropped.
        if let Some(on_close) = link.report(&mut parts.handler, cut.outcome(), Some(CloseCode::ABNORMAL), cut.reason().into(), false) {
            on_close.await;
        }
        parts.handler.on_end(link.traffic);
    }
}

/// What a connection owns besides its stream and its timers: the protocol
/// engine, the read buffer and the handler. Boxed, so that the task's own
/// state stays under the 152 bytes that make tokio's task block 256 bytes
/// (see the module docs).
struct Parts<H> {
    conn: Connection,
    buf: BytesMut,
    handler: H,
}

/// The connection's task state besides `Parts`: the stream, and what a
/// parked connection keeps of it besides (`Kept`, reached through `Deref`).
struct Link<S, C: Deref<Target = Common>> {
    stream: S,
    kept: Kept<C>,
}

/// The listener's shared state, the outbound queue, the timers, and how
/// the connection ended. When it drops, however the connection ends (a
/// panicking handler too, or a parked connection dropped with its lot),
/// other tasks can no longer queue on the outbound queue and the outcome is
/// counted.
struct Kept<C: Deref<Target = Common>> {
    common: C,
    outbound: Arc<Outbound>,
    /// The engine's timers (heartbeat, closing handshake) on the
    /// listener's clock.
    timers: Timers<Ms>,
    /// Messages read since the last count: those of one read, which a
    /// `u16` holds (a read is at most a chunk or one large frame, and a
    /// client's frame is at least 6 bytes); saturating all the same.
    messages: u16,
    /// The stream did not take (or flush) everything at the last write.
    blocked: bool,
    /// The last read-side poll of the stream came to nothing, so this
    /// task's waker waits in the stream's registration (see
    /// `io::may_read`). False whenever that is not known: a read that
    /// returned something, a poll refused for the task's spent budget, a
    /// stream registered anew (a resumed connection).
    read_armed: bool,
    /// A message was read or a frame queued since the last idle check.
    active: bool,
    /// An idle check found no message since the one before: the
    /// connection parks the next time it waits with nothing in flight.
    idle: bool,
    /// Other tasks' frames were written and no message read since: the
    /// wait may let the outbound queue write through, which the next pass
    /// then ends first (see Write-through).
    wants_through: bool,
    /// How the connection ended, once the handler was told.
    outcome: Option<Outcome>,
    /// What this connection read and wrote.
    traffic: Traffic,
}

impl<S, C: Deref<Target = Common>> Deref for Link<S, C> {
    type Target = Kept<C>;

    fn deref(&self) -> &Kept<C> {
        &self.kept
    }
}

impl<S, C: Deref<Target = Common>> DerefMut for Link<S, C> {
    fn deref_mut(&mut self) -> &mut Kept<C> {
        &mut self.kept
    }
}

/// What ended a pass over the bytes read.
enum ReadEnd {
    /// Everything buffered was consumed.
    Drained,
    /// The peer's close frame.
    Closed(Option<CloseCode>, String),
    /// The peer broke the protocol.
    Failed(ProtocolError),
}

/// What the engine's next event asks of the loop.
enum Next {
    /// A message for `Handler::on_message`.
    Message(Message),
    /// The pass is over.
    End(ReadEnd),
}

/// Signals taken from the outbound queue besides close requests.
struct Signals {
    /// Frames were moved into the engine.
    frames: bool,
    overflowed: bool,
    due: bool,
    stopping: bool,
    idle_check: bool,
}

/// Why the loop ended without a closing handshake.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Dropped,
    ReadFailed,
    WriteFailed,
    NoPong,
    CloseTimedOut,
}

impl Cut {
    fn reason(self) -> &'static str {
        match self {
            Cut::Dropped => "connection dropped",
            Cut::ReadFailed => "read failed",
            Cut::WriteFailed => "write failed",
            Cut::NoPong => "no answer to ping",
            Cut::CloseTimedOut => "closing handshake timed out",
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Cut::Dropped | Cut::ReadFailed | Cut::WriteFailed => Outcome::Abnormal,
            Cut::NoPong | Cut::CloseTimedOut => Outcome::Timeout,
        }
    }
}

impl<S: ByteStream, C: Deref<Target = Common>> Link<S, C> {
    /// A new connection's link: its outbound queue, registered with the
    /// listener's timers; `buffered` bytes came with the request head.
    fn new(stream: S, common: C, buffered: usize) -> Self {
        let socket = as_shared_tcp(&stream).map(|tcp| tcp.socket().clone());
        let outbound = Arc::new(Outbound::with_socket(common.config.max_outbound_queue, socket));
        common.timers.register(&outbound, &common.shutdown);
        common.stats.record_open();
        if buffered > 0 {
            common.stats.record_read(buffered);
        }
        let timers = Timers::new(common.timers.now());
        let traffic = Traffic { read: buffered as u64, written: 0 };
        let kept = Kept {
            common,
            outbound,
            timers,
            messages: 0,
            blocked: false,
            read_armed: false,
            active: true,
            idle: false,
            wants_through: false,
            outcome: None,
            traffic,
        };
        Link { stream, kept }
    }

    fn config(&self) -> &NetConfig {
        &self.common.config
    }

    fn stats(&self) -> &NetStats {
        &self.common.stats
    }

    // ---- reading and dispatch ----

    /// Runs the engine over what was read until a message needs the
    /// handler's `on_message` or the pass ends. Hands the handler what it
    /// takes at once
    /// (`take_message`), setting `delivered`.
    #[inline]
    fn next_message<H: Handler>(&mut self, parts: &mut Parts<H>, delivered: &mut bool) -> Next {
        loop {
            // Without bytes the engine has nothing to say (a frame in
            // progress waits for more), and a pass that read nothing (a
            // wake for frames from the room) need not ask it.
            if parts.buf.is_empty() {
                return Next::End(ReadEnd::Drained);
            }
            match parts.conn.handle_read(&mut parts.buf) {
                Ok(Some(Event::Message(message))) => {
                    self.messages = self.messages.saturating_add(1);
                    match parts.handler.take_message(message) {
                        Ok(()) => *delivered = true,
                        Err(message) => return Next::Message(message),
                    }
                }
                Ok(Some(Event::Close(frame))) => return Next::End(ReadEnd::Closed(frame.code, frame.reason)),
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                Ok(None) => return Next::End(ReadEnd::Drained),
                Err(error) => return Next::End(ReadEnd::Failed(error)),
            }
        }
    }

    /// Notes a pass's messages or queued frames (`active`), and answers an
    /// idle check: a connection with none since the previous check is
    /// idle. A parked connection is idle until its next message.
    #[inline]
    fn note_activity(&mut self, active: bool, idle_check: bool) {
        if active {
            self.active = true;
            self.idle = false;
        }
        if idle_check {
            self.idle |= !self.active;
            self.active = false;
        }
    }

    /// Whether the connection parks now instead of waiting: it is idle,
    /// parking is on (the listener has a lot), it runs over plain TCP, and
    /// nothing is in flight (no bytes read and not consumed or to write,
    /// no message half read, no closing handshake). Its emptied read
    /// buffer is then released.
    fn may_park<H>(&self, parts: &Parts<H>) -> bool {
        self.idle
            && self.common.lot.is_some()
            && crate::park::can_park::<S>()
            && !self.blocked
            && parts.conn.state() == State::Open
            && !parts.conn.wants_write()
            && parts.buf.is_empty()
            && !parts.conn.is_mid_message()
    }

    /// Adds the messages of the pass to the listener's count.
    #[inline]
    fn count_messages(&mut self) {
        if self.messages > 0 {
            let kept = &mut self.kept;
            kept.common.stats.record_messages(std::mem::take(&mut kept.messages).into());
        }
    }

    /// Our close frame after the peer's close or its protocol error, behind
    /// everything queued for the connection so far.
    fn reply_close(&mut self, conn: &mut Connection) {
        move_outbound(&self.outbound, conn, true);
        conn.reply_close();
    }

    // ---- other tasks ----

    /// Ends write-through if the wait may have asked for it, and counts
    /// what the outbound queue wrote meanwhile (activity, like frames
    /// queued).
    #[inline]
    fn end_through(&mut self) {
        if !self.wants_through {
            return;
        }
        let written = self.outbound.end_through();
        if written > 0 {
            self.note_activity(true, false);
            self.common.stats.record_write(written as usize);
            self.traffic.written += u64::from(written);
        }
    }

    /// Moves a close request, and queued frames while the engine's queue is
    /// short, from the outbound queue into the engine; returns the other
    /// signals.
    fn take_outbound(&mut self, conn: &mut Connection) -> Signals {
        let room_to_write = conn.queued_bytes() < self.config().max_pending_write;
        move_outbound(&self.outbound, conn, room_to_write)
    }

    // ---- timers ----

    /// The deadline the connection published passed: the engine's timers
    /// ping a silent peer, or end the connection (a pinged peer that stayed
    /// silent, a closing handshake that ran out of time).
    fn on_deadline(&mut self, conn: &mut Connection) -> Option<Cut> {
        let now = self.common.timers.now();
        let kept = &mut self.kept;
        kept.timers.handle_timeout(conn, now, &kept.common.config.timers()).map(|expired| match expired {
            Expired::NoPong => Cut::NoPong,
            Expired::CloseTimedOut => Cut::CloseTimedOut,
        })
    }

    /// Publishes the engine's next deadline for the listener's sweep (a
    /// plain store, on every pass; the sweep clears it when it fires).
    fn publish_deadline(&mut self, conn: &Connection) {
        let kept = &mut self.kept;
        let clock = &kept.common.timers;
        let deadline = kept.timers.poll_timeout(conn, &kept.common.config.timers(), || clock.now());
        kept.outbound.set_deadline(deadline.get());
    }

    // ---- writing ----

    /// Writes what the stream takes now (see `poll_write`); `blocked`
    /// says whether anything is left.
    fn write_now(&mut self, conn: &mut Connection, cx: &mut Context<'_>) -> io::Result<()> {
        match self.poll_write(conn, cx) {
            Poll::Ready(result) => {
                self.blocked = false;
                result
            }
            Poll::Pending => {
                self.blocked = true;
                Ok(())
            }
        }
    }

    /// Writes queued bytes until the stream would block, then flushes it.
    /// Vectored where the stream supports it, so many frames leave in one
    /// system call; one buffer (the usual case: small frames are gathered
    /// into one) goes out with a plain write, which on a socket skips the
    /// file layer that `writev` passes through (docs/benchmarks.md). Pending
    /// when the stream took less than everything (its waker is then set).
    fn poll_write(&mut self, conn: &mut Connection, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let slices_per_write = if self.stream.is_write_vectored() { MAX_WRITE_SLICES } else { 1 };
        while conn.wants_write() {
            let written = {
                let stream = Pin::new(&mut self.stream);
                // One piece, the usual reply, needs no array of slices.
                let result = match conn.single_chunk() {
                    Some(chunk) => stream.poll_write(cx, chunk),
                    None => {
                        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                        let n = conn.transmit_chunks(&mut slices[..slices_per_write]);
                        if n == 1 {
                            stream.poll_write(cx, &slices[0])
                        } else {
                            stream.poll_write_vectored(cx, &slices[..n])
                        }
                    }
                };
                match ready!(result) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(written) => written,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            };
            // The 101 at the front of the first write is not WebSocket
            // traffic.
            let frames = conn.advance(written);
            self.common.stats.record_write(frames);
            self.traffic.written += frames as u64;
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    // ---- closing ----

    /// Shuts the stream's sending side. One attempt, never a wait: on TCP
    /// it completes at once; a stream with more to send first (a TLS
    /// close_notify) that cannot send it now is dropped anyway.
    async fn shutdown(&mut self) {
        poll_fn(|cx| {
            let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
            Poll::Ready(())
        })
        .await
    }

    // ---- waiting ----

    /// The wait at the end of a pass: for bytes while the engine's queue is
    /// short and the connection not closed, for room to write while
    /// blocked, for news on the outbound queue (frames count only while the
    /// engine's queue is short).
    fn wait<'a, H>(&'a mut self, parts: &'a mut Parts<H>) -> Wait<'a, S, C, H> {
        let room_to_write = parts.conn.queued_bytes() < self.config().max_pending_write;
        let read = room_to_write && parts.conn.state() != State::Closed;
        Wait { link: self, parts, read, frames: room_to_write }
    }

    /// Reads what the stream has into the read buffer, taking the thread's
    /// spare buffer if the connection has none. When nothing is there and
    /// every frame read is consumed, the buffer goes back to the spare, so
    /// that an idle connection holds none.
    ///
    /// An emptied buffer whose frames some handler still holds (a message
    /// waiting in a busy room's mailbox) is left to them rather than grown
    /// beside them: the read takes the spare instead.
    fn poll_read(&mut self, buf: &mut BytesMut, conn: &Connection, cx: &mut Context<'_>) -> Poll<Result<(), Cut>> {
        let chunk = self.config().read_chunk;
        let empty = buf.is_empty();
        let consumed = empty && !conn.is_mid_message();
        let frame = conn.frame_in_progress();
        // A wake for something else (frames from the room, room to write)
        // finds a socket with nothing to read: asked first, it costs no
        // buffer taken and given back. Either way the read spends the
        // task's budget once (see `io::spend_budget`).
        let may = match empty {
            true => may_read(&self.stream, self.read_armed, cx),
            false => spend_budget::<S>(cx),
        };
        let polled = if !may {
            Poll::Pending
        } else {
            if empty && !read_size::has_room(buf.capacity(), chunk) && (buf.capacity() == 0 || !buf.try_reclaim(chunk)) {
                *buf = spare::take();
            }
            // How much, and whether room is made first: see `read_size`.
            let (want, make_room) = read_size::plan(frame, chunk, buf.capacity() - buf.len());
            if make_room {
                buf.reserve(want);
            }
            pin!(self.stream.read_buf(&mut (&mut *buf).limit(want))).poll(cx)
        };
        // A poll that came to nothing stored the waker, unless the task's
        // budget ran out first (tokio then wakes the task itself, and
        // stores nothing).
        self.read_armed = polled.is_pending() && tokio::task::coop::has_budget_remaining();
        match polled {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(Cut::Dropped)),
            Poll::Ready(Ok(n)) => {
                self.on_read(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(Cut::ReadFailed)),
            Poll::Pending => {
                if consumed {
                    release(buf, chunk);
                } else {
                    keep_only_the_rest(buf, frame, chunk);
                }
                Poll::Pending
            }
        }
    }

    /// Bytes arrived: the peer is alive.
    fn on_read(&mut self, n: usize) {
        self.stats().record_read(n);
        self.traffic.read += n as u64;
        let kept = &mut self.kept;
        kept.timers.peer_alive(kept.common.timers.now());
    }
}

impl<C: Deref<Target = Common>> Kept<C> {
    /// The handler's `on_close`, the first time only; the outcome is
    /// counted when the link drops. Boxed: it runs once per connection, and
    /// its future (a room event, a wait for the room) would otherwise be
    /// part of every connection's task state for the connection's whole life.
    fn report<'a, H: Handler>(
        &mut self,
        handler: &'a mut H,
        outcome: Outcome,
        code: Option<CloseCode>,
        reason: Cow<'static, str>,
        clean: bool,
    ) -> Option<Pin<Box<impl Future<Output = ()> + Send + 'a>>> {
        if self.outcome.is_some() {
            return None;
        }
        self.outcome = Some(outcome);
        self.common.stats.record_close_code(code.map_or(CloseCode::NO_STATUS.as_u16(), CloseCode::as_u16));
        Some(Box::pin(async move { handler.on_close(code, &reason, clean).await }))
    }
}

impl<C: Deref<Target = Common>> Drop for Kept<C> {
    fn drop(&mut self) {
        self.outbound.shut();
        // No report: the task ended without the handler hearing of it (a
        // handler panicked).
        self.common.stats.record_close(self.outcome.unwrap_or(Outcome::Abnormal));
    }
}

/// Gives an emptied read buffer back to the thread's spare, if it is
/// large enough for a read; a smaller one (what the handshake read the
/// request head into) is freed, as kept it would take the spare's place and
/// the next read would have to grow it.
fn release(buf: &mut BytesMut, read_chunk: usize) {
    let buf = std::mem::take(buf);
    if read_size::has_room(buf.capacity(), read_chunk) {
        spare::put(buf, 2 * read_chunk);
    }
}

/// A connection that waits with part of a frame read keeps only those
/// bytes: the read chunk is large, and a peer that stops mid-frame should
/// cost what it sent, not a chunk. The bytes move to a buffer of their own
/// and the chunk goes back to the thread's spare. A buffer already sized
/// for the frame in progress (a large one: see `read_size`) is kept, as
/// the rest of the frame is to be read into it.
fn keep_only_the_rest(buf: &mut BytesMut, frame: Option<(usize, usize)>, read_chunk: usize) {
    let needed = buf.len() + frame.map_or(0, |(missing, _)| missing);
    if buf.capacity() < 2 * needed.max(MIN_KEPT) {
        return;
    }
    let rest = BytesMut::from(&buf[..]);
    release(&mut std::mem::replace(buf, rest), read_chunk);
}

/// Waits for bytes to read (if `read`; they are read), room to write (if
/// the last write was blocked; what fits is written) or news on the
/// outbound queue (frames count only if `frames`); an error if the stream
/// ended or failed. It stores nothing but references: the stream keeps the
/// task's waker where it waits (a socket in its registration) and the
/// outbound queue in its lock, so an idle connection pays for no waiting
/// future of its own.
struct Wait<'a, S: ByteStream, C: Deref<Target = Common>, H> {
    link: &'a mut Link<S, C>,
    parts: &'a mut Parts<H>,
    read: bool,
    frames: bool,
}

impl<S: ByteStream, C: Deref<Target = Common>, H> Future for Wait<'_, S, C, H> {
    type Output = Result<(), Cut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Cut>> {
        let Wait { link, parts, read, frames } = self.get_mut();
        if *read {
            if let Poll::Ready(woken) = link.poll_read(&mut parts.buf, &parts.conn, cx) {
                return Poll::Ready(woken);
            }
        } else if parts.buf.is_empty() && !parts.conn.is_mid_message() {
            release(&mut parts.buf, link.config().read_chunk);
        }
        if link.blocked {
            let before = parts.conn.queued_bytes();
            match link.poll_write(&mut parts.conn, cx) {
                Poll::Ready(Ok(())) => {
                    link.blocked = false;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Err(Cut::WriteFailed)),
                // Some progress: the loop decides again whether to read.
                Poll::Pending if parts.conn.queued_bytes() < before => return Poll::Ready(Ok(())),
                Poll::Pending => {}
            }
        }
        // Open, with nothing of its own to write: the queue may write
        // through.
        let through = link.wants_through && parts.conn.state() == State::Open && !link.blocked && !parts.conn.wants_write();
        link.outbound.poll_news(cx, *frames, through).map(Ok)
    }
}

/// Moves a close request, and queued frames if `frames`, from the outbound
/// queue into the engine, and returns the other signals.
fn move_outbound(outbound: &Outbound, conn: &mut Connection, frames: bool) -> Signals {
    let taken = outbound.take(frames);
    let frames = !taken.frames.is_empty();
    queue_chunks(conn, taken.frames);
    if let Some((code, reason)) = taken.close {
        conn.close(CloseCode::new(code), &reason);
    }
    Signals { frames, overflowed: taken.overflowed, due: taken.due, stopping: taken.stopping, idle_check: taken.idle_check }
}

/// Moves the queued frames alone from the outbound queue into the engine.
pub(crate) fn move_frames(outbound: &Outbound, conn: &mut Connection) {
    queue_chunks(conn, outbound.take_frames());
}

fn queue_chunks(conn: &mut Connection, chunks: Vec<Chunk>) {
    for chunk in chunks {
        let _ = match chunk {
            Chunk::Copied(frames) => conn.send_coalesced(frames),
            Chunk::Shared(payload) => conn.send_prepared(payload),
        };
    }
}

mod parked;
#[cfg(test)]
mod tests;
