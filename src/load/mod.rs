//! The load generator: plan → workers (one task per connection) → recorder (one set of
//! HdrHistograms per worker thread) → once a second an interval for progress and the `.hlog` → summary.

pub mod assertion;
pub mod cpu;
pub mod plan;
pub mod recorder;
pub mod summary;
mod worker;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::profile::{Direction, MessageSet};
use crate::schema::Catalog;
use plan::{LoadPlan, Mode, Validation};
use recorder::{new_histogram, Metric, Recorder};
use summary::{LoadSummary, Stats};

/// Name prefix of the generator's threads, so its own CPU use can be told from the server's.
const THREAD_NAME: &str = "wsprobe-load";
/// Connection tasks get this long after the deadline to finish before the run is cut.
const WIND_DOWN: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot start the generator's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write the HdrHistogram log to {path}")]
    Hlog { path: PathBuf, source: std::io::Error },
}

/// Output options that do not change what is measured.
pub struct Outputs {
    pub progress: bool,
    pub hdr_log: Option<PathBuf>,
    pub bundled_server: bool,
    pub notes: Vec<String>,
    pub threads: usize,
}

pub fn run(plan: LoadPlan, catalog: Arc<Catalog>, outputs: Outputs) -> Result<LoadSummary, LoadError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(outputs.threads.max(1))
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    runtime.block_on(drive(plan, catalog, outputs))
}

async fn drive(plan: LoadPlan, catalog: Arc<Catalog>, outputs: Outputs) -> Result<LoadSummary, LoadError> {
    // Create the file before the run so a bad path fails at once; the log itself is kept in
    // memory (about 1 KB a second) so the legend line can go after the header when written.
    let mut hlog_file = match &outputs.hdr_log {
        Some(path) => {
            Some(std::fs::File::create(path).map_err(|source| LoadError::Hlog { path: path.clone(), source })?)
        }
        None => None,
    };
    let mut hlog_buffer: Vec<u8> = Vec::new();
    let hlog_error = |source| LoadError::Hlog { path: outputs.hdr_log.clone().unwrap_or_default(), source };
    let mut serializer = V2DeflateSerializer::new();
    let wall_start = SystemTime::now();
    let mut hlog = match hlog_file.as_ref() {
        Some(_) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment(&format!("wsprobe load {} against {}; values in microseconds", plan.mode.name(), plan.url))
                .with_start_time(wall_start)
                .with_base_time(wall_start)
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut hlog_buffer, &mut serializer)
                .map_err(hlog_error)?,
        ),
        None => None,
    };

    let started = tokio::time::Instant::now();
    let shared = Arc::new(worker::Shared {
        recorder: Recorder::new(),
        catalog,
        set: MessageSet::of(plan.profile, Direction::Server),
        started,
        deadline: started + plan.duration,
        plan,
    });
    let cpu_before = cpu::thread_ticks(THREAD_NAME);
    let wall = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..shared.plan.connections {
        tasks.spawn(worker::run_connection(shared.clone(), index));
    }

    let bar = outputs.progress.then(|| {
        let bar = indicatif::ProgressBar::new(shared.plan.duration.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{elapsed_precise}/{duration_precise}] {msg}")
                .expect("valid template"),
        );
        bar
    });
    let mut totals: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
    let mut interval: Vec<Histogram<u64>> = Metric::ALL.iter().map(|_| new_histogram()).collect();
    let mut ticker = tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let (mut last_sent, mut last_received) = (0u64, 0u64);
    let mut interval_start = Duration::ZERO;
    let finish_by = shared.deadline + WIND_DOWN;
    loop {
        let at_end = tokio::select! {
            _ = ticker.tick() => tokio::time::Instant::now() >= shared.deadline && tasks.is_empty(),
            joined = tasks.join_next() => joined.is_none(),
            _ = tokio::time::sleep_until(finish_by) => {
                tasks.abort_all();
                true
            }
        };
        // Only interval boundaries and the end produce an interval: joins in between do not.
        let now = started.elapsed();
        let boundary = now.as_secs() > interval_start.as_secs() || at_end;
        if !boundary {
            continue;
        }
        shared.recorder.take_interval(&mut interval);
        if let Some(writer) = hlog.as_mut() {
            for (metric, histogram) in Metric::ALL.iter().zip(&interval) {
                if !histogram.is_empty() {
                    writer
                        .write_histogram(histogram, interval_start, now - interval_start, Tag::new(metric.name()))
                        .map_err(|e| hlog_error(std::io::Error::other(format!("{e:?}"))))?;
                }
            }
        }
        if let Some(bar) = &bar {
            let counters = &shared.recorder.counters;
            let (sent, received) = (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed));
            let seconds = (now - interval_start).as_secs_f64().max(1e-3);
            let primary = [Metric::Corrected, Metric::Uncorrected, Metric::Push, Metric::Connect]
                .into_iter()
                .map(|m| &interval[m as usize])
                .find(|h| !h.is_empty());
            let latency = primary.map_or_else(
                || "p50 -  p99 -".to_string(),
                |h| format!("p50 {} µs  p99 {} µs", h.value_at_quantile(0.5), h.value_at_quantile(0.99)),
            );
            bar.set_position(now.as_secs());
            bar.set_message(format!(
                "conns {}  sent {:.0}/s  recv {:.0}/s  {latency}  errors {}  reconnects {}",
                counters.connections_up.load(Ordering::Relaxed),
                (sent - last_sent) as f64 / seconds,
                (received - last_received) as f64 / seconds,
                shared.recorder.errors().values().sum::<u64>(),
                counters.reconnects.load(Ordering::Relaxed),
            ));
            (last_sent, last_received) = (sent, received);
        }
        for (total, part) in totals.iter_mut().zip(interval.iter_mut()) {
            total.add(&*part).expect("same bounds");
            part.reset();
        }
        interval_start = now;
        if at_end {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    drop(hlog);
    if let Some(file) = hlog_file.as_mut() {
        file.write_all(&with_legend(&hlog_buffer)).map_err(hlog_error)?;
        file.flush().map_err(hlog_error)?;
    }
    let elapsed = wall.elapsed();
    let cpu = match (cpu_before, cpu::thread_ticks(THREAD_NAME)) {
        (Some(before), Some(after)) => {
            Some(cpu::seconds(after.saturating_sub(before)) / (elapsed.as_secs_f64() * outputs.threads.max(1) as f64))
        }
        _ => None,
    };
    Ok(summarize(&shared, &totals, cpu, outputs))
}

