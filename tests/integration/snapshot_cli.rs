//! `wsprobe snapshot record | diff | accept` through the real binary.

use std::path::PathBuf;
use std::time::Duration;

use reference_server::{Config, Fault, Profile as ServerProfile};
use serde_json::Value;

use crate::run_cli::{args, Output};
use crate::support::start;

/// The binary, bounded in time, off the async runtime.
async fn wsprobe(list: &[&str]) -> Output {
    crate::run_cli::wsprobe(args(list)).await
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The `.snap` files of a folder (the `.received.jsonl` captures beside them hold raw times).
fn read_all(dir: &PathBuf) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

const FAST: &str = "welcome.*,heartbeat.*,input.*,close.*,reconnect.*,auth.forged_rejected.*,rate_limit.over";

#[tokio::test]
async fn two_records_against_the_bundled_server_are_byte_identical() {
    let (a, b) = (fresh_dir("snap-a"), fresh_dir("snap-b"));
    for dir in [&a, &b] {
        let out =
            wsprobe(&["snapshot", "record", "--filter", FAST, "--seed", "7", "--dir", dir.to_str().unwrap()]).await;
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    }
    let (files_a, files_b) = (read_all(&a), read_all(&b));
    assert!(files_a.len() >= 5, "{files_a:?}");
    assert_eq!(files_a, files_b);
    let heartbeat = &files_a.iter().find(|(n, _)| n == "core__heartbeat.snap").unwrap().1;
    assert!(heartbeat.starts_with("---\nsource: wsprobe snapshot\n"), "{heartbeat}");
    assert!(heartbeat.contains("<- Pong {\"data\":{\"timestamp\":\"<ms>\"}"), "{heartbeat}");
    // The messages as received are kept beside the snapshot, for replay under edited schemas.
    let capture = a.join("core__heartbeat.received.jsonl");
    let out = wsprobe(&["validate", capture.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("all valid") && !out.stdout.contains("checked 0"), "{}", out.stdout);
}

#[tokio::test]
async fn a_server_ticking_every_100ms_gives_the_same_snapshot_twice() {
    let mut config = Config::new(ServerProfile::Core);
    config.tick = Duration::from_millis(100);
    config.rate_limit = None;
    let server = start(config).await;
    let dir = fresh_dir("snap-ticking");
    let filter = "messages.schema,welcome.*,heartbeat.*,input.*";
    let out =
        wsprobe(&["snapshot", "record", "--url", &server.url(), "--filter", filter, "--dir", dir.to_str().unwrap()])
            .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out =
        wsprobe(&["snapshot", "diff", "--url", &server.url(), "--filter", filter, "--dir", dir.to_str().unwrap()])
            .await;
    assert_eq!(out.code, 0, "broadcasts must not make the snapshot flap: {}", out.stdout);
    assert!(out.stdout.contains("0 changed, 0 new"), "{}", out.stdout);
    server.shutdown().await;
}

#[tokio::test]
async fn one_changed_field_is_one_hunk_and_accept_promotes_it() {
    let good = start(Config::new(ServerProfile::Core)).await;
    let mut broken = Config::new(ServerProfile::Core);
    broken.faults = vec![Fault::MalformedPong];
    let broken = start(broken).await;
    let dir = fresh_dir("snap-change");
    let d = dir.to_str().unwrap();
    let out = wsprobe(&["snapshot", "record", "--url", &good.url(), "--filter", "heartbeat.pong", "--dir", d]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let diff =
        ["snapshot", "diff", "--url", &broken.url(), "--filter", "heartbeat.pong", "--dir", d, "--format", "json"];
    let out = wsprobe(&diff).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let results: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(results[0]["status"], "changed", "{results}");
    let hunks = results[0]["hunks"].as_array().unwrap();
    assert_eq!(hunks.len(), 1, "{results}");
    let lines: Vec<&str> = hunks[0]["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(lines.iter().any(|l| l.starts_with("-  <- Pong {\"data\"")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("+  <- Pong {\"timestamp\":\"\",")), "{lines:?}");
    assert!(dir.join("core__heartbeat.snap.new").exists());
    let junit =
        ["snapshot", "diff", "--url", &broken.url(), "--filter", "heartbeat.pong", "--dir", d, "--format", "junit"];
    let out = wsprobe(&junit).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("failures=\"1\"") && out.stdout.contains("<failure message=\"snapshot changed"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("+  &lt;- Pong {&quot;timestamp&quot;:&quot;&quot;"), "{}", out.stdout);
    let out = wsprobe(&["snapshot", "accept", "--dir", d]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("accepted 1"), "{}", out.stdout);
    let mut same = diff.to_vec();
    same.truncate(diff.len() - 2);
    let out = wsprobe(&same).await;
    assert_eq!(out.code, 0, "accepted, so the broken server now matches: {}", out.stdout);
    good.shutdown().await;
    broken.shutdown().await;
}

#[tokio::test]
async fn a_silent_server_is_recorded_within_its_timeouts_and_bad_input_exits_2_or_3() {
    let url = crate::hostile::silent_after_handshake();
    let dir = fresh_dir("snap-silent");
    let d = dir.to_str().unwrap();
    let started = std::time::Instant::now();
    let out = wsprobe(&[
        "snapshot",
        "record",
        "--url",
        &url,
        "--filter",
        "heartbeat.pong,close.*",
        "--dir",
        d,
        "--timeout-scale",
        "0.2",
    ])
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    let files = read_all(&dir);
    let heartbeat = &files.iter().find(|(n, _)| n == "core__heartbeat.snap").unwrap().1;
    assert!(heartbeat.contains("case heartbeat.pong: FAIL"), "{heartbeat}");
    assert!(heartbeat.contains("<- unmet step 3 (expect) [must]: expected Pong within 2s"), "{heartbeat}");
    let handshake = &files.iter().find(|(n, _)| n == "core__handshake.snap").unwrap().1;
    assert!(handshake.contains("expected a Close frame with code 1000"), "{handshake}");
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, "rules:\n  - {path: price, action: id}\n").unwrap();
    let out = wsprobe(&["snapshot", "diff", "--url", &url, "--dir", d, "--rules", rules.to_str().unwrap()]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("must start with /"), "{}", out.stderr);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("ws://{}/ws", listener.local_addr().unwrap());
    drop(listener);
    let out = wsprobe(&["snapshot", "diff", "--url", &gone, "--dir", d]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
}
