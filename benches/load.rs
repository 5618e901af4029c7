//! Load-generator and server benchmarks, each reported as a ratio against a baseline run
//! back to back in the same script:
//!
//! 1. Round trips/s at C=100, K=1 and K=16 against the reference server: a minimal raw
//!    tokio-tungstenite client (the baseline) versus `wsprobe load --validate all`.
//! 2. The reference server versus a minimal tokio-tungstenite echo server, both driven by the
//!    raw client (round trips/s).
//! 3. Broadcast fan-out: 1,000 connections in push mode; p99 of receive time − timestamp, and
//!    the server's CPU.
//! 4. Memory: 10,000 idle connections, peak RSS of `wsprobe load` and of the reference server,
//!    each in its own process.
//! 5. Open-loop pacing: intended vs achieved rate and schedule lag of `wsprobe load --rate R
//!    --connections 10` (a dedicated pacing thread), against a baseline client that paces each
//!    connection on tokio's timer, as the generator once did.
//!
//! 6. Fairness under abuse: a well-behaved client's MarketData push p99, alone and then, in the
//!    same run, while 200 connections flood the server past its rate limit (closed with 1008,
//!    reconnecting); with the flood generator at nice 19 and at equal priority.
//!
//! 7. TLS: round trips/s of `wsprobe load` over wss:// against plain ws:// (C=100, K=16, the
//!    same reference server build, TLS on one of two listeners), and connects/s of connect
//!    mode over each: the TLS handshake's cost.
//!
//! `cargo bench --bench load` (WSPROBE_BENCH_SECONDS sets the length of each run, default 5;
//! WSPROBE_BENCH_ONLY=memory|roundtrip|fanout|openloop|fairness|tls runs one part).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reference_server::{BackgroundServer, Config, Profile};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let seconds: u64 = std::env::var("WSPROBE_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let only = std::env::var("WSPROBE_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    let duration = Duration::from_secs(seconds);
    // The in-process server holds one descriptor per connection too.
    let _ = rlimit::increase_nofile_limit(40_000);
    println!("machine: {} cores; each run {seconds} s\n", std::thread::available_parallelism().map_or(0, |n| n.get()));
    if run("roundtrip") {
        roundtrips(duration);
    }
    if run("fanout") {
        fanout(duration);
    }
    if run("memory") {
        memory();
    }
    if run("openloop") {
        open_loop(duration);
    }
    if run("tls") {
        tls(duration);
    }
    if run("fairness") {
        for priority in [FloodPriority::Nice19, FloodPriority::Equal] {
            for threads in [1, 2] {
                fairness(duration, threads, priority);
            }
        }
    }
}

/// How the flood generator shares the machine with the server and the measuring client.
#[derive(Clone, Copy)]
enum FloodPriority {
    /// The same priority as the server: on 2 cores the generator's threads take the server's
    /// core for whole scheduler slices, so the figure includes the OS scheduler's share.
    Equal,
    /// `nice -n 19`: the server and the measuring client run whenever they are ready, so the
    /// figure is the server's own scheduling of the well-behaved client among the flood, as
    /// when the flood comes from other machines.
    Nice19,
}

/// p50, p99, max (µs) and count of a histogram, or zeros when there is none.
fn quantiles(histogram: Option<&hdrhistogram::Histogram<u64>>) -> (u64, u64, u64, u64) {
    histogram.map_or((0, 0, 0, 0), |h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max(), h.len()))
}

