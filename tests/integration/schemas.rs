//! The schemas accept every spec example and reject every kind of defect at the right path.

use serde_json::{json, Value};
use wsprobe::schema::check::{check_schema_examples, check_spec};
use wsprobe::schema::{Catalog, MessageSet};

fn catalog() -> Catalog {
    Catalog::embedded().expect("embedded schemas compile")
}

fn example(set: MessageSet, message_type: &str) -> Value {
    catalog().message(set, message_type).unwrap_or_else(|| panic!("{set}/{message_type}")).examples[0].clone()
}

/// Asserts that `message` is rejected in `set` with a violation at exactly `path`.
fn assert_rejected_at(catalog: &Catalog, set: MessageSet, message: &Value, path: &str, why: &str) {
    let verdict = catalog.validate(set, message);
    assert!(
        verdict.violations.iter().any(|v| v.instance_path == path),
        "{why}: expected a violation at {path:?} in {set}, got {:#?}\nmessage: {message}",
        verdict.violations
    );
}

#[test]
fn every_schema_example_is_valid_and_envelopes_agree() {
    let checks = check_schema_examples(&catalog());
    assert!(checks.len() >= 15, "{checks:?}");
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn every_example_in_the_spec_validates_under_its_profile() {
    let path = crate::spec_path();
    let markdown =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("the spec must be at {}: {e}", path.display()));
    let checks = check_spec(&catalog(), "API-WEBSOCKET.md", &markdown);
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let types: Vec<&str> = checks.iter().filter_map(|c| c.message_type.as_deref()).collect();
    for expected in ["connection", "Connected", "MarketData", "Pong", "Ping", "Error", "AISignalReceived"] {
        assert!(types.contains(&expected), "spec example for {expected} not found in {types:?}");
    }
}

#[test]
fn the_spec_check_catches_a_spec_example_that_breaks_a_schema() {
    let md = "```json\n{\"type\": \"Pong\", \"data\": {\"timestamp\": \"soon\"}, \"timestamp\": 1}\n```\n```json\n{\"type\": \"Hello\"}\n```\n";
    let checks = check_spec(&catalog(), "s.md", md);
    assert_eq!(checks.len(), 2);
    assert!(checks[0].problems.iter().any(|p| p.contains("/data/timestamp")), "{:?}", checks[0]);
    // Pong is defined for both endpoints and must fail under both.
    assert_eq!(checks[0].sets, vec![MessageSet::Core, MessageSet::Ai]);
    assert!(checks[1].problems[0].contains("no schema defines"), "{:?}", checks[1]);
}

/// Objects whose members are free-form: removing a member is fine.
const OPEN_OBJECTS: [&str; 2] = ["/data/details", "/data/strategy_scores"];

fn walk(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let child_path = format!("{path}/{key}");
            out.push((child_path.clone(), child.clone()));
            walk(child, child_path, out);
        }
    }
}

fn wrong_type_for(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(42),
        Value::Number(_) => json!("42"),
        Value::Bool(_) => json!("true"),
        Value::Object(_) => json!([]),
        Value::Array(_) => json!({}),
        Value::Null => json!(0),
    }
}

fn without(message: &Value, path: &str) -> Value {
    let mut copy = message.clone();
    let (parent, key) = path.rsplit_once('/').expect("a member path");
    let parent = if parent.is_empty() { &mut copy } else { copy.pointer_mut(parent).expect("parent exists") };
    parent.as_object_mut().expect("parent is an object").remove(key);
    copy
}

fn replaced(message: &Value, path: &str, value: Value) -> Value {
    let mut copy = message.clone();
    *copy.pointer_mut(path).expect("path exists") = value;
    copy
}

