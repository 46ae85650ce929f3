//! Plain HTTP on the same port, served by hyper: health, HTTP to rooms, the
//! call's ICE servers, the embedded pages and client, and clear answers for
//! requests that reach a WebSocket path without upgrading.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, UPGRADE, X_CONTENT_TYPE_OPTIONS};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_apps::call::{self, IceConfig};
use switchboard_room::RoomRequest;
use tracing::debug;

use switchboard_net::{PrefixedIo, Shutdown};

use crate::assets::{self, Asset};
use crate::clicks_edge::ClicksEdge;
use crate::registry::Registry;
use crate::routes::{ApiRoute, Route};

/// Largest request body passed to a room. 1 MiB: events, not uploads.
const MAX_ROOM_REQUEST_BODY: usize = 1 << 20;

/// Time a client has to send a request head. 30 s: patient with slow links,
/// and a connection that sends nothing does not hold a task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn serve_connection(
    io: PrefixedIo,
    peer: SocketAddr,
    registry: Registry,
    call_ice: Arc<IceConfig>,
    clicks: Arc<ClicksEdge>,
    mut shutdown: Shutdown,
) {
    let service = hyper::service::service_fn(move |req| {
        let registry = registry.clone();
        let call_ice = call_ice.clone();
        let clicks = clicks.clone();
        async move {
            let req = match clicks.route(req, peer).await {
                Ok(response) => return Ok::<_, Infallible>(response),
                Err(req) => req,
            };
            Ok::<_, Infallible>(route(req, registry, &call_ice).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = shutdown.wait() => {
            // Answers the request in flight, then closes; an idle keep-alive
            // connection closes at once instead of delaying the exit.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

async fn route(req: Request<Incoming>, registry: Registry, call_ice: &IceConfig) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if let Some(api) = ApiRoute::parse(&path) {
        return match api {
            Ok(api) => room_request(req, api, registry).await,
            Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
        };
    }
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/api/call/ice") => ice_servers(call_ice),
        (_, "/api/call/ice") => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ if Route::parse(&path).is_ok() => {
            // A WebSocket path reached without an upgrade (or as a second
            // request on a keep-alive connection, which cannot be upgraded).
            let mut response = text(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint; connect with a WebSocket client\n");
            response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
            response
        }
        (&Method::GET | &Method::HEAD, _) => match assets::lookup(&path) {
            Some(asset) => asset_response(asset, &req),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// An embedded file, or 304 when the browser's copy is current. Pages
/// change with the binary, so browsers must revalidate (`no-cache`); the
/// ETag makes that a bodiless 304.
fn asset_response(asset: Asset, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match asset {
        Asset::Redirect(to) => {
            let mut response = text(StatusCode::MOVED_PERMANENTLY, format!("moved to {to}\n"));
            if let Ok(location) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        Asset::File { body, content_type, etag } => {
            let fresh = req.headers().get(IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let mut response = if fresh {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r
            } else {
                let mut r = Response::new(Full::new(body));
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                r
            };
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            if let Ok(etag) = HeaderValue::from_str(&etag) {
                headers.insert(ETAG, etag);
            }
            response
        }
    }
}

/// `GET .../_stats` reports the room actor's counters without waking the
/// room; every other path is the room's own `on_request`.
async fn room_request(req: Request<Incoming>, api: ApiRoute, registry: Registry) -> Response<Full<Bytes>> {
    if api.kind.as_str() == switchboard_apps::clicks::KIND {
        // Clicks rooms take requests from the server only (recorded clicks
        // and link changes); the public links API is /api/links.
        return text(StatusCode::NOT_FOUND, "clicks rooms take no HTTP requests; use /api/links\n");
    }
    let Some(room) = registry.room(&api.kind, api.id) else {
        return text(StatusCode::NOT_FOUND, format!("unknown room kind {:?}\n", api.kind.as_str()));
    };
    if api.rest == "/_stats" && req.method() == Method::GET {
        return match room.stats().await {
            Some(s) => json(format!(r#"{{"connections":{},"wakeups":{},"awake":{}}}"#, s.connections, s.wakeups, s.awake)),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "room unavailable\n"),
        };
    }
    let method = req.method().to_string();
    let body = match Limited::new(req.into_body(), MAX_ROOM_REQUEST_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, format!("request bodies are limited to {MAX_ROOM_REQUEST_BODY} bytes\n")),
    };
    let request = RoomRequest { method, path: api.rest, body };
    match room.request(request).await {
        Ok(r) => {
            let mut response = Response::new(Full::new(r.body));
            *response.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
            response
        }
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "room unavailable\n"),
    }
}

/// The call's ICE servers with TURN credentials for a fresh random peer id,
/// as a call's `joined` carries them (docs/call.md), for clients that set
/// up their peer connections before they join. The credentials are new on
/// every request, so no cache may keep them.
fn ice_servers(config: &IceConfig) -> Response<Full<Bytes>> {
    let mut response = json(config.servers(&call::new_peer_id(), SystemTime::now()).to_json());
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
