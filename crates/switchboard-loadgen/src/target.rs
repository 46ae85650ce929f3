//! Which targets a load run may hit (loopback only, unless told otherwise),
//! and which local addresses it connects from.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

/// Refuses URLs whose host does not resolve only to 127.0.0.0/8 or ::1.
pub(crate) fn check(url: &str, allow_remote: bool) -> Result<(), String> {
    let (authority, addrs) = resolve(url)?;
    if !allow_remote && !addrs.iter().all(IpAddr::is_loopback) {
        return Err(format!("{authority} is not a loopback address; pass --allow-remote to load another machine"));
    }
    Ok(())
}

/// The URL's host:port and the addresses it resolves to (at least one).
fn resolve(url: &str) -> Result<(&str, Vec<IpAddr>), String> {
    let (rest, default_port) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (rest, 80),
        (_, Some(rest)) => (rest, 443),
        _ => return Err("only ws:// and wss:// URLs are supported".into()),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let with_port = if authority.contains(':') && !authority.ends_with(']') { authority.to_owned() } else { format!("{authority}:{default_port}") };
    let addrs: Vec<IpAddr> = with_port.to_socket_addrs().map_err(|e| format!("cannot resolve {authority}: {e}"))?.map(|a| a.ip()).collect();
    if addrs.is_empty() {
        return Err(format!("{authority} resolves to nothing"));
    }
    Ok((authority, addrs))
}

/// Local addresses to connect from, taken in turn. A connection is known by
/// its address pair, so each source address brings its own set of ephemeral
/// ports: 16 of them hold 16 times as many connections (or TIME_WAIT
/// leftovers of closed ones) as the one address the system would pick.
pub(crate) struct Sources(Vec<IpAddr>);

impl Sources {
    /// 127.0.0.1 … 127.0.0.`count` when the URL's host has an IPv4 loopback
    /// address (all of 127.0.0.0/8 reaches the loopback interface, with no
    /// setup); otherwise none, and the system picks as usual.
    pub(crate) fn for_url(url: &str, count: u8) -> Result<Sources, String> {
        let (_, addrs) = resolve(url)?;
        let v4_loopback = addrs.iter().any(|a| matches!(a, IpAddr::V4(v4) if v4.is_loopback()));
        let count = if v4_loopback { count } else { 0 };
        Ok(Sources((1..=count).map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, k))).collect()))
    }

    /// The source address of the `i`-th connection; `None`: the system's choice.
    pub(crate) fn nth(&self, i: usize) -> Option<IpAddr> {
        (!self.0.is_empty()).then(|| self.0[i % self.0.len()])
    }

    /// How many connections can be open at once before one source address
    /// runs out of ephemeral ports (`None` when the system picks).
    pub(crate) fn port_capacity(&self) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.len() as u64 * ephemeral_ports())
    }

    /// `127.0.0.1-127.0.0.16`, for the report.
    pub(crate) fn describe(&self) -> String {
        match (self.0.first(), self.0.last()) {
            (Some(first), Some(last)) if first == last => first.to_string(),
            (Some(first), Some(last)) => format!("{first}-{last}"),
            _ => "chosen by the system".to_owned(),
        }
    }
}

/// Size of the ephemeral port range (/proc/sys/net/ipv4/ip_local_port_range),
/// or Linux's default range (32768-60999) when it cannot be read.
fn ephemeral_ports() -> u64 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range.split_whitespace().map(|v| v.parse::<u64>().ok());
    match (bounds.next().flatten(), bounds.next().flatten()) {
        (Some(low), Some(high)) if high >= low => high - low + 1,
        _ => 60999 - 32768 + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_the_flag() {
        assert!(check("ws://127.0.0.1:8080/rooms/echo/x", false).is_ok());
        assert!(check("ws://127.0.0.9:1/", false).is_ok());
        assert!(check("ws://[::1]:8080/", false).is_ok());
        assert!(check("ws://10.0.0.1:8080/", false).is_err());
        assert!(check("ws://10.0.0.1:8080/", true).is_ok());
        assert!(check("http://127.0.0.1/", false).is_err());
    }

    #[test]
    fn rotates_over_loopback_sources_only_for_an_ipv4_loopback_target() {
        let sources = Sources::for_url("ws://127.0.0.1:8080/rooms/echo/x", 3).unwrap();
        let nth: Vec<_> = (0..4).map(|i| sources.nth(i).unwrap().to_string()).collect();
        assert_eq!(nth, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        assert_eq!(sources.describe(), "127.0.0.1-127.0.0.3");
        assert!(sources.port_capacity().unwrap() >= 3);
        let remote = Sources::for_url("ws://10.0.0.1:8080/", 3).unwrap();
        assert_eq!((remote.nth(0), remote.port_capacity(), remote.describe().as_str()), (None, None, "chosen by the system"));
        assert_eq!(Sources::for_url("ws://[::1]:8080/", 3).unwrap().nth(0), None);
    }
}
