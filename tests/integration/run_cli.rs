//! `wsprobe run` through the real binary: exit codes, formats, user scenarios.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reference_server::{Config, Fault, Profile as ServerProfile};
use serde_json::Value;

use crate::support::start;

pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the binary off the async runtime, bounded in time, so a server in this test keeps serving.
pub(crate) async fn wsprobe(args: Vec<String>) -> Output {
    let run = tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_wsprobe")).args(&args).output());
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("wsprobe finishes").unwrap().unwrap();
    Output {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn temp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test]
async fn the_bundled_server_passes_on_both_profiles() {
    for profile in ["core", "ai"] {
        let filter = "handshake.*,welcome.*,heartbeat.*,input.*,close.*,rate_limit.*,auth.*,reconnect.*";
        let out = wsprobe(args(&["run", "--profile", profile, "--filter", filter, "--format", "json"])).await;
        assert_eq!(out.code, 0, "{profile}: {}{}", out.stdout, out.stderr);
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(report["bundled"], true);
        assert_eq!(report["profile"], profile);
        let cases = report["cases"].as_array().unwrap();
        assert!(cases.len() >= 18, "{profile}: {}", cases.len());
        assert_eq!(report["summary"]["passed"].as_u64().unwrap() as usize, cases.len(), "{}", out.stdout);
    }
}

#[tokio::test]
async fn json_and_junit_agree_on_a_failing_run_and_exit_1() {
    let mut config = Config::new(ServerProfile::Core);
    config.faults = vec![Fault::NoWelcome];
    config.rate_limit = None;
    let server = start(config).await;
    let filter = "welcome.*,heartbeat.*,rate_limit.*,auth.*,reconnect.*";
    let junit_path = temp("report.xml");
    // The two runs at once: each waits on timeouts, not on the machine.
    let (junit, json) = tokio::join!(
        wsprobe(args(&[
            "run",
            "--url",
            &server.url(),
            "--filter",
            filter,
            "--format",
            "junit",
            "--output",
            junit_path.to_str().unwrap(),
        ])),
        wsprobe(args(&["run", "--url", &server.url(), "--filter", filter, "--format", "json"]))
    );
    assert_eq!(junit.code, 1, "{}", junit.stderr);
    assert_eq!(json.code, 1);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let xml = std::fs::read_to_string(&junit_path).unwrap();
    let attr = |name: &str| -> usize {
        let start = xml.find("<testsuites").unwrap();
        let tag = &xml[start..start + xml[start..].find('>').unwrap()];
        let value = tag.split(&format!(" {name}=\"")).nth(1).unwrap();
        value[..value.find('"').unwrap()].parse().unwrap()
    };
    let summary = &report["summary"];
    assert_eq!(attr("tests"), report["cases"].as_array().unwrap().len());
    assert_eq!(attr("failures"), summary["failed"].as_u64().unwrap() as usize);
    assert_eq!(xml.matches("<failure ").count(), attr("failures"));
    // Skips are counted per <testsuite>; the Jenkins schema has no `skipped` on <testsuites>.
    assert_eq!(xml.matches("<skipped ").count(), summary["skipped"].as_u64().unwrap() as usize);
    assert_eq!(xml.matches("<testcase ").count(), attr("tests"));
    // Without --jwt-secret or --token, the valid-token and signed-token auth cases are skipped
    // with the reason; the forged-token cases need no secret and run.
    assert!(summary["skipped"].as_u64().unwrap() >= 7, "{summary}");
    let failed_ids: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    // No welcome fails its own case only; a server with auth off accepts a forged Authenticate.
    assert_eq!(
        failed_ids,
        ["auth.forged_rejected.first_message", "welcome.first_message", "rate_limit.over"],
        "{}",
        json.stdout
    );
    let failed: Vec<&Value> = report["cases"].as_array().unwrap().iter().filter(|c| c["status"] == "failed").collect();
    assert!(failed
        .iter()
        .all(|c| !c["transcript"].as_array().unwrap().is_empty() || c["id"] == "welcome.first_message"));
    server.shutdown().await;
}

#[tokio::test]
async fn strict_turns_warnings_into_failures() {
    let mut config = Config::new(ServerProfile::Core);
    config.faults = vec![Fault::Silent];
    let server = start(config).await;
    let base = ["run", "--url", &server.url(), "--filter", "input.*"];
    let mut strict = args(&base);
    strict.push("--strict".into());
    let (relaxed, strict) = tokio::join!(wsprobe(args(&base)), wsprobe(strict));
    assert_eq!(relaxed.code, 0, "{}", relaxed.stdout);
    assert!(relaxed.stdout.contains("WARN  input.binary_frame"), "{}", relaxed.stdout);
    assert_eq!(strict.code, 1, "{}", strict.stdout);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_target_exits_3() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    drop(listener);
    let out = wsprobe(args(&["run", "--url", &url])).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
}

#[tokio::test]
async fn a_broken_scenario_file_exits_2_with_its_location() {
    let path = temp("broken.yaml");
    std::fs::write(&path, "cases:\n  - id: mine.one\n    level: must\n    description: d\n    steps:\n      - connect:\n      - sned: {text: hi}\n").unwrap();
    let out = wsprobe(args(&["run", "--scenario", path.to_str().unwrap()])).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("broken.yaml:7:"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `send`?"), "{}", out.stderr);
}

#[tokio::test]
async fn user_scenarios_run_alone_with_templates_and_matchers() {
    let path = temp("mine.yaml");
    std::fs::write(
        &path,
        r#"name: mine
cases:
  - id: mine.connected_shape
    level: must
    profiles: [core]
    description: Connected carries a client_id and this server's version.
    steps:
      - connect:
      - expect:
          type: Connected
          timeout: 2s
          first: true
          match:
            /data/client_id: {regex: "^client_[0-9]+$"}
            /data/version: {type: string}
      - send:
          json: {type: Ping, timestamp: "{{now_ms}}"}
      - expect:
          type: Pong
          timeout: 2s
          match:
            /data/timestamp: {min: 1}
  - id: mine.wrong_expectation
    level: should
    description: A deliberately wrong expectation warns.
    steps:
      - connect:
      - expect:
          type: "{{welcome}}"
          timeout: 2s
          match:
            /data/client_id: "nobody"
"#,
    )
    .unwrap();
    let out = wsprobe(args(&["run", "--no-builtin", "--scenario", path.to_str().unwrap()])).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("PASS  mine.connected_shape"), "{}", out.stdout);
    assert!(out.stdout.contains("WARN  mine.wrong_expectation"), "{}", out.stdout);
    assert!(out.stdout.contains("expected \"nobody\""), "{}", out.stdout);
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_is_unreachable_not_a_hang() {
    let url = crate::hostile::tcp_reply(b"");
    let out = wsprobe(args(&["run", "--url", &url, "--timeout-scale", "0.2"])).await;
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no handshake response"), "{}", out.stderr);
}

#[tokio::test]
async fn a_server_that_answers_with_garbage_fails_every_case_without_crashing() {
    let url = crate::hostile::tcp_reply(b"\x00\xffHTTP/9.9 garbage\r\n\r\n\x01\x02");
    let out = wsprobe(args(&["run", "--url", &url, "--filter", "handshake.*,heartbeat.*", "--format", "json"])).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    for case in report["cases"].as_array().unwrap() {
        assert_eq!(case["status"], "failed", "{case}");
        assert!(case["message"].as_str().unwrap().contains("HTTP 101"), "{case}");
    }
}

#[tokio::test]
async fn list_shows_the_planned_cases_without_connecting() {
    let out = wsprobe(args(&[
        "run",
        "--list",
        "--profile",
        "ai",
        "--filter",
        "market_data.*,heartbeat.*",
        "--url",
        "ws://127.0.0.1:1/ws",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("heartbeat.pong"), "{}", out.stdout);
    assert!(!out.stdout.contains("market_data.cadence"), "core-only cases are left out on ai: {}", out.stdout);
    assert!(out.stdout.ends_with("2 case(s) on the ai profile\n"), "{}", out.stdout);
}

#[tokio::test]
async fn the_ai_endpoint_under_the_core_profile_names_the_flag() {
    let mut config = Config::new(ServerProfile::Ai);
    config.tick = Duration::from_millis(200);
    let server = start(config).await;
    let out = wsprobe(args(&["run", "--url", &server.url(), "--filter", "welcome.*,heartbeat.*,messages.*"])).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("hint: ") && out.stdout.contains("pass --profile ai"), "{}", out.stdout);
    let json = wsprobe(args(&["run", "--url", &server.url(), "--filter", "welcome.*", "--format", "json"])).await;
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(report["hints"][0].as_str().unwrap().contains("--profile ai"), "{}", json.stdout);
    assert!(json.stderr.contains("hint: "), "machine formats still tell the person: {}", json.stderr);
    // The right profile gets no hint.
    let right = wsprobe(args(&["run", "--url", &server.url(), "--profile", "ai", "--filter", "welcome.*"])).await;
    assert_eq!(right.code, 0, "{}", right.stdout);
    assert!(!right.stdout.contains("hint: "), "{}", right.stdout);
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_that_dies_mid_frame_is_named_so() {
    let url = crate::hostile::writes_after_handshake(crate::hostile::CUT_FRAME);
    let out = wsprobe(args(&["run", "--url", &url, "--filter", "welcome.*", "--format", "json"])).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let message = report["cases"][0]["message"].as_str().unwrap();
    assert!(message.contains("in the middle of a frame"), "{message}");
}

/// Runs the binary against `url`, reading its peak resident memory while it runs (Linux).
async fn wsprobe_measured(args: Vec<String>) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let errors = std::thread::spawn(move || {
            std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
            err
        });
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        (out, errors.join().unwrap())
    });
    let mut peak_kb = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "wsprobe {args:?} did not finish in 90 s");
        peak_kb = peak_kb.max(crate::support::peak_rss_kb(pid));
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (stdout, stderr) = readers.join().unwrap();
    (Output { code: status.code().expect("exited normally"), stdout, stderr }, peak_kb)
}

