//! The cluster's counters, registered with the server's metrics
//! (docs/operations.md): each is one relaxed add where it happens.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters of one node's part in the cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterMetrics {
    /// Room leases this node holds now.
    pub(crate) leases_held: Gauge,
    /// Connection events this node sent to rooms' owners.
    pub(crate) events_forwarded: Counter,
    /// Effect messages this node sent to other nodes' connections (a
    /// broadcast to several connections of one node is one).
    pub(crate) effects_forwarded: Counter,
    /// Requests that waited for another node's answer (joins, lease reads and writes).
    pub(crate) round_trips: Counter,
    /// Connections moved to a room's new owner after the old one lost its lease.
    pub(crate) failovers: Counter,
}

impl ClusterMetrics {
    /// Adds them to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register("switchboard_cluster_leases_held", "Room leases this node holds", self.leases_held.clone());
        registry.register("switchboard_cluster_events_forwarded", "Connection events sent over NATS to rooms' owners", self.events_forwarded.clone());
        registry.register(
            "switchboard_cluster_effects_forwarded",
            "Effect messages sent over NATS to other nodes' connections (one per node per batch)",
            self.effects_forwarded.clone(),
        );
        registry.register("switchboard_cluster_nats_round_trips", "NATS requests that waited for an answer", self.round_trips.clone());
        registry.register("switchboard_cluster_failovers", "Connections re-attached to a room's new owner", self.failovers.clone());
    }
}
