//! The task that owns one WebSocket connection after its handshake.
//!
//! One loop does everything for the socket: decode every whole frame
//! buffered and hand messages to the handler; move frames other tasks queued
//! on the [`Outbound`] into the protocol engine; write as much as the socket
//! takes without blocking (vectored, so replies to one read leave in one
//! write); then wait for whichever comes first: bytes to read, room to
//! write, outbound frames, shutdown, or a timer.
//!
//! Backpressure: while more than `max_pending_write` bytes wait for the
//! socket, the connection stops reading, so a peer that does not read its
//! replies stops being served; frames from other tasks wait in the bounded
//! outbound queue, and a peer that lets that queue overflow is cut off.
//!
//! The read buffer exists only while bytes are being processed: once every
//! frame in it is consumed it is released, so an idle connection holds none.
//!
//! Heartbeat: after `ping_interval` without a frame from the peer the server
//! pings; if nothing arrives within `pong_timeout` the peer is dead, the
//! socket is dropped and the handler learns it with 1006.

use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use switchboard_proto::connection::State;
use switchboard_proto::{CloseCode, Connection, Event, Message};

use crate::config::NetConfig;
use crate::handler::{Handler, Outbox};
use crate::listener::Shutdown;
use crate::outbound::Outbound;

/// Slices handed to one `writev`. Linux takes up to 1024; 64 covers a read's
/// worth of replies without a large array in every connection's future.
const MAX_WRITE_SLICES: usize = 64;

/// How the connection ended, reported to the handler once.
struct Ending {
    reported: bool,
}

impl Ending {
    async fn report<H: Handler>(&mut self, handler: &mut H, code: Option<CloseCode>, reason: &str, clean: bool) {
        if !self.reported {
            self.reported = true;
            handler.on_close(code, reason, clean).await;
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

pub(crate) async fn drive<H: Handler>(
    mut stream: TcpStream,
    mut conn: Connection,
    mut buf: BytesMut,
    mut handler: H,
    config: &NetConfig,
    mut shutdown: Shutdown,
) {
    let outbound = Arc::new(Outbound::new(config.max_outbound_queue));
    // However the loop ends, other tasks stop queueing for this connection.
    let _shut = ShutOnDrop(&outbound);
    let mut ending = Ending { reported: false };
    let mut auto = AutoResponse { version: 0, pair: None };
    let mut close_deadline: Option<Instant> = None;
    let mut heartbeat = Heartbeat::new(config);
    let beat = tokio::time::sleep(config.ping_interval);
    tokio::pin!(beat);
    handler.on_open(&mut Outbox::new(&mut conn, &outbound)).await;

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
        //    close request or a cut-off in any case.
        let room_to_write = conn.queued_bytes() < config.max_pending_write;
        if move_outbound(&outbound, &mut conn, room_to_write) {
            conn.close(Some(CloseCode::POLICY_VIOLATION), "outbound queue limit exceeded: the client reads too slowly");
            ending.report(&mut handler, Some(CloseCode::POLICY_VIOLATION), "slow consumer", false).await;
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
                let _ = timeout(config.close_timeout, stream.shutdown()).await;
                return;
            }
            State::Closed | State::CloseSent if close_deadline.is_none() => {
                close_deadline = Some(Instant::now() + config.close_timeout);
            }
            _ => {}
        }

        // 5. Wait.
        let reading = conn.queued_bytes() < config.max_pending_write && !matches!(conn.state(), State::Closed);
        tokio::select! {
            ready = stream.readable(), if reading => {
                if ready.is_err() {
                    ending.report(&mut handler, Some(CloseCode::ABNORMAL), "read failed", false).await;
                    return;
                }
                buf.reserve(config.read_chunk);
                match stream.try_read_buf(&mut buf) {
                    Ok(0) => {
                        ending.report(&mut handler, Some(CloseCode::ABNORMAL), "connection dropped", false).await;
                        return;
                    }
                    Ok(_) => heartbeat.peer_alive(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        ending.report(&mut handler, Some(CloseCode::ABNORMAL), "read failed", false).await;
                        return;
                    }
                }
            }
            ready = stream.writable(), if conn.wants_write() => {
                if ready.is_err() {
                    ending.report(&mut handler, Some(CloseCode::ABNORMAL), "write failed", false).await;
                    return;
                }
            }
            () = outbound.notified() => {}
            _ = shutdown.wait(), if conn.state() == State::Open => {
                conn.close(Some(CloseCode::GOING_AWAY), "server shutting down");
            }
            () = tokio::time::sleep_until(close_deadline.unwrap_or_else(Instant::now)), if close_deadline.is_some() => {
                ending.report(&mut handler, Some(CloseCode::ABNORMAL), "closing handshake timed out", false).await;
                return;
            }
            () = &mut beat, if conn.state() == State::Open => {
                match heartbeat.on_deadline(Instant::now()) {
                    Beat::Ping(next) => {
                        let _ = conn.send_ping(b"");
                        beat.as_mut().reset(next);
                    }
                    Beat::Wait(next) => beat.as_mut().reset(next),
                    Beat::Dead => {
                        ending.report(&mut handler, Some(CloseCode::ABNORMAL), "no answer to ping", false).await;
                        return;
                    }
                }
            }
        }
    }
}

struct ShutOnDrop<'a>(&'a Outbound);

impl Drop for ShutOnDrop<'_> {
    fn drop(&mut self) {
        self.0.shut();
    }
}

/// Moves a close request, and queued frames if `frames`, from the outbound
/// queue into the engine. Returns true when the queue overflowed.
fn move_outbound(outbound: &Outbound, conn: &mut Connection, frames: bool) -> bool {
    let taken = outbound.take(frames);
    for frame in taken.frames {
        let _ = conn.send_prepared(frame);
    }
    if let Some((code, reason)) = taken.close {
        conn.close(CloseCode::new(code), &reason);
    }
    taken.overflowed
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

/// When to ping and when to give up on a silent peer. A read only records
/// the time; the timer is re-armed lazily when it fires, so the hot path
/// never touches the timer wheel.
struct Heartbeat {
    interval: std::time::Duration,
    timeout: std::time::Duration,
    last_seen: Instant,
    ping_sent: Option<Instant>,
}

enum Beat {
    /// Send a ping, check again at the instant.
    Ping(Instant),
    /// Nothing to do until the instant.
    Wait(Instant),
    /// The peer did not answer in time.
    Dead,
}

impl Heartbeat {
    fn new(config: &NetConfig) -> Heartbeat {
        Heartbeat { interval: config.ping_interval, timeout: config.pong_timeout, last_seen: Instant::now(), ping_sent: None }
    }

    fn peer_alive(&mut self) {
        self.last_seen = Instant::now();
    }

    fn on_deadline(&mut self, now: Instant) -> Beat {
        if let Some(sent) = self.ping_sent {
            if self.last_seen < sent {
                return if now >= sent + self.timeout { Beat::Dead } else { Beat::Wait(sent + self.timeout) };
            }
            self.ping_sent = None;
        }
        let idle_until = self.last_seen + self.interval;
        if now < idle_until {
            return Beat::Wait(idle_until);
        }
        self.ping_sent = Some(now);
        Beat::Ping(now + self.timeout)
    }
}
