//! A WebSocket client on the switchboard protocol engine, over tokio.
//!
//! Used by the test suite, the load generator and Rust programs that talk to a
//! switchboard server. It speaks `ws://` URLs, and `wss://` with the roots
//! the caller trusts ([`ClientOptions::tls`], [`tls_config`]), offers subprotocols and
//! permessage-deflate, masks every frame with a fresh random key, answers
//! pings, and completes the closing handshake. It is one owner of one socket:
//! `send` queues and writes, `recv` reads until the next event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::stream::Stream;

use switchboard_proto::connection::State;
use switchboard_proto::deflate::{client_accept, client_offer, DeflateParams};
pub use switchboard_proto::deflate::{DeflateOptions, Policy};
use switchboard_proto::handshake::ClientHandshake;
use switchboard_proto::Connection;
pub use switchboard_proto::{CloseCode, CloseFrame, Config, Event, Message, ProtocolError};

mod error;
mod stream;
mod url;

pub use error::ClientError;
pub use rustls::{ClientConfig as TlsConfig, RootCertStore};
pub use stream::tls_config;
pub use url::WsUrl;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// Offer permessage-deflate with these options (`None`: no compression).
    pub deflate: Option<DeflateOptions>,
    /// Extra request headers (e.g. `Origin`, `Cookie`).
    pub headers: Vec<(String, String)>,
    /// Frame and message limits for what the server sends.
    pub limits: Config,
    /// Time allowed for TCP connect plus handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Local address to connect from, with a port the system picks. A load
    /// generator connecting from 127.0.0.1, 127.0.0.2, … in turn gets a set of
    /// ephemeral ports per address instead of one set in all. Only the
    /// server's addresses of the same family are tried. `SO_REUSEADDR` is set
    /// so that a port whose last connection is in TIME_WAIT can be bound
    /// again (the kernel still refuses a connection that would reuse the
    /// exact address pair too early). Default `None`: the system chooses.
    pub local_addr: Option<IpAddr>,
    /// TLS settings for `wss://` URLs: the roots trusted, from
    /// [`tls_config`]. Default `None`: a `wss://` URL is refused.
    pub tls: Option<Arc<TlsConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            protocols: Vec::new(),
            deflate: None,
            headers: Vec::new(),
            limits: Config::default(),
            connect_timeout: Duration::from_secs(10),
            local_addr: None,
            tls: None,
        }
    }
}

/// An open WebSocket connection.
pub struct Client {
    stream: Stream,
    conn: Connection,
    buf: BytesMut,
    protocol: Option<String>,
    /// Bytes read from the stream after the handshake.
    read: u64,
}

