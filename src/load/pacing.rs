//! Open-loop pacing. Tokio's timer fires on a 1 ms wheel, so a send paced by it is late by
//! about 1 ms at any rate, and corrected latency could never go below that. One pacing thread
//! instead holds every connection's next due time, sleeps on the OS timer until shortly before
//! the earliest, spins the rest of the way, and wakes that connection's task. The spin margin
//! follows how late the OS timer has actually been waking this thread, so the thread spins no
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
const MIN_MARGIN: Duration = Duration::from_micros(40);
const MAX_MARGIN: Duration = Duration::from_millis(2);

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
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pace(schedule: Schedule, wakers: &[Arc<Notify>], end: Instant, stop: &AtomicBool) -> PacerReport {
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

/// Sleeps coarsely on the OS timer, then spins to the due time. The margin tracks a running
/// estimate of how late `sleep` returns on this machine (about 50–100 µs of timer slack on Linux).
struct OsTimer {
    late_estimate: Duration,
}

impl Default for OsTimer {
    fn default() -> OsTimer {
        OsTimer { late_estimate: Duration::from_micros(100) }
    }
}

impl OsTimer {
    fn margin(&self) -> Duration {
        (self.late_estimate * 3 / 2 + Duration::from_micros(20)).clamp(MIN_MARGIN, MAX_MARGIN)
    }

    /// False when asked to stop.
    fn wait_until(&mut self, due: Instant, stop: &AtomicBool) -> bool {
        loop {
            let now = Instant::now();
            if now >= due {
                return true;
            }
            let left = due - now;
            let margin = self.margin();
            if left > margin {
                // Sleep in slices so a stop request is seen within 50 ms.
                let nap = (left - margin).min(Duration::from_millis(50));
                let asked = Instant::now();
                std::thread::sleep(nap);
                let late = asked.elapsed().saturating_sub(nap);
                // Exponential average with weight 1/8: quick enough to follow load, steady enough not to flap.
                self.late_estimate = (self.late_estimate * 7 + late) / 8;
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
            } else {
                std::hint::spin_loop();
            }
        }
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
}
