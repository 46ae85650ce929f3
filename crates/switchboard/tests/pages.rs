//! The embedded pages and the browser client, fetched over HTTP from the
//! real binary: content types, the directory redirect, revalidation with
//! the ETag, and nothing outside `web/`.

mod common;

use common::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

async fn get(server: &ServerProcess, path: &str, extra: &str) -> Reply {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Reply { status, headers, body: body.to_owned() }
}

#[tokio::test]
async fn every_app_page_and_the_client_are_served() {
    let server = ServerProcess::start();
    for (path, kind) in [
        ("/", "text/html"),
        ("/apps/chat/", "text/html"),
        ("/apps/echo/", "text/html"),
        ("/apps/broadcast/", "text/html"),
        ("/apps/clicks/", "text/html"),
        ("/apps/clicks/world.json", "application/json"),
        ("/client.js", "text/javascript"),
        ("/client.d.ts", "text/plain"),
    ] {
        let reply = get(&server, path, "").await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.header("content-type").unwrap().starts_with(kind), "{path}: {:?}", reply.header("content-type"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert!(!reply.body.is_empty(), "{path}");
    }
    let client = get(&server, "/client.js", "").await;
    assert!(client.body.contains("export"), "an ES module");
    let chat = get(&server, "/apps/chat/", "").await;
    assert!(chat.body.contains("/client.js") || chat.body.contains("chat.js"), "the chat page loads its script");
}

#[tokio::test]
async fn directories_redirect_unknown_paths_404_and_etags_revalidate() {
    let server = ServerProcess::start();
    let reply = get(&server, "/apps/chat", "").await;
    assert_eq!((reply.status, reply.header("location")), (301, Some("/apps/chat/")));
    assert_eq!(get(&server, "/apps/nope/", "").await.status, 404);
    assert_eq!(get(&server, "/../Cargo.toml", "").await.status, 404);
    assert_eq!(get(&server, "/apps/../../Cargo.toml", "").await.status, 404);

    let first = get(&server, "/client.js", "").await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let again = get(&server, "/client.js", &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!((again.status, again.body.as_str()), (304, ""));
    let stale = get(&server, "/client.js", "If-None-Match: \"something-else\"\r\n").await;
    assert_eq!(stale.status, 200);
}
