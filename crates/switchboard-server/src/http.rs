//! Plain HTTP on the same port, served by hyper: health, and clear answers
//! for requests that reach a WebSocket path without upgrading.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tracing::debug;

use switchboard_net::PrefixedIo;

use crate::routes::Route;

pub(crate) async fn serve_connection(io: PrefixedIo, peer: SocketAddr) {
    let service = hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(route(req)) });
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service).await {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

fn route(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/") => text(
            StatusCode::OK,
            "switchboard\n\nWebSocket rooms: ws://HOST/rooms/{kind}/{id}\nTry: new WebSocket('ws://' + location.host + '/rooms/echo/x')\n",
        ),
        _ if Route::parse(path).is_ok() => {
            // A WebSocket path reached without an upgrade (or as a second
            // request on a keep-alive connection, which cannot be upgraded).
            let mut response = text(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint; connect with a WebSocket client\n");
            response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
