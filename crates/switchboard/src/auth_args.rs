//! The `serve` flags of identity at the edge (docs/auth.md), each
//! overriding its key in `[auth]` or in a kind's table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard_server::auth::{self, AuthMode, JwtKeys};
use switchboard_server::ClusterConfig;

use crate::duration;
use crate::edge_settings::{parse_cookie_name, parse_header_name};
use crate::secret::Secret;
use crate::settings::{check_kind, Settings};

/// Who clients are: a mode for every room kind, per kind, and for the HTTP API.
#[derive(clap::Args)]
pub struct AuthArgs {
    /// Identity mode of every room kind not named by --auth-kind: public,
    /// token, trusted-header or forward (clicks is in token mode unless
    /// named) [default: public].
    #[arg(long = "auth", env = "SWITCHBOARD_AUTH", value_name = "MODE")]
    auth: Option<AuthMode>,
    /// Identity mode of one room kind, `KIND=MODE` (e.g. clicks=token);
    /// repeatable.
    #[arg(long = "auth-kind", env = "SWITCHBOARD_AUTH_KIND", value_delimiter = ',', value_name = "KIND=MODE", value_parser = parse_kind_mode)]
    auth_kind: Vec<(String, AuthMode)>,
    /// Identity mode of the HTTP API (/api/rooms/..., /api/call/ice)
    /// [default: public].
    #[arg(long = "auth-api", env = "SWITCHBOARD_AUTH_API", value_name = "MODE")]
    auth_api: Option<AuthMode>,
    /// A room kind whose room id must equal the identity's subject (a
    /// token for account A cannot open KIND/B); repeatable; always on for
    /// clicks.
    #[arg(long = "auth-room-is-subject", env = "SWITCHBOARD_AUTH_ROOM_IS_SUBJECT", value_delimiter = ',', value_name = "KIND", value_parser = parse_kind)]
    auth_room_is_subject: Vec<String>,
    /// File holding the HS256 secret (at least 32 bytes). Without it and
    /// without --jwt-public-key-file, token mode uses DATA_DIR/jwt-secret,
    /// made on first use (with --memory, clicks' default token mode uses a
    /// random secret).
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET_FILE", value_name = "PATH")]
    jwt_secret_file: Option<PathBuf>,
    /// The HS256 secret itself, for deployments that pass secrets in the
    /// environment; prefer the variable to the flag, which other users of
    /// the machine can see. Never logged or shown.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true, value_name = "SECRET", conflicts_with = "jwt_secret_file")]
    jwt_secret: Option<Secret>,
    /// PEM public key that verifies tokens (RS256, ES256, EdDSA...; needs
    /// --jwt-algorithm); repeatable, for a key rotation.
    #[arg(long = "jwt-public-key-file", env = "SWITCHBOARD_JWT_PUBLIC_KEY_FILE", value_delimiter = ',', value_name = "PATH")]
    jwt_public_key_files: Vec<PathBuf>,
    /// Algorithm of the public keys: RS256, RS384, RS512, PS256, ES256,
    /// ES384 or EdDSA.
    #[arg(long, env = "SWITCHBOARD_JWT_ALGORITHM", value_name = "ALG")]
    jwt_algorithm: Option<String>,
    /// Accept tokens this long past `exp` or before `nbf`, for the clock
    /// drift of other issuers (e.g. 30s) [default: 0s].
    #[arg(long, env = "SWITCHBOARD_JWT_LEEWAY", value_name = "DURATION", value_parser = duration::parse_duration_or_zero)]
    jwt_leeway: Option<Duration>,
    /// A token claim handed to rooms with `sub`; repeatable.
    #[arg(long = "jwt-claim", env = "SWITCHBOARD_JWT_CLAIM", value_delimiter = ',', value_name = "NAME")]
    jwt_claims: Vec<String>,
    /// Cookie a token may come in [default: switchboard_token].
    #[arg(long, env = "SWITCHBOARD_AUTH_COOKIE", value_name = "NAME", value_parser = parse_cookie_name)]
    auth_cookie: Option<String>,
    /// Header naming the identity, set by the gateway (trusted-header) or
    /// the auth backend's answer (forward) [default: x-switchboard-account].
    #[arg(long, env = "SWITCHBOARD_AUTH_HEADER", value_name = "NAME", value_parser = parse_header_name)]
    auth_header: Option<String>,
    /// The auth backend of forward mode, `http://HOST[:PORT]/PATH`.
    #[arg(long, env = "SWITCHBOARD_AUTH_FORWARD_URL", value_name = "URL", value_parser = parse_forward_url)]
    auth_forward_url: Option<String>,
    /// Longest wait for the auth backend; past it the client gets 503
    /// [default: 5s].
    #[arg(long, env = "SWITCHBOARD_AUTH_FORWARD_TIMEOUT", value_name = "DURATION", value_parser = duration::parse_duration)]
    auth_forward_timeout: Option<Duration>,
}

