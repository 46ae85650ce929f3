//! Accepting sockets and the WebSocket handshake.
//!
//! Every accepted socket gets one task. It reads the request head with the
//! protocol crate's incremental parser (bounded by `max_head_len` and the
//! handshake's deadline); an upgrade request is validated and decided here,
//! its 101 queued in the new engine, and the same task then drives the
//! connection, writing the 101 after the handler's `on_open`. Anything else
//! goes to the service's HTTP server, in a task of its own, with the bytes
//! already read.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use pin_project_lite::pin_project;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, warn};

use switchboard_proto::deflate::{negotiate_server, DeflateOptions, DeflateParams};
use switchboard_proto::handshake::{error_response, error_response_retry_after, HandshakeError, RequestHead, UpgradeRequest};
use switchboard_proto::Connection;

use crate::config::NetConfig;
use crate::driver::drive;
use crate::handler::Handler;
use crate::io::{ByteStream, PrefixedIo};
use crate::nodelay::NoDelay;
use crate::park::{can_park, Lot};
use crate::service::{Service, UpgradeInfo};
use crate::stats::{HandshakeFailure, NetStats};
use crate::timers::Timers;
use crate::transport::{Plain, Transport};

/// Tells every connection that the server is stopping. The listener passes
/// it on to its WebSocket connections (through its timer list), which
/// answer by closing with 1001, and hands a clone to each plain HTTP
/// connection.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown signal and the sender that triggers it (send `true`).
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// Resolves once shutdown was requested (or the sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// True once shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// What every connection task of one listener shares: one pointer per task
/// instead of a copy of the settings in each.
pub(crate) struct Listener<Svc> {
    service: Arc<Svc>,
    pub(crate) common: Common,
    /// Connection tasks still running; the drain at shutdown waits for 0.
    alive: AtomicUsize,
    drained: Notify,
    /// Whether its accepted sockets still need `TCP_NODELAY` set.
    nodelay: NoDelay,
}

/// The part of a listener's shared state a connection's driver uses.
pub(crate) struct Common {
    pub(crate) config: NetConfig,
    pub(crate) shutdown: Shutdown,
    pub(crate) timers: Timers,
    pub(crate) stats: Arc<NetStats>,
    /// Where idle connections park; none if they do not.
    pub(crate) lot: Option<Arc<Lot>>,
}

/// A running connection task's share of the listener: counted as alive
/// until dropped. It moves from the opening to whatever serves the socket
/// next (or, for a parked connection, to the task that resumes it), so the
/// count never drops to zero in between.
pub(crate) struct Alive<Svc>(Arc<Listener<Svc>>);

impl<Svc> std::ops::Deref for Alive<Svc> {
    type Target = Common;

    fn deref(&self) -> &Common {
        &self.0.common
    }
}

impl<Svc> Alive<Svc> {
    pub(crate) fn new(listener: &Arc<Listener<Svc>>) -> Alive<Svc> {
        listener.alive.fetch_add(1, Ordering::AcqRel);
        Alive(listener.clone())
    }
}

impl<Svc> Drop for Alive<Svc> {
    fn drop(&mut self) {
        if self.0.alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_one();
        }
    }
}

impl<Svc> Listener<Svc> {
    pub(crate) fn new(service: Arc<Svc>, config: NetConfig, shutdown: Shutdown, stats: Arc<NetStats>, lot: Option<Arc<Lot>>) -> Listener<Svc> {
        let idle_check = config.park_after.filter(|_| lot.is_some());
        let common = Common { config, shutdown, timers: Timers::new(config.timer_tick(), idle_check), stats, lot };
        Listener { service, common, alive: AtomicUsize::new(0), drained: Notify::new(), nodelay: NoDelay::default() }
    }

