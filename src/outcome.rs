//! What a run found: one report per case, and the totals. Failures are data here, never
//! errors: `Err` is reserved for runs that could not check anything.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::{BroadcastPolicy, Level};
use crate::session::{Recorded, TranscriptEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    /// A `should` rule did not hold.
    Warned,
    /// Not run, with the reason in the message.
    Skipped,
    /// An `info` case: reported, never a failure.
    Informational,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Warned => "WARN",
            Status::Skipped => "SKIP",
            Status::Informational => "INFO",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub id: String,
    /// The scenario file (JUnit testsuite) the case belongs to.
    pub suite: String,
    pub requirement: Option<String>,
    pub level: Level,
    pub status: Status,
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// Why it failed, warned or was skipped; what it found for informational cases; empty when passed.
    pub message: String,
    /// The rule checked, from the scenario.
    pub description: String,
    /// The last frames of the case's connections, on failures and warnings.
    pub transcript: Vec<TranscriptEntry>,
    /// Every frame of the case, whole, when the run records (snapshots); empty otherwise.
    #[serde(skip)]
    pub recording: Vec<Recorded>,
    /// How a snapshot treats the case's broadcasts (from the scenario).
    #[serde(skip)]
    pub broadcasts: BroadcastPolicy,
    /// What was observed, in order, for a failing client rule (`serve`); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Moment>,
}

/// One line of an observed timeline: when (since the run started), and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moment {
    #[serde(serialize_with = "as_millis", rename = "at_ms")]
    pub at: Duration,
    pub event: String,
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub skipped: usize,
    pub informational: usize,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub target: String,
    /// True when the target is the reference server wsprobe started itself.
    pub bundled: bool,
    /// The profile's name: `core`, `ai`, or a document's channel (`feed.yaml#public`).
    pub profile: String,
    pub cases: Vec<CaseReport>,
    pub duration: Duration,
    /// Advice about the run as a whole, e.g. that the target looks like the other profile.
    pub hints: Vec<String>,
    /// Set when the cases judge clients (`serve`) rather than a server.
    pub serve: Option<ServeInfo>,
    /// `--insecure`: the server's TLS certificate was not checked, so the report cannot say
    /// which server it judged. Every report format says so.
    pub tls_unverified: bool,
}

/// How a `serve` run watched its clients, stated in every report so verdicts can be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServeInfo {
    /// Every spec timing, rules and faults alike, was multiplied by this.
    pub time_scale: f64,
    /// Added to the late side of every timing tolerance.
    pub slack_ms: u64,
    /// The faults, as given (before scaling).
    pub faults: Vec<String>,
    pub clients: usize,
}

impl RunReport {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for case in &self.cases {
            *match case.status {
                Status::Passed => &mut summary.passed,
                Status::Failed => &mut summary.failed,
                Status::Warned => &mut summary.warned,
                Status::Skipped => &mut summary.skipped,
                Status::Informational => &mut summary.informational,
            } += 1;
        }
        summary
    }
}
