//! Server side: validating an upgrade request and answering it.

use base64::Engine;

use super::{accept_key_into, list_contains, HandshakeError, RequestHead, ACCEPT_LEN};

/// A request that passed every check of RFC 6455 §4.2.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target, including any query string.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The `Sec-WebSocket-Key` as sent.
    pub key: String,
    /// The `Origin` header, sent by browsers.
    pub origin: Option<String>,
    /// Offered subprotocols in the client's order, from every
    /// `Sec-WebSocket-Protocol` header.
    pub protocols: Vec<String>,
    /// The raw `Sec-WebSocket-Extensions` values, in order.
    pub extensions: Vec<String>,
}

impl UpgradeRequest {
    /// Validates a request head as a WebSocket opening handshake (§4.2.1):
    /// 400 with the reason for a bad request, 426 for an unsupported version.
    /// A method other than GET is 400, not 405: the handshake itself is
    /// malformed, and a 405 would owe an `Allow` header for the resource.
    pub fn from_head(head: &RequestHead) -> Result<UpgradeRequest, HandshakeError> {
        if head.method != "GET" {
            return Err(HandshakeError::bad_request(format!("a WebSocket handshake must be GET, not {}", head.method)));
        }
        if head.version_minor < 1 {
            return Err(HandshakeError::bad_request("a WebSocket handshake needs HTTP/1.1"));
        }
        let seen = Seen::of(head);
        let host = seen.host.ok_or_else(|| HandshakeError::bad_request("missing Host header"))?;
        if !seen.upgrade_websocket {
            return Err(HandshakeError::bad_request("Upgrade header must name websocket"));
        }
        if !seen.connection_upgrade {
            return Err(HandshakeError::bad_request("Connection header must contain upgrade"));
        }
        let key = seen.key.ok_or_else(|| HandshakeError::bad_request("missing Sec-WebSocket-Key"))?;
        // §11.3.1: the key MUST NOT appear more than once; with two, which
        // one the client will check the accept value against is unknowable.
        if seen.keys > 1 {
            return Err(HandshakeError::bad_request("more than one Sec-WebSocket-Key"));
        }
        let key = std::str::from_utf8(key).map(str::trim).unwrap_or("");
        // 16 bytes are 24 characters of padded base64, which decode into a
        // buffer on the stack (18: what 24 characters could hold at most).
        let mut raw = [0; 18];
        match base64::engine::general_purpose::STANDARD.decode_slice(key, &mut raw) {
            Ok(16) if key.len() == 24 => {}
            _ => return Err(HandshakeError::bad_request("Sec-WebSocket-Key must be base64 of 16 bytes")),
        }
        // §11.3.5: one version per request; a retry after 426 sends a new request.
        if seen.versions > 1 {
            return Err(HandshakeError::bad_request("more than one Sec-WebSocket-Version"));
        }
        match seen.version.map(<[u8]>::trim_ascii) {
            Some(b"13") => {}
            Some(_) => return Err(HandshakeError::new(426, "unsupported WebSocket version; this server speaks 13")),
            None => return Err(HandshakeError::bad_request("missing Sec-WebSocket-Version")),
        }
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        // Most requests have neither: no second pass for them.
        let protocols = match seen.protocols {
            false => Vec::new(),
            true => head
                .header_values("sec-websocket-protocol")
                .flat_map(|v| v.split(|&b| b == b','))
                .map(|p| text(p.trim_ascii()))
                .filter(|p| !p.is_empty())
                .collect(),
        };
        let extensions = match seen.extensions {
            false => Vec::new(),
            true => head.header_values("sec-websocket-extensions").filter_map(|v| std::str::from_utf8(v).ok().map(str::to_owned)).collect(),
        };
        Ok(UpgradeRequest { path: head.path.clone(), host: text(host), key: key.to_owned(), origin: seen.origin.map(text), protocols, extensions })
    }

