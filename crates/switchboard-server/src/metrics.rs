//! The server's metrics, rendered at `/metrics` in the OpenMetrics text
//! format (which Prometheus scrapes) by `prometheus-client`.
//!
//! Most figures are counters that already exist for other reasons and are
//! only read at scrape time: the listener's [`NetStats`], the edge's
//! [`EdgeStats`], the process-wide
//! room counts ([`RoomCensus`]) and /proc/self ([`ProcessStats`]). A
//! connection's hot path pays nothing for metrics beyond those relaxed
//! adds. What is recorded here instead happens at most once per storage
//! commit (the commit latency histogram, see `timed_store`) or once per
//! request at the edge (auth decisions). docs/operations.md lists every
//! metric with its type and labels.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use switchboard_net::NetStats;
use switchboard_room::RoomCensus;

use crate::limits::EdgeStats;
use crate::process_stats::ProcessStats;
use crate::tls::TlsStats;

/// The content type of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of one server.
pub(crate) struct Metrics {
    registry: Registry,
    auth: AuthDecisions,
    storage: StorageMetrics,
}

/// Counts of the edge's decisions about who a request is, by auth mode and
/// outcome. Both labels are names from a fixed set (`&'static str`), so the
/// number of series stays bounded whatever clients send.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthDecisions(Family<[(&'static str, &'static str); 2], Counter>);

impl AuthDecisions {
    /// One decision: `mode` as configured for the room kind (e.g.
    /// `token`), `decision` what came of it (e.g. `allowed`, `denied`).
    #[allow(dead_code)] // the edge's identity checks record here
    pub(crate) fn record(&self, mode: &'static str, decision: &'static str) {
        self.0.get_or_create(&[("mode", mode), ("decision", decision)]).inc();
    }
}

/// Storage commits: how long each took until durable, and how many failed.
#[derive(Clone, Debug)]
pub(crate) struct StorageMetrics {
    pub(crate) commit_seconds: Histogram,
    pub(crate) commit_failures: Counter,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        // 0.25 ms to about 4 s: a commit in memory, an fsync on an SSD, a
        // slow or saturated disk.
        StorageMetrics { commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)), commit_failures: Counter::default() }
    }
}

impl Metrics {
    /// The metrics of a server whose listener counts into `net`, and whose
    /// TLS listener, if it has one, into `tls`.
    pub(crate) fn new(net: Arc<NetStats>, edge: Arc<EdgeStats>, tls: Option<Arc<TlsStats>>) -> Metrics {
        let mut registry = Registry::default();
        let auth = AuthDecisions::default();
        let storage = StorageMetrics::default();
        registry.register("switchboard_auth_decisions", "Identity decisions at the edge, by auth mode and decision", auth.0.clone());
        registry.register_with_unit(
            "switchboard_storage_commit",
            "Time from a storage batch's submission until it was durable (or failed)",
            Unit::Seconds,
            storage.commit_seconds.clone(),
        );
        registry.register("switchboard_storage_commit_failures", "Storage batches that failed to commit", storage.commit_failures.clone());
        registry.register_collector(Box::new(Live { net, edge: edge.clone() }));
        // The edge's limit counters (docs/limits.md), read at scrape time.
        registry.register_collector(Box::new(Edge(edge)));
        if let Some(tls) = tls {
            registry.register_collector(Box::new(Tls(tls)));
        }
        Metrics { registry, auth, storage }
    }

    /// The edge's auth decision counters.
    #[allow(dead_code)] // the edge's auth checks record into it
    pub(crate) fn auth(&self) -> &AuthDecisions {
        &self.auth
    }

    /// Adds the cluster's counters (cluster mode only).
    pub(crate) fn register_cluster(&mut self, cluster: &crate::cluster::ClusterMetrics) {
        self.registry.register_collector(Box::new(cluster.clone()));
    }

    /// What the storage wrapper records into.
    pub(crate) fn storage(&self) -> &StorageMetrics {
        &self.storage
    }

