//! permessage-deflate (RFC 7692): negotiation, per policy, and the codec.
//!
//! Negotiation reads `Sec-WebSocket-Extensions` offers and produces the
//! agreed [`DeflateConfig`] plus the exact response value. What a server
//! agrees to follows its [`Policy`]; which codec serves each direction of a
//! connection is in `message`, the codec itself in `codec`, and the codecs
//! shared by a thread's connections in `pool`.

mod codec;
mod message;
mod pool;

pub use codec::{Compressor, Decompressor};
pub use message::{Incoming, Outgoing};

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What a server agrees to when a client offers permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Decline every offer: messages go out and come in uncompressed.
    Off,
    /// `server_no_context_takeover` and `client_no_context_takeover`: every
    /// message is compressed from a fresh state, so the codecs are shared
    /// by the connections of a thread and an idle connection keeps no zlib
    /// state. The default.
    #[default]
    Shared,
    /// Our compressor keeps its context between messages (better ratios
    /// for a chatty connection) with a bounded window, in state of its own
    /// made on the first compressed message. The client is still asked for
    /// `client_no_context_takeover`, so inflating stays shared.
    Dedicated,
}

impl Policy {
    /// The policy's name as configured: `off`, `shared` or `dedicated`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Shared => "shared",
            Policy::Dedicated => "dedicated",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Policy, String> {
        match s {
            "off" => Ok(Policy::Off),
            "shared" => Ok(Policy::Shared),
            "dedicated" => Ok(Policy::Dedicated),
            other => Err(format!("unknown compression policy {other:?} (expected off, shared or dedicated)")),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What we are willing to agree to (server) or offer (client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Server: what to agree to. Client: `Off` makes no offer, anything
    /// else offers the extension as set by the fields below.
    pub policy: Policy,
    /// Compression level 0-9. Default 1: realtime traffic is small and
    /// latency-bound; level 1 gets most of the ratio at a fraction of the CPU.
    pub level: u32,
    /// Messages shorter than this many bytes go out uncompressed (RSV1
    /// clear, RFC 7692 §6.1). Default 1024: below that, JSON gains little
    /// and zlib's fixed cost per message is most of the work.
    pub threshold: usize,
    /// Window of our compressor when it keeps its context (server,
    /// `dedicated`), 9-15. Default 12: 4 KiB of history catches the
    /// repetition of a stream of JSON messages at a fraction of the memory
    /// of zlib's 32 KiB. A client's offer of a smaller window is honoured.
    pub server_max_window_bits: u8,
    /// Ask the client to limit its window when it offered the parameter.
    /// Default `None`: our inflater handles every window size.
    pub client_max_window_bits: Option<u8>,
    /// Client side: offer `server_no_context_takeover`. Default false.
    pub server_no_context_takeover: bool,
    /// Client side: offer `client_no_context_takeover`. Default false.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            policy: Policy::default(),
            level: 1,
            threshold: 1024,
            server_max_window_bits: 12,
            client_max_window_bits: None,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        }
    }
}

impl DeflateOptions {
    /// The offer a browser makes (Chromium's `permessage-deflate;
    /// client_max_window_bits`), for a client that wants to cost a server
    /// what a browser costs it.
    pub fn browser() -> DeflateOptions {
        DeflateOptions { server_max_window_bits: 15, threshold: 0, ..DeflateOptions::default() }
    }
}

/// What one connection compresses with: the agreed parameters, the level
/// and the threshold of our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// What the handshake agreed.
    pub config: DeflateConfig,
    /// Our compression level.
    pub level: u32,
    /// Our messages shorter than this go out uncompressed.
    pub threshold: usize,
}

