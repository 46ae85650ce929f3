//! The `serve` flags of the server's edge: limits, `Origin` allow-lists,
//! the HTTP body timeout and the publish key (docs/limits.md,
//! docs/publish.md).

use std::path::PathBuf;
use std::time::Duration;

use switchboard_server::{EdgeConfig, Limits, OriginPolicy, PublishKey};

use crate::duration;

/// Limits against noisy clients, origins, publish API.
#[derive(clap::Args)]
pub struct EdgeArgs {
    /// A page origin allowed to open WebSockets to every room kind
    /// (`https://app.example`, `https://*.example.com`, `*`); repeatable.
    /// Replaces the default (localhost pages); the server's own origin is
    /// always allowed.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_parser = origin)]
    allowed_origins: Vec<String>,
    /// An origin allowed for one room kind, `KIND=ORIGIN`; repeatable. A
    /// kind with entries here uses only these (and its own origin).
    #[arg(long = "allowed-origin-kind", value_name = "KIND=ORIGIN", value_parser = kind_origin)]
    allowed_origins_kind: Vec<(String, String)>,
    /// Refuse WebSocket upgrades without an `Origin` header (non-browser
    /// clients then have to send one).
    #[arg(long)]
    require_origin: bool,
    /// Open WebSocket connections in all (503 beyond); 0: no limit.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Open WebSocket connections per client IP, IPv6 per /64 (429
    /// beyond); 0: no limit.
    #[arg(long, default_value_t = Limits::default().max_connections_per_ip)]
    max_connections_per_ip: usize,
    /// WebSocket handshakes per second per client IP, sustained (429 with
    /// Retry-After beyond); 0: no limit.
    #[arg(long, default_value_t = Limits::default().handshakes_per_second_per_ip)]
    handshake_rate_per_ip: u32,
    /// WebSocket handshakes one client IP may make in a burst.
    #[arg(long, default_value_t = Limits::default().handshake_burst_per_ip, value_parser = clap::value_parser!(u32).range(1..))]
    handshake_burst_per_ip: u32,
    /// Live rooms on this server (a connection that would start one more
    /// gets 503); 0: no limit.
    #[arg(long, default_value_t = Limits::default().max_rooms)]
    max_rooms: usize,
    /// Time an HTTP request body has to arrive whole (408 after it).
    #[arg(long, default_value = "30s", value_parser = duration::parse_duration)]
    http_body_timeout: Duration,
    /// File holding the publish API's bearer key (white space around it is
    /// ignored); without it the publish API is off. The key is never logged.
    #[arg(long, value_name = "PATH")]
    publish_key_file: Option<PathBuf>,
}

fn origin(text: &str) -> Result<String, String> {
    OriginPolicy::check_entry(text).map(|()| text.to_owned()).map_err(|e| e.to_string())
}

fn kind_origin(text: &str) -> Result<(String, String), String> {
    let (kind, entry) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected KIND=ORIGIN, e.g. chat=https://app.example"))?;
    if !switchboard_server::is_kind_name(kind) {
        return Err(format!("{kind:?} is not a room kind name (1-32 of a-z 0-9 - _)"));
    }
    Ok((kind.to_owned(), origin(entry)?))
}

impl EdgeArgs {
    /// The edge's settings, with the publish key read from its file; the
    /// error names the file and why, never its content.
    pub fn config(&self) -> Result<EdgeConfig, String> {
        let publish_key = match &self.publish_key_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the publish key file {}: {e}", path.display()))?;
                Some(PublishKey::from_file_text(&text).ok_or_else(|| format!("the publish key file {} is empty", path.display()))?)
            }
        };
        let mut origins = OriginPolicy { allowed: self.allowed_origins.clone(), require_origin: self.require_origin, ..OriginPolicy::default() };
        for (kind, entry) in &self.allowed_origins_kind {
            origins.per_kind.entry(kind.clone()).or_default().push(entry.clone());
        }
        let limits = Limits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            handshakes_per_second_per_ip: self.handshake_rate_per_ip,
            handshake_burst_per_ip: self.handshake_burst_per_ip,
            max_rooms: self.max_rooms,
        };
        Ok(EdgeConfig { limits, origins, body_timeout: self.http_body_timeout, publish_key })
    }
}
