//! `wsprobe serve` end to end: the binary serves with client faults, scripted clients in this
//! process follow or break each client rule, and the JSON report must give each client exactly
//! the verdicts it deserves.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// How a scripted client reconnects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Backoff {
    /// 1, 2, 4 … 30 s (scaled), as the spec's code does.
    Spec,
    /// Straight away, every time.
    AtOnce,
}

/// A client that follows the spec's client code, with one switch per rule to break it.
#[derive(Debug, Clone)]
struct Behaviour {
    name: &'static str,
    scale: f64,
    ping: bool,
    pong_timeout: bool,
    backoff: Backoff,
    cap: Option<usize>,
    /// Start the backoff again at 1 s after a successful connection.
    reset: bool,
    answer_close: bool,
    /// Sent once after each open.
    greeting: Option<&'static str>,
    /// Messages (valid Authenticate ones, which the server ignores with auth off) sent at once
    /// after each open.
    flood: usize,
    /// Pings with an ISO 8601 string timestamp, as some browser clients send: invalid, and
    /// still heartbeats.
    string_timestamps: bool,
}

impl Behaviour {
    fn correct(name: &'static str, scale: f64) -> Behaviour {
        Behaviour {
            name,
            scale,
            ping: true,
            pong_timeout: true,
            backoff: Backoff::Spec,
            cap: Some(10),
            reset: true,
            answer_close: true,
            greeting: None,
            flood: 0,
            string_timestamps: false,
        }
    }

    fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds * self.scale)
    }
}

fn ping(string_timestamp: bool) -> Message {
    if string_timestamp {
        return Message::text(format!(
            r#"{{"type":"Ping","timestamp":"{}"}}"#,
            reference_server::iso8601(reference_server::now_ms() / 1000, 0)
        ));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    Message::text(format!(r#"{{"type":"Ping","timestamp":{now}}}"#))
}

/// The spec's `WebSocketManager`: connect, heartbeat, reconnect with backoff. Runs until aborted.
async fn scripted_client(url: String, b: Behaviour) {
    let url = format!("{url}?client={}", b.name);
    let start = b.scaled(1.0);
    let (mut attempts, mut delay) = (0usize, start);
    loop {
        if let Ok(Ok((ws, _))) =
            tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(&url)).await
        {
            attempts = 0;
            if b.reset {
                delay = start;
            }
            session(ws, &b).await;
        }
        if b.cap.is_some_and(|cap| attempts >= cap) {
            // Gave up, as the spec's client does; stay quiet until the test ends.
            std::future::pending::<()>().await;
        }
        attempts += 1;
        tokio::time::sleep(if b.backoff == Backoff::AtOnce { Duration::ZERO } else { delay }).await;
        delay = (delay * 2).min(b.scaled(30.0));
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn session(mut ws: Ws, b: &Behaviour) {
    if let Some(greeting) = b.greeting {
        let _ = ws.send(Message::text(greeting)).await;
    }
    for _ in 0..b.flood {
        let _ = ws.feed(Message::text(r#"{"type":"Authenticate","token":"e30.e30.c2ln"}"#)).await;
    }
    let _ = ws.flush().await;
    let interval = b.scaled(30.0);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    loop {
        let deadline = async {
            match pong_deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = heartbeat.tick(), if b.ping => {
                if ws.send(ping(b.string_timestamps)).await.is_err() {
                    return;
                }
                if b.pong_timeout && pong_deadline.is_none() {
                    pong_deadline = Some(tokio::time::Instant::now() + b.scaled(10.0));
                }
            }
            _ = deadline => {
                // "No pong received, connection may be dead": ws.close().
                let _ = ws.close(None).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} }).await;
                return;
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) if text.contains("\"Pong\"") => pong_deadline = None,
                Some(Ok(Message::Close(_))) if !b.answer_close => return,
                Some(Ok(Message::Close(_))) => {
                    let _ = ws.close(None).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} }).await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    }
}

struct Served {
    child: Child,
    url: String,
}

/// Starts `wsprobe serve` on a free port and reads its `listening on` line.
async fn serve(extra: &[&str]) -> Served {
    let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--format", "json"];
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wsprobe starts");
    let stdout = child.stdout.take().unwrap();
    let (line, stdout) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).map(|_| (line, reader))
    })
    .await
    .unwrap()
    .expect("a first line");
    child.stdout = Some(stdout.into_inner());
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string();
    Served { child, url }
}

