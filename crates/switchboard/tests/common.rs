//! Starts the real `switchboard` binary on a free loopback port for a test
//! and stops it (by PID, through the child handle) when the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server process.
pub struct ServerProcess {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The TLS listener's `127.0.0.1:PORT`, when the flags ask for one.
    pub tls_addr: Option<String>,
}

impl ServerProcess {
    /// Starts `switchboard serve --listen 127.0.0.1:0` and waits for its address line.
    pub fn start() -> ServerProcess {
        ServerProcess::start_with(&["--memory"])
    }

    /// Starts the server with extra `serve` flags (pass `--memory` or a
    /// `--data-dir`, or it writes to `./data`). SIGTERM stops it without a
    /// drain unless the flags set `--drain-grace`.
    pub fn start_with(flags: &[&str]) -> ServerProcess {
        ServerProcess::start_logging(flags, Stdio::null())
    }

    /// Like [`ServerProcess::start_with`], with the server's stderr (its
    /// logs) going to `stderr`.
    pub fn start_logging(flags: &[&str], stderr: impl Into<Stdio>) -> ServerProcess {
        let no_drain: &[&str] = if flags.contains(&"--drain-grace") { &[] } else { &["--drain-grace", "0s", "--drain-timeout", "0s"] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(no_drain)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the switchboard binary");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = |prefix: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read the address line");
            line.trim().strip_prefix(prefix).unwrap_or_else(|| panic!("expected {prefix}, got {line:?}")).to_owned()
        };
        let addr = line("switchboard listening on http://");
        let tls_addr = flags.contains(&"--listen-tls").then(|| line("switchboard listening on https://"));
        ServerProcess { child, addr, tls_addr }
    }

    /// `ws://ADDR{path}`
    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// The process id, e.g. to read its memory use.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM without waiting for the exit.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success());
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// Waits (bounded: a loaded machine may take a while) for the process
    /// to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // What the process was doing, for whoever reads the failure.
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let state: Vec<&str> = status.lines().filter(|l| l.starts_with("State:") || l.starts_with("Threads:") || l.starts_with("Sig")).collect();
        panic!("server did not exit within 30 s of SIGTERM: {state:?}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
