//! Sockets for switchboard, on tokio: accept, read the request head, run the
//! WebSocket handshake, then drive each connection from one task.
//!
//! This crate owns everything that touches a socket: read buffers, the
//! outbound queue and its flushing, timers (handshake, heartbeat, close;
//! the last two by one sweep per listener, not a timer per connection), and
//! graceful shutdown. It parses no frame itself (that is `switchboard-proto`)
//! and knows nothing of rooms or HTTP routes: a [`Service`] decides what an
//! upgrade request is connected to and serves every other HTTP request, and
//! a [`Handler`] receives one connection's messages.

mod config;
mod driver;
mod handler;
mod io;
mod listener;
mod outbound;
mod service;
mod spare;
mod timers;

pub use config::NetConfig;
pub use handler::{Handler, Outbox};
pub use io::PrefixedIo;
pub use listener::{serve, Shutdown};
pub use outbound::{Outbound, Push};
pub use service::{Accept, Refusal, Service, UpgradeInfo};
pub use switchboard_proto::deflate::DeflateOptions;
