//! Per-connection rate limits of the built-in rooms (the chat's messages,
//! the call's signals): a token bucket, refilled continuously.

use std::time::Instant;

/// Allows `burst` messages at once and `per_second` on average.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: f64::from(burst), last: now }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, per_second: u32, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        assert_eq!((0..15).filter(|_| bucket.take(5, 10, start)).count(), 10);
        // 5 per second: after 1 s five more, not six.
        let later = start + Duration::from_secs(1);
        assert_eq!((0..10).filter(|_| bucket.take(5, 10, later)).count(), 5);
        // A long pause refills only up to the burst.
        let much_later = later + Duration::from_secs(3600);
        assert_eq!((0..50).filter(|_| bucket.take(5, 10, much_later)).count(), 10);
    }

    #[test]
    fn a_clock_going_backwards_takes_nothing_back() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1, start);
        assert!(bucket.take(1, 1, start));
        assert!(!bucket.take(1, 1, start - Duration::from_secs(5)));
    }
}
