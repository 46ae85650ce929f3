//! The gateway pattern through a real gateway: Debian's nginx (installed by
//! `scripts/test.sh --part deps`) in front of the binary, with
//! `auth_request` to a small auth backend of the test's own that names the
//! account in `X-Switchboard-Account`. nginx connects upstream from
//! 127.0.0.2 (`proxy_bind`), the only trusted proxy: through it the chat
//! room sees the account; straight to the server the same header is not
//! believed. nginx runs in the foreground on loopback with its config,
//! pid and logs in a temp dir, and is stopped by its PID.

#[path = "support/auth_backend.rs"]
mod auth_backend;
mod common;
#[path = "support/edge.rs"]
mod edge;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auth_backend::AuthBackend;
use common::ServerProcess;
use edge::{chat_name, next_json, open, open_from};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx in the foreground, stopped by PID when dropped.
struct Nginx {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The docs/auth.md gateway configuration, with this test's ports and paths.
fn config(dir: &Path, port: u16, upstream: &str, backend: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    server {{
        listen 127.0.0.1:{port};

        location /rooms/ {{
            auth_request /_auth;
            auth_request_set $account $upstream_http_x_switchboard_account;

            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_bind 127.0.0.2;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            # Replaces whatever the client sent under these names.
            proxy_set_header X-Switchboard-Account $account;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 1h;
        }}

        location = /_auth {{
            internal;
            proxy_pass http://{backend}/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"#
    )
}

async fn start_nginx(upstream: &str, backend: &str) -> Nginx {
    assert!(Path::new(NGINX).exists(), "{NGINX} is missing: scripts/test.sh --part deps installs Debian's nginx");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), port, upstream, backend)).unwrap();
    let child = Command::new(NGINX)
        .args(["-p", dir.path().to_str().unwrap(), "-e", dir.path().join("error.log").to_str().unwrap(), "-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let addr = format!("127.0.0.1:{port}");
    let nginx = Nginx { child, addr, dir };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&nginx.addr).await.is_ok() {
            return nginx;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx did not listen within 5 s:\n{log}");
}

#[tokio::test]
async fn through_nginx_the_room_sees_the_account_and_without_it_the_header_is_not_believed() {
    let backend = AuthBackend::start("X-Switchboard-Account").await;
    let server =
        ServerProcess::start_with(&["--memory", "--trusted-proxy", "127.0.0.2", "--auth-kind", "chat=trusted-header", "--auth-room-is-subject", "chat"]);
    let nginx = start_nginx(&server.addr, &backend.addr).await;
    let via = |path: &str| format!("ws://{}{path}", nginx.addr);

    // Signed in: the WebSocket goes through nginx and the room knows who.
    let (mut ws, _) = open(&via("/rooms/chat/acme"), &[("cookie", "session=acme")], &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme");
    // A second tab of the same account hears the first (chat messages go
    // to everyone but the sender).
    let (mut tab, _) = open(&via("/rooms/chat/acme"), &[("cookie", "session=acme")], &[]).await.unwrap();
    assert_eq!(chat_name(&mut tab).await, "acme");
    ws.send(Message::text(r#"{"type":"message","text":"hello through the gateway"}"#)).await.unwrap();
    let mut said = None;
    for _ in 0..10 {
        let json = next_json(&mut tab).await;
        if json["type"] == "message" {
            said = Some(json);
            break;
        }
    }
    let said = said.expect("the message came back");
    assert_eq!((said["from"]["name"].as_str(), said["text"].as_str()), (Some("acme"), Some("hello through the gateway")));

    // Not signed in: nginx's auth_request says 401.
    assert_eq!(open(&via("/rooms/chat/acme"), &[], &[]).await.unwrap_err().status, 401);
    // Signed in, another account's room: switchboard's 403, passed through.
    let other = open(&via("/rooms/chat/globex"), &[("cookie", "session=acme")], &[]).await.unwrap_err();
    assert_eq!(other.status, 403);
    // A forged header is replaced by the gateway's own.
    let forged = [("cookie", "session=acme"), ("x-switchboard-account", "globex")];
    assert_eq!(open(&via("/rooms/chat/globex"), &forged, &[]).await.unwrap_err().status, 403);
    let (mut ws, _) = open(&via("/rooms/chat/acme"), &forged, &[]).await.unwrap();
    assert_eq!(chat_name(&mut ws).await, "acme");

    // Straight to the server, past the gateway: the header is not believed.
    let direct = open_from(Some("127.0.0.1"), &server.ws("/rooms/chat/acme"), &[("x-switchboard-account", "acme")], &[]).await.unwrap_err();
    assert_eq!(direct.status, 401);
    assert!(direct.body.contains("trusted proxies"), "{direct:?}");

    // The backend was asked with the browser's cookie.
    assert!(backend.seen().iter().any(|head| head.contains("session=acme")));
}
