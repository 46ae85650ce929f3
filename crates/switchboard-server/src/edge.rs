//! The edge's settings in one place: the limits against noisy clients, the
//! `Origin` allow-lists, plain HTTP's body timeout and the publish key.
//! Every default and its reason: docs/limits.md.

use std::time::Duration;

use crate::limits::Limits;
use crate::origin::OriginPolicy;
use crate::publish::PublishKey;

/// Settings of the server's edge.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Connections per IP and in all, handshake rate per IP, rooms.
    pub limits: Limits,
    /// Which pages may open WebSockets.
    pub origins: OriginPolicy,
    /// Time an HTTP request body has to arrive whole; a stalled or
    /// trickling body is answered 408 and its connection closed. Default
    /// 30 s, like the time for a request head: patient with slow links,
    /// and a client that stops sending does not hold a task forever.
    pub body_timeout: Duration,
    /// The publish API's bearer key; `None` turns the API off.
    pub publish_key: Option<PublishKey>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig { limits: Limits::default(), origins: OriginPolicy::default(), body_timeout: Duration::from_secs(30), publish_key: None }
    }
}
