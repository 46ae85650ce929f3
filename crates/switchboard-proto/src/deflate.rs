//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! Negotiation reads `Sec-WebSocket-Extensions` offers and produces the
//! agreed [`DeflateConfig`] plus the exact response value. The codec
//! compresses one whole message at a time with a sync flush and strips the
//! trailing `00 00 ff ff` (RFC 7692 §7.2.1); inflation appends it back and is
//! capped, so a small compressed message cannot expand past the message limit.
//!
//! Window sizes: inflation always uses a 32 KiB (15-bit) window, which decodes
//! a stream made with any smaller window. Compression honours the agreed
//! window of our side. zlib cannot make raw-deflate streams with an 8-bit
//! window, so when a peer limits us to 8 bits we emit stored (uncompressed)
//! deflate blocks, which contain no back-references and are therefore valid
//! for every window size.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::config::Role;
use crate::error::ProtocolError;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What we are willing to agree to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Accept (server) or offer (client) the extension. Default true.
    pub enabled: bool,
    /// Compression level 0-9. Default 1: realtime traffic is small and
    /// latency-bound; level 1 gets most of the ratio at a fraction of the CPU.
    pub level: u32,
    /// Ask for `server_no_context_takeover` even if the client did not.
    /// Default false: context takeover compresses repetitive JSON far better,
    /// at the cost of a 32 KiB window kept per connection while compressing.
    pub server_no_context_takeover: bool,
    /// Largest window for the server's compression, 8-15. Default 15.
    pub server_max_window_bits: u8,
    /// Ask the client to limit its window when it offered the parameter.
    /// Default `None`: our inflater handles every window size.
    pub client_max_window_bits: Option<u8>,
    /// Client side: offer `client_no_context_takeover`. Default false.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            enabled: true,
            level: 1,
            server_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: None,
            client_no_context_takeover: false,
        }
    }
}

/// The agreed parameters of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// Window of the server's compressor, 8-15.
    pub server_max_window_bits: u8,
    /// Window of the client's compressor, 8-15.
    pub client_max_window_bits: u8,
}

/// The server's permessage-deflate answer cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeflateNegotiationError {
    /// Not a single well-formed permessage-deflate response.
    Malformed(String),
    /// A parameter we did not offer or cannot honour.
    Unacceptable(String),
}

impl std::fmt::Display for DeflateNegotiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeflateNegotiationError::Malformed(why) => write!(f, "malformed permessage-deflate response: {why}"),
            DeflateNegotiationError::Unacceptable(why) => write!(f, "unacceptable permessage-deflate response: {why}"),
        }
    }
}

impl std::error::Error for DeflateNegotiationError {}

/// One extension from a header: its name and parameters.
#[derive(Debug, PartialEq, Eq)]
struct Extension {
    name: String,
    params: Vec<(String, Option<String>)>,
}

/// Splits header values into extensions (RFC 6455 §9.1 grammar; quoted
/// values per RFC 7692 §7.1). Returns `None` for an element that does not
/// parse; callers skip it.
fn parse_extensions(values: &[&str]) -> Vec<Option<Extension>> {
    let mut out = Vec::new();
    for value in values {
        for element in split_outside_quotes(value, ',') {
            if element.trim().is_empty() {
                continue;
            }
            out.push(parse_extension(element));
        }
    }
    out
}

