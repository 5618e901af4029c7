//! `wsprobe load` against servers on 127.0.0.1:0: every mode, the latency correction, the
//! summary/hlog agreement, errors and reconnects, and the CLI's gates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use reference_server::{BackgroundServer, Config, Fault, Profile as ServerProfile};
use wsprobe::load::operation::Operation;
use wsprobe::load::plan::{ClockOffset, LoadPlan, Mode, Validation};
use wsprobe::load::summary::{LoadSummary, Verdict};
use wsprobe::load::{self, Outputs};
use wsprobe::profile::Profile;
use wsprobe::profile::ProfileSpec;

fn server(config: Config) -> BackgroundServer {
    BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1).expect("server starts")
}

fn quiet_unlimited() -> Config {
    let mut config = Config::new(ServerProfile::Core);
    config.rate_limit = None;
    config.tick = Duration::from_secs(3600);
    config
}

fn plan(url: &str, mode: Mode, connections: usize, duration: Duration) -> LoadPlan {
    LoadPlan {
        url: url.to_string(),
        profile: Arc::new(ProfileSpec::builtin(Profile::Core)),
        operation: Operation::of(&ProfileSpec::builtin(Profile::Core), None).unwrap(),
        mode,
        connections,
        duration,
        ramp_up: Duration::ZERO,
        rate: None,
        in_flight: 1,
        validation: Validation::All,
        reply_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        max_message_bytes: wsprobe::session::DEFAULT_MAX_MESSAGE_BYTES,
        clock_offset: ClockOffset::Estimate,
        max_connect_failure_rate: 0.01,
        network: wsprobe::network::Network::shared_default(),
    }
}

fn run(plan: LoadPlan, hdr_log: Option<std::path::PathBuf>) -> LoadSummary {
    let outputs = Outputs {
        progress: false,
        hdr_log,
        bundled_server: false,
        notes: vec![],
        threads: 2,
        shard: None,
        keep_log: false,
    };
    load::run(plan, outputs).expect("the run completes")
}

#[test]
fn closed_loop_ping_measures_round_trips_and_validates_every_pong() {
    let server = server(quiet_unlimited());
    let mut plan = plan(server.url(), Mode::Ping, 4, Duration::from_millis(1500));
    plan.in_flight = 4;
    let summary = run(plan, None);
    let rtt = summary.latency_us["uncorrected"];
    assert!(rtt.count > 100, "{summary:#?}");
    assert!(!summary.latency_us.contains_key("corrected"), "closed loop has no intended times");
    assert_eq!(summary.latency_us["connect"].count, 4);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.schema_violations, 0);
    assert!(summary.received >= rtt.count, "every Pong was received and counted");
    assert!(summary.throughput_per_s > 0.0);
    let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
    for key in [
        "mode",
        "connections",
        "duration_s",
        "sent",
        "received",
        "throughput_per_s",
        "errors",
        "schema_violations",
        "valid_run",
        "latency_us",
    ] {
        assert!(json.get(key).is_some(), "summary JSON lacks {key}");
    }
    for key in ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_us"]["uncorrected"].get(key).is_some(), "H lacks {key}");
    }
}

#[test]
fn push_mode_measures_server_push_latency() {
    let mut config = quiet_unlimited();
    config.tick = Duration::from_millis(50);
    let server = server(config);
    let summary = run(plan(server.url(), Mode::Push, 3, Duration::from_millis(1500)), None);
    let push = summary.latency_us["push"];
    assert!(push.count > 30, "{summary:#?}");
    assert!(push.p50 < 1_000_000, "loopback push latency is far under a second: {push:?}");
    assert_eq!(summary.schema_violations, 0);
    assert!(summary.notes.iter().any(|n| n.contains("1 ms resolution")));
}

#[test]
fn connect_mode_measures_handshakes() {
    let server = server(quiet_unlimited());
    let summary = run(plan(server.url(), Mode::Connect, 2, Duration::from_secs(1)), None);
    assert!(summary.connects > 10, "{summary:#?}");
    assert_eq!(summary.latency_us["connect"].count, summary.connects);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
}

