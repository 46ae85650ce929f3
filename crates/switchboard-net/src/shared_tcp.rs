//! A plain TCP connection's stream: tokio's socket behind an `Arc`, so that
//! the connection's outbound queue can hold it too and write to it.
//!
//! That is what lets a room send an idle connection its frames without
//! waking the connection's task: while the task waits with nothing of its
//! own to write, the queue writes what is pushed straight to the socket
//! (see `Outbound::push` and the driver's "Write-through"). Everything
//! else, the handshake included, uses it as the `TcpStream` it wraps,
//! through tokio's `&TcpStream` readiness calls, which is how tokio's own
//! `poll_read` and `poll_write` are built.
//!
//! Parking takes the socket back whole (`into_inner`) to give it to the
//! parking lot; the queue lets go of its share first.
//!
//! Unlike tokio's `TcpStream`, its reads and writes spend none of the
//! task's cooperative budget. The connection's driver spends it once per
//! read (`io::may_read` polls the readiness through tokio, which spends
//! it; a read of a frame's rest spends it through `io::spend_budget`), so
//! that a peer that never stops sending cannot keep its event loop to
//! itself; a second charge in every read and write would be paid on every
//! message (docs/benchmarks.md, "Write-through"). The handshake's reads
//! are bounded by the head's size limit, and hyper yields on its own after
//! a run of requests.

use std::any::{Any, TypeId};
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A TCP socket that the connection's task and its outbound queue share
/// (not `Clone`: no one else may hold a share, or parking could not take
/// the socket back).
#[derive(Debug)]
pub struct SharedTcp(Arc<TcpStream>);

impl SharedTcp {
    /// Wraps an accepted (or resumed) socket.
    pub fn new(tcp: TcpStream) -> SharedTcp {
        SharedTcp(Arc::new(tcp))
    }

    /// The socket, for the outbound queue's share and readiness checks.
    pub(crate) fn socket(&self) -> &Arc<TcpStream> {
        &self.0
    }

    /// The socket itself, if nothing else holds a share of it.
    pub(crate) fn into_inner(self) -> Result<TcpStream, SharedTcp> {
        Arc::try_unwrap(self.0).map_err(SharedTcp)
    }
}

/// `stream` as a [`SharedTcp`], if it is one (known where `S` is compiled).
#[inline(always)]
pub(crate) fn as_shared_tcp<S: 'static>(stream: &S) -> Option<&SharedTcp> {
    (stream as &dyn Any).downcast_ref::<SharedTcp>()
}

/// Whether `S` is a [`SharedTcp`] (known where `S` is compiled).
#[inline(always)]
pub(crate) fn is_shared_tcp<S: 'static>() -> bool {
    TypeId::of::<S>() == TypeId::of::<SharedTcp>()
}

/// Reads into `buf` as tokio's own `poll_read` does: a read that finds
/// the socket unready (a stale readiness) clears the readiness and waits
/// for the reactor, and so does a read that took less than offered (it
/// drained the socket), so that the next one waits instead of asking the
/// kernel for nothing. The readiness cleared is the one seen before the
/// read, never a newer one. The read is tried before the readiness is
/// polled: a connection's task usually asks when it knows there are bytes.
fn poll_read_tcp(tcp: &TcpStream, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    let offered = buf.remaining();
    loop {
        let mut read = None;
        let attempt = tcp.try_io(Interest::READABLE, || {
            let n = tcp.try_read_buf(buf)?;
            read = Some(n);
            match n > 0 && n < offered {
                true => Err(io::ErrorKind::WouldBlock.into()),
                false => Ok(()),
            }
        });
        match (attempt, read) {
            (_, Some(_)) => return Poll::Ready(Ok(())),
            (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => ready!(tcp.poll_read_ready(cx))?,
            (result, None) => return Poll::Ready(result),
        }
    }
}

/// Writes with `write` (a try on the socket), polling the write readiness
/// only when the socket was not ready: a write usually finds room.
fn poll_write_tcp(tcp: &TcpStream, cx: &mut Context<'_>, mut write: impl FnMut() -> io::Result<usize>) -> Poll<io::Result<usize>> {
    loop {
        match write() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(tcp.poll_write_ready(cx))?,
            result => return Poll::Ready(result),
        }
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        poll_read_tcp(&self.0, cx, buf)
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let tcp = &*self.0;
        poll_write_tcp(tcp, cx, || tcp.try_write(buf))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let tcp = &*self.0;
        poll_write_tcp(tcp, cx, || tcp.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(Shutdown::Write))
    }
}
