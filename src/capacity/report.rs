//! The capacity search for people (a line per step as it goes, then a table), for machines
//! (JSON) and as a page (the latency-against-throughput curve with the knee marked).

use std::fmt::Write;

use super::{Bound, CapacityReport, Step, StepVerdict};
use crate::load::summary::{micros, thousands};

fn rate(value: f64) -> String {
    thousands(value.round() as u64)
}

fn latency(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), micros)
}

/// One line for a finished step.
pub fn step_line(number: usize, step: &Step) -> String {
    let what = match step.verdict {
        StepVerdict::Passed => "passed".to_string(),
        StepVerdict::Broken => {
            format!("BROKEN: {}", step.broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        }
        StepVerdict::Invalid => format!("INVALID: {}", step.invalid_reasons.join("; ")),
    };
    format!(
        "step {number}: {}/s intended, {}/s achieved, p50 {}, p99 {}: {what}",
        rate(step.intended_per_s),
        rate(step.achieved_per_s),
        latency(step.p50_us),
        latency(step.p99_us)
    )
}

/// The verdict in one sentence.
pub fn conclusion(report: &CapacityReport) -> String {
    match (report.capacity_per_s, report.bound) {
        (Some(capacity), Bound::Server) => format!(
            "capacity {}/s (bound: server): the lowest broken rate broke {}",
            rate(capacity),
            report.broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ),
        (Some(capacity), Bound::MaxRate) => {
            format!("capacity ≥ {}/s (bound: max-rate): every step up to --max-rate passed; raise it to search further", rate(capacity))
        }
        (Some(capacity), Bound::Generator) => format!(
            "capacity ≥ {}/s (bound: generator): the generator, not the server, was the limit above it; shard the load (--shard) or give it more threads",
            rate(capacity)
        ),
        (None, Bound::Generator) => {
            "no capacity found (bound: generator): the generator could not even drive the start rate; lower --start-rate or shard the load".into()
        }
        (None, _) => format!(
            "no capacity found: the start rate already broke {}; lower --start-rate",
            report.steps.first().map(|s| s.broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")).unwrap_or_default()
        ),
    }
}

/// The final table and the conclusion.
pub fn human(report: &CapacityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nwsprobe capacity: {} mode, {} connection(s), {} in flight, {:.0} s steps after {:.0} s warm-up, against {}",
        report.mode, report.connections, report.in_flight, report.step_s, report.warmup_s, report.target
    );
    if report.tls.is_some() {
        let _ = writeln!(out, "  TLS certificates were NOT verified (--insecure): the server's identity is unchecked");
    }
    let _ = writeln!(out, "\n  {:>12} {:>12} {:>10} {:>10}  verdict", "intended/s", "achieved/s", "p50", "p99");
    let mut order: Vec<&Step> = report.steps.iter().collect();
    order.sort_by(|a, b| a.intended_per_s.total_cmp(&b.intended_per_s));
    for step in order {
        let what = match step.verdict {
            StepVerdict::Passed => "passed".to_string(),
            StepVerdict::Broken => {
                format!("broken: {}", step.broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            }
            StepVerdict::Invalid => format!("invalid: {}", step.invalid_reasons.join("; ")),
        };
        let _ = writeln!(
            out,
            "  {:>12} {:>12} {:>10} {:>10}  {what}",
            rate(step.intended_per_s),
            rate(step.achieved_per_s),
            latency(step.p50_us),
            latency(step.p99_us)
        );
    }
    let _ = writeln!(out, "\n  {}", conclusion(report));
    out
}

pub fn json(report: &CapacityReport) -> String {
    serde_json::to_string_pretty(report).expect("the report serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::{Breakage, CapacityReport};
    use super::*;

    fn step(intended: f64, achieved: f64, p99: u64, verdict: StepVerdict, broken: Vec<Breakage>) -> Step {
        Step {
            intended_per_s: intended,
            achieved_per_s: achieved,
            p50_us: Some(p99 / 3),
            p99_us: Some(p99),
            verdict,
            broken,
            invalid_reasons: Vec::new(),
            generator_cpu: Some(0.4),
        }
    }

    pub(crate) fn sample() -> CapacityReport {
        let slow = Breakage { kind: "slo", name: "p99<5ms".into(), detail: "actual 21.40 ms".into() };
        let slower = Breakage { kind: "slo", name: "p99<5ms".into(), detail: "actual 9.80 ms".into() };
        CapacityReport {
            target: "ws://127.0.0.1:9/ws".into(),
            mode: "ping",
            connections: 10,
            in_flight: 8,
            step_s: 5.0,
            warmup_s: 1.0,
            resolution: 0.05,
            slos: vec!["p99<5ms".into()],
            capacity_per_s: Some(12_000.0),
            bound: Bound::Server,
            broken: vec![slower.clone()],
            steps: vec![
                step(4000.0, 3998.2, 900, StepVerdict::Passed, vec![]),
                step(8000.0, 7999.0, 1200, StepVerdict::Passed, vec![]),
                step(16_000.0, 15_870.0, 21_400, StepVerdict::Broken, vec![slow]),
                step(12_000.0, 11_990.0, 3100, StepVerdict::Passed, vec![]),
                step(14_000.0, 13_950.0, 9800, StepVerdict::Broken, vec![slower]),
            ],
            tls: None,
            intervals: Vec::new(),
            started: None,
        }
    }

    #[test]
    fn human_report() {
        insta::assert_snapshot!(human(&sample()));
    }

    #[test]
    fn json_report() {
        insta::assert_snapshot!(json(&sample()));
    }
}