#[tokio::test]
async fn hostile_servers_end_within_timeouts_with_the_cause_named_in_bounded_memory() {
    use crate::hostile;
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "64 MiB frame",
            hostile::writes_after_handshake(hostile::HUGE_FRAME),
            "Message too long",
            "dropped_oversize_message",
        ),
        (
            "2^63-byte header",
            hostile::writes_after_handshake(hostile::HEADER_2_63),
            "Message too long",
            "dropped_oversize_message",
        ),
        ("endless fragments", hostile::endless_fragments(), "Message too long", "dropped_oversize_message"),
        ("invalid UTF-8", hostile::writes_after_handshake(hostile::INVALID_UTF8), "UTF-8", "dropped_invalid_utf8"),
        (
            "masked server frame",
            hostile::writes_after_handshake(hostile::MASKED_FRAME),
            "masked",
            "dropped_masked_server_frame",
        ),
        (
            "closed mid-frame",
            hostile::writes_after_handshake(hostile::CUT_FRAME),
            "middle of a frame",
            "dropped_mid_frame",
        ),
        ("flood", hostile::floods(), "the first message was Pong", "answered no Ping"),
        ("1 MB answers", hostile::answers_with_megabytes(), "nothing arrived", "violate their schemas"),
    ];
    for (name, url, run_cause, load_cause) in cases {
        let run = args(&[
            "run",
            "--url",
            &url,
            "--filter",
            "heartbeat.pong,welcome.*",
            "--format",
            "json",
            "--timeout-scale",
            "0.3",
        ]);
        let load = args(&[
            "load",
            "--url",
            &url,
            "--connections",
            "2",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--reply-timeout",
            "2s",
        ]);
        // The run and the load at once, each on its own connections (the server serves each
        // on a thread of its own), each measured in its own process.
        let ((out, peak_kb), (loaded, load_peak_kb)) = tokio::join!(wsprobe_measured(run), wsprobe_measured(load));
        assert!(peak_kb < 200 * 1024, "{name}: run peaked at {peak_kb} KB");
        assert_eq!(out.code, 1, "{name}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains(run_cause), "{name}: {}", out.stdout);
        let (out, peak_kb) = (loaded, load_peak_kb);
        assert!(peak_kb < 200 * 1024, "{name}: load peaked at {peak_kb} KB");
        assert_eq!(out.code, 1, "{name}: {}", out.stdout);
        assert!(out.stdout.contains(load_cause), "{name}: {}", out.stdout);
    }
}

#[tokio::test]
async fn the_message_size_limit_is_a_flag_for_run_and_load() {
    let url = crate::hostile::answers_with_megabytes();
    let run = ["run", "--url", &url, "--filter", "heartbeat.pong", "--max-message-bytes", "65536", "--format", "json"];
    let out = wsprobe(args(&run)).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("Message too long"), "{}", out.stdout);
    let load = ["load", "--url", &url, "--connections", "1", "--duration", "1s", "--max-message-bytes", "65536"];
    let out = wsprobe(args(&load)).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("dropped_oversize_message"), "{}", out.stdout);
}
