//! Sockets for switchboard, on tokio: accept, read the request head, run the
//! WebSocket handshake, then drive each connection from one task.
//!
//! This crate owns everything that touches a socket: read buffers, the
//! outbound queue and its flushing, timers (handshake, heartbeat, close;
//! the last two by one sweep per listener, not a timer per connection),
//! graceful shutdown, and the counters a metrics exporter reads
//! ([`NetStats`]). It parses no frame itself (that is `switchboard-proto`)
//! and knows nothing of rooms or HTTP routes: a [`Service`] decides what an
//! upgrade request is connected to and serves every other HTTP request, and
//! a [`Handler`] receives one connection's messages. The handshake and the
//! connection's driver are generic over the byte stream (TCP today), so
//! that TLS can slot in beneath them.

mod config;
mod driver;
mod handler;
mod io;
mod listener;
mod outbound;
mod service;
mod spare;
mod stats;
#[cfg(test)]
mod testing;
mod timers;

pub use config::NetConfig;
pub use handler::{Handler, Outbox, Traffic};
pub use io::PrefixedIo;
pub use listener::{serve, serve_draining, Shutdown};
pub use outbound::{Outbound, Push};
pub use service::{Accept, Refusal, Service, UpgradeInfo};
pub use stats::{CloseCodeClass, NetSnapshot, NetStats};
pub use switchboard_proto::deflate::{DeflateOptions, Outgoing, Policy};
