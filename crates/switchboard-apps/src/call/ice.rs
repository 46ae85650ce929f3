//! The ICE servers a call's peers are given: STUN and TURN URLs from the
//! configuration, and for TURN the time-limited credentials of the TURN
//! REST scheme that coturn accepts with `use-auth-secret`: the username is
//! `expiry:peer` (expiry in Unix seconds) and the password is
//! base64(HMAC-SHA1(shared secret, username)). The TURN server checks the
//! password with the same secret and refuses the username once its expiry
//! has passed, so nothing has to be shared with it per call.
//!
//! The secret never leaves this module in any form but the HMAC: its
//! `Debug` is redacted, so it cannot reach a log through a config dump.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// The shared secret of the TURN server (coturn's `static-auth-secret`).
#[derive(Clone)]
pub struct TurnSecret(Arc<[u8]>);

impl TurnSecret {
    /// The secret as written in a secret file: the file's text without the
    /// white space around it (the final newline an editor adds is not part
    /// of coturn's `static-auth-secret`). `None` when nothing is left.
    pub fn from_file_text(text: &str) -> Option<TurnSecret> {
        let secret = text.trim();
        (!secret.is_empty()).then(|| TurnSecret(Arc::from(secret.as_bytes())))
    }
}

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

/// Where peers find each other's addresses.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// `stun:` / `stuns:` URLs.
    pub stun: Vec<String>,
    /// `turn:` / `turns:` URLs; given only together with `turn_secret`.
    pub turn: Vec<String>,
    /// The TURN server's shared secret.
    pub turn_secret: Option<TurnSecret>,
    /// How long TURN credentials are valid from the moment they are handed
    /// out. A TURN server checks them when a peer allocates a relay, so they
    /// must outlive the time from joining to connecting, not the call.
    pub turn_ttl: Duration,
}

/// Default lifetime of TURN credentials: an hour covers joining and every
/// reconnection of a long call (each reconnect gets fresh ones), while a
/// leaked credential is useless by the end of the day.
pub const DEFAULT_TURN_TTL: Duration = Duration::from_secs(3600);

impl Default for IceConfig {
    fn default() -> IceConfig {
        IceConfig { stun: Vec::new(), turn: Vec::new(), turn_secret: None, turn_ttl: DEFAULT_TURN_TTL }
    }
}

/// What a client passes to `RTCPeerConnection`: the `iceServers` list (in
/// the shape of WebRTC's `RTCIceServer`), and when the TURN credentials in
/// it stop working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    /// The servers, STUN first.
    pub ice_servers: Vec<IceServer>,
    /// Unix seconds after which the TURN credentials are refused; `None`
    /// without TURN.
    pub expires: Option<u64>,
}