    /// Resolves once no connection task runs.
    async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.alive.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Accepts plain TCP connections until shutdown, then waits (at most
/// `close_timeout` plus a second) for open connections to finish their
/// closing handshake. The listener's connections count what they do in
/// `stats`.
pub async fn serve<Svc: Service>(listener: TcpListener, service: Arc<Svc>, config: NetConfig, shutdown: Shutdown, stats: Arc<NetStats>) {
    serve_with(listener, Arc::new(Plain), service, config, shutdown.clone(), shutdown, stats).await
}

/// Like [`serve`], in two steps for a drain: once `stop_accepting` is
/// requested the listening socket is closed (new connections are refused
/// by the kernel) while open connections carry on; once `shutdown` is
/// requested they are closed with 1001 and waited for as in [`serve`].
pub async fn serve_draining<Svc: Service>(
    listener: TcpListener,
    service: Arc<Svc>,
    config: NetConfig,
    stop_accepting: Shutdown,
    shutdown: Shutdown,
    stats: Arc<NetStats>,
) {
    serve_with(listener, Arc::new(Plain), service, config, stop_accepting, shutdown, stats).await
}

/// Like [`serve_draining`], with every accepted socket opened by
/// `transport` (a TLS handshake) before its request head is read. Several
/// listeners may share one service and one `stats`.
pub async fn serve_with<Svc: Service, T: Transport>(
    listener: TcpListener,
    transport: Arc<T>,
    service: Arc<Svc>,
    config: NetConfig,
    mut stop_accepting: Shutdown,
    mut shutdown: Shutdown,
    stats: Arc<NetStats>,
) {
    // Connections over TLS do not park, so their listener needs no lot.
    let parks = config.park_after.is_some() && can_park::<T::Stream>();
    let (lot, _lot_watch) = match parks.then(Lot::start) {
        Some(Ok((lot, watch))) => (Some(lot), Some(AbortOnDrop(tokio::spawn(watch)))),
        Some(Err(e)) => {
            warn!(error = %e, "no parking lot for idle connections: they keep their tasks");
            (None, None)
        }
        None => (None, None),
    };
    let shared = Arc::new(Listener::new(service, config, shutdown.clone(), stats, lot));
    // One task checks the deadlines of every connection, once per tick.
    let sweeper = shared.clone();
    let _sweeper = AbortOnDrop(tokio::spawn(async move { sweeper.common.timers.run().await }));
    {
        // Made once: a wait on the watch channels registers with both, and
        // made anew for every accepted socket that work would be part of
        // every handshake. Polled only when no socket waits to be accepted.
        let stop = async {
            tokio::select! {
                _ = stop_accepting.wait() => {}
                _ = shutdown.wait() => {}
            }
        };
        let mut stop = pin!(stop);
        loop {
            tokio::select! {
                biased;
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(handle_socket(stream, transport.clone(), peer, Alive::new(&shared)));
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                () = &mut stop => break,
            }
        }
    }
    drop(listener);
    shutdown.wait().await;
    shared.common.timers.stop_all();
    let _ = timeout(config.close_timeout + std::time::Duration::from_secs(1), shared.drained()).await;
}

/// Stops a task when dropped (the sweep, when `serve` returns or is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the opening of a stream led to.
pub(crate) enum Opened<H, S> {
    /// A WebSocket connection, ready to be driven.
    Upgraded(Upgraded<H, S>),
    /// A plain HTTP request, for the service: the bytes already read, and
    /// the stream.
    Http(Bytes, S),
    /// Answered (an error or a refusal) or gone.
    Done,
}

/// A stream after a successful handshake.
pub(crate) struct Upgraded<H, S> {
    stream: S,
    conn: Connection,
    buf: BytesMut,
    handler: H,
}

impl<H: Handler, S: ByteStream> Upgraded<H, S> {
    /// The connection's driver, which keeps the listener's share.
    pub(crate) fn drive<Svc: Service>(self, alive: Alive<Svc>) -> impl Future<Output = ()> + Send + 'static {
        let Upgraded { stream, conn, buf, handler } = self;
        drive(stream, conn, buf, handler, alive)
    }
}

/// Opens one accepted socket, then serves it in the same task: a WebSocket
/// connection is driven there; plain HTTP goes to a task of its own.
///
/// An open connection's task is what an idle connection costs, and tokio
/// sizes a task for the largest state its future ever goes through. The
/// opening's state (the request head, the upgrade decision, the timeouts)
/// is several times an open connection's, so it is boxed and gone once the
/// socket is open, and [`SocketTask`] then holds the driver alone (a test
/// pins its size; an `async` block here would keep the opening's result
/// beside the driver). One task per connection, rather than one for the
/// opening and one for the driver, saves a task's allocation, scheduling
/// and teardown in every handshake.
fn handle_socket<Svc: Service, T: Transport>(
    stream: TcpStream,
    transport: Arc<T>,
    peer: SocketAddr,
    alive: Alive<Svc>,
) -> impl Future<Output = ()> + Send + 'static {
    alive.0.nodelay.apply(&stream);
    SocketTask {
        serve: |(opened, alive, peer): (Opened<Svc::Handler, T::Stream>, Alive<Svc>, SocketAddr)| match opened {
            Opened::Upgraded(upgraded) => Some(upgraded.drive(alive)),
            Opened::Http(prefix, stream) => {
                let serving = alive.0.service.http(PrefixedIo::new(prefix, stream), peer, alive.shutdown.clone());
                tokio::spawn(async move {
                    serving.await;
                    drop(alive);
                });
                None
            }
            Opened::Done => None,
        },
        phase: Phase::Opening { opening: Box::pin(open_transport(stream, transport, peer, alive)) },
    }
}

