//! Scenario files: what a conformance case does, step by step. The types mirror
//! `schemas/scenario.schema.json`; unknown keys are errors so a typo never silently
//! weakens a check.

pub mod derived;
pub(crate) mod duration;
pub mod loader;
pub mod matcher;
pub mod template;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::profile::Profile;
pub use duration::parse_duration;
pub use matcher::Matcher;

/// One scenario file: a named group of cases (a JUnit testsuite).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Shown in reports; defaults to the file name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub cases: Vec<Case>,
}

/// How much a failure matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A failure fails the run.
    Must,
    /// A failure is a warning (a failure with `--strict`).
    Should,
    /// Reported, never a failure.
    Info,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Must => "must",
            Level::Should => "should",
            Level::Info => "info",
        }
    }
}

/// Something a case needs from the command line; without it the case is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A valid token: `--token` or `--jwt-secret`.
    Token,
    /// The signing secret, to mint expired and wrongly signed tokens: `--jwt-secret`.
    JwtSecret,
    /// A valid request to send, which a derived case lacks when the document gives no valid
    /// example and none can be built from the schema. Not for scenario files.
    #[serde(skip)]
    RequestExample,
}

impl Need {
    pub fn name(self) -> &'static str {
        match self {
            Need::Token => "token",
            Need::JwtSecret => "jwt_secret",
            Need::RequestExample => "request_example",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable id, `area.name`; reports and `--filter` use it.
    pub id: String,
    /// The spec requirement (FR-WS-*), where there is one.
    #[serde(default)]
    pub requirement: Option<String>,
    pub level: Level,
    /// Profiles the case applies to; empty means both.
    #[serde(default)]
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub needs: Vec<Need>,
    /// The rule checked, in a sentence; failure reports quote it.
    pub description: String,
    /// The longest the whole case may take (default 120 s, scaled by --timeout-scale).
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    pub timeout: Option<Duration>,
    /// How `wsprobe snapshot` treats this case's broadcasts.
    #[serde(default)]
    pub snapshot: SnapshotOptions,
    pub steps: Vec<Step>,
}

impl Case {
    /// A case that names profiles applies to those shipped profiles only: a profile read from
    /// an AsyncAPI document runs the cases that name none.
    pub fn applies_to(&self, shipped: Option<Profile>) -> bool {
        self.profiles.is_empty() || shipped.is_some_and(|p| self.profiles.contains(&p))
    }
}

/// Snapshot options of a case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotOptions {
    #[serde(default)]
    pub broadcasts: BroadcastPolicy,
}

/// Broadcasts interleave with replies at times no client controls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastPolicy {
    /// Left out of the snapshot (the default: stable whatever the timing).
    #[default]
    Omit,
    /// Listed apart as the distinct shapes seen (type and structure, values as their types),
    /// sorted: stable when the case watches long enough to see every broadcast it lists.
    Shapes,
}

/// A step: exactly one action, plus the options every step shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawStep")]
pub struct Step {
    pub action: Action,
    /// Overrides the case level for this step (e.g. an Error reply that only `should` come).
    pub level: Option<Level>,
    /// Run this step only on these profiles; empty means both.
    pub profiles: Vec<Profile>,
    /// Run this step only when these values were saved by an earlier `expect` (one that was
    /// `optional` may have saved nothing).
    pub when_saved: Vec<String>,
    /// Named in failure messages next to the step number, e.g. "alg: none token".
    pub label: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Action {
    Connect(Connect),
    Reconnect(Reconnect),
    Send(Send),
    Expect(Expect),
    ExpectSilence(ExpectSilence),
    ExpectClose(ExpectClose),
    ExpectOpen(ExpectOpen),
    Observe(Observe),
    Close(CloseStep),
    Drop(DropStep),
    Sleep(Duration),
    Repeat(Repeat),
}

/// The YAML shape of a step. Every action is a key, so `deny_unknown_fields` catches typos
/// at step level too (serde's `flatten` cannot).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default, deserialize_with = "present")]
    connect: Option<Connect>,
    #[serde(default, deserialize_with = "present")]
    reconnect: Option<Reconnect>,
    #[serde(default)]
    send: Option<Send>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    expect_silence: Option<ExpectSilence>,
    #[serde(default)]
    expect_close: Option<ExpectClose>,
    #[serde(default)]
    expect_open: Option<ExpectOpen>,
    #[serde(default)]
    observe: Option<Observe>,
    #[serde(default, deserialize_with = "present")]
    close: Option<CloseStep>,
    #[serde(default, deserialize_with = "present")]
    drop: Option<DropStep>,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    sleep: Option<Duration>,
    #[serde(default)]
    repeat: Option<Repeat>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    profiles: Vec<Profile>,
    #[serde(default)]
    when_saved: Vec<String>,
    #[serde(default)]
    label: Option<String>,
}

/// `drop:` with no options (YAML null) still means "drop".
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

impl TryFrom<RawStep> for Step {
    type Error = String;

