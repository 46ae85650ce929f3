//! What the unit tests drive connections with: an in-memory pipe for a
//! socket, a peer that speaks the client side of the protocol over it
//! (switchboard-proto's own client engine), a service with a few fixed
//! answers, and a handler that records every call and echoes messages.
//!
//! The server side is the real code: `listener::open` for the handshake and
//! the driver after it, on the listener's shared state with its timer
//! sweep. Tests run on a paused tokio clock, so heartbeats and timeouts
//! take no real time and their timing can be asserted.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use switchboard_proto::frame::{DataOp, OpCode, SharedFrame};
use switchboard_proto::handshake::ClientHandshake;
use switchboard_proto::{CloseCode, Config, Connection, Event, Message};

use crate::handler::{Handler, Outbox};
use crate::io::{ByteStream, PrefixedIo};
use crate::listener::{open, Alive, Listener, Opened, Shutdown};
use crate::outbound::Outbound;
use crate::service::{Accept, Refusal, Service, UpgradeInfo};
use crate::stats::{NetSnapshot, NetStats};
use crate::NetConfig;

/// Bytes the in-memory pipe holds in each direction: small, so that a peer
/// that stops reading soon blocks the server's writes.
pub(crate) const PIPE_CAPACITY: usize = 8 * 1024;

/// Longer than any timer of the tests' configurations: a peer that hears
/// nothing for this long (on the paused clock) fails its test instead of
/// waiting forever.
const PATIENCE: Duration = Duration::from_secs(600);

/// The address the service is told the peer has.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50_000);

/// A call the handler received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Open,
    Message(Message),
    ReadEnd,
    Close { code: Option<CloseCode>, reason: String, clean: bool },
}

/// What the handlers of one test server saw.
#[derive(Default)]
struct Recorded {
    calls: Vec<Call>,
    outbound: Option<Arc<Outbound>>,
}

type Log = Arc<Mutex<Recorded>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Recorded> {
    log.lock().unwrap()
}

/// The message on which the recorder queues a frame on its outbound queue,
/// then catches up and sends one straight into the engine, before its echo.
pub(crate) const CATCH_UP: &str = "catch up";

/// Records every call and echoes every message.
pub(crate) struct Recorder(Log);

impl Handler for Recorder {
    fn on_open(&mut self, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        let mut log = lock(&self.0);
        log.calls.push(Call::Open);
        log.outbound = Some(out.outbound());
        async {}
    }

    fn on_message(&mut self, message: Message, mut out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        if message.as_text() == Some(CATCH_UP) {
            // As a room handled on this task does: someone else queued a
            // frame for the connection before; the reply must follow it.
            out.outbound().push(&SharedFrame::new(OpCode::Data(DataOp::Text), false, &Bytes::from_static(b"queued before")));
            out.catch_up();
            out.send_uncompressed(&[Message::text("sent straight")]).expect("open");
        }
        out.send(&message).expect("open");
        lock(&self.0).calls.push(Call::Message(message));
        async {}
    }

    fn on_read_end(&mut self, _out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        lock(&self.0).calls.push(Call::ReadEnd);
        async {}
    }

    fn on_close(&mut self, code: Option<CloseCode>, reason: &str, clean: bool) -> impl Future<Output = ()> + Send {
        lock(&self.0).calls.push(Call::Close { code, reason: reason.to_owned(), clean });
        async {}
    }
}

/// Accepts every path but three: `/missing` (404), `/forbidden` (403)
/// and `/stalled`, which never gets an answer.
pub(crate) struct TestService(Log);

impl Service for TestService {
    type Handler = Recorder;

    async fn upgrade(&self, info: UpgradeInfo<'_>) -> Result<Accept<Recorder>, Refusal> {
        match info.request.path.as_str() {
            "/missing" => Err(Refusal::new(404, "no such room")),
            "/forbidden" => Err(Refusal::new(403, "not for you")),
            "/stalled" => std::future::pending().await,
            _ => Ok(Accept { handler: Recorder(self.0.clone()), protocol: None, compression: None }),
        }
    }

