//! Identity at the edge: who a client is, decided before any room is asked
//! and before any 101.
//!
//! Each room kind (and the HTTP API) has a mode: `public` lets everyone in
//! with no identity; `token` verifies a JWT ([`token`]); `trusted-header`
//! believes a gateway's header ([`trusted_header`]); `forward` asks an auth
//! backend ([`forward`]). The identity found is handed to the room in its
//! connect request; rooms decide what it may enter, and a kind may ask the
//! edge to require that the room id equal the subject. Secrets and tokens
//! never reach a log line: refusals carry short fixed reasons.

mod carrier;
mod config;
mod forward;
mod kind_defaults;
mod secret_file;
mod shared_secret;
mod token;
mod trusted_header;

use std::net::SocketAddr;
use std::time::SystemTime;

use switchboard_room::{Headers, Identity};

use crate::client_ip::TrustedProxies;

pub(crate) use carrier::query_without_token;
pub use carrier::{redact_target, TOKEN_PROTOCOL, TOKEN_PROTOCOL_PREFIX, TOKEN_QUERY_PARAM};
pub use config::{AuthConfig, AuthMode, ForwardConfig, DEFAULT_FORWARD_TIMEOUT, DEFAULT_IDENTITY_HEADER, DEFAULT_TOKEN_COOKIE};
pub use kind_defaults::apply_kind_defaults;
pub use secret_file::{load_or_create_secret, SECRET_FILE};
pub use shared_secret::cluster_minting_keys;
pub(crate) use shared_secret::use_shared_secret;
pub use token::{JwtKeys, KeyError, MintError, MIN_SECRET_LEN};

/// The close code of a connection whose token expired while it was open
/// (a private-use code: clients fetch a fresh token and reconnect).
pub const TOKEN_EXPIRED_CLOSE: u16 = 4001;

/// What the edge was shown: the request's peer and head.
pub(crate) struct Presented<'a> {
    /// The TCP peer (a gateway, when there is one).
    pub(crate) peer: SocketAddr,
    /// Header names in lower case.
    pub(crate) headers: &'a Headers,
    /// The request target (path and query).
    pub(crate) target: &'a str,
}

/// An admitted request: the identity, if the mode gives one, and when it
/// stops being valid.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    pub(crate) identity: Option<Identity>,
    /// The token's `exp`: an open connection is closed then.
    pub(crate) expires: Option<SystemTime>,
    /// The token came in `Sec-WebSocket-Protocol`: the 101 may answer with
    /// the bare [`TOKEN_PROTOCOL`] marker when the kind speaks nothing the
    /// client offered (browsers fail a handshake that offers protocols and
    /// gets none back).
    pub(crate) via_protocol: bool,
    /// The identity came from a token (the room is not shown a `?token=`).
    pub(crate) token: bool,
}

/// A refusal before the 101: 401 (no or bad credentials), 403 (this
/// identity may not enter this room) or 503 (the auth backend failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

impl Denied {
    pub(crate) fn unauthorized(reason: impl Into<String>) -> Denied {
        Denied { status: 401, reason: reason.into() }
    }

    pub(crate) fn forbidden(reason: impl Into<String>) -> Denied {
        Denied { status: 403, reason: reason.into() }
    }

    pub(crate) fn unavailable(reason: impl Into<String>) -> Denied {
        Denied { status: 503, reason: reason.into() }
    }
}

/// The edge's checks, shared by every connection.
pub(crate) struct Gate {
    config: AuthConfig,
    trusted: TrustedProxies,
    forward: Option<forward::Forwarder>,
}

impl Gate {
    pub(crate) fn new(config: AuthConfig, trusted: TrustedProxies) -> Gate {
        let forward = config.forward.clone().map(forward::Forwarder::new);
        Gate { config, trusted, forward }
    }

    /// Admits (or refuses) a WebSocket upgrade to room `id` of `kind`.
    pub(crate) async fn admit_room(&self, kind: &str, id: &str, request: &Presented<'_>) -> Result<Admitted, Denied> {
        let admitted = self.verify(self.config.mode_for(kind), request).await?;
        self.room_rule(kind, id, &admitted)?;
        Ok(admitted)
    }

    /// Admits (or refuses) a request to the HTTP API; `room` is the room a
    /// `/api/rooms/{kind}/{id}` request addresses.
    pub(crate) async fn admit_api(&self, room: Option<(&str, &str)>, request: &Presented<'_>) -> Result<Admitted, Denied> {
        let admitted = self.verify(self.config.api, request).await?;
        if let Some((kind, id)) = room {
            self.room_rule(kind, id, &admitted)?;
        }
        Ok(admitted)
    }

    /// True when no room kind and not the API needs an identity.
    pub(crate) fn all_public(&self) -> bool {
        self.config.all_public()
    }

    async fn verify(&self, mode: AuthMode, request: &Presented<'_>) -> Result<Admitted, Denied> {
        match mode {
            AuthMode::Public => Ok(Admitted::default()),
            AuthMode::Token => match &self.config.jwt {
                Some(keys) => keys.admit(request, &self.config.token_cookie, &self.config.claims),
                None => Err(Denied::unavailable("token verification is not configured")),
            },
            AuthMode::TrustedHeader => trusted_header::admit(&self.trusted, &self.config.identity_header, request),
            // Boxed: the only mode that waits (on the auth backend), with an
            // HTTP client's state that every other handshake would carry
            // (and move) too.
            AuthMode::Forward => match &self.forward {
                Some(forwarder) => Box::pin(forwarder.admit(&self.config.identity_header, request)).await,
                None => Err(Denied::unavailable("the auth backend is not configured")),
            },
        }
    }

    /// Kinds whose room ids are subjects (`clicks/{account}`, say) admit
    /// only the subject itself.
    fn room_rule(&self, kind: &str, id: &str, admitted: &Admitted) -> Result<(), Denied> {
        if !self.config.subject_rooms.iter().any(|k| k == kind) {
            return Ok(());
        }
        match &admitted.identity {
            Some(identity) if identity.subject == id => Ok(()),
            Some(_) => Err(Denied::forbidden(format!("this identity may not enter {kind}/{id}"))),
            None => Err(Denied::unauthorized(format!("{kind} rooms need an identity"))),
        }
    }
}

/// Header values by lower-case name.
pub(crate) fn header_values<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// A subject or claim a client sends on: printable ASCII or UTF-8 without
/// control characters, 1-256 bytes (it ends up in room ids, logs and
/// storage keys).
pub(crate) fn valid_subject(subject: &str) -> bool {
    (1..=MAX_SUBJECT_LEN).contains(&subject.len()) && !subject.chars().any(char::is_control) && subject.trim() == subject
}

/// Longest subject accepted, in bytes: account and user ids, not documents.
pub const MAX_SUBJECT_LEN: usize = 256;
