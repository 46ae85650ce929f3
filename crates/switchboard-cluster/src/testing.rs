//! A `nats-server` process with JetStream on loopback, for tests: started on
//! a free port with its own store directory, restartable on the same port
//! and directory, killed (by its own PID) when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `nats-server -js` on 127.0.0.1.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    jetstream: bool,
    /// TLS certificate chain and key, PEM.
    tls: Option<(PathBuf, PathBuf)>,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free loopback port with a fresh store
    /// directory and waits until it accepts connections. Panics with a clear
    /// message if `nats-server` is not installed or does not come up.
    pub fn start() -> NatsServer {
        Self::start_with(true, None)
    }

    /// Starts `nats-server` without JetStream (for the error a node gives
    /// when JetStream is missing).
    pub fn start_without_jetstream() -> NatsServer {
        Self::start_with(false, None)
    }

    /// Like [`NatsServer::start`], requiring TLS with this certificate chain
    /// and key (PEM files).
    pub fn start_with_tls(cert: &Path, key: &Path) -> NatsServer {
        Self::start_with(true, Some((cert.to_owned(), key.to_owned())))
    }

    fn start_with(jetstream: bool, tls: Option<(PathBuf, PathBuf)>) -> NatsServer {
        let dir = tempfile::Builder::new().prefix("nats-test").tempdir().expect("creating a temp dir for nats-server");
        let port = free_port();
        let mut server = NatsServer { child: None, port, dir, jetstream, tls };
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's store directory.
    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGKILL: clients see the connection drop at once).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Same as [`NatsServer::kill`]; the store directory is kept.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Kills the server if it runs and starts it again on the same port with
    /// the same store directory (JetStream's data survives).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("nats-server.log");
        let store: PathBuf = self.dir.path().join("jetstream");
        let mut command = Command::new("nats-server");
        if self.jetstream {
            command.arg("-js").arg("-sd").arg(&store);
        }
        if let Some((cert, key)) = &self.tls {
            command.arg("--tls").arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("nats-server is not installed (the cluster tests need it: `apt-get install nats-server`, or scripts/test.sh --part deps)")
            }
            Err(e) => panic!("cannot start nats-server: {e}"),
        };
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("nats-server exited with {status} on port {}:\n{log}", self.port);
            }
            assert!(started.elapsed() < START_TIMEOUT, "nats-server did not accept connections on port {} within {START_TIMEOUT:?}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("binding a free loopback port");
    listener.local_addr().expect("local address").port()
}