fn parse_kind(kind: &str) -> Result<String, String> {
    check_kind(kind).map(|()| kind.to_owned())
}

fn parse_kind_mode(text: &str) -> Result<(String, AuthMode), String> {
    let (kind, mode) = text.split_once('=').ok_or_else(|| format!("{text:?}: write KIND=MODE, e.g. clicks=token"))?;
    Ok((parse_kind(kind)?, mode.parse()?))
}

fn parse_forward_url(url: &str) -> Result<String, String> {
    auth::ForwardConfig::new(url, auth::DEFAULT_FORWARD_TIMEOUT).map(|_| url.to_owned())
}

impl AuthArgs {
    /// Overrides the settings' keys with the flags given.
    pub fn apply(&self, s: &mut Settings) -> Result<(), String> {
        let a = &mut s.auth;
        if let Some(mode) = self.auth {
            a.mode = mode;
        }
        if let Some(mode) = self.auth_api {
            a.api = mode;
        }
        if self.jwt_secret_file.is_some() {
            a.jwt_secret_file = self.jwt_secret_file.clone();
            a.jwt_secret = None;
        }
        if self.jwt_secret.is_some() {
            a.jwt_secret = self.jwt_secret.clone();
            a.jwt_secret_file = None;
        }
        if !self.jwt_public_key_files.is_empty() {
            a.jwt_public_key_files = self.jwt_public_key_files.clone();
        }
        if self.jwt_algorithm.is_some() {
            a.jwt_algorithm = self.jwt_algorithm.clone();
        }
        if let Some(leeway) = self.jwt_leeway {
            a.jwt_leeway = leeway;
        }
        if !self.jwt_claims.is_empty() {
            a.jwt_claims = self.jwt_claims.clone();
        }
        if let Some(cookie) = &self.auth_cookie {
            a.cookie = cookie.clone();
        }
        if let Some(header) = &self.auth_header {
            a.header = header.clone();
        }
        if self.auth_forward_url.is_some() {
            a.forward_url = self.auth_forward_url.clone();
        }
        if let Some(timeout) = self.auth_forward_timeout {
            a.forward_timeout = timeout;
        }
        for (kind, mode) in &self.auth_kind {
            *s.kinds.edge_mut(kind)?.auth = Some(*mode);
        }
        for kind in &self.auth_room_is_subject {
            *s.kinds.edge_mut(kind)?.room_is_subject = true;
        }
        Ok(())
    }
}

/// `switchboard token`: the keys to mint with.
pub fn minting_keys(secret_file: Option<&Path>, data_dir: &Path) -> Result<JwtKeys, String> {
    match secret_file {
        Some(path) => JwtKeys::from_files(Some(path), &[], None).map_err(|e| e.to_string()),
        None => {
            let path = data_dir.join(auth::SECRET_FILE);
            if !path.exists() {
                return Err(format!("no secret at {}: pass --jwt-secret-file, or the --data-dir the server uses", path.display()));
            }
            JwtKeys::from_files(Some(&path), &[], None).map_err(|e| e.to_string())
        }
    }
}

/// `switchboard token --cluster ...`: the cluster's shared secret (made now
/// if no node made it yet).
pub fn cluster_minting_keys(cluster: ClusterConfig) -> Result<JwtKeys, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(auth::cluster_minting_keys(cluster.settings)).map_err(|e| e.to_string())
}
