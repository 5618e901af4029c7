//! `wsprobe merge`: the result of N shards as if one process had run them. Counters add up;
//! latencies come from the shards' interval logs, whose histograms are added sample for sample,
//! so a merged percentile is the percentile of all the samples, never an average of percentiles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use super::interval_log::{Interval, IntervalLog, IntervalLogError};
use super::recorder::Metric;
use super::summary::{LoadSummary, Stats, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a wsprobe load summary (--json): {reason}")]
    Summary { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Log { path: PathBuf, source: IntervalLogError },
    #[error("{path}: neither a load summary (.json) nor an interval log (.hlog); merge takes the files `wsprobe load --json` and `--hdr-log` write")]
    Kind { path: PathBuf },
    #[error("the shards ran different tests: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Shards(String),
}

/// One shard's own figures, listed beside the merged result.
#[derive(Debug, Clone, Serialize)]
pub struct ShardLine {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub connections: u64,
    pub sent: u64,
    pub received: u64,
    pub verdict: String,
    /// The shard's own main-latency figures, from its summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_latency_us: Option<Value>,
}

/// The inputs, read and checked.
#[derive(Debug, Default)]
pub struct Inputs {
    summaries: Vec<(String, Value)>,
    logs: Vec<(String, IntervalLog, Option<String>)>,
}

impl Inputs {
    /// Each interval log as a plot series for the HTML report, named by its shard.
    pub fn shard_series(&self) -> Vec<crate::report::html::ShardSeries> {
        self.logs
            .iter()
            .map(|(file, log, comment)| crate::report::html::ShardSeries {
                label: comment
                    .as_deref()
                    .and_then(|c| c.split("; ").find_map(|part| part.strip_prefix("shard ")))
                    .map_or_else(|| file.clone(), |shard| format!("shard {shard}")),
                log: log.clone(),
            })
            .collect()
    }

    /// Reads each file as a summary (JSON) or an interval log, by its content.
    pub fn read(paths: &[PathBuf]) -> Result<Inputs, MergeError> {
        let mut inputs = Inputs::default();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|source| MergeError::Read { path: path.clone(), source })?;
            let name = path.display().to_string();
            let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).map(|at| bytes[at]);
            match start {
                Some(b'{') => {
                    let value: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| MergeError::Summary { path: path.clone(), reason: e.to_string() })?;
                    check_summary(path, &value)?;
                    inputs.summaries.push((name, value));
                }
                Some(b'#' | b'T' | b'"') => {
                    let log =
                        IntervalLog::parse(&bytes).map_err(|source| MergeError::Log { path: path.clone(), source })?;
                    let comment = bytes.split(|b| *b == b'\n').next().map(|l| String::from_utf8_lossy(l).into_owned());
                    inputs.logs.push((name, log, comment));
                }
                _ => return Err(MergeError::Kind { path: path.clone() }),
            }
        }
        Ok(inputs)
    }
}

fn check_summary(path: &Path, value: &Value) -> Result<(), MergeError> {
    for key in ["mode", "target", "sent", "received", "verdict", "connections"] {
        if value.get(key).is_none() {
            return Err(MergeError::Summary { path: path.to_path_buf(), reason: format!("it has no `{key}`") });
        }
    }
    Ok(())
}

/// The merged result: a load summary like one process's, with the shards listed, and the
/// merged interval log (one histogram per metric per second, as one process writes it).
pub struct Merged {
    pub summary: LoadSummary,
    pub shards: Vec<ShardLine>,
    pub log: Option<MergedLog>,
}

pub struct MergedLog {
    pub start: SystemTime,
    pub comment: String,
    /// In time order, metrics in the order one process writes them.
    pub intervals: Vec<Interval>,
}

impl MergedLog {
    /// The merged intervals as a log, for the HTML report.
    pub fn as_interval_log(&self) -> IntervalLog {
        let start = self.start.duration_since(UNIX_EPOCH).unwrap_or_default();
        IntervalLog { start_time: Some(start), base_time: Some(start), intervals: self.intervals.clone() }
    }

    /// The log in the format `wsprobe load --hdr-log` writes.
    pub fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
        let mut buffer = Vec::new();
        let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment(&self.comment)
            .with_start_time(self.start)
            .with_base_time(self.start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut buffer, &mut serializer)?;
        for Interval { tag, start, length, histogram } in &self.intervals {
            writer
                .write_histogram(histogram, *start, *length, tag.as_deref().and_then(Tag::new))
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        drop(writer);
        Ok(super::with_legend(&buffer))
    }
}