impl Client {
    /// Connects with default options.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects, runs the opening handshake and returns the open connection.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let url = WsUrl::parse(url)?;
        tokio::time::timeout(options.connect_timeout, Client::open(url, options)).await.map_err(|_| ClientError::Timeout)?
    }

    async fn open(url: WsUrl, options: ClientOptions) -> Result<Client, ClientError> {
        let forged = |s: &str| s.chars().any(|c| c.is_control());
        if options.headers.iter().any(|(k, v)| forged(k) || forged(v) || k.contains(':')) || options.protocols.iter().any(|p| forged(p) || p.contains(',')) {
            return Err(ClientError::InvalidOption("header names, values and subprotocols must not contain control characters".into()));
        }
        let tcp = connect_tcp(&url, options.local_addr).await?;
        let _ = tcp.set_nodelay(true);
        let mut stream = match (url.tls, &options.tls) {
            (false, _) => Stream::Plain(tcp),
            (true, Some(tls)) => Stream::tls(tcp, &url.host, tls.clone()).await?,
            (true, None) => return Err(ClientError::InvalidOption("a wss:// URL needs ClientOptions::tls (see tls_config)".into())),
        };
        let protocols: Vec<&str> = options.protocols.iter().map(String::as_str).collect();
        let deflate_options = options.deflate.filter(|d| d.policy != Policy::Off);
        let offer = deflate_options.as_ref().map(client_offer);
        let headers: Vec<(&str, &str)> = options.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (handshake, request) = ClientHandshake::new(&url.host_header(), &url.path, &protocols, offer.as_deref(), &headers, rand::random());
        stream.write_all(&request).await?;

        let mut buf = BytesMut::with_capacity(4096);
        let (accepted, consumed) = loop {
            if let Some(done) = handshake.handle_response(&buf)? {
                break done;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(ClientError::ConnectionClosed);
            }
        };
        let _ = buf.split_to(consumed);
        let deflate = match (&accepted.extensions, &deflate_options) {
            (Some(value), Some(deflate)) => Some(DeflateParams::new(client_accept(value, deflate)?, deflate)),
            (Some(_), None) => return Err(ClientError::UnexpectedExtension),
            (None, _) => None,
        };
        let mut keys = MaskKeys::new();
        let conn = Connection::client(options.limits, deflate, Box::new(move || keys.next()));
        Ok(Client { stream, conn, buf, protocol: accepted.protocol, read: 0 })
    }

    /// The TLS version agreed (`None` for `ws://`).
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.tls_version()
    }

    /// The server's TLS certificate, DER-encoded (`None` for `ws://`).
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.stream.peer_certificate()
    }

    /// The subprotocol the server chose.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Bytes of frames read since the handshake, as they came on the wire
    /// (compressed payloads, headers, control frames; for `wss://`, after
    /// decryption). Frames that arrived in the handshake response's own
    /// read are not counted.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// True when permessage-deflate was agreed.
    pub fn is_compressed(&self) -> bool {
        self.conn.is_compressed()
    }

    /// Sends a message and writes it out.
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        self.conn.send(message).map_err(|_| ClientError::ConnectionClosed)?;
        self.flush().await
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(&Message::text(text)).await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: impl Into<bytes::Bytes>) -> Result<(), ClientError> {
        self.send(&Message::binary(data)).await
    }

    /// Queues a message without writing it; [`Client::flush`] writes every
    /// queued message in as few system calls as possible.
    pub fn queue(&mut self, message: &Message) -> Result<(), ClientError> {
        self.conn.send(message).map_err(|_| ClientError::ConnectionClosed)
    }

    /// Sends a ping.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn.send_ping(payload).map_err(|_| ClientError::ConnectionClosed)?;
        self.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        while self.conn.wants_write() {
            let written = {
                let mut slices = [std::io::IoSlice::new(&[]); 64];
                let n = self.conn.transmit_chunks(&mut slices);
                // One buffer goes out with `send` rather than `writev`, which
                // costs the kernel more (it passes through the file layer).
                if n == 1 {
                    self.stream.write(&slices[0]).await?
                } else {
                    self.stream.write_vectored(&slices[..n]).await?
                }
            };
            if written == 0 {
                return Err(ClientError::ConnectionClosed);
            }
            self.conn.advance(written);
        }
        // TLS may hold the last record until flushed; TCP holds nothing.
        self.stream.flush().await?;
        Ok(())
    }

    /// Waits for the next event. Pings are answered automatically (and still
    /// reported). `Ok(None)` means the TCP connection ended.
    pub async fn recv(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            let event = self.conn.handle_read(&mut self.buf);
            if matches!(event, Ok(Some(Event::Close(_))) | Err(_)) {
                self.conn.reply_close();
            }
            self.flush().await?;
            match event {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e)),
            }
            self.buf.reserve(16 * 1024);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.read += n as u64;
        }
    }

    /// The next event already buffered, without reading from the socket.
    /// Lets a caller drain a whole read's worth of messages, queue its
    /// answers, and write them all with one [`Client::flush`].
    pub fn try_recv(&mut self) -> Result<Option<Event>, ClientError> {
        let event = self.conn.handle_read(&mut self.buf);
        if matches!(event, Ok(Some(Event::Close(_))) | Err(_)) {
            self.conn.reply_close();
        }
        event.map_err(ClientError::Protocol)
    }

    /// Waits for the next data message, skipping pings and pongs. A close
    /// frame or the end of the connection is an error here.
    pub async fn recv_message(&mut self) -> Result<Message, ClientError> {
        loop {
            match self.recv().await? {
                Some(Event::Message(message)) => return Ok(message),
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(Event::Close(frame)) => return Err(ClientError::Closed(frame)),
                None => return Err(ClientError::ConnectionClosed),
            }
        }
    }

    /// Runs the closing handshake: sends our close frame, waits for the
    /// server's, then for the server to end the TCP connection. Returns the
    /// server's close frame.
    pub async fn close(mut self, code: Option<CloseCode>, reason: &str) -> Result<CloseFrame, ClientError> {
        self.conn.close(code, reason);
        self.flush().await?;
        let mut reply = None;
        while let Some(event) = self.recv().await? {
            if let Event::Close(frame) = event {
                reply = Some(frame);
            }
        }
        reply.ok_or(ClientError::ConnectionClosed)
    }

    /// True once both close frames were exchanged.
    pub fn is_closed(&self) -> bool {
        self.conn.state() == State::Closed
    }
}

