//! HTTPS and `wss://` against the real binary, with a CA made for the test:
//! WebSockets, pages and `/client.js` over TLS beside the plain listener,
//! TLS 1.2 and 1.3, ALPN, certificates reloaded on SIGHUP and on a file
//! change while connections stay open, and bad certificates at start and at
//! reload.

#[path = "support/test_ca.rs"]
mod test_ca;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use switchboard_client::{tls_config, Client, ClientError, ClientOptions, Message};
use test_ca::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A server with a plain and a TLS listener; stderr is collected.
struct TlsServer {
    child: Child,
    plain: String,
    tls: String,
    log: Arc<Mutex<String>>,
}

impl TlsServer {
    fn start(args: &[&str]) -> TlsServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start switchboard");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = |prefix: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim().strip_prefix(prefix).unwrap_or_else(|| panic!("expected {prefix}, got {line:?}")).to_owned()
        };
        let plain = line("switchboard listening on http://");
        let tls = line("switchboard listening on https://");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        TlsServer { child, plain, tls, log }
    }

    /// `wss://localhost:PORT{path}`: the certificate names `localhost`.
    fn wss(&self, path: &str) -> String {
        format!("wss://localhost:{}{path}", self.tls.rsplit_once(':').unwrap().1)
    }

    fn sighup(&self) {
        assert!(Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap().success());
    }

    /// Waits (bounded) until the log contains `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log.lock().unwrap().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in the log:\n{}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_args<'a>(cert: &'a Path, key: &'a Path) -> Vec<&'a str> {
    vec!["--memory", "--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]
}

fn trusting(ca: &TestCa) -> ClientOptions {
    ClientOptions { tls: Some(tls_config(ca.roots())), ..ClientOptions::default() }
}

async fn echo(client: &mut Client, text: &str) {
    client.send_text(text).await.unwrap();
    assert_eq!(client.recv_message().await.unwrap(), Message::text(text));
}

/// One HTTPS request (`Connection: close`): the ALPN protocol agreed, the
/// status and the body.
async fn https_get(addr: &str, path: &str, roots: RootCertStore) -> (Option<Vec<u8>>, u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = TlsConnector::from(tls_config(roots)).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response head in {raw:?}"));
    (alpn, head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_owned())
}