/// The shards' own lines, for the human report.
pub fn human_shards(shards: &[ShardLine]) -> String {
    let mut out = String::new();
    for line in shards {
        let main = line.main_latency_us.as_ref();
        let stat =
            |key: &str| main.and_then(|m| m[key].as_u64()).map_or_else(|| "-".to_string(), |v| format!("{v} µs"));
        out.push_str(&format!(
            "  {:<9} {} connection(s), sent {}, received {}, own p50 {}, p99 {}, {} ({})\n",
            line.shard.as_deref().map_or_else(|| "run".to_string(), |s| format!("shard {s}")),
            line.connections,
            line.sent,
            line.received,
            stat("p50"),
            stat("p99"),
            line.verdict,
            line.file
        ));
    }
    out
}

pub fn merge(inputs: Inputs) -> Result<Merged, MergeError> {
    if inputs.summaries.is_empty() && inputs.logs.is_empty() {
        return Err(MergeError::Shards("nothing to merge: give the shards' --json and --hdr-log files".into()));
    }
    check_shards(&inputs)?;
    let log = merge_logs(&inputs.logs);
    let totals: BTreeMap<String, Histogram<u64>> = match &log {
        Some(log) => {
            let mut totals: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
            for Interval { tag, histogram, .. } in &log.intervals {
                let tag = tag.clone().unwrap_or_default();
                add_into(totals.entry(tag).or_insert_with(|| empty_like(histogram)), histogram);
            }
            totals
        }
        None => BTreeMap::new(),
    };
    let mut summary = combine_summaries(&inputs, &totals)?;
    if log.is_none() {
        summary.notes.push(
            "no --hdr-log files given: latency percentiles cannot be merged from summaries, so none are shown".into(),
        );
    }
    let shards = inputs
        .summaries
        .iter()
        .map(|(file, value)| ShardLine {
            file: file.clone(),
            shard: value["shard"].as_str().map(str::to_string),
            connections: value["connections"].as_u64().unwrap_or(0),
            sent: value["sent"].as_u64().unwrap_or(0),
            received: value["received"].as_u64().unwrap_or(0),
            verdict: value["verdict"].as_str().unwrap_or("?").to_string(),
            main_latency_us: value["main_latency"].as_str().and_then(|main| value["latency_us"].get(main)).cloned(),
        })
        .collect();
    Ok(Merged { summary, shards, log })
}

/// Sharded summaries must be distinct shards of one plan, and all of them.
fn check_shards(inputs: &Inputs) -> Result<(), MergeError> {
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    let mut counts = BTreeSet::new();
    for (file, value) in &inputs.summaries {
        let Some(shard) = value["shard"].as_str() else { continue };
        let parsed: super::shard::Shard =
            shard.parse().map_err(|reason| MergeError::Summary { path: file.into(), reason })?;
        counts.insert(parsed.count);
        if let Some(other) = seen.insert(parsed.index, file.clone()) {
            return Err(MergeError::Shards(format!(
                "{other} and {file} are both shard {shard}: merging both would count its samples twice"
            )));
        }
    }
    if counts.len() > 1 {
        return Err(MergeError::Shards(format!(
            "the summaries come from plans with different shard counts ({counts:?}); merge the shards of one run"
        )));
    }
    if let Some(&count) = counts.iter().next() {
        let missing: Vec<String> =
            (1..=count).filter(|index| !seen.contains_key(index)).map(|index| format!("{index}/{count}")).collect();
        if !missing.is_empty() {
            return Err(MergeError::Shards(format!(
                "shard {} missing: a merge of part of a run would report part of the load as the whole",
                missing.join(", ")
            )));
        }
    }
    let plan = |value: &Value| {
        ["mode", "target", "loop_kind", "in_flight", "validation"].map(|key| value[key].to_string()).join(" ")
    };
    if let Some((first_file, first)) = inputs.summaries.first() {
        for (file, value) in &inputs.summaries[1..] {
            if plan(value) != plan(first) {
                return Err(MergeError::Mismatch(format!(
                    "{first_file} ran {}, {file} ran {}",
                    plan(first),
                    plan(value)
                )));
            }
        }
    }
    Ok(())
}