/// Masking keys, fresh and unpredictable (RFC 6455 §5.3), from a generator
/// of the connection's own, seeded from the thread's (itself seeded by the
/// system): no thread-local lookup per frame, as `rand::random` would make,
/// and drawn 64 at a time, so a frame pays for an index, not a call into
/// the generator.
struct MaskKeys {
    rng: rand::rngs::StdRng,
    drawn: [[u8; 4]; 64],
    next: usize,
}

impl MaskKeys {
    fn new() -> MaskKeys {
        MaskKeys { rng: rand::rngs::StdRng::from_rng(&mut rand::rng()), drawn: [[0; 4]; 64], next: 64 }
    }

    fn next(&mut self) -> [u8; 4] {
        if self.next == self.drawn.len() {
            self.rng.fill(self.drawn.as_flattened_mut());
            self.next = 0;
        }
        self.next += 1;
        self.drawn[self.next - 1]
    }
}

/// Opens the TCP connection, from `local` when given (see
/// [`ClientOptions::local_addr`]).
async fn connect_tcp(url: &WsUrl, local: Option<IpAddr>) -> Result<TcpStream, ClientError> {
    let Some(local) = local else {
        return Ok(TcpStream::connect((url.host.as_str(), url.port)).await?);
    };
    let mut last = None;
    for server in tokio::net::lookup_host((url.host.as_str(), url.port)).await?.filter(|a| a.is_ipv4() == local.is_ipv4()) {
        let socket = if local.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(server).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => ClientError::Io(e),
        None => ClientError::InvalidOption(format!("{} has no address of the same family as the local address {local}", url.host)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    use tokio::net::TcpListener;

    /// The server sees the connection come from the chosen local address.
    #[tokio::test]
    async fn connects_from_the_local_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let options = ClientOptions { local_addr: Some(local), ..ClientOptions::default() };
        let (client, accepted) = tokio::join!(Client::connect_with(&url, options), async {
            let (socket, peer) = listener.accept().await.unwrap();
            drop(socket); // no handshake answer: the client sees the end of the connection
            peer
        });
        assert_eq!(accepted.ip(), local);
        assert!(matches!(client, Err(ClientError::ConnectionClosed)), "{:?}", client.err());
    }

    /// Keys keep coming fresh across the refills of the drawn batch, and
    /// two connections do not share a sequence.
    #[test]
    fn mask_keys_are_fresh_across_batches_and_connections() {
        let (mut one, mut other) = (MaskKeys::new(), MaskKeys::new());
        let keys: Vec<[u8; 4]> = (0..200).map(|_| one.next()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        // 200 draws of 32 random bits: a repeat is a one-in-200,000 event.
        assert!(distinct.len() >= 199, "{} distinct keys of 200", distinct.len());
        assert_ne!(keys[..64], keys[64..128], "a refill draws new keys");
        let theirs: Vec<[u8; 4]> = (0..64).map(|_| other.next()).collect();
        assert_ne!(keys[..64], theirs[..]);
    }

    /// A local address of the other family cannot reach the server at all.
    #[tokio::test]
    async fn refuses_a_local_address_of_the_other_family() {
        let options = ClientOptions { local_addr: Some("::1".parse().unwrap()), ..ClientOptions::default() };
        let client = Client::connect_with("ws://127.0.0.1:9/", options).await;
        assert!(matches!(client, Err(ClientError::InvalidOption(_))), "{:?}", client.err());
    }
}
