//! Which targets a load run may hit: loopback only, unless told otherwise.

use std::net::{IpAddr, ToSocketAddrs};

/// Refuses URLs whose host does not resolve only to 127.0.0.0/8 or ::1.
pub(crate) fn check(url: &str, allow_remote: bool) -> Result<(), String> {
    let rest = url.strip_prefix("ws://").ok_or("only ws:// URLs are supported")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let with_port = if authority.contains(':') && !authority.ends_with(']') { authority.to_owned() } else { format!("{authority}:80") };
    let addrs: Vec<IpAddr> = with_port.to_socket_addrs().map_err(|e| format!("cannot resolve {authority}: {e}"))?.map(|a| a.ip()).collect();
    if addrs.is_empty() {
        return Err(format!("{authority} resolves to nothing"));
    }
    if !allow_remote && !addrs.iter().all(IpAddr::is_loopback) {
        return Err(format!("{authority} is not a loopback address; pass --allow-remote to load another machine"));
    }
    Ok(())
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
}
