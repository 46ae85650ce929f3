//! The clicks app's HTTP side: what the links API and the redirects share
//! (the account and link tables, the click recorder, where visitors are),
//! and which of the two a path goes to.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::accounts::Accounts;
use crate::auth::JwtKeys;
use crate::click_recorder::ClickRecorder;
use crate::client_ip::TrustedProxies;
use crate::geo::GeoDb;
use crate::links::Links;
use crate::registry::Registry;
use crate::{links_api, redirect};

/// Everything the clicks routes need.
pub(crate) struct ClicksEdge {
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) links: Arc<Links>,
    /// The keys the edge verifies `token` mode with: `POST /api/token`
    /// mints with them (none when the clicks kind is in another mode).
    pub(crate) tokens: Option<Arc<JwtKeys>>,
    pub(crate) recorder: ClickRecorder,
    pub(crate) registry: Registry,
    pub(crate) geo: Option<Arc<GeoDb>>,
    pub(crate) trusted_proxies: TrustedProxies,
}

impl ClicksEdge {
    /// The response for `req` when its path is one of the clicks routes
    /// (`/l/...`, `/api/links...`, `/api/token`); gives the request back otherwise.
    pub(crate) async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Full<Bytes>>, Request<Incoming>> {
        let path = req.uri().path();
        if path.starts_with("/l/") {
            return Ok(redirect::handle(self, req, peer).await);
        }
        if path == "/api/token" {
            return Ok(links_api::token(self, req).await);
        }
        if path == "/api/links" || path.starts_with("/api/links/") {
            return Ok(links_api::handle(self, req, peer).await);
        }
        Err(req)
    }
}

/// A JSON response that no cache keeps.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `{"error": "..."}` with `status`.
pub(crate) fn json_error(status: StatusCode, error: impl std::fmt::Display) -> Response<Full<Bytes>> {
    json_response(status, serde_json::json!({ "error": error.to_string() }).to_string())
}
