//! The settings of the server's edge as the configuration file spells
//! them: identity (`[auth]`), `Origin` allow-lists (`[origins]`), limits
//! against noisy clients (`[limits]`), the publish API's key
//! (`[publish]`) and permessage-deflate (`[compression]`); and how they,
//! with each kind's shared keys (`kind_table`), become the server's
//! [`AuthConfig`], [`EdgeConfig`] and deflate options. docs/auth.md,
//! docs/limits.md, docs/publish.md and docs/compression.md say what each
//! does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use switchboard_server::auth::{self, AuthConfig, AuthMode, ForwardConfig, JwtKeys};
use switchboard_server::{DeflateOptions, EdgeConfig, OriginPolicy, Policy, PublishKey};

use crate::kind_table::KindEdge;
use crate::secret::Secret;
use crate::{duration, parsed};

/// `[auth]`: who clients are (docs/auth.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Mode of every kind whose table sets no `auth`.
    #[serde(with = "parsed::text")]
    pub mode: AuthMode,
    /// Mode of the HTTP API.
    #[serde(with = "parsed::text")]
    pub api: AuthMode,
    /// File holding the HS256 secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret_file: Option<PathBuf>,
    /// The HS256 secret itself (masked when shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<Secret>,
    /// PEM public keys that verify tokens.
    pub jwt_public_key_files: Vec<PathBuf>,
    /// Algorithm of the public keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_algorithm: Option<String>,
    /// Tolerance past `exp` / before `nbf`.
    #[serde(with = "duration::text_or_zero")]
    pub jwt_leeway: Duration,
    /// Token claims handed to rooms with `sub`.
    pub jwt_claims: Vec<String>,
    /// Cookie a token may come in.
    #[serde(deserialize_with = "cookie_name")]
    pub cookie: String,
    /// Header naming the identity (trusted-header, forward).
    #[serde(deserialize_with = "header_name")]
    pub header: String,
    /// The auth backend of forward mode.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "forward_url")]
    pub forward_url: Option<String>,
    /// Longest wait for the auth backend.
    #[serde(with = "duration::text")]
    pub forward_timeout: Duration,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            mode: AuthMode::Public,
            api: AuthMode::Public,
            jwt_secret_file: None,
            jwt_secret: None,
            jwt_public_key_files: Vec::new(),
            jwt_algorithm: None,
            jwt_leeway: Duration::ZERO,
            jwt_claims: Vec::new(),
            cookie: auth::DEFAULT_TOKEN_COOKIE.to_owned(),
            header: auth::DEFAULT_IDENTITY_HEADER.to_owned(),
            forward_url: None,
            forward_timeout: auth::DEFAULT_FORWARD_TIMEOUT,
        }
    }
}

/// `[origins]`: which pages may open WebSockets (docs/limits.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Origins {
    /// Origins every kind accepts unless its table lists its own.
    #[serde(deserialize_with = "origin_list")]
    pub allowed: Vec<String>,
    /// Refuse upgrades without an `Origin` header.
    pub require: bool,
}

/// `[limits]`: against one noisy client (docs/limits.md). 0: no limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open WebSocket connections in all.
    #[serde(deserialize_with = "crate::settings::count::<_, 0, 4_294_967_295, _>")]
    pub max_connections: usize,
    /// Open WebSocket connections per client IP (IPv6: per /64).
    #[serde(deserialize_with = "crate::settings::count::<_, 0, 4_294_967_295, _>")]
    pub max_connections_per_ip: usize,
    /// Handshakes per second per client IP, sustained.
    #[serde(deserialize_with = "crate::settings::count::<_, 0, 4_294_967_295, _>")]
    pub handshake_rate_per_ip: u32,
    /// Handshakes per client IP in one burst.
    #[serde(deserialize_with = "crate::settings::count::<_, 1, 4_294_967_295, _>")]
    pub handshake_burst_per_ip: u32,
    /// Live rooms on this server.
    #[serde(deserialize_with = "crate::settings::count::<_, 0, 4_294_967_295, _>")]
    pub max_rooms: usize,
    /// Time an HTTP request body has to arrive whole.
    #[serde(with = "duration::text")]
    pub http_body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        let limits = switchboard_server::Limits::default();
        Limits {
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            handshake_rate_per_ip: limits.handshakes_per_second_per_ip,
            handshake_burst_per_ip: limits.handshake_burst_per_ip,
            max_rooms: limits.max_rooms,
            http_body_timeout: EdgeConfig::default().body_timeout,
        }
    }
}

