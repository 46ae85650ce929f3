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

use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, StatusCode};
use switchboard_net::Traffic;
use switchboard_room::RoomName;
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

/// Writes one line straight to stderr, in one write.
fn write_line(format: LineFormat, message: &str, fields: &[(&str, Value)]) {
    thread_local! {
        static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
