//! `token` mode: JSON Web Tokens, verified with a shared secret (HS256) or
//! public keys (RS256, ES256, EdDSA and their kin), and minted with the
//! secret. `exp` is required, `exp` and `nbf` are enforced, and the
//! identity is `sub` plus the configured claims.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use switchboard_room::Identity;

use super::{carrier, valid_subject, Admitted, Denied, Presented};

/// Shortest HS256 secret accepted, in bytes: the hash's own size, as RFC
/// 7518 §3.2 requires.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest token read, in bytes: a token is a few hundred bytes; this
/// bounds the work a stranger can ask of the verifier.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verification (and, with a secret, minting) keys.
pub struct JwtKeys {
    secret: Option<Secret>,
    public: Vec<DecodingKey>,
    public_algorithm: Option<Algorithm>,
    leeway: Duration,
}

struct Secret {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// A key that could not be loaded. Names the file and why, never its
/// content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// Why no token was minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    /// Minting signs with the HS256 secret, and none is configured.
    NoSecret,
    /// The subject is empty, too long or has control characters.
    BadSubject,
    /// The lifetime is zero or does not fit a timestamp.
    BadLifetime,
}

impl std::fmt::Display for MintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MintError::NoSecret => f.write_str("minting tokens needs the HS256 secret (--jwt-secret-file)"),
            MintError::BadSubject => write!(f, "a subject is 1-{} bytes without control characters or surrounding spaces", super::MAX_SUBJECT_LEN),
            MintError::BadLifetime => f.write_str("a token's lifetime must be at least one second"),
        }
    }
}

impl std::error::Error for MintError {}

