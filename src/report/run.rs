//! Reporters for `wsprobe run`: human, JSON and JUnit renderings of one [`RunReport`].

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::outcome::{CaseReport, RunReport, Status};
use crate::session::{Direction, TranscriptEntry};

/// ANSI styling, only when writing to a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn status(self, status: Status) -> String {
        let code = match status {
            Status::Passed => "32",
            Status::Failed => "1;31",
            Status::Warned => "33",
            Status::Skipped => "2",
            Status::Informational => "36",
        };
        self.paint(code, status.label())
    }
}

fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Frame text shown per transcript line in human and JUnit reports (JSON keeps more).
const SHOWN_CHARS: usize = 160;

fn transcript_lines(out: &mut String, entries: &[TranscriptEntry]) {
    for entry in entries {
        let arrow = match entry.direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        let data = match entry.data.char_indices().nth(SHOWN_CHARS) {
            Some((cut, _)) => format!("{}…", &entry.data[..cut]),
            None => entry.data.clone(),
        };
        let _ = writeln!(out, "      +{:>6} ms {arrow} {:<7} {data}", entry.at_ms, entry.kind);
    }
}

fn timeline_lines(out: &mut String, moments: &[crate::outcome::Moment]) {
    for moment in moments {
        let _ = writeln!(out, "      {:>10}  {}", format!("+{:.3} s", moment.at.as_secs_f64()), moment.event);
    }
}