/// Waits for `serve` to end on its own (`--duration`) and returns its exit code and report.
async fn report(mut served: Served, clients: Vec<tokio::task::JoinHandle<()>>) -> (i32, Value) {
    let mut stdout = served.child.stdout.take().unwrap();
    let mut stderr = served.child.stderr.take().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (String::new(), String::new());
        stdout.read_to_string(&mut out).unwrap();
        stderr.read_to_string(&mut err).unwrap();
        let status = served.child.wait().unwrap();
        (status, out, err)
    });
    let (status, out, err) = tokio::time::timeout(Duration::from_secs(60), output).await.expect("serve ends").unwrap();
    for client in clients {
        client.abort();
    }
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    (status.code().expect("exited"), report)
}

fn start_clients(url: &str, behaviours: &[Behaviour]) -> Vec<tokio::task::JoinHandle<()>> {
    behaviours.iter().map(|b| tokio::spawn(scripted_client(url.to_string(), b.clone()))).collect()
}

/// rule → status for one client.
fn verdicts(report: &Value, client: &str) -> BTreeMap<String, String> {
    let suite = format!("client {client}");
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["suite"] == suite.as_str())
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = [
        "client.heartbeat.interval",
        "client.heartbeat.timeout",
        "client.reconnect.backoff",
        "client.reconnect.cap",
        "client.reconnect.reset",
        "client.close.clean",
        "client.messages.schema",
        "client.rate_limit",
    ]
    .iter()
    .map(|id| (id.to_string(), "skipped".to_string()))
    .collect();
    for (id, status) in pairs {
        all.insert(format!("client.{id}"), status.to_string());
    }
    all
}

/// A correct client's verdicts when the server starves its heartbeat once: it times out,
/// reconnects on the first step, and everything it did was measured.
const STARVED_BUT_CORRECT: [(&str, &str); 6] = [
    ("heartbeat.interval", "passed"),
    ("heartbeat.timeout", "passed"),
    ("reconnect.backoff", "passed"),
    ("close.clean", "passed"),
    ("messages.schema", "passed"),
    ("rate_limit", "passed"),
];

fn case<'a>(report: &'a Value, client: &str, id: &str) -> &'a Value {
    let suite = format!("client {client}");
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["suite"] == suite.as_str() && c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} for {client}"))
}