#[test]
fn the_corrected_p99_shows_a_stall_that_the_uncorrected_p99_hides() {
    let mut config = quiet_unlimited();
    config.faults = vec![Fault::StallOnce];
    config.stall = Duration::from_millis(500);
    config.stall_after_pings = 100;
    let server = server(config);
    let mut plan = plan(server.url(), Mode::Ping, 1, Duration::from_secs(3));
    plan.rate = Some(200.0);
    let summary = run(plan, None);
    let corrected = summary.latency_us["corrected"];
    let uncorrected = summary.latency_us["uncorrected"];
    assert!(corrected.count > 400, "{summary:#?}");
    assert!(corrected.p99 >= 300_000, "the stall shows in the corrected p99: {corrected:?}");
    assert!(uncorrected.p99 < 100_000, "the stall hides from the uncorrected p99: {uncorrected:?}");
    assert!(uncorrected.max >= 400_000, "the one Ping caught in the stall still shows as the max: {uncorrected:?}");
}

#[test]
fn the_hlog_and_the_summary_agree_on_counts() {
    let mut config = quiet_unlimited();
    config.tick = Duration::from_millis(100);
    let server = server(config);
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load.hlog");
    let mut plan = plan(server.url(), Mode::Ping, 3, Duration::from_millis(2500));
    plan.rate = Some(300.0);
    let summary = run(plan, Some(path.clone()));
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("#[StartTime:") && text.contains("#[BaseTime:"), "{text}");
    let legend = text.lines().position(|l| l.starts_with("\"StartTimestamp\",\"Interval_Length\""));
    let first_interval = text.lines().position(|l| l.starts_with("Tag="));
    assert!(legend.is_some() && legend < first_interval, "the legend precedes the intervals: {text}");
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut intervals = 0;
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(interval) = entry.expect("a well-formed log") {
            let decoded = base64_decode(interval.encoded_histogram());
            let histogram: hdrhistogram::Histogram<u64> = deserializer.deserialize(&mut decoded.as_slice()).unwrap();
            *counts.entry(interval.tag().unwrap().as_str().to_string()).or_default() += histogram.len();
            intervals += 1;
        }
    }
    assert!(intervals >= 3, "about one interval per second per metric: {intervals}");
    for (name, stats) in &summary.latency_us {
        assert_eq!(counts.get(*name).copied(), Some(stats.count), "{name}");
    }
    assert_eq!(counts.get("schedule_lag").copied(), summary.schedule_lag_us.map(|s| s.count));
}

/// Standard base64, as the interval log encodes histograms.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for &c in text.as_bytes().iter().filter(|c| **c != b'=') {
        buffer = (buffer << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[test]
fn invalid_messages_under_load_are_counted() {
    let mut config = quiet_unlimited();
    config.tick = Duration::from_millis(50);
    config.faults = vec![Fault::CorruptMarketData];
    let server = server(config);
    let summary = run(plan(server.url(), Mode::Push, 2, Duration::from_secs(1)), None);
    assert!(summary.schema_violations > 10, "{summary:#?}");
    // Violations are their own count: `errors==0` still holds on a server whose only fault is its messages.
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.verdict, Verdict::Failed);
    assert!(summary.failures.iter().any(|f| f.contains("violate their schemas")), "{:?}", summary.failures);
}

#[test]
fn closed_connections_are_counted_and_reconnected_with_backoff() {
    let mut config = quiet_unlimited();
    config.rate_limit = Some(50);
    let server = server(config);
    let summary = run(plan(server.url(), Mode::Ping, 2, Duration::from_millis(2500)), None);
    assert!(summary.errors.get("closed_1008").copied().unwrap_or(0) >= 2, "{:?}", summary.errors);
    assert!(summary.reconnects >= 2, "{summary:#?}");
    // Every connection was lost at least once: far over the 1% limit, so the run fails.
    assert!(summary.connections_lost >= 2, "{summary:#?}");
    assert_eq!(summary.verdict, Verdict::Failed);
    assert!(summary.failures.iter().any(|f| f.contains("lost before the end")), "{:?}", summary.failures);
    // The first backoff is a second: within 2.5 s each connection reconnects at most twice.
    assert!(summary.reconnects <= 4, "{summary:#?}");
}

/// Hostile and imperfect servers: the run says what it could not measure, and is never green.
mod verdicts {
    use super::*;
    use crate::hostile;

