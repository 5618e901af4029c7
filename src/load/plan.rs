//! What a load run will do, checked before anything connects.

use std::time::Duration;

use std::sync::Arc;

use super::operation::Operation;
use crate::profile::ProfileSpec;

/// Bounds that keep every run finite.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_CONNECTIONS: usize = 100_000;
pub const MAX_IN_FLIGHT: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Ping → Pong round trips; closed loop, or open loop with --rate.
    Ping,
    /// Server-push latency: receive time minus the message's own timestamp.
    Push,
    /// A connection storm: handshake latency and connects per second.
    Connect,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ping => "ping",
            Mode::Push => "push",
            Mode::Connect => "connect",
        }
    }
}

/// How many received messages are schema-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    All,
    /// One in every N messages per connection.
    Sample(u32),
    Off,
}

impl std::str::FromStr for Validation {
    type Err = String;

    fn from_str(text: &str) -> Result<Validation, String> {
        match text {
            "all" => Ok(Validation::All),
            "off" => Ok(Validation::Off),
            other => match other.strip_prefix("sample:").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => Ok(Validation::Sample(n)),
                _ => Err(format!("{other:?}: use all, off, or sample:N with N >= 1 (check one message in N)")),
            },
        }
    }
}

impl Validation {
    /// Whether the `n`th message (counting from 0) of a connection is checked.
    pub fn checks(self, n: u64) -> bool {
        match self {
            Validation::All => true,
            Validation::Off => false,
            Validation::Sample(every) => n % u64::from(every) == 0,
        }
    }
}

/// Push mode: (server clock − local clock), which push latency must remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockOffset {
    /// Estimate it per connection from Ping/Pong timestamps; a server whose Pong carries no
    /// integer timestamp fails the run, with the reason.
    Estimate,
    /// Use this many milliseconds (0 for a server on the same host, sharing its clock).
    Fixed(i64),
}

impl std::str::FromStr for ClockOffset {
    type Err = String;

    fn from_str(text: &str) -> Result<ClockOffset, String> {
        if text == "auto" {
            return Ok(ClockOffset::Estimate);
        }
        let number = text.strip_suffix("ms").unwrap_or(text);
        number.parse::<i64>().map(ClockOffset::Fixed).map_err(|_| {
            format!("{text:?}: use auto (estimate from Ping/Pong) or whole milliseconds like 0, 12ms or -3ms")
        })
    }
}

/// Default for `--max-connect-failures`: more than this share of connection attempts failing
/// (refused, failed, timed out, or lost before the end) fails the run.
pub const DEFAULT_MAX_CONNECT_FAILURE_RATE: f64 = 0.01;

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub url: String,
    pub profile: Arc<ProfileSpec>,
    /// What ping mode times, and what the heartbeats of the other modes send.
    pub operation: Operation,
    pub mode: Mode,
    pub connections: usize,
    pub duration: Duration,
    pub ramp_up: Duration,
    /// Total messages per second across all connections (open loop); `None` is closed loop.
    pub rate: Option<f64>,
    pub in_flight: usize,
    pub validation: Validation,
    /// A reply later than this counts as a timeout and the connection is replaced.
    pub reply_timeout: Duration,
    pub connect_timeout: Duration,
    /// The largest frame or message accepted from the server.
    pub max_message_bytes: usize,
    pub clock_offset: ClockOffset,
    /// The share of connection attempts that may fail before the run fails (0..=1).
    pub max_connect_failure_rate: f64,
    /// How connections reach the server: TLS, proxy, headers, source addresses.
    pub network: std::sync::Arc<crate::network::Network>,
}

impl LoadPlan {
    pub fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(format!("--connections must be 1 to {MAX_CONNECTIONS}"));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err("--duration must be more than 0 and at most 1h (3600s)".into());
        }
        if self.ramp_up > self.duration {
            return Err("--ramp-up cannot be longer than --duration".into());
        }
        if self.in_flight == 0 || self.in_flight > MAX_IN_FLIGHT {
            return Err(format!("--in-flight must be 1 to {MAX_IN_FLIGHT}"));
        }
        if !(0.0..=1.0).contains(&self.max_connect_failure_rate) {
            return Err("--max-connect-failures must be a percentage from 0% to 100%".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
                return Err("--rate must be more than 0 and at most 10000000 messages/s".into());
            }
            if self.mode != Mode::Ping {
                return Err("--rate paces Pings: it applies to --mode ping only".into());
            }
        }
        Ok(())
    }

    /// Each connection's share of the rate, as the interval between its sends.
    pub fn send_interval(&self) -> Option<Duration> {
        self.rate.map(|rate| Duration::from_secs_f64(self.connections as f64 / rate))
    }

    /// How long, on average over connections, each was meant to be measuring: connection `i`
    /// starts `i/N` of the way through the ramp-up (and, in open loop, `i/N` of a send
    /// interval later), so rates are counted over this window, not the whole run. Counting
    /// over the whole run understated a 1,000/s run of 4 s with a 1 s ramp-up as 880/s.
    pub fn measured_window(&self) -> Duration {
        let n = self.connections.max(1) as f64;
        let mean_share = (n - 1.0) / (2.0 * n);
        let start = self.ramp_up + self.send_interval().unwrap_or_default();
        self.duration.saturating_sub(start.mul_f64(mean_share)).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_policies_parse_and_sample() {
        assert_eq!("all".parse::<Validation>(), Ok(Validation::All));
        assert_eq!("sample:10".parse::<Validation>(), Ok(Validation::Sample(10)));
        assert!("sample:0".parse::<Validation>().is_err());
        assert!("some".parse::<Validation>().is_err());
        let checked = (0..100).filter(|n| Validation::Sample(10).checks(*n)).count();
        assert_eq!(checked, 10);
    }

    #[test]
    fn clock_offsets_parse() {
        assert_eq!("auto".parse::<ClockOffset>(), Ok(ClockOffset::Estimate));
        assert_eq!("0".parse::<ClockOffset>(), Ok(ClockOffset::Fixed(0)));
        assert_eq!("-3ms".parse::<ClockOffset>(), Ok(ClockOffset::Fixed(-3)));
        assert!("soon".parse::<ClockOffset>().unwrap_err().contains("auto"));
    }
}
