//! A connection's side of parking (the lot is `crate::park`): what it
//! hands over when it parks, and how it comes back.

use std::any::Any;
use std::future::Future;
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;

use tokio::net::TcpStream;
use tokio::runtime::Handle;

use switchboard_proto::CloseCode;

use super::{run, Cut, Kept, Link, Parts};
use crate::handler::Handler;
use crate::io::ByteStream;
use crate::listener::Common;
use crate::park::Resume;

/// What became of a connection that tried to park.
pub(super) enum Parking<S, H, C: Deref<Target = Common>> {
    /// In the lot, or lost (its socket could not be taken out of tokio's
    /// reactor; a task of its own tells the handler): its task ends.
    Parked,
    /// Not a plain TCP connection, or no lot: it carries on.
    Refused(Link<S, C>, Box<Parts<H>>),
}

/// A parked connection: everything its task held, the socket out of
/// tokio's reactor.
struct Parked<H, C: Deref<Target = Common>> {
    stream: std::net::TcpStream,
    kept: Kept<C>,
    parts: Box<Parts<H>>,
}

/// Hands the connection to the listener's lot.
pub(super) fn park<S, H, C>(link: Link<S, C>, parts: Box<Parts<H>>) -> Parking<S, H, C>
where
    S: ByteStream,
    H: Handler,
    C: Deref<Target = Common> + Send + 'static,
{
    let Link { stream, kept } = link;
    let Some(lot) = kept.common.lot.clone() else {
        return Parking::Refused(Link { stream, kept }, parts);
    };
    let tcp = match cast::<S, TcpStream>(stream) {
        Ok(tcp) => tcp,
        Err(stream) => return Parking::Refused(Link { stream, kept }, parts),
    };
    match tcp.into_std() {
        Ok(stream) => {
            let outbound = kept.outbound.clone();
            kept.common.stats.record_parked();
            lot.park(Box::new(Parked { stream, kept, parts }), &outbound);
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

    fn resume(self: Box<Self>, runtime: &Handle) {
        let Parked { stream, kept, parts } = *self;
        kept.common.stats.record_unparked();
        // Registering with the reactor needs the runtime's context, and
        // resumption may come from any thread.
        let _entered = runtime.enter();
        match TcpStream::from_std(stream) {
            Ok(stream) => drop(runtime.spawn(run(Link { stream, kept }, parts, true))),
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
