//! Plain HTTP on the same port, served by hyper: health, readiness and
//! metrics, HTTP to rooms, the publish API, the edge's counters, the call's
//! ICE servers, the embedded pages and client, and clear answers for
//! requests that reach a WebSocket path without upgrading. Every request
//! gets an access log line.
//!
//! Every request of a keep-alive connection has the same head limit as the
//! first (`max_head_len`, which the listener applied to the first) and the
//! same time for its head; a body has `body_timeout` to arrive whole. HTTP
//! never starts a room that does not exist (`Registry::existing`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, UPGRADE, X_CONTENT_TYPE_OPTIONS};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_apps::call::{self, IceConfig};
use switchboard_room::{Headers, RoomName, RoomRequest};
use tracing::debug;

use switchboard_net::{PrefixedIo, Shutdown};

use crate::access_log;
use crate::assets::{self, Asset};
use crate::auth::{Denied, Gate, Presented};
use crate::clicks_edge::ClicksEdge;
use crate::cluster::Reach;
use crate::limits::EdgeStats;
use crate::ops::Ops;
use crate::publish::{self, PublishKey};
use crate::redirect;
use crate::registry::Registry;
use crate::routes::{ApiRoute, Route};

/// Largest request body passed to a room or published. 1 MiB: events,
/// not uploads.
pub(crate) const MAX_ROOM_REQUEST_BODY: usize = 1 << 20;

/// Smallest read buffer hyper accepts; `max_head_len` below it is raised.
const HYPER_MIN_BUF: usize = 8192;

/// What plain HTTP needs beyond the routes' own state.
pub(crate) struct HttpSettings {
    /// Longest request head, for every request of a connection.
    pub(crate) max_head_len: usize,
    /// Time a request body has to arrive whole.
    pub(crate) body_timeout: Duration,
    /// The publish API's key; `None`: the API is off.
    pub(crate) publish_key: Option<PublishKey>,
    /// The clicks app's routes: links API, dashboard tokens, redirects.
    pub(crate) clicks: Arc<ClicksEdge>,
    /// Who may use the HTTP API (`--auth-api`).
    pub(crate) auth: Arc<Gate>,
}

/// Time a client has to send a request head. 30 s: patient with slow links,
/// and a connection that sends nothing does not hold a task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_connection(
    io: PrefixedIo,
    peer: SocketAddr,
    registry: Registry,
    call_ice: Arc<IceConfig>,
    settings: Arc<HttpSettings>,
    stats: Arc<EdgeStats>,
    ops: Arc<Ops>,
    mut shutdown: Shutdown,
) {
    let max_head_len = settings.max_head_len.max(HYPER_MIN_BUF);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let settings = settings.clone();
        let (started, method, path) = (Instant::now(), req.method().clone(), req.uri().path().to_owned());
        // hyper moves each request's future into place whole, and the
        // future of every route together is several times a redirect's:
        // redirects, the busiest route, get a future of their own, and the
        // other routes a box.
        if path.starts_with("/l/") {
            return Either::Left(async move {
                let response = redirect::handle(&settings.clicks, req, peer).await;
                access_log::http(peer, &method, &path, response.status(), started.elapsed());
                Ok::<_, Infallible>(response)
            });
        }
        let registry = registry.clone();
        let call_ice = call_ice.clone();
        let stats = stats.clone();
        let ops = ops.clone();
        Either::Right(Box::pin(async move {
            let response = match settings.clicks.route(req, peer).await {
                Ok(response) => response,
                Err(req) => match admit_api(&req, peer, &settings.auth).await {
                    Err(denied) => text(StatusCode::from_u16(denied.status).unwrap_or(StatusCode::UNAUTHORIZED), format!("{}\n", denied.reason)),
                    Ok(()) => route(req, registry, &call_ice, &settings, &stats, &ops).await,
                },
            };
            access_log::http(peer, &method, &path, response.status(), started.elapsed());
            Ok::<_, Infallible>(response)
        }))
    });
    // The read buffer bounds a request head (hyper answers 431 beyond it);
    // bodies stream through it.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(max_head_len)
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

