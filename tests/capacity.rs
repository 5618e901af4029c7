//! `wsprobe capacity` against servers whose capacity is known: one that serves Pings from one
//! queue at exactly N a second (past N, replies wait longer and longer), one that answers
//! with malformed Pongs once Pings come faster than N a second, and a generator held to one
//! thread, which must be reported as the limit.
//!
//! Its own test binary, and its tests one at a time: a search judges whether the generator
//! kept its schedule, which only means something when nothing else loads the machine.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Held by each test for its whole run.
// The example's command line uses the rest of it.
#[allow(dead_code)]
#[path = "../examples/asyncapi-feed/feed_server.rs"]
mod feed_server;

static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The binary, off the async runtime (the servers here keep serving), bounded in time.
async fn wsprobe(args: Vec<String>) -> Output {
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe")).args(&args).output()
    });
    let out = tokio::time::timeout(Duration::from_secs(180), run).await.expect("wsprobe finishes").unwrap().unwrap();
    Output {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[derive(Clone, Copy)]
enum Limit {
    /// One queue, served at N a second.
    Queue,
    /// Immediate replies, malformed while Pings arrive faster than N a second.
    Malformed,
    /// No reply at all: nothing can be measured.
    Silent,
}

fn pong(valid: bool) -> String {
    let now = reference_server::now_ms();
    if valid {
        format!(r#"{{"type":"Pong","data":{{"timestamp":{now}}},"timestamp":{now}}}"#)
    } else {
        format!(r#"{{"type":"Pong","data":{{"timestamp":"{now}"}},"timestamp":{now}}}"#)
    }
}

/// A server whose capacity is `per_second` Pings a second, by construction.
async fn limited_server(per_second: u32, limit: Limit) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (queue, mut served) = mpsc::unbounded_channel::<mpsc::UnboundedSender<String>>();
    if let Limit::Queue = limit {
        tokio::spawn(async move {
            // Each request takes one period of the server's time, from when the server is free:
            // idle time is not saved up, so no step can spend what a slower one left unused.
            let period = Duration::from_secs_f64(1.0 / per_second as f64);
            let mut free_at = tokio::time::Instant::now();
            // Served up to 2 ms ahead of the server's time: the timer wakes in whole
            // milliseconds, and the long-run rate still cannot pass one per period.
            let slack = Duration::from_millis(2);
            while let Some(reply) = served.recv().await {
                let now = tokio::time::Instant::now();
                free_at = free_at.max(now) + period;
                if free_at > now + slack {
                    tokio::time::sleep_until(free_at - slack).await;
                }
                let _ = reply.send(pong(true));
            }
        });
    }
    // Arrival times of the last second's Pings, across connections.
    let arrivals = Arc::new(Mutex::new(VecDeque::<Instant>::new()));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (queue, arrivals) = (queue.clone(), arrivals.clone());
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                let (mut sink, mut stream) = ws.split();
                let (replies, mut outgoing) = mpsc::unbounded_channel::<String>();
                let writer = tokio::spawn(async move {
                    while let Some(text) = outgoing.recv().await {
                        if sink.send(Message::text(text)).await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else { continue };
                    if !text.contains("\"Ping\"") {
                        continue;
                    }
                    match limit {
                        Limit::Silent => {}
                        Limit::Queue => {
                            let _ = queue.send(replies.clone());
                        }
                        Limit::Malformed => {
                            let now = Instant::now();
                            let fast = {
                                let mut seen = arrivals.lock().unwrap();
                                seen.push_back(now);
                                while seen.front().is_some_and(|t| now - *t > Duration::from_secs(1)) {
                                    seen.pop_front();
                                }
                                seen.len() > per_second as usize
                            };
                            let _ = replies.send(pong(!fast));
                        }
                    }
                }
                writer.abort();
            });
        }
    });
    url
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn a_server_that_falls_behind_past_n_has_a_capacity_near_n_and_the_slo_is_named() {
    let _alone = ALONE.lock().await;
    let url = limited_server(2000, Limit::Queue).await;
    let out = wsprobe(args(&[
        "capacity",
        "--url",
        &url,
        "--start-rate",
        "500",
        "--max-rate",
        "16000",
        "--step-duration",
        "2s",
        "--resolution",
        "10%",
        "--slo",
        "p99<100ms",
        "--connections",
        "10",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = report(&out.stdout);
    let capacity = report["capacity_per_s"].as_f64().unwrap();
    assert!((1700.0..=2300.0).contains(&capacity), "capacity {capacity}, not within 15% of 2,000: {}", out.stderr);
    assert_eq!(report["bound"], "server");
    let broken: Vec<String> = report["broken"].as_array().unwrap().iter().map(|b| b["name"].to_string()).collect();
    assert!(broken.iter().any(|name| name.contains("p99<100ms")), "{broken:?}");
    assert!(out.stderr.contains("capacity") && out.stderr.contains("bound: server"), "{}", out.stderr);
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["verdict"] != "invalid"), "{steps:#?}");
    // At twice its capacity the server's queue fills every in-flight slot and the achieved
    // rate stops at N: the saturation and rate rules name it besides the SLO.
    let double = steps.iter().find(|s| s["intended_per_s"] == 4000.0).expect("the ramp ran 4,000/s");
    let names: Vec<&str> = double["broken"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"saturation") && names.contains(&"rate"), "{double:#}");
}