impl DeflateParams {
    /// The parameters of a connection that agreed `config` under `options`.
    pub fn new(config: DeflateConfig, options: &DeflateOptions) -> DeflateParams {
        DeflateParams { config, level: options.level, threshold: options.threshold }
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
    if options.policy == Policy::Off {
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
    // Shared: no context on either side. Dedicated: ours is kept unless the
    // client asked otherwise; the client's never is (RFC 7692 §7.1.1.2 lets
    // a server ask for that unprompted), so inflating is always shared.
    let server_no_context_takeover = offer.server_no_context_takeover || options.policy == Policy::Shared;
    if server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    response.push_str("; client_no_context_takeover");
    // Without context our window costs nothing per connection: zlib's
    // largest. With it, the configured bound. A smaller window than the
    // client's limit needs no mention: any inflater decodes it.
    let ours = if server_no_context_takeover { 15 } else { options.server_max_window_bits.clamp(9, 15) };
    let server_max_window_bits = offer.server_max_window_bits.map_or(ours, |asked| asked.min(ours));
    if let Some(asked) = offer.server_max_window_bits {
        response.push_str(&format!("; server_max_window_bits={}", asked.min(server_max_window_bits)));
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
    let config = DeflateConfig { server_no_context_takeover, client_no_context_takeover: true, server_max_window_bits, client_max_window_bits };
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
    // We offered no server_max_window_bits, and inflate any window size.
    let server_max_window_bits = agreed.server_max_window_bits.unwrap_or(15);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> DeflateOptions {
        DeflateOptions::default()
    }

    fn dedicated() -> DeflateOptions {
        DeflateOptions { policy: Policy::Dedicated, ..DeflateOptions::default() }
    }

    fn off() -> DeflateOptions {
        DeflateOptions { policy: Policy::Off, ..DeflateOptions::default() }
    }

    /// What browsers and common clients send (as of their current releases).
    const CHROMIUM: &str = "permessage-deflate; client_max_window_bits";
    const FIREFOX: &str = "permessage-deflate";
    const NODE_WS: &str = "permessage-deflate; client_max_window_bits";
    const PYTHON_WEBSOCKETS: &str = "permessage-deflate; client_max_window_bits";

    fn config(server_nct: bool, server_bits: u8, client_bits: u8) -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: true,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        }
    }

    #[test]
    fn shared_answers_every_common_offer_without_context_on_either_side() {
        for offer in [CHROMIUM, FIREFOX, NODE_WS, PYTHON_WEBSOCKETS] {
            let (agreed, response) = negotiate_server(&[offer], &shared()).unwrap();
            assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "{offer}");
            assert_eq!(agreed, config(true, 15, 15), "{offer}");
            // What each client's own check of the answer sees, through ours.
            let client = client_accept(&response, &DeflateOptions::browser()).unwrap();
            assert_eq!(client, agreed);
        }
    }

    #[test]
    fn dedicated_keeps_the_servers_context_with_a_bounded_window() {
        for offer in [CHROMIUM, FIREFOX, NODE_WS, PYTHON_WEBSOCKETS] {
            let (agreed, response) = negotiate_server(&[offer], &dedicated()).unwrap();
            // The smaller window needs no mention: any inflater decodes it.
            assert_eq!(response, "permessage-deflate; client_no_context_takeover", "{offer}");
            assert_eq!(agreed, config(false, 12, 15), "{offer}");
        }
        // A client that asks for no server context gets none.
        let (agreed, _) = negotiate_server(&["permessage-deflate; server_no_context_takeover"], &dedicated()).unwrap();
        assert!(agreed.server_no_context_takeover);
        // A client's smaller window is honoured and answered.
        let (agreed, response) = negotiate_server(&["permessage-deflate; server_max_window_bits=10"], &dedicated()).unwrap();
        assert_eq!(response, "permessage-deflate; client_no_context_takeover; server_max_window_bits=10");
        assert_eq!(agreed.server_max_window_bits, 10);
        let (agreed, response) = negotiate_server(&["permessage-deflate; server_max_window_bits=14"], &dedicated()).unwrap();
        assert_eq!(response, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
        assert_eq!(agreed.server_max_window_bits, 12);
    }

    #[test]
    fn off_declines_every_offer() {
        for offer in [CHROMIUM, FIREFOX, NODE_WS, PYTHON_WEBSOCKETS] {
            assert_eq!(negotiate_server(&[offer], &off()), None, "{offer}");
        }
    }

    #[test]
    fn every_parameter_is_answered() {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits";
        let (config, response) = negotiate_server(&[offer], &shared()).unwrap();
        assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10");
        assert!(config.server_no_context_takeover && config.client_no_context_takeover);
        assert_eq!((config.server_max_window_bits, config.client_max_window_bits), (10, 15));
    }

    #[test]
    fn client_max_window_bits_is_answered_only_when_offered() {
        let options = DeflateOptions { client_max_window_bits: Some(10), ..DeflateOptions::default() };
        let (_, response) = negotiate_server(&["permessage-deflate"], &options).unwrap();
        assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        let (config, response) = negotiate_server(&["permessage-deflate; client_max_window_bits"], &options).unwrap();
        assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10");
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
        assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9");
    }

    #[test]
    fn client_offer_and_accept_round_trip() {
        let options = DeflateOptions { client_no_context_takeover: true, ..DeflateOptions::default() };
        let offer = client_offer(&options);
        assert_eq!(offer, "permessage-deflate; client_no_context_takeover; client_max_window_bits");
        let (server_side, response) = negotiate_server(&[&offer], &DeflateOptions::default()).unwrap();
        assert_eq!(client_accept(&response, &options).unwrap(), server_side);
        assert_eq!(client_offer(&DeflateOptions::browser()), CHROMIUM, "the browser's offer is Chromium's");
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