/// Whether the shutdown's Close found the client connected depends on where in its drop cycle
/// the run ended; either way the client must not fail the rule.
fn close_clean_was_not_failed(report: &Value, client: &str, verdicts: &mut BTreeMap<String, String>) {
    let status = verdicts.remove("client.close.clean").unwrap();
    assert!(status == "passed" || status == "skipped", "{client}: close.clean {status}: {report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tells_a_correct_client_from_one_that_reconnects_at_once_or_never_resets() {
    let scale = 0.1;
    let served = serve(&["--fault", "drop-every=5s", "--time-scale", "0.1", "--duration", "20s"]).await;
    let clients = start_clients(
        &served.url,
        &[
            Behaviour::correct("good", scale),
            Behaviour { backoff: Backoff::AtOnce, ..Behaviour::correct("eager", scale) },
            Behaviour { reset: false, ..Behaviour::correct("no-reset", scale) },
        ],
    );
    let (code, report) = report(served, clients).await;
    assert_eq!(code, 1, "two clients break rules: {report:#}");
    assert_eq!(report["serve"]["time_scale"], 0.1);
    assert_eq!(report["serve"]["faults"], serde_json::json!(["drop-every=5s"]));
    let mut good = verdicts(&report, "good");
    close_clean_was_not_failed(&report, "good", &mut good);
    let mut want = expected(&[("reconnect.backoff", "passed"), ("reconnect.reset", "passed")]);
    want.remove("client.close.clean");
    assert_eq!(good, want, "{report:#}");

    let mut eager = verdicts(&report, "eager");
    close_clean_was_not_failed(&report, "eager", &mut eager);
    let mut want = expected(&[("reconnect.backoff", "failed"), ("reconnect.reset", "passed")]);
    want.remove("client.close.clean");
    assert_eq!(eager, want, "{report:#}");
    let backoff = case(&report, "eager", "client.reconnect.backoff");
    assert!(backoff["message"].as_str().unwrap().contains("reconnect attempt 1"), "{backoff:#}");
    assert!(backoff["message"].as_str().unwrap().contains("expected the spec's step 1: 0.100 s"), "{backoff:#}");
    let timeline = backoff["timeline"].as_array().unwrap();
    assert!(timeline[0]["event"].as_str().unwrap().starts_with("outage: the server dropped"), "{backoff:#}");
    assert!(timeline[1]["event"].as_str().unwrap().starts_with("attempt 1 after"), "{backoff:#}");

    let mut no_reset = verdicts(&report, "no-reset");
    close_clean_was_not_failed(&report, "no-reset", &mut no_reset);
    let mut want = expected(&[("reconnect.backoff", "passed"), ("reconnect.reset", "failed")]);
    want.remove("client.close.clean");
    assert_eq!(no_reset, want, "{report:#}");
    let reset = case(&report, "no-reset", "client.reconnect.reset");
    assert!(reset["message"].as_str().unwrap().contains("the backoff was not reset"), "{reset:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_rules_catch_a_client_that_never_pings_and_one_that_never_gives_up() {
    let scale = 0.05;
    let served = serve(&["--fault", "no-pong", "--time-scale", "0.05", "--duration", "3.5s"]).await;
    let clients = start_clients(
        &served.url,
        &[
            Behaviour::correct("good", scale),
            Behaviour { ping: false, ..Behaviour::correct("silent", scale) },
            Behaviour { pong_timeout: false, ..Behaviour::correct("patient", scale) },
            Behaviour { string_timestamps: true, ..Behaviour::correct("sloppy", scale) },
        ],
    );
    let (code, report) = report(served, clients).await;
    assert_eq!(code, 1, "{report:#}");
    let mut want = expected(&STARVED_BUT_CORRECT);
    assert_eq!(verdicts(&report, "good"), want, "{report:#}");

    // Invalid Pings are heartbeats too (choice 24): their replies are withheld like any
    // other's, so the heartbeat and reconnect rules are judged, and only the schema rule fails.
    let mut sloppy = expected(&STARVED_BUT_CORRECT);
    sloppy.insert("client.messages.schema".into(), "failed".into());
    assert_eq!(verdicts(&report, "sloppy"), sloppy, "{report:#}");
    let schema = case(&report, "sloppy", "client.messages.schema");
    assert!(schema["message"].as_str().unwrap().contains("Ping at /timestamp"), "{schema:#}");

    // The server closes a client that sends nothing after its idle limit (60 s, scaled), and
    // the silent client reconnects properly after that.
    want = expected(&[("heartbeat.interval", "failed"), ("reconnect.backoff", "passed"), ("close.clean", "passed")]);
    assert_eq!(verdicts(&report, "silent"), want, "{report:#}");
    let interval = case(&report, "silent", "client.heartbeat.interval");
    assert!(interval["message"].as_str().unwrap().starts_with("no Ping for"), "{interval:#}");

    want = expected(&[
        ("heartbeat.interval", "passed"),
        ("heartbeat.timeout", "failed"),
        ("close.clean", "passed"),
        ("messages.schema", "passed"),
        ("rate_limit", "passed"),
    ]);
    assert_eq!(verdicts(&report, "patient"), want, "{report:#}");
    let timeout = case(&report, "patient", "client.heartbeat.timeout");
    assert!(timeout["message"].as_str().unwrap().contains("still open"), "{timeout:#}");
    let events: Vec<&str> =
        timeout["timeline"].as_array().unwrap().iter().map(|m| m["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"Pong withheld (fault)"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_refusal_shows_the_cap_and_a_client_that_gives_up_early() {
    let scale = 0.05;
    let served =
        serve(&["--fault", "drop-every=5s", "--fault", "refuse-for=300s", "--time-scale", "0.05", "--duration", "12s"])
            .await;
    let clients = start_clients(
        &served.url,
        &[
            Behaviour::correct("good", scale),
            Behaviour { cap: None, ..Behaviour::correct("relentless", scale) },
            Behaviour { cap: Some(3), ..Behaviour::correct("quitter", scale) },
        ],
    );
    let (code, report) = report(served, clients).await;
    assert_eq!(code, 1, "{report:#}");
    let want = expected(&[("reconnect.backoff", "passed"), ("reconnect.cap", "passed")]);
    assert_eq!(verdicts(&report, "good"), want, "{report:#}");
    let want = expected(&[("reconnect.backoff", "passed"), ("reconnect.cap", "failed")]);
    assert_eq!(verdicts(&report, "relentless"), want, "{report:#}");
    let cap = case(&report, "relentless", "client.reconnect.cap");
    assert!(cap["message"].as_str().unwrap().starts_with("11 reconnect attempts"), "{cap:#}");
    let want = expected(&[("reconnect.backoff", "failed")]);
    assert_eq!(verdicts(&report, "quitter"), want, "{report:#}");
    let backoff = case(&report, "quitter", "client.reconnect.backoff");
    assert!(backoff["message"].as_str().unwrap().contains("stopped after 3 reconnect attempt(s)"), "{backoff:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_schema_and_rate_rules_each_catch_their_own_offender() {
    let scale = 0.05;
    let served = serve(&["--fault", "close-every=2s:4000", "--time-scale", "0.05", "--duration", "2s"]).await;
    let clients = start_clients(
        &served.url,
        &[
            Behaviour::correct("good", scale),
            Behaviour { answer_close: false, ..Behaviour::correct("rude", scale) },
            Behaviour { greeting: Some(r#"{"type":"Ping"}"#), ..Behaviour::correct("sloppy", scale) },
            Behaviour { flood: 120, ..Behaviour::correct("flood", scale) },
        ],
    );
    let (code, report) = report(served, clients).await;
    assert_eq!(code, 1, "{report:#}");
    let base = [("reconnect.backoff", "passed"), ("reconnect.reset", "passed")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        expected(&pairs)
    };
    assert_eq!(verdicts(&report, "good"), with(&[("close.clean", "passed")]), "{report:#}");
    assert_eq!(verdicts(&report, "rude"), with(&[("close.clean", "failed")]), "{report:#}");
    let close = case(&report, "rude", "client.close.clean");
    assert!(close["message"].as_str().unwrap().contains("without answering with a Close"), "{close:#}");
    assert_eq!(
        verdicts(&report, "sloppy"),
        with(&[("close.clean", "passed"), ("messages.schema", "failed"), ("rate_limit", "passed")]),
        "{report:#}"
    );
    let schema = case(&report, "sloppy", "client.messages.schema");
    assert!(schema["message"].as_str().unwrap().contains("timestamp"), "{schema:#}");
    assert_eq!(
        verdicts(&report, "flood"),
        with(&[("close.clean", "passed"), ("messages.schema", "passed"), ("rate_limit", "failed")]),
        "{report:#}"
    );
    // The whole burst is counted, not just the first messages past the limit.
    let rate = case(&report, "flood", "client.rate_limit");
    assert!(rate["message"].as_str().unwrap().starts_with("120 messages within 3.000 s"), "{rate:#}");
}

#[tokio::test]
async fn no_client_is_not_a_pass_and_bad_faults_are_usage_errors() {
    let served = serve(&["--duration", "200ms"]).await;
    let (code, report) = report(served, Vec::new()).await;
    assert_eq!(code, 1, "nothing measured is never green: {report:#}");
    assert_eq!(report["cases"], serde_json::json!([]));
    assert!(report["hints"][0].as_str().unwrap().starts_with("no client connected"), "{report:#}");

    let out = crate::run_cli::wsprobe(crate::run_cli::args(&["serve", "--fault", "drop-everyy=5s"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown fault; the faults are drop-every=T"), "{}", out.stderr);
    let out = crate::run_cli::wsprobe(crate::run_cli::args(&["serve", "--time-scale", "0"])).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_from_a_plan_file_is_timed_attempt_by_attempt() {
    let scale = 0.05;
    let plan = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-outage.yaml");
    // At 30 s (1.5 s scaled) every connection drops and upgrades are refused for 20 s (1 s).
    std::fs::write(&plan, "faults:\n  - fault: down-for=20s\n    at: 30s\n").unwrap();
    let served = serve(&["--faults", plan.to_str().unwrap(), "--time-scale", "0.05", "--duration", "5s"]).await;
    let clients = start_clients(
        &served.url,
        &[
            Behaviour::correct("good", scale),
            Behaviour { backoff: Backoff::AtOnce, ..Behaviour::correct("eager", scale) },
        ],
    );
    let (code, report) = report(served, clients).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["serve"]["faults"], serde_json::json!(["down-for=20s@30s"]));
    let want = expected(&[
        ("heartbeat.interval", "passed"),
        ("reconnect.backoff", "passed"),
        ("close.clean", "passed"),
        ("messages.schema", "passed"),
        ("rate_limit", "passed"),
    ]);
    assert_eq!(verdicts(&report, "good"), want, "{report:#}");
    // Ten attempts at once while the server is down, then it gives up as the cap says.
    let eager = verdicts(&report, "eager");
    assert_eq!(eager["client.reconnect.backoff"], "failed", "{report:#}");
    assert_eq!(eager["client.reconnect.cap"], "passed", "{report:#}");
    let backoff = case(&report, "eager", "client.reconnect.backoff");
    let events: Vec<&str> =
        backoff["timeline"].as_array().unwrap().iter().map(|m| m["event"].as_str().unwrap()).collect();
    assert_eq!(events[0], "outage: the server dropped the connection", "{events:?}");
    assert!(events[1].ends_with("refused with HTTP 503"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_starves_the_heartbeat_and_only_a_timing_out_client_passes() {
    let scale = 0.05;
    // 40 s (2 s scaled) after each connect the server stops sending: the Ping at 45 s goes unanswered.
    let served = serve(&["--fault", "stall-after=40s", "--time-scale", "0.05", "--duration", "4.5s"]).await;
    let clients = start_clients(
        &served.url,
        &[Behaviour::correct("good", scale), Behaviour { pong_timeout: false, ..Behaviour::correct("patient", scale) }],
    );
    let (code, report) = report(served, clients).await;
    assert_eq!(code, 1, "{report:#}");
    let want = expected(&STARVED_BUT_CORRECT);
    assert_eq!(verdicts(&report, "good"), want, "{report:#}");
    let want = expected(&[
        ("heartbeat.interval", "passed"),
        ("heartbeat.timeout", "failed"),
        ("close.clean", "passed"),
        ("messages.schema", "passed"),
        ("rate_limit", "passed"),
    ]);
    assert_eq!(verdicts(&report, "patient"), want, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_serving_and_the_report_still_comes() {
    let served = serve(&[]).await;
    let pid = served.child.id();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?client=tab", served.url)).await.unwrap();
    // The welcome proves the server saw the client before the signal.
    let welcome = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("Connected"), "{welcome:?}");
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    // Answer the shutdown's Close, as a browser does.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    let (code, report) = report(served, vec![reader]).await;
    assert_eq!(verdicts(&report, "tab"), expected(&[("close.clean", "passed")]), "{report:#}");
    assert_eq!(code, 0, "a rule was measured and passed: {report:#}");
}

#[tokio::test]
async fn exec_runs_the_client_with_the_url_and_says_how_it_ended() {
    let out = crate::run_cli::wsprobe(crate::run_cli::args(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "300ms",
        "--exec",
        "echo \"client saw $WSPROBE_URL\" >&2; exit 3",
    ]))
    .await;
    assert_eq!(out.code, 1, "no client connected: {}", out.stderr);
    let url = out.stdout.lines().next().unwrap().strip_prefix("listening on ").unwrap();
    assert!(out.stderr.contains(&format!("client saw {url}")), "{}", out.stderr);
    assert!(out.stdout.contains("had already exited (exit status: 3)"), "{}", out.stdout);
    let out = crate::run_cli::wsprobe(crate::run_cli::args(&["serve", "--exec", "true"])).await;
    assert_eq!(out.code, 2, "--exec needs --duration: {}", out.stderr);
}
