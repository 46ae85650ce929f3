//! A small auth backend for the forward and gateway tests: answers each
//! request by its `Cookie` (`session=NAME`): a known account gets 200 with
//! the account header, `session=banned` 403, `session=slow` no answer for
//! a long time, anything else 401. It keeps every request head it saw.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A running backend on a loopback port; stops with the test's runtime.
pub struct AuthBackend {
    /// `127.0.0.1:PORT`
    pub addr: String,
    seen: Arc<Mutex<Vec<String>>>,
}

/// Accounts the backend knows.
pub const ACCOUNTS: [&str; 2] = ["acme", "globex"];

impl AuthBackend {
    pub async fn start(header: &'static str) -> AuthBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    log.lock().unwrap().push(head.clone());
                    let session = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                        .flat_map(|(_, v)| v.split(';').map(str::trim).map(str::to_owned).collect::<Vec<_>>())
                        .find_map(|pair| pair.strip_prefix("session=").map(str::to_owned));
                    let answer = match session.as_deref() {
                        Some(account) if ACCOUNTS.contains(&account) => format!("HTTP/1.1 200 OK\r\n{header}: {account}\r\nContent-Length: 0\r\n\r\n"),
                        Some("banned") => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_owned(),
                        Some("slow") => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        Some("no-header") => "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
                        _ => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_owned(),
                    };
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        AuthBackend { addr, seen }
    }

    /// The request heads received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
