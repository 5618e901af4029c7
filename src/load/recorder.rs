//! Where measurements go. Connections record into a few sharded histograms (a histogram per
//! connection would cost hundreds of KB each); once a second the aggregator takes each shard's
//! interval with `add()` and resets it, so interval and total histograms are lossless merges.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latency metrics, all in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Reply time measured from the intended send time (coordinated-omission corrected).
    Corrected,
    /// Reply time measured from the actual send.
    Uncorrected,
    /// WebSocket handshake time.
    Connect,
    /// Receive time minus the message's timestamp, clock offset removed.
    Push,
    /// How far sends slipped behind plan (open loop).
    Lag,
}

impl Metric {
    pub const ALL: [Metric; 5] = [Metric::Corrected, Metric::Uncorrected, Metric::Connect, Metric::Push, Metric::Lag];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Corrected => "corrected",
            Metric::Uncorrected => "uncorrected",
            Metric::Connect => "connect",
            Metric::Push => "push",
            Metric::Lag => "schedule_lag",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Up to an hour in µs, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

struct Shard {
    histograms: Vec<Histogram<u64>>,
}

/// Counters that only grow.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub schema_violations: AtomicU64,
    pub reconnects: AtomicU64,
    pub connections_up: AtomicU64,
    pub connects: AtomicU64,
}

pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
    pub counters: Counters,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Recorder {
    pub fn new(shards: usize) -> Recorder {
        Recorder {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Shard { histograms: Metric::ALL.iter().map(|_| new_histogram()).collect() }))
                .collect(),
            counters: Counters::default(),
            errors: Mutex::default(),
        }
    }

    /// Records one value in µs; `shard` is the connection's index.
    pub fn record(&self, shard: usize, metric: Metric, value: Duration) {
        let micros = value.as_micros().min(u128::from(u64::MAX)) as u64;
        let mut guard = self.shards[shard % self.shards.len()].lock().unwrap_or_else(|p| p.into_inner());
        guard.histograms[metric.index()].saturating_record(micros.max(1));
    }

    /// Records several values under one lock (a Pong gives corrected and uncorrected at once).
    pub fn record_pair(&self, shard: usize, first: (Metric, Duration), second: (Metric, Duration)) {
        let mut guard = self.shards[shard % self.shards.len()].lock().unwrap_or_else(|p| p.into_inner());
        for (metric, value) in [first, second] {
            let micros = value.as_micros().min(u128::from(u64::MAX)) as u64;
            guard.histograms[metric.index()].saturating_record(micros.max(1));
        }
    }

    pub fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().unwrap_or_else(|p| p.into_inner()).entry(kind.into()).or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Moves everything recorded since the last call into `interval` (one histogram per metric).
    pub fn take_interval(&self, interval: &mut [Histogram<u64>]) {
        for shard in &self.shards {
            let mut guard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (into, from) in interval.iter_mut().zip(guard.histograms.iter_mut()) {
                if !from.is_empty() {
                    into.add(&*from).expect("same bounds, so add cannot fail");
                    from.reset();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_lossless_and_reset_the_shards() {
        let recorder = Recorder::new(4);
        for i in 0..1000u64 {
            recorder.record(i as usize, Metric::Corrected, Duration::from_micros(i + 1));
        }
        let mut interval: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
        recorder.take_interval(&mut interval);
        assert_eq!(interval[0].len(), 1000);
        assert_eq!(interval[0].max(), 1000);
        let mut again: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
        recorder.take_interval(&mut again);
        assert!(again[0].is_empty());
    }
}
