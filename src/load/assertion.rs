//! `--assert` expressions, so CI can gate on SLOs: `p99<5ms`, `errors==0`, `throughput>50000`,
//! `connect.p99<=20ms`, `schema_violations==0`, `valid==1`.

use std::fmt;

use super::summary::{LoadSummary, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    text: String,
    metric: String,
    op: Op,
    /// In µs for latency metrics.
    value: f64,
}

const STATS: [&str; 8] = ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"];
const LATENCIES: [&str; 5] = ["corrected", "uncorrected", "connect", "push", "tls_handshake"];
const TOTALS: [&str; 11] = [
    "errors",
    "throughput",
    "sent",
    "received",
    "schema_violations",
    "reconnects",
    "connects",
    "connect_failures",
    "connections_lost",
    "unanswered_at_end",
    "valid",
];

impl std::str::FromStr for Assertion {
    type Err = String;

    fn from_str(text: &str) -> Result<Assertion, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, op, width) =
            [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)]
                .iter()
                .find_map(|(symbol, op)| compact.find(symbol).map(|at| (at, *op, symbol.len())))
                .ok_or_else(|| format!("{text:?} has no comparison; write it like p99<5ms or errors==0"))?;
        let metric = compact[..at].to_lowercase();
        let raw = &compact[at + width..];
        let is_latency = is_latency_metric(&metric).ok_or_else(|| {
            format!(
                "{text:?}: unknown metric {metric:?}; use {}, [LATENCY.]STAT with LATENCY one of {} and STAT one of {}",
                TOTALS.join(", "),
                LATENCIES.join(", "),
                STATS.join(", ")
            )
        })?;
        let value = if is_latency { parse_latency(raw) } else { raw.parse::<f64>().ok() }.ok_or_else(|| {
            format!(
                "{text:?}: {raw:?} is not a {}",
                if is_latency { "latency like 5ms, 250us or 1s" } else { "number" }
            )
        })?;
        Ok(Assertion { text: text.trim().to_string(), metric, op, value })
    }
}

/// Some(true) for latency statistics (values in µs), Some(false) for totals, None if unknown.
fn is_latency_metric(metric: &str) -> Option<bool> {
    if TOTALS.contains(&metric) {
        return Some(false);
    }
    let (latency, stat) = metric.split_once('.').unwrap_or(("", metric));
    if !(latency.is_empty() || LATENCIES.contains(&latency)) || !STATS.contains(&stat) {
        return None;
    }
    Some(stat != "count")
}

fn parse_latency(raw: &str) -> Option<f64> {
    let split = raw.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let number: f64 = raw[..split].parse().ok()?;
    let scale = match &raw[split..] {
        "us" | "µs" => 1.0,
        "ms" => 1000.0,
        "s" => 1_000_000.0,
        _ => return None,
    };
    Some(number * scale)
}

/// What a metric's number means, so a verdict prints `actual 7.31 ms`, not `actual 7310`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Micros,
    PerSecond,
    Count,
}

impl Unit {
    fn of(metric: &str) -> Unit {
        match metric {
            "throughput" => Unit::PerSecond,
            m if is_latency_metric(m) == Some(true) => Unit::Micros,
            _ => Unit::Count,
        }
    }

    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Micros if value >= 1_000_000.0 => format!("{:.3} s", value / 1_000_000.0),
            Unit::Micros if value >= 1000.0 => format!("{:.2} ms", value / 1000.0),
            Unit::Micros => format!("{value:.0} µs"),
            Unit::PerSecond => format!("{value:.1}/s"),
            Unit::Count if value.fract() == 0.0 => format!("{value:.0}"),
            Unit::Count => format!("{value}"),
        }
    }
}

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub assertion: String,
    /// The measured value; `Err` says why there is none (an assertion without one fails).
    pub actual: Result<f64, String>,
    pub unit: Unit,
    pub passed: bool,
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "ok    " } else { "FAILED" };
        match &self.actual {
            Ok(actual) => write!(f, "{verdict} {} (actual {})", self.assertion, self.unit.show(*actual)),
            Err(why) => write!(f, "{verdict} {} ({why})", self.assertion),
        }
    }
}

