//! `wsprobe run` against deliberately broken servers: the reference server with one fault
//! each. The matching cases fail with a useful message and every other case is unaffected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use reference_server::{AuthMode, Config, Fault, Profile as ServerProfile};
use wsprobe::outcome::Status;
use wsprobe::profile::Profile;
use wsprobe::runner::{self, RunSettings};
use wsprobe::scenario::loader;
use wsprobe::schema::Catalog;

use crate::support::{start, SECRET};

struct Outcome {
    statuses: BTreeMap<String, (Status, String)>,
}

impl Outcome {
    fn failed(&self) -> BTreeSet<&str> {
        self.statuses.iter().filter(|(_, (s, _))| *s == Status::Failed).map(|(id, _)| id.as_str()).collect()
    }

    fn message(&self, id: &str) -> &str {
        &self.statuses[id].1
    }
}

/// Runs the built-in cases matching `filter` against a server with `config` (auth optional,
/// with the test secret); `jwt_secret` is what the harness is told.
async fn run_builtin(
    mut config: Config,
    filter: Option<&str>,
    timeout_scale: f64,
    jwt_secret: Option<&str>,
) -> wsprobe::outcome::RunReport {
    config.auth = AuthMode::Optional;
    config.jwt_secret = Some(SECRET.into());
    config.shutdown_grace = Duration::from_millis(500);
    let server = start(config).await;
    let settings = Arc::new(RunSettings {
        url: server.url(),
        profile: Profile::Core,
        token: None,
        jwt_secret: jwt_secret.map(str::to_string),
        strict: false,
        timeout_scale,
        jobs: 32,
    });
    let suites = loader::builtin().unwrap();
    let planned = runner::plan(&suites, Profile::Core, filter);
    let (events, _receiver) = tokio::sync::mpsc::unbounded_channel();
    let report = runner::run(planned, settings, Arc::new(Catalog::embedded().unwrap()), events, false).await;
    server.shutdown().await;
    report
}

async fn run_against(config: Config, timeout_scale: f64) -> Outcome {
    let report = run_builtin(config, None, timeout_scale, Some(SECRET)).await;
    Outcome { statuses: report.cases.into_iter().map(|c| (c.id, (c.status, c.message))).collect() }
}

fn with_fault(fault: Fault) -> Config {
    let mut config = Config::new(ServerProfile::Core);
    config.faults = vec![fault];
    config
}

fn set<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
    ids.iter().copied().collect()
}

#[tokio::test]
async fn the_reference_server_passes_everything() {
    let outcome = run_against(Config::new(ServerProfile::Core), 1.0).await;
    let not_passed: Vec<_> = outcome.statuses.iter().filter(|(_, (s, _))| *s != Status::Passed).collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(outcome.statuses.len() >= 20);
}

#[tokio::test]
async fn no_welcome_fails_the_welcome_cases_only() {
    let outcome = run_against(with_fault(Fault::NoWelcome), 1.0).await;
    assert_eq!(outcome.failed(), set(&["welcome.first_message", "reconnect.after_close", "reconnect.after_drop"]));
    let message = outcome.message("welcome.first_message");
    assert!(message.contains("the first message to be Connected within 2s"), "{message}");
}

#[tokio::test]
async fn a_malformed_pong_fails_the_heartbeat_cases_only() {
    let outcome = run_against(with_fault(Fault::MalformedPong), 1.0).await;
    assert_eq!(outcome.failed(), set(&["heartbeat.pong", "heartbeat.every_ping_answered"]));
    let message = outcome.message("heartbeat.pong");
    assert!(message.contains("Pong to match its schema") && message.contains("/timestamp"), "{message}");
}

#[tokio::test]
async fn no_rate_limit_fails_rate_limit_over_only() {
    let mut config = Config::new(ServerProfile::Core);
    config.rate_limit = None;
    let outcome = run_against(config, 1.0).await;
    assert_eq!(outcome.failed(), set(&["rate_limit.over"]));
    let message = outcome.message("rate_limit.over");
    assert!(message.contains("Close frame with code 1008") && message.contains("still open"), "{message}");
}

