//! The seam between sockets and the application: what an upgrade connects to,
//! and who serves plain HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use switchboard_proto::deflate::Policy;
use switchboard_proto::handshake::{RequestHead, UpgradeRequest};

use crate::handler::Handler;
use crate::io::PrefixedIo;
use crate::listener::Shutdown;

/// What the service is told about an upgrade request.
pub struct UpgradeInfo<'a> {
    /// The validated WebSocket request.
    pub request: &'a UpgradeRequest,
    /// The whole request head (cookies, custom headers).
    pub head: &'a RequestHead,
    /// The TCP peer.
    pub peer: SocketAddr,
}

/// An accepted upgrade.
pub struct Accept<H> {
    /// Receives the connection's events.
    pub handler: H,
    /// The subprotocol to answer with; must be one the client offered
    /// (see `UpgradeRequest::select_protocol`).
    pub protocol: Option<String>,
    /// The permessage-deflate policy of this connection, when it is not
    /// the listener's (`NetConfig::deflate`): a room kind's own, say.
    pub compression: Option<Policy>,
}

/// A refused upgrade, answered with an HTTP status before any 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status, e.g. 404 or 403.
    pub status: u16,
    /// Human-readable reason, sent as the body.
    pub reason: String,
    /// Seconds after which the client may try again, sent as `Retry-After`
    /// (a limit's 429 or 503); `None` sends no such header.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal without `Retry-After`.
    pub fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal { status, reason: reason.into(), retry_after: None }
    }
}

/// The application side of a listener.
pub trait Service: Send + Sync + 'static {
    /// The handler type of accepted connections.
    type Handler: Handler;

    /// Decides what a valid upgrade request connects to (may ask the room).
    fn upgrade(&self, info: UpgradeInfo<'_>) -> impl Future<Output = Result<Accept<Self::Handler>, Refusal>> + Send;

    /// Serves a request that is not a WebSocket upgrade. `io` replays the
    /// bytes already read before reading from the socket. On `shutdown` the
    /// connection should finish the request in flight and close: the
    /// listener waits for every connection before the process exits, and a
    /// browser keeps idle keep-alive connections open indefinitely.
    fn http(&self, io: PrefixedIo, peer: SocketAddr, shutdown: Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}
