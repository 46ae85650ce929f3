//! A connection's timers as plain state: the heartbeat (a ping after the
//! peer's silence, the peer dropped as dead when nothing answers it) and
//! the end of the closing handshake.
//!
//! The engine reads no clock: the caller passes the time in, as any value
//! that orders and adds durations (`std::time::Instant`, or a caller's own
//! cheaper clock), asks [`Timers::poll_timeout`] for the next deadline, and
//! calls [`Timers::handle_timeout`] once it has passed. The state is kept
//! next to the [`Connection`] rather than inside it, so that what every open
//! connection holds grows only where the caller puts it.

use std::ops::Add;
use std::time::Duration;

use crate::connection::{Connection, State};

/// The timers' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Silence from the peer after which it is pinged.
    pub ping_interval: Duration,
    /// How long a pinged peer has to send anything before it is dead.
    pub pong_timeout: Duration,
    /// How long the closing handshake may take once our close frame is
    /// queued (or both were exchanged and the stream still has to close).
    pub close_timeout: Duration,
}

/// What the timers are given as the time: anything ordered that a
/// [`Duration`] can be added to.
pub trait Moment: Copy + Ord + Add<Duration, Output = Self> {}

impl<T: Copy + Ord + Add<Duration, Output = T>> Moment for T {}

/// Why a connection's timers ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The peer sent nothing within `pong_timeout` of our ping.
    NoPong,
    /// The closing handshake did not finish within `close_timeout`.
    CloseTimedOut,
}

/// The timers of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timers<I> {
    /// When the peer was last heard from.
    last_seen: I,
    /// While open: when our unanswered ping went out. Once closing: when
    /// the closing handshake times out.
    mark: Option<I>,
    closing: bool,
}

impl<I: Moment> Timers<I> {
    /// The timers of a connection opened at `now`.
    pub fn new(now: I) -> Timers<I> {
        Timers { last_seen: now, mark: None, closing: false }
    }

    /// Bytes arrived from the peer at `now`: it is alive. Only records the
    /// time, so that the hot path never touches a deadline.
    #[inline]
    pub fn peer_alive(&mut self, now: I) {
        self.last_seen = now;
    }

    /// Whether the closing handshake's timer runs.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The next deadline: the end of the closing handshake once `conn` has
    /// sent its close frame (the timer starts at the first call that finds
    /// it so), otherwise the heartbeat's next check. Call it after every
    /// change to the connection, before waiting. `now` is asked for the
    /// time only when the close timer starts, so that the usual call reads
    /// no clock.
    pub fn poll_timeout(&mut self, conn: &Connection, config: &TimerConfig, now: impl FnOnce() -> I) -> I {
        if !self.closing && matches!(conn.state(), State::CloseSent | State::Closed) {
            self.closing = true;
            self.mark = Some(now() + config.close_timeout);
        }
        match (self.closing, self.mark) {
            (true, Some(until)) => until,
            (_, Some(ping_sent)) => ping_sent + config.pong_timeout,
            (_, None) => self.last_seen + config.ping_interval,
        }
    }

