//! The client's IP: the socket's peer address, or what a trusted proxy says
//! in `Forwarded` (RFC 7239) or `X-Forwarded-For`.
//!
//! Headers are believed only when the peer itself is a configured trusted
//! proxy: anyone else could write anything there. The chain of addresses is
//! read from the right (the hop nearest to us) and every trusted proxy is
//! skipped; the first address that is not a trusted proxy is the client. A
//! malformed or obfuscated entry (`unknown`, `_hidden`) stops the walk at
//! the last address we could trust.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;

use ipnet::IpNet;
use switchboard_room::Headers;

/// Networks whose connections may tell us the client's address.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the given networks (an address is a /32 or /128).
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's IP for a WebSocket request from `peer` with `headers`.
    pub fn client_ip(&self, peer: SocketAddr, headers: &Headers) -> IpAddr {
        self.walk(peer, |name| headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| Cow::Borrowed(v)).collect())
    }

    /// [`client_ip`](Self::client_ip) for a request's own header map: the
    /// headers are read only when the peer is a trusted proxy, and copied
    /// never (a value that is not UTF-8 reads as it would in a copy).
    pub(crate) fn client_ip_of(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.walk(peer, |name| headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes())).collect())
    }

    /// The walk from `peer` through the hops `values` lists, for a header
    /// name, in order; `values` is asked only for a trusted peer.
    fn walk<'a>(&self, peer: SocketAddr, values: impl Fn(&str) -> Vec<Cow<'a, str>>) -> IpAddr {
        let peer = canonical(peer.ip());
        if !self.trusts(peer) {
            return peer;
        }
        // `Forwarded` is the standard; fall back to the older header only
        // when the proxy does not send it.
        let forwarded: Vec<Option<IpAddr>> = values("forwarded").iter().flat_map(|v| forwarded_for(v)).collect();
        let hops = if forwarded.is_empty() { values("x-forwarded-for").iter().flat_map(|v| x_forwarded_for(v)).collect() } else { forwarded };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers)
/// as plain IPv4, so `10.0.0.0/8` matches them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `X-Forwarded-For: client, proxy1, proxy2`; `None` for an entry that is
/// not an address.
fn x_forwarded_for(value: &str) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_node)
}

/// The `for=` of each element of `Forwarded: for=1.2.3.4;proto=https, for="[::1]:80"`.
fn forwarded_for(value: &str) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    value.split(',').filter_map(|element| {
        element.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))
        })
    })
}

/// An address, with or without a port: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]`, `[::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(canonical);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    node.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Headers {
        list.iter().copied().collect()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5:40000";

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9")]);
        assert_eq!(proxies(&[]).client_ip(PROXY.parse().unwrap(), &h), ip("10.0.0.5"));
        assert_eq!(proxies(&["192.168.0.0/16"]).client_ip(PROXY.parse().unwrap(), &h), ip("10.0.0.5"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("203.0.113.9"));
        let h = headers(&[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("2001:db8::7"));
        // No header at all: the proxy's own address.
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &Headers::new()), ip("10.0.0.5"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_so_clients_cannot_forge_it() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client wrote 198.51.100.1 itself; our proxy appended the real one.
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("203.0.113.9"));
        // Several header lines are one list, in order.
        let h = headers(&[("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_is_preferred_and_garbage_stops_the_walk() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=203.0.113.9, for=10.2.2.2")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("203.0.113.9"));
        let h = headers(&[("forwarded", "for=unknown, for=10.2.2.2")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("10.2.2.2"));
        let h = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("10.0.0.5"));
    }

    #[test]
    fn a_header_map_gives_what_its_copy_gives() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.1.1.1")],
            &[("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.9")],
            &[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=203.0.113.9, for=10.2.2.2")],
            &[("forwarded", "for=unknown, for=10.2.2.2")],
            &[("x-forwarded-for", "not-an-ip")],
        ];
        for peer in [PROXY, "192.0.2.1:5"] {
            for case in cases {
                let mut map = HeaderMap::new();
                for (name, value) in *case {
                    map.append(*name, value.parse().unwrap());
                }
                let peer = peer.parse().unwrap();
                assert_eq!(trusted.client_ip_of(peer, &map), trusted.client_ip(peer, &headers(case)), "{case:?}");
            }
        }
    }

    #[test]
    fn mapped_ipv4_is_matched_as_ipv4() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
        assert_eq!(trusted.client_ip("[::ffff:10.0.0.5]:1".parse().unwrap(), &h), ip("203.0.113.9"));
    }

    /// A WebSocket request's headers are read the same way as the pairs.
    #[test]
    fn a_websocket_requests_headers_name_the_client_too() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h: Headers = [("X-Forwarded-For", "198.51.100.1"), ("Forwarded", "for=203.0.113.9, for=10.2.2.2")].into_iter().collect();
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("203.0.113.9"));
        assert_eq!(proxies(&[]).client_ip(PROXY.parse().unwrap(), &h), ip("10.0.0.5"));
        let h: Headers = [("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.1.1.1")].into_iter().collect();
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &h), ip("203.0.113.9"));
        assert_eq!(trusted.client_ip(PROXY.parse().unwrap(), &Headers::new()), ip("10.0.0.5"));
    }
}