fn parse_extension(element: &str) -> Option<Extension> {
    let mut parts = split_outside_quotes(element, ';').into_iter();
    let name = parts.next()?.trim();
    if !is_token(name) {
        return None;
    }
    let mut params = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
            None => (part.trim(), None),
        };
        if !is_token(key) {
            return None;
        }
        params.push((key.to_ascii_lowercase(), value));
    }
    Some(Extension { name: name.to_ascii_lowercase(), params })
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let unescaped: String = inner.replace('\\', "");
        is_token(&unescaped).then_some(unescaped)
    } else {
        is_token(v).then(|| v.to_owned())
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn window_bits(value: &str) -> Option<u8> {
    // RFC 7692 §7.1.2: 1*DIGIT without leading zeros, 8-15.
    if value.starts_with('0') {
        return None;
    }
    value.parse::<u8>().ok().filter(|bits| (8..=15).contains(bits))
}

/// The parameters of one permessage-deflate offer, each at most once.
#[derive(Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    fn read(ext: &Extension) -> Option<Offer> {
        let mut offer = Offer::default();
        let mut seen = Vec::new();
        for (key, value) in &ext.params {
            if seen.contains(key) {
                return None;
            }
            seen.push(key.clone());
            match (key.as_str(), value) {
                ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
                ("server_max_window_bits", Some(v)) => offer.server_max_window_bits = Some(window_bits(v)?),
                ("client_max_window_bits", None) => offer.client_max_window_bits = Some(None),
                ("client_max_window_bits", Some(v)) => offer.client_max_window_bits = Some(Some(window_bits(v)?)),
                _ => return None,
            }
        }
        Some(offer)
    }
}

/// Server side: picks the first acceptable permessage-deflate offer among
/// `offers` (the raw header values, in order) and returns the agreed config
/// and the response header value. `None`: no acceptable offer, or disabled.
pub fn negotiate_server(offers: &[&str], options: &DeflateOptions) -> Option<(DeflateConfig, String)> {
    if !options.enabled {
        return None;
    }
    parse_extensions(offers)
        .into_iter()
        .flatten()
        .filter(|ext| ext.name == EXTENSION_NAME)
        .find_map(|ext| Offer::read(&ext).map(|offer| answer(&offer, options)))
}

fn answer(offer: &Offer, options: &DeflateOptions) -> (DeflateConfig, String) {
    let mut response = String::from(EXTENSION_NAME);
    let server_no_context_takeover = offer.server_no_context_takeover || options.server_no_context_takeover;
    if server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if offer.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    let ours = options.server_max_window_bits.clamp(8, 15);
    let server_max_window_bits = offer.server_max_window_bits.map_or(ours, |asked| asked.min(ours));
    if offer.server_max_window_bits.is_some() || server_max_window_bits < 15 {
        response.push_str(&format!("; server_max_window_bits={server_max_window_bits}"));
    }
    let client_max_window_bits = match (offer.client_max_window_bits, options.client_max_window_bits) {
        (Some(offered), Some(wanted)) => {
            let bits = offered.map_or(wanted, |o| o.min(wanted)).clamp(8, 15);
            response.push_str(&format!("; client_max_window_bits={bits}"));
            bits
        }
        (Some(Some(offered)), None) => offered,
        _ => 15,
    };
    let config = DeflateConfig {
        server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    };
    (config, response)
}

/// Client side: the offer to send.
pub fn client_offer(options: &DeflateOptions) -> String {
    let mut offer = String::from(EXTENSION_NAME);
    if options.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if options.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if options.server_max_window_bits < 15 {
        offer.push_str(&format!("; server_max_window_bits={}", options.server_max_window_bits.clamp(8, 15)));
    }
    // We can honour any window limit the server asks of us.
    offer.push_str("; client_max_window_bits");
    offer
}

/// Client side: checks the server's response against our offer.
pub fn client_accept(response: &str, options: &DeflateOptions) -> Result<DeflateConfig, DeflateNegotiationError> {
    let malformed = |why: &str| DeflateNegotiationError::Malformed(format!("{why}: {response:?}"));
    let mut exts = parse_extensions(&[response]).into_iter();
    let ext = exts.next().flatten().ok_or_else(|| malformed("cannot parse"))?;
    if exts.next().is_some() {
        return Err(malformed("more than one extension"));
    }
    if ext.name != EXTENSION_NAME {
        return Err(DeflateNegotiationError::Unacceptable(format!("extension {:?} was not offered", ext.name)));
    }
    let agreed = Offer::read(&ext).ok_or_else(|| malformed("bad parameters"))?;
    if options.server_no_context_takeover && !agreed.server_no_context_takeover {
        return Err(DeflateNegotiationError::Unacceptable("server_no_context_takeover was required".into()));
    }
    let server_max_window_bits = agreed.server_max_window_bits.unwrap_or(15);
    if server_max_window_bits > options.server_max_window_bits {
        return Err(DeflateNegotiationError::Unacceptable("server_max_window_bits above our limit".into()));
    }
    let client_max_window_bits = match agreed.client_max_window_bits {
        Some(Some(bits)) => bits,
        Some(None) => return Err(malformed("client_max_window_bits needs a value in a response")),
        None => 15,
    };
    Ok(DeflateConfig {
        server_no_context_takeover: agreed.server_no_context_takeover,
        client_no_context_takeover: agreed.client_no_context_takeover || options.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    })
}

