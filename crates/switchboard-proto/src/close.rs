//! Close codes (RFC 6455 §7.4) and the close frame payload.
//!
//! Owns which codes may appear on the wire and how a close payload is read
//! and written. It does not decide when to close: that is `connection`'s job.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;

/// A close status code.
///
/// Only codes that may be sent in a close frame are representable through
/// [`CloseCode::from_wire`]; 1005, 1006 and 1015 are reserved for reporting
/// and never appear in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reported locally when a close frame carried no code. Never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reported locally when the connection dropped without a close frame. Never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8 (or data inconsistent with its type).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message or frame was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// A code received in a close frame, or the protocol error it is.
    ///
    /// Accepted: 1000–1003, 1007–1014 (the IANA registry), 3000–4999 (libraries
    /// and applications). Everything else is reserved or invalid on the wire.
    pub fn from_wire(code: u16) -> Result<CloseCode, ProtocolError> {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(CloseCode(code)),
            _ => Err(ProtocolError::InvalidCloseCode(code)),
        }
    }

    /// A code an application wants to send. Same rules as [`CloseCode::from_wire`].
    pub fn new(code: u16) -> Option<CloseCode> {
        CloseCode::from_wire(code).ok()
    }

    /// True for the codes that may be written into a close frame.
    pub fn is_sendable(self) -> bool {
        CloseCode::from_wire(self.0).is_ok()
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest reason that fits a control frame: 125 bytes minus the code.
pub const MAX_REASON_LEN: usize = 123;

/// What a close frame said. `code` is `None` when the frame had no payload
/// (reported to users as 1005).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code, absent when the payload was empty.
    pub code: Option<CloseCode>,
    /// The UTF-8 reason, possibly empty.
    pub reason: String,
}

impl CloseFrame {
    /// Reads a close frame payload (already unmasked).
    pub fn parse(payload: &[u8]) -> Result<CloseFrame, ProtocolError> {
        match payload.len() {
            0 => Ok(CloseFrame { code: None, reason: String::new() }),
            1 => Err(ProtocolError::CloseFrameTooShort),
            _ => {
                let code = CloseCode::from_wire(u16::from_be_bytes([payload[0], payload[1]]))?;
                let reason = simdutf8::basic::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(CloseFrame { code: Some(code), reason: reason.to_owned() })
            }
        }
    }

    /// Encodes a close payload. The reason is cut at a character boundary so
    /// the payload never exceeds 125 bytes.
    pub fn payload(code: Option<CloseCode>, reason: &str) -> Bytes {
        let Some(code) = code else { return Bytes::new() };
        let reason = truncate_utf8(reason, MAX_REASON_LEN);
        let mut buf = BytesMut::with_capacity(2 + reason.len());
        buf.put_u16(code.as_u16());
        buf.put_slice(reason.as_bytes());
        buf.freeze()
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_in_the_registry_and_private_ranges_are_accepted() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            assert!(CloseCode::from_wire(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn reserved_and_out_of_range_codes_are_protocol_errors() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert_eq!(CloseCode::from_wire(code), Err(ProtocolError::InvalidCloseCode(code)));
        }
    }

    #[test]
    fn a_one_byte_close_payload_is_a_protocol_error() {
        assert_eq!(CloseFrame::parse(&[0x03]), Err(ProtocolError::CloseFrameTooShort));
    }

    #[test]
    fn a_close_reason_must_be_utf8() {
        assert_eq!(CloseFrame::parse(&[0x03, 0xe8, 0xff]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let payload = CloseFrame::payload(Some(CloseCode::NORMAL), &reason);
        assert!(payload.len() <= 125);
        let back = CloseFrame::parse(&payload).unwrap();
        assert_eq!(back.reason.chars().count(), 61);
    }
}
