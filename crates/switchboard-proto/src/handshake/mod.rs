//! The HTTP/1.1 opening handshake (RFC 6455 §4), server and client side.
//!
//! Parsing is incremental (`Ok(None)` means "need more bytes") and reports
//! how many bytes the head used: anything after it is already WebSocket data
//! and belongs to the frame decoder. This module knows nothing of
//! permessage-deflate: it carries the raw `Sec-WebSocket-Extensions` values
//! in and the chosen response value out; `deflate` negotiates.

mod client;
mod request;
mod server;

use base64::Engine;
use sha1::{Digest, Sha1};

pub use client::{ClientAccepted, ClientHandshake};
pub use request::{RequestHead, MAX_HEADERS};
pub use server::UpgradeRequest;

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of the SHA-1 of
/// the key followed by the GUID.
pub fn accept_key(key: &str) -> String {
    accept_key_into(key, &mut [0; ACCEPT_LEN]).iter().copied().map(char::from).collect()
}

/// Length of a `Sec-WebSocket-Accept` value: base64 of 20 bytes.
const ACCEPT_LEN: usize = 28;

/// [`accept_key`] written into `out`, for a response built without
/// allocating it.
fn accept_key_into<'a>(key: &str, out: &'a mut [u8; ACCEPT_LEN]) -> &'a [u8] {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    let written = base64::engine::general_purpose::STANDARD.encode_slice(sha.finalize(), out).expect("20 bytes are 28 in base64");
    &out[..written]
}

/// A refused or failed handshake, with the HTTP status that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    /// HTTP status: 400 bad request, 426 wrong version, 431 head too large;
    /// on the client side, the status the server answered with, or 0 when
    /// its answer was not a well-formed HTTP response head.
    pub status: u16,
    /// What was wrong, for a person.
    pub reason: String,
}

impl HandshakeError {
    pub(crate) fn new(status: u16, reason: impl Into<String>) -> Self {
        HandshakeError { status, reason: reason.into() }
    }

    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        HandshakeError::new(400, reason)
    }

    /// The complete HTTP response that refuses the request.
    pub fn response(&self) -> Vec<u8> {
        error_response(self.status, &self.reason)
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, reason_phrase(self.status), self.reason)
    }
}

impl std::error::Error for HandshakeError {}

/// A complete HTTP/1.1 error response with `reason` as a text body. The
/// connection is closed after it; a 426 carries `Sec-WebSocket-Version: 13`.
pub fn error_response(status: u16, reason: &str) -> Vec<u8> {
    error_response_retry_after(status, reason, None)
}

/// Like [`error_response`], with `Retry-After: {seconds}` when given (a
/// 429 or 503 that tells the client when to try again).
pub fn error_response_retry_after(status: u16, reason: &str, retry_after: Option<u64>) -> Vec<u8> {
    let body = format!("{reason}\n");
    let version = if status == 426 { "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n" } else { "" };
    let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{version}{retry}\r\n{body}",
        reason_phrase(status),
        body.len()
    )
    .into_bytes()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// True if the comma-separated token list `value` contains `token`
/// (ASCII case-insensitive), as `Connection` and `Upgrade` are compared.
fn list_contains(value: &[u8], token: &str) -> bool {
    // Most often the whole value is the token.
    value.eq_ignore_ascii_case(token.as_bytes()) || value.split(|&b| b == b',').any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_sample_key_gives_the_rfc_accept_value() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn token_lists_are_case_insensitive_and_comma_separated() {
        assert!(list_contains(b"keep-alive, Upgrade", "upgrade"));
        assert!(list_contains(b"UPGRADE", "upgrade"));
        assert!(!list_contains(b"keep-alive, upgrades", "upgrade"));
    }

    #[test]
    fn error_responses_are_complete_http() {
        let r = String::from_utf8(error_response(426, "use version 13")).unwrap();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(r.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(r.ends_with("\r\n\r\nuse version 13\n"));
        assert!(r.contains("Content-Length: 15\r\n"));
    }
}
