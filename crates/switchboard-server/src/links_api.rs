//! The links API (JSON), authenticated with `Authorization: Bearer <API
//! key>`: `POST /api/links` creates a link, `GET /api/links` lists the
//! account's links with their click totals, `GET /api/links/{slug}` adds
//! totals by country and city and the clicks per minute of the last 24 h,
//! `DELETE /api/links/{slug}` deletes it. Another account's slug is 404,
//! exactly like a slug that does not exist. Errors are `{"error": "..."}`.
//! Counts come from the account's clicks room; in cluster mode, a link
//! call while NATS is unreachable is `503`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, HOST, LOCATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_apps::clicks::KIND;
use switchboard_room::{RoomId, RoomKind, RoomName, RoomRequest};

use crate::auth::MintError;
use crate::clicks_edge::{json_error, json_response, ClicksEdge};
use crate::cluster::{Reach, RoomAnswer};
use crate::links::{Link, LinkError, NewLink};

/// Largest `POST /api/links` body: a link with every country's target
/// fits with room to spare.
const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn handle(edge: &ClicksEdge, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let slug = path.strip_prefix("/api/links").unwrap_or_default().strip_prefix('/').map(str::to_owned);
    let allowed = if slug.is_some() { "GET, DELETE" } else { "GET, POST" };
    let method = req.method().clone();
    let known = matches!((&method, &slug), (&Method::GET | &Method::POST, None) | (&Method::GET | &Method::DELETE, Some(_)));
    if !known {
        let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, format!("use {allowed}"));
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
        return response;
    }
    let account = match authenticate(edge, &req).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let base = short_url_base(edge, &req, peer);
    match (method, slug) {
        (Method::POST, None) => create(edge, req, &account, &base).await,
        (Method::GET, None) => list(edge, &account, &base).await,
        (Method::GET, Some(slug)) => show(edge, &account, &slug, &base).await,
        (_, Some(slug)) => delete(edge, &account, &slug).await,
        _ => unreachable!("methods were checked above"),
    }
}

/// How long a dashboard token from `POST /api/token` is valid: long enough
/// for a working session, short enough that a leaked one expires soon; the
/// page renews it with its API key.
pub const DASHBOARD_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// `POST /api/token`: a dashboard token for the `Bearer` API key's account
/// (`{"token", "account", "expires_in"}`), signed with the keys the edge's
/// `token` mode verifies with, so it opens `clicks/{account}` and no other
/// account's room.
pub(crate) async fn token(edge: &ClicksEdge, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let account = match authenticate(edge, &req).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let ttl = DASHBOARD_TOKEN_TTL;
    // In another mode (a gateway names the account) a token would open nothing.
    let Some(keys) = &edge.tokens else {
        return json_error(StatusCode::NOT_FOUND, "this server issues no dashboard tokens: the clicks kind is not in token mode");
    };
    let token = match keys.mint(&account, ttl) {
        Ok(token) => token,
        // Public keys only: the tokens come from the operator's issuer.
        Err(e @ MintError::NoSecret) => return json_error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    json_response(StatusCode::OK, json!({ "token": token, "account": account, "expires_in": ttl.as_secs() }).to_string())
}

/// The account of the request's `Bearer` API key, or the 401 to answer.
async fn authenticate(edge: &ClicksEdge, req: &Request<Incoming>) -> Result<String, Response<Full<Bytes>>> {
    let unauthorized = |why: &str| {
        let mut response = json_error(StatusCode::UNAUTHORIZED, why);
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    };
    let key = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_owned());
    let Some(key) = key else { return Err(unauthorized("send an API key: Authorization: Bearer <key>")) };
    match edge.accounts.resolve_api_key(&key).await {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(unauthorized("unknown or revoked API key")),
        Err(e) => Err(json_error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// `http(s)://host` for short URLs: the request's `Host`, with `https`
/// when a trusted proxy says the client used it.
fn short_url_base(edge: &ClicksEdge, req: &Request<Incoming>, peer: SocketAddr) -> String {
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let https = edge.trusted_proxies.trusts(peer.ip()) && req.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn link_json(link: &Link, base: &str) -> Value {
    let info = &link.info;
    json!({ "slug": info.slug, "url": info.url, "geo": info.geo, "short_url": format!("{base}/l/{}", info.slug), "created": info.created })
}

fn link_error(e: LinkError) -> Response<Full<Bytes>> {
    let status = match &e {
        LinkError::Invalid(_) => StatusCode::BAD_REQUEST,
        LinkError::Taken(_) => StatusCode::CONFLICT,
        LinkError::NotFound => StatusCode::NOT_FOUND,
        LinkError::TooMany => StatusCode::FORBIDDEN,
        LinkError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        LinkError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_error(status, e)
}

async fn create(edge: &ClicksEdge, req: Request<Incoming>, account: &str, base: &str) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, format!("request bodies are limited to {MAX_BODY} bytes")),
    };
    let new: NewLink = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"url\": \"https://...\", \"slug\"?: \"...\", \"geo\"?: {{\"DE\": \"https://...\"}}}}: {e}"),
            )
        }
    };
    let link = match edge.links.create(account, &new).await {
        Ok(link) => link,
        Err(e) => return link_error(e),
    };
    tell_room(edge, account, "POST", "/links-changed".into()).await;
    let mut response = json_response(StatusCode::CREATED, link_json(&link, base).to_string());
    if let Ok(location) = HeaderValue::from_str(&format!("/api/links/{}", link.info.slug)) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

