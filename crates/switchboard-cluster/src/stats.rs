//! Counters a node exports as metrics: leases held, NATS round trips,
//! lease losses, reconnects. Plain atomics, read as a [`ClusterStats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    leases_held: AtomicU64,
    round_trips: AtomicU64,
    claims_won: AtomicU64,
    claims_held_elsewhere: AtomicU64,
    lease_losses: AtomicU64,
    fenced_writes: AtomicU64,
    /// Successful connections, the first one included.
    connects: AtomicU64,
}

impl Counters {
    pub(crate) fn round_trip(&self) {
        self.round_trips.fetch_add(1, Relaxed);
    }
    pub(crate) fn round_trips(&self, n: u64) {
        self.round_trips.fetch_add(n, Relaxed);
    }
    pub(crate) fn lease_won(&self) {
        self.claims_won.fetch_add(1, Relaxed);
        self.leases_held.fetch_add(1, Relaxed);
    }
    pub(crate) fn held_elsewhere(&self) {
        self.claims_held_elsewhere.fetch_add(1, Relaxed);
    }
    /// A lease ended; `lost` when it ended without a release.
    pub(crate) fn lease_ended(&self, lost: bool) {
        self.leases_held.fetch_sub(1, Relaxed);
        if lost {
            self.lease_losses.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn fenced(&self) {
        self.fenced_writes.fetch_add(1, Relaxed);
    }
    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClusterStats {
        ClusterStats {
            leases_held: self.leases_held.load(Relaxed),
            round_trips: self.round_trips.load(Relaxed),
            claims_won: self.claims_won.load(Relaxed),
            claims_held_elsewhere: self.claims_held_elsewhere.load(Relaxed),
            lease_losses: self.lease_losses.load(Relaxed),
            fenced_writes: self.fenced_writes.load(Relaxed),
            reconnects: self.connects.load(Relaxed).saturating_sub(1),
        }
    }
}

/// What one node's cluster layer has done since it connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Room leases this node holds now.
    pub leases_held: u64,
    /// NATS requests this layer waited for (lease claims and renewals,
    /// storage publishes acknowledged, reads, purges).
    pub round_trips: u64,
    /// Claims that made this node a room's owner.
    pub claims_won: u64,
    /// Claims that found another live owner.
    pub claims_held_elsewhere: u64,
    /// Leases that ended without a release: renewal refused or the TTL
    /// passed (the node was paused, or cut off from NATS).
    pub lease_losses: u64,
    /// Storage writes JetStream refused because another owner wrote first.
    pub fenced_writes: u64,
    /// Times the NATS connection came back after a disconnect.
    pub reconnects: u64,
}
