//! The one error type of cluster operations.

use std::fmt;

use crate::settings::SettingsError;

/// Why a cluster operation failed.
#[derive(Debug)]
pub enum ClusterError {
    /// The settings cannot work (checked before connecting).
    Settings(SettingsError),
    /// Connecting to NATS failed (refused, TLS, authentication, timeout).
    Connect(String),
    /// JetStream is not enabled on the server or account, or a bucket or
    /// stream could not be created or opened (for instance because another
    /// node created it with different settings).
    Setup(String),
    /// A NATS request failed or timed out; the operation may be retried.
    Nats(String),
    /// The room name cannot be used (empty).
    BadRoom(String),
    /// The lease is no longer held (lost, released, or for another room).
    LeaseLost(String),
    /// Another writer changed the room's storage first: this node is not
    /// (or no longer) the room's owner.
    Fenced(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Settings(e) => e.fmt(f),
            Self::Connect(e) => write!(f, "cannot connect to NATS: {e}"),
            Self::Setup(e) => write!(f, "cannot set up JetStream: {e}"),
            Self::Nats(e) => write!(f, "NATS request failed: {e}"),
            Self::BadRoom(e) => write!(f, "bad room name: {e}"),
            Self::LeaseLost(e) => write!(f, "room lease lost: {e}"),
            Self::Fenced(e) => write!(f, "fenced off: {e}"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<SettingsError> for ClusterError {
    fn from(e: SettingsError) -> Self {
        Self::Settings(e)
    }
}

pub(crate) fn nats(context: &str, e: impl fmt::Display) -> ClusterError {
    ClusterError::Nats(format!("{context}: {e}"))
}