pin_project! {
    /// One accepted socket's task: its boxed opening, then the driver that
    /// `serve` makes of the result, in its place. `serve` captures nothing
    /// (it takes no room); the phase alone is the task's state.
    struct SocketTask<O, F, D> {
        serve: F,
        #[pin]
        phase: Phase<O, D>,
    }
}

pin_project! {
    #[project = PhaseProj]
    enum Phase<O, D> {
        Opening { opening: Pin<Box<O>> },
        Driving { #[pin] driver: D },
    }
}

impl<O, F, D> Future for SocketTask<O, F, D>
where
    O: Future,
    F: Fn(O::Output) -> Option<D>,
    D: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // An open connection's every wake-up comes here: one match for it.
        let opened = match this.phase.as_mut().project() {
            PhaseProj::Driving { driver } => return driver.poll(cx),
            PhaseProj::Opening { opening } => ready!(opening.as_mut().poll(cx)),
        };
        match (this.serve)(opened) {
            Some(driver) => {
                this.phase.set(Phase::Driving { driver });
                match this.phase.project() {
                    PhaseProj::Driving { driver } => driver.poll(cx),
                    PhaseProj::Opening { .. } => unreachable!("the driver was just put in place"),
                }
            }
            None => Poll::Ready(()),
        }
    }
}

/// Opens the transport, then the request. The whole opening, from the
/// accept to the room's answer, shares one deadline, `handshake_timeout`
/// after the accept: a peer cannot stretch it by taking its time in each
/// step, and the clock is read once. The listener's share comes back with
/// the result, for whatever serves the socket next.
async fn open_transport<Svc: Service, T: Transport>(
    tcp: TcpStream,
    transport: Arc<T>,
    peer: SocketAddr,
    alive: Alive<Svc>,
) -> (Opened<Svc::Handler, T::Stream>, Alive<Svc>, SocketAddr) {
    let deadline = Instant::now() + alive.config.handshake_timeout;
    let opened = match timeout_at(deadline, transport.open(tcp)).await {
        Ok(Ok(stream)) => open(stream, peer, &alive.0, deadline).await,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "transport handshake failed");
            Opened::Done
        }
        Err(_) => {
            debug!(%peer, "transport handshake timed out");
            Opened::Done
        }
    };
    (opened, alive, peer)
}

