//! Reporters for `wsprobe validate`: one event per message, then a summary.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;

use crate::schema::Violation;

/// What was found about one message of a capture.
#[derive(Debug, Clone, Copy)]
pub struct MessageOutcome<'a> {
    pub file: &'a str,
    pub line: usize,
    pub message_type: Option<&'a str>,
    pub violations: &'a [Violation],
}

impl MessageOutcome<'_> {
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Totals over a whole `validate` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: usize,
    pub valid: usize,
    pub invalid: usize,
    /// Invalid messages by the rule (schema keyword) they broke, with the first place each
    /// was seen: what a schema change would reject in recorded traffic, at a glance.
    pub by_rule: BTreeMap<String, RuleCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    pub messages: usize,
    /// `file:line` of the first message that broke it.
    pub first: String,
}

/// Distinct rules counted; more are counted under one key, so the summary stays bounded.
const RULES_KEPT: usize = 200;
const OTHER_RULES: &str = "(other rules)";

impl Totals {
    /// Counts one invalid message under each distinct rule it broke.
    pub fn note_invalid(&mut self, outcome: &MessageOutcome<'_>) {
        let rules: BTreeSet<&str> = outcome
            .violations
            .iter()
            .map(|v| {
                if v.schema_path.is_empty() {
                    "(not JSON, or not a readable message)"
                } else {
                    v.schema_path.as_str()
                }
            })
            .collect();
        for rule in rules {
            let key =
                if self.by_rule.len() < RULES_KEPT || self.by_rule.contains_key(rule) { rule } else { OTHER_RULES };
            let first = format!("{}:{}", outcome.file, outcome.line);
            self.by_rule.entry(key.to_string()).or_insert(RuleCount { messages: 0, first }).messages += 1;
        }
    }

    /// Adds a later part of the run (its first places come after ours).
    pub fn merge(&mut self, later: Totals) {
        self.valid += later.valid;
        self.invalid += later.invalid;
        for (rule, count) in later.by_rule {
            let key = if self.by_rule.len() < RULES_KEPT || self.by_rule.contains_key(&rule) {
                rule
            } else {
                OTHER_RULES.into()
            };
            match self.by_rule.get_mut(&key) {
                Some(existing) => existing.messages += count.messages,
                None => {
                    self.by_rule.insert(key, count);
                }
            }
        }
    }
}

pub trait ValidationReporter {
    fn message(&mut self, outcome: &MessageOutcome<'_>) -> io::Result<()>;
    fn finish(&mut self, totals: &Totals) -> io::Result<()>;
}

/// For people: only invalid messages, each with every violation, then one summary line.
pub struct HumanReporter<W> {
    out: W,
}

impl<W: Write> HumanReporter<W> {
    pub fn new(out: W) -> Self {
        HumanReporter { out }
    }
}

impl<W: Write> ValidationReporter for HumanReporter<W> {
    fn message(&mut self, outcome: &MessageOutcome<'_>) -> io::Result<()> {
        if outcome.is_valid() {
            return Ok(());
        }
        let kind = outcome.message_type.map_or_else(|| "message".to_string(), |t| format!("{t} message"));
        let count = outcome.violations.len();
        let plural = if count == 1 { "" } else { "s" };
        writeln!(self.out, "{}:{}: invalid {kind} ({count} violation{plural})", outcome.file, outcome.line)?;
        for violation in outcome.violations {
            let at = if violation.instance_path.is_empty() { "(root)" } else { &violation.instance_path };
            writeln!(self.out, "  at {at}: {}", violation.message)?;
            if !violation.schema_path.is_empty() {
                writeln!(self.out, "     schema: {}", violation.schema_path)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, totals: &Totals) -> io::Result<()> {
        let messages = totals.valid + totals.invalid;
        let files = if totals.files == 1 { "1 file".to_string() } else { format!("{} files", totals.files) };
        let verdict = match (messages, totals.invalid) {
            (0, _) => "no messages found".to_string(),
            (_, 0) => "all valid".to_string(),
            (_, invalid) => format!("{} valid, {invalid} invalid", totals.valid),
        };
        if !totals.by_rule.is_empty() {
            writeln!(self.out, "invalid messages by rule:")?;
            let mut rules: Vec<(&String, &RuleCount)> = totals.by_rule.iter().collect();
            rules.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then(a.0.cmp(b.0)));
            for (rule, count) in rules {
                writeln!(self.out, "  {:>8}  {rule}  (first at {})", count.messages, count.first)?;
            }
        }
        writeln!(self.out, "checked {messages} message{} in {files}: {verdict}", if messages == 1 { "" } else { "s" })?;
        self.out.flush()
    }
}

/// For machines: one JSON object per message, valid ones included, as JSON Lines.
pub struct JsonReporter<W> {
    out: W,
    /// `{"file":"…","line":` for the last file seen, escaped once: most lines are valid
    /// messages from one file, and serializing the same name a million times showed up in
    /// the profile.
    prefix: Option<(String, Vec<u8>)>,
}

impl<W: Write> JsonReporter<W> {
    pub fn new(out: W) -> Self {
        JsonReporter { out, prefix: None }
    }