/// One measuring client runs through both phases, so the two figures share one clock offset:
/// alone for `duration`, then with 200 connections flooding past the rate limit for `duration`.
/// Its interval log is split at the flood's start.
fn fairness(duration: Duration, threads: usize, priority: FloodPriority) {
    // The rate limit is on (100 messages a minute); a 20 ms tick gives about 500 push samples a
    // second, so p99 is not just the maximum of a few hundred.
    let mut config = Config::new(Profile::Core);
    config.tick = Duration::from_millis(20);
    config.max_connections = None;
    let server = BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), threads)
        .expect("reference server starts");
    let phase = duration.as_secs();
    let hlog = std::env::temp_dir().join(format!("wsprobe-bench-fairness-{}.hlog", std::process::id()));
    let hlog_arg = hlog.to_string_lossy().into_owned();
    // Server and client share the host's clock, so no offset is estimated: each sample is the
    // true delay plus the 0-1 ms that the server's millisecond timestamp truncates, in both phases.
    let measuring = spawn_wsprobe(&[
        "load",
        "--url",
        server.url(),
        "--mode",
        "push",
        "--connections",
        "1",
        "--duration",
        &format!("{}s", 2 * phase + 2),
        "--ramp-up",
        "0s",
        "--threads",
        "1",
        "--clock-offset",
        "0",
        "--no-progress",
        "--hdr-log",
        &hlog_arg,
    ]);
    std::thread::sleep(Duration::from_secs(phase + 1));
    let flood_json = std::env::temp_dir().join(format!("wsprobe-bench-flood-{}.json", std::process::id()));
    let flood_json_arg = flood_json.to_string_lossy().into_owned();
    let flood_seconds = phase + 1;
    let flood_args = [
        "load",
        "--url",
        server.url(),
        "--connections",
        "200",
        "--in-flight",
        "16",
        "--duration",
        &format!("{flood_seconds}s"),
        "--ramp-up",
        "0s",
        "--no-progress",
        "--validate",
        "off",
        "--max-connect-failures",
        "100%",
        "--json",
        &flood_json_arg,
    ];
    let flood = match priority {
        FloodPriority::Equal => spawn_wsprobe(&flood_args),
        FloodPriority::Nice19 => Command::new("nice")
            .args(["-n", "19", env!("CARGO_BIN_EXE_wsprobe")])
            .args(flood_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nice starts wsprobe"),
    };
    flood.wait_with_output().expect("flood ends");
    measuring.wait_with_output().expect("measuring client ends");
    let log = wsprobe::load::interval_log::IntervalLog::parse(&std::fs::read(&hlog).unwrap_or_default())
        .expect("the measuring client's interval log reads back");
    let _ = std::fs::remove_file(&hlog);
    // The first second (connect) and the flood's first second (its 200 handshakes) are left out.
    let seconds = Duration::from_secs;
    let alone = quantiles(log.total_between("push", seconds(1), seconds(phase + 1)).as_ref());
    let flooded = quantiles(log.total_between("push", seconds(phase + 2), seconds(2 * phase + 2)).as_ref());
    let flood_summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&flood_json).unwrap_or_default()).unwrap_or_default();
    let _ = std::fs::remove_file(&flood_json);
    let closes = flood_summary["errors"]["closed_1008"].as_u64().unwrap_or(0);
    let received = flood_summary["received"].as_u64().unwrap_or(0);
    let label = match priority {
        FloodPriority::Equal => "flood at equal priority",
        FloodPriority::Nice19 => "flood at nice 19",
    };
    println!(
        "6. fairness, {label}: one well-behaved client's push latency (tick 20 ms, rate limit on, {threads} server thread(s))"
    );
    println!("   alone:        p50 {} µs, p99 {} µs, max {} µs, {} samples", alone.0, alone.1, alone.2, alone.3);
    println!(
        "   under flood:  p50 {} µs, p99 {} µs, max {} µs, {} samples",
        flooded.0, flooded.1, flooded.2, flooded.3
    );
    println!(
        "   p99 ratio {:.2} (+{} µs); flood: 200 connections, K=16, {:.0} closes/s with 1008, {:.0} messages/s received",
        flooded.1 as f64 / alone.1.max(1) as f64,
        flooded.1.saturating_sub(alone.1),
        closes as f64 / flood_seconds as f64,
        received as f64 / flood_seconds as f64
    );
    println!();
}

fn open_loop(duration: Duration) {
    let server = reference(Duration::from_secs(3600));
    println!("5. open-loop pacing, 10 connections, K=1 (reference server, 1 server thread): schedule lag = actual − intended send time");
    println!(
        "   {:<8} {:<26} {:>10} {:>9} {:>9} {:>9} {:>11} {:>8}",
        "rate/s", "pacer", "achieved/s", "lag p50", "lag p99", "lag p99.9", "pacer CPU", "verdict"
    );
    for rate in [1000.0, 5000.0, 20000.0] {
        let (achieved, lag) = timer_paced_client(server.url(), 10, rate, duration);
        println!(
            "   {:<8} {:<26} {:>10.0} {:>6} µs {:>6} µs {:>6} µs {:>11} {:>8}",
            rate,
            "baseline: tokio timer",
            achieved,
            lag.value_at_quantile(0.5),
            lag.value_at_quantile(0.99),
            lag.value_at_quantile(0.999),
            "-",
            "-"
        );
        let summary = run_wsprobe(&[
            "load",
            "--url",
            server.url(),
            "--connections",
            "10",
            "--rate",
            &rate.to_string(),
            "--duration",
            &format!("{}s", duration.as_secs()),
            "--ramp-up",
            "0s",
            "--threads",
            "2",
        ]);
        let lag = &summary["schedule_lag_us"];
        let sent = summary["sent"].as_f64().unwrap_or(0.0);
        println!(
            "   {:<8} {:<26} {:>10.0} {:>6} µs {:>6} µs {:>6} µs {:>10.0}% {:>8}",
            rate,
            "wsprobe: pacing thread",
            sent / duration.as_secs_f64(),
            lag["p50"].as_u64().unwrap_or(0),
            lag["p99"].as_u64().unwrap_or(0),
            lag["p999"].as_u64().unwrap_or(0),
            summary["pacer_cpu"].as_f64().unwrap_or(f64::NAN) * 100.0,
            summary["verdict"].as_str().unwrap_or("?")
        );
    }
    println!();
}