#[test]
fn every_required_field_and_every_type_is_enforced_in_every_schema() {
    let catalog = catalog();
    let mut cases = 0;
    for set in MessageSet::FOLDERS {
        for schema in catalog.messages(set) {
            let message = schema.examples[0].clone();
            let mut fields = Vec::new();
            walk(&message, String::new(), &mut fields);
            for (path, value) in fields {
                let (parent, _) = path.rsplit_once('/').unwrap();
                if !OPEN_OBJECTS.contains(&parent) && !OPEN_OBJECTS.iter().any(|o| parent.starts_with(&format!("{o}/")))
                {
                    let why = format!("{} without {path}", schema.file);
                    assert_rejected_at(&catalog, set, &without(&message, &path), parent, &why);
                    cases += 1;
                }
                if !parent.starts_with("/data/details") {
                    let why = format!("{} with a wrong type at {path}", schema.file);
                    // `type` selects the schema, so a wrong `type` is reported at /type as well.
                    assert_rejected_at(&catalog, set, &replaced(&message, &path, wrong_type_for(&value)), &path, &why);
                    cases += 1;
                }
            }
            // Closed objects: an unexpected member is a violation.
            let extra = replaced(&message, "", {
                let mut m = message.clone();
                m.as_object_mut().unwrap().insert("unexpected".into(), json!(1));
                m
            });
            assert_rejected_at(&catalog, set, &extra, "", &format!("{} with an extra member", schema.file));
        }
    }
    assert!(cases > 200, "only {cases} mutations were checked");
}

#[test]
fn every_enum_rejects_values_outside_it() {
    let catalog = catalog();
    let core = MessageSet::Core;
    let cases: &[(MessageSet, &str, &str, Value)] = &[
        (core, "PositionUpdate", "/data/action", json!("OPEN")),
        (core, "PositionUpdate", "/data/position/side", json!("long")),
        (core, "TradeExecuted", "/data/status", json!("DONE")),
        (core, "TradeExecuted", "/data/side", json!("buy")),
        (core, "AISignalReceived", "/data/signal", json!("LONG")),
        (MessageSet::Ai, "AISignalReceived", "/data/signal", json!("hold")),
        (core, "AISignalReceived", "/data/timeframe", json!("2h")),
        (core, "ChartUpdate", "/data/timeframe", json!("1w")),
        (core, "BotStatusUpdate", "/data/status", json!("STARTING")),
        (core, "BotStatusUpdate", "/data/mode", json!("BACKTEST")),
        (core, "Error", "/data/severity", json!("FATAL")),
        (core, "Error", "/data/code", json!("SOMETHING_ELSE")),
        (MessageSet::Ai, "Error", "/data/severity", json!("warning")),
    ];
    for (set, message_type, path, bad) in cases {
        let message = replaced(&example(*set, message_type), path, bad.clone());
        assert_rejected_at(&catalog, *set, &message, path, &format!("{set}/{message_type} {path}={bad}"));
    }
    // Every enum value the spec lists is accepted.
    let accepted: &[(&str, &str, &[&str])] = &[
        ("PositionUpdate", "/data/action", &["OPENED", "UPDATED", "CLOSED"]),
        ("TradeExecuted", "/data/status", &["FILLED", "PARTIALLY_FILLED", "CANCELED", "REJECTED"]),
        ("AISignalReceived", "/data/signal", &["long", "short", "neutral"]),
        ("ChartUpdate", "/data/timeframe", &["1m", "5m", "15m", "1h", "4h", "1d"]),
        ("BotStatusUpdate", "/data/status", &["RUNNING", "PAUSED", "STOPPED", "ERROR"]),
        ("BotStatusUpdate", "/data/mode", &["PAPER_TRADING", "LIVE_TRADING"]),
        ("Error", "/data/severity", &["INFO", "WARNING", "ERROR", "CRITICAL"]),
        (
            "Error",
            "/data/code",
            &[
                "TRADE_EXECUTION_FAILED",
                "INSUFFICIENT_BALANCE",
                "INVALID_POSITION",
                "MARKET_DATA_ERROR",
                "AI_SERVICE_ERROR",
                "WEBSOCKET_ERROR",
            ],
        ),
    ];
    for (message_type, path, values) in accepted {
        for value in *values {
            let message = replaced(&example(core, message_type), path, json!(value));
            let verdict = catalog.validate(core, &message);
            assert!(verdict.is_valid(), "{message_type} {path}={value}: {:?}", verdict.violations);
        }
    }
}

