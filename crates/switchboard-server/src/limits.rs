//! Limits against one noisy client: WebSocket connections per IP,
//! handshakes per second per IP (a token bucket), a cap on connections in
//! all, and the counters of what they refused.
//!
//! Checked on the upgrade path before any room is asked, so a refused
//! client costs a table lookup and a short response. An accepted
//! connection holds a [`ConnPermit`] until it ends; dropping it gives the
//! places back. The table of addresses is bounded: an address with no open
//! connection and a full bucket carries no information and is forgotten at
//! the next sweep. IPv6 clients are counted per /64, the block one
//! subscriber usually gets, so a client cannot escape its limits by
//! rotating addresses within it. Rooms per node are the registry's
//! (`registry.rs`); its refusals are counted here too. Defaults and their
//! reasons: `docs/limits.md`.

use std::collections::hash_map;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use switchboard_net::Refusal;

/// The limits; `0` turns one off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open WebSocket connections in all; more are refused with 503.
    /// Default 100,000: far beyond what a single busy room server needs,
    /// well below the file descriptors a tuned host allows.
    pub max_connections: usize,
    /// Open WebSocket connections per client IP (per /64 for IPv6); more
    /// are refused with 429. Default 20,000: above the 10,000 connections
    /// the benchmarks open from one loopback address, and a carrier-grade
    /// NAT puts many users behind one address.
    pub max_connections_per_ip: usize,
    /// Upgrade requests per second per client IP, sustained; more are
    /// refused with 429 and `Retry-After`. Default 2,000: a reconnect
    /// storm of a whole office behind one NAT, and the benchmarks (10,000
    /// subscribers from 127.0.0.1, several hundred handshakes a second
    /// per source address), pass; a client looping on handshakes is held
    /// to a small share of a core.
    pub handshakes_per_second_per_ip: u32,
    /// Upgrade requests one IP may send in a burst above the sustained rate.
    /// Default 4,000: two seconds' worth.
    pub handshake_burst_per_ip: u32,
    /// Live rooms (actors) on this server; a connection that would start
    /// another is refused with 503. Default 100,000.
    pub max_rooms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100_000,
            max_connections_per_ip: 20_000,
            handshakes_per_second_per_ip: 2_000,
            handshake_burst_per_ip: 4_000,
            max_rooms: 100_000,
        }
    }
}

/// What the edge counts, for a metrics exporter: gauges and refusals by
/// reason. Shared with [`crate::Server::edge_stats`].
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// WebSocket connections holding a permit now.
    pub connections: AtomicUsize,
    /// Client addresses (IPv6: /64s) the limits table tracks now.
    pub tracked_ips: AtomicUsize,
    /// Live room actors now.
    pub rooms: AtomicUsize,
    /// Upgrades refused: too many handshakes per second from the IP.
    pub refused_handshake_rate: AtomicU64,
    /// Upgrades refused: too many connections from the IP.
    pub refused_connections_per_ip: AtomicU64,
    /// Upgrades refused: the server-wide connection cap.
    pub refused_max_connections: AtomicU64,
    /// Upgrades refused: starting the room would exceed the rooms cap.
    pub refused_max_rooms: AtomicU64,
    /// Upgrades refused: the `Origin` is not allowed.
    pub refused_origin: AtomicU64,
    /// Upgrades refused by identity at the edge: no or bad credentials (401).
    pub refused_unauthenticated: AtomicU64,
    /// Upgrades refused by identity at the edge: a room the identity may not
    /// enter (403).
    pub refused_forbidden: AtomicU64,
    /// Upgrades refused by identity at the edge: the auth backend failed (503).
    pub refused_auth_unavailable: AtomicU64,
    /// Connections holding a compressor of their own now (policy
    /// `dedicated`): from their first compressed message until their room
    /// hibernates or they end.
    pub compressors_held: AtomicU64,
}

