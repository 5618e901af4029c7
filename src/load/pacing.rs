//! Open-loop pacing. Tokio's timer fires on a 1 ms wheel, so a send paced by it is late by
//! about 1 ms at any rate, and corrected latency could never go below that. One pacing thread
//! instead holds every connection's next due time, sleeps on the OS timer until shortly before
//! the earliest, spins the rest of the way, and wakes that connection's task. The spin margin
//! follows how late the OS timer has recently been waking this thread, so the thread spins no
//! longer than it must: its CPU cost is measured and reported with the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Thread name; the generator's CPU figure leaves it out and reports it on its own.
pub const THREAD_NAME: &str = "wsprobe-pacer";
/// Bounds of the spin margin before a due time.
const MIN_MARGIN: Duration = Duration::from_micros(20);
const MAX_MARGIN: Duration = Duration::from_micros(1000);

/// Every connection's schedule: send `n` of connection `i` is due at `start + phase(i) + n × interval`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub interval: Duration,
    pub connections: usize,
    /// Connection `i` opens at `start + ramp_up × i / connections`.
    pub ramp_up: Duration,
}

impl Schedule {
    /// Each connection starts with its ramp-up offset, and connections are spread evenly over
    /// one interval, so the total rate is smooth.
    pub fn phase(&self, connection: usize) -> Duration {
        let share = connection as f64 / self.connections.max(1) as f64;
        self.ramp_up.mul_f64(share) + self.interval.mul_f64(share)
    }

    /// When send `n` of `connection` is due.
    pub fn due(&self, connection: usize, n: u64) -> Instant {
        self.start + self.phase(connection) + self.interval.mul_f64(n as f64)
    }

    /// How many sends of `connection` are due by `now`.
    pub fn due_by(&self, connection: usize, now: Instant) -> u64 {
        let first = self.start + self.phase(connection);
        match now.checked_duration_since(first) {
            None => 0,
            Some(elapsed) => (elapsed.as_secs_f64() / self.interval.as_secs_f64()).floor() as u64 + 1,
        }
    }
}

/// What the pacing thread reports when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacerReport {
    /// Its own CPU time, seconds (Linux only).
    pub cpu_seconds: Option<f64>,
    pub wakeups: u64,
}

pub struct Pacer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<PacerReport>>,
}