/// Compresses the messages one side sends.
pub struct Compressor {
    stream: Compress,
    no_context_takeover: bool,
}

impl Compressor {
    /// The compressor for `role`'s own messages.
    pub fn new(config: &DeflateConfig, role: Role, level: u32) -> Compressor {
        let (bits, no_context_takeover) = match role {
            Role::Server => (config.server_max_window_bits, config.server_no_context_takeover),
            Role::Client => (config.client_max_window_bits, config.client_no_context_takeover),
        };
        // See the module docs: 8-bit windows get stored blocks only.
        let (bits, level) = if bits < 9 { (9, 0) } else { (bits, level.min(9)) };
        Compressor { stream: Compress::new_with_window_bits(Compression::new(level), false, bits), no_context_takeover }
    }

    /// Compresses one whole message payload (without the trailing `00 00 ff ff`).
    pub fn compress(&mut self, payload: &[u8]) -> Bytes {
        if payload.is_empty() {
            // RFC 7692 §7.2.3.6: one 0x00 byte (an empty stored block once the
            // tail is appended). zlib itself emits nothing for a sync flush
            // without input right after another one, and an empty payload
            // would leave the peer's inflater inside a stored block header.
            return Bytes::from_static(&[0x00]);
        }
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let start = self.stream.total_in();
        loop {
            let consumed = (self.stream.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            self.stream.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync).expect("deflate never fails on valid state");
            let consumed = (self.stream.total_in() - start) as usize;
            // The sync flush is complete once all input is taken and zlib
            // stopped with output space to spare.
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            self.stream.reset();
        }
        Bytes::from(out)
    }
}

/// Inflates the messages the peer sends.
pub struct Decompressor {
    stream: Decompress,
    no_context_takeover: bool,
}

impl Decompressor {
    /// The decompressor for messages from `role`'s peer.
    pub fn new(config: &DeflateConfig, role: Role) -> Decompressor {
        let no_context_takeover = match role {
            Role::Server => config.client_no_context_takeover,
            Role::Client => config.server_no_context_takeover,
        };
        Decompressor { stream: Decompress::new_with_window_bits(false, 15), no_context_takeover }
    }