/// `[publish]`: the publish API's bearer key (docs/publish.md); without
/// one the API is off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Publish {
    /// File holding the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The key itself (masked when shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
}

/// `[compression]`: permessage-deflate (docs/compression.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    /// What to agree to when a client offers it.
    #[serde(with = "parsed::text")]
    pub policy: Policy,
    /// Messages shorter than this many bytes go out uncompressed.
    #[serde(deserialize_with = "crate::settings::count::<_, 0, 4_294_967_295, _>")]
    pub threshold: usize,
    /// zlib level.
    #[serde(deserialize_with = "crate::settings::count::<_, 0, 9, _>")]
    pub level: u32,
    /// Window of a dedicated compressor, in bits.
    #[serde(deserialize_with = "crate::settings::count::<_, 9, 15, _>")]
    pub window_bits: u8,
}

impl Default for Compression {
    fn default() -> Compression {
        let deflate = DeflateOptions::default();
        Compression { policy: deflate.policy, threshold: deflate.threshold, level: deflate.level, window_bits: deflate.server_max_window_bits }
    }
}

/// Checks one `Origin` allow-list entry (flags and the file).
pub fn parse_origin(text: &str) -> Result<String, String> {
    OriginPolicy::check_entry(text).map(|()| text.to_owned()).map_err(|e| e.to_string())
}

/// An `Origin` allow-list in the file, each entry checked.
pub fn origin_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(deserializer)?.iter().map(|entry| parse_origin(entry).map_err(serde::de::Error::custom)).collect()
}

/// Checks a cookie name (flags and the file).
pub fn parse_cookie_name(name: &str) -> Result<String, String> {
    AuthConfig { token_cookie: name.to_owned(), ..AuthConfig::default() }.check(false).map(|()| name.to_owned())
}

/// Checks a header name (flags and the file).
pub fn parse_header_name(name: &str) -> Result<String, String> {
    AuthConfig { identity_header: name.to_ascii_lowercase(), ..AuthConfig::default() }.check(false).map(|()| name.to_owned())
}