/// The baseline pacer: each connection sleeps on tokio's timer until its next send is due
/// (1 ms wheel), sends a Ping and awaits the Pong. Returns the achieved send rate and the lag.
fn timer_paced_client(
    url: &str,
    connections: usize,
    rate: f64,
    duration: Duration,
) -> (f64, hdrhistogram::Histogram<u64>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    runtime.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(300);
        let end = start + duration;
        let mut tasks = Vec::new();
        for i in 0..connections {
            let url = url.to_string();
            tasks.push(tokio::spawn(async move {
                let mut lag = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("baseline connects");
                let mut due = start + interval.mul_f64(i as f64 / connections as f64);
                let ping = r#"{"type":"Ping","timestamp":1697234567000}"#;
                while due < end {
                    tokio::time::sleep_until(due).await;
                    lag.saturating_record(due.elapsed().as_micros() as u64);
                    ws.send(Message::text(ping)).await.unwrap();
                    while let Some(Ok(message)) = ws.next().await {
                        if matches!(&message, Message::Text(t) if t.contains("\"Pong\"")) {
                            break;
                        }
                    }
                    due += interval;
                }
                lag
            }));
        }
        let mut total = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for task in tasks {
            total.add(task.await.unwrap()).unwrap();
        }
        (total.len() as f64 / duration.as_secs_f64(), total)
    })
}

fn reference(tick: Duration) -> BackgroundServer {
    let mut config = Config::new(Profile::Core);
    config.rate_limit = None;
    config.max_connections = None;
    config.idle_timeout = None;
    config.tick = tick;
    BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1).expect("reference server starts")
}

fn roundtrips(duration: Duration) {
    let quiet = Duration::from_secs(3600);
    let server = reference(quiet);
    let echo = EchoServer::start();
    println!("1. wsprobe load --validate all vs a raw tokio-tungstenite client (reference server, 1 server thread)");
    println!("   {:<8} {:>16} {:>16} {:>7}", "C / K", "raw client rt/s", "wsprobe rt/s", "ratio");
    let mut raw_k16 = 0.0;
    for k in [1usize, 16] {
        let raw = raw_client(server.url(), 100, k, duration);
        let probe = wsprobe_load(server.url(), 100, k, duration, &[]);
        println!("   {:<8} {:>16.0} {:>16.0} {:>7.2}", format!("100 / {k}"), raw, probe, probe / raw);
        if k == 16 {
            raw_k16 = raw;
        }
    }
    println!("\n2. reference server vs a minimal tokio-tungstenite echo server (raw client, C=100, K=16, 1 server thread each)");
    let echo_rate = raw_client(&echo.url, 100, 16, duration);
    println!(
        "   echo server: {echo_rate:.0} rt/s   reference server: {raw_k16:.0} rt/s   ratio {:.2}\n",
        raw_k16 / echo_rate
    );
}

