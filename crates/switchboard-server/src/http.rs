//! Plain HTTP on the same port, served by hyper: health, HTTP to rooms, and
//! clear answers for requests that reach a WebSocket path without upgrading.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_room::{RoomEvent, RoomRequest};
use tokio::sync::oneshot;
use tracing::debug;

use switchboard_net::PrefixedIo;

use crate::registry::Registry;
use crate::routes::{ApiRoute, Route};

/// Largest request body passed to a room. 1 MiB: events, not uploads.
const MAX_ROOM_REQUEST_BODY: usize = 1 << 20;

pub(crate) async fn serve_connection(io: PrefixedIo, peer: SocketAddr, registry: Registry) {
    let service = hyper::service::service_fn(move |req| {
        let registry = registry.clone();
        async move { Ok::<_, Infallible>(route(req, registry).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service).await {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

async fn route(req: Request<Incoming>, registry: Registry) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if let Some(api) = ApiRoute::parse(&path) {
        return match api {
            Ok(api) => room_request(req, api, registry).await,
            Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
        };
    }
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/") => text(
            StatusCode::OK,
            "switchboard\n\nWebSocket rooms: ws://HOST/rooms/{kind}/{id} (kinds: echo, broadcast)\nTry: new WebSocket('ws://' + location.host + '/rooms/echo/x')\n",
        ),
        _ if Route::parse(&path).is_ok() => {
            // A WebSocket path reached without an upgrade (or as a second
            // request on a keep-alive connection, which cannot be upgraded).
            let mut response = text(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint; connect with a WebSocket client\n");
            response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `GET .../_stats` reports the room actor's counters without waking the
/// room; every other path is the room's own `on_request`.
async fn room_request(req: Request<Incoming>, api: ApiRoute, registry: Registry) -> Response<Full<Bytes>> {
    let Some(room) = registry.room(&api.kind, api.id).await else {
        return text(StatusCode::NOT_FOUND, format!("unknown room kind {:?}\n", api.kind));
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
    let (reply, response) = oneshot::channel();
    let request = RoomRequest { method, path: api.rest, body };
    if room.send(RoomEvent::Request { request, reply }).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "room unavailable\n");
    }
    match response.await {
        Ok(r) => {
            let mut response = Response::new(Full::new(r.body));
            *response.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
            response
        }
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "room unavailable\n"),
    }
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
