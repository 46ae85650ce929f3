//! The task that owns one WebSocket connection after its handshake.
//!
//! One loop does everything for the socket: decode every whole frame
//! buffered and hand messages to the handler; move frames other tasks queued
//! on the [`Outbound`] into the protocol engine; write as much as the socket
//! takes without blocking (vectored, so replies to one read leave in one
//! write); then wait for whichever comes first: bytes to read, room to
//! write, or news on the outbound queue (frames, a close request, a due
//! deadline, shutdown).
//!
//! Backpressure: while more than `max_pending_write` bytes wait for the
//! socket, the connection stops reading, so a peer that does not read its
//! replies stops being served; frames from other tasks wait in the bounded
//! outbound queue, and a peer that lets that queue overflow is cut off.
//!
//! Memory: an idle connection is this task's state and little else, so that
//! state is kept small. The read buffer exists only while bytes are being
//! processed (once every frame in it is consumed it is released); the wait
//! is a future of references (no per-connection timer or notification
//! future); deadlines are checked by the listener's sweep (`timers`); the
//! handler's `on_open` and `on_close`, which run once, are boxed. What stays
//! inline are the handler's per-message futures: a [`Handler`] should keep
//! those small. The budget: tokio allocates the task as this future plus
//! its own header and trailer in a block aligned to 128, and mimalloc
//! serves 128-aligned blocks without over-allocating only at powers of two,
//! so the task should fit 256 bytes, which leaves the future 152 (a test in
//! `listener` pins that). The engine, read buffer and handler therefore
//! live in a box of their own, and the task keeps the socket, the timers
//! and a few pointers.
//!
//! Heartbeat: after `ping_interval` without a frame from the peer the server
//! pings; if nothing arrives within `pong_timeout` the peer is dead, the
//! socket is dropped and the handler learns it with 1006. Both are checked
//! once per timer tick (see `NetConfig::timer_tick`).

use std::borrow::Cow;
use std::future::Future;
use std::io::{self, IoSlice};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use switchboard_proto::connection::State;
use switchboard_proto::{CloseCode, Connection, Event, Message, ProtocolError};

use crate::config::NetConfig;
use crate::handler::{Handler, Outbox};
use crate::listener::Common;
use crate::outbound::{Chunk, Outbound};
use crate::spare;
use crate::timers::now_ms;

/// Slices handed to one `writev`. Linux takes up to 1024; 64 covers a read's
/// worth of replies without a large array in every connection's future.
const MAX_WRITE_SLICES: usize = 64;

/// How the connection ended, reported to the handler once.
struct Ending {
    reported: bool,
}

impl Ending {
    /// The handler's `on_close`, the first time only. Boxed: it runs once per
    /// connection, and its future (a room event, a wait for the room) would
    /// otherwise be part of every connection's task state for the
    /// connection's whole life.
    fn report<'a, H: Handler>(&mut self, handler: &'a mut H, code: Option<CloseCode>, reason: Cow<'static, str>, clean: bool) -> Option<Pin<Box<impl Future<Output = ()> + Send + 'a>>> {
        if self.reported {
            return None;
        }
        self.reported = true;
        Some(Box::pin(async move { handler.on_close(code, &reason, clean).await }))
    }
}

/// Why the engine stopped yielding events.
enum ReadEnd {
    /// Everything buffered was consumed.
    Drained,
    /// The peer's close frame.
    Closed(Option<CloseCode>, String),
    /// The peer broke the protocol.
    Failed(ProtocolError),
}

/// The auto-response pair, cached per connection (a pointer to the pair
/// the room shares among its connections), replaced when the outbound
/// queue reports a change.
#[derive(Default)]
struct AutoResponse(Option<Arc<(Bytes, Bytes)>>);

impl AutoResponse {
    /// The response frame if `message` is exactly the auto-response request.
    #[inline]
    fn answer(&self, message: &Message) -> Option<Bytes> {
        match (self.0.as_deref(), message) {
            (Some((request, response)), Message::Text(text)) if text == request => Some(response.clone()),
            _ => None,
        }
    }
}

/// The connection's outbound queue; when the connection ends, however it
/// ends, other tasks can no longer queue on it.
struct OutboundGuard(Arc<Outbound>);

impl Drop for OutboundGuard {
    fn drop(&mut self) {
        self.0.shut();
    }
}