    fn http(&self, _io: PrefixedIo, _peer: SocketAddr, _shutdown: Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}

/// A listener's shared state and timer sweep, without a socket to accept
/// on: each `connect` hands it one end of a pipe.
pub(crate) struct Server {
    listener: Arc<Listener<TestService>>,
    log: Log,
    stop: watch::Sender<bool>,
    sweep: JoinHandle<()>,
}

impl Server {
    pub(crate) fn start(config: NetConfig) -> Server {
        let log = Log::default();
        let (stop, shutdown) = Shutdown::new();
        let listener = Arc::new(Listener::new(Arc::new(TestService(log.clone())), config, shutdown, Arc::new(NetStats::new()), None));
        let sweeper = listener.clone();
        let sweep = tokio::spawn(async move { sweeper.common.timers.run().await });
        Server { listener, log, stop, sweep }
    }

    /// A new connection over an in-memory pipe: the server's end is opened
    /// and driven by a task of its own, which ends with the connection.
    pub(crate) fn connect(&self) -> (DuplexStream, JoinHandle<()>) {
        let (client, server) = duplex(PIPE_CAPACITY);
        (client, self.serve(server))
    }

    /// Serves `stream` as the listener serves an accepted socket.
    pub(crate) fn serve<S: ByteStream>(&self, stream: S) -> JoinHandle<()> {
        let listener = self.listener.clone();
        tokio::spawn(async move {
            let alive = Alive::new(&listener);
            let deadline = tokio::time::Instant::now() + listener.common.config.handshake_timeout;
            if let Opened::Upgraded(upgraded) = open(stream, PEER, &listener, deadline).await {
                upgraded.drive(alive).await;
            }
        })
    }

    pub(crate) fn config(&self) -> NetConfig {
        self.listener.common.config
    }

    pub(crate) fn stats(&self) -> NetSnapshot {
        self.listener.common.stats.snapshot()
    }

    /// Every handler call so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        lock(&self.log).calls.clone()
    }

    /// The outbound queue of the last connection opened, as a room holds it.
    pub(crate) fn outbound(&self) -> Arc<Outbound> {
        lock(&self.log).outbound.clone().expect("a connection was opened")
    }

    /// Stops the server as `serve` does at shutdown.
    pub(crate) fn stop(&self) {
        self.stop.send(true).unwrap();
        self.listener.common.timers.stop_all();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.sweep.abort();
    }
}

/// A real listener on a loopback port, serving the test service with
/// [`serve`](crate::serve): what parking needs (plain TCP sockets and the
/// listener's own lot), on tokio's real clock.
pub(crate) struct Listening {
    addr: SocketAddr,
    log: Log,
    stats: Arc<NetStats>,
    stop: watch::Sender<bool>,
    served: JoinHandle<()>,
}

impl Listening {
    pub(crate) async fn start(config: NetConfig) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Log::default();
        let stats = Arc::new(NetStats::new());
        let (stop, shutdown) = Shutdown::new();
        let served = tokio::spawn(crate::serve(listener, Arc::new(TestService(log.clone())), config, shutdown, stats.clone()));
        Listening { addr, log, stats, stop, served }
    }

    /// A new connection to `path`, past its handshake.
    pub(crate) async fn connect(&self, path: &str) -> Peer<tokio::net::TcpStream> {
        Peer::handshake(tokio::net::TcpStream::connect(self.addr).await.unwrap(), path).await
    }

    pub(crate) fn stats(&self) -> NetSnapshot {
        self.stats.snapshot()
    }

    /// Every handler call so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        lock(&self.log).calls.clone()
    }

    /// The outbound queue of the last connection opened, as a room holds it.
    pub(crate) fn outbound(&self) -> Arc<Outbound> {
        lock(&self.log).outbound.clone().expect("a connection was opened")
    }

    /// Asks the server to stop, and waits until `serve` returned.
    pub(crate) async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(PATIENCE, self.served).await.expect("serve returns").unwrap();
    }
}