/// wss:// against ws:// on the same server build: round trips and connects.
fn tls(duration: Duration) {
    let dir = std::env::temp_dir().join(format!("wsprobe-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, certificate.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let identity = reference_server::TlsIdentity::from_pem_files(&cert_path, &key_path).expect("identity");
    let quiet = Duration::from_secs(3600);
    let plain = reference(quiet);
    let mut config = Config::new(Profile::Core);
    config.rate_limit = None;
    config.max_connections = None;
    config.idle_timeout = None;
    config.tick = quiet;
    let secure = BackgroundServer::start(config.with_tls(identity), SocketAddr::from(([127, 0, 0, 1], 0)), 1)
        .expect("TLS reference server starts");
    let ca = cert_path.to_string_lossy().into_owned();
    println!("7. TLS: wss:// vs ws:// on the same reference server build (1 server thread each)");
    println!("   {:<28} {:>14} {:>14} {:>7}", "", "ws://", "wss://", "ratio");
    let plain_rt = wsprobe_load(plain.url(), 100, 16, duration, &[]);
    let secure_rt = wsprobe_load(secure.url(), 100, 16, duration, &["--ca-cert", &ca]);
    println!(
        "   {:<28} {:>14.0} {:>14.0} {:>7.2}",
        "round trips/s (C=100, K=16)",
        plain_rt,
        secure_rt,
        secure_rt / plain_rt
    );
    let connects = |url: &str, extra: &[&str]| {
        let mut args = vec!["load", "--url", url, "--mode", "connect", "--connections", "20", "--ramp-up", "0s"];
        let length = format!("{}ms", duration.as_millis());
        args.extend(["--duration", &length, "--threads", "2"]);
        args.extend(extra);
        run_wsprobe(&args)
    };
    let (plain_c, secure_c) = (connects(plain.url(), &[]), connects(secure.url(), &["--ca-cert", &ca]));
    let rate = |summary: &serde_json::Value| summary["throughput_per_s"].as_f64().unwrap_or(0.0);
    println!(
        "   {:<28} {:>14.0} {:>14.0} {:>7.2}",
        "connects/s (connect mode, 20)",
        rate(&plain_c),
        rate(&secure_c),
        rate(&secure_c) / rate(&plain_c)
    );
    let tls_p50 = secure_c["latency_us"]["tls_handshake"]["p50"].as_f64().unwrap_or(0.0);
    let connect_p50 = secure_c["latency_us"]["connect"]["p50"].as_f64().unwrap_or(0.0);
    println!("   wss:// connect p50 {connect_p50:.0} µs, of which the TLS handshake {tls_p50:.0} µs\n");
    let _ = std::fs::remove_dir_all(&dir);
}

fn fanout(duration: Duration) {
    let server = reference(Duration::from_millis(100));
    let before = thread_ticks("reference-serv");
    let started = Instant::now();
    let summary = run_wsprobe(&[
        "load",
        "--url",
        server.url(),
        "--mode",
        "push",
        "--connections",
        "1000",
        "--duration",
        &format!("{}s", duration.as_secs()),
        "--ramp-up",
        "1s",
        "--validate",
        "all",
    ]);
    let cpu = wsprobe::load::cpu::seconds(thread_ticks("reference-serv") - before) / started.elapsed().as_secs_f64();
    let push = &summary["latency_us"]["push"];
    println!("3. broadcast fan-out: 1,000 connections, server tick 100 ms (MarketData and ChartUpdate for 4 symbols)");
    println!(
        "   received {} messages ({:.0}/s); push latency p50 {} µs, p99 {} µs, max {} µs (1 ms timestamp resolution); server CPU {:.0}% of one core\n",
        summary["received"], summary["throughput_per_s"].as_f64().unwrap_or(0.0), push["p50"], push["p99"], push["max"], cpu * 100.0
    );
}

/// Peak RSS of each side, in its own process: the reference server (its `VmHWM`, read just
/// before it is stopped) and `wsprobe load` (`/usr/bin/time -v`), holding 10,000 idle
/// connections in push mode against a quiet server; once with no rate limit and once with a
/// large one, whose limiter must not cost memory per admitted message.
fn memory() {
    let target =
        std::path::Path::new(env!("CARGO_BIN_EXE_wsprobe")).parent().expect("the binaries' folder").to_path_buf();
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "reference-server", "--bin", "reference-server"])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the reference-server binary builds");
    println!("4. memory: 10,000 idle connections, each side in its own process (push mode, quiet server)");
    let mut servers = Vec::new();
    for rate_limit in ["0", "100000"] {
        let mut server = Command::new(target.join("reference-server"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--max-connections",
                "0",
                "--idle-timeout-ms",
                "0",
                "--rate-limit",
                rate_limit,
            ])
            .args(["--tick-ms", "3600000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("reference-server starts");
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut first)
            .expect("a first line");
        let url = first.trim().strip_prefix("listening on ").expect("listening on URL").to_string();
        let idle_kb = peak_kb(server.id());
        let output = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(env!("CARGO_BIN_EXE_wsprobe"))
            .args(["load", "--url", &url, "--mode", "push", "--clock-offset", "0", "--connections", "10000"])
            .args(["--duration", "20s", "--ramp-up", "5s", "--validate", "all", "--no-progress"])
            .output()
            .expect("/usr/bin/time and wsprobe run");
        let server_kb = peak_kb(server.id());
        let _ = server.kill();
        let _ = server.wait();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let load_kb: u64 = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&output.stdout);
        let connects = text.lines().find(|l| l.contains("connects")).unwrap_or("").trim().to_string();
        println!("   --rate-limit {rate_limit}:");
        println!(
            "     wsprobe load:     peak RSS {:.1} MB ({:.1} KB per connection, /usr/bin/time -v)",
            load_kb as f64 / 1024.0,
            load_kb as f64 / 10_000.0
        );
        println!(
            "     reference-server: peak RSS {:.1} MB ({:.1} KB per connection; {:.1} MB before any connection)",
            server_kb as f64 / 1024.0,
            server_kb as f64 / 10_000.0,
            idle_kb as f64 / 1024.0
        );
        println!("     {connects}");
        servers.push(server_kb as f64);
    }
    println!(
        "   reference-server with --rate-limit 100000 / with none: {:.2}× the peak RSS\n",
        servers[1] / servers[0].max(1.0)
    );
}

