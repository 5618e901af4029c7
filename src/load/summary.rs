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

/// The run's verdict, from the rules in the README's table ("Verdicts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It measured what it names, and nothing failed.
    Passed,
    /// It measured, and the server failed a rule (or measured nothing of its main kind).
    Failed,
    /// The numbers describe the generator, not the server.
    Invalid,
    /// No connection could be opened at all.
    Unreachable,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub mode: &'static str,
    pub target: String,
    pub bundled_server: bool,
    /// `I/N` when this run is one shard of a larger one (`--shard`); `connections` and the
    /// counts are this shard's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// `"unverified"` under `--insecure` (absent otherwise): the server's certificate was not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'static str>,
    pub connections: usize,
    pub duration_s: f64,
    /// The part of the run each connection was meant to measure, averaged (the ramp-up and
    /// schedule phases left out): rates are per second of this.
    pub measured_s: f64,
    /// "closed" or "open" (paced at --rate).
    pub loop_kind: &'static str,
    pub in_flight: usize,
    pub validation: String,
    /// The latency this mode measures, which bare `--assert` statistics use: corrected (open
    /// loop), uncorrected (closed loop), push or connect.
    pub main_latency: &'static str,
    pub sent: u64,
    pub received: u64,
    /// Completed round trips (ping), measured pushes (push) or connects (connect) per second.
    pub throughput_per_s: f64,
    pub connects: u64,
    pub connect_attempts: u64,
    /// Attempts that did not open (refused, failed, timed out).
    pub connect_failures: u64,
    /// Connections that ended before the run did.
    pub connections_lost: u64,
    pub reconnects: u64,
    /// Transport, protocol, handshake, timeout and close events by kind. Schema violations are
    /// counted apart, in `schema_violations`.
    pub errors: BTreeMap<String, u64>,
    pub schema_violations: u64,
    /// The violations by message type.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub schema_violations_by_type: BTreeMap<String, u64>,
    /// Received messages that were schema-checked.
    pub schema_checked: u64,
    /// Pings in flight when the run ended.
    pub unanswered_at_end: u64,
    /// Pings in flight on connections that ended.
    pub unanswered_at_drop: u64,
    /// Open loop: sends due but held back by the in-flight limit when the run ended.
    pub unsent_at_end: u64,
    /// Open loop: sends that fell due while the in-flight window was full (the server was
    /// behind), made late; their corrected latency includes the wait.
    pub window_held: u64,
    /// Handshakes still in progress when the run ended.
    pub handshake_pending_at_end: u64,
    /// Push mode: received messages without an integer `timestamp` (no push latency).
    pub unstamped: u64,
    pub verdict: Verdict,
    /// Why the run failed or could not measure (empty when it passed or is only invalid).
    pub failures: Vec<String>,
    pub valid_run: bool,
    pub invalid_reasons: Vec<String>,
    /// Generator CPU use, as a fraction of its worker threads (Linux only).
    pub generator_cpu: Option<f64>,
    /// Open loop: the pacing thread's CPU use, as a fraction of one core (Linux only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacer_cpu: Option<f64>,
    /// Set when the messages look like the other profile's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_hint: Option<String>,
    pub notes: Vec<String>,
    pub latency_us: BTreeMap<&'static str, Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag_us: Option<Stats>,
}

impl LoadSummary {
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The mode's main latency, when it has samples.
    pub fn primary(&self) -> Option<(&'static str, &Stats)> {
        self.latency_us.get(self.main_latency).map(|stats| (self.main_latency, stats))
    }
}

pub(crate) fn micros(value: u64) -> String {
    match value {
        v if v < 10_000 => format!("{v} µs"),
        v if v < 10_000_000 => format!("{:.2} ms", v as f64 / 1000.0),
        v => format!("{:.2} s", v as f64 / 1e6),
    }
}

