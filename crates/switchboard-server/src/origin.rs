//! Which web pages may open WebSockets to us: the `Origin` allow-list,
//! server-wide and per room kind.
//!
//! Browsers send `Origin` with every WebSocket upgrade and let any page
//! connect anywhere, with the user's cookies: without a check, a page on
//! another site could join rooms as the user (cross-site WebSocket
//! hijacking). The check runs before the room is asked and refuses with
//! 403. It is not authentication: clients other than browsers send any
//! `Origin` they like, or none.
//!
//! Without a configured list, a kind accepts the server's own origin (the
//! `Origin` names the host and port of the `Host` header) and pages on
//! `localhost` / `127.0.0.1` / `[::1]` on any port (development). A list,
//! server-wide or for one kind, replaces the local-development default;
//! the server's own origin is always accepted. A request without `Origin`
//! (a native client, a backend) is accepted unless `require_origin` is set.

use std::collections::HashMap;

/// The allow-lists, as configured.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Origins every kind accepts (`https://app.example`,
    /// `https://*.example.com`, `*` for any).
    pub allowed: Vec<String>,
    /// Per kind: the origins that kind accepts instead of `allowed`.
    pub per_kind: HashMap<String, Vec<String>>,
    /// Refuse upgrades that carry no `Origin` header.
    pub require_origin: bool,
}

/// An entry of an allow-list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOrigin(pub String);

impl std::fmt::Display for BadOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not an origin: expected scheme://host[:port] (http or https, no path), https://*.domain or *", self.0)
    }
}

impl std::error::Error for BadOrigin {}

impl OriginPolicy {
    /// Checks one allow-list entry (for a command line or a config file).
    pub fn check_entry(entry: &str) -> Result<(), BadOrigin> {
        Pattern::parse(entry).map(drop)
    }
}

/// One allow-list entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    /// `scheme://host:port`, or with `host` a `*.suffix`.
    Origin(Origin),
}

/// A parsed origin: scheme, lower-case host, effective port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]` (with `[v6]` hosts), lower-casing the host.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{host}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    /// `scheme://host[:port]`, as browsers send it (a trailing `/` is
    /// tolerated in configured entries).
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = default_port(&scheme)?;
        let (host, port) = split_host_port(rest.strip_suffix('/').unwrap_or(rest))?;
        Some(Origin { scheme, host, port: port.unwrap_or(default) })
    }

    fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
    }
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, BadOrigin> {
        if text.trim() == "*" {
            return Ok(Pattern::Any);
        }
        let origin = Origin::parse(text.trim()).ok_or_else(|| BadOrigin(text.to_owned()))?;
        // A wildcard only as the whole leftmost label: `*.example.com`.
        let wildcard_ok = match origin.host.strip_prefix("*.") {
            Some(rest) => !rest.contains('*'),
            None => !origin.host.contains('*'),
        };
        if !wildcard_ok {
            return Err(BadOrigin(text.to_owned()));
        }
        Ok(Pattern::Origin(origin))
    }

    fn matches(&self, origin: &Origin) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Origin(p) => {
                let host = match p.host.strip_prefix("*.") {
                    Some(suffix) => origin.host.strip_suffix(suffix).is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                    None => origin.host == p.host,
                };
                host && p.scheme == origin.scheme && p.port == origin.port
            }
        }
    }
}

/// The policy, parsed once at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginCheck {
    /// `None`: the default (own origin and local development).
    allowed: Option<Vec<Pattern>>,
    per_kind: foldhash::HashMap<String, Vec<Pattern>>,
    require_origin: bool,
}

/// Why an upgrade's origin is refused; the 403's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginRefused {
    Missing,
    NotAllowed(String),
}

impl std::fmt::Display for OriginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginRefused::Missing => f.write_str("this server requires an Origin header"),
            OriginRefused::NotAllowed(origin) => write!(f, "origin {origin:?} is not allowed to connect to this room kind"),
        }
    }
}

impl OriginCheck {
    pub(crate) fn new(policy: &OriginPolicy) -> Result<OriginCheck, BadOrigin> {
        let parse = |list: &[String]| list.iter().map(|s| Pattern::parse(s)).collect::<Result<Vec<_>, _>>();
        let allowed = if policy.allowed.is_empty() { None } else { Some(parse(&policy.allowed)?) };
        let per_kind = policy.per_kind.iter().map(|(kind, list)| Ok((kind.clone(), parse(list)?))).collect::<Result<_, BadOrigin>>()?;
        Ok(OriginCheck { allowed, per_kind, require_origin: policy.require_origin })
    }