/// Reads the request head and answers an upgrade request, both by
/// `deadline`; counts a refusal in the listener's stats.
pub(crate) async fn open<Svc: Service, S: ByteStream>(mut stream: S, peer: SocketAddr, shared: &Listener<Svc>, deadline: Instant) -> Opened<Svc::Handler, S> {
    let Common { config, stats, .. } = &shared.common;
    let mut buf = BytesMut::with_capacity(1024);
    let head = match timeout_at(deadline, read_head(&mut stream, &mut buf, config.max_head_len)).await {
        Err(_) => {
            debug!(%peer, "handshake timed out");
            stats.record_handshake_failure(HandshakeFailure::Timeout);
            let _ = stream.write_all(&error_response(408, "request head not received in time")).await;
            return Opened::Done;
        }
        Ok(Err(refused)) => {
            stats.record_handshake_failure(HandshakeFailure::BadRequest);
            let _ = stream.write_all(&refused.response()).await;
            return Opened::Done;
        }
        Ok(Ok(None)) => return Opened::Done,
        Ok(Ok(Some(head))) => head,
    };
    let (head, consumed) = head;
    if !head.wants_upgrade() {
        return Opened::Http(buf.freeze(), stream);
    }
    let request = match UpgradeRequest::from_head(&head) {
        Ok(request) => request,
        Err(refused) => {
            debug!(%peer, reason = %refused.reason, "bad upgrade request");
            stats.record_handshake_failure(if refused.status == 426 { HandshakeFailure::WrongVersion } else { HandshakeFailure::BadRequest });
            let _ = stream.write_all(&refused.response()).await;
            return Opened::Done;
        }
    };
    // The application may have to ask a busy room; that too is bounded.
    let decision = timeout_at(deadline, shared.service.upgrade(UpgradeInfo { request: &request, head: &head, peer })).await;
    let accept = match decision {
        Ok(Ok(accept)) => accept,
        Ok(Err(refusal)) => {
            stats.record_handshake_failure(if refusal.status == 404 { HandshakeFailure::NotFound } else { HandshakeFailure::Rejected });
            let _ = stream.write_all(&error_response_retry_after(refusal.status, &refusal.reason, refusal.retry_after)).await;
            return Opened::Done;
        }
        Err(_) => {
            stats.record_handshake_failure(HandshakeFailure::Timeout);
            let _ = stream.write_all(&error_response(503, "the room did not answer in time")).await;
            return Opened::Done;
        }
    };
    let offers: Vec<&str> = request.extensions.iter().map(String::as_str).collect();
    let options = DeflateOptions { policy: accept.compression.unwrap_or(config.deflate.policy), ..config.deflate };
    let deflate = negotiate_server(&offers, &options);
    let response = request.accept_response(accept.protocol.as_deref(), deflate.as_ref().map(|(_, value)| value.as_str()), &[]);
    let mut conn = Connection::server(config.protocol, deflate.map(|(agreed, _)| DeflateParams::new(agreed, &options)));
    // Not written here: the driver writes it after the handler's `on_open`
    // (with whatever that queued), so that by the time the client sees the
    // 101 its room knows the connection, and a message another member
    // sends once this client is open reaches it too.
    conn.queue_handshake_response(&response);
    buf.advance(consumed);
    Opened::Upgraded(Upgraded { stream, conn, buf, handler: accept.handler })
}

