//! `--asyncapi`: a third-party document drives validate, run, load, fuzz and snapshots. The
//! server is written from `examples/asyncapi-feed/feed.yaml` alone; each of its planted
//! deviations must fail exactly the rule it breaks, named in the message. The shipped document
//! gives the bundled server the verdicts `--profile core` gives it.

// The example's command line uses the rest of it (`Fault::parse`, `Fault::ALL`).
#[allow(dead_code)]
#[path = "../../examples/asyncapi-feed/feed_server.rs"]
mod feed_server;

use std::path::{Path, PathBuf};
use std::process::Command;

use feed_server::Fault;
use serde_json::Value;

fn document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/asyncapi-feed/feed.yaml")
}

fn feed(fault: Option<Fault>) -> String {
    feed_server::spawn_on_loopback(fault)
}

fn wsprobe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsprobe")).args(args).output().expect("wsprobe runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
    (out.status.code().expect("exited normally"), text(out.stdout), text(out.stderr))
}

/// A fresh, empty folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsprobe-asyncapi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

/// `run --asyncapi feed.yaml` against `url`: the exit code and each case's (id, status, message).
fn run(url: &str) -> (i32, Vec<(String, String, String)>) {
    let doc = document();
    cases(&["run", "--asyncapi", doc.to_str().unwrap(), "--url", url, "--format", "json", "--no-progress"])
}

/// A `run --format json`: the exit code and each case's (id, status, message), in order.
fn cases(args: &[&str]) -> (i32, Vec<(String, String, String)>) {
    let (code, stdout, stderr) = wsprobe(args);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let cases = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
            (text("id"), text("status"), text("message"))
        })
        .collect();
    (code, cases)
}

const DERIVED: [&str; 8] = [
    "handshake.upgrade",
    "asyncapi.messages.schema",
    "asyncapi.reply.answerPing",
    "asyncapi.reply.answerSubscribe",
    "input.malformed_json",
    "input.unknown_type",
    "input.binary_frame",
    "input.invalid_message",
];

#[test]
fn the_feed_server_passes_every_rule_its_document_implies() {
    let (code, cases) = run(&feed(None));
    let ids: Vec<&str> = cases.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, DERIVED);
    for (id, status, message) in &cases {
        assert_eq!(status, "passed", "{id}: {message}");
    }
    assert_eq!(code, 0);
}

#[test]
fn each_planted_deviation_fails_exactly_the_rule_it_breaks() {
    let planted = [
        (
            Fault::StatusWithoutReqid,
            "asyncapi.reply.answerSubscribe",
            "subscriptionStatus/reqid to match; expected 7302, found nothing",
        ),
        (Fault::StatusOutsideEnum, "asyncapi.messages.schema", "systemStatus at /status: \"degraded\" is not one of"),
        (Fault::IgnorePing, "asyncapi.reply.answerPing", "expected pong within 5s"),
        (Fault::UndocumentedMessage, "asyncapi.messages.schema", "unknown message event \"announcement\""),
        (Fault::WrongReqid, "asyncapi.reply.answerPing", "pong/reqid to match; expected 7301, found 7302"),
    ];
    let runs: Vec<_> = planted
        .iter()
        .map(|(fault, _, _)| {
            let url = feed(Some(*fault));
            std::thread::spawn(move || run(&url))
        })
        .collect();
    for ((fault, rule, said), handle) in planted.iter().zip(runs) {
        let (code, cases) = handle.join().expect("the run finishes");
        let failed: Vec<&(String, String, String)> = cases.iter().filter(|(_, status, _)| status != "passed").collect();
        assert_eq!(failed.len(), 1, "{}: {failed:?}", fault.name());
        let (id, status, message) = failed[0];
        assert_eq!((id.as_str(), status.as_str()), (*rule, "failed"), "{}", fault.name());
        assert!(message.contains(said), "{}: {message}", fault.name());
        assert_eq!(code, 1, "{}", fault.name());
    }
}