impl EdgeStats {
    /// The counters as a JSON object (for `GET /api/stats`).
    pub fn to_json(&self) -> String {
        let g = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            r#"{{"connections":{},"rooms":{},"tracked_ips":{},"refused":{{"handshake_rate":{},"connections_per_ip":{},"max_connections":{},"max_rooms":{},"origin":{},"unauthenticated":{},"forbidden":{},"auth_unavailable":{}}}}}"#,
            g(&self.connections),
            g(&self.rooms),
            g(&self.tracked_ips),
            c(&self.refused_handshake_rate),
            c(&self.refused_connections_per_ip),
            c(&self.refused_max_connections),
            c(&self.refused_max_rooms),
            c(&self.refused_origin),
            c(&self.refused_unauthenticated),
            c(&self.refused_forbidden),
            c(&self.refused_auth_unavailable),
        )
    }
}

/// `Retry-After` of a refusal for open connections: how soon a place may
/// free up is unknown, so long enough that a client obeying it does not
/// add to the load.
const RETRY_CONNECTIONS: u64 = 10;

/// Smallest table size that triggers a sweep; a sweep runs again once the
/// table has doubled since the last one, so sweeps cost O(1) per insert.
const MIN_SWEEP: usize = 1024;

/// The limits in force and the per-address table.
pub(crate) struct EdgeLimits {
    limits: Limits,
    stats: Arc<EdgeStats>,
    table: Mutex<Table>,
}

struct Table {
    ips: HashMap<IpAddr, Entry>,
    next_sweep: usize,
}

struct Entry {
    slot: Arc<Slot>,
    tokens: f64,
    refilled: Instant,
}

/// An address's open connections; shared by its permits.
struct Slot {
    connections: AtomicUsize,
    stats: Arc<EdgeStats>,
}

/// One open connection's place in the limits; gives it back when dropped.
pub(crate) struct ConnPermit(Arc<Slot>);

/// A handshake that passed the rate check. It holds the address's slot
/// (when the check looked it up), so that [`EdgeLimits::acquire`] takes
/// the place without a second lookup; holding it also keeps the entry
/// from being swept in between.
#[derive(Default)]
pub(crate) struct Checked(Option<Arc<Slot>>);

impl ConnPermit {
    /// The counters the permit counts in.
    pub(crate) fn stats(&self) -> &Arc<EdgeStats> {
        &self.0.stats
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.stats.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The key an address is counted under: IPv4 as itself, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl EdgeLimits {
    pub(crate) fn new(limits: Limits, stats: Arc<EdgeStats>) -> EdgeLimits {
        EdgeLimits { limits, stats, table: Mutex::new(Table { ips: HashMap::new(), next_sweep: MIN_SWEEP }) }
    }

    pub(crate) fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }

    /// Takes a token from the IP's handshake bucket, or says when the next
    /// one is there (429).
    pub(crate) fn check_handshake(&self, ip: IpAddr, now: Instant) -> Result<Checked, Refusal> {
        let rate = self.limits.handshakes_per_second_per_ip;
        if rate == 0 {
            return Ok(Checked(None));
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = self.entry(&mut table, ip, now);
        if entry.tokens >= 1.0 {
            entry.tokens -= 1.0;
            return Ok(Checked(Some(entry.slot.clone())));
        }
        drop(table);
        self.stats.refused_handshake_rate.fetch_add(1, Ordering::Relaxed);
        // A whole token at the sustained rate; at least the one second
        // `Retry-After` can say.
        let wait = Duration::from_secs_f64(1.0 / f64::from(rate)).as_secs().max(1);
        Err(Refusal { status: 429, reason: "too many connection attempts from your address; slow down".into(), retry_after: Some(wait) })
    }

    /// A place for one more open connection from `ip` (which `checked`
    /// was checked for): refused with 429 if the IP has its share, 503 if
    /// the server is full.
    pub(crate) fn acquire(&self, checked: Checked, ip: IpAddr, now: Instant) -> Result<ConnPermit, Refusal> {
        let global = self.stats.connections.fetch_add(1, Ordering::AcqRel);
        if self.limits.max_connections != 0 && global >= self.limits.max_connections {
            self.stats.connections.fetch_sub(1, Ordering::AcqRel);
            self.stats.refused_max_connections.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal { status: 503, reason: "the server is at its connection limit; try again later".into(), retry_after: Some(RETRY_CONNECTIONS) });
        }
        let slot = match checked.0 {
            Some(slot) => slot,
            None => {
                let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
                self.entry(&mut table, ip, now).slot.clone()
            }
        };
        let mine = slot.connections.fetch_add(1, Ordering::AcqRel);
        // The permit owns both counts from here: dropping it on refusal
        // gives them back.
        let permit = ConnPermit(slot);
        if self.limits.max_connections_per_ip != 0 && mine >= self.limits.max_connections_per_ip {
            self.stats.refused_connections_per_ip.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal { status: 429, reason: "too many connections from your address".into(), retry_after: Some(RETRY_CONNECTIONS) });
        }
        Ok(permit)
    }

