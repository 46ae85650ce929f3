//! What a listener does with an accepted TCP connection before it reads the
//! request head: nothing ([`Plain`]), or a TLS handshake (a [`Transport`]
//! the server crate implements with rustls; this crate knows no TLS).
//!
//! The transport's stream type is what the handshake and the connection's
//! driver are compiled for. A plain connection runs on the `TcpStream`
//! itself, behind an `Arc` its outbound queue shares ([`SharedTcp`]); a
//! transport with a large session state should box its stream
//! ([`crate::BoxedStream`]), so that an idle connection's task stays
//! small.

use std::future::Future;
use std::io;

use tokio::net::TcpStream;

use crate::io::ByteStream;
use crate::shared_tcp::SharedTcp;

/// Turns an accepted TCP connection into the stream WebSockets and HTTP run
/// over. The listener bounds [`Transport::open`] by the handshake timeout.
pub trait Transport: Send + Sync + 'static {
    /// The stream connections of this listener run over.
    type Stream: ByteStream;

    /// Runs whatever the transport needs before the first HTTP byte (a TLS
    /// handshake). An error closes the connection.
    fn open(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP: the socket as it is, shared with the connection's outbound
/// queue (see [`SharedTcp`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Transport for Plain {
    type Stream = SharedTcp;

    async fn open(&self, tcp: TcpStream) -> io::Result<SharedTcp> {
        Ok(SharedTcp::new(tcp))
    }
}
