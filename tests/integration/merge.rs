//! Sharded load and `wsprobe merge`: two shards as separate processes against one reference
//! server, started together, merged; the merged counts and percentiles must be those of the
//! shards' own histograms added together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reference_server::{BackgroundServer, Config, Profile};
use serde_json::Value;
use wsprobe::load::interval_log::IntervalLog;
use wsprobe::load::summary::Stats;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsprobe-merge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rfc3339(time: SystemTime) -> String {
    // Whole seconds in UTC, from the Unix time (the test needs no calendar crate).
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn log(path: &Path) -> IntervalLog {
    IntervalLog::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn two_shards_in_separate_processes_merge_into_the_sum_of_their_samples() {
    let mut config = Config::new(Profile::Core);
    config.rate_limit = None;
    config.max_connections = None;
    let server = BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
    let dir = scratch("shards");
    // Whole seconds, at least 2 s ahead, so both processes are up before it comes.
    let start = rfc3339(SystemTime::now() + Duration::from_secs(3));
    let shards: Vec<_> = (1..=2)
        .map(|index| {
            let (json, hlog) = (dir.join(format!("s{index}.json")), dir.join(format!("s{index}.hlog")));
            let child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
                .args(["load", "--url", server.url(), "--connections", "5", "--duration", "2s", "--ramp-up", "0s"])
                .args(["--shard", &format!("{index}/2"), "--start-at", &start, "--no-progress", "--threads", "1"])
                .arg("--json")
                .arg(&json)
                .arg("--hdr-log")
                .arg(&hlog)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, json, hlog)
        })
        .collect();
    let mut files = Vec::new();
    for (child, json, hlog) in shards {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
        assert!(String::from_utf8_lossy(&output.stdout).contains("(shard "), "the summary names its shard");
        files.push((json, hlog));
    }
    let (s1, s2) = (json(&files[0].0), json(&files[1].0));
    // 5 connections split 3 + 2.
    assert_eq!((s1["connections"].as_u64(), s2["connections"].as_u64()), (Some(3), Some(2)));
    assert_eq!((s1["shard"].as_str(), s2["shard"].as_str()), (Some("1/2"), Some("2/2")));

    let merged_json = dir.join("merged.json");
    let merged_hlog = dir.join("merged.hlog");
    let output = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .arg("merge")
        .args([&files[0].0, &files[1].1, &files[1].0, &files[0].1])
        .arg("--json")
        .arg(&merged_json)
        .arg("--hdr-log")
        .arg(&merged_hlog)
        .args(["--assert", "count>0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("shard 1/2") && text.contains("shard 2/2"), "{text}");
    let merged = json(&merged_json);

    for key in ["connections", "sent", "received", "connects", "connect_attempts", "schema_checked"] {
        assert_eq!(merged[key].as_u64().unwrap(), s1[key].as_u64().unwrap() + s2[key].as_u64().unwrap(), "{key}");
    }
    assert_eq!(merged["verdict"], "passed");
    assert!(merged.get("shard").is_none(), "the merged result is the whole run, not a shard");

    // The percentiles are those of the shards' histograms added together, for every metric.
    let (l1, l2) = (log(&files[0].1), log(&files[1].1));
    for metric in ["uncorrected", "connect"] {
        let mut added = l1.total(metric).unwrap();
        added.add(l2.total(metric).unwrap()).unwrap();
        let expected = Stats::of(&added).unwrap();
        let got: Stats = stats(&merged["latency_us"][metric]);
        assert_eq!(got, expected, "{metric}");
        // And each shard's own log agrees with its own summary: nothing was lost on the way.
        for (summary, shard_log) in [(&s1, &l1), (&s2, &l2)] {
            assert_eq!(summary["latency_us"][metric]["count"].as_u64(), Some(shard_log.total(metric).unwrap().len()));
        }
        // The merged log holds the same samples.
        let merged_log = log(&merged_hlog);
        assert_eq!(Stats::of(&merged_log.total(metric).unwrap()), Some(expected), "{metric} in merged.hlog");
    }
    // Both shards started together: their seconds fall into the same merged intervals.
    let merged_log = log(&merged_hlog);
    let seconds = merged_log.intervals.iter().filter(|i| i.tag.as_deref() == Some("uncorrected")).count();
    let most = l1.intervals.iter().chain(&l2.intervals).filter(|i| i.tag.as_deref() == Some("uncorrected")).count();
    assert!(seconds <= most / 2 + 1, "{seconds} merged intervals from {most} shard intervals");
    let _ = std::fs::remove_dir_all(&dir);
}

fn stats(value: &Value) -> Stats {
    let get = |k: &str| value[k].as_u64().unwrap_or_else(|| panic!("no {k} in {value}"));
    Stats {
        count: get("count"),
        min: get("min"),
        mean: value["mean"].as_f64().unwrap(),
        p50: get("p50"),
        p90: get("p90"),
        p99: get("p99"),
        p999: get("p999"),
        max: get("max"),
    }
}

#[test]
fn one_failed_shard_fails_the_merge_and_is_named() {
    let dir = scratch("failed");
    let summary = |shard: &str, verdict: &str, failures: &str| {
        format!(
            r#"{{"mode":"ping","target":"ws://127.0.0.1:9/ws","loop_kind":"closed","in_flight":1,"validation":"all","connections":2,"sent":10,"received":10,"verdict":"{verdict}","failures":[{failures}],"shard":"{shard}"}}"#
        )
    };
    let passed = dir.join("s1.json");
    let failed = dir.join("s2.json");
    std::fs::write(&passed, summary("1/2", "passed", "")).unwrap();
    std::fs::write(&failed, summary("2/2", "failed", r#""3 schema violations""#)).unwrap();
    let merged = dir.join("merged.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .arg("merge")
        .args([&passed, &failed])
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let merged = json(&merged);
    assert_eq!(merged["verdict"], "failed");
    assert_eq!(merged["failures"], serde_json::json!(["shard 2/2: 3 schema violations"]));
    assert_eq!(merged["sent"], 20);
    // No interval logs: no latency is made up from the summaries' percentiles.
    assert_eq!(merged["latency_us"], serde_json::json!({}));
    assert!(text.contains("percentiles cannot be merged from summaries"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merge_refuses_what_would_misreport_the_run() {
    let dir = scratch("refusals");
    let summary = |shard: &str| {
        format!(
            r#"{{"mode":"ping","target":"ws://127.0.0.1:9/ws","loop_kind":"closed","in_flight":1,"validation":"all","connections":1,"sent":1,"received":1,"verdict":"passed","shard":"{shard}"}}"#
        )
    };
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let a = write("a.json", &summary("1/3"));
    let b = write("b.json", &summary("1/3"));
    let c = write("c.json", &summary("3/3"));
    let other = write("other.json", &summary("2/3").replace("\"ping\"", "\"push\""));
    let junk = write("junk.txt", "hello");
    let merge = |files: &[&PathBuf]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wsprobe")).arg("merge").args(files).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = merge(&[&a, &b]);
    assert_eq!(code, Some(2));
    assert!(err.contains("both shard 1/3") && err.contains("twice"), "{err}");
    let (code, err) = merge(&[&a, &c]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard 2/3 missing"), "{err}");
    let (code, err) = merge(&[&a, &other, &c]);
    assert_eq!(code, Some(2));
    assert!(err.contains("different tests"), "{err}");
    let (code, err) = merge(&[&junk]);
    assert_eq!(code, Some(2));
    assert!(err.contains("junk.txt") && err.contains("neither a load summary"), "{err}");
    let (code, err) = merge(&[&dir.join("missing.hlog")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read") && err.contains("missing.hlog"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
