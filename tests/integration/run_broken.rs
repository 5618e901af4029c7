//! `wsprobe run` against deliberately broken servers: the reference server with one fault
//! each. The matching cases fail with a useful message and every other case is unaffected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use reference_server::{AuthMode, Config, Fault, Profile as ServerProfile};
use wsprobe::outcome::Status;
use wsprobe::profile::Profile;
use wsprobe::profile::ProfileSpec;
use wsprobe::runner::{self, RunSettings};
use wsprobe::scenario::loader;

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
        profile: Arc::new(ProfileSpec::builtin(Profile::Core)),
        token: None,
        jwt_secret: jwt_secret.map(str::to_string),
        strict: false,
        timeout_scale,
        jobs: 32,
        max_message_bytes: wsprobe::session::DEFAULT_MAX_MESSAGE_BYTES,
        record: false,
        network: wsprobe::network::Network::shared_default(),
    });
    let suites = loader::builtin().unwrap();
    let planned = runner::plan(&suites, &ProfileSpec::builtin(Profile::Core), filter);
    let (events, _receiver) = tokio::sync::mpsc::unbounded_channel();
    let report = runner::run(planned, settings, events, false).await;
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
async fn no_welcome_fails_the_welcome_case_only() {
    let outcome = run_against(with_fault(Fault::NoWelcome), 1.0).await;
    // The reconnect cases check that a new connection works, not that it is welcomed.
    assert_eq!(outcome.failed(), set(&["welcome.first_message"]));
    let message = outcome.message("welcome.first_message");
    assert!(message.contains("the first message to be Connected within 2s"), "{message}");
}

