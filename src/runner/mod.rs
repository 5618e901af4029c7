//! Runs planned cases against a target: each case on its own connections with its own
//! timeouts, several at once, reporting events as cases finish.

mod case;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};

use crate::outcome::{CaseReport, RunReport, Status};
use crate::profile::ProfileSpec;
use crate::profile_hint::{self, TypeTally};
use crate::scenario::loader::Suite;
use crate::scenario::template::Variables;
use crate::scenario::{Case, Need};
use crate::schema::Catalog;
use crate::tokens;

/// Everything a run needs to know about the target and the flags.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub url: String,
    pub profile: Arc<ProfileSpec>,
    pub token: Option<String>,
    pub jwt_secret: Option<String>,
    pub strict: bool,
    /// Multiplies every timeout (not observation windows), for slow links.
    pub timeout_scale: f64,
    /// Cases run at once.
    pub jobs: usize,
    /// The largest frame or message accepted from the server.
    pub max_message_bytes: usize,
    /// Keep a full recording of every case's frames (for snapshots).
    pub record: bool,
    /// How connections reach the server (TLS, proxy, headers).
    pub network: Arc<crate::network::Network>,
}

impl RunSettings {
    pub fn scaled(&self, timeout: Duration) -> Duration {
        timeout.mul_f64(self.timeout_scale)
    }
}

/// A case selected to run, with the suite it came from.
#[derive(Debug, Clone)]
pub struct PlannedCase {
    pub suite: Arc<str>,
    pub case: Case,
}

/// Cases of `suites` that apply to `profile` and whose id matches `filter` (a glob).
pub fn plan(suites: &[Suite], profile: &ProfileSpec, filter: Option<&str>) -> Vec<PlannedCase> {
    let mut planned = Vec::new();
    for suite in suites {
        let name: Arc<str> = suite.name.as_str().into();
        for case in &suite.file.cases {
            if case.applies_to(profile.shipped) && filter.is_none_or(|f| glob_match(f, &case.id)) {
                planned.push(PlannedCase { suite: name.clone(), case: case.clone() });
            }
        }
    }
    planned
}

/// `*` matches any run of characters, `?` one character; several patterns separated by commas.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn matches(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], t) || (!t.is_empty() && matches(p, &t[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &t[1..]),
            _ => false,
        }
    }
    pattern.split(',').map(str::trim).any(|p| matches(p.as_bytes(), text.as_bytes()))
}

/// Emitted while running, for live progress.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started { total: usize },
    CaseFinished(Box<CaseReport>),
}

/// The longest any single case may take, whatever its steps say.
const CASE_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(
    planned: Vec<PlannedCase>,
    settings: Arc<RunSettings>,
    events: mpsc::UnboundedSender<RunEvent>,
    bundled: bool,
) -> RunReport {
    let catalog = settings.profile.catalog.clone();
    let started = Instant::now();
    let _ = events.send(RunEvent::Started { total: planned.len() });
    let variables = Arc::new(base_variables(&settings));
    let permits = Arc::new(Semaphore::new(settings.jobs.max(1)));
    let mut tasks = Vec::with_capacity(planned.len());
    let identities: Vec<PlannedCase> = planned.clone();
    for planned_case in planned {
        let (settings, catalog, variables, permits, events) =
            (settings.clone(), catalog.clone(), variables.clone(), permits.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (report, types) = run_one(&planned_case, &settings, &catalog, &variables).await;
            let _ = events.send(RunEvent::CaseFinished(Box::new(report.clone())));
            (report, types)
        }));
    }
    let mut cases = Vec::with_capacity(tasks.len());
    let mut received_types = TypeTally::default();
    for (task, planned_case) in tasks.into_iter().zip(identities) {
        match task.await {
            Ok((report, types)) => {
                received_types.merge(&types);
                cases.push(report)
            }
            // A bug in wsprobe must not hide the other cases' results: report it as this case's failure.
            Err(error) => cases.push(CaseReport {
                id: planned_case.case.id.clone(),
                suite: planned_case.suite.to_string(),
                requirement: planned_case.case.requirement.clone(),
                level: planned_case.case.level,
                status: Status::Failed,
                duration: Duration::ZERO,
                message: format!("internal error in wsprobe while running this case: {error}"),
                description: planned_case.case.description.clone(),
                transcript: Vec::new(),
                recording: Vec::new(),
                broadcasts: planned_case.case.snapshot.broadcasts,
                timeline: Vec::new(),
            }),
        }
    }
    let hints: Vec<String> = profile_hint::hint(&settings.profile, received_types.counts()).into_iter().collect();
    RunReport {
        target: settings.url.clone(),
        bundled,
        profile: settings.profile.name.clone(),
        cases,
        duration: started.elapsed(),
        hints,
        serve: None,
        tls_unverified: settings.network.tls_unverified(),
    }
}

