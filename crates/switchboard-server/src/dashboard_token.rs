//! Dashboard tokens: how a clicks dashboard proves its account.
//!
//! `POST /api/token` with `Authorization: Bearer <API key>` answers a
//! short-lived token for the key's account: a JWT (HS256; claims `sub` =
//! the account, `iat`, `exp`) signed with the secret in
//! `DATA_DIR/jwt-secret` (64 hex characters, owner-only, made on first
//! use; with `--memory`, a random secret that lives as long as the
//! process). A WebSocket to `clicks/{account}` carries it as `?token=`,
//! `Authorization: Bearer`, or the subprotocol `switchboard.token.<jwt>`
//! (never selected); the server verifies signature and expiry before the
//! room is asked, and hands the room the identity `sub`. A token that is
//! present but invalid is refused with 401 before the 101; none at all
//! leaves the room without identity (which refuses too). Tokens are never
//! logged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_room::Identity;

/// The secret's file name inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// How long a dashboard token from `POST /api/token` is valid: long enough
/// for a working session, short enough that a leaked one expires soon; the
/// page renews it with its API key.
pub const DASHBOARD_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the subprotocol carrier starts with.
const PROTOCOL_PREFIX: &str = "switchboard.token.";

/// Longest token read: bounds the work an attacker's junk costs.
const MAX_TOKEN_LEN: usize = 4096;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Mints and verifies dashboard tokens.
pub struct DashboardTokens {
    secret: Vec<u8>,
}

impl DashboardTokens {
    /// The secret of `DATA_DIR/jwt-secret` (made when missing), or a random
    /// one for `None` (in-memory servers).
    pub fn open(data_dir: Option<&Path>) -> std::io::Result<DashboardTokens> {
        let Some(dir) = data_dir else {
            let bytes: [u8; 32] = rand::rng().random();
            return Ok(DashboardTokens { secret: hex(&bytes).into_bytes() });
        };
        let path = dir.join(SECRET_FILE);
        if !path.exists() {
            std::fs::create_dir_all(dir)?;
            let bytes: [u8; 32] = rand::rng().random();
            let made = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(hex(&bytes).as_bytes()));
            match made {
                Ok(()) => {}
                // Another process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let secret = std::fs::read(&path)?.trim_ascii().to_vec();
        if secret.len() < 32 {
            return Err(std::io::Error::other(format!("{}: the token secret must be at least 32 bytes", path.display())));
        }
        Ok(DashboardTokens { secret })
    }

    /// A token for `account`, valid for `ttl` from now.
    pub fn mint(&self, account: &str, ttl: Duration) -> String {
        let now = unix_now();
        let claims = json!({ "sub": account, "iat": now, "exp": now + ttl.as_secs() });
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.secret, signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// The account a token names, if its signature and expiry are good.
    pub fn verify(&self, token: &str) -> Result<String, &'static str> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("the token is too long");
        }
        let mut parts = token.split('.');
        let (Some(encoded_header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("the token is not a JWT");
        };
        let header: Value = decode_json(encoded_header).ok_or("the token is not a JWT")?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err("the token is not signed with HS256");
        }
        let expected = hmac_sha256(&self.secret, format!("{encoded_header}.{payload}").as_bytes());
        let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the token's signature is invalid")?;
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err("the token's signature is invalid");
        }
        let claims: Value = decode_json(payload).ok_or("the token's claims are not JSON")?;
        let exp = claims.get("exp").and_then(Value::as_u64).ok_or("the token has no expiry (exp)")?;
        if exp <= unix_now() {
            return Err("the token has expired");
        }
        if claims.get("nbf").and_then(Value::as_u64).is_some_and(|nbf| nbf > unix_now()) {
            return Err("the token is not valid yet");
        }
        match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => Ok(sub.clone()),
            _ => Err("the token has no subject (sub)"),
        }
    }

    /// The identity of a WebSocket upgrade from its dashboard token:
    /// `Ok(None)` when it carries none, `Err(reason)` (a 401) when the one
    /// it carries is not valid.
    pub(crate) fn identity(&self, target: &str, headers: &[(String, String)], protocols: &[String]) -> Result<Option<Identity>, &'static str> {
        let from_query = target
            .split_once('?')
            .and_then(|(_, query)| query.split('&').find_map(|pair| pair.strip_prefix("token=")))
            .map(|t| percent_decode(t).ok_or("the token is not a JWT"))
            .transpose()?;
        let from_header = headers.iter().find(|(n, _)| n == "authorization").and_then(|(_, v)| v.strip_prefix("Bearer ")).map(|t| t.trim().to_owned());
        let from_protocol = protocols.iter().find_map(|p| p.strip_prefix(PROTOCOL_PREFIX)).map(str::to_owned);
        let Some(token) = from_query.or(from_header).or(from_protocol) else { return Ok(None) };
        let subject = self.verify(&token)?;
        Ok(Some(Identity { subject, claims: Vec::new() }))
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// `%XX` escapes of a query value (a JWT has none, but a client may escape
/// its characters anyway).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn tokens_verify_until_they_expire_and_only_with_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = DashboardTokens::open(Some(dir.path())).unwrap();
        let token = tokens.mint("acme", Duration::from_secs(60));
        assert_eq!(tokens.verify(&token), Ok("acme".into()));
        let again = DashboardTokens::open(Some(dir.path())).unwrap();
        assert_eq!(again.verify(&token), Ok("acme".into()), "the secret is kept in the data directory");
        let other = DashboardTokens::open(None).unwrap();
        assert_eq!(other.verify(&token), Err("the token's signature is invalid"));
        assert_eq!(tokens.verify(&tokens.mint("acme", Duration::ZERO)), Err("the token has expired"));
        let mut forged: Vec<&str> = token.split('.').collect();
        let claims = URL_SAFE_NO_PAD.encode(json!({"sub": "other", "exp": unix_now() + 60}).to_string());
        forged[1] = &claims;
        assert_eq!(tokens.verify(&forged.join(".")), Err("the token's signature is invalid"));
        assert_eq!(tokens.verify("x.y"), Err("the token is not a JWT"));
    }

    #[test]
    fn a_token_is_read_from_the_query_a_header_or_a_subprotocol() {
        let tokens = DashboardTokens::open(None).unwrap();
        let token = tokens.mint("acme", Duration::from_secs(60));
        let subject =
            |target: &str, headers: &[(String, String)], protocols: &[String]| tokens.identity(target, headers, protocols).map(|i| i.map(|i| i.subject));
        assert_eq!(subject(&format!("/rooms/clicks/acme?a=1&token={token}"), &[], &[]), Ok(Some("acme".into())));
        assert_eq!(subject("/rooms/clicks/acme", &[("authorization".into(), format!("Bearer {token}"))], &[]), Ok(Some("acme".into())));
        assert_eq!(subject("/rooms/clicks/acme", &[], &["json".into(), format!("switchboard.token.{token}")]), Ok(Some("acme".into())));
        assert_eq!(subject("/rooms/clicks/acme", &[], &[]), Ok(None));
        assert_eq!(subject("/rooms/clicks/acme?token=junk", &[], &[]), Err("the token is not a JWT"));
    }
}
