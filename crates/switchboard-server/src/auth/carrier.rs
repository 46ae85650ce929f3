//! Where a token travels: `Authorization: Bearer`, the
//! `Sec-WebSocket-Protocol` header (browsers cannot set headers on a
//! WebSocket, but they can offer protocols), a cookie, or `?token=`.
//! Also the redaction that keeps a query-string token out of logs.

use super::header_values;
use switchboard_room::Headers;

/// The query parameter a token may come in.
pub const TOKEN_QUERY_PARAM: &str = "token";

/// A token offered as a subprotocol: `switchboard.token.<jwt>`, offered
/// alongside the protocol the client speaks. Never selected.
pub const TOKEN_PROTOCOL_PREFIX: &str = "switchboard.token.";

/// The bare marker a client may also offer: selected when the kind speaks
/// none of the client's other protocols, so the handshake answers with a
/// protocol the client offered that is not the token.
pub const TOKEN_PROTOCOL: &str = "switchboard.token";

/// A token found in a request, and whether it came as a subprotocol.
pub(crate) struct Carried<'a> {
    pub(crate) token: &'a str,
    pub(crate) via_protocol: bool,
}

/// The request's token, looked for in a fixed order: `Authorization`, the
/// subprotocol, the cookie, the query. `None` when there is none.
pub(crate) fn find<'a>(headers: &'a Headers, target: &'a str, cookie: &str) -> Option<Carried<'a>> {
    let bearer = header_values(headers, "authorization").find_map(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    if let Some(token) = bearer {
        return Some(Carried { token, via_protocol: false });
    }
    let protocol = header_values(headers, "sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX));
    if let Some(token) = protocol {
        return Some(Carried { token, via_protocol: true });
    }
    let from_cookie = header_values(headers, "cookie").flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name.trim() == cookie).then(|| value.trim().trim_matches('"'))
    });
    if let Some(token) = from_cookie {
        return Some(Carried { token, via_protocol: false });
    }
    query_token(target).map(|token| Carried { token, via_protocol: false })
}

fn query_token(target: &str) -> Option<&str> {
    let query = target.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        // JWTs are base64url and dots: nothing to percent-decode.
        (name == TOKEN_QUERY_PARAM).then_some(value)
    })
}

/// The request target with the value of any `token` query parameter
/// replaced by `REDACTED`, for logs.
pub fn redact_target(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else { return target.to_owned() };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name == TOKEN_QUERY_PARAM => format!("{name}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The query without the `token` parameter, as the room is given it (a
/// room has no use for the raw token, and rooms may log their queries).
pub(crate) fn query_without_token(query: &str) -> String {
    query.split('&').filter(|pair| pair.split_once('=').map_or(*pair, |(n, _)| n) != TOKEN_QUERY_PARAM).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Headers {
        list.iter().copied().collect()
    }

    #[test]
    fn every_carrier_is_found_in_order() {
        let h = headers(&[("authorization", "Bearer aaa.bbb.ccc"), ("cookie", "switchboard_token=x")]);
        assert_eq!(find(&h, "/rooms/echo/a?token=q", "switchboard_token").unwrap().token, "aaa.bbb.ccc");
        let h = headers(&[("sec-websocket-protocol", "json, switchboard.token.p.q.r")]);
        let carried = find(&h, "/rooms/echo/a", "switchboard_token").unwrap();
        assert_eq!((carried.token, carried.via_protocol), ("p.q.r", true));
        let h = headers(&[("cookie", "theme=dark; sb=\"c.d.e\"")]);
        assert_eq!(find(&h, "/rooms/echo/a", "sb").unwrap().token, "c.d.e");
        assert_eq!(find(&Headers::new(), "/rooms/echo/a?x=1&token=t.u.v", "sb").unwrap().token, "t.u.v");
        assert!(find(&headers(&[("authorization", "Basic Zm9v")]), "/rooms/echo/a?tokens=1", "sb").is_none());
    }

    #[test]
    fn a_query_token_is_redacted_for_logs_and_dropped_for_rooms() {
        assert_eq!(redact_target("/rooms/echo/a?x=1&token=secret.jwt.sig"), "/rooms/echo/a?x=1&token=REDACTED");
        assert_eq!(redact_target("/rooms/echo/a"), "/rooms/echo/a");
        assert_eq!(query_without_token("x=1&token=s.j.s&y=2"), "x=1&y=2");
        assert_eq!(query_without_token("token=s.j.s"), "");
    }
}
