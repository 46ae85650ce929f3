//! `ws://` and `wss://` URLs: scheme, host, port and request target.

use crate::error::ClientError;

/// A parsed `ws://host[:port]/path?query` (or `wss://`) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: TLS.
    pub tls: bool,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port, 80 (`ws://`) or 443 (`wss://`) when absent.
    pub port: u16,
    /// Request target: path and query, at least `/`.
    pub path: String,
}

impl WsUrl {
    /// Parses a URL.
    pub fn parse(url: &str) -> Result<WsUrl, ClientError> {
        let invalid = |why: &str| ClientError::InvalidUrl(format!("{why}: {url:?}"));
        // Control characters (CR/LF above all) would end up in the request
        // head and could forge headers.
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid("control characters or spaces in the URL"));
        }
        let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(invalid("only ws:// and wss:// URLs are supported")),
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed IPv6 bracket"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| invalid("bad port"))?,
            None => default_port,
        };
        Ok(WsUrl { tls, host: host.to_owned(), port, path })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_path() {
        let u = WsUrl::parse("ws://127.0.0.1:8080/rooms/echo/x?a=1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8080, "/rooms/echo/x?a=1"));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = WsUrl::parse("ws://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.host_header()), ("::1", 9, "[::1]:9".to_owned()));
        let u = WsUrl::parse("ws://example.test").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.host_header()), (80, "/", "example.test".to_owned()));
        let u = WsUrl::parse("wss://example.test/r").unwrap();
        assert_eq!((u.tls, u.port, u.host_header()), (true, 443, "example.test".to_owned()));
        let u = WsUrl::parse("wss://example.test:8443/r").unwrap();
        assert_eq!((u.tls, u.port, u.host_header()), (true, 8443, "example.test:8443".to_owned()));
    }

    #[test]
    fn rejects_what_it_cannot_connect_to() {
        for bad in ["http://x/", "https://x/", "ws://:80/", "ws://x:notaport/", "ws://[::1/", "ws://x/a\r\nX-Forged: 1", "ws://x/a b"] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
