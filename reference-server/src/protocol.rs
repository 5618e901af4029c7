//! The wire format: what clients may send, and the server's own replies. Simulation messages
//! are built in `simulation`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::{iso8601_now, now_ms};

/// A client message, exactly as `schemas/client/*.json` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientMessage {
    Ping { timestamp: u64 },
    Authenticate { token: String },
}

/// Why a client text frame was not a usable message. Each becomes an Error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MalformedJson(String),
    NotAnObject,
    MissingType,
    UnknownType(String),
    InvalidMessage { message_type: String, reason: String },
}

impl Rejection {
    pub fn describe(&self) -> String {
        match self {
            Rejection::MalformedJson(e) => format!("message is not valid JSON: {e}"),
            Rejection::NotAnObject => "message must be a JSON object".into(),
            Rejection::MissingType => "message has no string \"type\"".into(),
            Rejection::UnknownType(t) => format!("unknown message type {t:?} (expected Ping or Authenticate)"),
            Rejection::InvalidMessage { message_type, reason } => format!("invalid {message_type} message: {reason}"),
        }
    }
}

pub fn parse_client_message(text: &str) -> Result<ClientMessage, Rejection> {
    // Fast path: nearly every client message is a well-formed Ping.
    if let Ok(message) = serde_json::from_str::<ClientMessage>(text) {
        return Ok(message);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| Rejection::MalformedJson(e.to_string()))?;
    let object = value.as_object().ok_or(Rejection::NotAnObject)?;
    let message_type = object.get("type").and_then(Value::as_str).ok_or(Rejection::MissingType)?;
    if !matches!(message_type, "Ping" | "Authenticate") {
        return Err(Rejection::UnknownType(message_type.to_string()));
    }
    let reason =
        serde_json::from_value::<ClientMessage>(value.clone()).err().map_or_else(String::new, |e| e.to_string());
    Err(Rejection::InvalidMessage { message_type: message_type.to_string(), reason })
}

pub fn pong() -> String {
    let now = now_ms();
    format!(r#"{{"type":"Pong","data":{{"timestamp":{now}}},"timestamp":{now}}}"#)
}

pub fn connected(client_id: &str) -> String {
    let now = now_ms();
    json!({
        "type": "Connected",
        "data": {"client_id": client_id, "server_time": now, "version": env!("CARGO_PKG_VERSION")},
        "timestamp": now,
    })
    .to_string()
}

pub fn ai_welcome() -> String {
    json!({"type": "connection", "message": "Connected to AI Trading Service", "timestamp": iso8601_now()}).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

/// An Error message. `code` must be one of the spec's error codes.
pub fn error(code: &str, message: &str, severity: Severity, details: Value, recoverable: bool) -> String {
    let now = now_ms();
    json!({
        "type": "Error",
        "data": {
            "code": code,
            "message": message,
            "severity": severity.as_str(),
            "details": details,
            "timestamp": now,
            "recoverable": recoverable,
        },
        "timestamp": now,
    })
    .to_string()
}

/// The reply to bad client input: the connection stays open (schemas/README.md, choice 15).
pub fn input_error(rejection: &Rejection) -> String {
    error("WEBSOCKET_ERROR", &rejection.describe(), Severity::Warning, json!({}), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_the_client_schemas() {
        assert_eq!(parse_client_message(r#"{"type":"Ping","timestamp":5}"#), Ok(ClientMessage::Ping { timestamp: 5 }));
        assert_eq!(
            parse_client_message(r#"{"type":"Authenticate","token":"a.b.c"}"#),
            Ok(ClientMessage::Authenticate { token: "a.b.c".into() })
        );
        assert!(matches!(parse_client_message("{"), Err(Rejection::MalformedJson(_))));
        assert_eq!(parse_client_message("[1]"), Err(Rejection::NotAnObject));
        assert_eq!(parse_client_message(r#"{"type":1}"#), Err(Rejection::MissingType));
        assert_eq!(parse_client_message(r#"{"type":"Hello"}"#), Err(Rejection::UnknownType("Hello".into())));
        for bad in [
            r#"{"type":"Ping"}"#,
            r#"{"type":"Ping","timestamp":-1}"#,
            r#"{"type":"Ping","timestamp":1.5}"#,
            r#"{"type":"Ping","timestamp":"now"}"#,
            r#"{"type":"Ping","timestamp":1,"extra":true}"#,
            r#"{"type":"Authenticate"}"#,
        ] {
            assert!(matches!(parse_client_message(bad), Err(Rejection::InvalidMessage { .. })), "{bad}");
        }
    }
}
