//! The reference server, over real sockets on 127.0.0.1:0: every behaviour of issue 3.

use std::collections::BTreeSet;
use std::time::Duration;

use reference_server::simulation::Simulation;
use reference_server::{AuthMode, Profile};
use serde_json::{json, Value};
use wsprobe::schema::{Catalog, MessageSet};
use wsprobe::session::{ConnectError, ConnectOptions, Event, Session};

use crate::support::*;

fn catalog() -> Catalog {
    Catalog::embedded().unwrap()
}

#[test]
fn the_simulation_emits_every_type_and_enum_value_and_all_of_it_validates() {
    let catalog = catalog();
    let symbols: Vec<String> = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"].map(String::from).to_vec();
    let mut simulation = Simulation::new(Profile::Core, 42, &symbols, 1000, 5, 1_700_000_000_000);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut note = |message: &Value| {
        let t = message["type"].as_str().unwrap().to_string();
        seen.insert(t.clone());
        for pointer in [
            "/data/action",
            "/data/status",
            "/data/side",
            "/data/signal",
            "/data/timeframe",
            "/data/severity",
            "/data/code",
            "/data/position/side",
        ] {
            if let Some(v) = message.pointer(pointer).and_then(Value::as_str) {
                seen.insert(format!("{t}{pointer}={v}"));
            }
        }
    };
    let mut count = 0;
    for tick in 0..3000u64 {
        for (_, message) in simulation.step(1_700_000_000_000 + tick * 1000) {
            assert_valid(&catalog, MessageSet::Core, &message);
            check_position_arithmetic(&message);
            note(&message);
            count += 1;
        }
    }
    for (_, message) in simulation.stop(1_700_003_000_000) {
        assert_valid(&catalog, MessageSet::Core, &message);
        note(&message);
    }
    let mut expected: Vec<String> = [
        "MarketData",
        "ChartUpdate",
        "PositionUpdate",
        "TradeExecuted",
        "AISignalReceived",
        "BotStatusUpdate",
        "Error",
    ]
    .map(String::from)
    .to_vec();
    for v in ["OPENED", "UPDATED", "CLOSED"] {
        expected.push(format!("PositionUpdate/data/action={v}"));
    }
    for v in ["FILLED", "PARTIALLY_FILLED", "CANCELED", "REJECTED"] {
        expected.push(format!("TradeExecuted/data/status={v}"));
    }
    for v in ["BUY", "SELL"] {
        expected.push(format!("TradeExecuted/data/side={v}"));
    }
    for v in ["LONG", "SHORT"] {
        expected.push(format!("PositionUpdate/data/position/side={v}"));
    }
    for v in ["long", "short", "neutral"] {
        expected.push(format!("AISignalReceived/data/signal={v}"));
    }
    for v in ["1m", "5m", "15m", "1h", "4h", "1d"] {
        expected.push(format!("ChartUpdate/data/timeframe={v}"));
    }
    for v in ["RUNNING", "PAUSED", "STOPPED", "ERROR"] {
        expected.push(format!("BotStatusUpdate/data/status={v}"));
    }
    for v in ["INSUFFICIENT_BALANCE", "TRADE_EXECUTION_FAILED", "MARKET_DATA_ERROR"] {
        expected.push(format!("Error/data/code={v}"));
    }
    let missing: Vec<&String> = expected.iter().filter(|e| !seen.contains(*e)).collect();
    assert!(missing.is_empty(), "never emitted in {count} messages: {missing:?}");
}

/// PnL, margin and liquidation price agree with entry, quantity, leverage and price.
fn check_position_arithmetic(message: &Value) {
    if message["type"] != "PositionUpdate" {
        return;
    }
    let p = &message["data"]["position"];
    let f = |k: &str| p[k].as_f64().unwrap();
    let direction = if p["side"] == "LONG" { 1.0 } else { -1.0 };
    let pnl = (f("current_price") - f("entry_price")) * f("quantity") * direction;
    let margin = f("entry_price") * f("quantity") / f("leverage");
    assert!((f("unrealized_pnl") - pnl).abs() < 1e-3, "pnl {pnl} vs {p}");
    assert!((f("margin") - margin).abs() < 1e-3, "margin {margin} vs {p}");
    assert!((f("unrealized_pnl_percent") - pnl / margin * 100.0).abs() < 1e-2, "pnl% vs {p}");
    let liquidation = f("entry_price") * (1.0 - direction / f("leverage"));
    assert!((f("liquidation_price") - liquidation).abs() < 0.01, "liquidation {liquidation} vs {p}");
}

