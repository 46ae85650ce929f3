//! Incremental parsing of an HTTP/1.1 request head.

use std::ops::Range;

use super::{list_contains, HandshakeError};

/// Most headers accepted in one request head.
pub const MAX_HEADERS: usize = 100;

/// A parsed request head: method, target, version and headers as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target as sent, including any query string.
    pub path: String,
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version_minor: u8,
    /// The head as sent, copied once; `headers` says where each header's
    /// name and value are in it (one allocation for all of them rather than
    /// two per header).
    lines: Vec<u8>,
    headers: Vec<HeaderAt>,
}

/// Where one header's name and value are in the head's text
/// ([`RequestHead::text_fields`]).
pub type FieldAt = (Range<usize>, Range<usize>);

/// Where one header's name and value are in `RequestHead::lines` (from, to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderAt {
    name: (u32, u32),
    value: (u32, u32),
}

impl RequestHead {
    /// Parses a head at the start of `buf`. `Ok(None)`: incomplete so far.
    /// `Ok(Some((head, n)))`: the first `n` bytes are the head; the rest is
    /// the caller's. Errors: malformed (400), too long or too many headers (431).
    pub fn parse(buf: &[u8], max_head_len: usize) -> Result<Option<(RequestHead, usize)>, HandshakeError> {
        if buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialised: httparse writes the slots it fills, and
        // zeroing a hundred of them would cost more than parsing a head.
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let status = match req.parse_with_uninit_headers(buf, &mut slots) {
            Ok(status) => status,
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::new(431, "too many request headers")),
            Err(e) => return Err(HandshakeError::bad_request(format!("malformed request head: {e}"))),
        };
        let len = match status {
            httparse::Status::Partial if buf.len() > max_head_len => {
                return Err(HandshakeError::new(431, format!("request head longer than {max_head_len} bytes")))
            }
            httparse::Status::Partial => return Ok(None),
            httparse::Status::Complete(len) if len > max_head_len => {
                return Err(HandshakeError::new(431, format!("request head longer than {max_head_len} bytes")))
            }
            httparse::Status::Complete(len) => len,
        };
        // httparse's names and values are slices of `buf`: their offsets in
        // it locate them in the copy.
        let at = |part: &[u8]| {
            let from = offset_in(&buf[..len], part).unwrap_or(0);
            (from as u32, (from + part.len()) as u32)
        };
        let headers = req.headers.iter().map(|h| HeaderAt { name: at(h.name.as_bytes()), value: at(h.value) }).collect();
        let head = RequestHead {
            method: req.method.unwrap_or_default().to_owned(),
            path: req.path.unwrap_or_default().to_owned(),
            version_minor: req.version.unwrap_or(0),
            lines: buf[..len].to_vec(),
            headers,
        };
        Ok(Some((head, len)))
    }

    /// Header names and values in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        // Names are tokens (httparse checks), so ASCII.
        self.header_fields().map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value))
    }

    /// The head as text, when all of it is UTF-8 (one check for every name
    /// and value), with where each header's name and value are in it, in
    /// order. Every name and value starts and ends at an ASCII delimiter,
    /// so on a character boundary. `None` when a value is not UTF-8
    /// (obs-text); [`RequestHead::headers`] then gives bytes.
    pub fn text_fields(&self) -> Option<(&str, impl ExactSizeIterator<Item = FieldAt> + '_)> {
        let text = std::str::from_utf8(&self.lines).ok()?;
        let range = |(from, to): (u32, u32)| from as usize..to as usize;
        Some((text, self.headers.iter().map(move |h| (range(h.name), range(h.value)))))
    }

    /// Header names and values in order, both as bytes.
    pub fn header_fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers.iter().map(|h| (self.part(h.name), self.part(h.value)))
    }

    /// How many headers the request has.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The head's length in bytes as sent, request line and headers (so
    /// at least the length of all header names and values together).
    pub fn head_len(&self) -> usize {
        self.lines.len()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|h| self.part(h.name).eq_ignore_ascii_case(name.as_bytes())).map(|h| self.part(h.value))
    }

    /// Every value of header `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |h| self.part(h.name).eq_ignore_ascii_case(name.as_bytes())).map(|h| self.part(h.value))
    }

    fn part(&self, (from, to): (u32, u32)) -> &[u8] {
        &self.lines[from as usize..to as usize]
    }

    /// True when the request asks for a protocol upgrade to WebSocket (an
    /// `Upgrade` header naming `websocket`). Such requests are validated as
    /// WebSocket handshakes; all others are plain HTTP.
    pub fn wants_upgrade(&self) -> bool {
        self.header_values("upgrade").any(|v| list_contains(v, "websocket"))
    }
}

