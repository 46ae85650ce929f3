//! Protocol errors and their wire consequence.
//!
//! Every way a peer can break RFC 6455 or RFC 7692 is one variant here, and
//! [`ProtocolError::close_code`] is the single exhaustive place that decides
//! which close code the connection is failed with.

use crate::close::CloseCode;

/// A violation by the peer that fails the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A reserved bit was set that no negotiated extension defines.
    ReservedBitsSet,
    /// An opcode from the reserved ranges (3–7, 11–15).
    ReservedOpcode(u8),
    /// A control frame with FIN clear.
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A 64-bit payload length with its most significant bit set.
    PayloadLengthOverflow,
    /// A client frame without a mask (the server requires one).
    UnmaskedClientFrame,
    /// A server frame with a mask (the client forbids one).
    MaskedServerFrame,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open.
    ExpectedContinuation,
    /// RSV1 (compressed) on a continuation or control frame.
    CompressedContinuation,
    /// A close frame with a one-byte payload.
    CloseFrameTooShort,
    /// A close code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A compressed message that does not inflate.
    BadCompressedData,
    /// A frame larger than `max_frame_size`.
    FrameTooBig,
    /// A message (after inflation) larger than `max_message_size`.
    MessageTooBig,
}

impl ProtocolError {
    /// The close code the connection is failed with.
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::ReservedBitsSet
            | ProtocolError::ReservedOpcode(_)
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooLong
            | ProtocolError::PayloadLengthOverflow
            | ProtocolError::UnmaskedClientFrame
            | ProtocolError::MaskedServerFrame
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::CompressedContinuation
            | ProtocolError::CloseFrameTooShort
            | ProtocolError::InvalidCloseCode(_)
            | ProtocolError::BadCompressedData => CloseCode::PROTOCOL_ERROR,
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig | ProtocolError::MessageTooBig => CloseCode::MESSAGE_TOO_BIG,
        }
    }

    /// A short reason for the close frame, readable by the peer's developer.
    pub fn reason(self) -> &'static str {
        match self {
            ProtocolError::ReservedBitsSet => "reserved bits set",
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::ControlFrameTooLong => "control frame longer than 125 bytes",
            ProtocolError::PayloadLengthOverflow => "payload length has its top bit set",
            ProtocolError::UnmaskedClientFrame => "client frames must be masked",
            ProtocolError::MaskedServerFrame => "server frames must not be masked",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::ExpectedContinuation => "expected a continuation frame",
            ProtocolError::CompressedContinuation => "RSV1 on a continuation or control frame",
            ProtocolError::CloseFrameTooShort => "close payload of one byte",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::BadCompressedData => "invalid compressed data",
            ProtocolError::FrameTooBig => "frame too big",
            ProtocolError::MessageTooBig => "message too big",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}