#[test]
fn the_same_seed_gives_the_same_market() {
    let symbols = vec!["BTCUSDT".to_string()];
    let run = |seed| {
        let mut simulation = Simulation::new(Profile::Core, seed, &symbols, 1000, 5, 0);
        (1..=50).flat_map(|t| simulation.step(t * 1000)).map(|(_, m)| m.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn the_ai_simulation_emits_valid_ai_signals_only() {
    let catalog = catalog();
    let mut simulation = Simulation::new(Profile::Ai, 3, &["BTCUSDT".to_string()], 1000, 2, 0);
    let messages: Vec<Value> = (1..=20).flat_map(|t| simulation.step(t * 1000)).map(|(_, m)| m).collect();
    assert_eq!(messages.len(), 10);
    for message in &messages {
        assert_eq!(message["type"], "AISignalReceived");
        assert_valid(&catalog, MessageSet::Ai, message);
    }
}

#[tokio::test]
async fn core_welcomes_with_a_unique_connected_and_answers_ping() {
    let catalog = catalog();
    let server = start(quiet(Profile::Core)).await;
    let mut first = connect(&server.url()).await;
    let mut second = connect(&server.url()).await;
    let a = next_json(&mut first).await;
    let b = next_json(&mut second).await;
    assert_eq!(a["type"], "Connected");
    assert_valid(&catalog, MessageSet::Core, &a);
    assert_valid(&catalog, MessageSet::Core, &b);
    assert_ne!(a["data"]["client_id"], b["data"]["client_id"]);
    first.send_text(r#"{"type":"Ping","timestamp":1697234567000}"#, WAIT).await.unwrap();
    let pong = next_json(&mut first).await;
    assert_eq!(pong["type"], "Pong");
    assert_valid(&catalog, MessageSet::Core, &pong);
    assert_eq!(pong["data"]["timestamp"], pong["timestamp"]);
    server.shutdown().await;
}

#[tokio::test]
async fn ai_welcomes_with_an_iso_timestamp_and_answers_ping() {
    let catalog = catalog();
    let server = start(quiet(Profile::Ai)).await;
    let mut session = connect(&server.url()).await;
    let welcome = next_json(&mut session).await;
    assert_eq!(welcome["type"], "connection");
    assert_valid(&catalog, MessageSet::Ai, &welcome);
    session.send_text(r#"{"type":"Ping","timestamp":1}"#, WAIT).await.unwrap();
    assert_valid(&catalog, MessageSet::Ai, &next_json(&mut session).await);
    server.shutdown().await;
}

#[tokio::test]
async fn broadcasts_reach_clients_and_validate() {
    let catalog = catalog();
    let mut config = quiet(Profile::Core);
    config.tick = Duration::from_millis(10);
    config.signal_every_ticks = 2;
    let server = start(config).await;
    let mut session = connect(&server.url()).await;
    let mut symbols = BTreeSet::new();
    let mut types = BTreeSet::new();
    for _ in 0..200 {
        let message = next_json(&mut session).await;
        assert_valid(&catalog, MessageSet::Core, &message);
        if message["type"] == "MarketData" {
            symbols.insert(message["data"]["symbol"].as_str().unwrap().to_string());
        }
        types.insert(message["type"].as_str().unwrap().to_string());
    }
    assert_eq!(symbols.len(), 4, "{symbols:?}");
    for t in ["Connected", "MarketData", "ChartUpdate", "AISignalReceived", "BotStatusUpdate"] {
        assert!(types.contains(t), "{t} not among {types:?}");
    }
    server.shutdown().await;
}

async fn assert_input_error_and_still_open(session: &mut Session, catalog: &Catalog) {
    let error = next_json(session).await;
    assert_valid(catalog, MessageSet::Core, &error);
    assert_eq!(error["type"], "Error");
    assert_eq!(error["data"]["code"], "WEBSOCKET_ERROR");
    assert_eq!(error["data"]["severity"], "WARNING");
    assert_eq!(error["data"]["recoverable"], true);
    session.send_text(r#"{"type":"Ping","timestamp":2}"#, WAIT).await.unwrap();
    assert_eq!(next_json(session).await["type"], "Pong", "the connection survives bad input");
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays_open() {
    let catalog = catalog();
    let server = start(quiet(Profile::Core)).await;
    let mut session = connect(&server.url()).await;
    assert_eq!(next_json(&mut session).await["type"], "Connected");
    for bad in [
        "{not json",
        r#"{"type":"Subscribe","channel":"x"}"#,
        r#"{"type":"Ping"}"#,
        "[]",
        r#"{"type":"Ping","timestamp":"now"}"#,
    ] {
        session.send_text(bad, WAIT).await.unwrap();
        assert_input_error_and_still_open(&mut session, &catalog).await;
    }
    session.send_binary(&[0xde, 0xad, 0xbe, 0xef], WAIT).await.unwrap();
    assert_input_error_and_still_open(&mut session, &catalog).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_frame_is_closed_with_1009() {
    let mut config = quiet(Profile::Core);
    config.max_message_bytes = 1024;
    let server = start(config).await;
    let mut session = connect(&server.url()).await;
    next_json(&mut session).await;
    let big = format!(r#"{{"type":"Ping","timestamp":1,"pad":"{}"}}"#, "x".repeat(4096));
    session.send_text(&big, WAIT).await.unwrap();
    assert_eq!(expect_close(&mut session).await.0, 1009);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_close_is_echoed() {
    let server = start(quiet(Profile::Core)).await;
    let mut session = connect(&server.url()).await;
    next_json(&mut session).await;
    session.close(1000, "bye", WAIT).await.unwrap();
    assert_eq!(expect_close(&mut session).await.0, 1000);
    server.shutdown().await;
}

#[tokio::test]
async fn the_message_over_the_limit_closes_with_1008() {
    let mut config = quiet(Profile::Core);
    config.rate_limit = Some(5);
    let server = start(config).await;
    let mut session = connect(&server.url()).await;
    next_json(&mut session).await;
    for _ in 0..5 {
        session.send_text(r#"{"type":"Ping","timestamp":3}"#, WAIT).await.unwrap();
        assert_eq!(next_json(&mut session).await["type"], "Pong");
    }
    session.send_text(r#"{"type":"Ping","timestamp":3}"#, WAIT).await.unwrap();
    assert_eq!(expect_close(&mut session).await, (1008, "rate limit exceeded".to_string()));
    assert_eq!(server.stats().rate_limited, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn the_rate_window_slides() {
    let mut config = quiet(Profile::Core);
    config.rate_limit = Some(3);
    config.rate_window = Duration::from_millis(300);
    let server = start(config).await;
    let mut session = connect(&server.url()).await;
    next_json(&mut session).await;
    for round in 0..3 {
        for _ in 0..3 {
            session.send_text(r#"{"type":"Ping","timestamp":3}"#, WAIT).await.unwrap();
            assert_eq!(next_json(&mut session).await["type"], "Pong", "round {round}");
        }
        // Waiting out the window is the behaviour under test, so this sleep is the signal.
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn other_paths_get_404() {
    let server = start(quiet(Profile::Core)).await;
    let url = server.url().replace("/ws", "/other");
    let error = Session::connect(&ConnectOptions::new(url, WAIT)).await.err().unwrap();
    assert!(matches!(error, ConnectError::Rejected { status: 404, .. }), "{error:?}");
    server.shutdown().await;
}

async fn connect_with(url: &str, header: Option<&str>, query: Option<&str>) -> Result<Session, ConnectError> {
    let mut options = ConnectOptions::new(url, WAIT);
    if let Some(token) = header {
        options.headers.push(("Authorization".into(), format!("Bearer {token}")));
    }
    if let Some(token) = query {
        options.query.push(("token".into(), token.into()));
    }
    Session::connect(&options).await
}

#[tokio::test]
async fn required_auth_accepts_valid_tokens_from_header_query_and_first_message() {
    let server = start(with_auth(quiet(Profile::Core), AuthMode::Required)).await;
    let token = good_token();
    let mut by_header = connect_with(&server.url(), Some(&token), None).await.unwrap();
    assert_eq!(next_json(&mut by_header).await["type"], "Connected");
    let mut by_query = connect_with(&server.url(), None, Some(&token)).await.unwrap();
    assert_eq!(next_json(&mut by_query).await["type"], "Connected");
    let mut by_message = connect(&server.url()).await;
    assert_eq!(by_message.recv(Duration::from_millis(200)).await, Event::Timeout, "nothing before auth");
    by_message.send_text(&json!({"type": "Authenticate", "token": token}).to_string(), WAIT).await.unwrap();
    assert_eq!(next_json(&mut by_message).await["type"], "Connected");
    server.shutdown().await;
}

#[tokio::test]
async fn required_auth_refuses_bad_tokens_at_the_handshake_with_401() {
    let server = start(with_auth(quiet(Profile::Core), AuthMode::Required)).await;
    let bad_tokens = [
        token("wrong-secret", 300, jsonwebtoken::Algorithm::HS256),
        token(SECRET, -10, jsonwebtoken::Algorithm::HS256),
        token(SECRET, 300, jsonwebtoken::Algorithm::HS512),
        ALG_NONE_TOKEN.to_string(),
        "garbage".to_string(),
    ];
    for bad in &bad_tokens {
        for (header, query) in [(Some(bad.as_str()), None), (None, Some(bad.as_str()))] {
            let error = connect_with(&server.url(), header, query).await.err().expect("refused");
            assert!(matches!(error, ConnectError::Rejected { status: 401, .. }), "{bad}: {error:?}");
        }
    }
    assert_eq!(server.stats().auth_failures, 10);
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_authenticate_message_gets_an_error_then_1008() {
    let catalog = catalog();
    let server = start(with_auth(quiet(Profile::Core), AuthMode::Required)).await;
    for bad in [token(SECRET, -10, jsonwebtoken::Algorithm::HS256), ALG_NONE_TOKEN.to_string(), "x.y.z".into()] {
        let mut session = connect(&server.url()).await;
        session.send_text(&json!({"type": "Authenticate", "token": bad}).to_string(), WAIT).await.unwrap();
        let error = next_json(&mut session).await;
        assert_valid(&catalog, MessageSet::Core, &error);
        assert_eq!(
            (error["data"]["severity"].as_str(), error["data"]["recoverable"].as_bool()),
            (Some("ERROR"), Some(false))
        );
        assert_eq!(expect_close(&mut session).await.0, 1008);
    }
    // A first message that is not Authenticate is refused the same way.
    let mut session = connect(&server.url()).await;
    session.send_text(r#"{"type":"Ping","timestamp":1}"#, WAIT).await.unwrap();
    assert_eq!(next_json(&mut session).await["type"], "Error");
    assert_eq!(expect_close(&mut session).await.0, 1008);
    server.shutdown().await;
}

#[tokio::test]
async fn no_token_before_the_timeout_closes_with_1008() {
    let mut config = with_auth(quiet(Profile::Core), AuthMode::Required);
    config.auth_timeout = Duration::from_millis(200);
    let server = start(config).await;
    let mut session = connect(&server.url()).await;
    assert_eq!(expect_close(&mut session).await, (1008, "authentication timeout".to_string()));
    server.shutdown().await;
}

#[tokio::test]
async fn optional_auth_allows_no_token_but_refuses_a_bad_one() {
    let server = start(with_auth(quiet(Profile::Core), AuthMode::Optional)).await;
    let mut anonymous = connect(&server.url()).await;
    assert_eq!(next_json(&mut anonymous).await["type"], "Connected");
    let mut good = connect_with(&server.url(), Some(&good_token()), None).await.unwrap();
    assert_eq!(next_json(&mut good).await["type"], "Connected");
    let expired = token(SECRET, -10, jsonwebtoken::Algorithm::HS256);
    let error = connect_with(&server.url(), Some(&expired), None).await.err().unwrap();
    assert!(matches!(error, ConnectError::Rejected { status: 401, .. }), "{error:?}");
    anonymous.send_text(&json!({"type": "Authenticate", "token": expired}).to_string(), WAIT).await.unwrap();
    assert_eq!(next_json(&mut anonymous).await["type"], "Error");
    assert_eq!(expect_close(&mut anonymous).await.0, 1008);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_the_final_status_and_1001() {
    let catalog = catalog();
    let server = start(quiet(Profile::Core)).await;
    let mut session = connect(&server.url()).await;
    next_json(&mut session).await;
    let shutdown = tokio::spawn(server.shutdown());
    let status = next_json(&mut session).await;
    assert_valid(&catalog, MessageSet::Core, &status);
    assert_eq!(status["data"]["status"], "STOPPED");
    assert_eq!(expect_close(&mut session).await.0, 1001);
    tokio::time::timeout(WAIT, shutdown).await.expect("shutdown completes").unwrap();
}
