//! HTTPS and `wss://`: the TLS listener's transport, its certificate, and
//! reloading the certificate while the server runs.
//!
//! rustls on the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1` (the
//! server speaks HTTP/1.1 only; a client that offers only `h2` is refused
//! with rustls' `no_application_protocol` alert). The certificate chain and
//! key are PEM files. One rustls configuration lives as long as the
//! listener; its certificate resolver hands out the current certificate, so
//! a reload changes what new handshakes see and leaves open connections,
//! which finished their handshake, alone. A certificate that cannot be
//! loaded at start stops the server; one that cannot be loaded at a reload
//! is logged and the previous one stays.
//!
//! Reloads happen on [`TlsReloader::reload`] (the binary calls it on
//! `SIGHUP`) and when the files' modification time or size changes, checked
//! every [`POLL_INTERVAL`]. The TLS session of a connection is boxed before
//! the driver gets it: it is several times the size of an idle connection's
//! task, and boxing keeps that task the same size for TLS and plain TCP.
//!
//! Handshakes that fail are counted by a coarse reason ([`TlsStats`], at
//! `/metrics`): a client that does not speak TLS (plain HTTP to the TLS
//! port), one that refused our certificate, one that went away, one that
//! took too long.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use switchboard_net::{BoxedStream, Transport};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for changes. A renewed
/// certificate is usually written days before the old one expires, so a
/// few seconds of delay cost nothing, and a `stat` of two files every few
/// seconds costs nothing either.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Where a TLS listener listens and where its certificate is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Address of the HTTPS / `wss://` listener.
    pub listen: SocketAddr,
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key: PathBuf,
}

/// The TLS listener's transport: a TLS handshake on each accepted socket.
pub(crate) struct TlsTransport {
    acceptor: TlsAcceptor,
    stats: Arc<TlsStats>,
}

impl Transport for TlsTransport {
    type Stream = BoxedStream;

    async fn open(&self, tcp: TcpStream) -> io::Result<BoxedStream> {
        // The listener gives up on a slow handshake by dropping this
        // future; the guard counts that as a timeout.
        let mut pending = Pending { stats: &self.stats, done: false };
        let accepted = self.acceptor.accept(tcp).await;
        pending.done = true;
        match accepted {
            Ok(stream) => Ok(Box::new(stream)),
            Err(e) => {
                self.stats.count(FailureReason::of(&e));
                Err(e)
            }
        }
    }
}

/// Failed TLS handshakes on one listener, by reason.
#[derive(Debug, Default)]
pub struct TlsStats {
    counts: [AtomicU64; FailureReason::ALL.len()],
}

/// Why a TLS handshake failed, coarsely: the label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureReason {
    /// The client spoke something other than TLS (plain HTTP, a scanner).
    NotTls,
    /// The client sent an alert: most often it does not trust our
    /// certificate (unknown CA, expired, wrong name).
    Alert,
    /// TLS the server does not accept: no common version, cipher suite or
    /// ALPN protocol, or a malformed or misbehaving handshake.
    Protocol,
    /// The connection closed or reset before the handshake finished.
    Closed,
    /// The handshake took longer than the handshake timeout.
    Timeout,
    /// Anything else (an I/O error of the socket).
    Other,
}

impl FailureReason {
    pub(crate) const ALL: [FailureReason; 6] =
        [FailureReason::NotTls, FailureReason::Alert, FailureReason::Protocol, FailureReason::Closed, FailureReason::Timeout, FailureReason::Other];

    /// The metric's label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FailureReason::NotTls => "not_tls",
            FailureReason::Alert => "alert",
            FailureReason::Protocol => "protocol",
            FailureReason::Closed => "closed",
            FailureReason::Timeout => "timeout",
            FailureReason::Other => "other",
        }
    }

    fn of(error: &io::Error) -> FailureReason {
        if let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return match tls {
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => FailureReason::NotTls,
                rustls::Error::AlertReceived(_) => FailureReason::Alert,
                _ => FailureReason::Protocol,
            };
        }
        match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                FailureReason::Closed
            }
            _ => FailureReason::Other,
        }
    }
}

impl TlsStats {
    fn count(&self, reason: FailureReason) {
        self.counts[reason as usize].fetch_add(1, Relaxed);
    }

    /// Failed handshakes by reason label.
    pub(crate) fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FailureReason::ALL.into_iter().map(|reason| (reason.label(), self.counts[reason as usize].load(Relaxed)))
    }
}