/// What a connection owns besides its socket and its timers: the protocol
/// engine, the read buffer and the handler. Boxed, so that the task's own
/// state stays under the 152 bytes that make tokio's task block 256 bytes
/// (see the module docs).
struct Parts<H> {
    conn: Connection,
    buf: BytesMut,
    handler: H,
}

/// Drives one connection until it ends.
///
/// Its state is what an idle connection costs, so every value that lives
/// across an `.await` here is weighed: the engine, the buffer and the
/// handler live in one box (`Parts`), rare paths are boxed (`on_open`,
/// `on_close`), a handler's future is made where the message is at hand
/// and awaited after (so the message is not kept beside it), and the
/// failures that end the connection leave the loop to one report.
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: an `async fn` keeps its arguments in its state (the engine, buffer
/// and handler too, beside their box), and each `mut` one twice.
#[allow(clippy::manual_async_fn)]
pub(crate) fn drive<H, C>(mut stream: TcpStream, conn: Connection, buf: BytesMut, handler: H, common: C) -> impl Future<Output = ()> + Send + 'static
where
    H: Handler,
    C: Deref<Target = Common> + Send + 'static,
{
    let mut parts = Box::new(Parts { conn, buf, handler });
    async move {
        let outbound = OutboundGuard(Arc::new(Outbound::new(common.config.max_outbound_queue)));
        common.timers.register(&outbound.0, &common.shutdown);
        let mut ending = Ending { reported: false };
        let mut auto = AutoResponse::default();
        let mut clock = Clock::new(now_ms());
        // Set once the closing handshake started; `clock.mark` is then its end.
        let mut closing = false;
        // Once per connection, boxed like `on_close`.
        Box::pin(parts.handler.on_open(Outbox::new(&mut parts.conn, &outbound.0))).await;

        let (code, reason): (_, &'static str) = loop {
            // 1. Everything already read.
            let mut delivered = false;
            // Scoped so that nothing of the read's end is kept while later
            // steps await.
            {
                let report = {
                    let read_end = loop {
                        let delivering = match parts.conn.handle_read(&mut parts.buf) {
                            Ok(Some(Event::Message(message))) => {
                                if let Some(response) = auto.answer(&message) {
                                    let _ = parts.conn.send_prepared(response);
                                    outbound.0.record_auto_response();
                                    continue;
                                }
                                match parts.handler.take_message(message) {
                                    Ok(()) => {
                                        delivered = true;
                                        continue;
                                    }
                                    Err(message) => parts.handler.on_message(message, Outbox::new(&mut parts.conn, &outbound.0)),
                                }
                            }
                            Ok(Some(Event::Close(frame))) => break ReadEnd::Closed(frame.code, frame.reason),
                            Ok(Some(Event::Ping(_) | Event::Pong(_))) => continue,
                            Ok(None) => break ReadEnd::Drained,
                            Err(error) => break ReadEnd::Failed(error),
                        };
                        delivering.await;
                        delivered = true;
                    };
                    match read_end {
                        ReadEnd::Drained => None,
                        ReadEnd::Closed(code, reason) => Some(ending.report(&mut parts.handler, code, reason.into(), true)),
                        ReadEnd::Failed(error) => {
                            // The handler hears of the messages before the error in `on_close`.
                            delivered = false;
                            Some(ending.report(&mut parts.handler, Some(error.close_code()), error.reason().into(), false))
                        }
                    }
                };
                if let Some(report) = report {
                    // Let the handler queue what must precede our close frame
                    // (replies to earlier messages), then send it.
                    if let Some(on_close) = report {
                        on_close.await;
                    }
                    move_outbound(&outbound.0, &mut parts.conn, true);
                    parts.conn.reply_close();
                }
            }
            if delivered {
                parts.handler.on_read_end(Outbox::new(&mut parts.conn, &outbound.0)).await;
            }
            if parts.buf.is_empty() && !parts.conn.is_mid_message() {
                spare::put(std::mem::take(&mut parts.buf), 2 * common.config.read_chunk);
            }

            // 2. Frames from other tasks while the engine's queue is short; a
            //    close request, a cut-off, a due deadline or shutdown in any case.
            let room_to_write = parts.conn.queued_bytes() < common.config.max_pending_write;
            // In a block: a `News` alive across the awaits below would be
            // part of every connection's state.
            let (overflowed, due, stopping) = {
                let news = move_outbound(&outbound.0, &mut parts.conn, room_to_write);
                if let Some(pair) = news.auto {
                    auto.0 = pair;
                }
                (news.overflowed, news.due, news.stopping)
            };
            if overflowed {
                parts.conn.close(Some(CloseCode::POLICY_VIOLATION), "outbound queue limit exceeded: the client reads too slowly");
                if let Some(on_close) = ending.report(&mut parts.handler, Some(CloseCode::POLICY_VIOLATION), "slow consumer".into(), false) {
                    on_close.await;
                }
            }
            if stopping && parts.conn.state() == State::Open {
                parts.conn.close(Some(CloseCode::GOING_AWAY), "server shutting down");
            }
            if due {
                let now = now_ms();
                if closing {
                    if now >= clock.mark {
                        break (Some(CloseCode::ABNORMAL), "closing handshake timed out");
                    }
                } else if parts.conn.state() == State::Open {
                    match clock.on_deadline(now, &common.config) {
                        Beat::Ping => {
                            let _ = parts.conn.send_ping(b"");
                        }
                        Beat::Wait => {}
                        Beat::Dead => break (Some(CloseCode::ABNORMAL), "no answer to ping"),
                    }
                }
            }

            // 3. Write what the socket takes now.
            if write_ready(&mut stream, &mut parts.conn).is_err() {
                break (Some(CloseCode::ABNORMAL), "write failed");
            }

            // 4. Closing.
            match parts.conn.state() {
                State::Closed if !parts.conn.wants_write() => {
                    // The server closes the TCP connection first (RFC 6455 §7.1.1).
                    // (A TCP shutdown completes at once; it never waits.)
                    let _ = stream.shutdown().await;
                    return;
                }
                State::Closed | State::CloseSent if !closing => {
                    closing = true;
                    clock.mark = now_ms() + common.config.close_timeout.as_millis() as u64;
                }
                _ => {}
            }
            // Published on every pass (a plain store); the sweep clears it when it fires.
            outbound.0.set_deadline(if closing { clock.mark } else { clock.heartbeat_deadline(&common.config) });

            // 5. Wait.
            let room_to_write = parts.conn.queued_bytes() < common.config.max_pending_write;
            let reading = room_to_write && !matches!(parts.conn.state(), State::Closed);
            let wait = Wait { stream: &stream, outbound: &outbound.0, read: reading, write: parts.conn.wants_write(), frames: room_to_write };
            match wait.await {
                Woken::Readable(Ok(())) => {
                    outbound.0.forget_waker();
                    if parts.buf.capacity() == 0 {
                        parts.buf = spare::take();
                    }
                    parts.buf.reserve(common.config.read_chunk);
                    match read_available(&stream, &mut parts.buf) {
                        Ok(0) => break (Some(CloseCode::ABNORMAL), "connection dropped"),
                        Ok(_) => clock.peer_alive(now_ms()),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => break (Some(CloseCode::ABNORMAL), "read failed"),
                    }
                }
                Woken::Readable(Err(_)) => break (Some(CloseCode::ABNORMAL), "read failed"),
                Woken::Writable(Err(_)) => break (Some(CloseCode::ABNORMAL), "write failed"),
                Woken::Writable(Ok(())) | Woken::News => {}
            }
        };
        // The socket failed or the peer went silent: the handler learns it
        // (unless it already heard of the end) and the socket is dropped.
        let report = ending.report(&mut parts.handler, code, reason.into(), false);
        if let Some(on_close) = report {
            on_close.await;
        }
    }
}

/// What ended a wait.
enum Woken {
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    /// Something to take from the outbound queue.
    News,
}

/// Waits for the socket (to read, if `read`; to write, if `write`) or for
/// news on the outbound queue (frames count only if `frames`). It stores
/// nothing but references: the socket keeps the task's waker in its
/// registration and the outbound queue in its lock, so an idle connection
/// pays for no waiting future of its own.
struct Wait<'a> {
    stream: &'a TcpStream,
    outbound: &'a Outbound,
    read: bool,
    write: bool,
    frames: bool,
}

