//! Counters of one listener's connections, for a metrics exporter.
//!
//! [`NetStats`] is a set of relaxed atomic counters the connection tasks
//! add to as they go: connections opened and how each one ended, refused
//! handshakes by reason, and the traffic in and out. The caller makes one
//! (`Arc<NetStats>`), hands it to [`serve`](crate::serve) and reads it
//! whenever it likes with [`NetStats::snapshot`]; nothing in here reads a
//! clock, takes a lock or allocates.
//!
//! Cost on the hot path: the counters move once per pass, never per byte
//! or per frame. A read adds its byte count and the number of messages it
//! carried (two relaxed adds), a write its byte count (one); opening and
//! closing a connection add one each. The counters are plain totals since
//! the listener started, so an exporter reports them as counters and
//! derives rates itself.
//!
//! What is not counted: frames sent. Rooms queue their frames already
//! encoded, gathered into shared buffers (`Outbound`), and counting them
//! would cost every recipient of every broadcast an atomic add; the bytes
//! written say what left. A peer that goes away before sending a whole
//! request head is no refused handshake either.
//!
//! Close codes: each connection's end is also counted by its close code
//! (the peer's code for a clean close, 1005 when its close frame had none;
//! ours for a protocol error or a cut-off; 1006 for a dropped connection),
//! in one slot per code of the 1000-1015 range plus one per application
//! range (3000-3999, 4000-4999) and one for anything else, so the set of
//! series stays small whatever peers send.
//!
//! Each counter is read on its own, so a snapshot taken while connections
//! come and go is not one instant; the open-connection figure is derived so
//! that it never goes below zero.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters of one listener. See the module docs.
#[derive(Debug, Default)]
pub struct NetStats {
    opened: AtomicU64,
    closed_clean: AtomicU64,
    closed_abnormal: AtomicU64,
    closed_protocol_error: AtomicU64,
    closed_slow_consumer: AtomicU64,
    closed_timeout: AtomicU64,
    handshake_bad_request: AtomicU64,
    handshake_wrong_version: AtomicU64,
    handshake_not_found: AtomicU64,
    handshake_rejected: AtomicU64,
    handshake_timeout: AtomicU64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    parked: AtomicU64,
    unparked: AtomicU64,
    closed_by_code: [AtomicU64; CLOSE_CODE_SLOTS],
}

/// Slots of [`NetStats`]'s close-code counts: 1000-1015, 3xxx, 4xxx, other.
const CLOSE_CODE_SLOTS: usize = 19;

/// A slot of the close-code counts, as a metrics label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCodeClass {
    /// A code of the protocol's range, 1000-1015 (1005: the close frame
    /// had no code; 1006: no close frame at all).
    Protocol(u16),
    /// 3000-3999: registered with IANA for libraries and frameworks.
    Registered,
    /// 4000-4999: private to applications.
    Private,
    /// Anything else.
    Other,
}

impl CloseCodeClass {
    fn of(code: u16) -> CloseCodeClass {
        match code {
            1000..=1015 => CloseCodeClass::Protocol(code),
            3000..=3999 => CloseCodeClass::Registered,
            4000..=4999 => CloseCodeClass::Private,
            _ => CloseCodeClass::Other,
        }
    }

    fn slot(self) -> usize {
        match self {
            CloseCodeClass::Protocol(code) => usize::from(code - 1000),
            CloseCodeClass::Registered => 16,
            CloseCodeClass::Private => 17,
            CloseCodeClass::Other => 18,
        }
    }

    fn from_slot(slot: usize) -> CloseCodeClass {
        match slot {
            0..=15 => CloseCodeClass::Protocol(1000 + slot as u16),
            16 => CloseCodeClass::Registered,
            17 => CloseCodeClass::Private,
            _ => CloseCodeClass::Other,
        }
    }
}

impl std::fmt::Display for CloseCodeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseCodeClass::Protocol(code) => write!(f, "{code}"),
            CloseCodeClass::Registered => f.write_str("3xxx"),
            CloseCodeClass::Private => f.write_str("4xxx"),
            CloseCodeClass::Other => f.write_str("other"),
        }
    }
}

/// The counters at one moment (each read on its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetSnapshot {
    /// WebSocket connections whose handshake completed.
    pub connections_opened: u64,
    /// Connections open now: opened, not yet closed.
    pub connections_open: u64,
    /// Ended by a close frame from the peer, or by the peer's answer to
    /// ours (a server shutdown, a room closing the connection).
    pub closed_clean: u64,
    /// Dropped without a closing handshake: the socket closed or failed.
    pub closed_abnormal: u64,
    /// Closed because the peer broke the protocol (1002, 1007, 1009).
    pub closed_protocol_error: u64,
    /// Cut off with 1008 because the outbound queue overflowed: the peer
    /// did not read what rooms sent it.
    pub closed_slow_consumer: u64,
    /// Ended by a timer: no answer to a ping within the pong timeout, or
    /// no close frame within the close timeout after ours.
    pub closed_timeout: u64,
    /// Upgrade requests refused as malformed (400) or with a head too
    /// large (431).
    pub handshake_bad_request: u64,
    /// Upgrade requests for a WebSocket version other than 13 (426).
    pub handshake_wrong_version: u64,
    /// Upgrade requests the service answered with 404.
    pub handshake_not_found: u64,
    /// Upgrade requests the service refused with any other status.
    pub handshake_rejected: u64,
    /// Handshakes that timed out: no whole request head within the
    /// handshake timeout (408), or no decision from the service (503).
    pub handshake_timeout: u64,
    /// Complete messages received (each fragmented message once).
    pub messages_in: u64,
    /// Bytes read from WebSocket connections after their handshake.
    pub bytes_in: u64,
    /// Bytes written to WebSocket connections after their handshake.
    pub bytes_out: u64,
    /// Open connections parked now: idle, without a task of their own
    /// (`NetConfig::park_after`).
    pub connections_parked: u64,
    /// Times a parked connection was resumed since the listener started.
    pub resumed: u64,
    /// Connections ended, by close code; see [`NetSnapshot::closed_by_code`].
    closed_by_code: [u64; CLOSE_CODE_SLOTS],
}

