//! The load generator: plan → workers (one task per connection) → recorder (one set of
//! HdrHistograms per worker thread) → once a second an interval for progress and the `.hlog` → summary.

pub mod assertion;
pub mod cpu;
pub mod interval_log;
pub mod merge;
pub mod operation;
pub mod pacing;
pub mod plan;
pub mod recorder;
pub mod shard;
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
use pacing::{Pacer, PacerReport, Schedule};
use plan::{LoadPlan, Mode, Validation};
use recorder::{new_histogram, Metric, Recorder};
use summary::{LoadSummary, Stats, Verdict};

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
    /// Which part of a sharded run this is (`--shard`), for the summary and the `.hlog`.
    pub shard: Option<shard::Shard>,
    /// Keep the interval log in memory even without `hdr_log` (for the HTML report).
    pub keep_log: bool,
}

pub fn run(plan: LoadPlan, outputs: Outputs) -> Result<LoadSummary, LoadError> {
    run_keeping_log(plan, outputs).map(|(summary, _)| summary)
}

/// [`run`], also returning the interval log (as `--hdr-log` writes it) when one was kept.
pub fn run_keeping_log(plan: LoadPlan, outputs: Outputs) -> Result<(LoadSummary, Option<Vec<u8>>), LoadError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(outputs.threads.max(1))
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    runtime.block_on(drive(plan, outputs))
}

