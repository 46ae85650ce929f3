//! The connection timers of one listener: one periodic sweep instead of a
//! timer per connection.
//!
//! Every open connection has a deadline (its next heartbeat check, or the
//! end of its closing handshake) and almost never reaches it before it is
//! pushed back. A tokio `Sleep` per connection would add its state to every
//! connection's task, and a wake-up per re-arm. Instead a connection
//! publishes its next deadline as a number (milliseconds on the listener's
//! clock, [`Timers::now`]; the engine's `proto::timers` says which) in its
//! [`Outbound`], and one task per
//! listener reads every connection's deadline once per tick and wakes only
//! those whose deadline has passed. That costs one `Weak` pointer per
//! connection, in the sweep's list.
//!
//! Precision: a deadline fires up to one tick late, never early. The tick
//! is a quarter of the shortest connection timer, at most one second
//! ([`NetConfig::timer_tick`](crate::NetConfig)); with the defaults a ping
//! goes out 30-31 s after the last frame from the peer.
//!
//! The same list tells every connection when the server stops, and asks
//! each one whether it is idle once per `NetConfig::park_after` where
//! connections park (see `park`).

use std::num::NonZeroU64;
use std::ops::Add;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::listener::Shutdown;
use crate::outbound::Outbound;

/// A time on a listener's clock: milliseconds since the listener started,
/// plus one, so that it is never 0 (an `Option<Ms>` is as small as a `Ms`,
/// and 0 can mean "no deadline" where a deadline is published).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ms(NonZeroU64);

impl Ms {
    fn from_millis(ms: u64) -> Ms {
        Ms(NonZeroU64::MIN.saturating_add(ms))
    }

    /// The milliseconds, never 0.
    pub(crate) fn get(self) -> u64 {
        self.0.get()
    }
}

impl Add<Duration> for Ms {
    type Output = Ms;

    fn add(self, duration: Duration) -> Ms {
        Ms(self.0.saturating_add(duration.as_millis().try_into().unwrap_or(u64::MAX)))
    }
}

/// The open connections of one listener and how often their deadlines are
/// checked.
pub(crate) struct Timers {
    tick: Duration,
    /// Ticks between idle checks; none where connections do not park.
    idle_check_ticks: Option<u64>,
    /// Where the listener's clock starts. tokio's clock, so that tests
    /// with a paused clock control it.
    epoch: Instant,
    /// Every connection registered since the last sweep; ended ones are
    /// dropped from the list by the next sweep.
    conns: Mutex<Vec<Weak<Outbound>>>,
}

impl Timers {
    /// Timers swept every `tick`, asking every connection whether it is
    /// idle every `idle_check` (rounded to whole ticks) if given.
    pub(crate) fn new(tick: Duration, idle_check: Option<Duration>) -> Timers {
        let idle_check_ticks = idle_check.map(|every| (every.as_millis() / tick.as_millis().max(1)).max(1) as u64);
        Timers { tick, idle_check_ticks, epoch: Instant::now(), conns: Mutex::new(Vec::new()) }
    }

    /// The time on the listener's clock.
    pub(crate) fn now(&self) -> Ms {
        Ms::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Outbound>>> {
        // A panic while holding this lock leaves only plain data behind.
        self.conns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an open connection. If the server is already stopping it is
    /// told at once (`stop_all` may have run before it was in the list).
    pub(crate) fn register(&self, outbound: &Arc<Outbound>, shutdown: &Shutdown) {
        self.lock().push(Arc::downgrade(outbound));
        if shutdown.is_requested() {
            outbound.stop();
        }
    }

    /// Wakes every connection whose deadline has passed (and, if
    /// `check_idle`, every one that is not parked, for an idle check),
    /// forgets ended ones.
    pub(crate) fn sweep(&self, check_idle: bool) {
        let now = self.now().get();
        self.lock().retain(|conn| match conn.upgrade() {
            Some(outbound) => {
                outbound.fire_if_due(now);
                if check_idle {
                    outbound.check_idle();
                }
                true
            }
            None => false,
        });
    }

    /// Tells every connection that the server is stopping.
    pub(crate) fn stop_all(&self) {
        for outbound in self.lock().iter().filter_map(Weak::upgrade) {
            outbound.stop();
        }
    }

    /// Sweeps once per tick, forever (the listener aborts it).
    pub(crate) async fn run(&self) {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            ticker.tick().await;
            ticks += 1;
            self.sweep(self.idle_check_ticks.is_some_and(|every| ticks.is_multiple_of(every)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_fires_once_when_passed_and_not_before() {
        let timers = Timers::new(Duration::from_secs(1), None);
        let (_stop, shutdown) = Shutdown::new();
        let outbound = Arc::new(Outbound::new(100));
        timers.register(&outbound, &shutdown);
        let now = timers.now().get();
        outbound.set_deadline(now + 60_000);
        timers.sweep(false);
        assert!(!outbound.take(true).due, "not before the deadline");
        outbound.set_deadline(now);
        timers.sweep(false);
        assert!(outbound.take(true).due);
        timers.sweep(false);
        assert!(!outbound.take(true).due, "once");
    }

    #[test]
    fn ended_connections_leave_the_list_and_stopping_reaches_the_rest() {
        let timers = Timers::new(Duration::from_secs(1), None);
        let (stop, shutdown) = Shutdown::new();
        let open = Arc::new(Outbound::new(100));
        timers.register(&open, &shutdown);
        timers.register(&Arc::new(Outbound::new(100)), &shutdown);
        timers.sweep(false);
        assert_eq!(timers.lock().len(), 1);
        stop.send(true).unwrap();
        timers.stop_all();
        assert!(open.take(true).stopping);
        let late = Arc::new(Outbound::new(100));
        timers.register(&late, &shutdown);
        assert!(late.take(true).stopping, "registered after stop_all, told anyway");
    }
}
