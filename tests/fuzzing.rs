//! `wsprobe fuzz` and `wsprobe replay` end to end: three reference servers, each conformant
//! but for one planted bug that only a schema-derived input reaches (a Ping with timestamp 0
//! hangs the connection; an empty token drops it; an extra boolean member gets an Error
//! without its code). Each must be found by `--seed 1`, shrunk to at most 3 frames, and
//! `replay` must exit 1 on the buggy server and 0 on the reference server. The same seed and
//! cases give the same findings in the same order.
//!
//! Its own test binary: a finding of `connection.unresponsive` is a Pong that did not come
//! within 2 s, which only means that when nothing else loads the machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reference_server::{BackgroundServer, Config, Fault, Profile};
use serde_json::Value;

fn server(fault: Option<Fault>) -> BackgroundServer {
    let mut config = Config::new(Profile::Core);
    config.faults.extend(fault);
    BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1).expect("the server starts")
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wsprobe(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wsprobe")).args(args).output().expect("wsprobe runs");
    Output {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsprobe-fuzzing-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Fuzzes `url` with seed 1 for `cases`; the JSON report.
fn fuzz(url: &str, cases: &str, out: &Path) -> (i32, Value, String) {
    let started = Instant::now();
    let run = wsprobe(&[
        "fuzz",
        "--url",
        url,
        "--seed",
        "1",
        "--cases",
        cases,
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(started.elapsed() < Duration::from_secs(60), "found within 60 s: {:?}", started.elapsed());
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run.code, report, run.stderr)
}

#[test]
fn each_planted_bug_is_found_shrunk_bundled_and_replayed() {
    let planted = [
        (Fault::HangOnZeroTimestamp, "connection.unresponsive", r#""timestamp":0"#),
        (Fault::DropOnEmptyToken, "connection.dropped", r#""token":"""#),
        (Fault::CodelessErrorOnExtraBoolean, "reply.schema", ":true"),
    ];
    // One server pair per bug, side by side: each is judged on its own connections.
    let runs: Vec<_> = planted.into_iter().map(|bug| std::thread::spawn(move || planted_bug(bug))).collect();
    for run in runs {
        run.join().expect("the planted bug's checks pass");
    }
}

fn planted_bug((fault, invariant, input): (Fault, &'static str, &'static str)) {
    let reference = server(None);
    let buggy = server(Some(fault));
    let out = scratch(invariant);
    let (code, report, stderr) = fuzz(buggy.url(), "120", &out);
    assert_eq!(code, 1, "{fault:?}: {report:#}\n{stderr}");
    let findings = report["findings"].as_array().unwrap();
    assert!(!findings.is_empty(), "{fault:?}: {report:#}");
    // The planted bug breaks exactly its invariant, and nothing else is found.
    assert!(findings.iter().all(|f| f["invariant"] == invariant), "{fault:?}: {report:#}");
    let bundle_path = findings[0]["bundle"].as_str().unwrap();
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(bundle_path).unwrap()).unwrap();
    let sent = bundle["sent"].as_array().unwrap();
    assert!((1..=3).contains(&sent.len()), "shrunk to at most 3 frames: {bundle:#}");
    assert!(sent.iter().any(|f| f["text"].as_str().is_some_and(|t| t.contains(input))), "{bundle:#}");
    for key in ["invariant", "profile", "seed", "sent", "expected", "observed", "wsprobe_version"] {
        assert!(bundle.get(key).is_some(), "the bundle has {key}: {bundle:#}");
    }
    assert_eq!(bundle["seed"], 1);

    let again = wsprobe(&["replay", bundle_path, "--url", buggy.url()]);
    assert_eq!(again.code, 1, "replay on the buggy server still breaks: {}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains(&format!("STILL BROKEN {invariant}")), "{}", again.stdout);
    let fixed = wsprobe(&["replay", bundle_path, "--url", reference.url()]);
    assert_eq!(fixed.code, 0, "replay on the reference server holds: {}{}", fixed.stdout, fixed.stderr);
    let bundled = wsprobe(&["replay", bundle_path]);
    assert_eq!(bundled.code, 0, "without --url, the bundled server: {}{}", bundled.stdout, bundled.stderr);

    // The finding as a regression case in a scenario file: it fails where the bug is and
    // passes where it is not.
    let case = wsprobe(&["replay", bundle_path, "--scenario"]);
    assert_eq!(case.code, 0, "{}", case.stderr);
    let file = out.join("regressions.yaml");
    std::fs::write(&file, format!("name: regressions\ncases:\n{}", case.stdout)).unwrap();
    for (url, code) in [(buggy.url(), 1), (reference.url(), 0)] {
        let run = wsprobe(&["run", "--url", url, "--no-builtin", "--scenario", file.to_str().unwrap()]);
        assert_eq!(run.code, code, "{fault:?} as a scenario against {url}: {}{}", run.stdout, run.stderr);
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_same_seed_and_cases_give_the_same_findings_in_the_same_order() {
    let buggy = server(Some(Fault::CodelessErrorOnExtraBoolean));
    let runs: Vec<Vec<(String, String)>> = (0..2)
        .map(|n| {
            let out = scratch(&format!("same-{n}"));
            let (_, report, _) = fuzz(buggy.url(), "100", &out);
            let _ = std::fs::remove_dir_all(&out);
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let name =
                        Path::new(f["bundle"].as_str().unwrap()).file_name().unwrap().to_string_lossy().to_string();
                    (f["invariant"].as_str().unwrap().to_string(), name)
                })
                .collect()
        })
        .collect();
    assert!(!runs[0].is_empty());
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn the_reference_server_survives_its_fuzzer_and_bad_bundles_are_usage_errors() {
    let reference = server(None);
    let out = scratch("reference");
    let (code, report, stderr) = fuzz(reference.url(), "250", &out);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["findings"], serde_json::json!([]));
    assert_eq!(report["cases"], 250);
    assert!(!out.exists(), "no finding, no bundle");

    let bad = scratch("bad-bundle.json");
    std::fs::write(&bad, r#"{"invariant":"nonsense","profile":"core","seed":1,"case":0,"sent":[],"expected":"","observed":"","wsprobe_version":"0"}"#).unwrap();
    let replay = wsprobe(&["replay", bad.to_str().unwrap()]);
    assert_eq!(replay.code, 2, "{}", replay.stderr);
    assert!(replay.stderr.contains("unknown invariant \"nonsense\""), "{}", replay.stderr);
    let _ = std::fs::remove_file(&bad);
    let missing = wsprobe(&["replay", "/nonexistent/bundle.json"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    let zero = wsprobe(&["fuzz", "--url", reference.url(), "--cases", "0"]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    let negative = wsprobe(&["fuzz", "--url", reference.url(), "--rate", "-1"]);
    assert_eq!(negative.code, 2, "{}", negative.stderr);

    // --rate paces the cases (each a connection): 12 at 10 a second cannot take less than 1.1 s.
    let started = Instant::now();
    let paced = wsprobe(&[
        "fuzz",
        "--url",
        reference.url(),
        "--seed",
        "1",
        "--cases",
        "12",
        "--rate",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(paced.code, 0, "{}{}", paced.stdout, paced.stderr);
    assert!(started.elapsed() >= Duration::from_millis(1100), "{:?}", started.elapsed());

    // A server whose broadcasts are always invalid breaks reply.schema whatever it is sent: no
    // input is to blame, so no finding, and no green either.
    let mut config = Config::new(Profile::Core);
    config.faults.push(Fault::CorruptMarketData);
    config.tick = Duration::from_millis(20);
    let noisy = BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
    let (code, report, stderr) = fuzz(noisy.url(), "60", &out);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["findings"], serde_json::json!([]));
    assert_eq!(report["without_input"], serde_json::json!(["reply.schema"]));

    // A server that welcomes no one before a token can judge no input: said before any case,
    // never reported as a server that went down.
    let mut config = Config::new(Profile::Core);
    config.auth = reference_server::AuthMode::Required;
    config.jwt_secret = Some("s3cret".into());
    let guarded = BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
    let refused = wsprobe(&["fuzz", "--url", guarded.url(), "--cases", "10", "--out", out.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("before any input") && refused.stderr.contains("Authorization: Bearer"),
        "{}",
        refused.stderr
    );
    assert!(!out.exists(), "no finding was written");
}