    /// The first of `supported` (the server's order of preference) that the
    /// client offered. Never a protocol the client did not offer.
    pub fn select_protocol<'a>(&self, supported: &[&'a str]) -> Option<&'a str> {
        supported.iter().copied().find(|s| self.protocols.iter().any(|offered| offered == s))
    }

    /// The `101 Switching Protocols` response.
    pub fn accept_response(&self, protocol: Option<&str>, extensions: Option<&str>, extra_headers: &[(&str, &str)]) -> Vec<u8> {
        debug_assert!(protocol.is_none_or(|p| self.protocols.iter().any(|o| o == p)), "answering with a protocol the client did not offer");
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        out.extend_from_slice(accept_key_into(&self.key, &mut [0; ACCEPT_LEN]));
        out.extend_from_slice(b"\r\n");
        let mut header = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        if let Some(protocol) = protocol {
            header("Sec-WebSocket-Protocol", protocol);
        }
        if let Some(extensions) = extensions {
            header("Sec-WebSocket-Extensions", extensions);
        }
        for (name, value) in extra_headers {
            header(name, value);
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// What a handshake reads from the headers, found in one pass over them
/// (names are told apart by length first, so most comparisons end there).
#[derive(Default)]
struct Seen<'h> {
    /// The first `Host`.
    host: Option<&'h [u8]>,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    /// The first `Sec-WebSocket-Key`, and how many there are.
    key: Option<&'h [u8]>,
    keys: usize,
    /// The first `Sec-WebSocket-Version`, and how many there are.
    version: Option<&'h [u8]>,
    versions: usize,
    /// The first `Origin`.
    origin: Option<&'h [u8]>,
    /// Whether any `Sec-WebSocket-Protocol` / `-Extensions` header is there.
    protocols: bool,
    extensions: bool,
}

impl<'h> Seen<'h> {
    fn of(head: &'h RequestHead) -> Seen<'h> {
        let mut seen = Seen::default();
        for (name, value) in head.header_fields() {
            let is = |expected: &str| name.eq_ignore_ascii_case(expected.as_bytes());
            match name.len() {
                4 if is("host") => {
                    seen.host.get_or_insert(value);
                }
                6 if is("origin") => {
                    seen.origin.get_or_insert(value);
                }
                7 if is("upgrade") => seen.upgrade_websocket |= list_contains(value, "websocket"),
                10 if is("connection") => seen.connection_upgrade |= list_contains(value, "upgrade"),
                17 if is("sec-websocket-key") => {
                    seen.key.get_or_insert(value);
                    seen.keys += 1;
                }
                21 if is("sec-websocket-version") => {
                    seen.version.get_or_insert(value);
                    seen.versions += 1;
                }
                22 if is("sec-websocket-protocol") => seen.protocols = true,
                24 if is("sec-websocket-extensions") => seen.extensions = true,
                _ => {}
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn validate(request: &str) -> Result<UpgradeRequest, HandshakeError> {
        let (head, _) = RequestHead::parse(request.as_bytes(), 16384).unwrap().unwrap();
        UpgradeRequest::from_head(&head)
    }

    fn status_of(request: &str) -> u16 {
        validate(request).unwrap_err().status
    }

    #[test]
    fn the_rfc_example_request_is_accepted() {
        let req = validate(GOOD).unwrap();
        assert_eq!(req.protocols, ["chat", "superchat"]);
        assert_eq!(req.origin.as_deref(), Some("http://example.com"));
        let response = String::from_utf8(req.accept_response(Some("chat"), None, &[])).unwrap();
        assert_eq!(
            response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn the_method_must_be_get() {
        assert_eq!(status_of(&GOOD.replacen("GET", "POST", 1)), 400);
    }

    #[test]
    fn the_version_must_be_http_1_1() {
        assert_eq!(status_of(&GOOD.replacen("HTTP/1.1", "HTTP/1.0", 1)), 400);
    }

    #[test]
    fn host_is_required() {
        assert_eq!(status_of(&GOOD.replacen("Host: server.example.com\r\n", "", 1)), 400);
    }

    #[test]
    fn upgrade_must_name_websocket() {
        assert_eq!(status_of(&GOOD.replacen("Upgrade: websocket", "Upgrade: h2c", 1)), 400);
        assert_eq!(status_of(&GOOD.replacen("Upgrade: websocket\r\n", "", 1)), 400);
        assert!(validate(&GOOD.replacen("Upgrade: websocket", "Upgrade: WebSocket", 1)).is_ok());
    }

    #[test]
    fn connection_must_contain_upgrade() {
        assert_eq!(status_of(&GOOD.replacen("Connection: Upgrade", "Connection: keep-alive", 1)), 400);
        assert!(validate(&GOOD.replacen("Connection: Upgrade", "Connection: keep-alive, Upgrade", 1)).is_ok());
        assert!(validate(&GOOD.replacen("Connection: Upgrade", "connection: keep-alive\r\nConnection: upgrade", 1)).is_ok());
    }

    #[test]
    fn the_key_must_be_base64_of_16_bytes() {
        for bad in ["", "not base64!", "dGhlIHNhbXBsZQ==", "dGhlIHNhbXBsZSBub25jZXg="] {
            assert_eq!(status_of(&GOOD.replacen("dGhlIHNhbXBsZSBub25jZQ==", bad, 1)), 400, "{bad:?}");
        }
        assert_eq!(status_of(&GOOD.replacen("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1)), 400);
    }

    #[test]
    fn the_key_must_not_appear_twice() {
        let twice = GOOD.replacen("Sec-WebSocket-Version", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version", 1);
        assert_eq!(status_of(&twice), 400);
    }

    #[test]
    fn the_version_must_not_appear_twice() {
        assert_eq!(status_of(&GOOD.replacen("Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Version: 13\r\n", 1)), 400);
    }

    #[test]
    fn header_names_match_in_any_case() {
        let shouting = "GET /chat HTTP/1.1\r\nHOST: h\r\nUPGRADE: WEBSOCKET\r\nCONNECTION: UPGRADE\r\nSEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\nSEC-WEBSOCKET-PROTOCOL: json\r\nORIGIN: http://h\r\n\r\n";
        let req = validate(shouting).unwrap();
        assert_eq!((req.host.as_str(), req.key.as_str()), ("h", "dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!((req.protocols.as_slice(), req.origin.as_deref()), (&["json".to_owned()][..], Some("http://h")));
        let whispering = shouting.lines().map(|l| match l.split_once(':') {
            Some((name, value)) => format!("{}:{value}\r\n", name.to_ascii_lowercase()),
            None => format!("{l}\r\n"),
        });
        assert_eq!(validate(&whispering.collect::<String>()).unwrap(), req);
    }

    #[test]
    fn another_version_gets_426_with_the_supported_version() {
        let err = validate(&GOOD.replacen("Version: 13", "Version: 8", 1)).unwrap_err();
        assert_eq!(err.status, 426);
        assert!(String::from_utf8(err.response()).unwrap().contains("Sec-WebSocket-Version: 13\r\n"));
        assert_eq!(status_of(&GOOD.replacen("Sec-WebSocket-Version: 13\r\n", "", 1)), 400);
    }

    #[test]
    fn subprotocols_follow_server_preference_and_only_offered_ones() {
        let req = validate(&GOOD.replacen("chat, superchat", "xml, json\r\nSec-WebSocket-Protocol: chat", 1)).unwrap();
        assert_eq!(req.protocols, ["xml", "json", "chat"]);
        assert_eq!(req.select_protocol(&["chat", "json"]), Some("chat"));
        assert_eq!(req.select_protocol(&["json", "chat"]), Some("json"));
        assert_eq!(req.select_protocol(&["mqtt"]), None);
        let none = validate(&GOOD.replacen("Sec-WebSocket-Protocol: chat, superchat\r\n", "", 1)).unwrap();
        assert_eq!(none.select_protocol(&["json"]), None);
    }

    #[test]
    fn extension_offers_are_kept_raw_and_answered_verbatim() {
        let req = validate(&GOOD.replacen("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n", 1)).unwrap();
        assert_eq!(req.extensions, ["permessage-deflate; client_max_window_bits"]);
        let response = String::from_utf8(req.accept_response(None, Some("permessage-deflate"), &[("X-Room", "r1")])).unwrap();
        assert!(response.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\nX-Room: r1\r\n\r\n"));
        assert!(!response.contains("Sec-WebSocket-Protocol"));
    }
}
