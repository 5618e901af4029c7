//! The end-of-run numbers: a table per metric for people, a JSON document for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// One latency distribution, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Stats {
    pub fn of(histogram: &Histogram<u64>) -> Option<Stats> {
        if histogram.is_empty() {
            return None;
        }
        Some(Stats {
            count: histogram.len(),
            min: histogram.min(),
            mean: (histogram.mean() * 10.0).round() / 10.0,
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub mode: &'static str,
    pub target: String,
    pub bundled_server: bool,
    pub connections: usize,
    pub duration_s: f64,
    /// "closed" or "open" (paced at --rate).
    pub loop_kind: &'static str,
    pub in_flight: usize,
    pub validation: String,
    pub sent: u64,
    pub received: u64,
    /// Completed round trips (ping), received messages (push) or connects (connect) per second.
    pub throughput_per_s: f64,
    pub connects: u64,
    pub reconnects: u64,
    pub errors: BTreeMap<String, u64>,
    pub schema_violations: u64,
    pub valid_run: bool,
    pub invalid_reasons: Vec<String>,
    /// Generator CPU use, as a fraction of its worker threads (Linux only).
    pub generator_cpu: Option<f64>,
    pub notes: Vec<String>,
    pub latency_us: BTreeMap<&'static str, Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag_us: Option<Stats>,
}

impl LoadSummary {
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency distribution assertions and headlines use by default.
    pub fn primary(&self) -> Option<(&'static str, &Stats)> {
        ["corrected", "uncorrected", "push", "connect"]
            .into_iter()
            .find_map(|name| self.latency_us.get(name).map(|stats| (name, stats)))
    }
}

fn micros(value: u64) -> String {
    match value {
        v if v < 10_000 => format!("{v} µs"),
        v if v < 10_000_000 => format!("{:.2} ms", v as f64 / 1000.0),
        v => format!("{:.2} s", v as f64 / 1e6),
    }
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn human(summary: &LoadSummary) -> String {
    let mut out = String::new();
    let target = if summary.bundled_server {
        format!("{} (bundled reference server)", summary.target)
    } else {
        summary.target.clone()
    };
    let _ = writeln!(
        out,
        "wsprobe load: {} mode, {} loop, {} connection(s), {} in flight, {:.1} s against {target}",
        summary.mode, summary.loop_kind, summary.connections, summary.in_flight, summary.duration_s
    );
    let unit = match summary.mode {
        "ping" => "round trips/s",
        "push" => "messages/s",
        _ => "connects/s",
    };
    let _ = writeln!(
        out,
        "  sent {}  received {}  {unit} {}  connects {}  reconnects {}  errors {}  schema violations {} (validation: {})",
        thousands(summary.sent),
        thousands(summary.received),
        thousands(summary.throughput_per_s.round() as u64),
        thousands(summary.connects),
        thousands(summary.reconnects),
        thousands(summary.error_total()),
        thousands(summary.schema_violations),
        summary.validation
    );
    if !summary.errors.is_empty() {
        let list: Vec<String> = summary.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "  errors by kind: {}", list.join(", "));
    }
    let _ = writeln!(
        out,
        "\n  {:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "count", "rate/s", "min", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut rows: Vec<(&str, &Stats)> = summary.latency_us.iter().map(|(k, v)| (*k, v)).collect();
    if let Some(lag) = &summary.schedule_lag_us {
        rows.push(("schedule lag", lag));
    }
    for (name, s) in rows {
        let _ = writeln!(
            out,
            "  {:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name,
            thousands(s.count),
            thousands((s.count as f64 / summary.duration_s.max(1e-9)).round() as u64),
            micros(s.min),
            micros(s.p50),
            micros(s.p90),
            micros(s.p99),
            micros(s.p999),
            micros(s.max)
        );
    }
    for note in &summary.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if let Some(cpu) = summary.generator_cpu {
        let _ = writeln!(out, "  generator CPU: {:.0}% of its worker threads", cpu * 100.0);
    }
    if summary.valid_run {
        let _ = writeln!(out, "  run: valid");
    } else {
        let _ = writeln!(out, "  run: INVALID: {}", summary.invalid_reasons.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LoadSummary {
        let stats = |base: u64| Stats {
            count: 1000,
            min: base,
            mean: base as f64 * 1.5,
            p50: base * 2,
            p90: base * 3,
            p99: base * 5,
            p999: base * 9,
            max: base * 20,
        };
        LoadSummary {
            mode: "ping",
            target: "ws://127.0.0.1:9/ws".into(),
            bundled_server: true,
            connections: 100,
            duration_s: 10.0,
            loop_kind: "open",
            in_flight: 1,
            validation: "all".into(),
            sent: 1_000_010,
            received: 1_000_000,
            throughput_per_s: 100_000.4,
            connects: 100,
            reconnects: 2,
            errors: [("closed_1008".to_string(), 2)].into_iter().collect(),
            schema_violations: 0,
            valid_run: false,
            invalid_reasons: vec!["sends fell behind schedule by 23% of the send interval on average".into()],
            generator_cpu: Some(0.5),
            notes: vec!["the bundled server's rate limit is lifted".into()],
            latency_us: [("corrected", stats(120)), ("uncorrected", stats(100)), ("connect", stats(900))]
                .into_iter()
                .collect(),
            schedule_lag_us: Some(stats(3)),
        }
    }

    #[test]
    fn human_summary() {
        insta::assert_snapshot!(human(&sample()));
    }

    #[test]
    fn json_summary() {
        insta::assert_json_snapshot!(sample());
    }
}
