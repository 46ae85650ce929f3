//! The switchboard WebSocket protocol engine: RFC 6455 and RFC 7692, sans-IO.
//!
//! This crate contains no networking code and reads no clock. Callers feed it
//! the bytes they read and take from it the bytes to write; it tells them what
//! happened (a message, a ping, a close) and what the wire must carry next.
//! Auto-pong and the close echo are frames it queues for sending, never writes
//! it performs. It has no tokio dependency so that it can be fuzzed, tested
//! byte by byte and reused by any runtime.
//!
//! Layers, each its own module:
//! - [`handshake`]: the HTTP/1.1 upgrade, server and client side;
//! - [`deflate`]: permessage-deflate negotiation and the codec;
//! - [`frame`]: frame headers, decoding and encoding; [`mask`]: masking;
//! - [`utf8`]: incremental UTF-8 validation; [`close`]: close codes;
//! - [`connection`]: message assembly, control frames and the closing handshake;
//! - [`timers`]: the heartbeat and the closing handshake's deadline, with the
//!   time passed in;
//! - [`error`]: every protocol error and its close code;
//! - [`outcome`]: what became of a message handed to a connection.

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod outcome;
pub mod timers;
pub mod utf8;

/// Fuzz harnesses (see `fuzz/`); built with the `fuzzing` feature and in tests.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use close::{CloseCode, CloseFrame};
pub use config::{Config, Role};
pub use connection::{Connection, Event, Message, Resting};
pub use error::ProtocolError;
pub use outcome::SendOutcome;