impl NetSnapshot {
    /// Connections ended with each close code seen so far (slots never
    /// used are left out).
    pub fn closed_by_code(&self) -> impl Iterator<Item = (CloseCodeClass, u64)> + '_ {
        self.closed_by_code.iter().enumerate().filter(|(_, n)| **n > 0).map(|(slot, n)| (CloseCodeClass::from_slot(slot), *n))
    }
}

/// How a connection ended, counted once per connection: the first cause
/// wins (a slow consumer whose close then times out is a slow consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Clean,
    Abnormal,
    ProtocolError,
    SlowConsumer,
    Timeout,
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    BadRequest,
    WrongVersion,
    NotFound,
    Rejected,
    Timeout,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl NetStats {
    /// Zeroed counters.
    pub fn new() -> NetStats {
        NetStats::default()
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> NetSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        // Closes are read before opens: a connection is counted as opened
        // before it can be counted as closed, so `open` never underflows.
        let (clean, abnormal, protocol_error, slow_consumer, timeout) =
            (get(&self.closed_clean), get(&self.closed_abnormal), get(&self.closed_protocol_error), get(&self.closed_slow_consumer), get(&self.closed_timeout));
        let opened = get(&self.opened);
        let unparked = get(&self.unparked);
        let parked = get(&self.parked).saturating_sub(unparked);
        NetSnapshot {
            connections_parked: parked,
            connections_opened: opened,
            connections_open: opened.saturating_sub(clean + abnormal + protocol_error + slow_consumer + timeout),
            closed_clean: clean,
            closed_abnormal: abnormal,
            closed_protocol_error: protocol_error,
            closed_slow_consumer: slow_consumer,
            closed_timeout: timeout,
            handshake_bad_request: get(&self.handshake_bad_request),
            handshake_wrong_version: get(&self.handshake_wrong_version),
            handshake_not_found: get(&self.handshake_not_found),
            handshake_rejected: get(&self.handshake_rejected),
            handshake_timeout: get(&self.handshake_timeout),
            messages_in: get(&self.messages_in),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            // Resumptions before parks, as closes before opens.
            resumed: unparked,
            closed_by_code: std::array::from_fn(|slot| get(&self.closed_by_code[slot])),
        }
    }

    pub(crate) fn record_open(&self) {
        add(&self.opened, 1);
    }

    /// The close code a connection ended with (once per connection).
    pub(crate) fn record_close_code(&self, code: u16) {
        add(&self.closed_by_code[CloseCodeClass::of(code).slot()], 1);
    }

    pub(crate) fn record_close(&self, outcome: Outcome) {
        add(
            match outcome {
                Outcome::Clean => &self.closed_clean,
                Outcome::Abnormal => &self.closed_abnormal,
                Outcome::ProtocolError => &self.closed_protocol_error,
                Outcome::SlowConsumer => &self.closed_slow_consumer,
                Outcome::Timeout => &self.closed_timeout,
            },
            1,
        );
    }

    pub(crate) fn record_handshake_failure(&self, failure: HandshakeFailure) {
        add(
            match failure {
                HandshakeFailure::BadRequest => &self.handshake_bad_request,
                HandshakeFailure::WrongVersion => &self.handshake_wrong_version,
                HandshakeFailure::NotFound => &self.handshake_not_found,
                HandshakeFailure::Rejected => &self.handshake_rejected,
                HandshakeFailure::Timeout => &self.handshake_timeout,
            },
            1,
        );
    }

    /// A connection parked.
    pub(crate) fn record_parked(&self) {
        add(&self.parked, 1);
    }

    /// A parked connection resumed.
    pub(crate) fn record_unparked(&self) {
        add(&self.unparked, 1);
    }

    /// One read: its bytes.
    #[inline]
    pub(crate) fn record_read(&self, bytes: usize) {
        add(&self.bytes_in, bytes as u64);
    }

    /// The messages of one read pass.
    #[inline]
    pub(crate) fn record_messages(&self, messages: u32) {
        add(&self.messages_in, u64::from(messages));
    }

    /// One write: its bytes.
    #[inline]
    pub(crate) fn record_write(&self, bytes: usize) {
        add(&self.bytes_out, bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_connections_are_the_opened_ones_not_yet_closed() {
        let stats = NetStats::new();
        for _ in 0..3 {
            stats.record_open();
        }
        stats.record_close(Outcome::Clean);
        stats.record_close(Outcome::Timeout);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.connections_opened, snapshot.connections_open), (3, 1));
        assert_eq!((snapshot.closed_clean, snapshot.closed_timeout, snapshot.closed_abnormal), (1, 1, 0));
    }

    #[test]
    fn close_codes_fall_into_a_bounded_set_of_slots() {
        let stats = NetStats::new();
        for code in [1000, 1000, 1006, 1015, 3001, 4999, 999, 5000, 2000] {
            stats.record_close_code(code);
        }
        let counted: Vec<(String, u64)> = stats.snapshot().closed_by_code().map(|(class, n)| (class.to_string(), n)).collect();
        let expected = [("1000", 2), ("1006", 1), ("1015", 1), ("3xxx", 1), ("4xxx", 1), ("other", 3)];
        assert_eq!(counted, expected.map(|(c, n)| (c.to_owned(), n)));
    }
}
