//! The operator's HTTP endpoints, `/metrics` and `/readyz`, and what they
//! share with the rest of the server.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::metrics::{self, Metrics};
use crate::readiness::Readiness;

/// Metrics and readiness, one per running server.
pub(crate) struct Ops {
    pub(crate) metrics: Metrics,
    pub(crate) readiness: Arc<Readiness>,
}

impl Ops {
    /// `GET /metrics`: every metric, rendered now.
    pub(crate) fn metrics_response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
        no_store(response)
    }

    /// `GET /readyz`: 200 `ready`, or 503 with the reason.
    pub(crate) async fn readyz_response(&self) -> Response<Full<Bytes>> {
        let (status, body) = match self.readiness.check().await {
            Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
            Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        no_store(response)
    }
}

fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
