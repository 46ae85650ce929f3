//! The default token secret in cluster mode: one HS256 secret for every
//! node, kept in the cluster's shared `accounts` table under the key
//! `token-secret` (64 hex digits, made by the first node with a create, so
//! racing nodes end up with the same one). A dashboard token minted by one
//! node then opens the dashboard through any other, and `switchboard
//! token --cluster ...` mints tokens every node takes. Only used where the
//! operator configured no keys; anyone who can read the cluster's
//! JetStream can read it, as they can read everything else the cluster
//! keeps there.

use rand::Rng;
use switchboard_cluster::{ClusterSettings, Tables};

use super::config::AuthConfig;
use super::kind_defaults::wants_default_keys;
use super::token::{JwtKeys, KeyError};

/// The shared table the secret is kept in.
const TABLE: &str = "accounts";
/// Its key there.
const KEY: &str = "token-secret";

/// Gives `config` the cluster's secret where the built-in defaults would
/// otherwise make a secret of this node's own.
pub(crate) async fn use_shared_secret(config: &mut AuthConfig, tables: &Tables) -> Result<(), KeyError> {
    if wants_default_keys(config) {
        config.jwt = Some(std::sync::Arc::new(load_or_create(tables).await?));
    }
    Ok(())
}

/// `switchboard token` in cluster mode: the cluster's secret, made now if
/// no node made it yet.
pub async fn cluster_minting_keys(settings: ClusterSettings) -> Result<JwtKeys, KeyError> {
    let tables = Tables::connect(settings).await.map_err(|e| KeyError(e.to_string()))?;
    load_or_create(&tables).await
}

async fn load_or_create(tables: &Tables) -> Result<JwtKeys, KeyError> {
    let table = tables.open(TABLE).await.map_err(|e| KeyError(e.to_string()))?;
    let unreachable = |e: switchboard_cluster::ClusterError| KeyError(format!("the cluster's token secret: {e}"));
    if let Some((secret, _)) = table.entry(KEY).await.map_err(unreachable)? {
        return JwtKeys::from_secret(&secret);
    }
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if table.create(KEY, hex.clone().into_bytes().into()).await.map_err(unreachable)?.is_some() {
        tracing::info!(bucket = table.bucket(), "made the cluster's token secret");
        return JwtKeys::from_secret(hex.as_bytes());
    }
    // Another node made it first: use theirs.
    let (secret, _) = table.entry(KEY).await.map_err(unreachable)?.ok_or_else(|| KeyError("the cluster's token secret vanished".into()))?;
    JwtKeys::from_secret(&secret)
}
