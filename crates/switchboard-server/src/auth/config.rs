//! The edge's settings: a mode per room kind and for the HTTP API, and what
//! each mode needs (keys, header and cookie names, the auth backend).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;

use super::token::JwtKeys;

/// How the edge decides who a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Everyone enters, with no identity.
    #[default]
    Public,
    /// A JWT from `?token=`, a cookie, `Authorization: Bearer` or the
    /// `Sec-WebSocket-Protocol` header.
    Token,
    /// A header set by a trusted gateway, believed only from trusted
    /// proxies.
    TrustedHeader,
    /// The auth backend answers for the request's `Cookie` and
    /// `Authorization`.
    Forward,
}

impl AuthMode {
    /// The mode's name on the command line and in the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Public => "public",
            AuthMode::Token => "token",
            AuthMode::TrustedHeader => "trusted-header",
            AuthMode::Forward => "forward",
        }
    }
}

impl FromStr for AuthMode {
    type Err = String;

    fn from_str(text: &str) -> Result<AuthMode, String> {
        match text {
            "public" => Ok(AuthMode::Public),
            "token" => Ok(AuthMode::Token),
            "trusted-header" => Ok(AuthMode::TrustedHeader),
            "forward" => Ok(AuthMode::Forward),
            _ => Err(format!("{text:?} is not an auth mode: public, token, trusted-header or forward")),
        }
    }
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cookie a token is read from unless configured otherwise.
pub const DEFAULT_TOKEN_COOKIE: &str = "switchboard_token";

/// The header a gateway or auth backend names the identity in unless
/// configured otherwise.
pub const DEFAULT_IDENTITY_HEADER: &str = "x-switchboard-account";

/// Where `forward` mode asks, and how long it waits.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// An `http://` URL; the backend answers 2xx with the identity header to
    /// admit, 401 or 403 to refuse.
    pub url: Uri,
    /// Longest wait for the backend's answer; past it the client gets 503.
    pub timeout: Duration,
}

/// How long `forward` mode waits for the backend unless configured
/// otherwise: an auth check is a lookup, and a browser's handshake should
/// not hang on a stuck backend.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

impl ForwardConfig {
    /// Checks the URL: `http://host[:port]/path` (the backend is on the
    /// operator's own network; TLS to it is the gateway pattern's job).
    pub fn new(url: &str, timeout: Duration) -> Result<ForwardConfig, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!("{url:?}: the auth backend URL must be http://host[:port]/path"));
        }
        Ok(ForwardConfig { url: uri, timeout })
    }
}

/// The edge's settings. The default is public everywhere (no identity).
#[derive(Clone)]
pub struct AuthConfig {
    /// Mode of room kinds not listed in `kinds`.
    pub default: AuthMode,
    /// Modes of single room kinds.
    pub kinds: Vec<(String, AuthMode)>,
    /// Mode of the HTTP API (`/api/rooms/...`, `/api/call/ice`).
    pub api: AuthMode,
    /// Kinds whose room id must equal the identity's subject (403
    /// otherwise).
    pub subject_rooms: Vec<String>,
    /// Keys for `token` mode (verification, and minting with a secret).
    pub jwt: Option<Arc<JwtKeys>>,
    /// Cookie a token may come in.
    pub token_cookie: String,
    /// Token claims handed to rooms besides `sub`.
    pub claims: Vec<String>,
    /// Header (lower case) naming the identity in `trusted-header` and
    /// `forward` modes.
    pub identity_header: String,
    /// The auth backend of `forward` mode.
    pub forward: Option<ForwardConfig>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            default: AuthMode::Public,
            kinds: Vec::new(),
            api: AuthMode::Public,
            subject_rooms: Vec::new(),
            jwt: None,
            token_cookie: DEFAULT_TOKEN_COOKIE.to_owned(),
            claims: Vec::new(),
            identity_header: DEFAULT_IDENTITY_HEADER.to_owned(),
            forward: None,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    // Keys stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("default", &self.default)
            .field("kinds", &self.kinds)
            .field("api", &self.api)
            .field("subject_rooms", &self.subject_rooms)
            .field("jwt", &self.jwt.as_ref().map(|_| "<keys>"))
            .field("token_cookie", &self.token_cookie)
            .field("claims", &self.claims)
            .field("identity_header", &self.identity_header)
            .field("forward", &self.forward)
            .finish()
    }
}