async fn list(edge: &ClicksEdge, account: &str, base: &str) -> Response<Full<Bytes>> {
    let links = edge.links.of_account(account);
    let totals = match ask_room(edge, account, "GET", "/totals".into()).await {
        Some(Value::Object(totals)) => totals,
        _ => return json_error(StatusCode::SERVICE_UNAVAILABLE, "the account's click counts are unavailable, try again"),
    };
    let links: Vec<Value> = links
        .iter()
        .map(|link| {
            let mut value = link_json(link, base);
            value["clicks"] = totals.get(&link.info.slug).cloned().unwrap_or(json!(0));
            value
        })
        .collect();
    json_response(StatusCode::OK, json!({ "links": links }).to_string())
}

async fn show(edge: &ClicksEdge, account: &str, slug: &str, base: &str) -> Response<Full<Bytes>> {
    let Some(link) = edge.links.get(slug).filter(|l| l.account == account) else { return link_error(LinkError::NotFound) };
    let Some(Value::Object(report)) = ask_room(edge, account, "GET", format!("/links/{slug}")).await else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "the link's click counts are unavailable, try again");
    };
    let mut value = link_json(&link, base);
    value["clicks"] = report.get("total").cloned().unwrap_or(json!(0));
    for field in ["countries", "cities", "series"] {
        value[field] = report.get(field).cloned().unwrap_or(Value::Null);
    }
    json_response(StatusCode::OK, value.to_string())
}

async fn delete(edge: &ClicksEdge, account: &str, slug: &str) -> Response<Full<Bytes>> {
    if let Err(e) = edge.links.delete(account, slug).await {
        return link_error(e);
    }
    tell_room(edge, account, "DELETE", format!("/links/{slug}")).await;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The account's clicks room's JSON answer to an internal request.
async fn ask_room(edge: &ClicksEdge, account: &str, method: &str, path: String) -> Option<Value> {
    let kind = RoomKind::parse(KIND)?;
    let request = RoomRequest { method: method.to_owned(), path, body: Bytes::new() };
    // In cluster mode the account's room runs on its owner, wherever that is.
    let (status, body) = match edge.registry.cluster() {
        Some(cluster) => match cluster.room_request(&RoomName::new(kind, RoomId::parse(account)?), Reach::Started, request).await {
            RoomAnswer::Response { status, body, .. } => (status, body),
            _ => return None,
        },
        None => {
            let response = edge.registry.owned_room(&kind, RoomId::parse(account)?).ok()?.request(request).await.ok()?;
            (response.status, response.body)
        }
    };
    (status == 200).then(|| serde_json::from_slice(&body).ok()).flatten()
}

/// Tells the account's clicks room that its links changed, so dashboards
/// show it; a room that cannot be reached shows it at the next snapshot.
async fn tell_room(edge: &ClicksEdge, account: &str, method: &str, path: String) {
    let _ = ask_room(edge, account, method, path).await;
}
