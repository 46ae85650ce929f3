//! What can go wrong on the client side.

use switchboard_proto::deflate::DeflateNegotiationError;
use switchboard_proto::handshake::HandshakeError;
use switchboard_proto::{CloseFrame, ProtocolError};

/// A client failure.
#[derive(Debug)]
pub enum ClientError {
    /// The URL is not a `ws://` URL we can connect to.
    InvalidUrl(String),
    /// A header or subprotocol in the options cannot be sent as given.
    InvalidOption(String),
    /// A socket error.
    Io(std::io::Error),
    /// The server refused or botched the opening handshake.
    Handshake(HandshakeError),
    /// The server's permessage-deflate answer is not acceptable.
    Deflate(DeflateNegotiationError),
    /// The server answered with an extension we did not offer.
    UnexpectedExtension,
    /// The server broke the protocol; we closed with the matching code.
    Protocol(ProtocolError),
    /// The server closed the WebSocket.
    Closed(CloseFrame),
    /// The TCP connection ended, or we already closed.
    ConnectionClosed,
    /// Connect plus handshake took longer than allowed.
    Timeout,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            ClientError::InvalidOption(why) => write!(f, "invalid option: {why}"),
            ClientError::Io(e) => write!(f, "socket error: {e}"),
            ClientError::Handshake(e) => write!(f, "handshake refused: {} {}", e.status, e.reason),
            ClientError::Deflate(e) => write!(f, "permessage-deflate: {e:?}"),
            ClientError::UnexpectedExtension => f.write_str("the server answered with an extension that was not offered"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
            ClientError::Closed(frame) => write!(f, "closed by the server: {:?} {}", frame.code.map(|c| c.as_u16()), frame.reason),
            ClientError::ConnectionClosed => f.write_str("connection closed"),
            ClientError::Timeout => f.write_str("connect timed out"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<HandshakeError> for ClientError {
    fn from(e: HandshakeError) -> Self {
        ClientError::Handshake(e)
    }
}

impl From<DeflateNegotiationError> for ClientError {
    fn from(e: DeflateNegotiationError) -> Self {
        ClientError::Deflate(e)
    }
}
