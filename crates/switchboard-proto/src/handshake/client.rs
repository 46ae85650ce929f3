//! Client side: the request to send and the checks on the server's answer.

use base64::Engine;

use super::{accept_key, list_contains, HandshakeError};

/// Longest response head a client accepts.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// An opening handshake in progress, client side.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    expected_accept: String,
    protocols: Vec<String>,
    offered_extensions: bool,
}

/// What the server agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// Always 101.
    pub status: u16,
    /// The chosen subprotocol, one we offered.
    pub protocol: Option<String>,
    /// The raw `Sec-WebSocket-Extensions` answer.
    pub extensions: Option<String>,
    /// Every response header.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ClientHandshake {
    /// Builds the request. `key_bytes` come from the caller's random source.
    pub fn new(
        host: &str,
        path: &str,
        protocols: &[&str],
        extensions: Option<&str>,
        extra_headers: &[(&str, &str)],
        key_bytes: [u8; 16],
    ) -> (ClientHandshake, Vec<u8>) {
        let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !protocols.is_empty() {
            request.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
        }
        if let Some(extensions) = extensions {
            request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        }
        for (name, value) in extra_headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let handshake = ClientHandshake {
            expected_accept: accept_key(&key),
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            offered_extensions: extensions.is_some(),
        };
        (handshake, request.into_bytes())
    }

    /// Reads the server's answer. `Ok(None)`: incomplete so far. On success,
    /// also returns how many bytes the head used (frames may follow).
    pub fn handle_response(&self, buf: &[u8]) -> Result<Option<(ClientAccepted, usize)>, HandshakeError> {
        let mut slots = [httparse::EMPTY_HEADER; super::MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => return Err(HandshakeError::new(0, "response head too long")),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HandshakeError::new(0, format!("malformed response: {e}"))),
        };
        let status = response.code.unwrap_or(0);
        if status != 101 {
            return Err(HandshakeError::new(status, format!("server answered {status} {}", response.reason.unwrap_or(""))));
        }
        let headers: Vec<(String, Vec<u8>)> = response.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
        let values = |name: &'static str| headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice());
        let fail = |why: &str| Err(HandshakeError::new(status, why.to_owned()));
        if !values("upgrade").any(|v| list_contains(v, "websocket")) {
            return fail("response lacks Upgrade: websocket");
        }
        if !values("connection").any(|v| list_contains(v, "upgrade")) {
            return fail("response lacks Connection: upgrade");
        }
        // §11.3.3 and §11.3.4: each appears at most once in a response, so a
        // second copy is a broken server, not a choice between values.
        if values("sec-websocket-accept").nth(1).is_some() {
            return fail("more than one Sec-WebSocket-Accept");
        }
        if values("sec-websocket-accept").next().map(<[u8]>::trim_ascii) != Some(self.expected_accept.as_bytes()) {
            return fail("Sec-WebSocket-Accept does not match our key");
        }
        if values("sec-websocket-protocol").nth(1).is_some() {
            return fail("more than one Sec-WebSocket-Protocol");
        }
        let protocol = match values("sec-websocket-protocol").next() {
            None => None,
            Some(p) => {
                let p = String::from_utf8_lossy(p.trim_ascii()).into_owned();
                if !self.protocols.contains(&p) {
                    return fail("server chose a subprotocol we did not offer");
                }
                Some(p)
            }
        };
        let extensions: Vec<String> = values("sec-websocket-extensions").map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        let extensions = match (extensions.is_empty(), self.offered_extensions) {
            (true, _) => None,
            (false, false) => return fail("server answered with extensions we did not offer"),
            (false, true) => Some(extensions.join(", ")),
        };
        Ok(Some((ClientAccepted { status, protocol, extensions, headers }, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{RequestHead, UpgradeRequest};

    fn request(protocols: &[&str], extensions: Option<&str>) -> (ClientHandshake, UpgradeRequest) {
        let (hs, bytes) = ClientHandshake::new("h:1", "/rooms/echo/x", protocols, extensions, &[("Origin", "http://h")], [7; 16]);
        let (head, used) = RequestHead::parse(&bytes, 16384).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        (hs, UpgradeRequest::from_head(&head).expect("our request is valid"))
    }

    #[test]
    fn round_trip_against_the_server_side_byte_by_byte() {
        let (hs, req) = request(&["xml", "json"], Some("permessage-deflate"));
        assert_eq!(req.origin.as_deref(), Some("http://h"));
        let mut answer = req.accept_response(req.select_protocol(&["json"]), Some("permessage-deflate"), &[]);
        let head_len = answer.len();
        answer.extend_from_slice(&[0x81, 0x00]);
        for end in 0..head_len {
            assert_eq!(hs.handle_response(&answer[..end]).unwrap(), None);
        }
        let (accepted, used) = hs.handle_response(&answer).unwrap().unwrap();
        assert_eq!(used, head_len);
        assert_eq!(accepted.protocol.as_deref(), Some("json"));
        assert_eq!(accepted.extensions.as_deref(), Some("permessage-deflate"));
    }

    #[test]
    fn a_wrong_accept_key_is_rejected() {
        let (hs, _) = request(&[], None);
        let answer =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(hs.handle_response(answer).is_err());
    }

    #[test]
    fn a_protocol_we_did_not_offer_is_rejected() {
        let (hs, req) = request(&["json"], None);
        let mut other = req.clone();
        other.protocols.push("mqtt".into());
        assert!(hs.handle_response(&other.accept_response(Some("mqtt"), None, &[])).is_err());
    }

    #[test]
    fn a_protocol_when_we_offered_none_is_rejected() {
        let (hs, mut req) = request(&[], None);
        req.protocols.push("json".into());
        assert!(hs.handle_response(&req.accept_response(Some("json"), None, &[])).is_err());
    }

    #[test]
    fn a_second_accept_or_protocol_header_is_rejected() {
        let (hs, req) = request(&["json"], None);
        let good = String::from_utf8(req.accept_response(Some("json"), None, &[])).unwrap();
        assert!(hs.handle_response(good.as_bytes()).unwrap().is_some());
        let accept = format!("Sec-WebSocket-Accept: {}\r\n", accept_key(&req.key));
        let two_accepts = good.replacen(&accept, &accept.repeat(2), 1);
        assert_eq!(hs.handle_response(two_accepts.as_bytes()).unwrap_err().reason, "more than one Sec-WebSocket-Accept");
        let two_protocols = good.replacen("Sec-WebSocket-Protocol: json\r\n", "Sec-WebSocket-Protocol: json\r\nSec-WebSocket-Protocol: json\r\n", 1);
        assert_eq!(hs.handle_response(two_protocols.as_bytes()).unwrap_err().reason, "more than one Sec-WebSocket-Protocol");
    }

    #[test]
    fn missing_upgrade_or_connection_in_the_answer_is_rejected() {
        let (hs, req) = request(&[], None);
        let good = String::from_utf8(req.accept_response(None, None, &[])).unwrap();
        assert!(hs.handle_response(good.replacen("Upgrade: websocket\r\n", "", 1).as_bytes()).is_err());
        assert!(hs.handle_response(good.replacen("Connection: Upgrade\r\n", "Connection: keep-alive\r\n", 1).as_bytes()).is_err());
    }

    #[test]
    fn extension_answers_split_over_several_headers_are_joined() {
        let (hs, req) = request(&[], Some("permessage-deflate"));
        let answer = req.accept_response(None, Some("permessage-deflate"), &[("Sec-WebSocket-Extensions", "x-other")]);
        let (accepted, _) = hs.handle_response(&answer).unwrap().unwrap();
        assert_eq!(accepted.extensions.as_deref(), Some("permessage-deflate, x-other"));
    }

    #[test]
    fn a_malformed_answer_is_an_error_without_a_status() {
        let (hs, _) = request(&[], None);
        assert_eq!(hs.handle_response(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").unwrap_err().status, 0);
    }

    #[test]
    fn extensions_we_did_not_offer_are_rejected() {
        let (hs, req) = request(&[], None);
        assert!(hs.handle_response(&req.accept_response(None, Some("permessage-deflate"), &[])).is_err());
    }

    #[test]
    fn a_refusal_reports_its_status() {
        let (hs, _) = request(&[], None);
        let err = hs.handle_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").unwrap_err();
        assert_eq!(err.status, 404);
        assert!(err.reason.contains("404 Not Found"));
    }
}