/// Every log's intervals on one clock (the earliest start), added per metric per second.
fn merge_logs(logs: &[(String, IntervalLog, Option<String>)]) -> Option<MergedLog> {
    let start_of = |log: &IntervalLog| log.start_time.or(log.base_time).unwrap_or_default();
    let base = logs.iter().map(|(_, log, _)| start_of(log)).min()?;
    let mut buckets: BTreeMap<(u64, usize, String), Interval> = BTreeMap::new();
    for (_, log, _) in logs {
        let shift = start_of(log) - base;
        for Interval { tag, start, length, histogram } in &log.intervals {
            let name = tag.clone().unwrap_or_default();
            let at = shift + *start;
            // Shards that started together (--start-at) write their seconds within
            // milliseconds of each other: the nearest whole second is the same interval.
            let second = at.as_secs_f64().round() as u64;
            let key = (second, tag_order(&name), name);
            let entry = buckets.entry(key).or_insert_with(|| Interval {
                tag: tag.clone(),
                start: at,
                length: *length,
                histogram: empty_like(histogram),
            });
            let end = (entry.start + entry.length).max(at + *length);
            entry.start = entry.start.min(at);
            entry.length = end - entry.start;
            add_into(&mut entry.histogram, histogram);
        }
    }
    let comment = logs
        .iter()
        .filter_map(|(_, _, comment)| comment.as_deref())
        .find_map(|c| c.strip_prefix("#wsprobe load "))
        .map(|c| {
            let without_shard: Vec<&str> = c.split("; ").filter(|part| !part.starts_with("shard ")).collect();
            format!("wsprobe merge of {} logs: {}", logs.len(), without_shard.join("; "))
        })
        .unwrap_or_else(|| format!("wsprobe merge of {} logs; values in microseconds", logs.len()));
    Some(MergedLog { start: UNIX_EPOCH + base, comment, intervals: buckets.into_values().collect() })
}

/// Metrics in the order one process writes them; unknown tags after, by name.
fn tag_order(tag: &str) -> usize {
    Metric::ALL.iter().position(|m| m.name() == tag).unwrap_or(Metric::ALL.len())
}

fn empty_like(histogram: &Histogram<u64>) -> Histogram<u64> {
    let mut empty = Histogram::new_from(histogram);
    // A shard's values may lie beyond another's range: grow rather than drop a sample.
    empty.auto(true);
    empty
}

fn add_into(total: &mut Histogram<u64>, histogram: &Histogram<u64>) {
    total.auto(true);
    // Cannot fail with auto-resize on: every value fits after growing.
    let _ = total.add(histogram);
}

