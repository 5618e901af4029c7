//! Reaching servers as they are deployed: wss:// with a test CA, certificate failures, the
//! handshake headers gateways want, CONNECT proxies, source addresses, clean closes, and the
//! standalone reference server passing the suite with no flags.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reference_server::observe::{Event, EventKind, Observer, ObserverHandle};
use reference_server::{AuthMode, Config, Profile, TlsIdentity};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::run_cli::{args, wsprobe, Output};
use crate::support::{quiet, start};

/// A test certificate authority and the certificates it issued, as PEM files in one folder.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A server certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    pub fn identity(&self) -> TlsIdentity {
        TlsIdentity::from_pem_files(&self.cert, &self.key).expect("the test certificate loads")
    }
}

impl TestPki {
    pub fn new(name: &str) -> TestPki {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "wsprobe test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let certificate = params.self_signed(&key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, certificate.pem()).unwrap();
        TestPki { dir, ca, issuer: rcgen::Issuer::new(params, key) }
    }

    /// A leaf for `names` (IP addresses become IP entries), valid now unless `expired`.
    pub fn issue(&self, file: &str, names: &[&str], expired: bool) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued { cert: self.dir.join(format!("{file}.pem")), key: self.dir.join(format!("{file}.key")) };
        std::fs::write(&issued.cert, certificate.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", out.stdout, out.stderr))
}

/// Each case's status, by id.
pub fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn certificate_failures_are_exit_3_naming_the_cause_and_insecure_warns() {
    let pki = TestPki::new("tls-failures");
    let good =
        start(quiet(Profile::Core).with_tls(pki.issue("good", &["127.0.0.1", "localhost"], false).identity())).await;
    let wrong_name =
        start(quiet(Profile::Core).with_tls(pki.issue("other", &["other.example"], false).identity())).await;
    let expired = start(quiet(Profile::Core).with_tls(pki.issue("old", &["127.0.0.1"], true).identity())).await;
    assert!(good.url().starts_with("wss://"), "{}", good.url());
    let ca = path(&pki.ca);
    let run = |url: String, extra: &[&str]| {
        let mut list = args(&["run", "--url", &url, "--filter", "handshake.upgrade", "--format", "json"]);
        list.extend(args(extra));
        wsprobe(list)
    };

    let trusted = run(good.url(), &["--ca-cert", &ca]).await;
    assert_eq!(trusted.code, 0, "{}{}", trusted.stdout, trusted.stderr);
    assert!(json(&trusted).get("tls").is_none(), "a verified run is not marked: {}", trusted.stdout);
    // The name check follows the URL's host: localhost is on the certificate too.
    let by_name = run(good.url().replace("127.0.0.1", "localhost"), &["--ca-cert", &ca]).await;
    assert_eq!(by_name.code, 0, "{}", by_name.stderr);

    for (url, extra, cause) in [
        (good.url(), vec![], "unknown issuer"),
        (wrong_name.url(), vec!["--ca-cert", &ca], "name mismatch"),
        (expired.url(), vec!["--ca-cert", &ca], "expired"),
        (good.url().replace("wss://", "ws://"), vec![], ""),
    ] {
        let out = run(url.clone(), &extra).await;
        if cause.is_empty() {
            // A plain client on a TLS port gets no HTTP answer to its upgrade: a failed case.
            assert_eq!(out.code, 1, "{url}: {}", out.stderr);
            assert!(out.stdout.contains("handshake failed"), "{}", out.stdout);
            continue;
        }
        assert_eq!(out.code, 3, "{url}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(cause), "{url}: the error names {cause:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    let plain = start(quiet(Profile::Core)).await;
    // wss:// to a plain server: it waits for an HTTP head that never comes; bounded, exit 3.
    let out = run(plain.url().replace("ws://", "wss://"), &["--timeout-scale", "0.2"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("no handshake response within"), "{}", out.stderr);

    let insecure = run(wrong_name.url(), &["--insecure"]).await;
    assert_eq!(insecure.code, 0, "{}{}", insecure.stdout, insecure.stderr);
    assert!(insecure.stderr.contains("warning: --insecure"), "{}", insecure.stderr);
    assert_eq!(json(&insecure)["tls"], "unverified");
    let junit = wsprobe(args(&[
        "run",
        "--url",
        &wrong_name.url(),
        "--filter",
        "handshake.*",
        "--insecure",
        "--format",
        "junit",
    ]))
    .await;
    assert!(junit.stdout.contains("<property name=\"tls\" value=\"unverified"), "{}", junit.stdout);

    let bad_ca = pki.dir.join("not-a-cert.pem");
    std::fs::write(&bad_ca, "hello").unwrap();
    let out = run(good.url(), &["--ca-cert", &path(&bad_ca)]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--ca-cert") && out.stderr.contains("no certificate"), "{}", out.stderr);
}

#[tokio::test]
async fn connect_mode_over_wss_reports_the_tls_handshake_as_its_own_row() {
    let pki = TestPki::new("tls-connect");
    let mut config = quiet(Profile::Core).with_tls(pki.issue("good", &["127.0.0.1"], false).identity());
    config.rate_limit = None;
    let server = start(config).await;
    let out = wsprobe(args(&[
        "load",
        "--url",
        &server.url(),
        "--ca-cert",
        &path(&pki.ca),
        "--mode",
        "connect",
        "--connections",
        "4",
        "--duration",
        "1s",
        "--ramp-up",
        "0s",
        "--json",
        "-",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let summary = json(&out);
    let (connect, tls) = (&summary["latency_us"]["connect"], &summary["latency_us"]["tls_handshake"]);
    assert!(tls["count"].as_u64().unwrap() > 0, "{summary:#}");
    assert_eq!(tls["count"], connect["count"], "one TLS handshake per connect");
    assert!(tls["p50"].as_f64().unwrap() <= connect["p50"].as_f64().unwrap());
    assert!(out.stderr.contains("tls_handshake"), "the human summary has the row: {}", out.stderr);
}

/// Upgrade requests' headers, as a server sees them; subprotocols are chosen only when `choose`.
async fn recording_server(choose: bool) -> (String, Arc<Mutex<Vec<HashMap<String, String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
                // The error type is tungstenite's; its size is not ours to choose.
                #[allow(clippy::result_large_err)]
                let callback = |request: &Request, mut response: Response| {
                    let headers: HashMap<String, String> = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    let offered = headers.get("sec-websocket-protocol").cloned();
                    record.lock().unwrap().push(headers);
                    if let (true, Some(offered)) = (choose, offered) {
                        let first = offered.split(',').next().unwrap().trim().to_string();
                        response.headers_mut().insert("sec-websocket-protocol", first.parse().unwrap());
                    }
                    Ok(response)
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn headers_origin_subprotocols_and_user_agent_reach_the_server() {
    let (url, seen) = recording_server(true).await;
    let out = wsprobe(args(&[
        "run",
        "--url",
        &url,
        "--filter",
        "handshake.upgrade",
        "--header",
        "X-Api-Key: k123",
        "--header",
        "Cookie: session=abc",
        "--origin",
        "https://app.example.com",
        "--subprotocol",
        "botcore.v1",
        "--subprotocol",
        "botcore.v2",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let requests = seen.lock().unwrap().clone();
    assert!(requests.len() >= 2, "the preflight and the case: {requests:?}");
    for headers in &requests {
        assert_eq!(headers["x-api-key"], "k123");
        assert_eq!(headers["cookie"], "session=abc");
        assert_eq!(headers["origin"], "https://app.example.com");
        assert_eq!(headers["sec-websocket-protocol"], "botcore.v1, botcore.v2");
        assert_eq!(headers["user-agent"], format!("wsprobe/{}", env!("CARGO_PKG_VERSION")));
    }

    // WSPROBE_HEADERS, one per line; a User-Agent given there replaces the default.
    let (url, seen) = recording_server(false).await;
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wsprobe"))
            .args(["run", "--url", &url, "--filter", "handshake.upgrade"])
            .env("WSPROBE_HEADERS", "X-Gateway-Key: g1\nUser-Agent: ci-probe/7")
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let headers = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["x-gateway-key"], "g1");
    assert_eq!(headers["user-agent"], "ci-probe/7");

    // A server that chooses none of the offered subprotocols: the case says so, exit 1.
    let (url, _) = recording_server(false).await;
    let out =
        wsprobe(args(&["run", "--url", &url, "--filter", "handshake.upgrade", "--subprotocol", "botcore.v1"])).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("chose none of the offered subprotocols (botcore.v1)"), "{}", out.stdout);

    let out = wsprobe(args(&["run", "--header", "Sec-WebSocket-Key: x", "--filter", "handshake.upgrade"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("set by wsprobe itself"), "{}", out.stderr);
}

/// An HTTP CONNECT proxy: records each request line; answers `refuse` (a status) instead of
/// tunnelling when set.
async fn connect_proxy(refuse: Option<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read_u8().await {
                        Ok(byte) => head.push(byte),
                        Err(_) => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                record.lock().unwrap().push(line.clone());
                if let Some(status) = refuse {
                    let answer = format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n");
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let Ok(mut upstream) = TcpStream::connect(target).await else { return };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (url, seen)
}

/// wsprobe with exactly these proxy variables (the test's own environment is left out).
async fn wsprobe_with_env(list: Vec<String>, vars: Vec<(&'static str, String)>) -> Output {
    let run = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsprobe"));
        command.args(&list);
        for name in
            ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"]
        {
            command.env_remove(name);
        }
        command.envs(vars).output().unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.unwrap().unwrap();
    Output {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test]
async fn connect_proxies_from_the_environment_and_the_flag_are_used() {
    let pki = TestPki::new("tls-proxy");
    let secure = start(quiet(Profile::Core).with_tls(pki.issue("good", &["127.0.0.1"], false).identity())).await;
    let plain = start(quiet(Profile::Core)).await;
    let filter = "handshake.upgrade,heartbeat.pong";
    let ca = path(&pki.ca);

    // wss:// through HTTPS_PROXY: TLS end to end through the tunnel.
    let (proxy, seen) = connect_proxy(None).await;
    let list = args(&["run", "--url", &secure.url(), "--filter", filter, "--ca-cert", &ca]);
    let out = wsprobe_with_env(list, vec![("HTTPS_PROXY", proxy.clone())]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(&format!("through proxy {proxy} (from HTTPS_PROXY)")), "{}", out.stderr);
    let authority = secure.url().trim_start_matches("wss://").trim_end_matches("/ws").to_string();
    let lines = seen.lock().unwrap().clone();
    assert!(lines.len() >= 3 && lines.iter().all(|l| *l == format!("CONNECT {authority} HTTP/1.1")), "{lines:?}");

    // NO_PROXY takes the host out again.
    let (proxy, seen) = connect_proxy(None).await;
    let list = args(&["run", "--url", &secure.url(), "--filter", filter, "--ca-cert", &ca]);
    let out = wsprobe_with_env(list, vec![("HTTPS_PROXY", proxy), ("NO_PROXY", "localhost,127.0.0.0/8".into())]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(seen.lock().unwrap().is_empty());

    // ws:// through --proxy, which wins over the environment.
    let (proxy, seen) = connect_proxy(None).await;
    let (unused, unused_seen) = connect_proxy(None).await;
    let list = args(&["run", "--url", &plain.url(), "--filter", filter, "--proxy", &proxy]);
    let out = wsprobe_with_env(list, vec![("ALL_PROXY", unused)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(seen.lock().unwrap().len() >= 3);
    assert!(unused_seen.lock().unwrap().is_empty());

    // A refusal is exit 3 and names the proxy.
    for status in [407, 403, 502] {
        let (proxy, _) = connect_proxy(Some(status)).await;
        let list = args(&["run", "--url", &plain.url(), "--filter", filter, "--proxy", &proxy]);
        let out = wsprobe_with_env(list, vec![]).await;
        assert_eq!(out.code, 3, "{status}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("proxy {proxy} (--proxy) refused CONNECT")), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("HTTP {status}")), "{}", out.stderr);
    }
}

/// Every event the server saw, in order.
#[derive(Default)]
struct Log(Mutex<Vec<Event>>);

impl Observer for Log {
    fn observe(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

fn observed(config: Config) -> (Config, Arc<Log>) {
    let log = Arc::new(Log::default());
    let mut config = config;
    config.observer = Some(ObserverHandle(log.clone()));
    (config, log)
}

#[tokio::test]
async fn source_ip_spreads_connections_over_the_given_addresses() {
    let (mut config, log) = observed(quiet(Profile::Core));
    config.rate_limit = None;
    let server = start(config).await;
    let out = wsprobe(args(&[
        "load",
        "--url",
        &server.url(),
        "--connections",
        "9",
        "--duration",
        "1s",
        "--ramp-up",
        "0s",
        "--source-ip",
        "127.0.0.2,127.0.0.3,127.0.0.4",
        "--no-progress",
    ]))
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let peers: BTreeSet<String> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Attempt { peer, .. } => Some(peer.ip().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(peers, BTreeSet::from(["127.0.0.2".into(), "127.0.0.3".into(), "127.0.0.4".into()]));

    let out = wsprobe(args(&["load", "--url", &server.url(), "--source-ip", "127.0.0.2/40"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("prefix length"), "{}", out.stderr);
}

#[tokio::test]
async fn every_connection_of_a_run_ends_with_a_close_handshake() {
    let (config, log) = observed(crate::support::with_auth(quiet(Profile::Core), AuthMode::Optional));
    let server = start(config).await;
    let out = wsprobe(args(&["run", "--url", &server.url(), "--jwt-secret", crate::support::SECRET])).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Per connection: did it open, who closed first and with what.
    let mut connections: BTreeMap<u64, (bool, Option<Option<u16>>, bool)> = BTreeMap::new();
    for event in log.0.lock().unwrap().iter() {
        let entry = connections.entry(event.attempt).or_default();
        match event.kind {
            EventKind::Opened => entry.0 = true,
            EventKind::ClientClosed { code } if entry.1.is_none() && !entry.2 => entry.1 = Some(code),
            EventKind::ServerClosed { .. } if entry.1.is_none() => entry.2 = true,
            _ => {}
        }
    }
    let opened: Vec<_> = connections.values().filter(|c| c.0).collect();
    assert!(opened.len() >= 25, "{}", opened.len());
    let by_client: Vec<_> = opened.iter().filter_map(|c| c.1).collect();
    let server_first = opened.iter().filter(|c| c.2).count();
    let dropped = opened.iter().filter(|c| c.1.is_none() && !c.2).count();
    assert!(by_client.iter().all(|code| *code == Some(1000)), "the client's Close is 1000: {by_client:?}");
    // reconnect.after_drop drops one connection on purpose; no other goes without a Close.
    assert_eq!(dropped, 1, "{} by the client, {server_first} by the server, {dropped} dropped", by_client.len());
}

/// The standalone binary. `cargo test --workspace` builds it; a narrower `cargo test` may not
/// have, or may have left an older one, so it is built here when missing or older than its
/// sources (building it every time would rebuild shared crates with other features).
fn reference_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("reference-server");
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-server");
    let newest_source = ["src", "src/simulation"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten())
        .chain(std::fs::read_dir(&root).into_iter().flatten().flatten())
        .filter_map(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .max();
    if built.is_none() || built < newest_source {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "reference-server", "--bin", "reference-server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p reference-server failed");
    }
    binary
}

#[tokio::test]
async fn the_standalone_reference_server_passes_the_whole_suite_with_no_flags() {
    let binary = reference_server_binary();
    let mut child = Command::new(&binary)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reference-server starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (url, notice) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = lines.next().unwrap().unwrap().strip_prefix("listening on ").unwrap().to_string();
        let mut errors = std::io::BufReader::new(stderr).lines();
        let notice = errors.next().unwrap().unwrap();
        // Both pipes stay drained while it serves: a closed one would fail its logging.
        std::thread::spawn(move || lines.for_each(drop));
        std::thread::spawn(move || errors.for_each(drop));
        (url, notice)
    })
    .await
    .unwrap();
    assert!(notice.contains("random secret"), "it says how tokens are checked: {notice}");
    let out = wsprobe(args(&["run", "--url", &url, "--format", "json"])).await;
    let _ = child.kill();
    let _ = child.wait();
    let report = json(&out);
    let failed: Vec<String> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "passed" && c["status"] != "skipped")
        .map(|c| format!("{} {}: {}", c["id"], c["status"], c["message"]))
        .collect();
    assert_eq!(out.code, 0, "{failed:#?}\n{}", out.stderr);
    assert_eq!(report["summary"]["failed"], 0);
    let statuses = statuses(&report);
    assert_eq!(statuses["auth.forged_rejected.first_message"], "passed");
}

#[tokio::test]
async fn serve_listens_on_wss_for_tls_clients() {
    let pki = TestPki::new("tls-serve");
    let issued = pki.issue("serve", &["127.0.0.1"], false);
    // The client under test is wsprobe itself, over wss:// with the test CA.
    let client = format!(
        "{} run --url \"$WSPROBE_URL\" --ca-cert {} --filter heartbeat.pong --no-progress",
        env!("CARGO_BIN_EXE_wsprobe"),
        pki.ca.display()
    );
    let out = wsprobe(args(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        &path(&issued.cert),
        "--tls-key",
        &path(&issued.key),
        "--duration",
        "3s",
        "--exec",
        &client,
        "--format",
        "json",
    ]))
    .await;
    assert!(out.stdout.starts_with("listening on wss://127.0.0.1:"), "{}{}", out.stdout, out.stderr);
    let report = json(&Output {
        code: out.code,
        stdout: out.stdout.lines().skip(1).collect::<Vec<_>>().join("\n"),
        stderr: out.stderr.clone(),
    });
    assert_eq!(report["serve"]["clients"], 1, "{report:#}");
    assert!(report["target"].as_str().unwrap().starts_with("wss://"));
}
