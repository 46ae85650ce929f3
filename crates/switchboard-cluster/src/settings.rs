//! What a node needs to join a cluster: the NATS servers, how to
//! authenticate to them, the node's name, the lease TTL and the prefix of
//! every subject, bucket and stream; and the checks that reject bad values
//! before anything connects.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The lease TTL when none is configured: a dead node's rooms move after
/// at most this long, and a renewal goes out every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
/// Below this, renewals (every third of the TTL) would compete with real
/// traffic and a short network hiccup would cost the leases.
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(500);
/// Above this, a dead node's rooms stay unreachable for too long to be useful.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(300);
/// The default prefix of subjects, buckets and streams.
pub const DEFAULT_PREFIX: &str = "switchboard";
/// Prefixes and node names end up in bucket names and subject tokens.
const MAX_NAME_LEN: usize = 64;

/// How a node connects to NATS and takes part in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// NATS server URLs (`nats://host:port`, `tls://host:port`); the client
    /// reconnects to any of them.
    pub urls: Vec<String>,
    /// This node's name, unique in the cluster: written into the leases it
    /// holds and used by other nodes to reach it. Letters, digits, `-`, `_`.
    pub node: String,
    /// A NATS credentials file (`.creds`: user JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// PEM file of the CA certificates that sign the NATS servers'
    /// certificates; setting it requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS (both or neither).
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// How long a lease lives without renewal: the longest a dead or paused
    /// owner keeps its rooms. Every node of a cluster must use the same.
    pub lease_ttl: Duration,
    /// Prefix of every subject, bucket and stream, so several clusters can
    /// share one NATS account. Letters, digits, `-`, `_`.
    pub prefix: String,
    /// JetStream replicas of the buckets and the stream (1 for one NATS
    /// server, 3 for a three-server NATS cluster).
    pub replicas: usize,
}

impl ClusterSettings {
    /// Settings with the defaults for everything but the servers and the name.
    pub fn new(urls: Vec<String>, node: impl Into<String>) -> Self {
        Self {
            urls,
            node: node.into(),
            credentials: None,
            tls_ca: None,
            tls_client_cert: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            prefix: DEFAULT_PREFIX.to_owned(),
            replicas: 1,
        }
    }

    /// Checks every field; the error names the field and what is wrong.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.urls.is_empty() {
            return Err(SettingsError::new("urls", "at least one NATS server URL is needed"));
        }
        for url in &self.urls {
            check_url(url)?;
        }
        check_name("node", &self.node)?;
        check_name("prefix", &self.prefix)?;
        if self.lease_ttl < MIN_LEASE_TTL || self.lease_ttl > MAX_LEASE_TTL {
            return Err(SettingsError::new("lease_ttl", format!("{:?} is outside {:?}..={:?}", self.lease_ttl, MIN_LEASE_TTL, MAX_LEASE_TTL)));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(SettingsError::new("replicas", format!("{} is not between 1 and 5 (JetStream's limit)", self.replicas)));
        }
        for (field, path) in [("credentials", self.credentials.as_ref()), ("tls_ca", self.tls_ca.as_ref())] {
            check_file(field, path)?;
        }
        if let Some((cert, key)) = &self.tls_client_cert {
            check_file("tls_client_cert", Some(cert))?;
            check_file("tls_client_key", Some(key))?;
        }
        Ok(())
    }

    /// Whether the connection must use TLS: a `tls://` URL or any TLS file.
    pub fn tls_required(&self) -> bool {
        self.tls_ca.is_some() || self.tls_client_cert.is_some() || self.urls.iter().any(|u| u.starts_with("tls://"))
    }
}

fn check_url(url: &str) -> Result<(), SettingsError> {
    let rest = ["nats://", "tls://"].iter().find_map(|scheme| url.strip_prefix(scheme));
    let Some(rest) = rest else {
        return Err(SettingsError::new("urls", format!("{url:?} does not start with nats:// or tls://")));
    };
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Err(SettingsError::new("urls", format!("{url:?} has no :port")));
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(SettingsError::new("urls", format!("{url:?} needs a host and a port between 1 and 65535")));
    }
    Ok(())
}

/// Names that go into subject tokens and bucket names as they are.
fn check_name(field: &'static str, name: &str) -> Result<(), SettingsError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(SettingsError::new(field, format!("{name:?} must be 1 to {MAX_NAME_LEN} characters")));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(SettingsError::new(field, format!("{name:?} contains {bad:?}; use letters, digits, '-' and '_'")));
    }
    Ok(())
}

fn check_file(field: &'static str, path: Option<&PathBuf>) -> Result<(), SettingsError> {
    match path {
        Some(path) if !path.is_file() => Err(SettingsError::new(field, format!("{} is not a readable file", path.display()))),
        _ => Ok(()),
    }
}

/// A setting that cannot work, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The field, as named in [`ClusterSettings`].
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl SettingsError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster setting {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for SettingsError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings::new(vec!["nats://127.0.0.1:4222".into()], "node-1")
    }

    fn rejected(change: impl FnOnce(&mut ClusterSettings)) -> SettingsError {
        let mut s = settings();
        change(&mut s);
        s.validate().expect_err("should be rejected")
    }

    #[test]
    fn defaults_are_valid() {
        settings().validate().unwrap();
        assert!(!settings().tls_required());
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(rejected(|s| s.urls.clear()).field, "urls");
        assert_eq!(rejected(|s| s.urls = vec!["http://x:1".into()]).field, "urls");
        assert_eq!(rejected(|s| s.urls = vec!["nats://x".into()]).field, "urls");
        assert_eq!(rejected(|s| s.urls = vec!["nats://x:0".into()]).field, "urls");
        assert_eq!(rejected(|s| s.node = String::new()).field, "node");
        assert_eq!(rejected(|s| s.node = "a.b".into()).field, "node");
        assert_eq!(rejected(|s| s.node = "x".repeat(65)).field, "node");
        assert_eq!(rejected(|s| s.prefix = "sb>".into()).field, "prefix");
        assert_eq!(rejected(|s| s.lease_ttl = Duration::from_millis(100)).field, "lease_ttl");
        assert_eq!(rejected(|s| s.lease_ttl = Duration::from_secs(3600)).field, "lease_ttl");
        assert_eq!(rejected(|s| s.replicas = 0).field, "replicas");
        assert_eq!(rejected(|s| s.credentials = Some("/nonexistent/x.creds".into())).field, "credentials");
        let e = rejected(|s| s.node = "a b".into());
        assert_eq!(e.to_string(), "cluster setting node: \"a b\" contains ' '; use letters, digits, '-' and '_'");
    }

    #[test]
    fn credentials_in_the_url_and_tls_urls_are_accepted() {
        let mut s = settings();
        s.urls = vec!["nats://user:pass@127.0.0.1:4222".into(), "tls://nats.example:4443".into()];
        s.validate().unwrap();
        assert!(s.tls_required());
    }
}