    /// Every metric as OpenMetrics text ([`CONTENT_TYPE`]).
    pub(crate) fn render(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug
        // in a metric's name or labels, and leaves what was written so far.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The figures read at scrape time.
#[derive(Debug)]
struct Live {
    net: Arc<NetStats>,
    edge: Arc<EdgeStats>,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let net = self.net.snapshot();
        gauge(&mut encoder, "switchboard_connections_open", "WebSocket connections open now", net.connections_open)?;
        counter(&mut encoder, "switchboard_connections_opened", "WebSocket connections whose handshake completed", net.connections_opened)?;
        gauge(&mut encoder, "switchboard_connections_parked", "Idle WebSocket connections parked now, without a task of their own", net.connections_parked)?;
        counter(&mut encoder, "switchboard_connections_resumed", "Times a parked WebSocket connection was resumed", net.resumed)?;
        let outcomes = [
            ("clean", net.closed_clean),
            ("abnormal", net.closed_abnormal),
            ("protocol_error", net.closed_protocol_error),
            ("slow_consumer", net.closed_slow_consumer),
            ("timeout", net.closed_timeout),
        ];
        counters(&mut encoder, "switchboard_connections_closed", "WebSocket connections ended, by how they ended", "outcome", outcomes)?;
        let codes: Vec<(String, u64)> = net.closed_by_code().map(|(class, n)| (class.to_string(), n)).collect();
        counters(&mut encoder, "switchboard_connections_closed_by_code", "WebSocket connections ended, by close code", "code", codes)?;
        let refusals = [
            ("bad_request", net.handshake_bad_request),
            ("wrong_version", net.handshake_wrong_version),
            ("not_found", net.handshake_not_found),
            ("rejected", net.handshake_rejected),
            ("timeout", net.handshake_timeout),
        ];
        counters(&mut encoder, "switchboard_handshake_refusals", "WebSocket upgrade requests refused before the 101, by reason", "reason", refusals)?;
        counter(&mut encoder, "switchboard_messages_received", "Complete WebSocket messages received", net.messages_in)?;
        counter(&mut encoder, "switchboard_received_bytes", "Bytes read from WebSocket connections after their handshake", net.bytes_in)?;
        counter(&mut encoder, "switchboard_sent_bytes", "Bytes written to WebSocket connections after their handshake", net.bytes_out)?;
        counter(
            &mut encoder,
            "switchboard_outbound_cutoffs",
            "Connections cut off with 1008 because they did not read what was sent to them",
            net.closed_slow_consumer,
        )?;

        let rooms = RoomCensus::now();
        gauge(&mut encoder, "switchboard_rooms_live", "Rooms whose actor runs (awake or hibernated)", rooms.live)?;
        gauge(&mut encoder, "switchboard_rooms_hibernated", "Live rooms whose in-memory state is dropped until the next event", rooms.hibernated())?;
        counter(&mut encoder, "switchboard_room_wakeups", "Room objects built: a room's first use and every wake from hibernation", rooms.wakeups)?;

        gauge(
            &mut encoder,
            "switchboard_deflate_compressors",
            "Connections holding a compressor of their own (compression policy dedicated): from their first compressed message until their room hibernates",
            self.edge.compressors_held.load(std::sync::atomic::Ordering::Relaxed),
        )?;

        let process = ProcessStats::read();
        if let Some(bytes) = process.resident_bytes {
            gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size in bytes", bytes)?;
        }
        if let Some(fds) = process.open_fds {
            gauge(&mut encoder, "process_open_fds", "Open file descriptors", fds)?;
        }
        if let Some(max) = process.max_fds {
            gauge(&mut encoder, "process_max_fds", "Limit on open file descriptors", max)?;
        }
        if let Some(seconds) = process.cpu_seconds {
            let metric = ConstCounter::new(seconds);
            metric.encode(encoder.encode_descriptor("process_cpu_seconds", "User and system CPU time spent, in seconds", None, metric.metric_type())?)?;
        }
        Ok(())
    }
}

/// The edge's limits, read at scrape time.
#[derive(Debug)]
struct Edge(Arc<EdgeStats>);

impl Collector for Edge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &self.0;
        let refusals = [
            ("handshake_rate", e.refused_handshake_rate.load(Relaxed)),
            ("origin", e.refused_origin.load(Relaxed)),
            ("connections_per_ip", e.refused_connections_per_ip.load(Relaxed)),
            ("max_connections", e.refused_max_connections.load(Relaxed)),
            ("max_rooms", e.refused_max_rooms.load(Relaxed)),
        ];
        counters(&mut encoder, "switchboard_edge_refusals", "WebSocket upgrades refused by the edge's limits and Origin check, by reason", "reason", refusals)?;
        let places = e.connections.load(Relaxed) as u64;
        gauge(&mut encoder, "switchboard_edge_connections", "WebSocket connections holding a place in the connection limits", places)?;
        gauge(&mut encoder, "switchboard_edge_tracked_ips", "Client addresses (IPv6: /64s) the per-IP limits track now", e.tracked_ips.load(Relaxed) as u64)
    }
}

/// The TLS listener's failed handshakes, read at scrape time.
#[derive(Debug)]
struct Tls(Arc<TlsStats>);

impl Collector for Tls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counters(&mut encoder, "switchboard_tls_handshake_failures", "TLS handshakes on the TLS listener that failed, by reason", "reason", self.0.failures())
    }
}

/// One gauge's sample, read at scrape time.
pub(crate) fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One counter's sample, read at scrape time.
pub(crate) fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter family with one label.
fn counters<L: AsRef<str>>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        ConstCounter::new(n).encode(family.encode_family(&[(label, value.as_ref())])?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_live_figures_and_recorded_ones() {
        let edge = Arc::new(EdgeStats::default());
        edge.refused_origin.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        let metrics = Metrics::new(Arc::new(NetStats::new()), edge, Some(Arc::default()));
        metrics.auth().record("token", "denied");
        metrics.auth().record("token", "denied");
        metrics.storage().commit_seconds.observe(0.003);
        let text = metrics.render();
        assert!(text.contains("switchboard_auth_decisions_total{mode=\"token\",decision=\"denied\"} 2\n"), "{text}");
        assert!(text.contains("switchboard_storage_commit_seconds_count 1\n"), "{text}");
        assert!(text.contains("# TYPE switchboard_connections_open gauge\nswitchboard_connections_open 0\n"), "{text}");
        assert!(text.contains("switchboard_edge_refusals_total{reason=\"origin\"} 3\n"), "{text}");
        assert!(text.contains("switchboard_tls_handshake_failures_total{reason=\"not_tls\"} 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