/// Inserts the column legend HdrHistogram's own writers put between the header and the intervals.
fn with_legend(log: &[u8]) -> Vec<u8> {
    const LEGEND: &[u8] =
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";
    let mut header_end = 0;
    for line in log.split_inclusive(|b| *b == b'\n') {
        if !line.starts_with(b"#") {
            break;
        }
        header_end += line.len();
    }
    let mut out = Vec::with_capacity(log.len() + LEGEND.len());
    out.extend_from_slice(&log[..header_end]);
    out.extend_from_slice(LEGEND);
    out.extend_from_slice(&log[header_end..]);
    out
}

fn summarize(shared: &worker::Shared, totals: &[Histogram<u64>], cpu: Option<f64>, outputs: Outputs) -> LoadSummary {
    let plan = &shared.plan;
    let counters = &shared.recorder.counters;
    let get = |m: Metric| Stats::of(&totals[m as usize]);
    let mut latency: BTreeMap<&'static str, Stats> = BTreeMap::new();
    for metric in [Metric::Corrected, Metric::Uncorrected, Metric::Connect, Metric::Push] {
        if let Some(stats) = get(metric) {
            latency.insert(metric.name(), stats);
        }
    }
    let duration_s = plan.duration.as_secs_f64();
    let received = counters.received.load(Ordering::Relaxed);
    let connects = counters.connects.load(Ordering::Relaxed);
    let throughput = match plan.mode {
        Mode::Ping => get(Metric::Uncorrected).map_or(0, |s| s.count) as f64 / duration_s,
        Mode::Push => received as f64 / duration_s,
        Mode::Connect => connects as f64 / duration_s,
    };
    let mut notes = outputs.notes;
    let mut invalid = Vec::new();
    match (plan.mode, plan.send_interval()) {
        (Mode::Ping, None) => notes.push(
            "closed loop: latency is measured from each actual send (uncorrected); pass --rate for an open-loop run corrected for coordinated omission".into(),
        ),
        (Mode::Ping, Some(interval)) => {
            notes.push("open loop: `corrected` counts from each intended send time, `uncorrected` from the actual send".into());
            if let Some(lag) = get(Metric::Lag) {
                let share = lag.mean / interval.as_micros().max(1) as f64;
                if share > 0.10 {
                    invalid.push(format!(
                        "sends fell behind schedule by {:.0}% of the send interval on average (limit 10%): the generator, not the server, set the pace",
                        share * 100.0
                    ));
                }
            }
        }
        (Mode::Push, _) => notes.push(
            "push latency = receive time − message timestamp, with the clock offset estimated from Ping/Pong (min RTT/2); timestamps have 1 ms resolution, so values are accurate to about ±1 ms".into(),
        ),
        (Mode::Connect, _) => notes.push("connect: each connection opens, closes cleanly and opens again; latency is the WebSocket handshake".into()),
    }
    if let Some(cpu) = cpu {
        if cpu > 0.95 {
            invalid.push(format!("the generator used {:.0}% of its CPU: it may be the bottleneck", cpu * 100.0));
        }
    }
    LoadSummary {
        mode: plan.mode.name(),
        target: plan.url.clone(),
        bundled_server: outputs.bundled_server,
        connections: plan.connections,
        duration_s,
        loop_kind: if plan.rate.is_some() { "open" } else { "closed" },
        in_flight: plan.in_flight,
        validation: match plan.validation {
            Validation::All => "all".into(),
            Validation::Off => "off".into(),
            Validation::Sample(n) => format!("sample:{n}"),
        },
        sent: counters.sent.load(Ordering::Relaxed),
        received,
        throughput_per_s: (throughput * 10.0).round() / 10.0,
        connects,
        reconnects: counters.reconnects.load(Ordering::Relaxed),
        errors: {
            // Violations are errors too (so `errors==0` gates on them), and keep their own field.
            let mut errors = shared.recorder.errors();
            let violations = counters.schema_violations.load(Ordering::Relaxed);
            if violations > 0 {
                errors.insert("schema_violation".into(), violations);
            }
            errors
        },
        schema_violations: counters.schema_violations.load(Ordering::Relaxed),
        valid_run: invalid.is_empty(),
        invalid_reasons: invalid,
        generator_cpu: cpu.map(|c| (c * 1000.0).round() / 1000.0),
        notes,
        latency_us: latency,
        schedule_lag_us: get(Metric::Lag),
    }
}
