//! Shared helpers: servers on port 0, clients with timeouts, token minting.

use std::time::Duration;

use reference_server::{AuthMode, Config, Profile, ServerHandle};
use serde_json::Value;
use wsprobe::schema::{Catalog, MessageSet};
use wsprobe::session::{ConnectOptions, Event, Session};

pub const WAIT: Duration = Duration::from_secs(5);
pub const SECRET: &str = "integration-secret";

/// A config with no simulation traffic (the first tick is an hour away), so replies are the
/// only messages a test sees.
pub fn quiet(profile: Profile) -> Config {
    let mut config = Config::new(profile);
    config.tick = Duration::from_secs(3600);
    // Tests leave clients open at shutdown; do not wait long for them to answer the 1001.
    config.shutdown_grace = Duration::from_millis(250);
    config
}

pub fn with_auth(mut config: Config, auth: AuthMode) -> Config {
    config.auth = auth;
    config.jwt_secret = Some(SECRET.into());
    config
}

pub async fn start(config: Config) -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    reference_server::serve(listener, config).expect("valid config")
}

pub async fn connect(url: &str) -> Session {
    Session::connect(&ConnectOptions::new(url, WAIT)).await.expect("connects")
}

pub async fn next_json(session: &mut Session) -> Value {
    match session.recv(WAIT).await {
        Event::Text(text) => serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
        other => panic!("expected a text message, got {other:?}"),
    }
}

pub async fn expect_close(session: &mut Session) -> (u16, String) {
    for _ in 0..1000 {
        match session.recv(WAIT).await {
            Event::Closed(Some(frame)) => return frame,
            Event::Text(_) => continue,
            other => panic!("expected a Close frame, got {other:?}"),
        }
    }
    panic!("no Close among 1000 messages");
}

pub fn assert_valid(catalog: &Catalog, set: MessageSet, message: &Value) {
    let verdict = catalog.validate(set, message);
    assert!(verdict.is_valid(), "{set} message fails its schema: {:#?}\n{message}", verdict.violations);
}

pub fn token(secret: &str, exp_offset_secs: i64, alg: jsonwebtoken::Algorithm) -> String {
    let exp = (reference_server::now_ms() / 1000) as i64 + exp_offset_secs;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &serde_json::json!({"sub": "tester", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token encodes")
}

pub fn good_token() -> String {
    token(SECRET, 300, jsonwebtoken::Algorithm::HS256)
}

/// `{"alg":"none"}` header, far-future `exp`, empty signature.
pub const ALG_NONE_TOKEN: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTl9.";

/// Peak resident memory of a running process so far, in KB (Linux; 0 once it has exited).
pub fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
