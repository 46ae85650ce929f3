//! The `serve` flags of identity at the edge (docs/auth.md), and the keys
//! they name, loaded before the server starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_server::auth::{self, AuthConfig, AuthMode, ForwardConfig, JwtKeys};

use crate::duration;

/// Who clients are: a mode for every room kind, per kind, and for the HTTP API.
#[derive(clap::Args)]
pub struct AuthArgs {
    /// Identity mode of every room kind not named by --auth-kind: public,
    /// token, trusted-header or forward (clicks is in token mode unless
    /// named).
    #[arg(long = "auth", value_name = "MODE", default_value = "public")]
    auth: AuthMode,
    /// Identity mode of one room kind, `KIND=MODE` (e.g. clicks=token);
    /// repeatable.
    #[arg(long = "auth-kind", value_name = "KIND=MODE", value_parser = parse_kind_mode)]
    auth_kind: Vec<(String, AuthMode)>,
    /// Identity mode of the HTTP API (/api/rooms/..., /api/call/ice).
    #[arg(long = "auth-api", value_name = "MODE", default_value = "public")]
    auth_api: AuthMode,
    /// A room kind whose room id must equal the identity's subject (a
    /// token for account A cannot open KIND/B); repeatable; always on for
    /// clicks.
    #[arg(long = "auth-room-is-subject", value_name = "KIND")]
    auth_room_is_subject: Vec<String>,
    /// File holding the HS256 secret (at least 32 bytes). Without it and
    /// without --jwt-public-key-file, token mode uses DATA_DIR/jwt-secret,
    /// made on first use (with --memory, clicks' default token mode uses a
    /// random secret).
    #[arg(long, value_name = "PATH")]
    jwt_secret_file: Option<PathBuf>,
    /// PEM public key that verifies tokens (RS256, ES256, EdDSA...; needs
    /// --jwt-algorithm); repeatable, for a key rotation.
    #[arg(long = "jwt-public-key-file", value_name = "PATH")]
    jwt_public_key_files: Vec<PathBuf>,
    /// Algorithm of the public keys: RS256, RS384, RS512, PS256, ES256,
    /// ES384 or EdDSA.
    #[arg(long, value_name = "ALG")]
    jwt_algorithm: Option<String>,
    /// Accept tokens this long past `exp` or before `nbf`, for the clock
    /// drift of other issuers (e.g. 30s). None by default.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_duration)]
    jwt_leeway: Option<Duration>,
    /// A token claim handed to rooms with `sub`; repeatable.
    #[arg(long = "jwt-claim", value_name = "NAME")]
    jwt_claims: Vec<String>,
    /// Cookie a token may come in.
    #[arg(long, value_name = "NAME", default_value = auth::DEFAULT_TOKEN_COOKIE)]
    auth_cookie: String,
    /// Header naming the identity, set by the gateway (trusted-header) or
    /// the auth backend's answer (forward).
    #[arg(long, value_name = "NAME", default_value = auth::DEFAULT_IDENTITY_HEADER)]
    auth_header: String,
    /// The auth backend of forward mode, `http://HOST[:PORT]/PATH`.
    #[arg(long, value_name = "URL")]
    auth_forward_url: Option<String>,
    /// Longest wait for the auth backend; past it the client gets 503.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration::parse_duration)]
    auth_forward_timeout: Duration,
}

fn parse_kind_mode(text: &str) -> Result<(String, AuthMode), String> {
    let (kind, mode) = text.split_once('=').ok_or_else(|| format!("{text:?}: write KIND=MODE, e.g. clicks=token"))?;
    if !switchboard_server::is_kind_name(kind) {
        return Err(format!("{kind:?} is not a room kind name"));
    }
    Ok((kind.to_owned(), mode.parse()?))
}

impl AuthArgs {
    /// The edge's settings, with keys read from their files. `data_dir` is
    /// where the default secret lives (`None` with --memory). Errors name
    /// files and flags, never key material.
    pub fn config(&self, data_dir: Option<&Path>) -> Result<AuthConfig, String> {
        let mut config = AuthConfig {
            default: self.auth,
            kinds: self.auth_kind.clone(),
            api: self.auth_api,
            subject_rooms: self.auth_room_is_subject.clone(),
            jwt: None,
            token_cookie: self.auth_cookie.clone(),
            claims: self.jwt_claims.clone(),
            identity_header: self.auth_header.to_ascii_lowercase(),
            forward: None,
        };
        let uses_token = std::iter::once(self.auth)
            .chain(std::iter::once(self.auth_api))
            .chain(self.auth_kind.iter().map(|(_, m)| *m))
            .any(|m| m == AuthMode::Token);
        let named = self.jwt_secret_file.is_some() || !self.jwt_public_key_files.is_empty();
        let keys = if named {
            let public: Vec<&Path> = self.jwt_public_key_files.iter().map(PathBuf::as_path).collect();
            Some(JwtKeys::from_files(self.jwt_secret_file.as_deref(), &public, self.jwt_algorithm.as_deref()).map_err(|e| e.to_string())?)
        } else if uses_token {
            let dir = data_dir.ok_or("token mode with --memory needs --jwt-secret-file or --jwt-public-key-file")?;
            Some(auth::load_or_create_secret(&dir.join(auth::SECRET_FILE)).map_err(|e| e.to_string())?)
        } else {
            None
        };
        config.jwt = keys.map(|k| Arc::new(k.with_leeway(self.jwt_leeway.unwrap_or_default())));
        if let Some(url) = &self.auth_forward_url {
            config.forward = Some(ForwardConfig::new(url, self.auth_forward_timeout)?);
        }
        Ok(config)
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
