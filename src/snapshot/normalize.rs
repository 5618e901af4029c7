//! Turns a case's recording into stable text: volatile values become placeholders by rules on
//! JSON paths, and broadcasts (which interleave with replies at times no client controls) are
//! left out of the exchange, so two recordings of the same server read the same.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::outcome::CaseReport;
use crate::profile::ProfileSpec;
use crate::scenario::BroadcastPolicy;
use crate::session::Direction;
#[cfg(test)]
use crate::session::Recorded;

/// What a rule does to the value at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `<ms>` for an integer, `<iso>` for a string.
    Time,
    /// `<id:N>`, the same value the same N within a case.
    Id,
    /// `<number>`, `<string>` …: keep only the type.
    Type,
    /// Round a number to this many decimals.
    Round(u32),
    /// Leave the value as it is (to exempt a path from a broader rule).
    Keep,
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(text: &str) -> Result<Action, String> {
        match text {
            "time" => Ok(Action::Time),
            "id" => Ok(Action::Id),
            "type" => Ok(Action::Type),
            "keep" => Ok(Action::Keep),
            other => match other.strip_prefix("round:").map(str::parse::<u32>) {
                Some(Ok(n)) if n <= 12 => Ok(Action::Round(n)),
                _ => Err(format!("{other:?}: use time, id, type, keep or round:N")),
            },
        }
    }
}

/// A path pattern: `/`-separated segments, where `*` matches one segment, `**` any number of
/// them, and a segment may start or end with `*` (`*_id`, `entry_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: String,
    pub action: Action,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: String,
    action: String,
}

/// Rules from a YAML file (`rules: [{path: /data/**/price, action: round:2}]`), tried before
/// the defaults.
pub fn rules_from_yaml(text: &str) -> Result<Vec<Rule>, String> {
    let file: RuleFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    file.rules
        .into_iter()
        .map(|r| {
            if !r.path.starts_with('/') {
                return Err(format!("rule path {:?} must start with / (a JSON Pointer, * and ** allowed)", r.path));
            }
            Ok(Rule { path: r.path, action: r.action.parse()? })
        })
        .collect()
}

/// The defaults: times and ids anywhere (both profiles name them alike), then tokens.
pub fn default_rules() -> Vec<Rule> {
    let rule = |path: &str, action: Action| Rule { path: path.into(), action };
    vec![
        rule("/**/timestamp", Action::Time),
        rule("/**/*_time", Action::Time),
        rule("/**/last_update", Action::Time),
        rule("/**/client_id", Action::Id),
        rule("/**/id", Action::Id),
        rule("/**/*_id", Action::Id),
        rule("/**/token", Action::Type),
    ]
}

/// `2025-10-10T10:30:00…`: a date, a `T`, a time.
fn looks_like_iso(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(suffix), _) => segment.ends_with(suffix),
        (_, Some(prefix)) => segment.starts_with(prefix),
        _ => pattern == segment,
    }
}

fn path_matches(pattern: &[&str], path: &[String]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(&"**") => (0..=path.len()).any(|skip| path_matches(&pattern[1..], &path[skip..])),
        Some(first) => !path.is_empty() && segment_matches(first, &path[0]) && path_matches(&pattern[1..], &path[1..]),
    }
}

/// Applies rules to one message, with ids numbered across the case.
struct Redactor<'a> {
    rules: &'a [Rule],
    ids: BTreeMap<String, usize>,
}

