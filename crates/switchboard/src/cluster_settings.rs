//! `[cluster]`: joining other nodes through NATS with JetStream
//! (docs/cluster.md). Off while `servers` is empty.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use switchboard_server::{
    check_node_name, default_node_name, ClusterConfig, ClusterSettings, DEFAULT_FORWARD_TIMEOUT, DEFAULT_LEASE_TTL, DEFAULT_PREFIX, MAX_LEASE_TTL,
    MIN_LEASE_TTL,
};

use crate::duration;

/// `[cluster]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// NATS server URLs; empty: a single node.
    #[serde(deserialize_with = "server_urls")]
    pub servers: Vec<String>,
    /// This node's name; unset: the host name and the listener's port.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "node_name")]
    pub node: Option<String>,
    /// Prefix of the NATS subjects and JetStream buckets.
    #[serde(deserialize_with = "prefix")]
    pub prefix: String,
    /// How long a room's lease lives without renewal.
    #[serde(with = "lease_ttl_text")]
    pub lease_ttl: Duration,
    /// How long a node waits for a room's owner to answer a join.
    #[serde(with = "duration::text")]
    pub forward_timeout: Duration,
    /// JetStream replicas of the cluster's buckets and stream (3 on a
    /// 3-server NATS cluster).
    #[serde(deserialize_with = "crate::settings::count::<_, 1, 5, _>")]
    pub replicas: usize,
    /// NATS credentials file (JWT and NKey seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// PEM CA certificates for NATS over TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for NATS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Its PEM key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster {
            servers: Vec::new(),
            node: None,
            prefix: DEFAULT_PREFIX.into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            replicas: 1,
            credentials: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Cluster {
    /// Checks the keys that need each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("cluster.tls_cert (--cluster-tls-cert) and cluster.tls_key (--cluster-tls-key) come together".into());
        }
        if self.servers.is_empty() {
            let set = self.node.is_some() || self.credentials.is_some() || self.tls_ca.is_some() || self.tls_cert.is_some();
            if set {
                return Err("cluster settings are given but cluster.servers (--cluster) names no NATS server".into());
            }
        }
        Ok(())
    }

    /// The server's cluster settings, `None` for a single node; `port` is
    /// the plain listener's, for the default node name.
    pub fn config(&self, port: u16) -> Option<ClusterConfig> {
        if self.servers.is_empty() {
            return None;
        }
        let node = self.node.clone().unwrap_or_else(|| default_node_name(port));
        let mut settings = ClusterSettings::new(self.servers.clone(), node);
        settings.prefix = self.prefix.clone();
        settings.lease_ttl = self.lease_ttl;
        settings.replicas = self.replicas;
        settings.credentials = self.credentials.clone();
        settings.tls_ca = self.tls_ca.clone();
        settings.tls_client_cert = self.tls_cert.clone().zip(self.tls_key.clone());
        let config = ClusterConfig { settings, forward_timeout: self.forward_timeout };
        Some(config)
    }
}

/// A NATS server URL: `nats://` or `tls://` and a host.
pub fn parse_server_url(url: &str) -> Result<String, String> {
    let rest = match url.split_once("://") {
        Some(("nats" | "tls", rest)) => rest,
        Some((scheme, _)) => return Err(format!("NATS server URL {url:?}: the scheme must be nats or tls, not {scheme:?}")),
        None => return Err(format!("NATS server URL {url:?} needs its scheme: nats://HOST:PORT or tls://HOST:PORT")),
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') || host.contains('/') && !host.ends_with('/') {
        return Err(format!("NATS server URL {url:?} has no host"));
    }
    Ok(url.to_owned())
}

/// A node name, for the flag.
pub fn parse_node_name(name: &str) -> Result<String, String> {
    check_node_name(name).map(|()| name.to_owned())
}

/// A subject prefix: a NATS subject token.
pub fn parse_prefix(prefix: &str) -> Result<String, String> {
    check_node_name(prefix)
        .map(|()| prefix.to_owned())
        .map_err(|_| format!("cluster prefix {prefix:?} must be 1-64 characters of A-Z a-z 0-9 - _"))
}

/// A lease TTL, [`MIN_LEASE_TTL`] to [`MAX_LEASE_TTL`].
pub fn parse_lease_ttl(text: &str) -> Result<Duration, String> {
    let ttl = duration::parse_duration(text)?;
    if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&ttl) {
        return Err(format!("the lease TTL must be {} to {}", duration::format_duration(MIN_LEASE_TTL), duration::format_duration(MAX_LEASE_TTL)));
    }
    Ok(ttl)
}

fn server_urls<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(deserializer)?.iter().map(|url| parse_server_url(url).map_err(serde::de::Error::custom)).collect()
}

fn node_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    parse_node_name(&String::deserialize(deserializer)?).map(Some).map_err(serde::de::Error::custom)
}

fn prefix<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    parse_prefix(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

mod lease_ttl_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ttl: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        crate::duration::text::serialize(ttl, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        super::parse_lease_ttl(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_need_a_known_scheme_and_a_host() {
        assert!(parse_server_url("nats://127.0.0.1:4222").is_ok());
        assert!(parse_server_url("tls://user:pw@nats.example:4222").is_ok());
        assert!(parse_server_url("nats.example:4222").unwrap_err().contains("scheme"));
        assert!(parse_server_url("http://nats.example").unwrap_err().contains("scheme"));
        assert!(parse_server_url("nats://").unwrap_err().contains("no host"));
    }

    #[test]
    fn node_names_and_ttls_are_checked() {
        assert!(parse_node_name("node-1_a").is_ok());
        assert!(parse_node_name("a.b").is_err());
        assert!(parse_node_name("").is_err());
        assert!(parse_lease_ttl("100ms").unwrap_err().contains("500ms to"));
        assert_eq!(parse_lease_ttl("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn settings_without_servers_are_refused_and_the_default_is_off() {
        assert!(Cluster::default().config(8080).is_none());
        let cluster = Cluster { node: Some("a".into()), ..Cluster::default() };
        assert!(cluster.validate().unwrap_err().contains("cluster.servers"));
        let cluster = Cluster { servers: vec!["nats://h:1".into()], tls_cert: Some("c".into()), ..Cluster::default() };
        assert!(cluster.validate().unwrap_err().contains("tls_key"));
        let cluster = Cluster { servers: vec!["nats://h:1".into()], ..Cluster::default() };
        let config = cluster.config(8081).unwrap();
        assert!(config.settings.node.ends_with("-8081"), "{}", config.settings.node);
        assert_eq!(config.settings.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(config.settings.validate(), Ok(()));
    }
}