async fn run_one(
    planned: &PlannedCase,
    settings: &RunSettings,
    catalog: &Catalog,
    variables: &Variables,
) -> (CaseReport, TypeTally) {
    let case = &planned.case;
    let report = |status: Status, message: String| CaseReport {
        id: case.id.clone(),
        suite: planned.suite.to_string(),
        requirement: case.requirement.clone(),
        level: case.level,
        status,
        duration: Duration::ZERO,
        message,
        description: case.description.clone(),
        transcript: Vec::new(),
        recording: Vec::new(),
        broadcasts: case.snapshot.broadcasts,
        timeline: Vec::new(),
    };
    if let Some(reason) = missing_need(case, settings) {
        return (report(Status::Skipped, reason), TypeTally::default());
    }
    let started = Instant::now();
    let limit = settings.scaled(case.timeout.unwrap_or(CASE_LIMIT));
    let (mut result, types) =
        match tokio::time::timeout(limit, case::execute(case, settings, catalog, variables.clone())).await {
            Ok(done) => {
                let mut r = report(done.status, done.message);
                r.transcript = done.transcript;
                r.recording = done.recording;
                (r, done.received_types)
            }
            Err(_) => (
                report(Status::Failed, format!("the case did not finish within its overall limit of {limit:?}")),
                TypeTally::default(),
            ),
        };
    result.duration = started.elapsed();
    (result, types)
}

fn missing_need(case: &Case, settings: &RunSettings) -> Option<String> {
    for need in &case.needs {
        match need {
            Need::Token if settings.token.is_none() && settings.jwt_secret.is_none() => {
                return Some("needs a valid token: pass --token JWT or --jwt-secret SECRET".into());
            }
            Need::JwtSecret if settings.jwt_secret.is_none() => {
                return Some(
                    "needs the server's HS256 signing secret to mint correctly signed tokens that must still be refused (expired, not yet valid, wrong algorithm): pass --jwt-secret SECRET"
                        .into(),
                );
            }
            Need::RequestExample => {
                return Some(
                    "needs a request to send: the document gives no example its schema accepts, and wsprobe cannot build one from the schema; add `examples` to the request message".into(),
                );
            }
            _ => {}
        }
    }
    None
}

fn base_variables(settings: &RunSettings) -> Variables {
    let mut variables = Variables::default();
    let mut set = |k: &str, v: String| {
        variables.fixed.insert(k.to_string(), v);
    };
    set("profile", settings.profile.name.clone());
    if let Some(welcome) = &settings.profile.welcome {
        set("welcome", welcome.clone());
    }
    // Forged tokens need no secret: no server can verify them.
    set("alg_none_token", tokens::ALG_NONE.to_string());
    set("garbage_token", tokens::GARBAGE.to_string());
    if let Ok(token) = tokens::forged_signature() {
        set("forged_signature_token", token);
    }
    if let Some(secret) = &settings.jwt_secret {
        for (name, minted) in [
            ("expired_token", tokens::expired(secret)),
            ("not_yet_valid_token", tokens::not_yet_valid(secret)),
            ("wrong_algorithm_token", tokens::wrong_algorithm(secret)),
            ("bad_signature_token", tokens::bad_signature(secret)),
            ("token", tokens::valid(secret)),
        ] {
            if let Ok(token) = minted {
                set(name, token);
            }
        }
    }
    if let Some(token) = &settings.token {
        set("token", token.clone());
    }
    variables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_ids() {
        assert!(glob_match("auth.*", "auth.header"));
        assert!(!glob_match("auth.*", "heartbeat.pong"));
        assert!(glob_match("*.pong,input.*", "heartbeat.pong"));
        assert!(glob_match("input.*", "input.binary_frame"));
        assert!(glob_match("rate_limit.ove?", "rate_limit.over"));
        assert!(!glob_match("rate", "rate_limit.over"));
    }
}