/// The client end of a connection, scripted by a test.
pub(crate) struct Peer<S = DuplexStream> {
    io: S,
    conn: Connection,
    buf: BytesMut,
    /// Bytes written after the request head.
    pub(crate) sent: usize,
    /// Bytes received after the response head.
    pub(crate) received: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    /// Completes the opening handshake for `path`.
    pub(crate) async fn handshake(mut io: S, path: &str) -> Peer<S> {
        let (handshake, request) = ClientHandshake::new("test", path, &[], None, &[], [7; 16]);
        io.write_all(&request).await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            if let Some((accepted, len)) = handshake.handle_response(&buf).expect("a 101") {
                assert_eq!(accepted.status, 101);
                buf.advance(len);
                break;
            }
            assert!(io.read_buf(&mut buf).await.unwrap() > 0, "the server closed during the handshake");
        }
        let received = buf.len();
        Peer { io, conn: Connection::client(Config::default(), None, Box::new(|| [1, 2, 3, 4])), buf, sent: 0, received }
    }

    /// Queues a message and writes it.
    pub(crate) async fn send(&mut self, message: &Message) {
        self.conn.send(message).unwrap();
        self.flush().await;
    }

    /// Queues a message without writing it: `flush` writes everything
    /// queued at once, as a client pipelining messages does.
    pub(crate) fn queue(&mut self, message: &Message) {
        self.conn.send(message).unwrap();
    }

    /// Sends our close frame.
    pub(crate) async fn close(&mut self, code: CloseCode, reason: &str) {
        self.conn.close(Some(code), reason);
        self.flush().await;
    }

    /// Writes bytes as they are, whatever they say.
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.sent += bytes.len();
    }

    /// Writes what the engine queued: messages, pongs, a close frame.
    pub(crate) async fn flush(&mut self) {
        let queued = self.take_queued();
        self.write_raw(&queued).await;
    }

    /// Takes what the engine queued without writing it, for a test that
    /// writes it in pieces.
    pub(crate) fn take_queued(&mut self) -> Vec<u8> {
        let mut queued = Vec::new();
        while self.conn.wants_write() {
            let mut slices = [IoSlice::new(&[]); 1];
            self.conn.transmit_chunks(&mut slices);
            let len = slices[0].len();
            queued.extend_from_slice(&slices[0]);
            self.conn.advance(len);
        }
        queued
    }

    /// The next event in what the server sends, or `None` once the server
    /// closed the stream. Panics if the server breaks the protocol, or
    /// sends nothing for longer than any of its timers.
    pub(crate) async fn next_event(&mut self) -> Option<Event> {
        tokio::time::timeout(PATIENCE, self.read_event()).await.expect("the server sent nothing for ten minutes")
    }

    async fn read_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.conn.handle_read(&mut self.buf).expect("the server speaks the protocol") {
                return Some(event);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.received += n,
            }
        }
    }
}

impl Peer<tokio::net::TcpStream> {
    /// The next event in what the socket holds now, read without waiting:
    /// straight from the socket (not through tokio's readiness, which only
    /// the runtime's turn updates), so it is what the server wrote before
    /// this task last yielded. `None` if that is no whole event.
    pub(crate) fn event_now(&mut self) -> Option<Event> {
        let mut chunk = [0; 16 << 10];
        loop {
            if let Some(event) = self.conn.handle_read(&mut self.buf).expect("the server speaks the protocol") {
                return Some(event);
            }
            match std::io::Read::read(&mut &*socket2::SockRef::from(&self.io), &mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    self.received += n;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

/// Writes a raw request and reads the answer to its end: the status of a
/// refused handshake.
pub(crate) async fn refused_status(mut io: DuplexStream, request: &[u8]) -> u16 {
    io.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, io.read_to_end(&mut response)).await.expect("an answer").unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    status.parse().unwrap()
}

/// True if `elapsed` is `expected`, late by at most one timer tick of
/// `config` (the sweep's precision) and early by at most the millisecond
/// the deadlines are rounded to.
pub(crate) fn on_time(elapsed: Duration, expected: Duration, config: &NetConfig) -> bool {
    elapsed + Duration::from_millis(1) >= expected && elapsed <= expected + config.timer_tick() + Duration::from_millis(1)
}

/// A pipe that says whether it takes vectored writes, and counts the
/// writes it is given.
pub(crate) struct CountingPipe {
    inner: DuplexStream,
    vectored: bool,
    pub(crate) writes: Arc<AtomicUsize>,
}

impl CountingPipe {
    /// A pipe and the client's end of it.
    pub(crate) fn new(vectored: bool) -> (CountingPipe, DuplexStream) {
        let (client, server) = duplex(PIPE_CAPACITY);
        (CountingPipe { inner: server, vectored, writes: Arc::default() }, client)
    }
}

impl AsyncRead for CountingPipe {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingPipe {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    /// All slices in one write (the pipe has room for them in these tests).
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        assert!(self.vectored, "a vectored write on a stream that does not take them");
        self.writes.fetch_add(1, Ordering::Relaxed);
        let joined: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
        Pin::new(&mut self.inner).poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