#[test]
fn every_range_is_enforced() {
    let catalog = catalog();
    let core = MessageSet::Core;
    let rejected: &[(&str, &str, Value)] = &[
        ("AISignalReceived", "/data/confidence", json!(1.01)),
        ("AISignalReceived", "/data/confidence", json!(-0.01)),
        ("AISignalReceived", "/data/market_analysis/trend_strength", json!(1.5)),
        ("AISignalReceived", "/data/strategy_scores/RSI Strategy", json!(2)),
        ("ChartUpdate", "/data/indicators/rsi", json!(100.5)),
        ("MarketData", "/data/price", json!(0)),
        ("MarketData", "/data/volume_24h", json!(-1)),
        ("MarketData", "/timestamp", json!(-5)),
        ("MarketData", "/timestamp", json!(1697234567000.5)),
        ("PositionUpdate", "/data/position/leverage", json!(0)),
        ("PositionUpdate", "/data/position/leverage", json!(2.5)),
        ("PositionUpdate", "/data/position/quantity", json!(0)),
        ("BotStatusUpdate", "/data/uptime_seconds", json!(-1)),
        ("MarketData", "/data/symbol", json!("btc-usdt")),
    ];
    for (message_type, path, bad) in rejected {
        let message = replaced(&example(core, message_type), path, bad.clone());
        assert_rejected_at(&catalog, core, &message, path, &format!("{message_type} {path}={bad}"));
    }
    for confidence in [0.0, 0.5, 1.0] {
        let message = replaced(&example(core, "AISignalReceived"), "/data/confidence", json!(confidence));
        assert!(catalog.validate(core, &message).is_valid(), "confidence {confidence} is in range");
    }
}

#[test]
fn timestamps_follow_the_profile() {
    let catalog = catalog();
    let welcome = example(MessageSet::Ai, "connection");
    for bad in [json!(1697234567000u64), json!("2025-10-10 10:30:00"), json!("2025-10-10T10:30:00"), json!("yesterday")]
    {
        assert_rejected_at(
            &catalog,
            MessageSet::Ai,
            &replaced(&welcome, "/timestamp", bad.clone()),
            "/timestamp",
            "ISO welcome",
        );
    }
    for good in ["2025-10-10T10:30:00Z", "2025-10-10T10:30:00.123+02:00", "2025-10-10T10:30:00.000000+00:00"] {
        assert!(catalog.validate(MessageSet::Ai, &replaced(&welcome, "/timestamp", json!(good))).is_valid(), "{good}");
    }
    let pong = example(MessageSet::Core, "Pong");
    let iso = replaced(&pong, "/timestamp", json!("2025-10-10T10:30:00Z"));
    assert_rejected_at(&catalog, MessageSet::Core, &iso, "/timestamp", "core timestamps are integer ms");
    assert_rejected_at(&catalog, MessageSet::Ai, &iso, "/timestamp", "AI Pong timestamps are integer ms");
}

#[test]
fn unknown_missing_and_non_object_messages_are_violations_not_crashes() {
    let catalog = catalog();
    for set in MessageSet::FOLDERS {
        for (message, path, needle) in [
            (json!({"type": "Bogus", "data": {}}), "/type", "unknown message type \"Bogus\""),
            (json!({"data": {}}), "", "missing required property \"type\""),
            (json!({"type": 7}), "/type", "must be a string"),
            (json!({"type": null}), "/type", "must be a string"),
            (json!([]), "", "expected a JSON object, found an array"),
            (json!("Pong"), "", "found a string"),
            (json!(12), "", "found a number"),
            (json!(null), "", "found null"),
        ] {
            let verdict = catalog.validate(set, &message);
            assert_eq!(verdict.violations.len(), 1, "{set} {message}: {:?}", verdict.violations);
            let violation = &verdict.violations[0];
            assert_eq!(violation.instance_path, path, "{set} {message}");
            assert!(violation.message.contains(needle), "{set} {message}: {}", violation.message);
            assert!(violation.schema_path.starts_with(&format!("{}/envelope.json#", set.dir())), "{violation:?}");
        }
    }
    // A message valid on one endpoint is an unknown type on the other.
    assert_rejected_at(
        &catalog,
        MessageSet::Core,
        &example(MessageSet::Ai, "connection"),
        "/type",
        "connection on core",
    );
    assert_rejected_at(&catalog, MessageSet::Ai, &example(MessageSet::Core, "MarketData"), "/type", "MarketData on ai");
    assert_rejected_at(
        &catalog,
        MessageSet::Core,
        &example(MessageSet::Client, "Ping"),
        "/type",
        "Ping is a client message",
    );
}

