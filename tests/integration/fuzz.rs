//! Fuzzing on stable Rust with proptest (cargo-fuzz needs a nightly toolchain, which these
//! machines cannot install). Three targets, each seeded from the spec's and the schemas'
//! examples and mutated at the byte level (flips, insertions, deletions, splices of
//! structural bytes) and at the structure level (arbitrary JSON, nodes replaced):
//!
//! - the message validator and the capture reader: never panic, always terminate;
//! - the scenario-file parser: never panics, a refusal is an error with a place;
//! - the reference server's client-message handling, in process and over a live socket: any
//!   text or frame leaves the server up, and a text message never costs the connection.
//!
//! `WSPROBE_FUZZ_CASES` sets the cases per target (default 256, the CI-sized run); a longer run:
//! `WSPROBE_FUZZ_CASES=100000 cargo test --release --test integration fuzz::`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use serde_json::Value;
use wsprobe::capture::MessageReader;
use wsprobe::profile::MessageSet;
use wsprobe::schema::Catalog;
use wsprobe::session::{ConnectOptions, Event, Session};

fn config() -> ProptestConfig {
    let cases = std::env::var("WSPROBE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::embedded().expect("the schemas compile"))
}

/// Every example message the schemas carry and every ```json block of the spec.
fn message_seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds: Vec<String> = MessageSet::FOLDERS
            .iter()
            .flat_map(|set| catalog().messages(*set))
            .flat_map(|m| m.examples.iter().map(Value::to_string))
            .collect();
        if let Ok(spec) = std::fs::read_to_string(crate::spec_path()) {
            seeds.extend(
                wsprobe::schema::spec_examples::extract(&spec)
                    .into_iter()
                    .filter_map(|e| e.parsed.ok())
                    .map(|v| v.to_string()),
            );
        }
        assert!(seeds.len() > 20, "too few seeds: {}", seeds.len());
        seeds
    })
}

/// One byte-level edit.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    // Structural bytes make the interesting breakage: brackets, quotes, escapes, newlines.
    let byte = prop_oneof![
        Just(b'{'),
        Just(b'}'),
        Just(b'['),
        Just(b']'),
        Just(b'"'),
        Just(b'\\'),
        Just(b','),
        Just(b':'),
        Just(b'\n'),
        Just(0xff),
        any::<u8>()
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), byte).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let n = bytes.len();
        match *edit {
            Edit::Flip { at, bit } if n > 0 => bytes[at % n] ^= 1 << bit,
            Edit::Insert { at, byte } => bytes.insert(at % (n + 1), byte),
            Edit::Delete { at, len } if n > 0 => {
                let start = at % n;
                bytes.drain(start..(start + len).min(n));
            }
            Edit::Duplicate { at, len } if n > 0 => {
                let start = at % n;
                let piece = bytes[start..(start + len).min(n)].to_vec();
                bytes.splice(start..start, piece);
            }
            _ => {}
        }
    }
    bytes
}

/// A seed message mutated at the byte level.
fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    (any::<prop::sample::Index>(), prop::collection::vec(edit(), 0..8))
        .prop_map(|(seed, edits)| apply(seed.get(message_seeds()).clone().into_bytes(), &edits))
}

/// Arbitrary JSON, to depth 4.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-zA-Z0-9_ ]{0,12}".prop_map(Value::String),
        prop_oneof![Just("Pong"), Just("MarketData"), Just("Connected"), Just("connection"), Just("Error")]
            .prop_map(|s| Value::String(s.into())),
        boundary(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}|type|data|timestamp", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values on and beside the schemas' edges (bounds of 0 and 1, lengths of 1 and 256, enums),
/// where an off-by-one in a validator shows.
fn boundary() -> impl Strategy<Value = Value> {
    prop::sample::select(boundary_values())
}