/// A server that drops the connection on any input that is not a request of the document fails
/// the bad-input cases, and those alone.
#[test]
fn dropping_on_bad_input_fails_the_input_cases_only() {
    let (code, cases) = run(&feed(Some(Fault::DropOnBadInput)));
    let failed: Vec<&str> =
        cases.iter().filter(|(_, status, _)| status != "passed").map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        failed,
        ["input.malformed_json", "input.unknown_type", "input.binary_frame", "input.invalid_message"],
        "{cases:?}"
    );
    assert!(cases.iter().all(|(_, status, _)| status == "passed" || status == "failed"), "{cases:?}");
    assert_eq!(code, 1);
}

#[test]
fn validate_dispatches_on_the_documents_discriminator_and_names_what_matches_nothing() {
    let dir = scratch("validate");
    let capture = dir.join("capture.jsonl");
    std::fs::write(
        &capture,
        concat!(
            "{\"event\":\"pong\",\"reqid\":1}\n",
            "{\"event\":\"systemStatus\",\"status\":\"online\",\"version\":\"1\"}\n",
            "{\"event\":\"systemStatus\",\"status\":\"degraded\",\"version\":\"1\"}\n",
            "{\"event\":\"hello\"}\n",
            "{\"type\":\"Pong\"}\n",
        ),
    )
    .unwrap();
    let doc = document();
    let (code, stdout, stderr) =
        wsprobe(&["validate", "--asyncapi", doc.to_str().unwrap(), "--format", "json", capture.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let invalid: Vec<String> = lines.iter().filter(|l| l["valid"] == false).map(|l| l.to_string()).collect();
    assert_eq!(invalid.len(), 3, "{stdout}");
    assert!(
        invalid[0].contains("feed.yaml#/components/messages/systemStatus/payload/properties/status/enum"),
        "{}",
        invalid[0]
    );
    assert!(invalid[1].contains("unknown message event \\\"hello\\\""), "{}", invalid[1]);
    assert!(invalid[2].contains("missing required property \\\"event\\\""), "{}", invalid[2]);
    // The client side: what the server receives.
    std::fs::write(&capture, "{\"event\":\"ping\",\"reqid\":-1}\n{\"event\":\"subscribe\",\"pair\":[\"XBT/USD\"],\"subscription\":{\"name\":\"ticker\"}}\n").unwrap();
    let (code, stdout, _) =
        wsprobe(&["validate", "--asyncapi", doc.to_str().unwrap(), "--direction", "client", capture.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("invalid ping message") && stdout.contains("1 valid, 1 invalid"), "{stdout}");
}

#[test]
fn load_times_any_operation_matching_replies_by_correlation_id() {
    let doc = document();
    let load = |url: &str, operation: &str| {
        let (code, stdout, stderr) = wsprobe(&[
            "load",
            "--asyncapi",
            doc.to_str().unwrap(),
            "--url",
            url,
            "--operation",
            operation,
            "--connections",
            "2",
            "--in-flight",
            "4",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--no-progress",
            "--json",
            "-",
        ]);
        let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (code, summary)
    };
    // Pongs out of order: each is matched to its ping by reqid, none is an error.
    let (code, summary) = load(&feed(Some(Fault::SwapPongs)), "answerPing");
    assert_eq!(code, 0, "{summary:#}");
    assert!(summary["latency_us"]["uncorrected"]["count"].as_u64().unwrap() > 100, "{summary:#}");
    assert_eq!(summary["errors"], Value::Object(Default::default()), "{summary:#}");
    assert!(
        summary["notes"].to_string().contains("answerPing: a ping answered by a pong with the same /reqid"),
        "{summary:#}"
    );
    // Replies without their reqid are errors, not round trips, and the run says so.
    let (code, summary) = load(&feed(Some(Fault::StatusWithoutReqid)), "answerSubscribe");
    assert_eq!(code, 1, "{summary:#}");
    assert!(summary["errors"]["reply_without_correlation_id"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["latency_us"]["uncorrected"].is_null(), "{summary:#}");
    let failures = summary["failures"].to_string();
    assert!(failures.contains("must echo their request's correlation id"), "{failures}");
    // Replies that name a request nobody sent are errors too.
    let (code, summary) = load(&feed(Some(Fault::WrongReqid)), "answerPing");
    assert_eq!(code, 1, "{summary:#}");
    assert!(summary["errors"]["reply_with_unknown_correlation_id"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["failures"].to_string().contains("carried one that no request had"), "{summary:#}");
    // A document with several operations needs --operation; a wrong one is named with the choices.
    let (code, _, stderr) =
        wsprobe(&["load", "--asyncapi", doc.to_str().unwrap(), "--url", "ws://127.0.0.1:9/feed", "--duration", "1s"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pick one with --operation (answerPing, answerSubscribe)"), "{stderr}");
}

/// The feed server ends a connection that sends invalid UTF-8 without a Close frame (it returns
/// on the read error, as the obvious loop does): a bug nobody planted, which fuzzing from the
/// document finds, shrinks to one frame, and `replay` reproduces.
#[test]
fn fuzz_draws_inputs_from_what_the_document_says_the_server_receives() {
    let doc = document();
    let doc = doc.to_str().unwrap();
    let out = scratch("fuzz");
    let url = feed(None);
    let (code, stdout, stderr) = wsprobe(&[
        "fuzz",
        "--asyncapi",
        doc,
        "--url",
        &url,
        "--seed",
        "1",
        "--cases",
        "60",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(report["profile"], "feed.yaml#feed");
    assert_eq!(report["cases"], 60);
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["invariant"], "connection.dropped", "{report:#}");
    assert!(findings[0]["summary"].as_str().unwrap().contains("after invalid UTF-8 text"), "{report:#}");
    assert_eq!(code, 1, "{stderr}");
    let bundle = findings[0]["bundle"].as_str().unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(bundle).unwrap()).unwrap();
    assert_eq!(written["sent"].as_array().map(Vec::len), Some(1), "shrunk to one frame: {written:#}");
    // The bundle names its profile; replaying it needs the document back.
    let (code, _, stderr) = wsprobe(&["replay", bundle, "--url", &url]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pass the document it came from with --asyncapi FILE"), "{stderr}");
    let (code, stdout, _) = wsprobe(&["replay", bundle, "--asyncapi", doc, "--url", &url]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("STILL BROKEN connection.dropped"), "{stdout}");
    // A feed whose ping is never answered breaks the probe with no input at all: not a finding,
    // and not green.
    let (code, stdout, _) = wsprobe(&[
        "fuzz",
        "--asyncapi",
        doc,
        "--url",
        &feed(Some(Fault::IgnorePing)),
        "--seed",
        "1",
        "--cases",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
        "--probe-timeout",
        "300ms",
    ]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["without_input"].to_string().contains("connection.unresponsive"), "{report:#}");
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    assert_eq!(code, 1);
}

#[test]
fn the_shipped_document_gives_the_bundled_server_the_verdicts_of_the_core_profile() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/asyncapi.yaml");
    fn report(args: &[&str]) -> Vec<(String, String)> {
        let (code, cases) = cases(args);
        assert_eq!(code, 0, "{cases:?}");
        cases.into_iter().map(|(id, status, _)| (id, status)).collect()
    }
    // Both runs at once: each waits on its cases' windows, not on the machine.
    let derived = std::thread::spawn(move || {
        report(&["run", "--asyncapi", doc.to_str().unwrap(), "--channel", "core", "--format", "json", "--no-progress"])
    });
    let shipped =
        report(&["run", "--profile", "core", "--filter", "handshake.*,input.*", "--format", "json", "--no-progress"]);
    let derived = derived.join().expect("the derived run finishes");
    let ids: Vec<&str> = derived.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "handshake.upgrade",
            "asyncapi.messages.schema",
            "asyncapi.reply.coreAnswersPing",
            "input.malformed_json",
            "input.unknown_type",
            "input.binary_frame",
            "input.invalid_message"
        ]
    );
    assert!(derived.iter().all(|(_, status)| status == "passed"), "{derived:?}");
    for (id, status) in &derived {
        if let Some((_, theirs)) = shipped.iter().find(|(other, _)| other == id) {
            assert_eq!(status, theirs, "{id}");
        }
    }
    assert!(shipped.iter().filter(|(id, _)| derived.iter().any(|(d, _)| d == id)).count() >= 5, "{shipped:?}");
}

/// Snapshots read the document: messages named by `event`, the feed's own pushes (status,
/// heartbeat, tickers) left out as broadcasts, so a recording is stable; a reply that loses
/// its `reqid` shows as a change.
#[test]
fn snapshots_of_a_document_are_stable_and_show_a_changed_reply() {
    let doc = document();
    let doc = doc.to_str().unwrap();
    let dir = scratch("snapshots");
    let dir = dir.to_str().unwrap();
    let snapshot = |action: &str, url: &str| {
        wsprobe(&["snapshot", action, "--asyncapi", doc, "--url", url, "--dir", dir, "--filter", "asyncapi.reply.*"])
    };
    let (code, stdout, stderr) = snapshot("record", &feed(None));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let recorded = std::fs::read_to_string(Path::new(dir).join("feed.yaml_feed__asyncapi.snap")).unwrap();
    assert!(recorded.contains("<- pong {\"event\":\"pong\",\"reqid\":7301}"), "{recorded}");
    assert!(!recorded.contains("heartbeat") && !recorded.contains("systemStatus"), "{recorded}");
    let (code, stdout, _) = snapshot("diff", &feed(None));
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = snapshot("diff", &feed(Some(Fault::StatusWithoutReqid)));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("-  <- subscriptionStatus") && stdout.contains("\"reqid\":7302"), "{stdout}");
}

/// `--server ID` connects where the document says; a user's scenario file works with any
/// document, `expect: {type: NAME}` matching the discriminator's value.
#[test]
fn the_documents_server_and_a_users_scenario_file_work_together() {
    let url = feed(None);
    let host = url.trim_start_matches("ws://").trim_end_matches("/feed");
    let dir = scratch("server");
    let doc = dir.join("feed.yaml");
    let text = std::fs::read_to_string(document()).unwrap().replace("host: 127.0.0.1:9001", &format!("host: {host}"));
    std::fs::write(&doc, text).unwrap();
    let scenario = dir.join("tickers.yaml");
    std::fs::write(
        &scenario,
        r#"cases:
  - id: feed.ticker_after_subscribe
    level: must
    description: "A subscription to XBT/USD brings its ticker."
    steps:
      - connect:
      - send:
          json: {event: subscribe, reqid: 1, pair: [XBT/USD], subscription: {name: ticker}}
      - expect: {type: subscriptionStatus, timeout: 2s, match: {/status: subscribed}}
      - expect: {type: ticker, timeout: 2s, match: {/pair: XBT/USD}}
"#,
    )
    .unwrap();
    let doc = doc.to_str().unwrap();
    let (code, stdout, stderr) = wsprobe(&[
        "run",
        "--asyncapi",
        doc,
        "--server",
        "local",
        "--no-builtin",
        "--scenario",
        scenario.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("PASS  feed.ticker_after_subscribe"), "{stdout}");
    let (code, _, stderr) = wsprobe(&["run", "--asyncapi", doc, "--server", "nope", "--list"]);
    assert_eq!(code, 0, "--list connects to nothing: {stderr}");
    let (code, _, stderr) = wsprobe(&["run", "--asyncapi", doc, "--server", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no server \"nope\"; the document has local"), "{stderr}");
}