/// For people: a line per case, details for failures and warnings, then the summary.
pub fn human(report: &RunReport, style: Style) -> String {
    let mut out = String::new();
    let origin = if report.bundled { " (bundled reference server)" } else { "" };
    match &report.serve {
        None => {
            let _ = writeln!(
                out,
                "wsprobe {}: {} profile against {}{origin}\n",
                env!("CARGO_PKG_VERSION"),
                report.profile,
                report.target
            );
            if report.tls_unverified {
                let _ = writeln!(out, "{}\n", style.paint("1;33", UNVERIFIED_NOTE));
            }
        }
        Some(serve) => {
            let faults = if serve.faults.is_empty() { "none".to_string() } else { serve.faults.join(", ") };
            let _ = writeln!(
                out,
                "wsprobe {} serve: {} client(s) of the {} profile at {}\ntime scale {} (every spec timing ×{}; tolerance −10 %/+10 % + {} ms of unscaled slack), faults: {faults}\n",
                env!("CARGO_PKG_VERSION"),
                serve.clients,
                report.profile,
                report.target,
                serve.time_scale,
                serve.time_scale,
                serve.slack_ms
            );
        }
    }
    let width = report.cases.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut suite: Option<&str> = None;
    for case in &report.cases {
        // Clients each get a heading: the same rules repeat for every client.
        if report.serve.is_some() && suite != Some(&case.suite) {
            let _ = writeln!(out, "{}{}:", if suite.is_some() { "\n" } else { "" }, style.paint("1", &case.suite));
            suite = Some(&case.suite);
        }
        let detail = match case.status {
            Status::Skipped => format!("  {}", case.message),
            _ => format!("  {:>9}", duration(case.duration)),
        };
        let _ = writeln!(out, "  {}  {:<width$}{detail}", style.status(case.status), case.id);
    }
    let noteworthy: Vec<&CaseReport> = report
        .cases
        .iter()
        .filter(|c| matches!(c.status, Status::Failed | Status::Warned | Status::Informational))
        .collect();
    if !noteworthy.is_empty() {
        let _ = writeln!(out, "\n{}", style.paint("1", "Details:"));
    }
    for case in noteworthy {
        let requirement = case.requirement.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
        let suite = if report.serve.is_some() { case.suite.clone() } else { format!("scenario {}", case.suite) };
        let _ = writeln!(
            out,
            "\n{} {} ({}{requirement}, {suite})",
            style.status(case.status),
            style.paint("1", &case.id),
            case.level.name(),
        );
        let _ = writeln!(out, "    rule: {}", case.description);
        for line in case.message.lines() {
            let _ = writeln!(out, "    {line}");
        }
        if !case.transcript.is_empty() {
            let _ = writeln!(out, "    last frames:");
            transcript_lines(&mut out, &case.transcript);
        }
        if !case.timeline.is_empty() {
            let _ = writeln!(out, "    timeline:");
            timeline_lines(&mut out, &case.timeline);
        }
    }
    if !report.cases.is_empty() {
        summary_table(&mut out, report);
    }
    let s = report.summary();
    let _ = writeln!(
        out,
        "\nSummary: {} passed, {} failed, {} warned, {} skipped, {} informational ({} cases in {})",
        s.passed,
        s.failed,
        s.warned,
        s.skipped,
        s.informational,
        report.cases.len(),
        duration(report.duration)
    );
    for hint in &report.hints {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// Counts per scenario file, in the order the files ran.
fn summary_table(out: &mut String, report: &RunReport) {
    let mut rows: Vec<(&str, [usize; 5])> = Vec::new();
    for case in &report.cases {
        let column = match case.status {
            Status::Passed => 0,
            Status::Failed => 1,
            Status::Warned => 2,
            Status::Skipped => 3,
            Status::Informational => 4,
        };
        match rows.iter_mut().find(|(suite, _)| *suite == case.suite) {
            Some((_, counts)) => counts[column] += 1,
            None => {
                let mut counts = [0; 5];
                counts[column] = 1;
                rows.push((&case.suite, counts));
            }
        }
    }
    let width = rows.iter().map(|(suite, _)| suite.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(out, "\n  {:<width$}  passed  failed  warned  skipped  info", "suite");
    for (suite, [passed, failed, warned, skipped, info]) in rows {
        let _ = writeln!(out, "  {suite:<width$}  {passed:>6}  {failed:>6}  {warned:>6}  {skipped:>7}  {info:>4}");
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    wsprobe: &'static str,
    target: &'a str,
    bundled: bool,
    profile: &'a str,
    duration_ms: u64,
    summary: crate::outcome::Summary,
    /// Advice about the whole run (e.g. the wrong profile); empty when there is none.
    hints: &'a [String],
    /// How clients were watched, for `serve` reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    serve: Option<&'a crate::outcome::ServeInfo>,
    /// Present only under `--insecure`: `"unverified"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'static str>,
    cases: &'a [CaseReport],
}

/// What reports say of a run under `--insecure`.
pub const UNVERIFIED: &str = "unverified";
const UNVERIFIED_NOTE: &str = "TLS certificates were NOT verified (--insecure): the server's identity is unchecked";

/// For machines: one JSON document.
pub fn json(report: &RunReport) -> String {
    let document = JsonReport {
        wsprobe: env!("CARGO_PKG_VERSION"),
        target: &report.target,
        bundled: report.bundled,
        profile: &report.profile,
        duration_ms: report.duration.as_millis() as u64,
        summary: report.summary(),
        hints: &report.hints,
        serve: report.serve.as_ref(),
        tls: report.tls_unverified.then_some(UNVERIFIED),
        cases: &report.cases,
    };
    let mut text = serde_json::to_string_pretty(&document).expect("the report serializes");
    text.push('\n');
    text
}

pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters and the non-characters U+FFFE and U+FFFF,
            // even escaped; one of them in a frame would make the whole file unreadable.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{FFFD}'),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// For CI: JUnit XML, one testsuite per scenario file and one testcase per case. Warnings and
/// informational results pass, with their message in `system-out`.
pub fn junit(report: &RunReport) -> String {
    let mut suites: Vec<(&str, Vec<&CaseReport>)> = Vec::new();
    for case in &report.cases {
        match suites.iter_mut().find(|(name, _)| *name == case.suite) {
            Some((_, cases)) => cases.push(case),
            None => suites.push((&case.suite, vec![case])),
        }
    }
    let summary = report.summary();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        // No `skipped` here: the Jenkins JUnit schema allows it on <testsuite> only.
        "<testsuites name=\"wsprobe\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
        report.cases.len(),
        summary.failed,
        report.duration.as_secs_f64()
    );
    for (name, cases) in suites {
        let failures = cases.iter().filter(|c| c.status == Status::Failed).count();
        let skipped = cases.iter().filter(|c| c.status == Status::Skipped).count();
        let time: f64 = cases.iter().map(|c| c.duration.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml_escape(name),
            cases.len()
        );
        let _ = writeln!(
            out,
            "    <properties>\n      <property name=\"target\" value=\"{}\"/>\n      <property name=\"profile\" value=\"{}\"/>{}\n    </properties>",
            xml_escape(&report.target),
            report.profile,
            if report.tls_unverified {
                format!("\n      <property name=\"tls\" value=\"{UNVERIFIED}: {UNVERIFIED_NOTE}\"/>")
            } else {
                String::new()
            }
        );
        for case in cases {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"wsprobe.{}\" time=\"{:.3}\"",
                xml_escape(&case.id),
                xml_escape(name),
                case.duration.as_secs_f64()
            );
            let mut details = format!("rule: {}\n{}\n", case.description, case.message);
            if !case.transcript.is_empty() {
                details.push_str("last frames:\n");
                transcript_lines(&mut details, &case.transcript);
            }
            if !case.timeline.is_empty() {
                details.push_str("timeline:\n");
                timeline_lines(&mut details, &case.timeline);
            }
            let first_line = case.message.lines().next().unwrap_or("");
            match case.status {
                Status::Passed if case.message.is_empty() => out.push_str("/>\n"),
                Status::Failed => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                        xml_escape(first_line),
                        case.requirement.as_deref().unwrap_or("conformance"),
                        xml_escape(&details)
                    );
                }
                Status::Skipped => {
                    let _ =
                        writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml_escape(&case.message));
                }
                status => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}: {}</system-out>\n    </testcase>",
                        status.label(),
                        xml_escape(&details)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Level;

    fn case(id: &str, suite: &str, status: Status, message: &str, ms: u64) -> CaseReport {
        CaseReport {
            id: id.into(),
            suite: suite.into(),
            requirement: id.starts_with("heartbeat").then(|| "FR-WS-HEARTBEAT-001".to_string()),
            level: if status == Status::Warned { Level::Should } else { Level::Must },
            status,
            duration: Duration::from_millis(ms),
            message: message.into(),
            description: format!("the rule for {id}"),
            recording: Vec::new(),
            broadcasts: Default::default(),
            timeline: Vec::new(),
            transcript: if matches!(status, Status::Failed | Status::Warned) {
                vec![
                    TranscriptEntry {
                        at_ms: 3,
                        direction: Direction::Sent,
                        kind: "text",
                        data: r#"{"type":"Ping","timestamp":1}"#.into(),
                    },
                    TranscriptEntry {
                        at_ms: 10_004,
                        direction: Direction::Received,
                        kind: "close",
                        data: "1011 <oops> & \"quotes\"".into(),
                    },
                ]
            } else {
                vec![]
            },
        }
    }

    fn sample() -> RunReport {
        RunReport {
            target: "ws://127.0.0.1:9/ws".into(),
            bundled: false,
            profile: "core".into(),
            duration: Duration::from_millis(5321),
            serve: None,
            tls_unverified: false,
            hints: vec!["3 of 4 received messages are connection messages, which the core profile does not define but the ai profile does: this looks like the ai endpoint; pass --profile ai".into()],
            cases: vec![
                case("handshake.upgrade", "handshake", Status::Passed, "", 4),
                case(
                    "heartbeat.pong",
                    "heartbeat",
                    Status::Failed,
                    "step 4 (expect): expected Pong within 10s; nothing arrived",
                    10_012,
                ),
                case(
                    "input.binary_frame",
                    "input",
                    Status::Warned,
                    "step 4 (expect): expected Error within 2s; nothing arrived [should]",
                    2_310,
                ),
                case(
                    "auth.header",
                    "auth",
                    Status::Skipped,
                    "needs a valid token: pass --token JWT or --jwt-secret SECRET",
                    0,
                ),
                case("messages.note", "messages", Status::Informational, "the rule held", 1),
            ],
        }
    }

    #[test]
    fn human_report() {
        insta::assert_snapshot!(human(&sample(), Style { color: false }));
    }

    #[test]
    fn json_report() {
        let text = json(&sample());
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["summary"]["failed"], 1);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn xml_escaping_leaves_nothing_xml_1_0_forbids() {
        let escaped = xml_escape("a\u{0}b\u{1F}c\u{FFFE}d\u{FFFF}e\u{FFFD}\u{10FFFF}\t<&>");
        assert_eq!(escaped, "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}\u{10FFFF}\t&lt;&amp;&gt;");
        let allowed =
            |c: char| matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        let every: String = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
        assert!(xml_escape(&every).chars().all(allowed));
    }

    #[test]
    fn junit_report() {
        insta::assert_snapshot!(junit(&sample()));
    }

    /// A `serve` report: clients as suites, the scale and faults in the heading, a timeline
    /// under the failing rule.
    fn serve_sample() -> RunReport {
        let moment =
            |ms: u64, event: &str| crate::outcome::Moment { at: Duration::from_millis(ms), event: event.into() };
        let mut failed = case(
            "client.reconnect.backoff",
            "client eager",
            Status::Failed,
            "reconnect attempt 1 at +0.502 s came 0.001 s after the previous failure; expected 0.100 s (allowed 0.090 s–0.210 s)",
            20_000,
        );
        failed.transcript = Vec::new();
        failed.timeline = vec![
            moment(501, "outage: the server dropped the connection"),
            moment(502, "attempt 1 after 0.001 s (the spec's step 1: 0.100 s): opened"),
        ];
        RunReport {
            target: "ws://127.0.0.1:8080/ws".into(),
            bundled: true,
            profile: "core".into(),
            duration: Duration::from_millis(20_300),
            tls_unverified: false,
            serve: Some(crate::outcome::ServeInfo {
                time_scale: 0.1,
                slack_ms: 100,
                faults: vec!["drop-every=5s".into()],
                clients: 2,
            }),
            hints: Vec::new(),
            cases: vec![
                case("client.reconnect.backoff", "client good", Status::Passed, "", 20_000),
                case(
                    "client.heartbeat.interval",
                    "client good",
                    Status::Skipped,
                    "not measured: no connection stayed open",
                    20_000,
                ),
                failed,
            ],
        }
    }

    #[test]
    fn serve_reports() {
        insta::assert_snapshot!("serve_human", human(&serve_sample(), Style { color: false }));
        insta::assert_snapshot!("serve_json", json(&serve_sample()));
        insta::assert_snapshot!("serve_junit", junit(&serve_sample()));
    }
}