impl Assertion {
    /// As written, e.g. `p99<5ms`.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn check(&self, summary: &LoadSummary) -> Checked {
        let actual = self.actual(summary);
        let passed = actual.as_ref().is_ok_and(|a| match self.op {
            Op::Lt => *a < self.value,
            Op::Le => *a <= self.value,
            Op::Gt => *a > self.value,
            Op::Ge => *a >= self.value,
            Op::Eq => *a == self.value,
            Op::Ne => *a != self.value,
        });
        Checked { assertion: self.text.clone(), actual, unit: Unit::of(&self.metric), passed }
    }

    /// Bare statistics (`p99`) read the mode's main latency only, never a stand-in: a ping
    /// run with no round trip has no p99, whatever its connect latency was.
    fn actual(&self, summary: &LoadSummary) -> Result<f64, String> {
        Ok(match self.metric.as_str() {
            "errors" => summary.error_total() as f64,
            "throughput" => summary.throughput_per_s,
            "sent" => summary.sent as f64,
            "received" => summary.received as f64,
            "schema_violations" => summary.schema_violations as f64,
            "reconnects" => summary.reconnects as f64,
            "connects" => summary.connects as f64,
            "connect_failures" => summary.connect_failures as f64,
            "connections_lost" => summary.connections_lost as f64,
            "unanswered_at_end" => summary.unanswered_at_end as f64,
            "valid" => f64::from(u8::from(summary.valid_run)),
            metric => {
                let (latency, stat) = metric.split_once('.').unwrap_or((summary.main_latency, metric));
                let stats: &Stats = summary.latency_us.get(latency).ok_or_else(|| {
                    format!("no {latency} latency samples in this run, so there is nothing to compare")
                })?;
                match stat {
                    "count" => stats.count as f64,
                    "min" => stats.min as f64,
                    "mean" => stats.mean,
                    "p50" => stats.p50 as f64,
                    "p90" => stats.p90 as f64,
                    "p99" => stats.p99 as f64,
                    "p999" => stats.p999 as f64,
                    _ => stats.max as f64,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms_and_refuses_others() {
        assert_eq!("p99<5ms".parse::<Assertion>().unwrap().value, 5000.0);
        assert_eq!("connect.p999 <= 1.5s".parse::<Assertion>().unwrap().value, 1_500_000.0);
        assert_eq!("errors==0".parse::<Assertion>().unwrap().op, Op::Eq);
        assert_eq!("throughput>50000".parse::<Assertion>().unwrap().value, 50000.0);
        assert!("p99<5".parse::<Assertion>().unwrap_err().contains("latency like 5ms"));
        assert!("p98<5ms".parse::<Assertion>().unwrap_err().contains("unknown metric"));
        assert!("errors".parse::<Assertion>().unwrap_err().contains("no comparison"));
    }

    #[test]
    fn verdicts_print_values_with_their_units() {
        let summary = crate::load::summary::tests::sample();
        let shown = |expr: &str| expr.parse::<Assertion>().unwrap().check(&summary).to_string();
        assert!(shown("p99<1us").contains(" ms)") || shown("p99<1us").contains(" µs)"), "{}", shown("p99<1us"));
        assert!(shown("throughput<1").ends_with("/s)"), "{}", shown("throughput<1"));
        assert_eq!(Unit::Micros.show(7310.0), "7.31 ms");
        assert_eq!(Unit::Micros.show(250.0), "250 µs");
        assert_eq!(Unit::Micros.show(1_500_000.0), "1.500 s");
        assert_eq!(Unit::PerSecond.show(51234.56), "51234.6/s");
        assert_eq!(Unit::Count.show(3.0), "3");
    }

    #[test]
    fn a_latency_without_samples_fails_and_says_so() {
        let mut summary = crate::load::summary::tests::sample();
        summary.main_latency = "uncorrected";
        summary.latency_us.remove("uncorrected");
        let checked = "p99<5ms".parse::<Assertion>().unwrap().check(&summary);
        assert!(!checked.passed);
        assert!(checked.to_string().contains("no uncorrected latency samples"), "{checked}");
        // The connect latency is there, and is not used in its place.
        assert!(summary.latency_us.contains_key("connect"));
        let explicit = "connect.p99<1s".parse::<Assertion>().unwrap().check(&summary);
        assert!(explicit.passed, "{explicit}");
    }
}
