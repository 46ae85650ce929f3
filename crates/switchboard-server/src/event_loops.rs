//! Event loops: the listeners served by several threads at once, each a
//! current-thread tokio runtime that accepts from sockets of its own.
//!
//! Every loop binds the server's addresses with `SO_REUSEPORT`, so the
//! kernel spreads new connections over the loops' sockets, and a connection
//! then lives on the loop that accepted it: its handshake, its reads and
//! writes, and the rooms it creates run on that thread, with no hand-off
//! to another thread and no work stealing (the model of uWebSockets and
//! nginx). The first loop is the caller's own runtime, which also runs the
//! server's other tasks; [`Loops`] are the others. A loop's runtime stays
//! up after its listeners have drained, until [`Loops::finish`]: the rooms
//! it created must still commit their last writes when the server settles.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use switchboard_net::{NetConfig, NetStats, Service, Shutdown};

use crate::access_log;
use crate::tls::TlsTransport;

/// The sockets of one loop besides the first: the plain listener's and,
/// when there is one, the TLS listener's.
pub(crate) struct LoopSockets {
    plain: std::net::TcpListener,
    tls: Option<std::net::TcpListener>,
}

/// Binds `count - 1` more sockets on each of the first loop's addresses
/// (which were bound with `SO_REUSEPORT`, see `crate::listen`), so that
/// a port the kernel picked is shared too.
pub(crate) fn bind_more(count: usize, plain: &TcpListener, tls: Option<&TcpListener>) -> std::io::Result<Vec<LoopSockets>> {
    let plain_addr = plain.local_addr()?;
    let tls_addr = tls.map(TcpListener::local_addr).transpose()?;
    (1..count)
        .map(|_| {
            let plain = bind_std(plain_addr)?;
            let tls = tls_addr.map(bind_std).transpose()?;
            Ok(LoopSockets { plain, tls })
        })
        .collect()
}

/// A listening socket outside any runtime: the loop's own runtime
/// registers it once it runs.
fn bind_std(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = crate::bind_listener(addr, true).map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} (event loop): {e}")))?;
    listener.into_std()
}

/// What every loop serves with: one service and one set of settings.
pub(crate) struct Serving<Svc> {
    pub(crate) service: Arc<Svc>,
    pub(crate) tls: Option<Arc<TlsTransport>>,
    pub(crate) net: NetConfig,
    pub(crate) accepting: Shutdown,
    pub(crate) running: Shutdown,
    pub(crate) stats: Arc<NetStats>,
}

// Not derived: the service is shared, not cloned.
impl<Svc> Clone for Serving<Svc> {
    fn clone(&self) -> Serving<Svc> {
        Serving {
            service: self.service.clone(),
            tls: self.tls.clone(),
            net: self.net,
            accepting: self.accepting.clone(),
            running: self.running.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The running loops besides the first.
pub(crate) struct Loops {
    threads: Vec<std::thread::JoinHandle<()>>,
    drained: Vec<oneshot::Receiver<()>>,
    finish: Vec<oneshot::Sender<()>>,
}

impl Loops {
    /// Starts one thread per set of sockets, numbered from 1 (the first
    /// loop is the caller's).
    pub(crate) fn start<Svc: Service>(sockets: Vec<LoopSockets>, serving: &Serving<Svc>) -> Loops {
        let mut loops = Loops { threads: Vec::new(), drained: Vec::new(), finish: Vec::new() };
        for (index, sockets) in (1..).zip(sockets) {
            let (drained_tx, drained_rx) = oneshot::channel();
            let (finish_tx, finish_rx) = oneshot::channel();
            let serving = serving.clone();
            let thread = std::thread::Builder::new().name(format!("event-loop-{index}")).spawn(move || {
                // Built on its own thread and dropped there: a runtime may
                // not be dropped inside another one's task.
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        // Its sockets close with it, and the kernel sends
                        // their new connections to the other loops.
                        tracing::error!(error = %e, index, "cannot start an event loop");
                        return;
                    }
                };
                runtime.block_on(async move {
                    serve_loop(sockets, serving).await;
                    let _ = drained_tx.send(());
                    let _ = finish_rx.await;
                });
            });
            match thread {
                Ok(thread) => {
                    loops.threads.push(thread);
                    loops.drained.push(drained_rx);
                    loops.finish.push(finish_tx);
                }
                Err(e) => tracing::error!(error = %e, index, "cannot start an event loop's thread"),
            }
        }
        loops
    }

    /// Resolves once every loop's listeners have stopped and their
    /// connections are closed (or a loop ended early).
    pub(crate) async fn drained(&mut self) {
        for drained in &mut self.drained {
            let _ = drained.await;
        }
    }

    /// Lets the loops' runtimes end, with the rooms still on them, and
    /// waits for their threads.
    pub(crate) async fn finish(self) {
        drop(self.finish);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// One of the other loops' listeners until shutdown, on its own runtime.
async fn serve_loop<Svc: Service>(sockets: LoopSockets, serving: Serving<Svc>) {
    let plain = match TcpListener::from_std(sockets.plain) {
        Ok(plain) => plain,
        Err(e) => {
            tracing::error!(error = %e, "an event loop cannot take its socket");
            return;
        }
    };
    let tls = match sockets.tls.map(TcpListener::from_std).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %e, "an event loop cannot take its TLS socket");
            None
        }
    };
    serve_listeners(plain, tls, serving).await
}

/// A loop's plain listener and, with a TLS transport, its TLS listener,
/// until shutdown; the first loop serves its own with it too.
pub(crate) async fn serve_listeners<Svc: Service>(plain: TcpListener, tls: Option<TcpListener>, serving: Serving<Svc>) {
    let Serving { service, tls: transport, net, accepting, running, stats } = serving;
    // A loop's access lines leave in batches (see `access_log`); the
    // work-stealing runtime's tasks move between threads, so theirs do not.
    let _batching = (Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread).then(access_log::Batching::start);
    let plain = switchboard_net::serve_draining(plain, service.clone(), net, accepting.clone(), running.clone(), stats.clone());
    match tls.zip(transport) {
        Some((listener, transport)) => {
            tokio::join!(plain, switchboard_net::serve_with(listener, transport, service, net, accepting, running, stats));
        }
        None => plain.await,
    }
}
