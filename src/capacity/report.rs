//! The capacity search for people (a line per step as it goes, then a table), for machines
//! (JSON) and as a page (the latency-against-throughput curve with the knee marked).

use std::fmt::Write;

use super::{Bound, CapacityReport, Searched, Step, StepVerdict};
use crate::load::summary::{micros, thousands};

fn rate(value: f64) -> String {
    thousands(value.round() as u64)
}

fn latency(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), micros)
}

/// One line for a finished step.
pub fn step_line(number: usize, searched: Searched, step: &Step) -> String {
    let what = match step.verdict {
        StepVerdict::Passed => "passed".to_string(),
        StepVerdict::Broken => {
            format!("BROKEN: {}", step.broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        }
        StepVerdict::Invalid => format!("INVALID: {}", step.invalid_reasons.join("; ")),
    };
    let load = match searched {
        Searched::Rate => {
            format!("{}/s intended, {}/s achieved", rate(step.intended_per_s), rate(step.achieved_per_s))
        }
        Searched::Connections => format!(
            "{} connections, {} pushes/s ({:.2}/s each)",
            thousands(step.connections as u64),
            rate(step.achieved_per_s),
            step.achieved_per_s / step.connections.max(1) as f64
        ),
    };
    format!("step {number}: {load}, p50 {}, p99 {}: {what}", latency(step.p50_us), latency(step.p99_us))
}

/// The capacity as a user reads it: "12,000/s", or "4,000 connections (36,000 pushes/s)".
fn capacity(report: &CapacityReport, per_s: f64) -> String {
    match report.capacity_connections {
        Some(connections) => format!("{} connections ({} pushes/s)", thousands(connections as u64), rate(per_s)),
        None => format!("{}/s", rate(per_s)),
    }
}

/// The verdict in one sentence.
pub fn conclusion(report: &CapacityReport) -> String {
    let ((start, max), level) = (report.searched.flags(), report.searched.noun());
    let broke = |broken: &[super::Breakage]| broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    match (report.capacity_per_s, report.bound) {
        (Some(per_s), Bound::Server) => format!(
            "capacity {} (bound: server): the lowest broken {level} broke {}",
            capacity(report, per_s),
            broke(&report.broken)
        ),
        (Some(per_s), Bound::MaxRate) => format!(
            "capacity ≥ {} (bound: max-rate): every step up to {max} passed; raise it to search further",
            capacity(report, per_s)
        ),
        (Some(per_s), Bound::Generator) => format!(
            "capacity ≥ {} (bound: generator): the generator, not the server, was the limit above it; shard the load (--shard) or give it more threads",
            capacity(report, per_s)
        ),
        (None, Bound::Generator) => format!(
            "no capacity found (bound: generator): the generator could not even drive the start {level}; lower {start} or shard the load"
        ),
        (None, _) => match report.steps.first() {
            // Nothing measured is not a server that broke at the start: say why, not "lower it".
            Some(first)
                if !first.broken.is_empty()
                    && first.broken.iter().all(|b| b.name == "pushes" || b.name == "replies")
                    && first.p50_us.is_none() =>
            {
                format!(
                    "no capacity found: nothing could be measured at the start, so this search cannot judge the server: {}",
                    broke(&first.broken)
                )
            }
            first => format!(
                "no capacity found: the start {level} already broke {}; lower {start}",
                first.map(|s| broke(&s.broken)).unwrap_or_default()
            ),
        },
    }
}

/// The final table and the conclusion.
pub fn human(report: &CapacityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nwsprobe capacity: {} mode, {}, {:.0} s steps after {:.0} s warm-up, against {}",
        report.mode,
        match report.searched {
            Searched::Rate => format!("{} connection(s), {} in flight", report.connections, report.in_flight),
            Searched::Connections => match report.cadence_per_connection {
                Some(cadence) => format!(
                    "connections ramped, each held to {:.0}% of the first step's {cadence:.2} pushes/s",
                    report.cadence_floor * 100.0
                ),
                None => "connections ramped".to_string(),
            },
        },
        report.step_s,
        report.warmup_s,
        report.target
    );
    if report.tls.is_some() {
        let _ = writeln!(out, "  TLS certificates were NOT verified (--insecure): the server's identity is unchecked");
    }
    let _ = writeln!(
        out,
        "\n  {:>11} {:>12} {:>12} {:>10} {:>10}  verdict",
        "connections", "intended/s", "achieved/s", "p50", "p99"
    );
    let mut order: Vec<&Step> = report.steps.iter().collect();
    order.sort_by(|a, b| a.intended_per_s.total_cmp(&b.intended_per_s).then(a.connections.cmp(&b.connections)));
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
            "  {:>11} {:>12} {:>12} {:>10} {:>10}  {what}",
            thousands(step.connections as u64),
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
            connections: 10,
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
            searched: Searched::Rate,
            connections: 10,
            in_flight: 8,
            step_s: 5.0,
            warmup_s: 1.0,
            resolution: 0.05,
            slos: vec!["p99<5ms".into()],
            capacity_per_s: Some(12_000.0),
            capacity_connections: None,
            cadence_per_connection: None,
            cadence_floor: 0.5,
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

    /// Push mode: connections ramped, the first step's cadence the floor's base.
    fn push_sample() -> CapacityReport {
        let collapsed = Breakage {
            kind: "rule",
            name: "cadence".into(),
            detail: "each connection got 2.10 pushes/s, 21% of the 9.95/s at the first step (floor 50%)".into(),
        };
        let push = |connections: usize, achieved: f64, verdict: StepVerdict, broken: Vec<Breakage>| Step {
            connections,
            ..step(connections as f64 * 9.95, achieved, 4000, verdict, broken)
        };
        CapacityReport {
            mode: "push",
            searched: Searched::Connections,
            connections: 20,
            capacity_per_s: Some(1194.0),
            capacity_connections: Some(120),
            cadence_per_connection: Some(9.95),
            broken: vec![collapsed.clone()],
            steps: vec![
                push(20, 199.0, StepVerdict::Passed, vec![]),
                push(80, 796.0, StepVerdict::Passed, vec![]),
                push(160, 336.0, StepVerdict::Broken, vec![collapsed.clone()]),
                push(120, 1194.0, StepVerdict::Passed, vec![]),
                push(140, 294.0, StepVerdict::Broken, vec![collapsed]),
            ],
            slos: Vec::new(),
            ..sample()
        }
    }

    #[test]
    fn push_human_report() {
        insta::assert_snapshot!(human(&push_sample()));
    }

    #[test]
    fn json_report() {
        insta::assert_snapshot!(json(&sample()));
    }
}