impl Future for Wait<'_> {
    type Output = Woken;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Woken> {
        if self.read {
            if let Poll::Ready(ready) = self.stream.poll_read_ready(cx) {
                return Poll::Ready(Woken::Readable(ready));
            }
        }
        if self.write {
            if let Poll::Ready(ready) = self.stream.poll_write_ready(cx) {
                return Poll::Ready(Woken::Writable(ready));
            }
        }
        self.outbound.poll_news(cx, self.frames).map(|()| Woken::News)
    }
}

/// Signals taken from the outbound queue besides frames and close requests.
struct News {
    overflowed: bool,
    due: bool,
    stopping: bool,
    auto: Option<Option<Arc<(Bytes, Bytes)>>>,
}

/// Moves a close request, and queued frames if `frames`, from the outbound
/// queue into the engine, and returns the other signals.
fn move_outbound(outbound: &Outbound, conn: &mut Connection, frames: bool) -> News {
    let taken = outbound.take(frames);
    for chunk in taken.frames {
        let _ = match chunk {
            Chunk::Copied(frames) => conn.send_coalesced(frames),
            Chunk::Shared(payload) => conn.send_prepared(payload),
        };
    }
    if let Some((code, reason)) = taken.close {
        conn.close(CloseCode::new(code), &reason);
    }
    News { overflowed: taken.overflowed, due: taken.due, stopping: taken.stopping, auto: taken.auto }
}