    /// A valid message's line, byte for byte what serializing [`JsonLine`] writes.
    fn valid_line(&mut self, file: &str, line: usize, message_type: &str) -> io::Result<()> {
        if self.prefix.as_ref().is_none_or(|(cached, _)| cached != file) {
            let mut prefix = b"{\"file\":".to_vec();
            serde_json::to_writer(&mut prefix, file)?;
            prefix.extend_from_slice(b",\"line\":");
            self.prefix = Some((file.to_string(), prefix));
        }
        let prefix = self.prefix.as_ref().map(|(_, prefix)| prefix.as_slice()).unwrap_or_default();
        self.out.write_all(prefix)?;
        self.out.write_all(itoa::Buffer::new().format(line).as_bytes())?;
        self.out.write_all(b",\"valid\":true,\"type\":")?;
        serde_json::to_writer(&mut self.out, message_type)?;
        self.out.write_all(b",\"errors\":[]}\n")
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    file: &'a str,
    line: usize,
    valid: bool,
    #[serde(rename = "type")]
    message_type: Option<&'a str>,
    errors: &'a [Violation],
}

impl<W: Write> ValidationReporter for JsonReporter<W> {
    fn message(&mut self, outcome: &MessageOutcome<'_>) -> io::Result<()> {
        if let (true, Some(message_type)) = (outcome.is_valid(), outcome.message_type) {
            return self.valid_line(outcome.file, outcome.line, message_type);
        }
        let line = JsonLine {
            file: outcome.file,
            line: outcome.line,
            valid: outcome.is_valid(),
            message_type: outcome.message_type,
            errors: outcome.violations,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    fn finish(&mut self, _totals: &Totals) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_line_is_written_exactly_as_serde_writes_it() {
        for (file, line, message_type) in
            [("cap.jsonl", 1, "Pong"), ("dir/\"odd\"\\name\u{1}é.jsonl", 123_456_789, "Market\"Data"), ("-", 0, "")]
        {
            let mut fast = JsonReporter::new(Vec::new());
            // Twice, so the cached prefix is used as well as built.
            for _ in 0..2 {
                fast.message(&MessageOutcome { file, line, message_type: Some(message_type), violations: &[] })
                    .unwrap();
            }
            let mut expected = Vec::new();
            for _ in 0..2 {
                let json = JsonLine { file, line, valid: true, message_type: Some(message_type), errors: &[] };
                serde_json::to_writer(&mut expected, &json).unwrap();
                expected.push(b'\n');
            }
            assert_eq!(String::from_utf8(fast.out).unwrap(), String::from_utf8(expected).unwrap());
        }
    }

    fn sample(reporter: &mut dyn ValidationReporter) {
        let bad = [
            Violation {
                instance_path: "/data/price".into(),
                schema_path: "core/MarketData.json#/properties/data/properties/price/exclusiveMinimum".into(),
                message: "-1 is less than or equal to the minimum of 0".into(),
            },
            Violation {
                instance_path: String::new(),
                schema_path: String::new(),
                message: "not valid JSON: EOF while parsing a value at line 1 column 0".into(),
            },
        ];
        let outcomes = [
            MessageOutcome { file: "cap.jsonl", line: 1, message_type: Some("Pong"), violations: &[] },
            MessageOutcome { file: "cap.jsonl", line: 2, message_type: Some("MarketData"), violations: &bad[..1] },
            MessageOutcome { file: "cap.jsonl", line: 4, message_type: None, violations: &bad[1..] },
        ];
        let mut totals = Totals { files: 1, ..Totals::default() };
        for outcome in &outcomes {
            reporter.message(outcome).unwrap();
            if outcome.is_valid() {
                totals.valid += 1;
            } else {
                totals.invalid += 1;
                totals.note_invalid(outcome);
            }
        }
        reporter.finish(&totals).unwrap();
    }

    #[test]
    fn human_report_lists_invalid_messages_with_locations() {
        let mut out = Vec::new();
        sample(&mut HumanReporter::new(&mut out));
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[test]
    fn json_report_has_one_object_per_message() {
        let mut out = Vec::new();
        sample(&mut JsonReporter::new(&mut out));
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
        }
        insta::assert_snapshot!(text);
    }
}