async fn drive(plan: LoadPlan, outputs: Outputs) -> Result<(LoadSummary, Option<Vec<u8>>), LoadError> {
    // Create the file before the run so a bad path fails at once; the log itself is kept in
    // memory (about 1 KB a second) so the legend line can go after the header when written.
    let mut hlog_file: Option<Box<dyn Write>> = match &outputs.hdr_log {
        Some(path) if crate::cli::is_stdout(path) => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(
            std::fs::File::create(path).map_err(|source| LoadError::Hlog { path: path.clone(), source })?,
        )),
        None => None,
    };
    let mut hlog_buffer: Vec<u8> = Vec::new();
    let hlog_error = |source| LoadError::Hlog { path: outputs.hdr_log.clone().unwrap_or_default(), source };
    let mut serializer = V2DeflateSerializer::new();
    let wall_start = SystemTime::now();
    let mut hlog = if hlog_file.is_some() || outputs.keep_log {
        Some(
            IntervalLogWriterBuilder::new()
                .add_comment(&format!(
                    "wsprobe load {} against {}{}; values in microseconds",
                    plan.mode.name(),
                    plan.url,
                    outputs.shard.map(|shard| format!("; shard {shard}")).unwrap_or_default()
                ))
                .with_start_time(wall_start)
                .with_base_time(wall_start)
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut hlog_buffer, &mut serializer)
                .map_err(hlog_error)?,
        )
    } else {
        None
    };

    let started = tokio::time::Instant::now();
    let schedule = plan.send_interval().map(|interval| Schedule {
        start: started.into_std(),
        interval,
        connections: plan.connections,
        ramp_up: plan.ramp_up,
    });
    let wakers: Vec<Arc<tokio::sync::Notify>> = match schedule {
        Some(_) => (0..plan.connections).map(|_| Arc::default()).collect(),
        None => Vec::new(),
    };
    let deadline = started + plan.duration;
    let pacer = match schedule {
        Some(schedule) => {
            Some(Pacer::start(schedule, wakers.clone(), deadline.into_std()).map_err(LoadError::Runtime)?)
        }
        None => None,
    };
    let shared = Arc::new(worker::Shared {
        recorder: Recorder::new(),
        catalog: plan.profile.catalog.clone(),
        set: plan.profile.server,
        other_set: plan.profile.other.map(|other| MessageSet::of(other, Direction::Server)),
        started,
        deadline,
        schedule,
        wakers,
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
            let main = &interval[main_metric(&shared.plan) as usize];
            let latency = if main.is_empty() {
                "p50 -  p99 -".to_string()
            } else {
                format!("p50 {} µs  p99 {} µs", main.value_at_quantile(0.5), main.value_at_quantile(0.99))
            };
            bar.set_position(now.as_secs());
            bar.set_message(format!(
                "conns {}  sent {:.0}/s  recv {:.0}/s  {} {latency}  errors {}  schema violations {}  reconnects {}",
                counters.connections_up.load(Ordering::Relaxed),
                (sent - last_sent) as f64 / seconds,
                (received - last_received) as f64 / seconds,
                main_metric(&shared.plan).name(),
                shared.recorder.errors().values().sum::<u64>(),
                counters.schema_violations.load(Ordering::Relaxed),
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
    let pacer = pacer.map(Pacer::stop);
    let kept = hlog.is_some();
    drop(hlog);
    let hlog_bytes = kept.then(|| with_legend(&hlog_buffer));
    if let (Some(file), Some(bytes)) = (hlog_file.as_mut(), &hlog_bytes) {
        file.write_all(bytes).map_err(hlog_error)?;
        file.flush().map_err(hlog_error)?;
    }
    let elapsed = wall.elapsed();
    let cpu = match (cpu_before, cpu::thread_ticks(THREAD_NAME)) {
        (Some(before), Some(after)) => {
            Some(cpu::seconds(after.saturating_sub(before)) / (elapsed.as_secs_f64() * outputs.threads.max(1) as f64))
        }
        _ => None,
    };
    let pacer_cpu = pacer.and_then(|p: PacerReport| p.cpu_seconds).map(|s| s / elapsed.as_secs_f64());
    Ok((summarize(&shared, &totals, cpu, pacer_cpu, outputs), hlog_bytes))
}

/// The latency a mode exists to measure.
pub(crate) fn main_metric(plan: &LoadPlan) -> Metric {
    match (plan.mode, plan.rate) {
        (Mode::Ping, Some(_)) => Metric::Corrected,
        (Mode::Ping, None) => Metric::Uncorrected,
        (Mode::Push, _) => Metric::Push,
        (Mode::Connect, _) => Metric::Connect,
    }
}

/// Inserts the column legend HdrHistogram's own writers put between the header and the intervals.
pub(crate) fn with_legend(log: &[u8]) -> Vec<u8> {
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

fn summarize(
    shared: &worker::Shared,
    totals: &[Histogram<u64>],
    cpu: Option<f64>,
    pacer_cpu: Option<f64>,
    outputs: Outputs,
) -> LoadSummary {
    let plan = &shared.plan;
    let c = &shared.recorder.counters;
    let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let get = |m: Metric| Stats::of(&totals[m as usize]);
    let mut latency: BTreeMap<&'static str, Stats> = BTreeMap::new();
    for metric in [Metric::Corrected, Metric::Uncorrected, Metric::Connect, Metric::Push, Metric::TlsHandshake] {
        if let Some(stats) = get(metric) {
            latency.insert(metric.name(), stats);
        }
    }
    let main = main_metric(plan);
    let main_count = get(main).map_or(0, |s| s.count);
    let duration_s = plan.duration.as_secs_f64();
    let measured_s = plan.measured_window().as_secs_f64();
    let connects = count(&c.connects);
    let attempts = count(&c.connect_attempts);
    let errors = shared.recorder.errors();
    let mut notes = outputs.notes;
    let mut failures = Vec::new();
    let mut invalid = Vec::new();

    let throughput = match plan.mode {
        Mode::Ping | Mode::Push => main_count as f64 / measured_s,
        Mode::Connect => {
            // Waits for Close echoes that never came are wsprobe's, not the server's: leave them out.
            let unechoed = count(&c.close_wait_unechoed_us) as f64 / 1e6;
            let busy = (duration_s - unechoed / plan.connections as f64).max(1e-3);
            if unechoed > 0.0 {
                notes.push(format!(
                    "{} close(s) were not echoed within {} ms (RFC 6455 requires the echo); those waits are left out of the connect rate",
                    errors.get("close_not_echoed").copied().unwrap_or(0),
                    worker::CLOSE_ECHO_WAIT.as_millis()
                ));
            }
            connects as f64 / busy
        }
    };

    // What the mode exists to measure must have been measured.
    if connects > 0 && main_count == 0 {
        failures.push(match plan.mode {
            Mode::Ping => format!(
                "no round trip completed: {} {}(s) sent, none answered with a {}{}",
                count(&c.sent),
                plan.operation.request,
                plan.operation.replies.join(" or "),
                if errors.is_empty() { String::new() } else { format!(" ({})", kinds(&errors)) }
            ),
            Mode::Push => match shared.recorder.clock_offset_failure() {
                Some(reason) => format!(
                    "push latency needs the server's clock offset, estimated from Pong timestamps, and it could not be: {reason}. For a server on this machine pass --clock-offset 0"
                ),
                None => format!(
                    "no pushed message could be measured: {} received, {} without an integer `timestamp`",
                    count(&c.received),
                    count(&c.unstamped)
                ),
            },
            Mode::Connect => "no connection was opened".into(),
        });
    } else if let Some(reason) = shared.recorder.clock_offset_failure() {
        failures.push(format!("on some connections the clock offset could not be estimated: {reason}"));
    }
    let failed_connections = count(&c.connect_failures) + count(&c.connections_lost);
    if attempts > 0 {
        let rate = failed_connections as f64 / attempts as f64;
        if rate > plan.max_connect_failure_rate {
            failures.push(format!(
                "{failed_connections} of {attempts} connection attempts failed or were lost before the end ({:.1}%; limit {:.1}%, --max-connect-failures){}",
                rate * 100.0,
                plan.max_connect_failure_rate * 100.0,
                if errors.is_empty() { String::new() } else { format!(": {}", kinds(&errors)) }
            ));
        }
    }
    let uncorrelated: Vec<String> = [
        ("reply_without_correlation_id", "came without one"),
        ("reply_with_unknown_correlation_id", "carried one that no request had"),
    ]
    .iter()
    .filter_map(|(kind, what)| errors.get(*kind).map(|n| format!("{n} {what}")))
    .collect();
    if !uncorrelated.is_empty() {
        failures.push(format!(
            "replies to {} must echo their request's correlation id; {} reply(ies) {}: errors, not round trips",
            plan.operation.id,
            uncorrelated.len(),
            uncorrelated.join(", and ")
        ));
    }
    let violations = count(&c.schema_violations);
    if violations > 0 {
        failures.push(format!(
            "{violations} received message(s) violate their schemas ({})",
            kinds(&shared.recorder.invalid_types())
        ));
    }

    if plan.mode == Mode::Ping {
        let operation = &plan.operation;
        notes.push(format!(
            "each round trip is {}: a {} answered by a {}{}",
            operation.id,
            operation.request,
            operation.replies.join(" or "),
            match operation.reply_correlation() {
                Some(pointer) => format!(" with the same {pointer} (any order)"),
                None => ", in order (no correlation id is declared)".into(),
            }
        ));
    }
    match (plan.mode, plan.send_interval()) {
        (Mode::Ping, None) => notes.push(
            "closed loop: latency is measured from each actual send (uncorrected); pass --rate for an open-loop run corrected for coordinated omission".into(),
        ),
        (Mode::Ping, Some(interval)) => {
            notes.push("open loop: `corrected` counts from each intended send time, `uncorrected` from the actual send; a dedicated thread paces the sends".into());
            let held = count(&c.window_held);
            if held > 0 {
                notes.push(format!(
                    "{held} of {} sends fell due while all {} in-flight slots (--in-flight) waited on the server and went out late: the server fell behind this rate, and corrected latency includes the wait",
                    count(&c.sent),
                    plan.in_flight
                ));
            }
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
        (Mode::Push, _) => notes.push(match plan.clock_offset {
            plan::ClockOffset::Estimate => "push latency = receive time − message timestamp, with the clock offset estimated from Ping/Pong (min RTT/2); timestamps have 1 ms resolution, so values are accurate to about ±1 ms".into(),
            plan::ClockOffset::Fixed(ms) => format!("push latency = receive time − message timestamp, with the clock offset fixed at {ms} ms (--clock-offset); timestamps have 1 ms resolution"),
        }),
        (Mode::Connect, _) => notes.push(format!(
            "connect: each connection opens, closes (waiting up to {} ms for the echo) and opens again; latency is the WebSocket handshake",
            worker::CLOSE_ECHO_WAIT.as_millis()
        )),
    }
    if let Some(unasked) = errors.get("unexpected_message_pong_without_ping") {
        // Pongs carry no id: with unsolicited ones about, a Pong cannot be matched to its Ping.
        invalid.push(format!(
            "the server sent {unasked} Pong(s) that answered no Ping, so Pongs cannot be matched to Pings: the round-trip latency is not the server's"
        ));
    }
    if let Some(cpu) = cpu {
        if cpu > 0.95 {
            invalid.push(format!("the generator used {:.0}% of its CPU: it may be the bottleneck", cpu * 100.0));
        }
    }
    let profile_hint =
        crate::profile_hint::hint_from(&plan.profile, &shared.recorder.foreign_types(), count(&c.own_profile_only));
    let verdict = if connects == 0 {
        failures.insert(
            0,
            format!(
                "no WebSocket connection could be opened in {attempts} attempt(s){}",
                if errors.is_empty() { String::new() } else { format!(": {}", kinds(&errors)) }
            ),
        );
        Verdict::Unreachable
    } else if !failures.is_empty() {
        Verdict::Failed
    } else if !invalid.is_empty() {
        Verdict::Invalid
    } else {
        Verdict::Passed
    };
    LoadSummary {
        mode: plan.mode.name(),
        target: plan.url.clone(),
        bundled_server: outputs.bundled_server,
        shard: outputs.shard.map(|shard| shard.to_string()),
        tls: plan.network.tls_unverified().then_some(crate::report::run::UNVERIFIED),
        connections: plan.connections,
        duration_s,
        measured_s: (measured_s * 1000.0).round() / 1000.0,
        loop_kind: if plan.rate.is_some() { "open" } else { "closed" },
        in_flight: plan.in_flight,
        validation: match plan.validation {
            Validation::All => "all".into(),
            Validation::Off => "off".into(),
            Validation::Sample(n) => format!("sample:{n}"),
        },
        main_latency: main.name(),
        sent: count(&c.sent),
        received: count(&c.received),
        throughput_per_s: (throughput * 10.0).round() / 10.0,
        connects,
        connect_attempts: attempts,
        connect_failures: count(&c.connect_failures),
        connections_lost: count(&c.connections_lost),
        reconnects: count(&c.reconnects),
        errors,
        schema_violations: violations,
        schema_violations_by_type: shared.recorder.invalid_types(),
        schema_checked: count(&c.checked),
        unanswered_at_end: count(&c.unanswered_at_end),
        unanswered_at_drop: count(&c.unanswered_at_drop),
        unsent_at_end: count(&c.unsent_at_end),
        window_held: count(&c.window_held),
        handshake_pending_at_end: count(&c.handshake_pending_at_end),
        unstamped: count(&c.unstamped),
        verdict,
        failures,
        valid_run: invalid.is_empty(),
        invalid_reasons: invalid,
        generator_cpu: cpu.map(|c| (c * 1000.0).round() / 1000.0),
        pacer_cpu: pacer_cpu.map(|c| (c * 1000.0).round() / 1000.0),
        profile_hint,
        notes,
        latency_us: latency,
        schedule_lag_us: get(Metric::Lag),
    }
}

/// `kind: n, kind: n` for messages.
fn kinds(errors: &BTreeMap<String, u64>) -> String {
    errors.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
}