#[tokio::test]
async fn a_malformed_pong_fails_the_schema_case_only() {
    let outcome = run_against(with_fault(Fault::MalformedPong), 1.0).await;
    // Every Ping was answered: the heartbeat holds. The Pong's shape is the schema rule's.
    assert_eq!(outcome.failed(), set(&["messages.schema"]));
    let message = outcome.message("messages.schema");
    assert!(message.contains("Pong at") && message.contains("core/Pong.json"), "{message}");
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
    // Every wait here runs to its timeout; half of each is as telling and half as long.
    let outcome = run_against(with_fault(Fault::Silent), 0.5).await;
    assert_eq!(
        outcome.failed(),
        set(&[
            "welcome.first_message",
            "heartbeat.pong",
            "heartbeat.every_ping_answered",
            "close.handshake",
            "rate_limit.over",
            "reconnect.after_close",
            "reconnect.after_drop",
            // It never refuses a token in an Authenticate message (the spec's current approach).
            "auth.forged_rejected.first_message",
            "auth.claims_enforced.first_message",
        ])
    );
    // Missing Error replies and cadence are `should` rules, and so is a silent window for the
    // schema case (nothing arrived, so nothing was invalid): warnings, not failures.
    for id in ["input.malformed_json", "input.binary_frame", "market_data.cadence", "messages.schema"] {
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

/// Runs one scenario file's text against `config` and returns its cases' reports.
async fn run_scenario(config: Config, yaml: &str) -> Vec<wsprobe::outcome::CaseReport> {
    let server = start(config).await;
    let suite = loader::parse("test", "runaway.yaml", yaml).expect("the scenario parses");
    let settings = Arc::new(RunSettings {
        url: server.url(),
        profile: Arc::new(ProfileSpec::builtin(Profile::Core)),
        token: None,
        jwt_secret: None,
        strict: false,
        timeout_scale: 1.0,
        jobs: 4,
        max_message_bytes: wsprobe::session::DEFAULT_MAX_MESSAGE_BYTES,
        record: false,
        network: wsprobe::network::Network::shared_default(),
    });
    let planned = runner::plan(&[suite], &ProfileSpec::builtin(Profile::Core), None);
    let (events, _receiver) = tokio::sync::mpsc::unbounded_channel();
    let report = runner::run(planned, settings, events, false).await;
    server.shutdown().await;
    report.cases
}

#[tokio::test]
async fn a_repeat_of_steps_that_never_wait_still_hits_the_case_limit() {
    let cases = run_scenario(
        Config::new(ServerProfile::Core),
        r#"
cases:
  - id: runaway.skipped_steps
    level: must
    timeout: 1s
    description: A repeat whose only step is skipped on this profile never waits.
    steps:
      - repeat:
          times: 100000
          steps:
            - repeat:
                times: 100000
                steps:
                  - sleep: 1ms
                    profiles: [ai]
"#,
    )
    .await;
    assert_eq!(cases[0].status, Status::Failed);
    assert!(cases[0].message.contains("overall limit of 1s"), "{}", cases[0].message);
}

#[tokio::test]
async fn soft_failures_of_a_long_repeat_are_bounded() {
    let cases = run_scenario(
        Config::new(ServerProfile::Core),
        r#"
cases:
  - id: runaway.info_sends
    level: must
    timeout: 3s
    description: Info-level sends on a closed connection fail every time, and are only noted.
    steps:
      - connect:
      - close: {code: 1000}
      - expect_close: {timeout: 2s}
      - repeat:
          times: 100000
          steps:
            - send: {text: "after the close"}
              level: info
"#,
    )
    .await;
    let case = &cases[0];
    assert_eq!(case.status, Status::Passed, "{}", case.message);
    assert!(case.message.contains("cannot send: the connection had already ended"), "{}", case.message);
    assert!(case.message.contains("99980 more (0 should, 99980 info) not shown"), "{}", case.message);
    assert!(case.message.len() < 20_000, "{} bytes", case.message.len());
}

#[tokio::test]
async fn sends_after_the_server_closed_fail_their_step_instead_of_buffering() {
    let mut config = Config::new(ServerProfile::Core);
    config.rate_limit = Some(5);
    let cases = run_scenario(
        config,
        r#"
cases:
  - id: runaway.sends_after_close
    level: must
    timeout: 20s
    description: The server closes after five messages; the sixth send on must fails, at once.
    steps:
      - connect:
      - repeat:
          times: 100000
          steps:
            - send: {text: "{\"type\":\"Ping\",\"timestamp\":1}"}
"#,
    )
    .await;
    let case = &cases[0];
    assert_eq!(case.status, Status::Failed, "{}", case.message);
    assert!(case.message.contains("(send): expected to send the message"), "{}", case.message);
    assert!(case.duration < Duration::from_secs(10), "{:?}", case.duration);
}

#[tokio::test]
async fn a_server_that_accepts_any_token_on_one_path_is_flagged_on_that_path_only() {
    for (fault, flagged, status) in [
        (Fault::AcceptAnyHeaderToken, "auth.forged_rejected.header", Status::Warned),
        (Fault::AcceptAnyQueryToken, "auth.forged_rejected.query", Status::Warned),
        (Fault::AcceptAnyAuthenticateToken, "auth.forged_rejected.first_message", Status::Failed),
    ] {
        // No secret: forged tokens need none.
        let report = run_builtin(with_fault(fault), Some("auth.*"), 1.0, None).await;
        for case in &report.cases {
            let expected = if case.id == flagged {
                status
            } else if case.id.starts_with("auth.forged_rejected.") {
                Status::Passed
            } else {
                Status::Skipped
            };
            assert_eq!(case.status, expected, "{fault:?} {}: {}", case.id, case.message);
        }
        let case = report.cases.iter().find(|c| c.id == flagged).unwrap();
        assert!(case.message.contains("token signed with a random key"), "{}", case.message);
    }
}

#[tokio::test]
async fn the_signed_token_cases_run_with_the_secret_and_catch_an_unchecked_path() {
    let report = run_builtin(with_fault(Fault::AcceptAnyQueryToken), Some("auth.*"), 1.0, Some(SECRET)).await;
    let failed: BTreeSet<&str> =
        report.cases.iter().filter(|c| c.status != Status::Passed).map(|c| c.id.as_str()).collect();
    assert_eq!(
        failed,
        set(&["auth.forged_rejected.query", "auth.claims_enforced.query", "auth.algorithm_enforced"]),
        "{:#?}",
        report.cases
    );
}