#[tokio::test]
async fn a_server_that_never_replies_has_no_capacity_and_nothing_is_green() {
    let _alone = ALONE.lock().await;
    let url = limited_server(0, Limit::Silent).await;
    let out = wsprobe(args(&[
        "capacity",
        "--url",
        &url,
        "--start-rate",
        "100",
        "--max-rate",
        "1000",
        "--step-duration",
        "1s",
        "--reply-timeout",
        "500ms",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let report = report(&out.stdout);
    assert!(report["capacity_per_s"].is_null(), "{report:#}");
    let step = &report["steps"][0];
    assert_eq!(step["verdict"], "broken");
    let names: Vec<&str> = step["broken"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    for rule in ["heartbeat.pong", "connections", "replies"] {
        assert!(names.contains(&rule), "{rule} not among {names:?}");
    }
    assert!(out.stderr.contains("no capacity found: the start rate already broke"), "{}", out.stderr);
}

#[tokio::test]
async fn malformed_replies_past_n_break_the_schema_rule() {
    let _alone = ALONE.lock().await;
    let url = limited_server(3000, Limit::Malformed).await;
    let out = wsprobe(args(&[
        "capacity",
        "--url",
        &url,
        "--start-rate",
        "1000",
        "--max-rate",
        "16000",
        "--step-duration",
        "2s",
        "--resolution",
        "20%",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = report(&out.stdout);
    assert_eq!(report["bound"], "server");
    let capacity = report["capacity_per_s"].as_f64().unwrap();
    assert!((2000.0..=3500.0).contains(&capacity), "capacity {capacity}: {}", out.stderr);
    let broken = &report["broken"][0];
    assert_eq!(broken["kind"], "rule");
    assert_eq!(broken["name"], "messages.schema");
    assert!(broken["detail"].as_str().unwrap().contains("invalid Pong"), "{broken}");
}

#[tokio::test]
async fn a_generator_that_runs_out_is_reported_as_the_limit() {
    let _alone = ALONE.lock().await;
    // The reference server on its own thread, the generator held to one: at this rate the
    // generator cannot keep its schedule, and the search must say so instead of blaming the server.
    let mut config = reference_server::Config::new(reference_server::Profile::Core);
    config.rate_limit = None;
    config.tick = Duration::from_secs(3600);
    let server = tokio::task::spawn_blocking(move || {
        reference_server::BackgroundServer::start(config, "127.0.0.1:0".parse().unwrap(), 1).unwrap()
    })
    .await
    .unwrap();
    let out = wsprobe(args(&[
        "capacity",
        "--url",
        server.url(),
        "--threads",
        "1",
        "--connections",
        "200",
        "--start-rate",
        "400000",
        "--max-rate",
        "800000",
        "--step-duration",
        "1s",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    let report = report(&out.stdout);
    assert_eq!(report["bound"], "generator", "{}\n{}", out.stdout, out.stderr);
    assert_eq!(report["steps"][0]["verdict"], "invalid");
    assert!(out.stderr.contains("the generator could not even drive the start rate"), "{}", out.stderr);
    assert_eq!(out.code, 1, "no capacity was found");
    drop(server);
}

/// A server that pushes a MarketData to each connection ten times a second while at most
/// `fan_out` connections are open, and twice a second once more are: its push capacity is
/// `fan_out` connections, by construction.
async fn fan_out_server(fan_out: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let open = open.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut next = tokio::time::Instant::now();
                loop {
                    let crowded = open.load(std::sync::atomic::Ordering::SeqCst) > fan_out;
                    next += Duration::from_millis(if crowded { 500 } else { 100 });
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {
                            let now = reference_server::now_ms();
                            let push = format!(
                                r#"{{"type":"MarketData","data":{{"symbol":"BTCUSDT","price":67500.5,"change_24h":2.5,"volume_24h":5.0e10,"high_24h":68000.0,"low_24h":66500.0,"bid":67500.25,"ask":67500.75,"last_update":{now}}},"timestamp":{now}}}"#
                            );
                            if ws.send(Message::text(push)).await.is_err() {
                                break;
                            }
                        }
                        message = ws.next() => match message {
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                            _ => {}
                        },
                    }
                }
                open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    url
}

#[tokio::test]
async fn push_mode_ramps_connections_until_the_cadence_collapses() {
    let _alone = ALONE.lock().await;
    let url = fan_out_server(120).await;
    let out = wsprobe(args(&[
        "capacity",
        "--url",
        &url,
        "--mode",
        "push",
        "--clock-offset",
        "0",
        "--start-connections",
        "20",
        "--max-connections",
        "640",
        "--step-duration",
        "2s",
        "--resolution",
        "5%",
        "--expect",
        "100",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = report(&out.stdout);
    assert_eq!(report["searched"], "connections");
    let capacity = report["capacity_connections"].as_u64().unwrap();
    assert!((102..=138).contains(&capacity), "capacity {capacity} connections, not within 15% of 120: {}", out.stderr);
    assert_eq!(report["bound"], "server");
    let names: Vec<&str> = report["broken"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cadence"], "{report:#}");
    let cadence = report["cadence_per_connection"].as_f64().unwrap();
    assert!((8.0..=11.0).contains(&cadence), "the first step's cadence is about 10/s: {cadence}");
    assert!(out.stderr.contains("connections") && out.stderr.contains("bound: server"), "{}", out.stderr);

    // The flags of the other mode are refused, not ignored.
    let out = wsprobe(args(&["capacity", "--url", &url, "--mode", "push", "--start-rate", "100"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--start-rate is for --mode ping"), "{}", out.stderr);
    let out = wsprobe(args(&["capacity", "--url", &url, "--start-connections", "100"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[tokio::test]
async fn push_mode_on_pushes_without_a_timestamp_says_it_measured_nothing() {
    let _alone = ALONE.lock().await;
    // In a one-second step the AI endpoint sends only its welcome, stamped in ISO 8601 (its
    // signals are minutes apart): no push latency, so no verdict on the server.
    let out = wsprobe(args(&[
        "capacity",
        "--mode",
        "push",
        "--profile",
        "ai",
        "--start-connections",
        "5",
        "--max-connections",
        "10",
        "--step-duration",
        "1s",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 1, "nothing measured is never green: {}\n{}", out.stdout, out.stderr);
    let report = report(&out.stdout);
    assert_eq!(report["capacity_per_s"], Value::Null);
    assert!(out.stderr.contains("nothing could be measured at the start"), "{}", out.stderr);
    assert!(out.stderr.contains("without an integer `timestamp`"), "{}", out.stderr);
    assert!(!out.stderr.contains("lower --start-connections"), "{}", out.stderr);
}

/// `--asyncapi` with `--operation`: the rate of a document's request/reply operation is
/// searched, its replies matched by their reqid; a feed that never answers has no capacity.
#[tokio::test]
async fn a_documents_operation_is_searched_and_one_never_answered_has_no_capacity() {
    let _alone = ALONE.lock().await;
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/asyncapi-feed/feed.yaml");
    let search = |url: String| {
        let doc = doc.to_str().unwrap().to_string();
        async move {
            wsprobe(args(&[
                "capacity",
                "--asyncapi",
                &doc,
                "--operation",
                "answerPing",
                "--url",
                &url,
                "--start-rate",
                "200",
                "--max-rate",
                "400",
                "--step-duration",
                "1s",
                "--reply-timeout",
                "500ms",
                "--json",
                "-",
                "--no-progress",
            ]))
            .await
        }
    };
    let out = search(feed_server::spawn_on_loopback(None)).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let found = report(&out.stdout);
    assert_eq!(found["capacity_per_s"], 400.0, "{found:#}");
    assert_eq!(found["bound"], "max-rate", "{found:#}");
    let out = search(feed_server::spawn_on_loopback(Some(feed_server::Fault::IgnorePing))).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let none = report(&out.stdout);
    assert!(none["capacity_per_s"].is_null(), "{none:#}");
    assert_eq!(none["steps"][0]["verdict"], "broken", "{none:#}");
}
