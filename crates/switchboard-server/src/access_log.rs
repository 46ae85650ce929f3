//! Access logs: one line per HTTP request and one per WebSocket session,
//! at `info` under the target `access` (so `RUST_LOG=info,access=off`
//! silences them, and a log shipper can route them on the target).
//!
//! What is never logged: query strings (they carry tokens: the HTTP line
//! has the path only, the session line names the room, not the request
//! target), headers, and message contents.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use switchboard_net::Traffic;
use switchboard_room::RoomName;
use tracing::info;

/// One HTTP request, once answered. `path` must not hold the query.
pub(crate) fn http(peer: SocketAddr, method: &Method, path: &str, status: StatusCode, took: Duration) {
    info!(target: "access", kind = "http", %peer, method = %method, path, status = status.as_u16(), duration_ms = millis(took), "http request");
}

/// One WebSocket session, at its end. `client` is the client's address
/// (the proxy's word for it when the peer is a trusted proxy); `code` the
/// close code it ended with.
pub(crate) fn session(client: IpAddr, room: &RoomName, took: Duration, traffic: Traffic, code: Option<u16>) {
    let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
    info!(
        target: "access",
        kind = "websocket",
        %client,
        room = %format_args!("{}/{}", room.kind.as_str(), room.id.as_str()),
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