impl Pacer {
    /// Starts the thread; it wakes `wakers[i]` at each of connection `i`'s due times until `end`.
    pub fn start(schedule: Schedule, wakers: Vec<Arc<Notify>>, end: Instant) -> std::io::Result<Pacer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread =
            std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || pace(schedule, &wakers, end, &flag))?;
        Ok(Pacer { stop, thread: Some(thread) })
    }

    /// Waits for the thread, which stops by itself at the end of the schedule.
    pub fn finish(mut self) -> PacerReport {
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }

    /// Stops the thread now (within one 50 ms sleep slice) and waits for it: the run may end
    /// before its schedule does, when every connection has given up.
    pub fn stop(self) -> PacerReport {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pace(schedule: Schedule, wakers: &[Arc<Notify>], end: Instant, stop: &AtomicBool) -> PacerReport {
    // Linux lets a sleeping thread wake up to 50 µs late by default (timer slack), which the
    // margin would have to cover by spinning; 1 µs of slack makes most of that spin a sleep.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let cpu_before = super::cpu::thread_ticks(THREAD_NAME);
    let mut queue: BinaryHeap<Reverse<(Instant, usize, u64)>> =
        (0..wakers.len()).map(|i| Reverse((schedule.due(i, 0), i, 0))).collect();
    let mut timer = OsTimer::default();
    let mut wakeups = 0;
    while let Some(Reverse((due, connection, n))) = queue.pop() {
        if due >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        if !timer.wait_until(due, stop) {
            break;
        }
        wakers[connection].notify_one();
        wakeups += 1;
        queue.push(Reverse((schedule.due(connection, n + 1), connection, n + 1)));
    }
    let cpu_after = super::cpu::thread_ticks(THREAD_NAME);
    PacerReport {
        cpu_seconds: cpu_before.zip(cpu_after).map(|(b, a)| super::cpu::seconds(a.saturating_sub(b))),
        wakeups,
    }
}

/// Sleeps coarsely on the OS timer, then spins to the due time. The spin margin is the 90th
/// percentile of how late recent sleeps returned: a robust figure, so one sleep that lost its
/// core for milliseconds does not turn the thread into a spinner.
struct OsTimer {
    /// Recent lateness samples, µs, each capped at the largest margin.
    recent: [u32; SAMPLES],
    next: usize,
    filled: usize,
    margin: Duration,
    /// Waits in a row that were all spin (the margin covered the whole wait).
    spin_only: u32,
}

const SAMPLES: usize = 64;

impl Default for OsTimer {
    fn default() -> OsTimer {
        OsTimer { recent: [0; SAMPLES], next: 0, filled: 0, margin: Duration::from_micros(60), spin_only: 0 }
    }
}

impl OsTimer {
    fn note_late(&mut self, late: Duration) {
        self.recent[self.next] = late.min(MAX_MARGIN).as_micros() as u32;
        self.next = (self.next + 1) % SAMPLES;
        self.filled = (self.filled + 1).min(SAMPLES);
        if self.next % 16 == 0 {
            let mut sorted = self.recent[..self.filled].to_vec();
            sorted.sort_unstable();
            let p90 = Duration::from_micros(u64::from(sorted[sorted.len() * 9 / 10]));
            self.margin = (p90 + Duration::from_micros(10)).clamp(MIN_MARGIN, MAX_MARGIN);
        }
    }

    /// False when asked to stop.
    fn wait_until(&mut self, due: Instant, stop: &AtomicBool) -> bool {
        let mut slept = false;
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let left = due - now;
            if left > self.margin {
                // Sleep in slices so a stop request is seen within 50 ms.
                let nap = (left - self.margin).min(Duration::from_millis(50));
                let asked = Instant::now();
                std::thread::sleep(nap);
                self.note_late(asked.elapsed().saturating_sub(nap));
                slept = true;
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
            } else {
                std::hint::spin_loop();
            }
        }
        // Dense schedules may leave no room to sleep, and so no new samples: now and then try
        // a smaller margin, so the thread is not stuck spinning on an old estimate.
        self.spin_only = if slept { 0 } else { self.spin_only + 1 };
        if self.spin_only >= SAMPLES as u32 {
            self.margin = (self.margin / 2).max(MIN_MARGIN);
            self.spin_only = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spreads_connections_over_one_interval() {
        let start = Instant::now();
        let schedule = Schedule { start, interval: Duration::from_millis(10), connections: 4, ramp_up: Duration::ZERO };
        assert_eq!(schedule.due(0, 0), start);
        assert_eq!(schedule.due(2, 0), start + Duration::from_millis(5));
        assert_eq!(schedule.due(1, 3), start + Duration::from_micros(32_500));
        assert_eq!(schedule.due_by(1, start), 0);
        assert_eq!(schedule.due_by(1, start + Duration::from_micros(2_500)), 1);
        assert_eq!(schedule.due_by(1, start + Duration::from_micros(32_499)), 3);
        assert_eq!(schedule.due_by(1, start + Duration::from_micros(32_500)), 4);
    }

    #[test]
    fn every_due_time_wakes_its_connection_once() {
        let start = Instant::now() + Duration::from_millis(5);
        let schedule = Schedule { start, interval: Duration::from_millis(2), connections: 3, ramp_up: Duration::ZERO };
        let wakers: Vec<Arc<Notify>> = (0..3).map(|_| Arc::new(Notify::new())).collect();
        let end = start + Duration::from_millis(20);
        let pacer = Pacer::start(schedule, wakers, end).unwrap();
        let report = pacer.finish();
        // Due times in [start, end): 10 per connection.
        assert_eq!(report.wakeups, 30);
    }

    #[test]
    fn a_run_that_ends_early_stops_its_pacer_at_once() {
        let start = Instant::now();
        let schedule = Schedule { start, interval: Duration::from_secs(1), connections: 1, ramp_up: Duration::ZERO };
        let pacer = Pacer::start(schedule, vec![Arc::new(Notify::new())], start + Duration::from_secs(3600)).unwrap();
        let asked = Instant::now();
        pacer.stop();
        assert!(asked.elapsed() < Duration::from_millis(500), "{:?}", asked.elapsed());
    }
}
