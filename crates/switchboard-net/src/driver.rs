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
//! those small.
//!
//! Heartbeat: after `ping_interval` without a frame from the peer the server
//! pings; if nothing arrives within `pong_timeout` the peer is dead, the
//! socket is dropped and the handler learns it with 1006. Both are checked
//! once per timer tick (see `NetConfig::timer_tick`).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use switchboard_proto::connection::State;
use switchboard_proto::{CloseCode, Connection, Event, Message};

use crate::config::NetConfig;
use crate::handler::{Handler, Outbox};
use crate::listener::Shutdown;
use crate::outbound::Outbound;
use crate::timers::{now_ms, Timers};

/// Slices handed to one `writev`. Linux takes up to 1024; 64 covers a read's
/// worth of replies without a large array in every connection's future.
const MAX_WRITE_SLICES: usize = 64;

/// How the connection ended, reported to the handler once.
struct Ending {
    reported: bool,
}

impl Ending {
    /// The handler's `on_close` runs once per connection, boxed: its future
    /// (a room event, a wait for the room) would otherwise be part of every
    /// connection's task state for the connection's whole life.
    async fn report<H: Handler>(&mut self, handler: &mut H, code: Option<CloseCode>, reason: &str, clean: bool) {
        if !self.reported {
            self.reported = true;
            Box::pin(handler.on_close(code, reason, clean)).await;
        }
    }
}

/// The auto-response pair, cached per connection.
struct AutoResponse {
    version: u64,
    pair: Option<(Bytes, Bytes)>,
}

impl AutoResponse {
    /// The response frame if `message` is exactly the auto-response request.
    fn answer(&mut self, outbound: &Outbound, message: &Message) -> Option<Bytes> {
        let version = outbound.auto_version();
        if version != self.version {
            self.version = version;
            self.pair = outbound.auto_pair();
        }
        match (&self.pair, message) {
            (Some((request, response)), Message::Text(text)) if text == request => Some(response.clone()),
            _ => None,
        }
    }
}

/// Drives one connection until it ends.
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: an `async fn` keeps each `mut` argument twice in its state (the
/// argument and the binding it is moved into), which for the protocol
/// engine alone would cost every connection hundreds of bytes.
#[allow(clippy::manual_async_fn)]
pub(crate) fn drive<'a, H: Handler>(
    mut stream: TcpStream,
    mut conn: Connection,
    mut buf: BytesMut,
    mut handler: H,
    config: &'a NetConfig,
    timers: &'a Timers,
    shutdown: &'a Shutdown,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        let outbound = Arc::new(Outbound::new(config.max_outbound_queue));
        // However the loop ends, other tasks stop queueing for this connection.
        let _shut = ShutOnDrop(&outbound);
        timers.register(&outbound, shutdown);
        let mut ending = Ending { reported: false };
        let mut auto = AutoResponse { version: 0, pair: None };
        let mut heartbeat = Heartbeat::new(now_ms(), config);
        // Deadlines on the `now_ms` clock; 0: none.
        let mut close_deadline = 0;
        let mut published = 0;
        // Once per connection, boxed like `on_close`.
        Box::pin(handler.on_open(&mut Outbox::new(&mut conn, &outbound))).await;

        loop {
            // 1. Everything already read.
            let mut delivered = false;
            loop {
                match conn.handle_read(&mut buf) {
                    Ok(Some(Event::Message(message))) => match auto.answer(&outbound, &message) {
                        Some(response) => {
                            let _ = conn.send_prepared(response);
                            outbound.record_auto_response();
                        }
                        None => {
                            handler.on_message(message, &mut Outbox::new(&mut conn, &outbound)).await;
                            delivered = true;
                        }
                    },
                    Ok(Some(Event::Close(frame))) => {
                        // Let the handler queue what must precede our reply, then reply.
                        ending.report(&mut handler, frame.code, &frame.reason, true).await;
                        move_outbound(&outbound, &mut conn, true);
                        conn.reply_close();
                    }
                    Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                    Ok(None) => {
                        if delivered {
                            handler.on_read_end(&mut Outbox::new(&mut conn, &outbound)).await;
                        }
                        break;
                    }
                    Err(error) => {
                        // Replies to the messages before the error still go first.
                        ending.report(&mut handler, Some(error.close_code()), error.reason(), false).await;
                        move_outbound(&outbound, &mut conn, true);
                        conn.reply_close();
                        break;
                    }
                }
            }
            if buf.is_empty() && !conn.is_mid_message() {
                buf = BytesMut::new();
            }

            // 2. Frames from other tasks while the engine's queue is short; a
            //    close request, a cut-off, a due deadline or shutdown in any case.
            let room_to_write = conn.queued_bytes() < config.max_pending_write;
            let news = move_outbound(&outbound, &mut conn, room_to_write);
            if news.overflowed {
                conn.close(Some(CloseCode::POLICY_VIOLATION), "outbound queue limit exceeded: the client reads too slowly");
                ending.report(&mut handler, Some(CloseCode::POLICY_VIOLATION), "slow consumer", false).await;
            }
            if news.stopping && conn.state() == State::Open {
                conn.close(Some(CloseCode::GOING_AWAY), "server shutting down");
            }
            if news.due {
                // The sweep cleared the published deadline when it fired.
                published = 0;
                let now = now_ms();
                if close_deadline != 0 && now >= close_deadline {
                    ending.report(&mut handler, Some(CloseCode::ABNORMAL), "closing handshake timed out", false).await;
                    return;
                }
                if conn.state() == State::Open {
                    match heartbeat.on_deadline(now) {
                        Beat::Ping => {
                            let _ = conn.send_ping(b"");
                        }
                        Beat::Wait => {}
                        Beat::Dead => {
                            ending.report(&mut handler, Some(CloseCode::ABNORMAL), "no answer to ping", false).await;
                            return;
                        }
                    }
                }
            }

            // 3. Write what the socket takes now.
            if write_ready(&mut stream, &mut conn).is_err() {
                ending.report(&mut handler, Some(CloseCode::ABNORMAL), "write failed", false).await;
                return;
            }

            // 4. Closing.
            match conn.state() {
                State::Closed if !conn.wants_write() => {
                    // The server closes the TCP connection first (RFC 6455 §7.1.1).
                    // (A TCP shutdown completes at once; it never waits.)
                    let _ = stream.shutdown().await;
                    return;
                }
                State::Closed | State::CloseSent if close_deadline == 0 => {
                    close_deadline = now_ms() + config.close_timeout.as_millis() as u64;
                }
                _ => {}
            }
            let deadline = match conn.state() {
                State::Open if close_deadline == 0 => heartbeat.check_at,
                State::Open => heartbeat.check_at.min(close_deadline),
                _ => close_deadline,
            };
            if deadline != published {
                outbound.set_deadline(deadline);
                published = deadline;
            }

            // 5. Wait.
            let room_to_write = conn.queued_bytes() < config.max_pending_write;
            let reading = room_to_write && !matches!(conn.state(), State::Closed);
            let wait = Wait { stream: &stream, outbound: &outbound, read: reading, write: conn.wants_write(), frames: room_to_write };
            match wait.await {
                Woken::Readable(Err(_)) => {
                    ending.report(&mut handler, Some(CloseCode::ABNORMAL), "read failed", false).await;
                    return;
                }
                Woken::Readable(Ok(())) => {
                    buf.reserve(config.read_chunk);
                    match stream.try_read_buf(&mut buf) {
                        Ok(0) => {
                            ending.report(&mut handler, Some(CloseCode::ABNORMAL), "connection dropped", false).await;
                            return;
                        }
                        Ok(_) => heartbeat.peer_alive(now_ms()),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => {
                            ending.report(&mut handler, Some(CloseCode::ABNORMAL), "read failed", false).await;
                            return;
                        }
                    }
                }
                Woken::Writable(Err(_)) => {
                    ending.report(&mut handler, Some(CloseCode::ABNORMAL), "write failed", false).await;
                    return;
                }
                Woken::Writable(Ok(())) | Woken::News => {}
            }
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

struct ShutOnDrop<'a>(&'a Outbound);

impl Drop for ShutOnDrop<'_> {
    fn drop(&mut self) {
        self.0.shut();
    }
}