impl AuthConfig {
    /// The mode of a room kind.
    pub fn mode_for(&self, kind: &str) -> AuthMode {
        self.kinds.iter().rev().find(|(k, _)| k == kind).map_or(self.default, |(_, mode)| *mode)
    }

    fn modes(&self) -> impl Iterator<Item = AuthMode> + '_ {
        std::iter::once(self.default).chain(std::iter::once(self.api)).chain(self.kinds.iter().map(|(_, m)| *m))
    }

    /// True when nothing needs an identity.
    pub fn all_public(&self) -> bool {
        self.modes().all(|m| m == AuthMode::Public) && self.subject_rooms.is_empty()
    }

    /// Says what a mode in use lacks, so the server refuses to start
    /// instead of refusing every client. `has_trusted_proxies`: whether any
    /// proxy is trusted (trusted-header mode believes only those).
    pub fn check(&self, has_trusted_proxies: bool) -> Result<(), String> {
        let uses = |mode: AuthMode| self.modes().any(|m| m == mode);
        if uses(AuthMode::Token) && self.jwt.is_none() {
            return Err("token mode needs keys: --jwt-secret-file or --jwt-public-key-file".into());
        }
        if uses(AuthMode::TrustedHeader) && !has_trusted_proxies {
            return Err("trusted-header mode believes the header only from trusted proxies: add --trusted-proxy".into());
        }
        if uses(AuthMode::Forward) && self.forward.is_none() {
            return Err("forward mode needs the auth backend: --auth-forward-url".into());
        }
        if !valid_header_name(&self.identity_header) {
            return Err(format!("{:?} is not a header name", self.identity_header));
        }
        if self.token_cookie.is_empty() || !self.token_cookie.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
            return Err(format!("{:?} is not a cookie name", self.token_cookie));
        }
        Ok(())
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_the_last_kind_setting_wins() {
        assert_eq!("trusted-header".parse(), Ok(AuthMode::TrustedHeader));
        assert!("jwt".parse::<AuthMode>().is_err());
        let config = AuthConfig {
            default: AuthMode::Token,
            kinds: vec![("echo".into(), AuthMode::Public), ("echo".into(), AuthMode::Forward)],
            ..AuthConfig::default()
        };
        assert_eq!(config.mode_for("echo"), AuthMode::Forward);
        assert_eq!(config.mode_for("chat"), AuthMode::Token);
    }

    #[test]
    fn a_mode_without_what_it_needs_is_refused_at_start() {
        let token = AuthConfig { kinds: vec![("clicks".into(), AuthMode::Token)], ..AuthConfig::default() };
        assert!(token.check(false).unwrap_err().contains("--jwt-secret-file"));
        let header = AuthConfig { api: AuthMode::TrustedHeader, ..AuthConfig::default() };
        assert!(header.check(false).unwrap_err().contains("--trusted-proxy"));
        assert!(header.check(true).is_ok());
        let forward = AuthConfig { default: AuthMode::Forward, ..AuthConfig::default() };
        assert!(forward.check(true).unwrap_err().contains("--auth-forward-url"));
        assert!(ForwardConfig::new("https://auth.example/check", DEFAULT_FORWARD_TIMEOUT).is_err());
        assert!(ForwardConfig::new("http://127.0.0.1:9000/check", DEFAULT_FORWARD_TIMEOUT).is_ok());
        let bad_cookie = AuthConfig { token_cookie: "a b".into(), ..AuthConfig::default() };
        assert!(bad_cookie.check(false).is_err());
        assert!(AuthConfig::default().check(false).is_ok());
        assert!(AuthConfig::default().all_public());
    }
}
