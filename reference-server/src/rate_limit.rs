//! Sliding-window message limit per connection ("Client messages: 100 per minute").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Counts data frames (text and binary, valid or not, Ping included); control frames are not
/// counted (schemas/README.md, choice 18).
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter { limit: limit as usize, window, recent: VecDeque::with_capacity((limit as usize).min(1024)) }
    }

    /// Records a message at `now`; false when it is over the limit.
    pub fn admit(&mut self, now: Instant) -> bool {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limit {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_after_the_limit_is_refused_until_the_window_slides() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(60));
        assert!((0..3).all(|i| limiter.admit(start + Duration::from_secs(i))));
        assert!(!limiter.admit(start + Duration::from_secs(10)));
        assert!(!limiter.admit(start + Duration::from_secs(59)));
        assert!(limiter.admit(start + Duration::from_secs(60)), "the first message left the window");
        assert!(!limiter.admit(start + Duration::from_secs(60)));
    }
}