#[tokio::test]
async fn websockets_pages_and_the_client_script_are_served_over_tls_beside_plain_http() {
    let ca = TestCa::new("switchboard test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.server_cert("server").write(dir.path());
    // The TLS keys come from the configuration file here.
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "memory = true\nlisten = \"127.0.0.1:0\"\n\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = TlsServer::start(&["--config", config.to_str().unwrap()]);

    let mut secure = Client::connect_with(&server.wss("/rooms/echo/tls"), trusting(&ca)).await.unwrap();
    let mut plain = Client::connect(&format!("ws://{}/rooms/echo/tls", server.plain)).await.unwrap();
    assert_eq!(secure.tls_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(plain.tls_version(), None);
    for len in [0, 1, 125, 126, 65_536, 1 << 20] {
        let text = "x".repeat(len);
        echo(&mut secure, &text).await;
        echo(&mut plain, &text).await;
    }
    secure.send_binary(vec![7u8; 300_000]).await.unwrap();
    assert_eq!(secure.recv_message().await.unwrap(), Message::binary(vec![7u8; 300_000]));

    let (alpn, status, body) = https_get(&server.tls, "/client.js", ca.roots()).await;
    assert_eq!((alpn.as_deref(), status), (Some(&b"http/1.1"[..]), 200));
    assert!(body.contains("WebSocket"), "{body:.200}");
    let (_, status, body) = https_get(&server.tls, "/apps/chat/", ca.roots()).await;
    assert_eq!(status, 200);
    assert!(body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"), "{body:.200}");
    let (_, status, body) = https_get(&server.tls, "/healthz", ca.roots()).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[allow(deprecated)] // ring's provider; see the server's tls module
fn version_only(ca: &TestCa, version: &'static rustls::SupportedProtocolVersion) -> ClientOptions {
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    ClientOptions { tls: Some(Arc::new(config)), ..ClientOptions::default() }
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_accepted_and_an_untrusted_server_is_refused_by_the_client() {
    let ca = TestCa::new("switchboard test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.server_cert("server").write(dir.path());
    let server = TlsServer::start(&tls_args(&cert, &key));
    for (version, expected) in [(&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2), (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3)] {
        let mut client = Client::connect_with(&server.wss("/rooms/echo/v"), version_only(&ca, version)).await.unwrap();
        assert_eq!(client.tls_version(), Some(expected));
        echo(&mut client, "over one version").await;
    }
    let stranger = TestCa::new("another CA");
    match Client::connect_with(&server.wss("/rooms/echo/v"), trusting(&stranger)).await {
        Err(ClientError::Io(e)) => assert!(e.to_string().contains("UnknownIssuer"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a server signed by an unknown CA was trusted"),
    }
    // wss:// without saying whom to trust is an error, not a silent ws://.
    assert!(matches!(Client::connect(&server.wss("/rooms/echo/v")).await, Err(ClientError::InvalidOption(_))));
    // The server still serves after refused handshakes.
    let mut client = Client::connect_with(&server.wss("/rooms/echo/v"), trusting(&ca)).await.unwrap();
    echo(&mut client, "still here").await;
}

/// Waits (bounded) until a new client sees the certificate `der`. Each try
/// is a client of its own: one client would resume its TLS session, and a
/// resumed session shows the certificate of the session it resumes.
async fn wait_for_certificate(server: &TlsServer, ca: &TestCa, der: &[u8]) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let client = Client::connect_with(&server.wss("/rooms/echo/renewed"), trusting(ca)).await.unwrap();
        if client.peer_certificate().as_deref() == Some(der) {
            return client;
        }
        assert!(Instant::now() < deadline, "the new certificate was not served within 10 s:\n{}", server.log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_sighup_and_after_a_file_change_while_open_connections_stay() {
    let ca = TestCa::new("switchboard test CA");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server_cert("first");
    let (cert, key) = first.write(dir.path());
    let server = TlsServer::start(&tls_args(&cert, &key));
    let mut open = Client::connect_with(&server.wss("/rooms/echo/renewed"), trusting(&ca)).await.unwrap();
    assert_eq!(open.peer_certificate().as_deref(), Some(&first.der[..]));

    // Renewed and signalled: the next connection gets the new certificate.
    let second = ca.server_cert("second");
    second.write_to(&cert, &key);
    server.sighup();
    let mut renewed = wait_for_certificate(&server, &ca, &second.der).await;
    server.wait_for_log("TLS certificate reloaded (SIGHUP)");
    echo(&mut open, "the connection from before the reload").await;
    echo(&mut renewed, "a connection after it").await;

    // Renewed without a signal: the files' change is noticed.
    std::thread::sleep(Duration::from_millis(20)); // a new modification time
    let third = ca.server_cert("third");
    third.write_to(&cert, &key);
    let mut third_client = wait_for_certificate(&server, &ca, &third.der).await;
    server.wait_for_log("TLS certificate reloaded (the files changed)");
    echo(&mut third_client, "third").await;
    echo(&mut open, "the first connection is still open").await;
    echo(&mut renewed, "and so is the second").await;
}

#[tokio::test]
async fn a_bad_certificate_at_reload_keeps_the_old_one_and_the_log_says_why() {
    let ca = TestCa::new("switchboard test CA");
    let dir = tempfile::tempdir().unwrap();
    let good = ca.server_cert("good");
    let (cert, key) = good.write(dir.path());
    let server = TlsServer::start(&tls_args(&cert, &key));

    // A key that belongs to another certificate.
    let other = ca.server_cert("other");
    std::fs::write(&key, &other.key_pem).unwrap();
    server.sighup();
    server.wait_for_log("TLS certificate not reloaded (SIGHUP)");
    server.wait_for_log(&format!("the key in {} does not belong to the certificate in {}", key.display(), cert.display()));
    server.wait_for_log("the previous certificate stays in use");
    let mut client = Client::connect_with(&server.wss("/rooms/echo/kept"), trusting(&ca)).await.unwrap();
    assert_eq!(client.peer_certificate().as_deref(), Some(&good.der[..]));
    echo(&mut client, "the old certificate still works").await;

    // Not PEM at all, noticed by the file watch.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    server.wait_for_log(&format!("no certificate (-----BEGIN CERTIFICATE-----) in {}", cert.display()));
    let mut client = Client::connect_with(&server.wss("/rooms/echo/kept"), trusting(&ca)).await.unwrap();
    assert_eq!(client.peer_certificate().as_deref(), Some(&good.der[..]));
    echo(&mut client, "still the old certificate").await;
    assert!(!server.log.lock().unwrap().contains("PRIVATE KEY"), "key material in the log");
}

/// Runs `serve ARGS` expecting a refusal; its stderr.
fn refused_start(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard")).arg("serve").args(args).stdin(Stdio::null()).output().unwrap();
    assert!(!output.status.success(), "started with {args:?}");
    assert_eq!(output.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"), "listened with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_certificate_at_start_is_a_clear_error_and_exit_status_1() {
    let ca = TestCa::new("switchboard test CA");
    let dir = tempfile::tempdir().unwrap();
    let good = ca.server_cert("good");
    let (cert, key) = good.write(dir.path());
    let cert_s = cert.to_str().unwrap();
    let key_s = key.to_str().unwrap();

    let missing = dir.path().join("missing.pem");
    let error = refused_start(&tls_args(&missing, &key));
    assert!(error.contains(&format!("cannot read the TLS certificate {}", missing.display())), "{error}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let error = refused_start(&tls_args(&garbage, &key));
    assert!(error.contains(&format!("no certificate (-----BEGIN CERTIFICATE-----) in {}", garbage.display())), "{error}");
    let error = refused_start(&tls_args(&cert, &garbage));
    assert!(error.contains(&format!("no usable private key in {}", garbage.display())), "{error}");

    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, ca.server_cert("other").key_pem).unwrap();
    let error = refused_start(&tls_args(&cert, &other_key));
    assert!(error.contains(&format!("the key in {} does not belong to the certificate in {cert_s}", other_key.display())), "{error}");

    let error = refused_start(&["--memory", "--listen-tls", "127.0.0.1:0", "--tls-cert", cert_s]);
    assert!(error.contains("tls.listen (--listen-tls) needs tls.cert (--tls-cert) and tls.key (--tls-key)"), "{error}");

    // `config check` loads the certificate the same way.
    let config = dir.path().join("s.toml");
    std::fs::write(&config, format!("[tls]\nlisten = \"127.0.0.1:8443\"\ncert = {cert_s:?}\nkey = {:?}\n", other_key.to_str().unwrap())).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard")).args(["config", "check"]).arg(&config).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not belong to the certificate"), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::write(&config, format!("[tls]\nlisten = \"127.0.0.1:8443\"\ncert = {cert_s:?}\nkey = {key_s:?}\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard")).args(["config", "check"]).arg(&config).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