/// Counters added, verdicts combined; latency from the merged histograms.
fn combine_summaries(inputs: &Inputs, totals: &BTreeMap<String, Histogram<u64>>) -> Result<LoadSummary, MergeError> {
    let summaries: Vec<&Value> = inputs.summaries.iter().map(|(_, v)| v).collect();
    let first = summaries.first().copied();
    let sum = |key: &str| summaries.iter().map(|v| v[key].as_u64().unwrap_or(0)).sum::<u64>();
    let text = |key: &str| first.and_then(|v| v[key].as_str()).unwrap_or("").to_string();
    let from_comment = inputs.logs.iter().find_map(|(_, _, comment)| comment.as_deref().and_then(parse_comment));
    let mode = match first.and_then(|v| v["mode"].as_str()).or(from_comment.as_ref().map(|(mode, _)| mode.as_str())) {
        Some("push") => "push",
        Some("connect") => "connect",
        _ => "ping",
    };
    let target = match first {
        Some(_) => text("target"),
        None => from_comment.map(|(_, target)| target).unwrap_or_default(),
    };
    let loop_kind = match first.and_then(|v| v["loop_kind"].as_str()) {
        Some("open") => "open",
        Some(_) => "closed",
        None if totals.contains_key("corrected") => "open",
        None => "closed",
    };
    let main_latency = match (mode, loop_kind) {
        ("push", _) => "push",
        ("connect", _) => "connect",
        (_, "open") => "corrected",
        _ => "uncorrected",
    };
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for value in &summaries {
        if let Some(map) = value["errors"].as_object() {
            for (kind, count) in map {
                *errors.entry(kind.clone()).or_default() += count.as_u64().unwrap_or(0);
            }
        }
    }
    let label = |(file, value): &(String, Value)| {
        value["shard"].as_str().map_or_else(|| file.clone(), |s| format!("shard {s}"))
    };
    let prefixed = |key: &str| -> Vec<String> {
        inputs
            .summaries
            .iter()
            .flat_map(|entry| {
                entry.1[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(move |r| format!("{}: {r}", label(entry)))
            })
            .collect()
    };
    let mut failures = prefixed("failures");
    let mut invalid_reasons = prefixed("invalid_reasons");
    let verdicts: Vec<&str> = summaries.iter().map(|v| v["verdict"].as_str().unwrap_or("failed")).collect();
    let verdict = if summaries.is_empty() {
        invalid_reasons.push("no --json summaries were given: errors and connection failures are unknown".into());
        Verdict::Invalid
    } else if verdicts.iter().all(|v| *v == "unreachable") {
        Verdict::Unreachable
    } else if verdicts.iter().any(|v| matches!(*v, "failed" | "unreachable")) {
        for (entry, verdict) in inputs.summaries.iter().zip(&verdicts) {
            if *verdict == "unreachable" {
                failures.push(format!("{}: no connection could be opened", label(entry)));
            }
        }
        Verdict::Failed
    } else if verdicts.contains(&"invalid") {
        Verdict::Invalid
    } else {
        Verdict::Passed
    };
    let mut notes: Vec<String> = Vec::new();
    for value in &summaries {
        for note in value["notes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !notes.iter().any(|n| n == note) {
                notes.push(note.to_string());
            }
        }
    }
    let duration_s = summaries.iter().filter_map(|v| v["duration_s"].as_f64()).fold(0.0, f64::max);
    let duration_s = if duration_s > 0.0 {
        duration_s
    } else {
        inputs
            .logs
            .iter()
            .flat_map(|(_, log, _)| log.intervals.iter().map(|i| (i.start + i.length).as_secs_f64()))
            .fold(0.0, f64::max)
    };
    let max_of = |key: &str| summaries.iter().filter_map(|v| v[key].as_f64()).reduce(f64::max);
    let latency_us: BTreeMap<&'static str, Stats> = Metric::ALL
        .iter()
        .filter(|m| !matches!(m, Metric::Lag))
        .filter_map(|m| totals.get(m.name()).and_then(Stats::of).map(|stats| (m.name(), stats)))
        .collect();
    Ok(LoadSummary {
        mode,
        target,
        bundled_server: summaries.iter().any(|v| v["bundled_server"].as_bool() == Some(true)),
        shard: None,
        tls: summaries
            .iter()
            .any(|v| v["tls"].as_str() == Some(crate::report::run::UNVERIFIED))
            .then_some(crate::report::run::UNVERIFIED),
        connections: sum("connections") as usize,
        duration_s,
        // Summaries from before the field had the whole run as their window.
        measured_s: max_of("measured_s").unwrap_or(duration_s),
        loop_kind,
        in_flight: first.and_then(|v| v["in_flight"].as_u64()).unwrap_or(1) as usize,
        validation: first.map_or_else(|| "unknown".to_string(), |_| text("validation")),
        main_latency,
        sent: sum("sent"),
        window_held: sum("window_held"),
        schema_violations_by_type: {
            let mut by_type = BTreeMap::new();
            for summary in &summaries {
                for (kind, n) in summary["schema_violations_by_type"].as_object().into_iter().flatten() {
                    *by_type.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
            by_type
        },
        received: sum("received"),
        throughput_per_s: summaries.iter().filter_map(|v| v["throughput_per_s"].as_f64()).sum(),
        connects: sum("connects"),
        connect_attempts: sum("connect_attempts"),
        connect_failures: sum("connect_failures"),
        connections_lost: sum("connections_lost"),
        reconnects: sum("reconnects"),
        errors,
        schema_violations: sum("schema_violations"),
        schema_checked: sum("schema_checked"),
        unanswered_at_end: sum("unanswered_at_end"),
        unanswered_at_drop: sum("unanswered_at_drop"),
        unsent_at_end: sum("unsent_at_end"),
        handshake_pending_at_end: sum("handshake_pending_at_end"),
        unstamped: sum("unstamped"),
        verdict,
        failures,
        valid_run: invalid_reasons.is_empty(),
        invalid_reasons,
        generator_cpu: max_of("generator_cpu"),
        pacer_cpu: max_of("pacer_cpu"),
        profile_hint: summaries.iter().find_map(|v| v["profile_hint"].as_str()).map(str::to_string),
        notes,
        latency_us,
        schedule_lag_us: totals.get(Metric::Lag.name()).and_then(Stats::of),
    })
}

/// `#wsprobe load MODE against URL; …` → (mode, url).
fn parse_comment(comment: &str) -> Option<(String, String)> {
    let rest = comment.strip_prefix("#wsprobe load ")?;
    let (mode, rest) = rest.split_once(" against ")?;
    let target = rest.split("; ").next()?;
    Some((mode.to_string(), target.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
    }

    /// N shards' logs over the same samples as one process's log: the merge is that log.
    #[test]
    fn merged_shards_are_indistinguishable_from_one_process() {
        let tags = ["uncorrected", "connect", "schedule_lag"];
        for shards in [2usize, 3, 7] {
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ shards as u64;
            let mut one: Vec<Interval> = Vec::new();
            let mut parts: Vec<Vec<Interval>> = vec![Vec::new(); shards];
            for second in 0..5u64 {
                for tag in tags {
                    let mut whole = histogram();
                    let mut split: Vec<Histogram<u64>> = (0..shards).map(|_| histogram()).collect();
                    for _ in 0..2_000 {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        // A long tail: most samples small, some up to seconds.
                        let value = 1 + (seed >> 40) % 1_000 * ((seed >> 20) % 4_000 + 1);
                        whole.record(value).unwrap();
                        split[(seed >> 33) as usize % shards].record(value).unwrap();
                    }
                    let interval = |histogram| Interval {
                        tag: Some(tag.to_string()),
                        start: Duration::from_secs(second),
                        length: Duration::from_secs(1),
                        histogram,
                    };
                    one.push(interval(whole));
                    for (part, histogram) in parts.iter_mut().zip(split) {
                        part.push(interval(histogram));
                    }
                }
            }
            let start = Duration::from_secs(1_795_716_000);
            let logs = parts
                .into_iter()
                .enumerate()
                .map(|(i, intervals)| {
                    // Shards started together, each a few milliseconds apart.
                    let log = IntervalLog {
                        start_time: Some(start + Duration::from_millis(3 * i as u64)),
                        base_time: None,
                        intervals,
                    };
                    (
                        format!("s{i}.hlog"),
                        log,
                        Some(
                            "#wsprobe load ping against ws://127.0.0.1:9/ws; shard 1/2; values in microseconds".into(),
                        ),
                    )
                })
                .collect();
            let merged = merge(Inputs { summaries: Vec::new(), logs }).unwrap();
            let log = merged.log.expect("a merged log");
            assert_eq!(log.intervals.len(), one.len(), "one interval per metric per second");
            for (got, want) in log.intervals.iter().zip(&one) {
                assert_eq!(got.tag, want.tag);
                assert_eq!(got.histogram.len(), want.histogram.len());
                assert!(
                    got.histogram.iter_recorded().eq(want.histogram.iter_recorded()),
                    "{:?}: the same samples at the same values",
                    got.tag
                );
            }
            let whole = |tag: &str| {
                let mut total = histogram();
                for interval in one.iter().filter(|i| i.tag.as_deref() == Some(tag)) {
                    total.add(&interval.histogram).unwrap();
                }
                Stats::of(&total)
            };
            assert_eq!(merged.summary.latency_us.get("uncorrected").copied(), whole("uncorrected"));
            assert_eq!(merged.summary.latency_us.get("connect").copied(), whole("connect"));
            assert_eq!(merged.summary.schedule_lag_us, whole("schedule_lag"));
            // Without summaries there is no verdict to give: the merge says so.
            assert_eq!(merged.summary.verdict, Verdict::Invalid);
            // And it reads back as it was written.
            let reread = IntervalLog::parse(&log.to_bytes().unwrap()).unwrap();
            assert_eq!(reread.total("uncorrected").map(|h| Stats::of(&h)), Some(whole("uncorrected")));
        }
    }

    #[test]
    fn a_log_comment_names_the_mode_and_target() {
        assert_eq!(
            parse_comment("#wsprobe load ping against ws://127.0.0.1:9/ws; shard 1/2; values in microseconds"),
            Some(("ping".into(), "ws://127.0.0.1:9/ws".into()))
        );
        assert_eq!(parse_comment("#something else"), None);
    }
}
