//! Idle connections without a task: the listener's parking lot.
//!
//! An open connection's task and tokio's registration of its socket are
//! most of what an idle connection costs (a 256-byte block each), and
//! neither does anything while nobody speaks. So a plain TCP connection
//! that has had no message in either direction for a while (see
//! `NetConfig::park_after`) parks: its driver hands its state (the socket,
//! taken out of tokio's reactor, the engine, the handler, the timers) to
//! this lot and its task ends. The lot watches every parked socket with one
//! epoll instance of its own (mio's, registered once in tokio), which keeps
//! no per-socket state beyond the kernel's; the connection's outbound queue
//! keeps a waker that resumes it. Whatever comes first, bytes from the
//! peer (or its hang-up), a frame from a room, a due heartbeat, a close
//! request or the server stopping, takes the state out of the lot, gives
//! the socket back to tokio and spawns the driver again, which carries on
//! where it stopped.
//!
//! Ordering: a connection is put in the lot, its waker set on the outbound
//! queue and its socket registered here under one lock, the one a
//! resumption takes to remove it, so a resumption never sees half a parked
//! connection. Readiness that came before the registration is not lost:
//! registering a socket that has bytes to read reports it at once.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Wake, Waker};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::runtime::Handle;
use tracing::warn;

use crate::outbound::Outbound;

/// Whether connections over `S` can park: plain TCP only (a TLS session's
/// state would have to come along, and its socket is not the stream).
pub(crate) fn can_park<S: 'static>() -> bool {
    crate::shared_tcp::is_shared_tcp::<S>()
}

/// A parked connection, as the lot holds it.
pub(crate) trait Resume: Send {
    /// The parked socket.
    fn fd(&self) -> RawFd;

    /// What tells this stay in the lot apart from the earlier occupants of
    /// its slot ([`Lot::generation`]), so that a stale waker resumes
    /// nothing. The connection keeps it, which keeps the slot to one
    /// pointer.
    fn generation(&self) -> u32;

    /// Gives the socket back to tokio and spawns the connection's driver
    /// on `runtime`.
    fn resume(self: Box<Self>, runtime: &Handle);
}

/// The parked connections of one listener.
pub(crate) struct Lot {
    registry: Registry,
    runtime: Handle,
    slots: Mutex<Slab<Box<dyn Resume>>>,
    next_generation: AtomicU32,
}

/// Wakes one parked connection: the waker its outbound queue keeps. Two
/// words, so that with the `Arc`'s counts it takes a 32-byte block.
struct Unpark {
    lot: Weak<Lot>,
    key: u32,
    generation: u32,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(lot) = self.lot.upgrade() {
            lot.resume(self.key as usize, Some(self.generation));
        }
    }
}

/// Events taken from the lot's epoll instance per turn.
const EVENTS_PER_TURN: usize = 256;

impl Lot {
    /// A lot on the current runtime, and the task that watches its sockets
    /// (spawn it; dropping it drops every connection still parked). An
    /// error if the system refuses an epoll instance (the file limit).
    pub(crate) fn start() -> io::Result<(Arc<Lot>, impl std::future::Future<Output = ()> + Send)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // Deprecated because a type that does not own its descriptor could
        // let it close while registered; the `AsyncFd` owns this `Poll`, and
        // with it the epoll descriptor, for as long as it is registered.
        #[allow(deprecated)]
        let watched = AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)?;
        let lot = Arc::new(Lot { registry, runtime: Handle::current(), slots: Mutex::new(Slab::new()), next_generation: AtomicU32::new(0) });
        Ok((lot.clone(), watch(lot, watched)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<Box<dyn Resume>>> {
        // A panic while holding this lock leaves only plain data behind.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The generation of a connection about to park.
    pub(crate) fn generation(&self) -> u32 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Parks `conn`, whose news arrive on `outbound`. If there already is
    /// news, or its socket cannot be watched, it is resumed at once.
    pub(crate) fn park(self: &Arc<Self>, conn: Box<dyn Resume>, outbound: &Outbound) {
        let (fd, generation) = (conn.fd(), conn.generation());
        let mut slots = self.lock();
        let key = slots.insert(conn);
        // More than 4 billion parked connections would not fit a `u32` key:
        // such a one is resumed at once.
        let watched = u32::try_from(key).is_ok_and(|short| {
            let waker = Waker::from(Arc::new(Unpark { lot: Arc::downgrade(self), key: short, generation }));
            outbound.park(waker) && self.registry.register(&mut SourceFd(&fd), Token(key), Interest::READABLE).is_ok()
        });
        if !watched {
            let conn = slots.remove(key);
            drop(slots);
            conn.resume(&self.runtime);
        }
    }

    /// Resumes the connection in slot `key` (of `generation`, if given),
    /// unless it was resumed already.
    fn resume(&self, key: usize, generation: Option<u32>) {
        let conn = {
            let mut slots = self.lock();
            match slots.get(key) {
                Some(conn) if generation.is_none_or(|g| g == conn.generation()) => slots.remove(key),
                _ => return,
            }
        };
        // A socket that is closed or was never registered has nothing to undo.
        let _ = self.registry.deregister(&mut SourceFd(&conn.fd()));
        conn.resume(&self.runtime);
    }
}

/// Clears the lot when its watching task ends (the listener stopped), so
/// that the parked connections, which hold the listener, are dropped.
struct ClearOnDrop(Arc<Lot>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        let parked = std::mem::take(&mut *self.0.lock());
        drop(parked);
    }
}

/// Resumes the connections whose sockets have news, for as long as the
/// lot lives.
async fn watch(lot: Arc<Lot>, mut watched: AsyncFd<Poll>) {
    let lot = ClearOnDrop(lot);
    let mut events = Events::with_capacity(EVENTS_PER_TURN);
    loop {
        let mut ready = match watched.readable_mut().await {
            Ok(ready) => ready,
            Err(e) => {
                warn!(error = %e, "the parking lot's epoll instance failed; parked connections are dropped");
                return;
            }
        };
        if let Err(e) = ready.get_inner_mut().poll(&mut events, Some(Duration::ZERO)) {
            if e.kind() != io::ErrorKind::Interrupted {
                warn!(error = %e, "polling parked connections failed");
            }
            continue;
        }
        let mut taken = 0;
        for event in events.iter() {
            taken += 1;
            lot.0.resume(event.token().0, None);
        }
        // Fewer than asked for: none are left until the next readiness.
        if taken < EVENTS_PER_TURN {
            ready.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests;
