//! How many room actors run in this process, how many of their rooms are
//! awake (their object in memory), and how often rooms woke up: the figures
//! a metrics exporter reports for rooms.
//!
//! Process-wide, not per server: the counts live in statics that every
//! actor of the process moves, so reading them costs three loads and no
//! message to any room (asking each room for its `RoomStats` would queue an
//! event in every mailbox). An actor counts itself as running from its
//! start until its task ends, and its room as awake from the moment its
//! object is built until it hibernates or the actor goes away; each build
//! is a wake-up (the first use of a room included). They move only at those
//! moments, never per message.

use std::sync::atomic::{AtomicU64, Ordering};

static RUNNING: AtomicU64 = AtomicU64::new(0);
static AWAKE: AtomicU64 = AtomicU64::new(0);
static WAKEUPS: AtomicU64 = AtomicU64::new(0);

/// The room counts at one moment (each read on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCensus {
    /// Room actors running: their rooms are awake or hibernated.
    pub live: u64,
    /// Rooms whose object is in memory.
    pub awake: u64,
    /// Room objects built since the process started.
    pub wakeups: u64,
}

impl RoomCensus {
    /// Reads the counts.
    pub fn now() -> RoomCensus {
        // Awake is read first: a room is counted live before it can be
        // counted awake, so `hibernated` does not go below zero.
        let awake = AWAKE.load(Ordering::Relaxed);
        RoomCensus { live: RUNNING.load(Ordering::Relaxed), awake, wakeups: WAKEUPS.load(Ordering::Relaxed) }
    }

    /// Live rooms whose object is not in memory.
    pub fn hibernated(&self) -> u64 {
        self.live.saturating_sub(self.awake)
    }
}

/// Held by an actor's task: counts the actor as running until dropped.
pub(crate) struct Running(());

impl Running {
    pub(crate) fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A room object was built.
pub(crate) fn woke() {
    AWAKE.fetch_add(1, Ordering::Relaxed);
    WAKEUPS.fetch_add(1, Ordering::Relaxed);
}

/// A room object was dropped (hibernation, or its actor went away).
pub(crate) fn slept() {
    AWAKE.fetch_sub(1, Ordering::Relaxed);
}
