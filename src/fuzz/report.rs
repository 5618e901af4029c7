//! A fuzz campaign for people, for machines (JSON) and for CI (JUnit: one testcase per
//! invariant, failed with its findings).

use std::fmt::Write;

use super::exec::Invariant;
use super::FuzzReport;
use crate::report::run::xml_escape;

pub fn human(report: &FuzzReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wsprobe fuzz: {} profile at {}, seed {}: {} case(s) in {:.1} s",
        report.profile,
        report.target,
        report.seed,
        crate::load::summary::thousands(report.cases),
        report.duration_s
    );
    for finding in &report.findings {
        let _ = writeln!(out, "\nFINDING {}: {}", finding.invariant.id(), finding.observed);
        for (n, frame) in finding.sent.iter().enumerate() {
            let _ = writeln!(out, "  sent {}: {frame}", n + 1);
        }
        let _ = writeln!(out, "  shrunk from {} frame(s) to {}", finding.shrunk_from, finding.sent.len());
        let _ = writeln!(out, "  bundle: {}", finding.bundle.display());
        let against = if report.bundled_server { String::new() } else { format!(" --url {}", report.target) };
        let _ = writeln!(out, "  replay: wsprobe replay {}{}{against}", finding.bundle.display(), report.profile_flags);
    }
    for invariant in &report.without_input {
        let _ = writeln!(
            out,
            "\n{} breaks with no input at all (a fresh connection, a Ping): no input is to blame, so it is not a finding; run `wsprobe run` against this server to see which rule it breaks",
            invariant.id()
        );
    }
    if report.unconfirmed > 0 {
        let _ = writeln!(
            out,
            "\n{} breakage(s) did not come back when their input was sent again: not caused by the input, not findings",
            report.unconfirmed
        );
    }
    if let Some(stopped) = &report.stopped {
        let _ = writeln!(out, "\nstopped early: {stopped}");
    }
    let _ = writeln!(
        out,
        "\nSummary: {} finding(s) in {} case(s); invariants: {}",
        report.findings.len(),
        crate::load::summary::thousands(report.cases),
        Invariant::ALL.map(Invariant::id).join(", ")
    );
    out
}

pub fn json(report: &FuzzReport) -> String {
    serde_json::to_string_pretty(report).expect("the report serializes") + "\n"
}

pub fn junit(report: &FuzzReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = Invariant::ALL.iter().filter(|i| report.findings.iter().any(|f| f.invariant == **i)).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"wsprobe fuzz\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        Invariant::ALL.len(),
        report.duration_s
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"fuzz {} seed {}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        xml_escape(&report.target),
        report.seed,
        Invariant::ALL.len(),
        report.duration_s
    );
    let _ = writeln!(out, "    <properties><property name=\"cases\" value=\"{}\"/></properties>", report.cases);
    for invariant in Invariant::ALL {
        let found: Vec<_> = report.findings.iter().filter(|f| f.invariant == invariant).collect();
        let _ = write!(out, "    <testcase classname=\"fuzz\" name=\"{}\"", invariant.id());
        if found.is_empty() {
            let _ = writeln!(out, "/>");
            continue;
        }
        let details: Vec<String> =
            found.iter().map(|f| format!("{}\nbundle: {}", f.summary, f.bundle.display())).collect();
        let _ = writeln!(
            out,
            ">\n      <failure message=\"{} finding(s)\" type=\"fuzz\">{}</failure>\n    </testcase>",
            found.len(),
            xml_escape(&details.join("\n\n"))
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::Finding;

    fn sample() -> FuzzReport {
        FuzzReport {
            target: "ws://127.0.0.1:9/ws".into(),
            bundled_server: false,
            profile: "core".into(),
            seed: 1,
            cases: 1234,
            duration_s: 60.0,
            findings: vec![Finding {
                invariant: Invariant::Unresponsive,
                bundle: "wsprobe-fuzz/connection.unresponsive-0c1d2e3f.json".into(),
                summary: "connection.unresponsive: no Pong within 2.000 s of the Ping sent after the input, after text {\"type\":\"Ping\",\"timestamp\":0}".into(),
                sent: vec!["text {\"type\":\"Ping\",\"timestamp\":0}".into()],
                observed: "no Pong within 2.000 s of the Ping sent after the input".into(),
                shrunk_from: 3,
            }],
            unconfirmed: 0,
            without_input: Vec::new(),
            stopped: None,
            profile_flags: String::new(),
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

    #[test]
    fn junit_report() {
        insta::assert_snapshot!(junit(&sample()));
    }
}