fn boundary_values() -> Vec<Value> {
    vec![
        serde_json::json!(0),
        serde_json::json!(1),
        serde_json::json!(-1),
        serde_json::json!(0.0),
        serde_json::json!(-0.0),
        serde_json::json!(1.0),
        serde_json::json!(0.5),
        serde_json::json!(1.0000000000000002),
        serde_json::json!(-5e-324),
        serde_json::json!(5e-324),
        serde_json::json!(u64::MAX),
        serde_json::json!(i64::MIN),
        serde_json::json!(1e300),
        serde_json::json!(""),
        serde_json::json!("a"),
        serde_json::json!("x".repeat(256)),
        serde_json::json!("x".repeat(257)),
        serde_json::json!("é".repeat(256)),
        serde_json::json!("1m"),
        serde_json::json!("1d"),
        serde_json::json!("long"),
        serde_json::json!("CRITICAL"),
        serde_json::json!("BTCUSDT"),
        serde_json::json!("btcusdt"),
        serde_json::json!("2024-01-01T00:00:00Z"),
        serde_json::json!("2024-13-01T00:00:00Z"),
        serde_json::json!(["a", "a"]),
        serde_json::json!({}),
        serde_json::json!([]),
    ]
}

/// Every seed with every one of its nodes replaced by every edge value, and each member
/// removed in turn: the fast path and the full validator agree on each, exhaustively.
#[test]
fn fast_path_agrees_on_every_edge() {
    use wsprobe::schema::scan::Scanned;
    let (mut checked, mut scanned_valid, mut scanned_invalid) = (0, 0, 0);
    for seed in message_seeds() {
        let original: Value = serde_json::from_str(seed).expect("seeds are JSON");
        let mut pointers = Vec::new();
        collect_pointers(&original, String::new(), &mut pointers);
        for pointer in pointers.iter().skip(1) {
            let mut variants: Vec<Value> = boundary_values()
                .into_iter()
                .map(|edge| {
                    let mut variant = original.clone();
                    *variant.pointer_mut(pointer).expect("collected from this value") = edge;
                    variant
                })
                .collect();
            let (parent, key) = pointer.rsplit_once('/').expect("not the root");
            let mut removed = original.clone();
            if let Some(Value::Object(map)) = removed.pointer_mut(parent) {
                map.remove(key);
                variants.push(removed);
            }
            let mut added = original.clone();
            if let Some(Value::Object(map)) = added.pointer_mut(pointer) {
                map.insert("unexpected".into(), Value::from(1));
                variants.push(added);
            }
            for variant in variants {
                let text = variant.to_string();
                fast_path_agrees(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
                // The same with `type` first, as producers write it (`to_string` sorts keys).
                if let Some(Value::String(message_type)) = variant.get("type") {
                    let first = format!("{{\"type\":{:?},{}", message_type, &text[1..]);
                    fast_path_agrees(first.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
                    for set in MessageSet::FOLDERS {
                        let mut tape = wsprobe::schema::tape::Tape::default();
                        match catalog().scan(set, &first, &mut tape) {
                            Some((_, Scanned::Valid)) => scanned_valid += 1,
                            Some((_, Scanned::Rejected)) => scanned_invalid += 1,
                            _ => {}
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    // Texts that are not one JSON object, or that name two types.
    for seed in message_seeds() {
        // `to_string` writes `type` last (keys sorted); producers write it first.
        let first = seed
            .rsplit_once(",\"type\":")
            .map(|(rest, tail)| format!("{{\"type\":{},{}}}", &tail[..tail.len() - 1], &rest[1..]));
        for text in [Some(seed.clone()), first].into_iter().flatten() {
            for broken in [
                format!("{text} 1"),
                format!("{text}}}"),
                format!("{text},"),
                format!("{{\"type\":\"Pong\",{}", &text[1..]),
                format!("{{\"type\":\"MarketData\",{}", &text[1..]),
                format!("{},\"type\":\"Pong\"}}", &text[..text.len() - 1]),
                text.replacen(':', ": \u{1}", 1),
            ] {
                fast_path_agrees(broken.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    assert!(checked > 1000, "only {checked} variants");
    // The scan decides most of them itself rather than passing them on.
    assert!(scanned_valid > 100 && scanned_invalid > 1000, "scan: {scanned_valid} valid, {scanned_invalid} invalid");
}

/// A seed whose nodes are replaced by arbitrary JSON: well-formed, wrongly shaped.
fn reshaped_message() -> impl Strategy<Value = Value> {
    (any::<prop::sample::Index>(), prop::collection::vec((any::<prop::sample::Index>(), json()), 1..4)).prop_map(
        |(seed, replacements)| {
            let mut value: Value = serde_json::from_str(seed.get::<String>(message_seeds())).expect("seeds are JSON");
            for (at, replacement) in replacements {
                let mut pointers = Vec::new();
                collect_pointers(&value, String::new(), &mut pointers);
                let pointer = at.get(&pointers).clone();
                if let Some(node) = value.pointer_mut(&pointer) {
                    *node = replacement;
                }
            }
            value
        },
    )
}

fn collect_pointers(value: &Value, here: String, into: &mut Vec<String>) {
    into.push(here.clone());
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| collect_pointers(v, format!("{here}/{k}"), into)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| collect_pointers(v, format!("{here}/{i}"), into))
        }
        _ => {}
    }
}

/// `validate`'s fast path (the tape) may only ever say "valid", and only where the
/// `serde_json` path says so too: whatever the tape reads must read the same way there.
fn fast_path_agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    use jsonschema::json::Node as _;
    use wsprobe::schema::scan::Scanned;
    let Ok(text) = std::str::from_utf8(bytes) else { return Ok(()) };
    let mut tape = wsprobe::schema::tape::Tape::default();
    // The one-pass scan comes first in `validate`, on any text at all.
    let parsed = serde_json::from_str::<Value>(text).ok();
    for set in MessageSet::FOLDERS {
        let verdict = parsed.as_ref().map(|value| catalog().validate(set, value));
        match catalog().scan(set, text, &mut tape) {
            Some((message_type, Scanned::Valid)) => {
                let verdict = verdict.as_ref().ok_or_else(|| {
                    TestCaseError::fail(format!("the scan called {text:?} valid, which serde_json refuses"))
                })?;
                prop_assert!(verdict.is_valid(), "the scan called {} valid as {}: {:?}", text, set, verdict.violations);
                prop_assert_eq!(Some(message_type), verdict.message_type.as_deref());
            }
            Some((_, Scanned::Rejected)) => {
                // Rejected and valid only when a key repeats (the scan checks each `type`,
                // serde_json keeps the last), which the tape refuses.
                let repeats = wsprobe::schema::tape::Tape::default().parse(text).is_none();
                prop_assert!(
                    !verdict.as_ref().is_some_and(|v| v.is_valid()) || repeats,
                    "the scan rejected {} as {}",
                    text,
                    set
                )
            }
            Some((_, Scanned::Unsure)) | None => {}
        }
    }
    let Some(root) = tape.parse(text) else { return Ok(()) };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("the tape read {text:?}, which serde_json refuses: {e}")))?;
    prop_assert_eq!(root.to_value().into_owned(), value.clone(), "{}", text);
    for set in MessageSet::FOLDERS {
        let verdict = catalog().validate(set, &value);
        let fast = catalog().valid_type(set, root);
        prop_assert_eq!(fast.is_some(), verdict.is_valid(), "{} as {}: {:?}", text, set, verdict.violations);
        if let Some(message_type) = fast {
            prop_assert_eq!(Some(message_type), verdict.message_type.as_deref());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_the_validator_on_mutated_bytes(bytes in mutated_message()) {
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            for set in MessageSet::FOLDERS {
                let verdict = catalog().validate(set, &value);
                // A message that fails names at least one violation with a schema path.
                prop_assert!(verdict.is_valid() || verdict.violations.iter().all(|v| !v.schema_path.is_empty() || !v.message.is_empty()));
            }
        }
        fast_path_agrees(&bytes)?;
        // The capture reader on the same bytes, as JSON Lines and as an array: it ends, and
        // every message it yields has a line within the input.
        let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
        for input in [bytes.clone(), [b"[".as_slice(), &bytes, b",\n", &bytes, b"]"].concat()] {
            let mut reader = MessageReader::new(input.as_slice(), 1 << 16);
            let mut count = 0;
            while let Some(raw) = reader.next_message().expect("reading a slice cannot fail") {
                let captured = raw.parse();
                prop_assert!(captured.line >= 1 && captured.line <= 2 * lines + 1, "line {}", captured.line);
                count += 1;
                prop_assert!(count <= input.len() + 1, "more messages than bytes");
            }
        }
    }

    #[test]
    fn fuzz_the_validator_on_reshaped_messages(value in reshaped_message()) {
        fast_path_agrees(value.to_string().as_bytes())?;
        fast_path_agrees(serde_json::to_string_pretty(&value).unwrap().as_bytes())?;
        for set in MessageSet::FOLDERS {
            let verdict = catalog().validate(set, &value);
            if !verdict.is_valid() {
                prop_assert!(!verdict.violations.is_empty());
            }
        }
    }

    #[test]
    fn fuzz_the_scenario_parser(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 0..12),
    ) {
        let builtin = builtin_scenarios();
        let (name, text) = file.get(builtin);
        let mutated = String::from_utf8_lossy(&apply(text.as_bytes().to_vec(), &edits)).into_owned();
        match wsprobe::scenario::loader::parse("fuzz.yaml", name, &mutated) {
            Ok(suite) => prop_assert!(!suite.file.cases.is_empty()),
            Err(error) => prop_assert!(error.to_string().starts_with("fuzz.yaml"), "{error}"),
        }
    }

    #[test]
    fn fuzz_the_servers_client_message_parser(bytes in client_message()) {
        let _ = reference_server::parse_client_message(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_the_live_server_with_text_and_frames(text in client_message(), frame in raw_frame()) {
        let fixture = live_server();
        fixture.runtime.block_on(async {
            // A text message of any content: the server answers (an Error at worst) and the
            // connection stays up, as a Ping afterwards shows.
            let mut session = Session::connect(&ConnectOptions::new(fixture.url.clone(), Duration::from_secs(5))).await.expect("connects");
            let _ = session.send_text(&String::from_utf8_lossy(&text), Duration::from_secs(5)).await;
            session.send_text(r#"{"type":"Ping","timestamp":1}"#, Duration::from_secs(5)).await.expect("still open");
            let mut answered = false;
            for _ in 0..8 {
                match session.recv(Duration::from_secs(5)).await {
                    Event::Text(reply) if reply.contains("\"Pong\"") => { answered = true; break; }
                    Event::Text(_) => continue,
                    other => panic!("the server dropped a client over a text message {text:?}: {other:?}"),
                }
            }
            assert!(answered, "no Pong after {text:?}");
            // Raw bytes after a handshake: whatever the server does with them, it stays up.
            let stream = tokio::net::TcpStream::connect(fixture.addr).await.unwrap();
            if let Ok((ws, _)) = tokio_tungstenite::client_async(fixture.url.as_str(), stream).await {
                let mut tcp = ws.into_inner();
                let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, &frame).await;
            }
            let mut fresh = Session::connect(&ConnectOptions::new(fixture.url.clone(), Duration::from_secs(5))).await.expect("the server is still up");
            assert!(matches!(fresh.recv(Duration::from_secs(5)).await, Event::Text(_)), "welcomed");
        });
    }
}

fn builtin_scenarios() -> &'static [(String, String)] {
    static FILES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
            .collect();
        files.sort();
        files
    })
}

/// Client messages (Ping, Authenticate, the bad-input cases' texts), mutated.
fn client_message() -> impl Strategy<Value = Vec<u8>> {
    let seeds = [
        r#"{"type":"Ping","timestamp":1697234567000}"#,
        r#"{"type":"Authenticate","token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln"}"#,
        r#"{"type": "Ping", "timestamp": "#,
        r#"{"type":"Subscribe","channel":"everything"}"#,
    ];
    (0..seeds.len(), prop::collection::vec(edit(), 0..8))
        .prop_map(move |(i, edits)| apply(seeds[i].as_bytes().to_vec(), &edits))
}

/// A client frame (masked text "hi", a masked Ping), mutated, with junk after it.
fn raw_frame() -> impl Strategy<Value = Vec<u8>> {
    let seeds: [&[u8]; 2] = [b"\x81\x82\x00\x00\x00\x00hi", b"\x89\x80\x00\x00\x00\x00"];
    (0..seeds.len(), prop::collection::vec(edit(), 0..6), prop::collection::vec(any::<u8>(), 0..32))
        .prop_map(move |(i, edits, tail)| [apply(seeds[i].to_vec(), &edits), tail].concat())
}

struct LiveServer {
    runtime: tokio::runtime::Runtime,
    url: String,
    addr: std::net::SocketAddr,
    _server: Arc<reference_server::ServerHandle>,
}

/// One reference server for every case (no rate limit, no broadcasts), on its own runtime.
fn live_server() -> &'static LiveServer {
    static SERVER: OnceLock<LiveServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = runtime.block_on(async {
            let mut config = crate::support::quiet(reference_server::Profile::Core);
            config.rate_limit = None;
            crate::support::start(config).await
        });
        LiveServer { url: server.url(), addr: server.local_addr(), _server: Arc::new(server), runtime }
    })
}