pub(crate) fn thousands(value: u64) -> String {
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
    let shard = summary.shard.as_ref().map(|shard| format!(" (shard {shard})")).unwrap_or_default();
    let _ = writeln!(
        out,
        "wsprobe load{shard}: {} mode, {} loop, {} connection(s), {} in flight, {:.1} s against {target}",
        summary.mode, summary.loop_kind, summary.connections, summary.in_flight, summary.duration_s
    );
    if summary.tls.is_some() {
        let _ = writeln!(out, "  TLS certificates were NOT verified (--insecure): the server's identity is unchecked");
    }
    let unit = match summary.mode {
        "ping" => "round trips/s",
        "push" => "measured pushes/s",
        _ => "connects/s",
    };
    let _ = writeln!(
        out,
        "  sent {}  received {}  {unit} {}  connects {}/{}  lost {}  reconnects {}",
        thousands(summary.sent),
        thousands(summary.received),
        thousands(summary.throughput_per_s.round() as u64),
        thousands(summary.connects),
        thousands(summary.connect_attempts),
        thousands(summary.connections_lost),
        thousands(summary.reconnects),
    );
    let _ = writeln!(
        out,
        "  errors {}  schema violations {} of {} checked (validation: {})",
        thousands(summary.error_total()),
        thousands(summary.schema_violations),
        thousands(summary.schema_checked),
        summary.validation
    );
    if !summary.errors.is_empty() {
        let list: Vec<String> = summary.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "  errors by kind: {}", list.join(", "));
    }
    let pending = [
        ("unanswered at end", summary.unanswered_at_end),
        ("unanswered at drop", summary.unanswered_at_drop),
        ("unsent at end", summary.unsent_at_end),
        ("sends held by a full in-flight window", summary.window_held),
        ("handshakes pending at end", summary.handshake_pending_at_end),
        ("without integer timestamp", summary.unstamped),
    ];
    let pending: Vec<String> =
        pending.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}: {}", thousands(*n))).collect();
    if !pending.is_empty() {
        let _ = writeln!(out, "  not measured: {}", pending.join(", "));
    }
    let _ = writeln!(
        out,
        "\n  {:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "count", "rate/s", "min", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut rows: Vec<(String, &Stats)> = summary
        .latency_us
        .iter()
        .map(|(k, v)| (if *k == summary.main_latency { format!("{k} *") } else { k.to_string() }, v))
        .collect();
    if let Some(lag) = &summary.schedule_lag_us {
        rows.push(("schedule lag".into(), lag));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  (no latency samples)");
    }
    for (name, s) in rows {
        let _ = writeln!(
            out,
            "  {:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name,
            thousands(s.count),
            thousands((s.count as f64 / summary.measured_s.max(1e-9)).round() as u64),
            micros(s.min),
            micros(s.p50),
            micros(s.p90),
            micros(s.p99),
            micros(s.p999),
            micros(s.max)
        );
    }
    let _ = writeln!(out, "  (* the main latency, which bare --assert statistics use)");
    for note in &summary.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if let Some(hint) = &summary.profile_hint {
        let _ = writeln!(out, "  hint: {hint}");
    }
    match (summary.generator_cpu, summary.pacer_cpu) {
        (Some(cpu), Some(pacer)) => {
            let _ = writeln!(
                out,
                "  generator CPU: {:.0}% of its worker threads; pacing thread {:.0}% of a core",
                cpu * 100.0,
                pacer * 100.0
            );
        }
        (Some(cpu), None) => {
            let _ = writeln!(out, "  generator CPU: {:.0}% of its worker threads", cpu * 100.0);
        }
        _ => {}
    }
    for failure in &summary.failures {
        let _ = writeln!(out, "  FAILED: {failure}");
    }
    for reason in &summary.invalid_reasons {
        let _ = writeln!(out, "  INVALID: {reason}");
    }
    let _ = writeln!(
        out,
        "  run: {}",
        match summary.verdict {
            Verdict::Passed => "passed (valid measurement)",
            Verdict::Failed => "FAILED",
            Verdict::Invalid => "INVALID (the numbers describe the generator, not the server)",
            Verdict::Unreachable => "UNREACHABLE (no connection could be opened)",
        }
    );
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> LoadSummary {
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
            shard: None,
            tls: None,
            connections: 100,
            duration_s: 10.0,
            measured_s: 9.5,
            loop_kind: "open",
            in_flight: 1,
            validation: "all".into(),
            main_latency: "corrected",
            sent: 1_000_010,
            received: 1_000_000,
            throughput_per_s: 100_000.4,
            connects: 102,
            connect_attempts: 102,
            connect_failures: 0,
            connections_lost: 2,
            reconnects: 2,
            errors: [("closed_1008".to_string(), 2)].into_iter().collect(),
            schema_violations: 0,
            schema_checked: 1_000_000,
            unanswered_at_end: 100,
            unanswered_at_drop: 2,
            unsent_at_end: 0,
            window_held: 0,
            schema_violations_by_type: BTreeMap::new(),
            handshake_pending_at_end: 0,
            unstamped: 0,
            verdict: Verdict::Invalid,
            failures: vec![],
            valid_run: false,
            invalid_reasons: vec!["sends fell behind schedule by 23% of the send interval on average".into()],
            generator_cpu: Some(0.5),
            pacer_cpu: Some(0.12),
            profile_hint: None,
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