    /// Counts a connection refused because the rooms cap is reached.
    pub(crate) fn count_rooms_refusal(&self) {
        self.stats.refused_max_rooms.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused by identity at the edge, by its status.
    pub(crate) fn count_auth_refusal(&self, status: u16) {
        let counter = match status {
            403 => &self.stats.refused_forbidden,
            503 => &self.stats.refused_auth_unavailable,
            _ => &self.stats.refused_unauthenticated,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused for its origin.
    pub(crate) fn count_origin_refusal(&self) {
        self.stats.refused_origin.fetch_add(1, Ordering::Relaxed);
    }

    /// The IP's entry with its bucket refilled to `now`, sweeping idle
    /// entries first when the table has grown enough.
    fn entry<'t>(&self, table: &'t mut Table, ip: IpAddr, now: Instant) -> &'t mut Entry {
        let burst = f64::from(self.limits.handshake_burst_per_ip.max(1));
        let rate = f64::from(self.limits.handshakes_per_second_per_ip);
        if table.ips.len() >= table.next_sweep {
            let full = |e: &Entry| rate == 0.0 || e.tokens + now.saturating_duration_since(e.refilled).as_secs_f64() * rate >= burst;
            table.ips.retain(|_, e| Arc::strong_count(&e.slot) > 1 || !full(e));
            if table.ips.capacity() > 4 * table.ips.len().max(MIN_SWEEP) {
                let keep = 2 * table.ips.len();
                table.ips.shrink_to(keep);
            }
            table.next_sweep = (2 * table.ips.len()).max(MIN_SWEEP);
            self.stats.tracked_ips.store(table.ips.len(), Ordering::Relaxed);
        }
        let tracked = table.ips.len();
        let entry = match table.ips.entry(key(ip)) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(place) => {
                self.stats.tracked_ips.store(tracked + 1, Ordering::Relaxed);
                place.insert(Entry { slot: Arc::new(Slot { connections: AtomicUsize::new(0), stats: self.stats.clone() }), tokens: burst, refilled: now })
            }
        };
        entry.tokens = (entry.tokens + now.saturating_duration_since(entry.refilled).as_secs_f64() * rate).min(burst);
        entry.refilled = now;
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(l: Limits) -> EdgeLimits {
        EdgeLimits::new(l, Arc::new(EdgeStats::default()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let l = limits(Limits { handshakes_per_second_per_ip: 2, handshake_burst_per_ip: 3, ..Limits::default() });
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_handshake(ip("10.0.0.1"), t0).unwrap();
        }
        let refused = l.check_handshake(ip("10.0.0.1"), t0).err().unwrap();
        assert_eq!((refused.status, refused.retry_after), (429, Some(1)));
        l.check_handshake(ip("10.0.0.2"), t0).expect("another address has its own bucket");
        l.check_handshake(ip("10.0.0.1"), t0 + Duration::from_millis(500)).expect("refilled at 2/s");
        assert!(l.check_handshake(ip("10.0.0.1"), t0 + Duration::from_millis(500)).is_err());
        assert_eq!(l.stats.refused_handshake_rate.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn permits_count_per_ip_and_in_all_and_come_back_when_dropped() {
        let l = limits(Limits { max_connections_per_ip: 2, max_connections: 3, ..Limits::default() });
        let now = Instant::now();
        let a = [l.acquire(Checked::default(), ip("10.0.0.1"), now).unwrap(), l.acquire(Checked::default(), ip("10.0.0.1"), now).unwrap()];
        let refused = l.acquire(Checked::default(), ip("10.0.0.1"), now).err().unwrap();
        assert_eq!((refused.status, refused.retry_after), (429, Some(RETRY_CONNECTIONS)));
        let _b = l.acquire(Checked::default(), ip("10.0.0.2"), now).unwrap();
        assert_eq!(l.acquire(Checked::default(), ip("10.0.0.3"), now).err().unwrap().status, 503);
        assert_eq!(l.stats.connections.load(Ordering::Relaxed), 3);
        drop(a);
        assert_eq!(l.stats.connections.load(Ordering::Relaxed), 1);
        let _c = l.acquire(Checked::default(), ip("10.0.0.1"), now).unwrap();
    }

    #[test]
    fn a_checked_handshake_takes_its_place_under_the_address_it_was_checked_for() {
        let l = limits(Limits { max_connections_per_ip: 1, handshakes_per_second_per_ip: 10, ..Limits::default() });
        let now = Instant::now();
        let checked = l.check_handshake(ip("10.0.0.1"), now).unwrap();
        assert!(checked.0.is_some(), "the rate check looked the address up");
        let _held = l.acquire(checked, ip("10.0.0.1"), now).unwrap();
        let again = l.check_handshake(ip("10.0.0.1"), now).unwrap();
        assert_eq!(l.acquire(again, ip("10.0.0.1"), now).err().unwrap().status, 429, "the address has its one connection");
        assert_eq!(l.stats.connections.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let l = limits(Limits { max_connections_per_ip: 1, ..Limits::default() });
        let now = Instant::now();
        let _a = l.acquire(Checked::default(), ip("2001:db8:1:2::1"), now).unwrap();
        assert!(l.acquire(Checked::default(), ip("2001:db8:1:2:ffff::9"), now).is_err());
        let _b = l.acquire(Checked::default(), ip("2001:db8:1:3::1"), now).unwrap();
        let _c = l.acquire(Checked::default(), ip("10.0.0.1"), now).unwrap();
        assert!(l.acquire(Checked::default(), ip("::ffff:10.0.0.1"), now).is_err());
    }

    #[test]
    fn idle_addresses_are_forgotten_so_the_table_stays_bounded() {
        let l = limits(Limits { handshakes_per_second_per_ip: 100, handshake_burst_per_ip: 1, ..Limits::default() });
        let t0 = Instant::now();
        let held = l.acquire(Checked::default(), ip("192.0.2.1"), t0).unwrap();
        for i in 0..100_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            // Each address once, a millisecond apart: a bucket is full
            // again 10 ms after its one handshake.
            l.check_handshake(addr, t0 + Duration::from_millis(u64::from(i))).unwrap();
        }
        let tracked = l.stats.tracked_ips.load(Ordering::Relaxed);
        assert!(tracked < 2 * MIN_SWEEP, "{tracked} addresses still tracked");
        let table = l.table.lock().unwrap();
        assert!(table.ips.contains_key(&ip("192.0.2.1")), "an address with an open connection is kept");
        assert!(table.ips.capacity() < 8 * MIN_SWEEP, "the table's memory shrinks too: {}", table.ips.capacity());
        drop(table);
        drop(held);
    }
}
