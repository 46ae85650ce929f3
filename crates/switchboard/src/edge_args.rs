//! The `serve` flags of the server's edge: limits, `Origin` allow-lists,
//! the HTTP body timeout and the publish key (docs/limits.md,
//! docs/publish.md), each overriding its key in `[limits]`, `[origins]`,
//! `[publish]` or a kind's table.

use std::path::PathBuf;
use std::time::Duration;

use crate::duration;
use crate::edge_settings::parse_origin;
use crate::secret::Secret;
use crate::settings::{check_kind, parse_count, Settings};

/// Limits against noisy clients, origins, publish API.
#[derive(clap::Args)]
pub struct EdgeArgs {
    /// A page origin allowed to open WebSockets to every room kind
    /// (`https://app.example`, `https://*.example.com`, `*`); repeatable.
    /// Replaces the default (localhost pages); the server's own origin is
    /// always allowed.
    #[arg(long = "allowed-origin", env = "SWITCHBOARD_ALLOWED_ORIGIN", value_delimiter = ',', value_name = "ORIGIN", value_parser = parse_origin)]
    allowed_origins: Vec<String>,
    /// An origin allowed for one room kind, `KIND=ORIGIN`; repeatable. A
    /// kind with entries here uses only these (and its own origin).
    #[arg(long = "allowed-origin-kind", env = "SWITCHBOARD_ALLOWED_ORIGIN_KIND", value_delimiter = ',', value_name = "KIND=ORIGIN", value_parser = kind_origin)]
    allowed_origins_kind: Vec<(String, String)>,
    /// Refuse WebSocket upgrades without an `Origin` header (non-browser
    /// clients then have to send one).
    #[arg(long, env = "SWITCHBOARD_REQUIRE_ORIGIN", num_args = 0..=1, default_missing_value = "true")]
    require_origin: Option<bool>,
    /// Open WebSocket connections in all (503 beyond); 0: no limit
    /// [default: 100000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", value_parser = parse_count::<0, 4_294_967_295, usize>)]
    max_connections: Option<usize>,
    /// Open WebSocket connections per client IP, IPv6 per /64 (429
    /// beyond); 0: no limit [default: 20000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP", value_parser = parse_count::<0, 4_294_967_295, usize>)]
    max_connections_per_ip: Option<usize>,
    /// WebSocket handshakes per second per client IP, sustained (429 with
    /// Retry-After beyond); 0: no limit [default: 2000].
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_RATE_PER_IP", value_parser = parse_count::<0, 4_294_967_295, u32>)]
    handshake_rate_per_ip: Option<u32>,
    /// WebSocket handshakes one client IP may make in a burst [default: 4000].
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_BURST_PER_IP", value_parser = parse_count::<1, 4_294_967_295, u32>)]
    handshake_burst_per_ip: Option<u32>,
    /// Live rooms on this server (a connection that would start one more
    /// gets 503); 0: no limit [default: 100000].
    #[arg(long, env = "SWITCHBOARD_MAX_ROOMS", value_parser = parse_count::<0, 4_294_967_295, usize>)]
    max_rooms: Option<usize>,
    /// Time an HTTP request body has to arrive whole (408 after it)
    /// [default: 30s].
    #[arg(long, env = "SWITCHBOARD_HTTP_BODY_TIMEOUT", value_parser = duration::parse_duration)]
    http_body_timeout: Option<Duration>,
    /// File holding the publish API's bearer key (white space around it is
    /// ignored); without a key the publish API is off. The key is never logged.
    #[arg(long, env = "SWITCHBOARD_PUBLISH_KEY_FILE", value_name = "PATH")]
    publish_key_file: Option<PathBuf>,
    /// The publish API's bearer key itself, for deployments that pass
    /// secrets in the environment; prefer the variable to the flag, which
    /// other users of the machine can see. Never logged or shown.
    #[arg(long, env = "SWITCHBOARD_PUBLISH_KEY", hide_env_values = true, value_name = "KEY", conflicts_with = "publish_key_file")]
    publish_key: Option<Secret>,
}

fn kind_origin(text: &str) -> Result<(String, String), String> {
    let (kind, entry) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected KIND=ORIGIN, e.g. chat=https://app.example"))?;
    check_kind(kind)?;
    Ok((kind.to_owned(), parse_origin(entry)?))
}

impl EdgeArgs {
    /// Overrides the settings' keys with the flags given. A kind named by
    /// --allowed-origin-kind gets the flags' list for it instead of the
    /// file's.
    pub fn apply(&self, s: &mut Settings) -> Result<(), String> {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        if !self.allowed_origins.is_empty() {
            s.origins.allowed = self.allowed_origins.clone();
        }
        set(&mut s.origins.require, &self.require_origin);
        let l = &mut s.limits;
        set(&mut l.max_connections, &self.max_connections);
        set(&mut l.max_connections_per_ip, &self.max_connections_per_ip);
        set(&mut l.handshake_rate_per_ip, &self.handshake_rate_per_ip);
        set(&mut l.handshake_burst_per_ip, &self.handshake_burst_per_ip);
        set(&mut l.max_rooms, &self.max_rooms);
        set(&mut l.http_body_timeout, &self.http_body_timeout);
        if self.publish_key_file.is_some() {
            s.publish.key_file = self.publish_key_file.clone();
            s.publish.key = None;
        }
        if self.publish_key.is_some() {
            s.publish.key = self.publish_key.clone();
            s.publish.key_file = None;
        }
        let mut named: Vec<&str> = Vec::new();
        for (kind, entry) in &self.allowed_origins_kind {
            let list = s.kinds.edge_mut(kind)?.allowed_origins;
            if !named.contains(&kind.as_str()) {
                list.clear();
                named.push(kind);
            }
            list.push(entry.clone());
        }
        Ok(())
    }
}
