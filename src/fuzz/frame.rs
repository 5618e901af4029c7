//! What the fuzzer sends: frames, as generated, shrunk, written to a bundle and replayed.
//!
//! A JSON object is kept as its members' raw texts, so that what `serde_json` cannot produce
//! (a doubled key, `-0`, a lone surrogate escape) can be sent, and so that shrinking can drop
//! or simplify one member at a time.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WireFrame;
use tokio_tungstenite::tungstenite::Message;

/// One thing sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A JSON object, as `(key, raw JSON value)` members in order.
    Object(Vec<(String, String)>),
    /// A text frame.
    Text(String),
    /// A text frame whose bytes are not UTF-8.
    InvalidUtf8(Vec<u8>),
    Binary(Vec<u8>),
    /// One text message sent as several frames.
    Fragments(Vec<String>),
    /// The same, with a Ping control frame between the first two fragments (RFC 6455 5.4
    /// allows it).
    FragmentsWithPing(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub payload: Payload,
    /// Waited before sending.
    pub delay: Duration,
}

impl Frame {
    pub fn now(payload: Payload) -> Frame {
        Frame { payload, delay: Duration::ZERO }
    }

    /// The frames on the wire, in order.
    pub fn messages(&self) -> Vec<Message> {
        let data = |bytes: Vec<u8>, opcode: Data, fin: bool| {
            Message::Frame(WireFrame::message(bytes, OpCode::Data(opcode), fin))
        };
        match &self.payload {
            Payload::Object(members) => vec![Message::text(render_object(members))],
            Payload::Text(text) => vec![Message::text(text.clone())],
            Payload::InvalidUtf8(bytes) => vec![data(bytes.clone(), Data::Text, true)],
            Payload::Binary(bytes) => vec![Message::binary(bytes.clone())],
            Payload::Fragments(parts) | Payload::FragmentsWithPing(parts) => {
                let mut out = Vec::new();
                for (index, part) in parts.iter().enumerate() {
                    let opcode = if index == 0 { Data::Text } else { Data::Continue };
                    out.push(data(part.as_bytes().to_vec(), opcode, index + 1 == parts.len()));
                    if index == 0 && matches!(self.payload, Payload::FragmentsWithPing(_)) {
                        out.push(Message::Ping(b"wsprobe".to_vec().into()));
                    }
                }
                out
            }
        }
    }

    /// A short description for reports: `text {"type":"Ping","timestamp":0}`.
    pub fn describe(&self) -> String {
        let shown = |text: &str| crate::session::clip(text);
        match &self.payload {
            Payload::Object(members) => format!("text {}", shown(&render_object(members))),
            Payload::Text(text) => format!("text {}", shown(text)),
            Payload::InvalidUtf8(bytes) => format!("invalid UTF-8 text ({} bytes)", bytes.len()),
            Payload::Binary(bytes) => format!("binary ({} bytes)", bytes.len()),
            Payload::Fragments(parts) => format!("text in {} fragments {}", parts.len(), shown(&parts.concat())),
            Payload::FragmentsWithPing(parts) => {
                format!("text in {} fragments with a Ping between {}", parts.len(), shown(&parts.concat()))
            }
        }
    }

    /// The input's shape, for telling findings apart: the kinds of frames, and for JSON the
    /// members' names (`?` for any name not in `known`, the schemas' own) and value kinds, in
    /// name order, not their values. `{"debug":true}` and `{"extra":true}` are one shape.
    pub fn shape(&self, known: &std::collections::BTreeSet<String>) -> String {
        match &self.payload {
            Payload::Object(members) => {
                let mut members: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{}:{}", if known.contains(k) { k.as_str() } else { "?" }, value_kind(v)))
                    .collect();
                members.sort();
                format!("object{{{}}}", members.join(","))
            }
            Payload::Text(text) => format!("text:{}", value_kind(text)),
            Payload::InvalidUtf8(_) => "invalid-utf8".into(),
            Payload::Binary(_) => "binary".into(),
            Payload::Fragments(parts) => format!("fragments:{}", parts.len()),
            Payload::FragmentsWithPing(parts) => format!("fragments-with-ping:{}", parts.len()),
        }
    }

    /// The total bytes sent, for ordering shrink candidates.
    pub fn size(&self) -> usize {
        match &self.payload {
            Payload::Object(members) => render_object(members).len(),
            Payload::Text(text) => text.len(),
            Payload::InvalidUtf8(bytes) | Payload::Binary(bytes) => bytes.len(),
            Payload::Fragments(parts) | Payload::FragmentsWithPing(parts) => parts.iter().map(String::len).sum(),
        }
    }
}

/// `{"k":v,…}` from raw member texts.
pub fn render_object(members: &[(String, String)]) -> String {
    let inner: Vec<String> =
        members.iter().map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone()))).collect();
    format!("{{{}}}", inner.join(","))
}