/// Signals taken from the outbound queue besides frames and close requests.
struct News {
    overflowed: bool,
    due: bool,
    stopping: bool,
}

/// Moves a close request, and queued frames if `frames`, from the outbound
/// queue into the engine, and returns the other signals.
fn move_outbound(outbound: &Outbound, conn: &mut Connection, frames: bool) -> News {
    let taken = outbound.take(frames);
    for frame in taken.frames {
        let _ = conn.send_prepared(frame);
    }
    if let Some((code, reason)) = taken.close {
        conn.close(CloseCode::new(code), &reason);
    }
    News { overflowed: taken.overflowed, due: taken.due, stopping: taken.stopping }
}

/// Writes queued bytes until the socket would block. Vectored, so many
/// frames leave in one system call.
fn write_ready(stream: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    while conn.wants_write() {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let n = conn.transmit_chunks(&mut slices);
            match stream.try_write_vectored(&slices[..n]) {
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

/// When to ping and when to give up on a silent peer, in milliseconds on
/// the `now_ms` clock. A read only records the time; the deadline is moved
/// lazily when it is reached, so the hot path never touches the timers.
struct Heartbeat {
    interval: u64,
    timeout: u64,
    last_seen: u64,
    /// When the unanswered ping went out; 0: none.
    ping_sent: u64,
    /// When `on_deadline` is due next.
    check_at: u64,
}

enum Beat {
    /// Send a ping.
    Ping,
    /// Nothing to do until `check_at`.
    Wait,
    /// The peer did not answer in time.
    Dead,
}

impl Heartbeat {
    fn new(now: u64, config: &NetConfig) -> Heartbeat {
        let interval = config.ping_interval.as_millis() as u64;
        Heartbeat { interval, timeout: config.pong_timeout.as_millis() as u64, last_seen: now, ping_sent: 0, check_at: now + interval }
    }

    fn peer_alive(&mut self, now: u64) {
        self.last_seen = now;
    }

    fn on_deadline(&mut self, now: u64) -> Beat {
        if self.ping_sent != 0 {
            // Anything read since the ping (in the same millisecond too) is an answer.
            if self.last_seen < self.ping_sent {
                if now >= self.ping_sent + self.timeout {
                    return Beat::Dead;
                }
                self.check_at = self.ping_sent + self.timeout;
                return Beat::Wait;
            }
            self.ping_sent = 0;
        }
        let idle_until = self.last_seen + self.interval;
        if now < idle_until {
            self.check_at = idle_until;
            return Beat::Wait;
        }
        self.ping_sent = now;
        self.check_at = now + self.timeout;
        Beat::Ping
    }
}
