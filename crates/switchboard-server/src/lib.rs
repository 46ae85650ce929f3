//! The switchboard server: joins the connection layer to the applications.
//!
//! This crate owns routing (which path reaches which room kind), the plain
//! HTTP routes, and starting/stopping a listener. Built-in room kinds live in
//! their own modules; today that is the echo room, the conformance target.

mod echo;
mod http;
mod routes;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use routes::{RoomId, RoomKind, Route};
pub use switchboard_net::NetConfig;

/// Server settings.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Connection-layer limits and timers.
    pub net: NetConfig,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
}

impl Server {
    /// Binds the listening socket. Port 0 picks a free port; see [`Server::local_addr`].
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, config })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` becomes true, then closes every WebSocket with
    /// 1001 and waits for their closing handshakes (bounded by the close timeout).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let service = Arc::new(service::SwitchboardService::new());
        switchboard_net::serve(self.listener, service, self.config.net, switchboard_net::Shutdown::from(stop)).await;
    }
}