/// What kind of JSON a raw text is, by its first byte: number, string, bool, null, array,
/// object, or not JSON.
fn value_kind(raw: &str) -> &'static str {
    match raw.trim_start().bytes().next() {
        Some(b'"') => "string",
        Some(b'-' | b'0'..=b'9') => "number",
        Some(b't' | b'f') => "bool",
        Some(b'n') => "null",
        Some(b'[') => "array",
        Some(b'{') => "object",
        _ => "other",
    }
}

/// A frame as a bundle holds it: text where it is text, hex where it is bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFrame {
    /// `text`, `binary`, `invalid-utf8`, `fragments` or `fragments-with-ping`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragments: Option<Vec<String>>,
    #[serde(default)]
    pub delay_ms: u64,
}

impl From<&Frame> for BundleFrame {
    fn from(frame: &Frame) -> BundleFrame {
        let mut out = BundleFrame {
            kind: String::new(),
            text: None,
            hex: None,
            fragments: None,
            delay_ms: frame.delay.as_millis() as u64,
        };
        match &frame.payload {
            Payload::Object(members) => (out.kind, out.text) = ("text".into(), Some(render_object(members))),
            Payload::Text(text) => (out.kind, out.text) = ("text".into(), Some(text.clone())),
            Payload::InvalidUtf8(bytes) => (out.kind, out.hex) = ("invalid-utf8".into(), Some(hex(bytes))),
            Payload::Binary(bytes) => (out.kind, out.hex) = ("binary".into(), Some(hex(bytes))),
            Payload::Fragments(parts) => (out.kind, out.fragments) = ("fragments".into(), Some(parts.clone())),
            Payload::FragmentsWithPing(parts) => {
                (out.kind, out.fragments) = ("fragments-with-ping".into(), Some(parts.clone()))
            }
        }
        out
    }
}

impl TryFrom<&BundleFrame> for Frame {
    type Error = String;

    fn try_from(frame: &BundleFrame) -> Result<Frame, String> {
        let need_text = || frame.text.clone().ok_or_else(|| format!("a {} frame needs \"text\"", frame.kind));
        let need_hex = || {
            let hex = frame.hex.as_deref().ok_or_else(|| format!("a {} frame needs \"hex\"", frame.kind))?;
            unhex(hex).ok_or_else(|| format!("\"hex\" of a {} frame is not hexadecimal: {hex:?}", frame.kind))
        };
        let need_fragments = || {
            frame
                .fragments
                .clone()
                .filter(|parts| parts.len() >= 2)
                .ok_or_else(|| format!("a {} frame needs \"fragments\", at least two", frame.kind))
        };
        let payload = match frame.kind.as_str() {
            "text" => Payload::Text(need_text()?),
            "binary" => Payload::Binary(need_hex()?),
            "invalid-utf8" => Payload::InvalidUtf8(need_hex()?),
            "fragments" => Payload::Fragments(need_fragments()?),
            "fragments-with-ping" => Payload::FragmentsWithPing(need_fragments()?),
            other => {
                return Err(format!(
                "unknown frame kind {other:?}; expected text, binary, invalid-utf8, fragments or fragments-with-ping"
            ))
            }
        };
        Ok(Frame { payload, delay: Duration::from_millis(frame.delay_ms) })
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_a_bundle_and_keep_what_serde_cannot_write() {
        let doubled = Frame::now(Payload::Object(vec![
            ("type".into(), "\"Ping\"".into()),
            ("timestamp".into(), "-0".into()),
            ("timestamp".into(), "\"\\ud800\"".into()),
        ]));
        assert_eq!(BundleFrame::from(&doubled).text.unwrap(), r#"{"type":"Ping","timestamp":-0,"timestamp":"\ud800"}"#);
        let known = ["type".to_string(), "timestamp".to_string()].into();
        assert_eq!(doubled.shape(&known), "object{timestamp:number,timestamp:string,type:string}");
        let extra = |name: &str| Frame::now(Payload::Object(vec![(name.into(), "true".into())]));
        assert_eq!(extra("debug").shape(&known), extra("extra").shape(&known), "unknown names are one shape");
        for frame in [
            Frame { payload: Payload::InvalidUtf8(vec![0xff, 0xfe]), delay: Duration::from_millis(20) },
            Frame::now(Payload::Binary(vec![0, 1, 2])),
            Frame::now(Payload::FragmentsWithPing(vec!["{\"type\":".into(), "\"Ping\"}".into()])),
        ] {
            let bundle = BundleFrame::from(&frame);
            let back = Frame::try_from(&bundle).unwrap();
            assert_eq!(back, frame);
        }
        let bad =
            BundleFrame { kind: "binary".into(), text: None, hex: Some("zz".into()), fragments: None, delay_ms: 0 };
        assert!(Frame::try_from(&bad).unwrap_err().contains("not hexadecimal"));
        let with_ping = Frame::now(Payload::FragmentsWithPing(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(with_ping.messages().len(), 4, "three fragments and a Ping after the first");
    }
}
