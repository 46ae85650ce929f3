//! A connection's side of parking (the lot is `crate::park`): what it
//! hands over when it parks, and how it comes back.

use std::any::Any;
use std::future::Future;
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use switchboard_proto::{CloseCode, Connection, Resting};

use super::{run, Cut, Kept, Link, Parts};
use crate::handler::Handler;
use crate::io::ByteStream;
use crate::listener::Common;
use crate::park::Resume;
use crate::shared_tcp::SharedTcp;

/// What became of a connection that tried to park.
pub(super) enum Parking<S, H, C: Deref<Target = Common>> {
    /// In the lot, or lost (its socket could not be taken out of tokio's
    /// reactor; a task of its own tells the handler): its task ends.
    Parked,
    /// Not a plain TCP connection, no lot, or bytes still unread in its
    /// buffer: it carries on.
    Refused(Link<S, C>, Box<Parts<H>>),
}

/// A parked connection: everything its task held, in one block, the
/// socket out of tokio's reactor. Its read buffer is empty, so it is not
/// kept, and an engine at rest is kept as its settings and made anew on
/// resuming.
struct Parked<H, C: Deref<Target = Common>> {
    stream: std::net::TcpStream,
    generation: u32,
    kept: Kept<C>,
    /// The engine's settings if it was at rest ([`Connection::rest`]) with
    /// the listener's limits, else the engine.
    engine: Result<Resting, Box<Connection>>,
    handler: H,
}

/// Hands the connection to the listener's lot.
pub(super) fn park<S, H, C>(link: Link<S, C>, parts: Box<Parts<H>>) -> Parking<S, H, C>
where
    S: ByteStream,
    H: Handler,
    C: Deref<Target = Common> + Send + 'static,
{
    let Link { stream, kept } = link;
    let lot = match kept.common.lot.clone() {
        Some(lot) if parts.buf.is_empty() => lot,
        _ => return Parking::Refused(Link { stream, kept }, parts),
    };
    let shared = match cast::<S, SharedTcp>(stream) {
        Ok(shared) => shared,
        Err(stream) => return Parking::Refused(Link { stream, kept }, parts),
    };
    // The queue lets go of its share first, so the socket leaves tokio
    // whole; nothing else holds one.
    drop(kept.outbound.detach());
    match shared.into_inner().map_err(drop).and_then(|tcp| tcp.into_std().map_err(drop)) {
        Ok(stream) => {
            let outbound = kept.outbound.clone();
            kept.common.stats.record_parked();
            let Parts { conn, handler, .. } = *parts;
            let engine = match conn.config() == kept.common.config.protocol {
                true => conn.rest().map_err(Box::new),
                false => Err(Box::new(conn)),
            };
            lot.park(Box::new(Parked { stream, generation: lot.generation(), kept, engine, handler }), &outbound);
            Parking::Parked
        }
        Err(_) => {
            tokio::spawn(lost(kept, parts));
            Parking::Parked
        }
    }
}

impl<H: Handler, C: Deref<Target = Common> + Send + 'static> Resume for Parked<H, C> {
    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    fn generation(&self) -> u32 {
        self.generation
    }

    fn resume(self: Box<Self>, runtime: &Handle) {
        let Parked { stream, mut kept, engine, handler, .. } = *self;
        // A new registration, with no waker in it yet.
        kept.read_armed = false;
        kept.common.stats.record_unparked();
        let conn = engine.map_or_else(|engine| *engine, |resting| Connection::wake(resting, kept.common.config.protocol));
        let parts = Box::new(Parts { conn, buf: BytesMut::new(), handler });
        // Registering with the reactor needs the runtime's context, and
        // resumption may come from any thread.
        let _entered = runtime.enter();
        match TcpStream::from_std(stream) {
            Ok(tcp) => {
                let shared = SharedTcp::new(tcp);
                kept.outbound.attach(shared.socket().clone());
                drop(runtime.spawn(run(Link { stream: shared, kept }, parts, true)))
            }
            Err(_) => drop(runtime.spawn(lost(kept, parts))),
        }
    }
}

/// The end of a connection whose socket was lost while parking or
/// resuming: the handler hears of it as of a failed read.
fn lost<H: Handler, C: Deref<Target = Common> + Send + 'static>(mut kept: Kept<C>, mut parts: Box<Parts<H>>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let cut = Cut::ReadFailed;
        if let Some(on_close) = kept.report(&mut parts.handler, cut.outcome(), Some(CloseCode::ABNORMAL), cut.reason().into(), false) {
            on_close.await;
        }
        parts.handler.on_end(kept.traffic);
    })
}

/// `a` as a `B`, if `A` is `B` (for the one stream type that parks, in
/// code generic over streams).
fn cast<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    let mut slot = Some(a);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<B>>().and_then(Option::take) {
        Some(b) => Ok(b),
        None => Err(slot.expect("left in place when the types differ")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Parked;
    use crate::listener::Common;

    /// A parked connection is one block: with the server's room handler
    /// (at most 72 bytes, pinned in switchboard-server) it stays within
    /// mimalloc's 160-byte class (docs/benchmarks.md, "Idle connections").
    #[test]
    fn a_parked_connection_with_a_72_byte_handler_fits_160_bytes() {
        let size = std::mem::size_of::<Parked<[u64; 9], Arc<Common>>>();
        assert!(size <= 160, "Parked is {size} bytes");
    }
}
