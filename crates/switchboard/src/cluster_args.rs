//! The `serve` flags of cluster mode (docs/cluster.md), each overriding
//! its key in `[cluster]`.

use std::path::PathBuf;
use std::time::Duration;

use switchboard_server::ClusterConfig;

use crate::cluster_settings::{parse_lease_ttl, parse_node_name, parse_prefix, parse_server_url};
use crate::duration;
use crate::settings::{parse_count, Settings};

/// Joining a cluster through NATS. Global, so that a command with actions
/// (`accounts`) takes them after its action too.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Run as a node of a cluster: the NATS servers (with JetStream) to
    /// join, comma-separated (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`).
    #[arg(global = true, long = "cluster", env = "SWITCHBOARD_CLUSTER", value_delimiter = ',', value_name = "URL", value_parser = parse_server_url)]
    servers: Vec<String>,
    /// This node's name, unique in the cluster [default: host name and port].
    #[arg(global = true, long, env = "SWITCHBOARD_NODE", value_name = "NAME", value_parser = parse_node_name)]
    node: Option<String>,
    /// Prefix of the cluster's NATS subjects and buckets [default: switchboard].
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_PREFIX", value_name = "PREFIX", value_parser = parse_prefix)]
    cluster_prefix: Option<String>,
    /// How long a room's lease lives unrenewed: a dead owner's rooms move
    /// within it; the same on every node [default: 3s].
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_LEASE_TTL", value_parser = parse_lease_ttl)]
    cluster_lease_ttl: Option<Duration>,
    /// How long a node waits for a room's owner to answer a join [default: 3s].
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_FORWARD_TIMEOUT", value_parser = duration::parse_duration)]
    cluster_forward_timeout: Option<Duration>,
    /// JetStream replicas of the cluster's data, 1-5 (3 on a 3-server NATS
    /// cluster) [default: 1].
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_REPLICAS", value_parser = parse_count::<1, 5, usize>)]
    cluster_replicas: Option<usize>,
    /// NATS credentials file (`.creds`).
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_CREDENTIALS", value_name = "PATH")]
    cluster_credentials: Option<PathBuf>,
    /// PEM CA certificates to trust for NATS over TLS.
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_TLS_CA", value_name = "PATH")]
    cluster_tls_ca: Option<PathBuf>,
    /// PEM client certificate for NATS (with --cluster-tls-key).
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_TLS_CERT", value_name = "PATH")]
    cluster_tls_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(global = true, long, env = "SWITCHBOARD_CLUSTER_TLS_KEY", value_name = "PATH")]
    cluster_tls_key: Option<PathBuf>,
}

impl ClusterArgs {
    /// Applies the flags given over the file's `[cluster]`.
    pub fn apply(&self, settings: &mut Settings) {
        let cluster = &mut settings.cluster;
        if !self.servers.is_empty() {
            cluster.servers = self.servers.clone();
        }
        let paths = [
            (&mut cluster.credentials, &self.cluster_credentials),
            (&mut cluster.tls_ca, &self.cluster_tls_ca),
            (&mut cluster.tls_cert, &self.cluster_tls_cert),
            (&mut cluster.tls_key, &self.cluster_tls_key),
        ];
        for (target, value) in paths {
            if value.is_some() {
                target.clone_from(value);
            }
        }
        if self.node.is_some() {
            cluster.node.clone_from(&self.node);
        }
        if let Some(prefix) = &self.cluster_prefix {
            cluster.prefix.clone_from(prefix);
        }
        if let Some(ttl) = self.cluster_lease_ttl {
            cluster.lease_ttl = ttl;
        }
        if let Some(replicas) = self.cluster_replicas {
            cluster.replicas = replicas;
        }
        if let Some(timeout) = self.cluster_forward_timeout {
            cluster.forward_timeout = timeout;
        }
    }
}

/// The cluster a command-line tool (`accounts`, `token`) works on: the
/// configuration file's `[cluster]` with the flags and environment
/// variables applied, as `serve` reads them; `None` without NATS servers.
#[derive(clap::Args)]
pub struct ToolCluster {
    /// TOML configuration file: its `[cluster]` section is used.
    #[arg(global = true, long, env = "SWITCHBOARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

impl ToolCluster {
    /// The settings to connect with; the tool's node name is its own.
    pub fn config(&self) -> Result<Option<ClusterConfig>, String> {
        let mut settings = match &self.config {
            Some(file) => crate::config_file::read(file).map_err(|e| e.to_string())?,
            None => Settings::default(),
        };
        self.cluster.apply(&mut settings);
        settings.cluster.validate()?;
        Ok(settings.cluster.config(0).map(|mut config| {
            config.settings.node = format!("cli-{}", std::process::id());
            config
        }))
    }
}