    fn short(url: &str, mode: Mode) -> LoadPlan {
        let mut plan = plan(url, mode, 2, Duration::from_millis(1200));
        plan.reply_timeout = Duration::from_millis(400);
        plan.connect_timeout = Duration::from_millis(500);
        plan
    }

    #[test]
    fn every_failed_handshake_is_unreachable_with_the_cause_named() {
        for (reply, kind) in [
            (hostile::HTTP_500, "handshake_rejected_500"),
            (hostile::HTTP_404, "handshake_rejected_404"),
            (hostile::GARBAGE, "handshake_failed"),
            (hostile::WRONG_ACCEPT, "handshake_failed"),
        ] {
            let summary = run(short(&hostile::tcp_reply(reply), Mode::Ping), None);
            assert_eq!(summary.verdict, Verdict::Unreachable, "{kind}: {summary:#?}");
            assert_eq!(summary.connects, 0);
            assert!(summary.connect_failures > 0 && summary.errors.contains_key(kind), "{kind}: {:?}", summary.errors);
            assert!(summary.failures[0].contains("no WebSocket connection could be opened"), "{:?}", summary.failures);
        }
    }

    #[test]
    fn handshakes_still_pending_at_the_end_are_counted() {
        // Accepts TCP and never answers the upgrade; the connect timeout outlasts the run.
        let mut plan = short(&hostile::tcp_reply(b""), Mode::Ping);
        plan.connect_timeout = Duration::from_secs(10);
        let summary = run(plan, None);
        assert_eq!(summary.handshake_pending_at_end, 2, "{summary:#?}");
        assert_eq!(summary.verdict, Verdict::Unreachable);
    }

    #[test]
    fn each_drop_is_named_by_its_cause() {
        for (url, kind) in [
            (hostile::writes_after_handshake(hostile::CUT_FRAME), "dropped_mid_frame"),
            (hostile::writes_after_handshake(b""), "dropped_without_close"),
            (hostile::writes_after_handshake(hostile::HUGE_FRAME), "dropped_oversize_message"),
            (hostile::writes_after_handshake(hostile::INVALID_UTF8), "dropped_invalid_utf8"),
            (hostile::writes_after_handshake(hostile::MASKED_FRAME), "dropped_masked_server_frame"),
            (hostile::resets_after_handshake(), "dropped_reset"),
        ] {
            let summary = run(short(&url, Mode::Ping), None);
            assert!(summary.errors.contains_key(kind), "{kind}: {:?}", summary.errors);
            assert_eq!(summary.verdict, Verdict::Failed, "{kind}");
        }
    }

    #[test]
    fn connections_that_all_drop_fail_the_run() {
        let summary = run(short(&hostile::drops_after_handshake(), Mode::Ping), None);
        assert_eq!(summary.verdict, Verdict::Failed, "{summary:#?}");
        assert!(summary.connections_lost >= 2, "{summary:#?}");
        assert!(summary.failures.iter().any(|f| f.contains("no round trip completed")), "{:?}", summary.failures);
        assert!(summary.failures.iter().any(|f| f.contains("lost before the end")), "{:?}", summary.failures);
        assert!(summary.errors.keys().any(|k| k.starts_with("dropped_")), "{:?}", summary.errors);
    }

    #[test]
    fn a_server_that_never_answers_fails_and_counts_what_is_still_pending() {
        let url = hostile::silent_after_handshake();
        // Replies are due within the reply timeout: each connection times out and is replaced.
        let summary = run(short(&url, Mode::Ping), None);
        assert_eq!(summary.verdict, Verdict::Failed, "{summary:#?}");
        assert!(summary.errors.get("timeout").copied().unwrap_or(0) >= 2, "{:?}", summary.errors);
        assert!(summary.unanswered_at_drop >= 2, "{summary:#?}");
        // With a reply timeout past the end, every Ping is still in flight when the run ends.
        let mut plan = short(&url, Mode::Ping);
        plan.in_flight = 3;
        plan.reply_timeout = Duration::from_secs(10);
        let summary = run(plan, None);
        assert_eq!(summary.unanswered_at_end, 6, "{summary:#?}");
        assert_eq!(summary.verdict, Verdict::Failed);
        assert!(summary.failures[0].contains("6 Ping(s) sent, none answered"), "{:?}", summary.failures);
        // `errors==0` holds (nothing broke), yet the run is not green; and p99 has nothing to stand on.
        let errors = "errors==0".parse::<wsprobe::load::assertion::Assertion>().unwrap().check(&summary);
        assert!(errors.passed, "{errors}");
        let p99 = "p99<5ms".parse::<wsprobe::load::assertion::Assertion>().unwrap().check(&summary);
        assert!(!p99.passed && p99.to_string().contains("no uncorrected latency samples"), "{p99}");
        assert!(summary.latency_us.contains_key("connect"), "connect latency exists and is not used instead");
    }

