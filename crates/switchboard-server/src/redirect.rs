//! `GET /l/{slug}`: sends the visitor on with a 302 and records the click.
//!
//! The click (time, slug, country, city, coordinates, referrer host; never
//! the IP) is queued for the account's clicks room and the answer goes out
//! at once: no dashboard and no disk is waited for. `Cache-Control:
//! private, max-age=0` keeps browsers and shared caches from answering the
//! next click themselves, so every click reaches the server. `HEAD`
//! answers the same without counting a click (link checkers and previews
//! use it); other methods get 405.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION, REFERER};
use hyper::{Method, Request, Response, StatusCode};
use switchboard_apps::clicks::Click;

use crate::accounts::now_ms;
use crate::clicks_edge::ClicksEdge;
use crate::links::is_slug;

/// Longest host name (RFC 1035); a longer referrer host is not kept.
const MAX_HOST_LEN: usize = 253;

const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Link not found</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
<body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem\">\
<h1>Link not found</h1><p>This short link does not exist, or it was deleted.</p></body></html>\n";

/// Answers `req`, whose path starts with `/l/`.
pub(crate) async fn handle(edge: &ClicksEdge, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let slug = req.uri().path().strip_prefix("/l/").unwrap_or_default();
    let counted = match *req.method() {
        Method::GET => true,
        Method::HEAD => false,
        _ => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let Some(link) = is_slug(slug).then(|| edge.links.get(slug)).flatten() else { return not_found() };
    let ip = edge.trusted_proxies.client_ip_of(peer, req.headers());
    let geo = edge.geo.as_ref().and_then(|db| db.lookup(ip)).unwrap_or_default();
    let target = link.target(geo.country.as_deref());
    let Ok(location) = HeaderValue::from_str(target) else { return not_found() };
    if counted {
        let referrer = req.headers().get(REFERER).and_then(|v| v.to_str().ok()).and_then(referrer_host);
        let click =
            Click { time: now_ms(), slug: link.info.slug.clone(), country: geo.country, city: geo.city, lat: geo.latitude, lon: geo.longitude, referrer };
        edge.recorder.record(link.clone(), click).await;
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=0"));
    response
}

/// The host of a `Referer` URL, lower-case, without user info or port:
/// the page's site, not the page.
fn referrer_host(referer: &str) -> Option<String> {
    let (_, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') { v6.split(']').next()? } else { host_port.split(':').next()? };
    let valid = !host.is_empty() && host.len() <= MAX_HOST_LEN && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    valid.then(|| host.to_ascii_lowercase())
}

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(NOT_FOUND_PAGE.as_bytes())));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=0"));
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::referrer_host;

    #[test]
    fn only_the_referrers_host_is_kept() {
        assert_eq!(referrer_host("https://News.Example.com:8443/a/b?q=secret#x").as_deref(), Some("news.example.com"));
        assert_eq!(referrer_host("https://user:pw@example.org/").as_deref(), Some("example.org"));
        assert_eq!(referrer_host("http://[2001:db8::1]:80/").as_deref(), Some("2001:db8::1"));
        assert_eq!(referrer_host("not a url"), None);
        assert_eq!(referrer_host("https:///path"), None);
    }
}