    fn try_from(raw: RawStep) -> Result<Step, String> {
        let mut actions: Vec<Action> = Vec::new();
        actions.extend(raw.connect.map(Action::Connect));
        actions.extend(raw.reconnect.map(Action::Reconnect));
        actions.extend(raw.send.map(Action::Send));
        actions.extend(raw.expect.map(Action::Expect));
        actions.extend(raw.expect_silence.map(Action::ExpectSilence));
        actions.extend(raw.expect_close.map(Action::ExpectClose));
        actions.extend(raw.expect_open.map(Action::ExpectOpen));
        actions.extend(raw.observe.map(Action::Observe));
        actions.extend(raw.close.map(Action::Close));
        actions.extend(raw.drop.map(Action::Drop));
        actions.extend(raw.sleep.map(Action::Sleep));
        actions.extend(raw.repeat.map(Action::Repeat));
        if actions.len() != 1 {
            let found: Vec<&str> = actions.iter().map(Action::name).collect();
            return Err(format!(
                "a step needs exactly one action ({}); found {}",
                ACTIONS.join(", "),
                if found.is_empty() { "none".to_string() } else { found.join(" and ") }
            ));
        }
        if let Some(Action::Send(send)) = actions.first() {
            let given = [send.json.is_some(), send.text.is_some(), send.binary_hex.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err("send needs exactly one of json, text or binary_hex".into());
            }
        }
        Ok(Step {
            action: actions.remove(0),
            level: raw.level,
            profiles: raw.profiles,
            when_saved: raw.when_saved,
            label: raw.label,
        })
    }
}

/// Every step action, as written in scenario files.
pub const ACTIONS: [&str; 12] = [
    "connect",
    "reconnect",
    "send",
    "expect",
    "expect_silence",
    "expect_close",
    "expect_open",
    "observe",
    "close",
    "drop",
    "sleep",
    "repeat",
];

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Connect(_) => "connect",
            Action::Reconnect(_) => "reconnect",
            Action::Send(_) => "send",
            Action::Expect(_) => "expect",
            Action::ExpectSilence(_) => "expect_silence",
            Action::ExpectClose(_) => "expect_close",
            Action::ExpectOpen(_) => "expect_open",
            Action::Observe(_) => "observe",
            Action::Close(_) => "close",
            Action::Drop(_) => "drop",
            Action::Sleep(_) => "sleep",
            Action::Repeat(_) => "repeat",
        }
    }
}

/// Where a connect step puts the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPlacement {
    Header,
    Query,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// A token template (`{{token}}`, `{{expired_token}}` …) and where to send it.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_in: Option<TokenPlacement>,
    /// The handshake must be refused (HTTP 4xx), or the connection closed with 1008 before any welcome.
    #[serde(default)]
    pub expect_rejected: bool,
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    pub timeout: Option<Duration>,
}

/// Exactly one of `json`, `text` or `binary_hex`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    /// A JSON template: strings may hold `{{now_ms}}`, `{{token}}` …; a string that is only a
    /// number placeholder becomes a number.
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub binary_hex: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The message type (templates allowed: `{{welcome}}`).
    #[serde(rename = "type")]
    pub message_type: String,
    /// Other types that satisfy the step as well: a derived case's request that several
    /// messages may answer. Not written in scenario files.
    #[serde(skip)]
    pub or_types: Vec<String>,
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// The very next message must be this one; otherwise messages of other types are skipped.
    #[serde(default)]
    pub first: bool,
    /// Validate the matched message against its schema (default true).
    #[serde(default = "yes")]
    pub schema: bool,
    /// The message may not come: if none arrives in time the step passes and saves nothing.
    /// When it does come, it is checked like any other.
    #[serde(default)]
    pub optional: bool,
    /// JSON Pointer → matcher.
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, Matcher>,
    /// Name → JSON Pointer: remember values for later templates as `{{saved.NAME}}`.
    #[serde(default)]
    pub save: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSilence {
    #[serde(rename = "for", deserialize_with = "duration::deserialize")]
    pub duration: Duration,
    /// Message types that do not break the silence (broadcasts).
    #[serde(default)]
    pub ignore: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectClose {
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Acceptable close codes; empty accepts any code.
    #[serde(default)]
    pub codes: Vec<u16>,
    /// Level of a wrong code, when it differs from getting a close at all.
    #[serde(default)]
    pub code_level: Option<Level>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectOpen {
    #[serde(rename = "for", deserialize_with = "duration::deserialize")]
    pub duration: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observe {
    #[serde(rename = "for", deserialize_with = "duration::deserialize")]
    pub duration: Duration,
    /// Validate every message against its schema (default true).
    #[serde(default = "yes")]
    pub validate: bool,
    #[serde(default)]
    pub min_messages: usize,
    /// Level of too few messages, when it differs from an invalid one (e.g. `should`).
    #[serde(default)]
    pub min_messages_level: Option<Level>,
    #[serde(default)]
    pub cadence: Option<Cadence>,
}

/// Messages of `type`, grouped by the value at `group_by`, arrive about every `every`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cadence {
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(deserialize_with = "duration::deserialize")]
    pub every: Duration,
    /// Allowed relative deviation of the median interval (0.5 = ±50%).
    pub tolerance: f64,
    /// Groups that must appear (templates allowed); empty means any.
    #[serde(default)]
    pub min_groups: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseStep {
    #[serde(default = "normal_closure")]
    pub code: u16,
    #[serde(default)]
    pub reason: String,
}

fn normal_closure() -> u16 {
    1000
}

impl Default for CloseStep {
    fn default() -> CloseStep {
        CloseStep { code: normal_closure(), reason: String::new() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropStep {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    pub times: usize,
    pub steps: Vec<Step>,
}