impl Redactor<'_> {
    fn action(&self, path: &[String]) -> Option<&Action> {
        self.rules
            .iter()
            .find(|r| {
                let pattern: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
                path_matches(&pattern, path)
            })
            .map(|r| &r.action)
    }

    fn redact(&mut self, value: &mut Value, path: &mut Vec<String>) {
        if let Some(action) = self.action(path).cloned() {
            if !value.is_object() && !value.is_array() {
                *value = self.apply(&action, value);
                return;
            }
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    path.push(key.clone());
                    self.redact(child, path);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    path.push(index.to_string());
                    self.redact(child, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn apply(&mut self, action: &Action, value: &Value) -> Value {
        match action {
            Action::Keep => value.clone(),
            // Only what looks like a time is replaced: an empty or odd value is the change to see.
            Action::Time => match value {
                Value::Number(n) if n.is_u64() || n.is_i64() => Value::String("<ms>".into()),
                Value::String(s) if looks_like_iso(s) => Value::String("<iso>".into()),
                _ => value.clone(),
            },
            Action::Id => {
                let next = self.ids.len() + 1;
                let n = *self.ids.entry(value.to_string()).or_insert(next);
                Value::String(format!("<id:{n}>"))
            }
            Action::Type => Value::String(format!("<{}>", type_name(value))),
            Action::Round(places) => match value.as_f64() {
                Some(f) => {
                    let scale = 10f64.powi(*places as i32);
                    serde_json::Number::from_f64((f * scale).round() / scale).map_or(value.clone(), Value::Number)
                }
                None => value.clone(),
            },
        }
    }
}

/// The snapshot text of one case: a header line, then one line per frame of the exchange.
pub fn case_text(case: &CaseReport, profile: &ProfileSpec, rules: &[Rule]) -> String {
    let mut redactor = Redactor { rules, ids: BTreeMap::new() };
    let discriminator = profile.discriminator();
    let mut out = format!("case {}: {}\n", case.id, case.status.label());
    let mut shapes = std::collections::BTreeSet::new();
    for frame in &case.recording {
        let arrow = match frame.direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        let line = match frame.kind {
            "text" => match serde_json::from_str::<Value>(&frame.data) {
                Ok(mut value) => {
                    let message_type = discriminator.name_of(&value).map(str::to_string);
                    if frame.direction == Direction::Received && profile.is_broadcast(&value) {
                        if case.broadcasts == BroadcastPolicy::Shapes {
                            let shape = shape(&value, discriminator.label());
                            shapes.insert(format!("{} {shape}", message_type.as_deref().unwrap_or("text")));
                        }
                        continue;
                    }
                    redactor.redact(&mut value, &mut Vec::new());
                    format!("{} {value}", message_type.as_deref().unwrap_or("text"))
                }
                Err(_) => format!("text (not JSON) {:?}", frame.data),
            },
            "binary" | "close" | "dropped" | "connect" | "unmet" => format!("{} {}", frame.kind, frame.data),
            other => format!("{other} {}", frame.data),
        };
        out.push_str(&format!("  {arrow} {line}\n"));
    }
    if case.broadcasts == BroadcastPolicy::Shapes {
        out.push_str("  broadcasts seen:\n");
        for shape in shapes {
            out.push_str(&format!("    {shape}\n"));
        }
    }
    out
}

/// The message with every scalar but its name (the member `keep`) replaced by its type: its
/// shape, whatever the values.
fn shape(value: &Value, keep: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| (k.clone(), if k == keep { v.clone() } else { shape(v, keep) })).collect(),
        ),
        // Lists vary in length; their first element stands for the shape of the rest.
        Value::Array(items) => Value::Array(items.first().map(|item| shape(item, keep)).into_iter().collect()),
        scalar => Value::String(format!("<{}>", type_name(scalar))),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;
    use crate::scenario::Level;

    fn case(frames: &[(Direction, &'static str, &str)]) -> CaseReport {
        CaseReport {
            id: "heartbeat.pong".into(),
            suite: "heartbeat".into(),
            requirement: None,
            level: Level::Must,
            status: Status::Passed,
            duration: std::time::Duration::ZERO,
            message: String::new(),
            description: String::new(),
            transcript: Vec::new(),
            broadcasts: BroadcastPolicy::Omit,
            timeline: Vec::new(),
            recording: frames
                .iter()
                .map(|(d, k, t)| Recorded { direction: *d, kind: k, data: t.to_string() })
                .collect(),
        }
    }

    #[test]
    fn times_and_ids_become_placeholders_and_broadcasts_are_left_out() {
        let recording = case(&[
            (Direction::Sent, "connect", "accepted"),
            (
                Direction::Received,
                "text",
                r#"{"type":"Connected","data":{"client_id":"client_000007","server_time":1697234567000},"timestamp":1697234567001}"#,
            ),
            (Direction::Received, "text", r#"{"type":"MarketData","data":{"price":1.5},"timestamp":1}"#),
            (Direction::Received, "text", r#"{"type":"Error","data":{"code":"INSUFFICIENT_BALANCE"},"timestamp":1}"#),
            (Direction::Sent, "text", r#"{"type":"Ping","timestamp":1697234567999}"#),
            (
                Direction::Received,
                "text",
                r#"{"type":"Pong","data":{"timestamp":5},"timestamp":5,"echo":"client_000007"}"#,
            ),
            (Direction::Received, "close", "1000 done"),
        ]);
        let text = case_text(&recording, &ProfileSpec::builtin(crate::profile::Profile::Core), &default_rules());
        assert_eq!(
            text,
            "case heartbeat.pong: PASS\n  -> connect accepted\n  <- Connected {\"data\":{\"client_id\":\"<id:1>\",\"server_time\":\"<ms>\"},\"timestamp\":\"<ms>\",\"type\":\"Connected\"}\n  -> Ping {\"timestamp\":\"<ms>\",\"type\":\"Ping\"}\n  <- Pong {\"data\":{\"timestamp\":\"<ms>\"},\"echo\":\"client_000007\",\"timestamp\":\"<ms>\",\"type\":\"Pong\"}\n  <- close 1000 done\n"
        );
    }

    #[test]
    fn broadcast_shapes_are_listed_apart_when_the_case_asks() {
        let mut recording = case(&[
            (
                Direction::Received,
                "text",
                r#"{"type":"MarketData","data":{"price":1.5,"symbol":"BTCUSDT"},"timestamp":1}"#,
            ),
            (
                Direction::Received,
                "text",
                r#"{"type":"MarketData","data":{"price":2.5,"symbol":"ETHUSDT"},"timestamp":2}"#,
            ),
            (Direction::Received, "text", r#"{"type":"ChartUpdate","data":{"candles":[1,2]},"timestamp":2}"#),
        ]);
        recording.broadcasts = BroadcastPolicy::Shapes;
        let text = case_text(&recording, &ProfileSpec::builtin(crate::profile::Profile::Core), &default_rules());
        assert_eq!(
            text,
            "case heartbeat.pong: PASS\n  broadcasts seen:\n    ChartUpdate {\"data\":{\"candles\":[\"<number>\"]},\"timestamp\":\"<number>\",\"type\":\"ChartUpdate\"}\n    MarketData {\"data\":{\"price\":\"<number>\",\"symbol\":\"<string>\"},\"timestamp\":\"<number>\",\"type\":\"MarketData\"}\n"
        );
    }

    #[test]
    fn user_rules_come_first_and_round_or_keep() {
        let mut rules = rules_from_yaml(
            "rules:\n  - {path: /data/price, action: round:1}\n  - {path: /**/timestamp, action: keep}\n",
        )
        .unwrap();
        rules.extend(default_rules());
        let recording =
            case(&[(Direction::Received, "text", r#"{"type":"Pong","data":{"price":1.26},"timestamp":5}"#)]);
        let text = case_text(&recording, &ProfileSpec::builtin(crate::profile::Profile::Ai), &rules);
        assert!(text.contains(r#"{"data":{"price":1.3},"timestamp":5,"type":"Pong"}"#), "{text}");
        assert!(rules_from_yaml("rules:\n  - {path: data, action: id}\n").unwrap_err().contains("must start with /"));
        assert!(rules_from_yaml("rules:\n  - {path: /a, action: hide}\n").unwrap_err().contains("round:N"));
    }

    #[test]
    fn path_patterns_match_segments_and_depths() {
        let path = |p: &str| p.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>();
        assert!(path_matches(&["**", "timestamp"], &path("/timestamp")));
        assert!(path_matches(&["**", "timestamp"], &path("/data/candle/timestamp")));
        assert!(path_matches(&["**", "*_id"], &path("/data/order_id")));
        assert!(!path_matches(&["**", "*_id"], &path("/data/orders")));
        assert!(path_matches(&["data", "*", "x"], &path("/data/0/x")));
        assert!(!path_matches(&["data", "*", "x"], &path("/data/0/1/x")));
    }
}