impl JwtKeys {
    /// Keys from a shared secret (HS256), at least [`MIN_SECRET_LEN`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<JwtKeys, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError(format!("the HS256 secret must be at least {MIN_SECRET_LEN} bytes")));
        }
        let encoding = EncodingKey::from_secret(secret).map_err(|e| KeyError(format!("unusable HS256 secret: {e}")))?;
        let decoding = DecodingKey::from_secret(secret).map_err(|e| KeyError(format!("unusable HS256 secret: {e}")))?;
        Ok(JwtKeys { secret: Some(Secret { encoding, decoding }), public: Vec::new(), public_algorithm: None, leeway: Duration::ZERO })
    }

    /// Keys from files: the secret file (white space around the secret is
    /// ignored) and PEM public keys of `algorithm` (`RS256`, `ES256`,
    /// `EdDSA`, ...; several keys for a rotation).
    pub fn from_files(secret_file: Option<&Path>, public_key_files: &[&Path], algorithm: Option<&str>) -> Result<JwtKeys, KeyError> {
        let keys = match secret_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| KeyError(format!("cannot read the JWT secret file {}: {e}", path.display())))?;
                let text = bytes.trim_ascii();
                JwtKeys::from_secret(text).map_err(|e| KeyError(format!("{}: {e}", path.display())))?
            }
            None => JwtKeys { secret: None, public: Vec::new(), public_algorithm: None, leeway: Duration::ZERO },
        };
        keys.with_public_key_files(public_key_files, algorithm)
    }

    /// These keys and PEM public keys of `algorithm` (for a secret given
    /// inline rather than in a file, beside public keys).
    pub fn with_public_key_files(self, public_key_files: &[&Path], algorithm: Option<&str>) -> Result<JwtKeys, KeyError> {
        let mut keys = self;
        if public_key_files.is_empty() {
            if algorithm.is_some_and(|a| a != "HS256") {
                return Err(KeyError(format!("--jwt-algorithm {} needs --jwt-public-key-file", algorithm.unwrap_or_default())));
            }
            return Ok(keys);
        }
        let algorithm = algorithm.ok_or_else(|| KeyError("name the public keys' algorithm with --jwt-algorithm (RS256, ES256, EdDSA, ...)".into()))?;
        let algorithm: Algorithm = algorithm.parse().map_err(|_| KeyError(format!("{algorithm:?} is not a JWT algorithm (RS256, ES256, EdDSA, ...)")))?;
        for path in public_key_files {
            let pem = std::fs::read(path).map_err(|e| KeyError(format!("cannot read the JWT public key {}: {e}", path.display())))?;
            let key = match algorithm.family() {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
                AlgorithmFamily::Hmac => return Err(KeyError("HS256 takes a secret (--jwt-secret-file), not a public key".into())),
            };
            keys.public.push(key.map_err(|e| KeyError(format!("{} is not a PEM {algorithm:?} public key: {e}", path.display())))?);
        }
        keys.public_algorithm = Some(algorithm);
        Ok(keys)
    }

    /// Accepts tokens this long past their `exp` or before their `nbf`
    /// (clocks of other token issuers drift). Zero unless set.
    pub fn with_leeway(mut self, leeway: Duration) -> JwtKeys {
        self.leeway = leeway;
        self
    }

    /// True when tokens can be minted (there is a secret).
    pub fn can_mint(&self) -> bool {
        self.secret.is_some()
    }

    /// A token for `subject` valid from now for `ttl` (HS256, claims `sub`,
    /// `iat`, `exp`).
    pub fn mint(&self, subject: &str, ttl: Duration) -> Result<String, MintError> {
        let secret = self.secret.as_ref().ok_or(MintError::NoSecret)?;
        if !valid_subject(subject) {
            return Err(MintError::BadSubject);
        }
        if ttl < Duration::from_secs(1) {
            return Err(MintError::BadLifetime);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let exp = now.checked_add(ttl.as_secs()).ok_or(MintError::BadLifetime)?;
        let claims = serde_json::json!({ "sub": subject, "iat": now, "exp": exp });
        // Signing with a valid HMAC key and JSON claims cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret.encoding).map_err(|_| MintError::NoSecret)
    }

    /// Admits a request carrying a valid token; the identity is `sub` and
    /// the `wanted` claims present.
    pub(crate) fn admit(&self, request: &Presented<'_>, cookie: &str, wanted: &[String]) -> Result<Admitted, Denied> {
        let carried = carrier::find(request.headers, request.target, cookie).ok_or_else(|| Denied::unauthorized("a token is required"))?;
        let claims = self.verify(carried.token)?;
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if valid_subject(sub) => sub.clone(),
            _ => return Err(Denied::unauthorized("the token has no usable subject (sub)")),
        };
        let claims_out = wanted
            .iter()
            .filter_map(|name| {
                let value = claims.get(name)?;
                Some((name.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
            })
            .collect();
        // An `exp` beyond what the clock can hold never comes: no timer.
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp))?.checked_add(self.leeway));
        Ok(Admitted { identity: Some(Identity { subject, claims: claims_out }), expires, via_protocol: carried.via_protocol, token: true })
    }

    fn verify(&self, token: &str) -> Result<Map<String, Value>, Denied> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Denied::unauthorized("the token is too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Denied::unauthorized("the token is malformed"))?;
        let keys: Vec<&DecodingKey> = match (header.alg, &self.secret) {
            (Algorithm::HS256, Some(secret)) => vec![&secret.decoding],
            (alg, _) if Some(alg) == self.public_algorithm => self.public.iter().collect(),
            _ => return Err(Denied::unauthorized("the token's algorithm is not accepted")),
        };
        let mut validation = Validation::new(header.alg);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = self.leeway.as_secs();
        let mut last = Denied::unauthorized("the token's signature is invalid");
        for key in keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    last = refusal(e.kind());
                    // Another key of a rotation may have signed it.
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

/// The short reason a client is told; never the token.
fn refusal(kind: &ErrorKind) -> Denied {
    Denied::unauthorized(match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidSignature => "the token's signature is invalid",
        ErrorKind::MissingRequiredClaim(_) => "the token has no expiry (exp)",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
        _ => "the token is malformed",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_room::Headers;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn presented<'a>(headers: &'a Headers, target: &'a str) -> Presented<'a> {
        Presented { peer: "127.0.0.1:1".parse().unwrap(), headers, target }
    }

    fn signed(claims: Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_minted_token_admits_its_subject_with_the_wanted_claims() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let token = keys.mint("acme", Duration::from_secs(60)).unwrap();
        let target = format!("/rooms/clicks/acme?token={token}");
        let admitted = keys.admit(&presented(&Headers::new(), &target), "c", &["iat".into(), "role".into()]).unwrap();
        let identity = admitted.identity.unwrap();
        assert_eq!(identity.subject, "acme");
        assert_eq!(identity.claims.len(), 1);
        assert_eq!(identity.claims[0].0, "iat");
        let expires = admitted.expires.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((now() + 59..=now() + 61).contains(&expires));
    }

    #[test]
    fn bad_tokens_are_refused_with_their_reason() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let reason = |token: String| keys.admit(&presented(&Headers::new(), &format!("/?token={token}")), "c", &[]).unwrap_err().reason;
        let t = now();
        assert_eq!(reason(signed(serde_json::json!({"sub": "a", "exp": t - 10}), SECRET)), "the token has expired");
        assert_eq!(reason(signed(serde_json::json!({"sub": "a", "exp": t + 100, "nbf": t + 50}), SECRET)), "the token is not valid yet (nbf)");
        assert_eq!(reason(signed(serde_json::json!({"sub": "a", "exp": t + 100}), b"another secret of at least 32 bytes")), "the token's signature is invalid");
        assert_eq!(reason(signed(serde_json::json!({"sub": "a"}), SECRET)), "the token has no expiry (exp)");
        assert_eq!(reason(signed(serde_json::json!({"exp": t + 100}), SECRET)), "the token has no usable subject (sub)");
        assert_eq!(reason("not.a.jwt".into()), "the token is malformed");
        assert_eq!(keys.admit(&presented(&Headers::new(), "/"), "c", &[]).unwrap_err().status, 401);
    }

    #[test]
    fn an_expiry_beyond_the_clock_admits_without_a_timer() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let token = signed(serde_json::json!({"sub": "a", "exp": u64::MAX}), SECRET);
        let admitted = keys.admit(&presented(&Headers::new(), &format!("/?token={token}")), "c", &[]).unwrap();
        assert_eq!(admitted.expires, None);
    }

    #[test]
    fn leeway_admits_a_token_just_past_its_expiry() {
        let keys = JwtKeys::from_secret(SECRET).unwrap().with_leeway(Duration::from_secs(30));
        let token = signed(serde_json::json!({"sub": "a", "exp": now() - 10}), SECRET);
        assert!(keys.admit(&presented(&Headers::new(), &format!("/?token={token}")), "c", &[]).is_ok());
    }

    #[test]
    fn short_secrets_and_bad_subjects_are_refused() {
        assert!(JwtKeys::from_secret(b"short").is_err());
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        assert_eq!(keys.mint("", Duration::from_secs(60)), Err(MintError::BadSubject));
        assert_eq!(keys.mint("a\nb", Duration::from_secs(60)), Err(MintError::BadSubject));
        assert_eq!(keys.mint("a", Duration::ZERO), Err(MintError::BadLifetime));
    }
}
