//! The byte streams connections run over.
//!
//! [`ByteStream`] is what the handshake and the connection's driver need of
//! a stream: tokio's `AsyncRead + AsyncWrite`, owned by one task. A
//! `TcpStream` is one, so is a TLS stream over it, and so is an in-memory
//! pipe in tests; the code is generic over it, so each kind of stream gets
//! its own compiled copy and a plain TCP connection pays for no indirection.
//!
//! [`PrefixedIo`] is a stream (TCP or TLS, boxed) that first replays bytes
//! already read from it. The listener reads the request head itself to tell
//! WebSocket upgrades from plain HTTP; when it hands a plain request to the
//! HTTP server, those bytes must be read again. Plain HTTP is not the hot
//! path, so one HTTP server serves every kind of stream through the box.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::shared_tcp::{as_shared_tcp, is_shared_tcp};

/// A stream a connection can run over. Implemented for every type that
/// qualifies.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// Whether a read of `stream` may find bytes now. A TCP socket answers
/// from tokio's readiness; any other stream may hold bytes of its own (TLS
/// keeps decrypted ones) and is always worth a read.
///
/// `armed`: the task's waker is in the socket's registration for reading,
/// left there by the last read-side poll, which came to nothing (see
/// `Kept::read_armed` in the driver). Until bytes (or the end) arrive, the
/// reactor keeps it and leaves the socket marked not ready, so the
/// question is then one load, with no waker to store; otherwise asking
/// stores the waker, as a read that finds nothing would.
///
/// `S` is known where this is compiled, so the type check costs nothing.
/// Inlined into the wait: called apart, tokio's readiness check inside it
/// costs about twice as much (callgrind, a broadcast member's wake-up).
#[inline(always)]
pub(crate) fn may_read<S: 'static>(stream: &S, armed: bool, cx: &mut Context<'_>) -> bool {
    match as_shared_tcp(stream) {
        Some(tcp) if armed => tcp.socket().try_io(Interest::READABLE, || Ok(())).is_ok(),
        Some(tcp) => tcp.socket().poll_read_ready(cx).is_ready(),
        None => true,
    }
}

/// Spends one unit of the task's cooperative budget for a read of `S`
/// that `may_read` did not precede (the rest of a frame): false, with the
/// task woken to run again later, if the budget is spent. Only a plain TCP
/// stream needs it, whose reads spend none themselves (see `SharedTcp`);
/// any other stream's reads spend it in tokio's socket underneath.
#[inline(always)]
pub(crate) fn spend_budget<S: 'static>(cx: &mut Context<'_>) -> bool {
    if !is_shared_tcp::<S>() {
        return true;
    }
    match tokio::task::coop::poll_proceed(cx) {
        Poll::Ready(coop) => {
            coop.made_progress();
            true
        }
        Poll::Pending => false,
    }
}

/// A stream, boxed: what a listener's transport may hand on when its own
/// stream type is large (a TLS session), so that the tasks holding it stay
/// small.
pub type BoxedStream = Box<dyn ByteStream>;

/// A stream with a prefix of bytes to read before the stream's own.
pub struct PrefixedIo {
    prefix: Bytes,
    stream: BoxedStream,
}

impl PrefixedIo {
    /// Wraps `stream`, replaying `prefix` first.
    pub fn new(prefix: Bytes, stream: impl ByteStream) -> Self {
        PrefixedIo { prefix, stream: Box::new(stream) }
    }
}

impl AsyncRead for PrefixedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PrefixedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