/// A live process's peak resident set (`VmHWM`), in KB.
fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The baseline: tokio-tungstenite, a Ping JSON, await the reply, nothing else.
fn raw_client(url: &str, connections: usize, in_flight: usize, duration: Duration) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let completed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (url, completed, stop) = (url.to_string(), completed.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("raw client connects");
                let ping = r#"{"type":"Ping","timestamp":1697234567000}"#;
                for _ in 0..in_flight {
                    ws.feed(Message::text(ping)).await.unwrap();
                }
                ws.flush().await.unwrap();
                let mut done = 0u64;
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message {
                        if text.contains("\"Pong\"") {
                            done += 1;
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            ws.send(Message::text(ping)).await.unwrap();
                        }
                    }
                }
                completed.fetch_add(done, Ordering::Relaxed);
            }));
        }
        // The same window wsprobe gets: the run length plus 300 ms for connections to open.
        tokio::time::sleep(duration + Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    });
    completed.load(Ordering::Relaxed) as f64 / (duration.as_secs_f64() + 0.3)
}

fn wsprobe_load(url: &str, connections: usize, in_flight: usize, duration: Duration, extra: &[&str]) -> f64 {
    let (connections, in_flight) = (connections.to_string(), in_flight.to_string());
    let length = format!("{}ms", duration.as_millis() + 300);
    let mut args = vec![
        "load",
        "--url",
        url,
        "--connections",
        &connections,
        "--in-flight",
        &in_flight,
        "--duration",
        &length,
        "--ramp-up",
        "0s",
        "--validate",
        "all",
        "--threads",
        "2",
    ];
    args.extend(extra);
    let summary = run_wsprobe(&args);
    assert_eq!(summary["schema_violations"], 0, "{summary}");
    summary["throughput_per_s"].as_f64().expect("throughput")
}

fn spawn_wsprobe(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wsprobe starts")
}

fn run_wsprobe(args: &[&str]) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!("wsprobe-bench-{}.json", std::process::id()));
    let mut all: Vec<&str> = args.to_vec();
    let json_arg = json.to_string_lossy().into_owned();
    all.extend(["--no-progress", "--json", &json_arg]);
    let output = spawn_wsprobe(&all).wait_with_output().expect("wsprobe runs");
    // Exit 1 may be an INVALID or failed run: its verdict is printed with its figures.
    assert!(matches!(output.status.code(), Some(0 | 1)), "wsprobe failed: {}", String::from_utf8_lossy(&output.stdout));
    let summary =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("summary written")).expect("summary is JSON");
    let _ = std::fs::remove_file(&json);
    summary
}

/// CPU ticks of this process's threads named like `prefix` (the kernel keeps 15 bytes of a name).
fn thread_ticks(prefix: &str) -> u64 {
    wsprobe::load::cpu::thread_ticks(prefix).unwrap_or(0)
}

/// The comparison server: answers every text frame with a fixed Pong, on one thread.
struct EchoServer {
    url: String,
    _thread: std::thread::JoinHandle<()>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let thread = std::thread::Builder::new()
            .name("echo-server".into())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                            let pong =
                                r#"{"type":"Pong","data":{"timestamp":1697234567000},"timestamp":1697234567000}"#;
                            while let Some(Ok(message)) = ws.next().await {
                                if message.is_text() && ws.send(Message::text(pong)).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                });
            })
            .unwrap();
        EchoServer { url, _thread: thread }
    }
}