    #[test]
    fn push_mode_says_why_a_flat_pong_gives_no_clock_offset() {
        let mut config = quiet_unlimited();
        config.tick = Duration::from_millis(50);
        config.faults = vec![Fault::MalformedPong];
        let server = server(config);
        let summary = run(short(server.url(), Mode::Push), None);
        assert_eq!(summary.verdict, Verdict::Failed, "{summary:#?}");
        assert!(!summary.latency_us.contains_key("push"));
        let failure = &summary.failures[0];
        assert!(
            failure.contains("no integer millisecond timestamp") && failure.contains("--clock-offset 0"),
            "{failure}"
        );
        assert_eq!(summary.reconnects, 0, "nothing to measure is not a reason to reconnect");
        // The explicit fallback for a server on this machine measures.
        let mut plan = short(server.url(), Mode::Push);
        plan.clock_offset = ClockOffset::Fixed(0);
        let summary = run(plan, None);
        assert!(summary.latency_us["push"].count > 10, "{summary:#?}");
        assert!(summary.notes.iter().any(|n| n.contains("fixed at 0 ms")), "{:?}", summary.notes);
    }

    #[test]
    fn connect_mode_leaves_unechoed_close_waits_out_of_the_rate() {
        let summary = run(short(&hostile::never_echoes_close(), Mode::Connect), None);
        let unechoed = summary.errors.get("close_not_echoed").copied().unwrap_or(0);
        assert!(unechoed >= 2 && unechoed + 2 >= summary.connects, "{summary:#?}");
        // Every cycle waited for an echo; the rate counts only the time spent connecting.
        let naive = summary.connects as f64 / summary.duration_s;
        assert!(summary.throughput_per_s > 5.0 * naive, "{} vs {naive}: {summary:#?}", summary.throughput_per_s);
        assert!(summary.notes.iter().any(|n| n.contains("not echoed")), "{:?}", summary.notes);
    }

    #[test]
    fn the_ai_endpoint_under_the_core_profile_gets_a_hint() {
        let url = hostile::answers_everything_with(
            r#"{"type":"connection","message":"hi","timestamp":"2025-10-10T10:30:00+00:00"}"#,
        );
        let summary = run(short(&url, Mode::Ping), None);
        let hint = summary.profile_hint.as_deref().unwrap_or_default();
        assert!(hint.contains("pass --profile ai"), "{summary:#?}");
    }

    #[test]
    fn open_loop_pacing_is_precise_well_below_the_timer_wheel() {
        let server = server(quiet_unlimited());
        let mut plan = plan(server.url(), Mode::Ping, 5, Duration::from_millis(1500));
        plan.rate = Some(1000.0);
        let summary = run(plan, None);
        let lag = summary.schedule_lag_us.expect("open loop records schedule lag");
        // tokio's timer wheel alone gives about 1 ms at the median; the pacing thread, tens of µs.
        // (Validity, which depends on the machine's load, is the benchmark's to show.)
        assert!(lag.p50 < 500, "{lag:?}");
        assert!(summary.pacer_cpu.is_some() || !cfg!(target_os = "linux"));
    }
}

mod cli {
    use std::process::Command;