/// Where `part`, a slice of `buf`, starts in it; `None` if it is not in
/// `buf` (which only an empty slice made elsewhere could be).
fn offset_in(buf: &[u8], part: &[u8]) -> Option<usize> {
    let from = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    (from + part.len() <= buf.len()).then_some(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"GET /rooms/echo/x?t=1 HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn text_headers_are_the_headers_when_the_head_is_utf8() {
        let (head, _) = RequestHead::parse(REQUEST, 16384).unwrap().unwrap();
        let (whole, fields) = head.text_fields().expect("an ASCII head");
        assert_eq!(whole.as_bytes(), REQUEST);
        let text: Vec<(&str, &str)> = fields.map(|(name, value)| (&whole[name], &whole[value])).collect();
        let bytes: Vec<(&str, &[u8])> = head.headers().collect();
        assert_eq!(text.len(), bytes.len());
        assert!(text.iter().zip(&bytes).all(|(t, b)| t.0 == b.0 && t.1.as_bytes() == b.1), "{text:?}");
        let latin1 = b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n";
        let (head, _) = RequestHead::parse(latin1, 16384).unwrap().unwrap();
        assert!(head.text_fields().is_none(), "a value that is not UTF-8");
        assert_eq!(head.header("x-name"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn a_request_split_at_every_offset_parses_to_the_same_head_and_leaves_the_rest() {
        let mut input = REQUEST.to_vec();
        input.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
        let (whole, used) = RequestHead::parse(&input, 16384).unwrap().unwrap();
        assert_eq!(used, REQUEST.len());
        assert_eq!(whole.path, "/rooms/echo/x?t=1");
        for end in 0..REQUEST.len() {
            assert_eq!(RequestHead::parse(&input[..end], 16384).unwrap(), None, "prefix {end}");
        }
        for end in REQUEST.len()..=input.len() {
            assert_eq!(RequestHead::parse(&input[..end], 16384).unwrap(), Some((whole.clone(), used)));
        }
    }

    #[test]
    fn header_lookup_ignores_case() {
        let (head, _) = RequestHead::parse(REQUEST, 16384).unwrap().unwrap();
        assert_eq!(head.header("SEC-WEBSOCKET-VERSION"), Some(&b"13"[..]));
        assert!(head.wants_upgrade());
    }

    #[test]
    fn headers_come_back_in_order_as_sent_empty_values_too() {
        let (head, _) = RequestHead::parse(b"GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nx-Two: a, b\r\nX-Last:   \r\n\r\n", 16384).unwrap().unwrap();
        let headers: Vec<(&str, &[u8])> = head.headers().collect();
        assert_eq!(headers, [("Host", &b"h"[..]), ("X-Empty", b""), ("x-Two", b"a, b"), ("X-Last", b"")]);
        assert_eq!(head.header("x-empty"), Some(&b""[..]));
        assert_eq!(head.header("missing"), None);
    }

    #[test]
    fn an_oversized_head_is_431_even_before_it_ends() {
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 20_000));
        assert_eq!(RequestHead::parse(&big, 16384).unwrap_err().status, 431);
    }

    #[test]
    fn a_complete_head_longer_than_the_limit_is_431() {
        assert_eq!(RequestHead::parse(REQUEST, REQUEST.len()).unwrap().unwrap().1, REQUEST.len());
        assert_eq!(RequestHead::parse(REQUEST, REQUEST.len() - 1).unwrap_err().status, 431);
    }

    #[test]
    fn too_many_headers_is_431() {
        let with_headers = |count: usize| {
            let mut req = b"GET / HTTP/1.1\r\n".to_vec();
            for i in 0..count {
                req.extend(format!("X-{i}: v\r\n").into_bytes());
            }
            req.extend(b"\r\n");
            req
        };
        let (head, _) = RequestHead::parse(&with_headers(MAX_HEADERS), 1 << 20).unwrap().unwrap();
        assert_eq!(head.header_count(), MAX_HEADERS);
        assert_eq!(RequestHead::parse(&with_headers(MAX_HEADERS + 1), 1 << 20).unwrap_err().status, 431);
    }

    #[test]
    fn only_an_upgrade_to_websocket_takes_the_websocket_path() {
        let head = |raw: &[u8]| RequestHead::parse(raw, 16384).unwrap().unwrap().0;
        assert!(!head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").wants_upgrade());
        // What `curl --http2` sends over cleartext: plain HTTP may ignore it.
        assert!(!head(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n").wants_upgrade());
        assert!(head(b"GET / HTTP/1.1\r\nHost: h\r\nupgrade: h2c, WebSocket\r\n\r\n").wants_upgrade());
    }

    #[test]
    fn garbage_is_400() {
        assert_eq!(RequestHead::parse(b"\x16\x03\x01\x00\xa5\x01\x00\x00", 16384).unwrap_err().status, 400);
        assert_eq!(RequestHead::parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 16384).unwrap_err().status, 400);
    }
}
