//! The node's handle on the cluster: one NATS client and JetStream context,
//! the lease and alarm buckets and the storage stream, created on first use
//! by whichever node comes first and opened by the others.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_nats::{Client, ConnectOptions, Event};

use crate::error::ClusterError;
use crate::names::Names;
use crate::settings::ClusterSettings;
use crate::stats::{ClusterStats, Counters};

/// How long the first connection may take before `connect` gives up; after
/// that the client reconnects on its own, for ever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one JetStream request (publish ack, key-value call) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// JetStream drops a repeated message id within this window: a publish
/// retried after a lost ack is stored once.
pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A connected node: cheap to clone, every clone shares the connection.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) settings: ClusterSettings,
    pub(crate) names: Names,
    pub(crate) leases: kv::Store,
    pub(crate) alarms: kv::Store,
    pub(crate) counters: Arc<Counters>,
    /// Tells this process's leases from those of an earlier process that
    /// ran under the same node name.
    pub(crate) instance: String,
}

impl Cluster {
    /// Validates the settings, connects to NATS and creates (or opens) the
    /// lease bucket, the alarm bucket and the storage stream. Nodes starting
    /// together are fine: creating an existing bucket or stream with the
    /// same configuration is a no-op; a different configuration (say,
    /// another `lease_ttl`) is an error that names it.
    pub async fn connect(settings: ClusterSettings) -> Result<Cluster, ClusterError> {
        settings.validate()?;
        let counters = Arc::new(Counters::default());
        let client = connect_client(&settings, counters.clone()).await?;
        let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).ack_timeout(REQUEST_TIMEOUT).build(client.clone());
        let names = Names::new(&settings.prefix);
        let leases = open_bucket(&js, lease_bucket_config(&settings, &names)).await?;
        let alarms = open_bucket(&js, alarm_bucket_config(&settings, &names)).await?;
        open_store_stream(&js, &settings, &names).await?;
        counters.round_trips(6);
        let instance = client.new_inbox().rsplit('.').next().unwrap_or_default().to_owned();
        tracing::info!(node = %settings.node, urls = ?settings.urls, "joined the cluster");
        Ok(Cluster { inner: Arc::new(Inner { client, js, settings, names, leases, alarms, counters, instance }) })
    }

    /// The NATS client, for the server layer's own subjects.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The JetStream context this node uses.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.settings.node
    }

    /// The settings this node connected with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// Whether the NATS connection is up now (for readiness checks).
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The counters since this node connected.
    pub fn stats(&self) -> ClusterStats {
        self.inner.counters.snapshot()
    }
}

pub(crate) async fn connect_client(settings: &ClusterSettings, counters: Arc<Counters>) -> Result<Client, ClusterError> {
    let mut options = ConnectOptions::new().name(format!("switchboard {}", settings.node)).connection_timeout(CONNECT_TIMEOUT);
    if let Some(path) = &settings.credentials {
        options = options.credentials_file(path).await.map_err(|e| ClusterError::Connect(format!("credentials file {}: {e}", path.display())))?;
    }
    if let Some(ca) = &settings.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &settings.tls_client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if settings.tls_required() {
        options = options.require_tls(true);
    }
    let node = settings.node.clone();
    options = options.event_callback(move |event| {
        let counters = counters.clone();
        let node = node.clone();
        async move {
            match event {
                Event::Connected => {
                    counters.connected();
                    tracing::info!(%node, "connected to NATS");
                }
                Event::Disconnected => tracing::warn!(%node, "NATS connection lost; reconnecting"),
                other => tracing::info!(%node, event = %other, "NATS"),
            }
        }
    });
    options.connect(settings.urls.clone()).await.map_err(|e| ClusterError::Connect(format!("{:?}: {e}", settings.urls)))
}

fn lease_bucket_config(settings: &ClusterSettings, names: &Names) -> kv::Config {
    kv::Config {
        bucket: names.lease_bucket(),
        description: "switchboard room leases: the owner node of each room".into(),
        history: 1,
        // The bucket's max age is the lease TTL: an entry nobody renews
        // disappears, and the next create of that key succeeds.
        max_age: settings.lease_ttl,
        storage: jetstream::stream::StorageType::File,
        num_replicas: settings.replicas,
        ..Default::default()
    }
}

fn alarm_bucket_config(settings: &ClusterSettings, names: &Names) -> kv::Config {
    kv::Config {
        bucket: names.alarm_bucket(),
        description: "switchboard room alarms: the earliest alarm of each room".into(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: settings.replicas,
        ..Default::default()
    }
}

/// Creates the bucket's stream the way key-value buckets are laid out
/// (`KV_<bucket>` on `$KV.<bucket>.>`) and opens it. The client's own
/// bucket creation first asks for account details in a shape nats-server
/// 2.9 does not send, so the stream is created directly.
pub(crate) async fn open_bucket(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, ClusterError> {
    let name = config.bucket.clone();
    let (max_age, replicas) = (config.max_age, config.num_replicas);
    let stream = stream::Config {
        name: format!("KV_{name}"),
        description: Some(config.description),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: config.history,
        max_age,
        storage: config.storage,
        num_replicas: config.num_replicas,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        duplicate_window: if max_age.is_zero() { DUPLICATE_WINDOW } else { max_age.min(DUPLICATE_WINDOW) },
        ..Default::default()
    };
    // Another node may create it between our look-up and our create: open
    // it either way, and name both errors if that fails too.
    let created = js.get_or_create_stream(stream).await.err();
    let store = js.get_key_value(name.as_str()).await.map_err(|open| match &created {
        Some(create) => ClusterError::Setup(format!("bucket {name}: cannot create it ({create}) nor open it ({open}); is JetStream enabled?")),
        None => ClusterError::Setup(format!("bucket {name}: {open}")),
    })?;
    let status = store.status().await.map_err(|e| ClusterError::Setup(format!("bucket {name}: {e}")))?;
    if status.info.config.max_age != max_age {
        return Err(ClusterError::Setup(format!(
            "bucket {name} has max age {:?} but this node wants {max_age:?}: every node needs the same lease_ttl (or delete the bucket)",
            status.info.config.max_age
        )));
    }
    same_replicas(&format!("bucket {name}"), status.info.config.num_replicas, replicas)?;
    Ok(store)
}

async fn open_store_stream(js: &jetstream::Context, settings: &ClusterSettings, names: &Names) -> Result<(), ClusterError> {
    let config = stream::Config {
        name: names.store_stream(),
        description: Some("switchboard room storage: each room's batches and snapshots".into()),
        subjects: vec![names.store_subjects()],
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        allow_direct: true,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    let name = format!("stream {}", names.store_stream());
    // Another node may create it between our look-up and our create: try twice.
    let stream = match js.get_or_create_stream(config.clone()).await {
        Ok(stream) => stream,
        Err(_) => js.get_or_create_stream(config).await.map_err(|e| ClusterError::Setup(format!("{name}: {e}")))?,
    };
    same_replicas(&name, stream.cached_info().config.num_replicas, settings.replicas)
}

/// A node that asks for more (or fewer) replicas than the cluster was
/// created with would believe in a durability it does not get.
fn same_replicas(what: &str, existing: usize, wanted: usize) -> Result<(), ClusterError> {
    if existing.max(1) != wanted {
        return Err(ClusterError::Setup(format!(
            "{what} has {existing} replicas but this node wants {wanted}: every node needs the same replicas (or change the stream with the nats tool)"
        )));
    }
    Ok(())
}
