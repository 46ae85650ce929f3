//! The cluster's figures at `/metrics` (docs/operations.md): this layer's
//! counters (one relaxed add where they happen) and, read at scrape time,
//! the lease layer's.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{counter, gauge};

/// Counters of one node's part in the cluster.
#[derive(Clone, Default)]
pub struct ClusterMetrics {
    /// Connection events this node sent to rooms' owners.
    pub(crate) events_forwarded: Counter,
    /// Effect messages this node sent to connections' nodes (a broadcast
    /// to several connections of one node is one).
    pub(crate) effects_forwarded: Counter,
    /// Joins that waited for an owner's answer.
    pub(crate) join_round_trips: Counter,
    /// Room requests (HTTP, `_stats`, recorded clicks) this node sent to
    /// rooms' owners.
    pub(crate) room_requests_forwarded: Counter,
    /// Room requests answered "gone" (the node asked no longer owned the
    /// room) and asked again of the room's next owner.
    pub(crate) room_requests_gone: Counter,
    /// Connections moved to a room's new owner.
    pub(crate) failovers: Counter,
    /// Leases this node lost (not released).
    pub(crate) leases_lost: Counter,
    nats: Arc<OnceLock<switchboard_cluster::Cluster>>,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterMetrics")
    }
}

impl ClusterMetrics {
    /// Reads the lease layer's figures from `nats` at scrape time.
    pub(crate) fn watch(&self, nats: switchboard_cluster::Cluster) {
        let _ = self.nats.set(nats);
    }

    pub(crate) fn lease_lost(&self) {
        self.leases_lost.inc();
    }
}

impl Collector for ClusterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.nats.get().map(switchboard_cluster::Cluster::stats).unwrap_or_default();
        let connected = self.nats.get().is_some_and(switchboard_cluster::Cluster::is_connected);
        gauge(&mut encoder, "switchboard_cluster_nats_connected", "1 while this node's NATS connection is up", u64::from(connected))?;
        gauge(&mut encoder, "switchboard_cluster_leases_held", "Room leases this node holds", stats.leases_held)?;
        let round_trips = stats.round_trips + self.join_round_trips.get();
        counter(&mut encoder, "switchboard_cluster_nats_round_trips", "NATS requests that waited for an answer (leases, storage, joins)", round_trips)?;
        counter(&mut encoder, "switchboard_cluster_events_forwarded", "Connection events sent over NATS to rooms' owners", self.events_forwarded.get())?;
        counter(
            &mut encoder,
            "switchboard_cluster_effects_forwarded",
            "Effect messages sent over NATS to connections' nodes (a broadcast crosses once per node)",
            self.effects_forwarded.get(),
        )?;
        counter(
            &mut encoder,
            "switchboard_cluster_room_requests_forwarded",
            "Room requests (HTTP to rooms, _stats, recorded clicks) sent over NATS to rooms' owners",
            self.room_requests_forwarded.get(),
        )?;
        counter(
            &mut encoder,
            "switchboard_cluster_room_requests_gone",
            "Room requests answered by a node that no longer owned the room, then sent to its next owner",
            self.room_requests_gone.get(),
        )?;
        counter(&mut encoder, "switchboard_cluster_failovers", "Connections moved to a room's new owner after the old one lost it", self.failovers.get())?;
        counter(&mut encoder, "switchboard_cluster_leases_lost", "Room leases this node lost rather than released", self.leases_lost.get())?;
        counter(&mut encoder, "switchboard_cluster_fenced_writes", "Storage writes refused because this node no longer owned the room", stats.fenced_writes)?;
        counter(&mut encoder, "switchboard_cluster_nats_reconnects", "Times the NATS connection came back after a loss", stats.reconnects)
    }
}
