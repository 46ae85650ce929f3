//! `trusted-header` mode, the gateway pattern: a gateway in front (nginx
//! with `auth_request`, an API gateway) authenticates the client and names
//! it in a header. The header is believed only when the TCP peer is a
//! trusted proxy; anyone else could write anything there, so a request from
//! any other address is refused, header or not.

use crate::client_ip::TrustedProxies;

use super::{header_values, valid_subject, Admitted, Denied, Presented};
use switchboard_room::Identity;

pub(crate) fn admit(trusted: &TrustedProxies, header: &str, request: &Presented<'_>) -> Result<Admitted, Denied> {
    if !trusted.trusts(request.peer.ip()) {
        return Err(Denied::unauthorized("sign in through the gateway: identities are accepted only from trusted proxies"));
    }
    let mut values = header_values(request.headers, header);
    let subject = match (values.next(), values.next()) {
        (Some(value), None) => value.trim(),
        (None, _) => return Err(Denied::unauthorized("the gateway sent no identity")),
        // Two values: something upstream appended instead of replacing.
        (Some(_), Some(_)) => return Err(Denied::unauthorized("the gateway sent more than one identity")),
    };
    if !valid_subject(subject) {
        return Err(Denied::unauthorized("the gateway's identity is not a valid subject"));
    }
    Ok(Admitted { identity: Some(Identity { subject: subject.to_owned(), claims: Vec::new() }), expires: None, via_protocol: false, token: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_room::Headers;

    fn check(peer: &str, headers: &[(&str, &str)]) -> Result<String, Denied> {
        let trusted = TrustedProxies::new(vec!["127.0.0.2/32".parse().unwrap()]);
        let headers: Headers = headers.iter().copied().collect();
        let request = Presented { peer: peer.parse().unwrap(), headers: &headers, target: "/rooms/clicks/acme" };
        admit(&trusted, "x-switchboard-account", &request).map(|a| a.identity.unwrap().subject)
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        assert_eq!(check("127.0.0.2:5000", &[("x-switchboard-account", "acme")]), Ok("acme".into()));
        assert_eq!(check("127.0.0.1:5000", &[("x-switchboard-account", "acme")]).unwrap_err().status, 401);
        assert_eq!(check("127.0.0.2:5000", &[]).unwrap_err().status, 401);
        assert_eq!(check("127.0.0.2:5000", &[("x-switchboard-account", "a"), ("x-switchboard-account", "b")]).unwrap_err().status, 401);
        assert_eq!(check("127.0.0.2:5000", &[("x-switchboard-account", "")]).unwrap_err().status, 401);
    }
}
