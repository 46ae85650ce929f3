//! One keep-alive HTTP/1.1 connection that clicks a short link
//! (`GET /l/{slug}`) with a `Referer` of the caller's choosing and reads the
//! answer: the clicks scenario's probes, which the dashboards recognise by
//! that referrer's host.

use std::time::Duration;

use switchboard_client::WsUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a redirect may take to be answered before the probe gives up.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// Largest response head read; a redirect's is a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

/// Largest body skipped after a head (a 404 page is small).
const MAX_BODY: usize = 64 * 1024;

pub(crate) struct RedirectProbe {
    stream: TcpStream,
    /// The `Host` header.
    host: String,
    buf: Vec<u8>,
}

impl RedirectProbe {
    /// Connects to the HTTP side of the server behind a `ws://` URL.
    pub(crate) async fn connect(url: &str) -> Result<RedirectProbe, String> {
        let url = WsUrl::parse(url).map_err(|e| e.to_string())?;
        if url.tls {
            return Err("the redirect probes speak plain HTTP: give a ws:// URL".into());
        }
        let stream = tokio::time::timeout(ANSWER_LIMIT, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| "the redirect probe's connect timed out".to_string())?
            .map_err(|e| format!("the redirect probe cannot connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(RedirectProbe { stream, host: url.host_header(), buf: Vec::with_capacity(4096) })
    }

    /// Sends `GET /l/{slug}` with `Referer: http://{referrer_host}/`.
    pub(crate) async fn send(&mut self, slug: &str, referrer_host: &str) -> Result<(), String> {
        let request = format!("GET /l/{slug} HTTP/1.1\r\nHost: {}\r\nReferer: http://{referrer_host}/\r\nUser-Agent: switchboard-loadgen\r\n\r\n", self.host);
        self.stream.write_all(request.as_bytes()).await.map_err(|e| format!("the redirect probe's request: {e}"))
    }

    /// Reads the answer to the request sent last; returns its status.
    pub(crate) async fn answer(&mut self) -> Result<u16, String> {
        tokio::time::timeout(ANSWER_LIMIT, self.read_answer())
            .await
            .map_err(|_| format!("no answer to a redirect probe within {} s", ANSWER_LIMIT.as_secs()))?
    }

    async fn read_answer(&mut self) -> Result<u16, String> {
        let (status, head_len, body_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if self.buf.len() >= MAX_HEAD {
                return Err("the answer to a redirect probe has an oversized head".into());
            }
            self.read_more().await?;
        };
        if body_len > MAX_BODY {
            return Err(format!("the answer to a redirect probe has a {body_len}-byte body"));
        }
        while self.buf.len() < head_len + body_len {
            self.read_more().await?;
        }
        self.buf.drain(..head_len + body_len);
        Ok(status)
    }

    async fn read_more(&mut self) -> Result<(), String> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("the server closed the redirect probe's connection".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("the redirect probe's connection: {e}")),
        }
    }
}

/// `(status, head length, body length)` of a complete response head at the
/// start of `buf`, or `None` while it is incomplete. A body must come with
/// a `Content-Length` (the server's redirects and 404 pages do).
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the answer to a redirect probe is not HTTP: {e}")),
    };
    let status = response.code.unwrap_or_default();
    let length = response.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length")).map(|h| h.value);
    let body_len = match length {
        Some(value) => std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok()).ok_or("a redirect probe's answer has a bad Content-Length")?,
        None if response.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")) => {
            return Err("a redirect probe's answer is chunked; expected a Content-Length".into())
        }
        None => 0,
    };
    Ok(Some((status, head_len, body_len)))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn reads_a_head_and_the_length_of_its_body() {
        let redirect = b"HTTP/1.1 302 Found\r\nlocation: https://example.com/\r\ncontent-length: 0\r\n\r\nHTTP/1.1";
        assert_eq!(parse_head(redirect).unwrap(), Some((302, redirect.len() - 8, 0)));
        let page = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nabcde";
        assert_eq!(parse_head(page).unwrap(), Some((404, page.len() - 5, 5)));
        assert_eq!(parse_head(b"HTTP/1.1 302 Found\r\nlocat").unwrap(), None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }
}