/// One entry of `iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// The server's URLs.
    pub urls: Vec<String>,
    /// TURN only: `expiry:peer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN only: base64(HMAC-SHA1(secret, username)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServers {
    /// The JSON text (the `ice` of `joined`, and `GET /api/call/ice`).
    pub fn to_json(&self) -> String {
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl IceConfig {
    /// The ICE servers for `peer` at `now`, with TURN credentials that
    /// expire `turn_ttl` later. TURN URLs without a secret are left out:
    /// browsers refuse a TURN entry without credentials.
    pub fn servers(&self, peer: &str, now: SystemTime) -> IceServers {
        let mut ice_servers = Vec::new();
        if !self.stun.is_empty() {
            ice_servers.push(IceServer { urls: self.stun.clone(), username: None, credential: None });
        }
        let mut expires = None;
        if let (false, Some(secret)) = (self.turn.is_empty(), &self.turn_secret) {
            let at = now.duration_since(UNIX_EPOCH).unwrap_or_default().saturating_add(self.turn_ttl).as_secs();
            let (username, credential) = turn_credentials(secret, peer, at);
            ice_servers.push(IceServer { urls: self.turn.clone(), username: Some(username), credential: Some(credential) });
            expires = Some(at);
        }
        IceServers { ice_servers, expires }
    }
}

/// TURN REST credentials for `peer`, valid until `expires` (Unix seconds):
/// `(username, password)`.
pub fn turn_credentials(secret: &TurnSecret, peer: &str, expires: u64) -> (String, String) {
    let username = format!("{expires}:{peer}");
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(&secret.0).expect("HMAC accepts any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Checks an ICE server URL of one of `schemes` (`stun`, `stuns`, `turn`,
/// `turns`; RFC 7064 and RFC 7065): `scheme:host[:port]`, for TURN with an
/// optional `?transport=udp|tcp`. A browser throws on a malformed URL when
/// the page builds its `RTCPeerConnection`, so the server refuses to start
/// with one instead. The error says what is wrong.
pub fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let expected = schemes.iter().map(|s| format!("{s}:")).collect::<Vec<_>>().join(" or ");
    let Some((scheme, rest)) = url.split_once(':').filter(|(s, _)| schemes.iter().any(|x| x.eq_ignore_ascii_case(s))) else {
        return Err(format!("{url:?} does not start with {expected}"));
    };
    if rest.starts_with("//") {
        return Err(format!("{url:?}: write {scheme}:HOST[:PORT], without //"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '/' || c == '@') {
        return Err(format!("{url:?} has characters a {scheme}: URL cannot have"));
    }
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    if let Some(query) = query {
        let turn = scheme.to_ascii_lowercase().starts_with("turn");
        if !turn || !matches!(query.to_ascii_lowercase().as_str(), "transport=udp" | "transport=tcp") {
            return Err(format!("{url:?}: only turn: and turns: URLs take a query, and only ?transport=udp or ?transport=tcp"));
        }
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| format!("{url:?}: an IPv6 address needs its closing ]"))?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{url:?}: {addr:?} is not an IPv6 address"));
        }
        match after {
            "" => (addr, None),
            _ => (addr, Some(after.strip_prefix(':').ok_or_else(|| format!("{url:?}: expected :PORT after the address"))?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("{url:?}: {port:?} is not a port number"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> TurnSecret {
        TurnSecret::from_file_text(text).unwrap()
    }

    #[test]
    fn credentials_are_the_turn_rest_scheme() {
        // Computed independently: printf '1700000000:abc' | openssl dgst -sha1 -hmac s3cret -binary | base64
        let (username, password) = turn_credentials(&secret("s3cret\n"), "abc", 1_700_000_000);
        assert_eq!(username, "1700000000:abc");
        assert_eq!(password, "7fjbb9kXxh7Rto8MZNnWJnSP8uE=");
    }

    #[test]
    fn servers_list_stun_then_turn_with_credentials_expiring_after_the_ttl() {
        let config = IceConfig {
            stun: vec!["stun:stun.example.org:3478".into()],
            turn: vec!["turn:turn.example.org:3478?transport=udp".into(), "turns:turn.example.org:5349".into()],
            turn_secret: Some(secret("s3cret")),
            turn_ttl: Duration::from_secs(600),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = config.servers("abc", now);
        assert_eq!(servers.expires, Some(1_700_000_600));
        let (username, credential) = turn_credentials(&secret("s3cret"), "abc", 1_700_000_600);
        let json: serde_json::Value = serde_json::from_str(&servers.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "iceServers": [
                    {"urls": ["stun:stun.example.org:3478"]},
                    {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"], "username": username, "credential": credential},
                ],
                "expires": 1_700_000_600u64,
            })
        );
    }

    #[test]
    fn without_turn_or_without_its_secret_there_are_no_credentials() {
        let stun_only = IceConfig { stun: vec!["stun:127.0.0.1".into()], ..IceConfig::default() };
        assert_eq!(stun_only.servers("p", SystemTime::now()).to_json(), r#"{"iceServers":[{"urls":["stun:127.0.0.1"]}],"expires":null}"#);
        let no_secret = IceConfig { turn: vec!["turn:127.0.0.1".into()], ..IceConfig::default() };
        assert_eq!(no_secret.servers("p", SystemTime::now()).to_json(), r#"{"iceServers":[],"expires":null}"#);
    }

    #[test]
    fn the_secret_is_trimmed_never_empty_and_never_shown() {
        assert!(TurnSecret::from_file_text(" \n\t").is_none());
        let s = secret("  hunter2\r\n");
        assert_eq!(&*s.0, b"hunter2");
        let config = IceConfig { turn_secret: Some(s), ..IceConfig::default() };
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("hunter2") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn urls_are_checked() {
        let stun = ["stun", "stuns"];
        let turn = ["turn", "turns"];
        for ok in ["stun:stun.example.org", "stun:127.0.0.1:3478", "STUN:[::1]:3478", "stuns:example.org:5349", "stun:[2001:db8::1]"] {
            assert_eq!(check_url(ok, &stun), Ok(()), "{ok}");
        }
        for ok in ["turn:127.0.0.1:3478", "turn:turn.example.org?transport=tcp", "turns:turn.example.org:5349?transport=tcp"] {
            assert_eq!(check_url(ok, &turn), Ok(()), "{ok}");
        }
        for bad in [
            "turn:127.0.0.1",
            "stun://example.org",
            "stun:",
            "stun::3478",
            "stun:example.org:0",
            "stun:example.org:99999",
            "stun:example.org:port",
            "stun:example.org?transport=udp",
            "stun:exa mple.org",
            "stun:a.org,stun:b.org",
            "stun:[::1",
            "stun:[zz]:1",
            "http://example.org",
        ] {
            assert!(check_url(bad, &stun).is_err(), "{bad} accepted");
        }
        for bad in ["stun:127.0.0.1", "turn:user@example.org", "turn:example.org?transport=sctp", "turn:example.org/x"] {
            assert!(check_url(bad, &turn).is_err(), "{bad} accepted");
        }
        assert!(check_url("stun:", &stun).unwrap_err().contains("no host"));
    }
}
