//! Sockets for switchboard, on tokio: accept, read the request head, run the
//! WebSocket handshake, then drive each connection from one task.
//!
//! This crate owns everything that touches a socket: read buffers, the
//! outbound queue and its flushing, timers (the handshake's; and the
//! engine's heartbeat and close deadlines, woken by one sweep per listener,
//! not a timer per connection), idle connections parked without a task
//! (`park`), graceful shutdown, and the counters a metrics exporter reads
//! ([`NetStats`]). It parses no frame itself (that is `switchboard-proto`)
//! and knows nothing of rooms or HTTP routes: a [`Service`] decides what an
//! upgrade request is connected to and serves every other HTTP request, and
//! a [`Handler`] receives one connection's messages. The handshake and the
//! connection's driver are generic over the byte stream: a listener's
//! [`Transport`] turns each accepted socket into one (plain TCP, or TLS,
//! which the server crate brings).

mod config;
mod driver;
mod handler;
mod io;
mod listener;
mod nodelay;
mod outbound;
mod park;
mod read_size;
mod service;
mod shared_tcp;
mod spare;
mod stats;
#[cfg(test)]
mod testing;
mod timers;
mod transport;

pub use config::NetConfig;
pub use handler::{Handler, Outbox, Traffic};
pub use io::{BoxedStream, ByteStream, PrefixedIo};
pub use listener::{serve, serve_draining, serve_with, Shutdown};
pub use outbound::Outbound;
pub use service::{Accept, Refusal, Service, UpgradeInfo};
pub use shared_tcp::SharedTcp;
pub use stats::{CloseCodeClass, NetSnapshot, NetStats};
pub use switchboard_proto::deflate::{DeflateOptions, Outgoing, Policy};
pub use transport::{Plain, Transport};