fn cookie_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    parse_cookie_name(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    parse_header_name(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn forward_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(deserializer)?;
    ForwardConfig::new(&url, auth::DEFAULT_FORWARD_TIMEOUT).map_err(serde::de::Error::custom)?;
    Ok(Some(url))
}

impl Auth {
    /// What no single key shows: keys that exclude each other, and what
    /// the modes in use (`[auth]`'s and the kinds' `auth`) need.
    /// `memory`: storage in memory (no default HS256 secret on disk).
    pub fn validate(&self, kinds: &[(&str, KindEdge)], has_trusted_proxies: bool, memory: bool) -> Result<(), String> {
        if self.jwt_secret.is_some() && self.jwt_secret_file.is_some() {
            return Err("auth.jwt_secret and auth.jwt_secret_file (--jwt-secret-file) are both set; give one".into());
        }
        let modes: Vec<AuthMode> = [self.mode, self.api].into_iter().chain(kinds.iter().filter_map(|(_, edge)| edge.auth)).collect();
        let named_keys = self.jwt_secret.is_some() || self.jwt_secret_file.is_some() || !self.jwt_public_key_files.is_empty();
        if memory && !named_keys && modes.contains(&AuthMode::Token) {
            return Err("token mode with storage in memory needs keys: auth.jwt_secret_file (--jwt-secret-file), auth.jwt_secret or auth.jwt_public_key_files (--jwt-public-key-file)".into());
        }
        if !has_trusted_proxies && modes.contains(&AuthMode::TrustedHeader) {
            return Err("trusted-header mode believes the header only from trusted proxies: set trusted_proxies (--trusted-proxy)".into());
        }
        if self.forward_url.is_none() && modes.contains(&AuthMode::Forward) {
            return Err("forward mode needs the auth backend: auth.forward_url (--auth-forward-url)".into());
        }
        Ok(())
    }

    /// The edge's identity settings, keys read from their files. `kinds`
    /// is every kind's name and shared keys; `data_dir` is where the
    /// default HS256 secret lives (`None`: storage in memory). Errors name
    /// files and keys, never key material.
    pub fn config(&self, kinds: &[(&str, KindEdge)], data_dir: Option<&Path>) -> Result<AuthConfig, String> {
        let mut config = AuthConfig {
            default: self.mode,
            kinds: kinds.iter().filter_map(|(kind, edge)| Some((kind.to_string(), edge.auth?))).collect(),
            api: self.api,
            subject_rooms: kinds.iter().filter(|(_, edge)| edge.room_is_subject).map(|(kind, _)| kind.to_string()).collect(),
            jwt: None,
            token_cookie: self.cookie.clone(),
            claims: self.jwt_claims.clone(),
            identity_header: self.header.to_ascii_lowercase(),
            forward: None,
        };
        let uses_token = config.default == AuthMode::Token || config.api == AuthMode::Token || config.kinds.iter().any(|(_, m)| *m == AuthMode::Token);
        let keys = match self.named_keys()? {
            Some(keys) => Some(keys),
            None if uses_token => {
                let dir = data_dir.ok_or("token mode with storage in memory needs keys: auth.jwt_secret_file (--jwt-secret-file), auth.jwt_secret or auth.jwt_public_key_files (--jwt-public-key-file)")?;
                Some(auth::load_or_create_secret(&dir.join(auth::SECRET_FILE)).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        config.jwt = keys.map(|k| Arc::new(k.with_leeway(self.jwt_leeway)));
        if let Some(url) = &self.forward_url {
            config.forward = Some(ForwardConfig::new(url, self.forward_timeout)?);
        }
        Ok(config)
    }

    /// The keys the settings name (a secret, public key files), read;
    /// `None` when they name none.
    pub fn named_keys(&self) -> Result<Option<JwtKeys>, String> {
        let public: Vec<&Path> = self.jwt_public_key_files.iter().map(PathBuf::as_path).collect();
        let algorithm = self.jwt_algorithm.as_deref();
        let keys = match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(secret), _) => JwtKeys::from_secret(secret.expose().trim().as_bytes())
                .map_err(|e| format!("auth.jwt_secret: {e}"))?
                .with_public_key_files(&public, algorithm),
            (None, Some(file)) => JwtKeys::from_files(Some(file), &public, algorithm),
            (None, None) if !public.is_empty() || algorithm.is_some() => JwtKeys::from_files(None, &public, algorithm),
            (None, None) => return Ok(None),
        };
        keys.map(Some).map_err(|e| e.to_string())
    }
}

impl Publish {
    /// What no single key shows.
    pub fn validate(&self) -> Result<(), String> {
        if self.key.is_some() && self.key_file.is_some() {
            return Err("publish.key and publish.key_file (--publish-key-file) are both set; give one".into());
        }
        Ok(())
    }

    /// The key, read from its file; the error names the file, never the key.
    pub fn key(&self) -> Result<Option<PublishKey>, String> {
        match (&self.key, &self.key_file) {
            (Some(key), _) => Ok(Some(PublishKey::from_file_text(key.expose()).ok_or("publish.key is empty")?)),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the publish key file {}: {e}", path.display()))?;
                Ok(Some(PublishKey::from_file_text(&text).ok_or_else(|| format!("the publish key file {} is empty", path.display()))?))
            }
            (None, None) => Ok(None),
        }
    }
}

/// The edge's limits, allow-lists, body timeout and publish key.
pub fn edge_config(origins: &Origins, limits: &Limits, publish: &Publish, kinds: &[(&str, KindEdge)]) -> Result<EdgeConfig, String> {
    let mut policy = OriginPolicy { allowed: origins.allowed.clone(), require_origin: origins.require, ..OriginPolicy::default() };
    for (kind, edge) in kinds.iter().filter(|(_, edge)| !edge.allowed_origins.is_empty()) {
        policy.per_kind.insert(kind.to_string(), edge.allowed_origins.clone());
    }
    let server_limits = switchboard_server::Limits {
        max_connections: limits.max_connections,
        max_connections_per_ip: limits.max_connections_per_ip,
        handshakes_per_second_per_ip: limits.handshake_rate_per_ip,
        handshake_burst_per_ip: limits.handshake_burst_per_ip,
        max_rooms: limits.max_rooms,
    };
    Ok(EdgeConfig { limits: server_limits, origins: policy, body_timeout: limits.http_body_timeout, publish_key: publish.key()? })
}

impl Compression {
    /// The server's deflate options.
    pub fn options(&self) -> DeflateOptions {
        DeflateOptions {
            policy: self.policy,
            threshold: self.threshold,
            level: self.level,
            server_max_window_bits: self.window_bits,
            ..DeflateOptions::default()
        }
    }
}
