//! The spec's client timings, scaled, and the tolerance every timing rule uses.
//!
//! Tolerance (schemas/README.md, choice 22): an observed time may be 10 % early and 10 % plus
//! the slack late. Clients' timers fire late rather than early, and what wsprobe sees lags what
//! the client did by a network round trip and a scheduler tick: that is the slack (100 ms by
//! default, not scaled, since it is not a spec timing). So at a small scale the windows of
//! neighbouring backoff steps overlap; the rules match delays to steps by order, never by the
//! nearest value.

use std::time::Duration;

/// "Recommended Interval: 30 seconds" (Heartbeat Protocol).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// The Pong timeout in the spec's heartbeat code: `ws.close()` 10 s after an unanswered Ping.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection Strategy: 1 s, doubling, at most 30 s, at most 10 attempts.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const MAX_ATTEMPTS: usize = 10;
/// Rate Limiting: "Client messages: 100 per minute".
pub const RATE_LIMIT: usize = 100;
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

const EARLY: f64 = 0.10;
const LATE: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Every spec timing is multiplied by this (1 = the spec's own timings).
    pub scale: f64,
    /// Added to the late side of every tolerance.
    pub slack: Duration,
}

/// An accepted span around a nominal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub nominal: Duration,
    pub low: Duration,
    pub high: Duration,
}

impl Window {
    pub fn contains(&self, observed: Duration) -> bool {
        (self.low..=self.high).contains(&observed)
    }

    /// "0.10 s (0.09–0.16 s)".
    pub fn describe(&self) -> String {
        format!("{} (allowed {}–{})", seconds(self.nominal), seconds(self.low), seconds(self.high))
    }
}

impl Timing {
    pub fn new(scale: f64, slack: Duration) -> Timing {
        Timing { scale, slack }
    }

    pub fn scaled(&self, spec: Duration) -> Duration {
        spec.mul_f64(self.scale)
    }

    /// The window around a nominal (already scaled) time.
    pub fn window(&self, nominal: Duration) -> Window {
        Window { nominal, low: nominal.mul_f64(1.0 - EARLY), high: nominal.mul_f64(1.0 + LATE) + self.slack }
    }

    pub fn ping_interval(&self) -> Window {
        self.window(self.scaled(PING_INTERVAL))
    }

    pub fn pong_timeout(&self) -> Window {
        self.window(self.scaled(PONG_TIMEOUT))
    }

    /// The nominal delay before reconnect attempt `n` (1-based) of one outage.
    pub fn backoff(&self, n: usize) -> Duration {
        let doublings = n.saturating_sub(1).min(16) as u32;
        self.scaled(BACKOFF_START.saturating_mul(1 << doublings).min(BACKOFF_MAX))
    }

    pub fn rate_window(&self) -> Duration {
        self.scaled(RATE_WINDOW)
    }
}

/// Seconds for reports: "0.512 s", "30.0 s".
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_scales() {
        let spec = Timing::new(1.0, Duration::from_millis(50));
        let steps: Vec<u64> = (1..=8).map(|n| spec.backoff(n).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 30, 30, 30]);
        let fast = Timing::new(0.1, Duration::from_millis(50));
        assert_eq!(fast.backoff(1), Duration::from_millis(100));
        assert_eq!(fast.backoff(6), Duration::from_secs(3));
    }

    #[test]
    fn the_window_is_ten_percent_early_and_ten_percent_plus_slack_late() {
        let window = Timing::new(1.0, Duration::from_millis(50)).ping_interval();
        assert_eq!(window.low, Duration::from_secs(27));
        assert_eq!(window.high, Duration::from_millis(33_050));
        assert!(window.contains(Duration::from_secs(30)) && !window.contains(Duration::from_secs(20)));
    }
}