    /// Checks an upgrade to a room of `kind` with the request's `Origin`
    /// and `Host` headers.
    pub(crate) fn check(&self, kind: &str, origin: Option<&str>, host: Option<&str>) -> Result<(), OriginRefused> {
        let Some(text) = origin else {
            return if self.require_origin { Err(OriginRefused::Missing) } else { Ok(()) };
        };
        let refused = || OriginRefused::NotAllowed(text.chars().take(200).collect());
        // "null" (sandboxed frames, files) and anything unparsable match
        // only `*`.
        let Some(parsed) = Origin::parse(text) else {
            let any = self.list(kind).is_some_and(|list| list.contains(&Pattern::Any));
            return if any { Ok(()) } else { Err(refused()) };
        };
        if host.is_some_and(|host| same_origin(&parsed, host)) {
            return Ok(());
        }
        let allowed = match self.list(kind) {
            Some(list) => list.iter().any(|p| p.matches(&parsed)),
            None => parsed.is_local(),
        };
        if allowed {
            Ok(())
        } else {
            Err(refused())
        }
    }

    fn list(&self, kind: &str) -> Option<&[Pattern]> {
        self.per_kind.get(kind).or(self.allowed.as_ref()).map(Vec::as_slice)
    }
}

/// True when the page's origin is this server as the browser addressed
/// it: the `Host` header's host and port, the port defaulting to the
/// page's scheme's (so `https://example.com` matches `Host: example.com`
/// behind a TLS proxy, and `http://example.com:8080` needs
/// `Host: example.com:8080`).
fn same_origin(origin: &Origin, host: &str) -> bool {
    let Some((host, port)) = split_host_port(host.trim()) else { return false };
    let port = port.or_else(|| default_port(&origin.scheme));
    origin.host == host && Some(origin.port) == port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: OriginPolicy) -> OriginCheck {
        OriginCheck::new(&policy).unwrap()
    }

    #[test]
    fn the_default_accepts_the_own_origin_and_local_pages_only() {
        let c = check(OriginPolicy::default());
        assert_eq!(c.check("chat", Some("http://example.com:8080"), Some("example.com:8080")), Ok(()));
        assert_eq!(c.check("chat", Some("https://Example.com"), Some("example.com")), Ok(()));
        assert_eq!(c.check("chat", Some("http://localhost:5173"), Some("example.com")), Ok(()));
        assert_eq!(c.check("chat", Some("http://127.0.0.1:3000"), Some("example.com")), Ok(()));
        assert_eq!(c.check("chat", Some("http://[::1]:3000"), Some("example.com")), Ok(()));
        assert!(c.check("chat", Some("https://evil.example"), Some("example.com")).is_err());
        // Same host, other port or scheme: another origin.
        assert!(c.check("chat", Some("http://example.com:9090"), Some("example.com:8080")).is_err());
        assert!(c.check("chat", Some("http://example.com"), Some("example.com:443")).is_err());
        assert!(c.check("chat", Some("null"), Some("example.com")).is_err());
        assert_eq!(c.check("chat", None, Some("example.com")), Ok(()));
    }

    #[test]
    fn a_list_replaces_local_development_and_per_kind_lists_win() {
        let mut policy = OriginPolicy { allowed: vec!["https://app.example".into(), "https://*.corp.example".into()], ..OriginPolicy::default() };
        policy.per_kind.insert("call".into(), vec!["https://meet.example:8443/".into()]);
        let c = check(policy);
        assert_eq!(c.check("chat", Some("https://app.example"), Some("ws.example")), Ok(()));
        assert_eq!(c.check("chat", Some("https://a.b.corp.example"), Some("ws.example")), Ok(()));
        assert!(c.check("chat", Some("https://corp.example"), Some("ws.example")).is_err());
        assert!(c.check("chat", Some("https://evilcorp.example"), Some("ws.example")).is_err());
        assert!(c.check("chat", Some("http://app.example"), Some("ws.example")).is_err());
        assert!(c.check("chat", Some("http://localhost:3000"), Some("ws.example")).is_err());
        assert!(c.check("call", Some("https://app.example"), Some("ws.example")).is_err());
        assert_eq!(c.check("call", Some("https://meet.example:8443"), Some("ws.example")), Ok(()));
        assert_eq!(c.check("call", Some("https://ws.example"), Some("ws.example")), Ok(()), "the own origin always");
    }

    #[test]
    fn any_and_required_origins() {
        let c = check(OriginPolicy { allowed: vec!["*".into()], require_origin: true, ..OriginPolicy::default() });
        assert_eq!(c.check("echo", Some("https://anything.example"), None), Ok(()));
        assert_eq!(c.check("echo", Some("null"), None), Ok(()));
        assert_eq!(c.check("echo", None, Some("h")), Err(OriginRefused::Missing));
    }

    #[test]
    fn bad_entries_are_refused_at_start() {
        for bad in ["app.example", "ftp://x", "https://x/path", "https://a*.example", "https://x:99999", "https://*.*.x"] {
            assert!(OriginCheck::new(&OriginPolicy { allowed: vec![bad.into()], ..OriginPolicy::default() }).is_err(), "{bad}");
        }
    }
}