/// Reads what the socket holds into `buf`'s spare capacity.
///
/// A read that returns less than the space offered emptied the socket's
/// receive queue (epoll(7) says so for stream sockets), so the socket's
/// readiness is cleared at once, by answering `WouldBlock` to `try_io` after
/// the read. The next wait then sleeps until new bytes come, instead of
/// first trying a read that fails with `EAGAIN`: one system call fewer per
/// batch of messages. tokio clears readiness only if no new event arrived
/// since it was observed, so bytes that land in between still wake us.
pub(crate) fn read_available(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let offered = buf.capacity() - buf.len();
    let mut read = None;
    let outcome = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < offered {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match (outcome, read) {
        (Ok(n), _) => Ok(n),
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (Err(e), _) => Err(e),
    }
}

/// Writes queued bytes until the socket would block. Vectored, so many
/// frames leave in one system call. One buffer (the usual case: small
/// frames are gathered into one) goes out with `send`, which skips the
/// file layer that `writev` passes through (a visible share of the kernel's
/// time per write in broadcast profiles; docs/benchmarks.md).
fn write_ready(stream: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    while conn.wants_write() {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let n = conn.transmit_chunks(&mut slices);
            let result = if n == 1 { stream.try_write(&slices[0]) } else { stream.try_write_vectored(&slices[..n]) };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        conn.advance(written);
    }
    Ok(())
}

/// The connection's timers, in milliseconds on the `now_ms` clock. A read
/// only records the time; the deadline is derived when the loop publishes
/// it, so the hot path never touches a timer.
struct Clock {
    last_seen: u64,
    /// While open: when the unanswered ping went out (0: none). Once
    /// closing: when the closing handshake times out.
    mark: u64,
}

enum Beat {
    /// Send a ping.
    Ping,
    /// Nothing to do yet.
    Wait,
    /// The peer did not answer in time.
    Dead,
}

impl Clock {
    fn new(now: u64) -> Clock {
        Clock { last_seen: now, mark: 0 }
    }

    fn peer_alive(&mut self, now: u64) {
        self.last_seen = now;
    }

    /// The next heartbeat check while open.
    fn heartbeat_deadline(&self, config: &NetConfig) -> u64 {
        match self.mark {
            0 => self.last_seen + config.ping_interval.as_millis() as u64,
            ping_sent => ping_sent + config.pong_timeout.as_millis() as u64,
        }
    }

    /// The heartbeat, when a deadline came while open.
    fn on_deadline(&mut self, now: u64, config: &NetConfig) -> Beat {
        let (interval, timeout) = (config.ping_interval.as_millis() as u64, config.pong_timeout.as_millis() as u64);
        if self.mark != 0 {
            // Anything read since the ping (in the same millisecond too) is an answer.
            if self.last_seen < self.mark {
                return if now >= self.mark + timeout { Beat::Dead } else { Beat::Wait };
            }
            self.mark = 0;
        }
        if now < self.last_seen + interval {
            return Beat::Wait;
        }
        self.mark = now;
        Beat::Ping
    }
}