#[test]
fn the_asyncapi_document_references_every_message_schema_and_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let text = std::fs::read_to_string(root.join("asyncapi.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).expect("asyncapi.yaml is YAML");
    assert_eq!(doc["asyncapi"], "3.0.0");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    let catalog = catalog();
    let mut files = std::collections::BTreeSet::new();
    for reference in &refs {
        if let Some(pointer) = reference.strip_prefix('#') {
            assert!(doc.pointer(pointer).is_some(), "{reference} does not resolve inside asyncapi.yaml");
        } else {
            let file = reference.trim_start_matches("./");
            assert!(catalog.documents().contains_key(file), "{reference} names no schema file");
            files.insert(file.to_string());
        }
    }
    for set in MessageSet::FOLDERS {
        for schema in catalog.messages(set) {
            assert!(files.contains(&schema.file), "asyncapi.yaml does not reference {}", schema.file);
        }
    }
    // Code generators type a plain `payload: {$ref}`; a schemaFormat wrapper makes them emit `any`.
    for (name, message) in doc["components"]["messages"].as_object().expect("components.messages") {
        let payload = message["payload"].as_object().unwrap_or_else(|| panic!("{name} has no payload"));
        assert_eq!(payload.keys().collect::<Vec<_>>(), ["$ref"], "{name}: the payload must be a plain $ref");
    }
    for endpoint in ["core", "ai"] {
        assert_eq!(doc["operations"][format!("{endpoint}SendsServerMessages")]["action"], "send");
        assert_eq!(doc["operations"][format!("{endpoint}AnswersPing")]["action"], "receive");
        assert_eq!(
            doc["operations"][format!("{endpoint}AnswersPing")]["reply"]["messages"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(doc["operations"][format!("{endpoint}ReceivesAuthenticate")]["action"], "receive");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_builtin_scenario_file_satisfies_the_scenario_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schemas/scenario.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the scenario schema compiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} scenario files found");
    // The schema catches what the loader catches.
    let typo: Value = serde_norway::from_str(
        "cases:\n  - id: a.b\n    level: must\n    description: d\n    steps:\n      - expct: {type: Pong, timeout: 1s}\n",
    )
    .unwrap();
    assert!(!validator.is_valid(&typo));
    let two_actions: Value = serde_norway::from_str(
        "cases:\n  - id: a.b\n    level: must\n    description: d\n    steps:\n      - {connect: null, drop: null}\n",
    )
    .unwrap();
    assert!(!validator.is_valid(&two_actions));
}

#[test]
fn fault_plans_satisfy_the_fault_plan_schema_and_the_parser_alike() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schemas/faults.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the fault plan schema compiles");
    let example = root.join("examples/faults/server-restart.yaml");
    let text = std::fs::read_to_string(&example).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let plan = wsprobe::clients::faults::from_plan_file(&example).expect("the parser takes the example");
    assert_eq!(plan.len(), 3);
    // What the parser refuses, the schema refuses too.
    for bad in [
        "faults: []",
        "faults:\n  - {fault: drop-evry=5s}",
        "faults:\n  - {fault: no-pong, when: 3s}",
        "faults:\n  - {fault: close-every=5s:abc}",
        "faults:\n  - {fault: stall-after=soon}",
    ] {
        let doc: Value = serde_norway::from_str(bad).unwrap();
        assert!(!validator.is_valid(&doc), "the schema takes {bad:?}");
        assert!(wsprobe::clients::faults::from_plan_text("p.yaml", bad).is_err(), "the parser takes {bad:?}");
    }
}

#[test]
fn every_schema_file_names_itself_with_an_id_that_resolves_its_relative_refs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut checked = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let relative = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
                assert_eq!(doc["$id"], format!("https://wsprobe.invalid/schemas/{relative}"), "{relative}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} schema files");
}

#[test]
fn the_readme_shows_the_reference_server_example_that_its_doc_test_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rust_block = |text: &str| -> String {
        let start = text.find("```rust\n").expect("a rust example") + "```rust\n".len();
        text[start..start + text[start..].find("```").unwrap()].to_string()
    };
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("### Use the reference server in your own tests").expect("the section")..];
    let crate_readme = std::fs::read_to_string(root.join("reference-server/README.md")).unwrap();
    assert_eq!(rust_block(section), rust_block(&crate_readme), "README.md and reference-server/README.md differ");
    assert!(root.join("reference-server/src/lib.rs").exists());
    let lib = std::fs::read_to_string(root.join("reference-server/src/lib.rs")).unwrap();
    assert!(
        lib.starts_with("#![doc = include_str!(\"../README.md\")]"),
        "the crate README is the crate's docs, so its example runs as a doc test"
    );
}