/// Reads until a whole request head is buffered. `Ok(None)`: the peer closed first.
/// On a socket, a short read clears the socket's readiness (tokio does that),
/// so the connection's first wait after the handshake does not begin with a
/// read that fails with `EAGAIN`.
async fn read_head<S: ByteStream>(stream: &mut S, buf: &mut BytesMut, max_len: usize) -> Result<Option<(RequestHead, usize)>, HandshakeError> {
    loop {
        if let Some(parsed) = RequestHead::parse(buf, max_len)? {
            return Ok(Some(parsed));
        }
        buf.reserve(1024);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

impl From<watch::Receiver<bool>> for Shutdown {
    fn from(rx: watch::Receiver<bool>) -> Self {
        Shutdown(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use switchboard_proto::Message;

    use super::*;
    use crate::handler::Outbox;
    use crate::service::{Accept, Refusal};
    use crate::testing::{refused_status, Server};

    /// A stand-in for the server's room handler, seven words, whose message
    /// futures hold what the server's do: an optional box (the wait for a
    /// busy room) and the outbox. Only their sizes and niches matter.
    #[allow(dead_code)]
    struct RoomSized([u64; 7]);

    #[allow(dead_code)]
    struct Delivering<'o>(Option<Box<u64>>, Outbox<'o>);

    impl Future for Delivering<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
    }

    impl Handler for RoomSized {
        fn on_message(&mut self, _message: Message, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
            Delivering(None, out)
        }

        fn on_read_end(&mut self, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
            Delivering(None, out)
        }
    }

    struct Refuses;

    impl Service for Refuses {
        type Handler = RoomSized;

        async fn upgrade(&self, _info: UpgradeInfo<'_>) -> Result<Accept<RoomSized>, Refusal> {
            Err(Refusal::new(404, ""))
        }

        fn http(&self, _io: PrefixedIo, _peer: SocketAddr, _shutdown: Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            Box::pin(async {})
        }
    }

    fn upgrade_request(path: &str, version: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n")
    }

    #[tokio::test(start_paused = true)]
    async fn refused_handshakes_are_answered_and_counted_by_reason() {
        let server = Server::start(NetConfig::default());
        let cases = [
            (upgrade_request("/room", "13").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400),
            (format!("GET /room HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n", "x".repeat(NetConfig::default().max_head_len)), 431),
            (upgrade_request("/room", "8"), 426),
            (upgrade_request("/missing", "13"), 404),
            (upgrade_request("/forbidden", "13"), 403),
            // The service never decides; then a head that never ends.
            (upgrade_request("/stalled", "13"), 503),
            ("GET /room HTTP/1.1\r\nHost: te".to_owned(), 408),
        ];
        for (request, status) in cases {
            let (io, task) = server.connect();
            assert_eq!(refused_status(io, request.as_bytes()).await, status, "{request:.60}");
            task.await.unwrap();
        }
        let stats = server.stats();
        let by_reason =
            (stats.handshake_bad_request, stats.handshake_wrong_version, stats.handshake_not_found, stats.handshake_rejected, stats.handshake_timeout);
        assert_eq!(by_reason, (2, 1, 1, 1, 2));
        assert_eq!(stats.connections_opened, 0);
    }

    /// The task of every open connection is its future (the opening's box,
    /// then the driver in its place) plus tokio's header and trailer, in a
    /// block aligned to 128; mimalloc serves such blocks without
    /// over-allocating only at powers of two. Up to 152 bytes of future the
    /// block is 256; past that it is 512, and every idle connection costs
    /// 256 bytes more. See the `driver` module docs for what keeps the
    /// future small.
    #[tokio::test]
    async fn the_task_of_a_connection_fits_a_256_byte_block() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (_stop, shutdown) = Shutdown::new();
        let config = NetConfig::default();
        let shared = Arc::new(Listener::new(Arc::new(Refuses), config, shutdown, Arc::new(NetStats::new()), None));
        let peer = stream.local_addr().unwrap();
        let task = handle_socket(stream, Arc::new(Plain), peer, Alive::new(&shared));
        // mio gives each socket a selector id in debug builds such as this
        // test's, 8 bytes more than the 32 of a release build's socket: the
        // bound is on what the future holds besides its socket.
        let socket = std::mem::size_of::<TcpStream>();
        let size = std::mem::size_of_val(&task) - socket;
        assert!(size <= 152 - 32, "the connection task's future is {size} bytes besides its {socket}-byte socket");
    }
}