    /// A deadline passed (or may have: a call before it changes nothing):
    /// queues a ping on `conn` after `ping_interval` of silence, and says
    /// whether the connection is over, because the pinged peer stayed
    /// silent for `pong_timeout` or the closing handshake ran out of time.
    pub fn handle_timeout(&mut self, conn: &mut Connection, now: I, config: &TimerConfig) -> Option<Expired> {
        if self.closing {
            return self.mark.is_some_and(|until| now >= until).then_some(Expired::CloseTimedOut);
        }
        if conn.state() != State::Open {
            return None;
        }
        if let Some(ping_sent) = self.mark {
            // Anything read since the ping (at the same instant too) answers it.
            if self.last_seen < ping_sent {
                return (now >= ping_sent + config.pong_timeout).then_some(Expired::NoPong);
            }
            self.mark = None;
        }
        if now >= self.last_seen + config.ping_interval {
            self.mark = Some(now);
            let _ = conn.send_ping(b"");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CloseCode, Config, Event};

    /// Milliseconds since the test's start: a clock the tests set by hand.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Ms(u64);

    impl Add<Duration> for Ms {
        type Output = Ms;
        fn add(self, d: Duration) -> Ms {
            Ms(self.0 + d.as_millis() as u64)
        }
    }

    const CONFIG: TimerConfig =
        TimerConfig { ping_interval: Duration::from_millis(30_000), pong_timeout: Duration::from_millis(10_000), close_timeout: Duration::from_millis(5_000) };

    fn server() -> Connection {
        Connection::server(Config::default(), None)
    }

    /// The frames `conn` queued, as the client sees them.
    fn sent(conn: &mut Connection) -> Vec<Event> {
        let mut bytes = Vec::new();
        while conn.wants_write() {
            let mut slices = [std::io::IoSlice::new(&[]); 8];
            let n = conn.transmit_chunks(&mut slices);
            let written: usize = slices[..n].iter().map(|s| s.len()).sum();
            for slice in &slices[..n] {
                bytes.extend_from_slice(slice);
            }
            conn.advance(written);
        }
        let mut client = Connection::client(Config::default(), None, Box::new(|| [1, 2, 3, 4]));
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut events = Vec::new();
        while let Some(event) = client.handle_read(&mut buf).expect("valid frames") {
            events.push(event);
        }
        events
    }

    fn is_ping(events: &[Event]) -> bool {
        matches!(events, [Event::Ping(payload)] if payload.is_empty())
    }

    #[test]
    fn a_silent_peer_is_pinged_after_the_interval_then_expires_after_the_pong_timeout() {
        let mut conn = server();
        let mut timers = Timers::new(Ms(0));
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(0)), Ms(30_000));
        assert_eq!(timers.handle_timeout(&mut conn, Ms(29_999), &CONFIG), None, "a call before the deadline does nothing");
        assert!(sent(&mut conn).is_empty());
        assert_eq!(timers.handle_timeout(&mut conn, Ms(30_000), &CONFIG), None);
        assert!(is_ping(&sent(&mut conn)), "pinged at the deadline");
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(30_000)), Ms(40_000), "the pong's deadline");
        assert_eq!(timers.handle_timeout(&mut conn, Ms(39_999), &CONFIG), None);
        assert_eq!(timers.handle_timeout(&mut conn, Ms(40_000), &CONFIG), Some(Expired::NoPong));
        assert!(sent(&mut conn).is_empty(), "one ping only");
    }

    #[test]
    fn anything_from_the_peer_answers_a_ping_and_pushes_the_next_one_back() {
        let mut conn = server();
        let mut timers = Timers::new(Ms(0));
        timers.peer_alive(Ms(10_000));
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(10_000)), Ms(40_000), "the interval counts from the last sign of life");
        assert_eq!(timers.handle_timeout(&mut conn, Ms(40_000), &CONFIG), None);
        assert!(is_ping(&sent(&mut conn)));
        timers.peer_alive(Ms(40_000));
        assert_eq!(timers.handle_timeout(&mut conn, Ms(50_000), &CONFIG), None, "answered at the very instant of the ping");
        assert!(sent(&mut conn).is_empty(), "no new ping before the interval");
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(50_000)), Ms(70_000));
        assert_eq!(timers.handle_timeout(&mut conn, Ms(70_000), &CONFIG), None);
        assert!(is_ping(&sent(&mut conn)), "the next heartbeat");
    }

    #[test]
    fn the_closing_handshake_times_out_from_when_it_is_first_seen() {
        let mut conn = server();
        let mut timers = Timers::new(Ms(0));
        assert!(!timers.is_closing());
        conn.close(Some(CloseCode::NORMAL), "bye");
        let _ = sent(&mut conn);
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(1_000)), Ms(6_000));
        assert!(timers.is_closing());
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(3_000)), Ms(6_000), "started once");
        assert_eq!(timers.handle_timeout(&mut conn, Ms(5_999), &CONFIG), None);
        assert_eq!(timers.handle_timeout(&mut conn, Ms(6_000), &CONFIG), Some(Expired::CloseTimedOut));
        assert!(sent(&mut conn).is_empty(), "no ping while closing");
    }

    #[test]
    fn a_ping_in_flight_gives_way_to_the_close_timer() {
        let mut conn = server();
        let mut timers = Timers::new(Ms(0));
        assert_eq!(timers.handle_timeout(&mut conn, Ms(30_000), &CONFIG), None);
        assert!(is_ping(&sent(&mut conn)));
        conn.close(Some(CloseCode::GOING_AWAY), "");
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || Ms(31_000)), Ms(36_000), "not the pong's deadline");
        assert_eq!(timers.handle_timeout(&mut conn, Ms(40_000), &CONFIG), Some(Expired::CloseTimedOut));
    }

    #[test]
    fn std_instants_work_as_the_clock() {
        let start = std::time::Instant::now();
        let mut conn = server();
        let mut timers = Timers::new(start);
        assert_eq!(timers.poll_timeout(&conn, &CONFIG, || start), start + CONFIG.ping_interval);
        assert_eq!(timers.handle_timeout(&mut conn, start + CONFIG.ping_interval, &CONFIG), None);
        assert!(is_ping(&sent(&mut conn)));
    }
}
