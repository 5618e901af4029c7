//! Where measurements go. Each worker thread records into its own histograms (a histogram per
//! connection would cost tens of KB each, too much for 10,000 connections), with no contention:
//! only the aggregator touches them too, once a second, when it takes each thread's interval
//! with `add()` and resets it. Interval and total histograms are therefore lossless merges.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The TLS handshake alone (wss://), a part of `Connect`.
    TlsHandshake,
}

impl Metric {
    pub const ALL: [Metric; 6] =
        [Metric::Corrected, Metric::Uncorrected, Metric::Connect, Metric::Push, Metric::Lag, Metric::TlsHandshake];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Corrected => "corrected",
            Metric::Uncorrected => "uncorrected",
            Metric::Connect => "connect",
            Metric::Push => "push",
            Metric::Lag => "schedule_lag",
            Metric::TlsHandshake => "tls_handshake",
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

impl Shard {
    fn new() -> Shard {
        Shard { histograms: Metric::ALL.iter().map(|_| new_histogram()).collect() }
    }

    fn record(&mut self, metric: Metric, value: Duration) {
        let micros = value.as_micros().min(u128::from(u64::MAX)) as u64;
        self.histograms[metric.index()].saturating_record(micros.max(1));
    }
}

/// Counters that only grow (except `connections_up`, a gauge).
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Received messages that were schema-checked.
    pub checked: AtomicU64,
    /// Checked messages of types only the chosen profile defines (for the wrong-profile hint).
    pub own_profile_only: AtomicU64,
    pub schema_violations: AtomicU64,
    pub reconnects: AtomicU64,
    pub connections_up: AtomicU64,
    /// Successful WebSocket handshakes.
    pub connects: AtomicU64,
    /// Handshakes started (successful or not) before the deadline.
    pub connect_attempts: AtomicU64,
    /// Attempts that did not end in an open WebSocket (refused, failed, timed out).
    pub connect_failures: AtomicU64,
    /// Open connections that ended before the run did (server close, drop, timeout).
    pub connections_lost: AtomicU64,
    /// Pings sent and not answered when the run ended.
    pub unanswered_at_end: AtomicU64,
    /// Pings lost with a connection that ended while they were in flight.
    pub unanswered_at_drop: AtomicU64,
    /// Open loop: sends that were due but held back by the in-flight limit when the run ended.
    pub unsent_at_end: AtomicU64,
    /// Open loop: sends made late because they fell due while every in-flight slot waited on
    /// the server. Their delay is the server's saturation, not the generator's lag.
    pub window_held: AtomicU64,
    /// Handshakes still in progress when the run ended.
    pub handshake_pending_at_end: AtomicU64,
    /// Push mode: messages without an integer `timestamp`, which give no push latency.
    pub unstamped: AtomicU64,
    /// Connect mode: time spent waiting for Close echoes that never came, in µs.
    pub close_wait_unechoed_us: AtomicU64,
}

static NEXT_RECORDER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's histograms, per recorder (a process may run several, as tests do).
    static LOCAL: RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
}

pub struct Recorder {
    id: u64,
    /// Every thread's histograms, for the aggregator.
    threads: Mutex<Vec<Arc<Mutex<Shard>>>>,
    pub counters: Counters,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Why push mode could not estimate the server's clock offset (the first reason seen).
    clock_offset_failure: Mutex<Option<String>>,
    /// Received types unknown to the chosen profile, with counts (a bounded set).
    foreign_types: Mutex<BTreeMap<String, u64>>,
    /// Messages that failed their schema, by `type` (`(not JSON)`, `(no type)`).
    invalid_types: Mutex<BTreeMap<String, u64>>,
}

/// Distinct message types remembered per tally; more are counted under one key.
const FOREIGN_TYPES_KEPT: usize = 32;

fn tally_type(types: &Mutex<BTreeMap<String, u64>>, message_type: &str) {
    let mut types = types.lock().unwrap_or_else(|p| p.into_inner());
    let key = if types.len() < FOREIGN_TYPES_KEPT || types.contains_key(message_type) {
        message_type
    } else {
        "(other types)"
    };
    *types.entry(key.to_string()).or_default() += 1;
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            threads: Mutex::default(),
            counters: Counters::default(),
            errors: Mutex::default(),
            clock_offset_failure: Mutex::default(),
            foreign_types: Mutex::default(),
            invalid_types: Mutex::default(),
        }
    }

    /// Runs `f` on the calling thread's histograms, creating them on first use.
    fn local<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        LOCAL.with(|cell| {
            let mut locals = cell.borrow_mut();
            let index = match locals.iter().position(|(id, _)| *id == self.id) {
                Some(index) => index,
                None => {
                    let shard = Arc::new(Mutex::new(Shard::new()));
                    self.threads.lock().unwrap_or_else(|p| p.into_inner()).push(shard.clone());
                    locals.push((self.id, shard));
                    locals.len() - 1
                }
            };
            let mut shard = locals[index].1.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut shard)
        })
    }

    /// Records one value, in µs.
    pub fn record(&self, metric: Metric, value: Duration) {
        self.local(|shard| shard.record(metric, value));
    }

    /// Records two values at once (a Pong gives corrected and uncorrected latency).
    pub fn record_pair(&self, first: (Metric, Duration), second: (Metric, Duration)) {
        self.local(|shard| {
            shard.record(first.0, first.1);
            shard.record(second.0, second.1);
        });
    }

    pub fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().unwrap_or_else(|p| p.into_inner()).entry(kind.into()).or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn clock_offset_failed(&self, reason: String) {
        self.clock_offset_failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(reason);
    }

    pub fn clock_offset_failure(&self) -> Option<String> {
        self.clock_offset_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts a received message whose `type` the chosen profile does not define.
    pub fn foreign_type(&self, message_type: &str) {
        tally_type(&self.foreign_types, message_type);
    }

    pub fn invalid_type(&self, message_type: &str) {
        tally_type(&self.invalid_types, message_type);
    }

    pub fn invalid_types(&self) -> BTreeMap<String, u64> {
        self.invalid_types.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn foreign_types(&self) -> BTreeMap<String, u64> {
        self.foreign_types.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Moves everything recorded since the last call into `interval` (one histogram per metric).
    pub fn take_interval(&self, interval: &mut [Histogram<u64>]) {
        let threads: Vec<Arc<Mutex<Shard>>> = self.threads.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for shard in threads {
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
    fn intervals_from_every_thread_are_lossless_and_reset() {
        let recorder = Arc::new(Recorder::new());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for i in 0..250u64 {
                        recorder.record(Metric::Corrected, Duration::from_micros(t * 250 + i + 1));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let mut interval: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
        recorder.take_interval(&mut interval);
        assert_eq!(interval[0].len(), 1000);
        assert_eq!((interval[0].min(), interval[0].max()), (1, 1000));
        let mut again: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
        recorder.take_interval(&mut again);
        assert!(again[0].is_empty());
    }

    #[test]
    fn two_recorders_on_one_thread_stay_apart() {
        let (a, b) = (Recorder::new(), Recorder::new());
        a.record(Metric::Push, Duration::from_micros(5));
        b.record(Metric::Push, Duration::from_micros(7));
        let mut interval: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
        a.take_interval(&mut interval);
        assert_eq!(interval[Metric::Push as usize].len(), 1);
        assert_eq!(interval[Metric::Push as usize].max(), 5);
    }
}