/// Counts a handshake abandoned before it finished (the listener's
/// timeout dropped it).
struct Pending<'a> {
    stats: &'a TlsStats,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.stats.count(FailureReason::Timeout);
        }
    }
}

/// The certificate in use and the files it came from; shared by the
/// transport (through the resolver), the file poller and [`TlsReloader`].
#[derive(Debug)]
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' state at the last load attempt, good or bad: a bad file
    /// is reported once, not every poll.
    seen: Mutex<Option<Stamp>>,
}

/// Modification times and sizes of the certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([(Option<SystemTime>, u64); 2]);

impl Stamp {
    fn of(cert: &Path, key: &Path) -> Stamp {
        let one = |path: &Path| std::fs::metadata(path).map(|m| (m.modified().ok(), m.len())).unwrap_or((None, 0));
        Stamp([one(cert), one(key)])
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// Reloads a TLS listener's certificate from its files.
#[derive(Clone, Debug)]
pub struct TlsReloader(Arc<Certificate>);

impl TlsReloader {
    /// Loads the certificate and key again (blocking file reads: call it
    /// from a blocking context or `spawn_blocking`). On an error the
    /// certificate in use stays and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        self.0.reload()
    }
}

impl Certificate {
    fn reload(&self) -> Result<(), String> {
        let stamp = Stamp::of(&self.cert, &self.key);
        let loaded = load(&self.cert, &self.key, &self.provider);
        *self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stamp);
        let loaded = loaded?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// Reloads when the files changed since the last attempt; logs the outcome.
    fn reload_if_changed(&self) {
        let stamp = Stamp::of(&self.cert, &self.key);
        if self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() == Some(&stamp) {
            return;
        }
        log_reload(&self.cert, "the files changed", self.reload());
    }
}

/// Logs a reload's outcome.
pub fn log_reload(cert: &Path, why: &str, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => tracing::info!(cert = %cert.display(), "TLS certificate reloaded ({why})"),
        Err(e) => tracing::warn!("TLS certificate not reloaded ({why}): {e}; the previous certificate stays in use"),
    }
}

/// Reads the chain and key and checks that they belong together. Errors
/// name the file and what is wrong with it, never key material.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("cannot read the TLS certificate {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read the TLS key {}: {e}", key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate {} is not valid PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate (-----BEGIN CERTIFICATE-----) in {}", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("no usable private key in {}: {e}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!("the key in {} does not belong to the certificate in {}", key.display(), cert.display()),
        other => format!("the TLS certificate {} or key {} cannot be used: {other}", cert.display(), key.display()),
    })?;
    Ok(certified)
}

/// A TLS listener's transport and the handle that reloads its certificate.
/// Fails, naming the file and why, when the certificate or key cannot be
/// used.
pub(crate) fn setup(files: &TlsFiles) -> Result<(Arc<TlsTransport>, TlsReloader), String> {
    let provider = Arc::new(provider());
    let certified = load(&files.cert, &files.key, &provider)?;
    let certificate = Arc::new(Certificate {
        cert: files.cert.clone(),
        key: files.key.clone(),
        provider: provider.clone(),
        current: RwLock::new(Arc::new(certified)),
        seen: Mutex::new(Some(Stamp::of(&files.cert, &files.key))),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let transport = Arc::new(TlsTransport { acceptor: TlsAcceptor::from(Arc::new(config)), stats: Arc::default() });
    Ok((transport, TlsReloader(certificate)))
}

impl TlsTransport {
    /// Its failed handshakes.
    pub(crate) fn stats(&self) -> Arc<TlsStats> {
        self.stats.clone()
    }
}

/// Checks the certificate files every [`POLL_INTERVAL`] and reloads them
/// when they change. Runs until dropped (the server aborts it at exit).
pub(crate) async fn watch_files(reloader: TlsReloader) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let certificate = reloader.0.clone();
        // File reads stay off the async workers.
        let _ = tokio::task::spawn_blocking(move || certificate.reload_if_changed()).await;
    }
}

/// Checks that a certificate and key can be used, as the server would at
/// start (for `config check`).
pub fn check_files(cert: &Path, key: &Path) -> Result<(), String> {
    load(cert, key, &provider()).map(drop)
}

/// The cryptography under rustls: ring, which builds with the C compiler
/// alone, quickly and offline; aws-lc-rs needs a much longer native build.
/// rustls marks ring's provider deprecated because it has no post-quantum
/// key exchange (X25519MLKEM768); X25519, P-256 and P-384 it has, and every
/// browser and client negotiates one of them. Moving to aws-lc-rs is the
/// workspace's rustls feature and this function.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
