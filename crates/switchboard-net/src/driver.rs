//! The task that owns one WebSocket connection after its handshake.
//!
//! One loop does everything for the socket, in this order: decode every whole
//! frame buffered, let the handler answer, write all queued frames in
//! vectored writes, then wait for more bytes, shutdown or the close deadline.
//! Replies to everything one read brought in leave in one write. While the
//! peer does not read, writes wait and nothing more is read, so a slow reader
//! holds its own socket's kernel buffers, not server memory.
//!
//! The read buffer exists only while bytes are being processed: once every
//! frame in it is consumed it is released, so an idle connection holds none.
//!
//! Heartbeat: after `ping_interval` without a frame from the peer the server
//! pings; if nothing arrives within `pong_timeout` the peer is dead, the
//! socket is dropped and the handler gets `on_close` with 1006.

use std::io::{self, IoSlice};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

use switchboard_proto::connection::State;
use switchboard_proto::{CloseCode, Connection, Event};

use crate::config::NetConfig;
use crate::handler::{Handler, Outbox};
use crate::listener::Shutdown;

/// Slices handed to one `writev`. Linux takes up to 1024; 64 covers a read's
/// worth of replies without a large array in every connection's future.
const MAX_WRITE_SLICES: usize = 64;

/// Who ended the connection, for the handler's `on_close`.
struct Ending {
    reported: bool,
}

impl Ending {
    fn report<H: Handler>(&mut self, handler: &mut H, code: Option<CloseCode>, reason: &str, clean: bool) {
        if !self.reported {
            self.reported = true;
            handler.on_close(code, reason, clean);
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
    let mut ending = Ending { reported: false };
    let mut close_deadline: Option<Instant> = None;
    let mut heartbeat = Heartbeat::new(config);
    let beat = tokio::time::sleep(config.ping_interval);
    tokio::pin!(beat);
    handler.on_open(&mut Outbox::new(&mut conn));
    loop {
        loop {
            match conn.handle_read(&mut buf) {
                Ok(Some(Event::Message(message))) => handler.on_message(message, &mut Outbox::new(&mut conn)),
                Ok(Some(Event::Close(frame))) => {
                    conn.reply_close();
                    ending.report(&mut handler, frame.code, &frame.reason, true);
                }
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                Ok(None) => break,
                Err(error) => {
                    ending.report(&mut handler, Some(error.close_code()), error.reason(), false);
                    break;
                }
            }
        }
        if buf.is_empty() && !conn.is_mid_message() {
            buf = BytesMut::new();
        }

        let flushed = if conn.state() == State::Open {
            flush(&mut stream, &mut conn).await
        } else {
            // While closing, a peer that stops reading must not hold the task.
            timeout(config.close_timeout, flush(&mut stream, &mut conn)).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
        };
        if flushed.is_err() {
            ending.report(&mut handler, Some(CloseCode::ABNORMAL), "write failed", false);
            return;
        }

        match conn.state() {
            State::Closed => {
                // The server closes the TCP connection first (RFC 6455 §7.1.1).
                let _ = timeout(config.close_timeout, stream.shutdown()).await;
                return;
            }
            State::CloseSent if close_deadline.is_none() => close_deadline = Some(Instant::now() + config.close_timeout),
            _ => {}
        }

        tokio::select! {
            ready = stream.readable() => {
                if ready.is_err() {
                    ending.report(&mut handler, Some(CloseCode::ABNORMAL), "read failed", false);
                    return;
                }
                buf.reserve(config.read_chunk);
                match stream.try_read_buf(&mut buf) {
                    Ok(0) => {
                        ending.report(&mut handler, Some(CloseCode::ABNORMAL), "connection dropped", false);
                        return;
                    }
                    Ok(_) => heartbeat.peer_alive(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        ending.report(&mut handler, Some(CloseCode::ABNORMAL), "read failed", false);
                        return;
                    }
                }
            }
            _ = shutdown.wait(), if conn.state() == State::Open => {
                conn.close(Some(CloseCode::GOING_AWAY), "server shutting down");
            }
            _ = sleep_until(close_deadline.unwrap_or_else(Instant::now)), if close_deadline.is_some() => {
                ending.report(&mut handler, Some(CloseCode::ABNORMAL), "no close frame from the peer", false);
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
                        ending.report(&mut handler, Some(CloseCode::ABNORMAL), "no answer to ping", false);
                        return;
                    }
                }
            }
        }
    }
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

/// Writes everything queued, batching frames into vectored writes.
async fn flush(stream: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    while conn.wants_write() {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let n = conn.transmit_chunks(&mut slices);
            stream.write_vectored(&slices[..n]).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        conn.advance(written);
    }
    Ok(())
}
