//! Access logs: one line per HTTP request and one per WebSocket session,
//! at `info` under the target `access` (so `RUST_LOG=info,access=off`
//! silences them, and a log shipper can route them on the target).
//!
//! What is never logged: query strings (they carry tokens: the HTTP line
//! has the path only, the session line names the room, not the request
//! target), headers, and message contents.
//!
//! A program that formats its logs with tracing-subscriber's `fmt` (no
//! colours) or `json` format to stderr says so with [`write_directly`];
//! the lines are then built by `access_line` and written to stderr in one
//! write each, at a fraction of the generic formatter's cost, where
//! otherwise they are ordinary `tracing` events. Either way the target's
//! filter decides whether they are written.
//!
//! On an event loop (a current-thread runtime that calls
//! `Batching::start`) those directly written lines wait in the loop's own
//! buffer and leave together: `BATCH_WAIT` after the first of them, at
//! once when `BATCH_LIMIT` bytes wait, and when the batching ends (the
//! loop's listeners have drained). A busy loop then makes one `write` for
//! many sessions instead of one each; a line reaches the log at most
//! `BATCH_WAIT` late, and a process killed outright loses at most that
//! much of the log.

use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, StatusCode};
use switchboard_net::Traffic;
use switchboard_room::RoomName;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, Level};

pub use crate::access_line::LineFormat;
use crate::access_line::{self, Value};

static DIRECT: OnceLock<LineFormat> = OnceLock::new();

/// Writes access lines straight to stderr in `format` from now on, which
/// must be how the process's tracing subscriber writes its own events to
/// stderr (without colours), so that the log stays one format. Later calls
/// change nothing.
pub fn write_directly(format: LineFormat) {
    let _ = DIRECT.set(format);
}

/// How lines go out now: `None` to the tracing event, `Some(None)` nowhere
/// (the program writes them itself and the `access` target is off), or
/// `Some(Some(format))` straight to stderr. Asked before a line's fields
/// are formatted, so a disabled log costs a request nothing.
fn direct() -> Option<Option<LineFormat>> {
    let format = *DIRECT.get()?;
    Some(tracing::enabled!(target: "access", Level::INFO).then_some(format))
}

/// How long a batched line may wait for others.
pub(crate) const BATCH_WAIT: Duration = Duration::from_millis(100);

/// Batched lines leave at once when this many bytes wait.
pub(crate) const BATCH_LIMIT: usize = 16 * 1024;

thread_local! {
    /// The lines waiting on this thread's event loop, while it batches.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// One event loop's waiting lines and where they go.
struct Batch {
    lines: Vec<u8>,
    out: Box<dyn Write>,
    /// Told when the first line of a batch arrives: the flusher writes it
    /// out `BATCH_WAIT` later, with whatever joined it.
    first: Arc<Notify>,
}

impl Batch {
    fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let first = self.lines.is_empty();
        write(&mut self.lines);
        if self.lines.len() >= BATCH_LIMIT {
            self.flush();
        } else if first {
            self.first.notify_one();
        }
    }

    fn flush(&mut self) {
        if !self.lines.is_empty() {
            // As with a single line: logging must not fail anything.
            let _ = self.out.write_all(&self.lines);
            self.lines.clear();
        }
    }
}

/// This thread's access lines are batched while it lives; when it drops
/// (on the same thread), what waits is written.
pub(crate) struct Batching {
    flusher: JoinHandle<()>,
}

impl Batching {
    /// Batches the lines of this thread, whose runtime must be a
    /// current-thread one (the flusher runs on it), to stderr.
    pub(crate) fn start() -> Batching {
        Batching::start_to(Box::new(std::io::stderr()))
    }

    fn start_to(out: Box<dyn Write>) -> Batching {
        let first = Arc::new(Notify::new());
        BATCH.with(|batch| *batch.borrow_mut() = Some(Batch { lines: Vec::new(), out, first: first.clone() }));
        let flusher = tokio::spawn(async move {
            loop {
                first.notified().await;
                tokio::time::sleep(BATCH_WAIT).await;
                BATCH.with(|batch| batch.borrow_mut().as_mut().map(Batch::flush));
            }
        });
        Batching { flusher }
    }
}

impl Drop for Batching {
    fn drop(&mut self) {
        self.flusher.abort();
        // `try_with`: a runtime dropped while its thread ends may drop this
        // after the thread's batch is gone.
        if let Ok(Some(mut batch)) = BATCH.try_with(|batch| batch.borrow_mut().take()) {
            batch.flush();
        }
    }
}