    /// Inflates one whole message payload, failing with `MessageTooBig` as
    /// soon as the output would pass `max_size`; never allocates beyond it.
    pub fn decompress(&mut self, payload: &[u8], max_size: usize) -> Result<Bytes, ProtocolError> {
        if payload.is_empty() {
            // Some peers send an empty compressed payload for an empty
            // message; the tail alone would open a stored block, not close one.
            return Ok(Bytes::new());
        }
        let limit = max_size.saturating_add(1);
        let mut out = Vec::with_capacity(payload.len().saturating_mul(3).saturating_add(256).min(limit));
        let result = self.inflate_into(payload, &mut out, limit).and_then(|ended| match ended {
            true => Ok(()),
            false => self.inflate_into(&TAIL, &mut out, limit).map(|_| ()),
        });
        if self.no_context_takeover || result.is_err() {
            self.stream.reset(false);
        }
        result?;
        if out.len() > max_size {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(Bytes::from(out))
    }

    /// Feeds `input`; returns true if the deflate stream ended (a final block).
    fn inflate_into(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<bool, ProtocolError> {
        let start = self.stream.total_in();
        loop {
            let consumed = (self.stream.total_in() - start) as usize;
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(ProtocolError::MessageTooBig);
                }
                let grow = out.capacity().max(256).min(limit - out.len());
                out.reserve_exact(grow);
            }
            let before = out.len();
            let status = self.stream.decompress_vec(&input[consumed..], out, FlushDecompress::Sync).map_err(|_| ProtocolError::BadCompressedData)?;
            let consumed_now = (self.stream.total_in() - start) as usize;
            match status {
                Status::StreamEnd => {
                    // A final block ends this stream; the next message starts a new one.
                    self.stream.reset(false);
                    return Ok(true);
                }
                Status::Ok | Status::BufError => {
                    let progressed = consumed_now > consumed || out.len() > before;
                    if consumed_now == input.len() && out.len() < out.capacity() {
                        return Ok(false);
                    }
                    if !progressed && out.len() < out.capacity() {
                        return Err(ProtocolError::BadCompressedData);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_config() -> DeflateConfig {
        negotiate_server(&["permessage-deflate"], &DeflateOptions::default()).unwrap().0
    }

    fn config_with(offer: &str) -> DeflateConfig {
        negotiate_server(&[offer], &DeflateOptions::default()).unwrap().0
    }

    #[test]
    fn rfc7692_hello_vectors_inflate() {
        let mut d = Decompressor::new(&default_config(), Role::Client);
        // §7.2.3.1 a message compressed in one block
        assert_eq!(&d.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap()[..], b"Hello");
        // §7.2.3.2 the same again, referring back to the first (context takeover)
        assert_eq!(&d.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap()[..], b"Hello");
        // §7.2.3.3 a stored (uncompressed) block
        let mut d = Decompressor::new(&default_config(), Role::Client);
        assert_eq!(&d.decompress(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 100).unwrap()[..], b"Hello");
        // §7.2.3.5 two deflate blocks in one message
        let mut d = Decompressor::new(&default_config(), Role::Client);
        let two_blocks = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(&d.decompress(&two_blocks, 100).unwrap()[..], b"Hello");
        // §7.2.3.4 a final (BFINAL) block
        let mut d = Decompressor::new(&default_config(), Role::Client);
        assert_eq!(&d.decompress(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], 100).unwrap()[..], b"Hello");
    }

    #[test]
    fn compressing_hello_twice_uses_the_shared_context() {
        let mut c = Compressor::new(&default_config(), Role::Server, 6);
        assert_eq!(&c.compress(b"Hello")[..], &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let second = c.compress(b"Hello");
        assert!(second.len() < 7, "the second Hello refers back to the first: {second:x?}");
    }

    #[test]
    fn an_empty_message_compresses_to_one_zero_byte_and_back() {
        let mut c = Compressor::new(&default_config(), Role::Server, 1);
        assert_eq!(&c.compress(b"")[..], &[0x00]);
        let mut d = Decompressor::new(&default_config(), Role::Client);
        assert_eq!(d.decompress(&[0x00], 10).unwrap().len(), 0);
    }

    #[test]
    fn round_trips_for_every_window_and_takeover_setting() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| format!("{{\"n\":{},\"t\":\"msg\"}}", i % 97).into_bytes()).collect();
        for bits in 8..=15u8 {
            for nct in [false, true] {
                let mut offer = format!("permessage-deflate; server_max_window_bits={bits}; client_max_window_bits={bits}");
                if nct {
                    offer.push_str("; server_no_context_takeover; client_no_context_takeover");
                }
                let config = config_with(&offer);
                assert_eq!(config.server_max_window_bits, bits);
                for role in [Role::Server, Role::Client] {
                    let peer = if role == Role::Server { Role::Client } else { Role::Server };
                    let mut c = Compressor::new(&config, role, 6);
                    let mut d = Decompressor::new(&config, peer);
                    for chunk in [&text[..10], &text[..], b"", &text[100..5000]] {
                        let compressed = c.compress(chunk);
                        let back = d.decompress(&compressed, 1 << 24).unwrap();
                        let diff = back.iter().zip(chunk).position(|(a, b)| a != b);
                        assert!(
                            back.len() == chunk.len() && diff.is_none(),
                            "bits {bits} nct {nct} {role:?}: {} -> {} bytes, first difference at {diff:?}",
                            chunk.len(),
                            back.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_8_bit_window_emits_no_back_references() {
        // Stored blocks: the output holds the input bytes verbatim.
        let config = config_with("permessage-deflate; server_max_window_bits=8");
        let mut c = Compressor::new(&config, Role::Server, 9);
        let data = b"abcabcabcabcabcabcabcabcabcabc".repeat(20);
        let out = c.compress(&data);
        assert!(out.len() > data.len());
        assert!(out.windows(data.len()).any(|w| w == &data[..]));
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_cap() {
        let mut c = Compressor::new(&default_config(), Role::Client, 9);
        let bomb = c.compress(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 16 * 1024);
        let mut d = Decompressor::new(&default_config(), Role::Server);
        assert_eq!(d.decompress(&bomb, 1 << 20), Err(ProtocolError::MessageTooBig));
    }

    #[test]
    fn corrupt_data_is_rejected() {
        let mut d = Decompressor::new(&default_config(), Role::Server);
        assert_eq!(d.decompress(&[0xff, 0xff, 0xff, 0xff], 100), Err(ProtocolError::BadCompressedData));
    }

    #[test]
    fn the_plain_offer_is_accepted_as_is() {
        let (config, response) = negotiate_server(&["permessage-deflate"], &DeflateOptions::default()).unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(
            config,
            DeflateConfig { server_no_context_takeover: false, client_no_context_takeover: false, server_max_window_bits: 15, client_max_window_bits: 15 }
        );
    }

    #[test]
    fn every_parameter_is_answered() {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits";
        let (config, response) = negotiate_server(&[offer], &DeflateOptions::default()).unwrap();
        assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10");
        assert!(config.server_no_context_takeover && config.client_no_context_takeover);
        assert_eq!((config.server_max_window_bits, config.client_max_window_bits), (10, 15));
    }

    #[test]
    fn client_max_window_bits_is_answered_only_when_offered() {
        let options = DeflateOptions { client_max_window_bits: Some(10), ..DeflateOptions::default() };
        let (_, response) = negotiate_server(&["permessage-deflate"], &options).unwrap();
        assert_eq!(response, "permessage-deflate");
        let (config, response) = negotiate_server(&["permessage-deflate; client_max_window_bits"], &options).unwrap();
        assert_eq!(response, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(config.client_max_window_bits, 10);
    }

    #[test]
    fn invalid_offers_are_skipped_for_the_next_one() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; unknown_param",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(negotiate_server(&[bad], &DeflateOptions::default()), None, "{bad}");
            let (config, _) = negotiate_server(&[bad, "permessage-deflate; client_no_context_takeover"], &DeflateOptions::default()).unwrap();
            assert!(config.client_no_context_takeover, "{bad}");
        }
    }

    #[test]
    fn several_offers_in_one_header_and_quoted_values() {
        let header = "permessage-deflate; server_max_window_bits=\"9\", permessage-deflate";
        let (config, response) = negotiate_server(&[header], &DeflateOptions::default()).unwrap();
        assert_eq!(config.server_max_window_bits, 9);
        assert_eq!(response, "permessage-deflate; server_max_window_bits=9");
        assert_eq!(negotiate_server(&["permessage-deflate"], &DeflateOptions { enabled: false, ..DeflateOptions::default() }), None);
    }

    #[test]
    fn client_offer_and_accept_round_trip() {
        let options = DeflateOptions { client_no_context_takeover: true, ..DeflateOptions::default() };
        let offer = client_offer(&options);
        assert_eq!(offer, "permessage-deflate; client_no_context_takeover; client_max_window_bits");
        let (server_side, response) = negotiate_server(&[&offer], &DeflateOptions::default()).unwrap();
        assert_eq!(client_accept(&response, &options).unwrap(), server_side);
    }

    #[test]
    fn client_rejects_what_it_did_not_offer() {
        let options = DeflateOptions::default();
        assert!(client_accept("permessage-deflate; unknown", &options).is_err());
        assert!(client_accept("permessage-deflate; client_max_window_bits", &options).is_err());
        assert!(client_accept("x-other", &options).is_err());
        assert!(client_accept("permessage-deflate, permessage-deflate", &options).is_err());
        let strict = DeflateOptions { server_no_context_takeover: true, ..DeflateOptions::default() };
        assert!(client_accept("permessage-deflate", &strict).is_err());
    }
}