/// The HTTP API's identity check (`--auth-api`): room requests, the call's
/// ICE servers and the edge's stats. Pages, the client and health checks
/// stay public; the publish API has its own key.
async fn admit_api(req: &Request<Incoming>, peer: SocketAddr, auth: &Gate) -> Result<(), Denied> {
    if auth.all_public() {
        return Ok(());
    }
    let path = req.uri().path();
    let room = match ApiRoute::parse(path) {
        Some(Ok(api)) if api.rest == "/publish" => return Ok(()),
        Some(Ok(api)) => Some((api.kind, api.id)),
        Some(Err(_)) => return Ok(()),
        None if path == "/api/call/ice" || path == "/api/stats" => None,
        None => return Ok(()),
    };
    let headers: Headers = req.headers().iter().map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes()))).collect();
    let target = req.uri().path_and_query().map_or(path, |p| p.as_str());
    let presented = Presented { peer, headers: &headers, target };
    auth.admit_api(room.as_ref().map(|(kind, id)| (kind.as_str(), id.as_str())), &presented).await.map(drop)
}

async fn route(
    req: Request<Incoming>,
    registry: Registry,
    call_ice: &IceConfig,
    settings: &HttpSettings,
    stats: &EdgeStats,
    ops: &Ops,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if let Some(api) = ApiRoute::parse(&path) {
        return match api {
            Ok(api) if api.rest == "/publish" => publish::one(req, api, &registry, settings).await,
            Ok(api) => room_request(req, api, registry, settings).await,
            Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
        };
    }
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/api/stats") => json(stats.to_json()),
        (_, "/api/publish") => publish::batch(req, &registry, settings).await,
        (&Method::GET | &Method::HEAD, "/readyz") => ops.readyz_response().await,
        (&Method::GET | &Method::HEAD, "/metrics") => ops.metrics_response(),
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
/// room (404 when no actor runs: nothing is started to answer it); every
/// other path is the room's own `on_request`, for a room that runs or has
/// stored data.
async fn room_request(req: Request<Incoming>, api: ApiRoute, registry: Registry, settings: &HttpSettings) -> Response<Full<Bytes>> {
    if api.kind.as_str() == switchboard_apps::clicks::KIND {
        // Clicks rooms take requests from the server only (recorded clicks
        // and link changes); the public links API is /api/links.
        return text(StatusCode::NOT_FOUND, "clicks rooms take no HTTP requests; use /api/links\n");
    }
    if !registry.has_kind(&api.kind) {
        return text(StatusCode::NOT_FOUND, format!("unknown room kind {:?}\n", api.kind.as_str()));
    }
    if api.rest == "/_stats" && req.method() == Method::GET {
        // In cluster mode the room runs on its owner, wherever that is.
        let stats = match registry.cluster() {
            Some(cluster) => match cluster.room_stats(&RoomName::new(api.kind, api.id)).await {
                Ok(stats) => stats,
                Err(why) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("room unavailable: {why}\n")),
            },
            None => match registry.live_room(&api.kind, api.id) {
                Some(room) => room.stats().await,
                None => None,
            },
        };
        return match stats {
            Some(s) => json(format!(r#"{{"connections":{},"wakeups":{},"awake":{}}}"#, s.connections, s.wakeups, s.awake)),
            None => text(StatusCode::NOT_FOUND, "no such room is running\n"),
        };
    }
    let method = req.method().to_string();
    let body = match read_body(req.into_body(), MAX_ROOM_REQUEST_BODY, settings.body_timeout).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let request = RoomRequest { method, path: api.rest, body };
    if let Some(cluster) = registry.cluster() {
        let answer = cluster.room_request(&RoomName::new(api.kind, api.id), Reach::Existing, request).await;
        return crate::cluster::http_answer(answer);
    }
    let Some(room) = registry.existing(&api.kind, api.id) else { return text(StatusCode::NOT_FOUND, "no such room\n") };
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

/// Reads a request body whole, bounded in size (413) and time (408); a
/// body that breaks HTTP's framing (bad chunk sizes) is a 400. A refusal
/// closes the connection: the rest of the body is not read.
pub(crate) async fn read_body(body: Incoming, limit: usize, deadline: Duration) -> Result<Bytes, Box<Response<Full<Bytes>>>> {
    let refused = |status, message: String| {
        let mut response = text(status, message);
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        Box::new(response)
    };
    let too_large = || refused(StatusCode::PAYLOAD_TOO_LARGE, format!("request bodies are limited to {limit} bytes\n"));
    // An announced length beyond the limit is refused before any of it is read.
    if usize::try_from(hyper::body::Body::size_hint(&body).lower()).map_or(true, |announced| announced > limit) {
        return Err(too_large());
    }
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            debug!(error = %e, "bad request body");
            Err(refused(StatusCode::BAD_REQUEST, "malformed request body\n".into()))
        }
        Err(_) => Err(refused(StatusCode::REQUEST_TIMEOUT, format!("request body not received within {} s\n", deadline.as_secs_f64()))),
    }
}

pub(crate) fn json(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