/// Writes one line straight to stderr, in one write, or into the thread's
/// batch.
fn write_line(format: LineFormat, message: &str, fields: &[(&str, Value)]) {
    thread_local! {
        static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let batched = BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        let batch = batch.as_mut()?;
        batch.push(|lines| access_line::write(lines, format, SystemTime::now(), message, fields));
        Some(())
    });
    if batched.is_some() {
        return;
    }
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        access_line::write(&mut line, format, SystemTime::now(), message, fields);
        // Logging must not fail a request; a full or closed stderr loses
        // the line, as the event formatter would.
        let _ = std::io::stderr().write_all(&line);
    });
}

/// One HTTP request, once answered. `path` must not hold the query.
pub(crate) fn http(peer: SocketAddr, method: &Method, path: &str, status: StatusCode, took: Duration) {
    match direct() {
        Some(Some(format)) => {
            let peer = peer.to_string();
            let fields = [
                ("kind", Value::Str("http")),
                ("peer", Value::Shown(&peer)),
                ("method", Value::Shown(method.as_str())),
                ("path", Value::Str(path)),
                ("status", Value::U64(status.as_u16().into())),
                ("duration_ms", Value::Millis(took)),
            ];
            return write_line(format, "http request", &fields);
        }
        Some(None) => return,
        None => {}
    }
    info!(target: "access", kind = "http", %peer, method = %method, path, status = status.as_u16(), duration_ms = millis(took), "http request");
}

/// One WebSocket session, at its end. `client` is the client's address
/// (the proxy's word for it when the peer is a trusted proxy); `code` the
/// close code it ended with.
pub(crate) fn session(client: IpAddr, room: &RoomName, took: Duration, traffic: Traffic, code: Option<u16>) {
    let route = direct();
    if route == Some(None) {
        return;
    }
    let mut code_digits = itoa::Buffer::new();
    let code = code.map_or("none", |c| code_digits.format(c));
    let room_text = [room.kind.as_str(), "/", room.id.as_str()].concat();
    if let Some(Some(format)) = route {
        let fields = [
            ("kind", Value::Str("websocket")),
            ("client", Value::Ip(client)),
            ("room", Value::Shown(&room_text)),
            ("duration_ms", Value::Millis(took)),
            ("bytes_in", Value::U64(traffic.read)),
            ("bytes_out", Value::U64(traffic.written)),
            ("close_code", Value::Shown(code)),
        ];
        return write_line(format, "websocket session", &fields);
    }
    info!(
        target: "access",
        kind = "websocket",
        %client,
        room = %room_text,
        duration_ms = millis(took),
        bytes_in = traffic.read,
        bytes_out = traffic.written,
        close_code = %code,
        "websocket session"
    );
}

/// Milliseconds with microseconds as the fraction.
fn millis(took: Duration) -> f64 {
    took.as_micros() as f64 / 1000.0
}

/// A session's start as milliseconds since the first session of the
/// process: eight bytes in every connection's state instead of an
/// `Instant`'s sixteen (see `RoomConnection`).
pub(crate) fn session_clock_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// How long ago [`session_clock_ms`] said `started_ms`.
pub(crate) fn since(started_ms: u64) -> Duration {
    Duration::from_millis(session_clock_ms().saturating_sub(started_ms))
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Every write made, as made.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Writes {
        fn lines_per_write(&self) -> Vec<usize> {
            self.0.lock().unwrap().iter().map(|w| w.iter().filter(|&&b| b == b'\n').count()).collect()
        }
    }

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(n: u64) {
        write_line(LineFormat::Json, "websocket session", &[("kind", Value::Str("websocket")), ("n", Value::U64(n))]);
    }

    #[tokio::test(start_paused = true)]
    async fn batched_lines_leave_together_after_the_wait_at_the_limit_and_at_the_end() {
        let writes = Writes::default();
        let batching = Batching::start_to(Box::new(writes.clone()));
        for n in 0..3 {
            line(n);
        }
        tokio::time::sleep(BATCH_WAIT / 2).await;
        assert_eq!(writes.lines_per_write(), [0; 0], "nothing before the wait");
        tokio::time::sleep(BATCH_WAIT / 2 + Duration::from_millis(1)).await;
        assert_eq!(writes.lines_per_write(), [3], "the three lines in one write");

        // A full batch leaves at once, without waiting.
        let mut n = 0;
        while writes.lines_per_write().len() == 1 {
            line(n);
            n += 1;
            assert!(n < 10_000, "the batch never left");
        }
        assert!(writes.0.lock().unwrap()[1].len() >= BATCH_LIMIT);

        // The end writes what waits; after it, lines no longer wait.
        line(0);
        drop(batching);
        assert_eq!(writes.lines_per_write().len(), 3);
        assert_eq!(writes.lines_per_write()[2], 1);
        assert!(BATCH.with(|batch| batch.borrow().is_none()));
    }
}