#[tokio::test]
async fn a_slow_pong_fails_the_heartbeat_cases_only() {
    let mut config = with_fault(Fault::SlowPong);
    config.pong_delay = Duration::from_secs(6);
    // Halves every timeout: the 10 s Pong deadline becomes 5 s, and a 6 s Pong misses it.
    let outcome = run_against(config, 0.5).await;
    assert_eq!(outcome.failed(), set(&["heartbeat.pong", "heartbeat.every_ping_answered"]));
    let message = outcome.message("heartbeat.pong");
    assert!(message.contains("expected Pong within 5s;"), "{message}");
}

#[tokio::test]
async fn invalid_market_data_fails_the_schema_case_only() {
    let mut config = with_fault(Fault::CorruptMarketData);
    config.tick = Duration::from_millis(200);
    let outcome = run_against(config, 1.0).await;
    assert_eq!(outcome.failed(), set(&["messages.schema"]));
    let message = outcome.message("messages.schema");
    assert!(message.contains("MarketData at /data/price"), "{message}");
}

#[tokio::test]
async fn garbage_frames_fail_the_schema_case_only() {
    let outcome = run_against(with_fault(Fault::GarbageFrames), 1.0).await;
    assert_eq!(outcome.failed(), set(&["messages.schema"]));
    assert!(outcome.message("messages.schema").contains("not JSON"), "{}", outcome.message("messages.schema"));
}

#[tokio::test]
async fn a_silent_server_fails_every_case_that_needs_an_answer() {
    let outcome = run_against(with_fault(Fault::Silent), 1.0).await;
    assert_eq!(
        outcome.failed(),
        set(&[
            "welcome.first_message",
            "heartbeat.pong",
            "heartbeat.every_ping_answered",
            "messages.schema",
            "close.handshake",
            "rate_limit.over",
            "reconnect.after_close",
            "reconnect.after_drop",
        ])
    );
    // Missing Error replies and cadence are `should` rules: warnings, not failures.
    for id in ["input.malformed_json", "input.binary_frame", "market_data.cadence"] {
        assert_eq!(outcome.statuses[id].0, Status::Warned, "{id}: {}", outcome.message(id));
    }
    assert!(outcome.message("heartbeat.pong").contains("nothing arrived"), "{}", outcome.message("heartbeat.pong"));
}

#[tokio::test]
async fn dropping_on_bad_input_fails_the_input_cases_only() {
    let outcome = run_against(with_fault(Fault::DropOnBadInput), 1.0).await;
    assert_eq!(
        outcome.failed(),
        set(&["input.malformed_json", "input.unknown_type", "input.invalid_message", "input.binary_frame"])
    );
    let message = outcome.message("input.binary_frame");
    assert!(message.contains("dropped without a Close frame"), "{message}");
}

/// The human report of a real run, with durations and the port redacted: its layout is an
/// interface people read every day, so changes to it show up in review.
#[tokio::test]
async fn the_human_report_of_a_real_run_is_stable() {
    let mut config = with_fault(Fault::NoWelcome);
    // No broadcasts, so what the failing case saw does not depend on timing.
    config.tick = Duration::from_secs(3600);
    let filter = "handshake.*,welcome.*,heartbeat.pong,close.*,auth.header";
    let report = run_builtin(config, Some(filter), 0.5, None).await;
    let text = wsprobe::report::run::human(&report, wsprobe::report::run::Style { color: false });
    let redacted = regex::Regex::new(r"\d+(\.\d+)? (ms|s)\b").unwrap().replace_all(&text, "[duration]");
    let redacted = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap().replace_all(&redacted, "127.0.0.1:[port]");
    let redacted = regex::Regex::new(r#""(client_\d+)""#).unwrap().replace_all(&redacted, "\"[client]\"");
    let redacted = regex::Regex::new(r"\d{13}").unwrap().replace_all(&redacted, "[ms]");
    insta::assert_snapshot!(redacted);
}