    fn wsprobe(args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_wsprobe")).args(args).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }

    #[test]
    fn the_bundled_server_is_used_without_url_and_failed_assertions_exit_1() {
        let json = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load-cli.json");
        let (code, stdout, stderr) = wsprobe(&[
            "load",
            "--connections",
            "2",
            "--duration",
            "1s",
            "--ramp-up",
            "0s",
            "--json",
            json.to_str().unwrap(),
            "--assert",
            "errors==0",
            "--assert",
            "p99<1us",
        ]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains("rate limit is lifted"), "{stdout}");
        assert!(stdout.contains("assert ok     errors==0"), "{stdout}");
        assert!(stdout.contains("assert FAILED p99<1us"), "{stdout}");
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(summary["mode"], "ping");
        assert_eq!(summary["bundled_server"], true);
    }

    #[test]
    fn bad_assertions_and_bounds_are_usage_errors() {
        let (code, _, stderr) = wsprobe(&["load", "--assert", "p99 < soon"]);
        assert_eq!(code, 2);
        assert!(stderr.contains("latency like 5ms"), "{stderr}");
        let (code, _, stderr) = wsprobe(&["load", "--duration", "90m"]);
        assert_eq!(code, 2);
        assert!(stderr.contains("at most"), "{stderr}");
        let (code, _, stderr) = wsprobe(&["load", "--mode", "push", "--rate", "10"]);
        assert_eq!(code, 2);
        assert!(stderr.contains("--mode ping only"), "{stderr}");
    }

    #[test]
    fn bad_urls_are_usage_errors_naming_the_part() {
        for (url, phrase) in [
            ("ws://127.0.0.1:99999/ws", "port 99999 is out of range"),
            ("ws:///ws", "has no host"),
            ("http://127.0.0.1:8080/ws", "not a WebSocket scheme"),
        ] {
            for command in ["load", "run"] {
                let (code, _, stderr) = wsprobe(&[command, "--url", url]);
                assert_eq!(code, 2, "{command} {url}: {stderr}");
                assert!(stderr.contains(phrase), "{command} {url}: {stderr}");
            }
        }
    }

    #[test]
    fn a_server_that_refuses_every_handshake_exits_3() {
        let url = crate::hostile::tcp_reply(crate::hostile::HTTP_500);
        let (code, stdout, stderr) = wsprobe(&["load", "--url", &url, "--duration", "1s", "--assert", "errors==0"]);
        assert_eq!(code, 3, "{stdout}{stderr}");
        assert!(stdout.contains("UNREACHABLE") && stdout.contains("handshake_rejected_500"), "{stdout}");
    }

    #[test]
    fn an_unreachable_target_exits_3() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        drop(listener);
        let (code, _, stderr) = wsprobe(&["load", "--url", &url, "--duration", "1s"]);
        assert_eq!(code, 3, "{stderr}");
    }
}

#[test]
fn the_achieved_rate_counts_only_the_measured_window() {
    // The case from the field: 1,000/s over 4 s with the CLI's 1 s ramp-up read as 880/s when
    // the ramp-up and the schedule's phases were counted in the window.
    let server = server(quiet_unlimited());
    let mut plan = plan(server.url(), Mode::Ping, 10, Duration::from_secs(4));
    plan.ramp_up = Duration::from_secs(1);
    plan.rate = Some(1000.0);
    plan.in_flight = 4;
    let summary = run(plan, None);
    assert_eq!(summary.verdict, Verdict::Passed, "{summary:#?}");
    let error = (summary.throughput_per_s - 1000.0).abs() / 1000.0;
    assert!(
        error < 0.01,
        "achieved {}/s over {} s, {:.2}% off",
        summary.throughput_per_s,
        summary.measured_s,
        error * 100.0
    );
    assert!(summary.measured_s < 4.0 && summary.measured_s > 3.0, "{}", summary.measured_s);
}

#[test]
fn sends_held_by_a_full_window_are_the_server_falling_behind_not_the_generator() {
    // A Pong delayed 300 ms with one slot in flight at 20/s per connection: the window is
    // full most of the time, so sends wait on the server; that is saturation, not lag.
    let mut config = quiet_unlimited();
    config.faults = vec![Fault::SlowPong];
    config.pong_delay = Duration::from_millis(300);
    let server = server(config);
    let mut plan = plan(server.url(), Mode::Ping, 2, Duration::from_secs(2));
    plan.rate = Some(40.0);
    let summary = run(plan, None);
    assert!(summary.window_held > 0, "{summary:#?}");
    assert!(summary.valid_run, "a slow server does not make the run invalid: {:?}", summary.invalid_reasons);
    assert!(summary.notes.iter().any(|n| n.contains("in-flight slots")), "{:?}", summary.notes);
    let lag = summary.schedule_lag_us.expect("lag recorded");
    assert!(lag.p50 < 5_000, "the generator's own lag stays small: {lag:?}");
}
