//! Sliding-window message limit per connection ("Client messages: 100 per minute"), in
//! constant memory whatever the limit.
//!
//! The window is a ring of [`BUCKETS`] counters, each a sixtieth of the window (1 s at the
//! spec's minute). A message counts until the bucket it fell in leaves the window, so it never
//! counts for longer than the window, and at most one bucket less: the limiter never refuses a
//! client that keeps to the limit, and it refuses message `limit + 1` whenever the `limit`
//! before it all lie within the last window less one bucket (schemas/README.md, choice 18).
//! Keeping every admitted message's time instead was exact but cost one timestamp per admitted
//! message, reserved up front: 168 MB for 10,000 idle connections with a large limit.

use std::time::{Duration, Instant};

/// Counters in one window.
const BUCKETS: usize = 60;

/// Counts data frames (text and binary, valid or not, Ping included); control frames are not
/// counted (schemas/README.md, choice 18).
pub struct RateLimiter {
    limit: u64,
    origin: Instant,
    bucket: Duration,
    counts: [u32; BUCKETS],
    /// The absolute index (buckets since `origin`) of the newest bucket in the ring.
    newest: u64,
    /// The sum of `counts`.
    total: u64,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit: u64::from(limit),
            origin: Instant::now(),
            bucket: (window / BUCKETS as u32).max(Duration::from_nanos(1)),
            counts: [0; BUCKETS],
            newest: 0,
            total: 0,
        }
    }

    /// Records a message at `now`; false when it is over the limit.
    pub fn admit(&mut self, now: Instant) -> bool {
        let index = (now.saturating_duration_since(self.origin).as_nanos() / self.bucket.as_nanos()) as u64;
        // Buckets that left the window are emptied, each once: at most a whole ring.
        let stale = index.saturating_sub(self.newest).min(BUCKETS as u64);
        for step in 1..=stale {
            let slot = ((index - stale + step) % BUCKETS as u64) as usize;
            self.total -= u64::from(self.counts[slot]);
            self.counts[slot] = 0;
        }
        self.newest = self.newest.max(index);
        if self.total >= self.limit {
            return false;
        }
        let slot = (self.newest % BUCKETS as u64) as usize;
        self.counts[slot] = self.counts[slot].saturating_add(1);
        self.total += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_after_the_limit_is_refused_until_the_window_slides() {
        let mut limiter = RateLimiter::new(3, Duration::from_secs(60));
        let start = limiter.origin;
        assert!((0..3).all(|i| limiter.admit(start + Duration::from_secs(i))));
        assert!(!limiter.admit(start + Duration::from_secs(10)));
        assert!(!limiter.admit(start + Duration::from_secs(59)));
        assert!(limiter.admit(start + Duration::from_secs(60)), "the first message left the window");
        assert!(!limiter.admit(start + Duration::from_secs(60)));
    }

    #[test]
    fn the_spec_s_boundary_message_100_is_admitted_and_101_refused() {
        let mut limiter = RateLimiter::new(100, Duration::from_secs(60));
        let start = limiter.origin;
        // Spread over 58 s: every one of the hundred is within the window of the 101st.
        let at = |i: u64| start + Duration::from_millis(i * 580);
        assert!((0..100).all(|i| limiter.admit(at(i))), "the hundredth message is within the limit");
        assert!(!limiter.admit(start + Duration::from_millis(58_500)), "the 101st within 60 s is refused");
        // A whole window after the first: it and the next have left.
        assert!(limiter.admit(start + Duration::from_millis(60_600)));
    }

    #[test]
    fn a_message_never_counts_longer_than_the_window_and_a_long_silence_empties_it() {
        let mut limiter = RateLimiter::new(2, Duration::from_secs(60));
        let start = limiter.origin;
        assert!(limiter.admit(start + Duration::from_millis(500)));
        assert!(limiter.admit(start + Duration::from_millis(900)));
        assert!(!limiter.admit(start + Duration::from_millis(59_999)));
        assert!(limiter.admit(start + Duration::from_millis(60_500)), "60 s after the first, it has left");
        assert!(limiter.admit(start + Duration::from_secs(3600)));
        assert!(limiter.admit(start + Duration::from_secs(3600)));
        assert!(!limiter.admit(start + Duration::from_secs(3600)));
    }

    #[test]
    fn its_memory_does_not_grow_with_the_limit() {
        assert_eq!(
            std::mem::size_of_val(&RateLimiter::new(1_000_000, Duration::from_secs(60))),
            std::mem::size_of_val(&RateLimiter::new(100, Duration::from_secs(60)))
        );
        assert!(std::mem::size_of::<RateLimiter>() < 512);
    }
}
