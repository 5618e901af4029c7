//! The suite an AsyncAPI document implies, for a profile read from one: the cases any server
//! of the document must pass, built as scenario cases so the runner, the reporters and
//! snapshots treat them like the shipped files.
//!
//! One rule per case: the handshake at the channel's address; the shape of everything the
//! server sends (`asyncapi.messages.schema`); each request/reply operation answered in time,
//! with its correlation id (`asyncapi.reply.<operationId>`, which leaves the reply's shape to
//! the schema case); and survival of bad input (`input.*`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::loader::Suite;
use super::{
    Action, Case, Connect, Expect, ExpectOpen, Level, Matcher, Need, Observe, ScenarioFile, Send, SnapshotOptions, Step,
};
use crate::profile::{ProfileSpec, Reply};

/// How long a reply may take (scaled by `--timeout-scale`).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the schema case watches what the server sends.
const OBSERVE: Duration = Duration::from_secs(5);
/// How long the connection must stay open after bad input.
const SURVIVE: Duration = Duration::from_millis(500);
/// The first correlation id sent; each request of a run gets its own.
const CORRELATION_BASE: u64 = 7301;

/// The derived suite, named after the profile.
pub fn suite(profile: &ProfileSpec) -> Suite {
    let mut cases = vec![handshake(profile), messages_schema(profile)];
    for (index, reply) in profile.replies.iter().enumerate() {
        cases.push(reply_case(profile, reply, CORRELATION_BASE + index as u64));
    }
    cases.extend(bad_input(profile));
    Suite {
        name: "asyncapi".into(),
        origin: format!("derived from {}", profile.name),
        file: ScenarioFile {
            name: Some("asyncapi".into()),
            description: Some(format!("The rules {} implies for any server of it.", profile.name)),
            cases,
        },
    }
}

fn step(action: Action) -> Step {
    Step { action, level: None, profiles: Vec::new(), when_saved: Vec::new(), label: None }
}

fn case(id: String, description: String, steps: Vec<Step>) -> Case {
    Case {
        id,
        requirement: None,
        level: Level::Must,
        profiles: Vec::new(),
        needs: Vec::new(),
        description,
        timeout: None,
        snapshot: SnapshotOptions::default(),
        steps,
    }
}

fn connect(timeout: Option<Duration>) -> Step {
    step(Action::Connect(Connect { timeout, ..Connect::default() }))
}

fn send_json(json: Value) -> Step {
    step(Action::Send(Send { json: Some(json), ..Send::default() }))
}

fn handshake(profile: &ProfileSpec) -> Case {
    let address = profile.address.as_deref().unwrap_or("the channel's address");
    case(
        "handshake.upgrade".into(),
        format!("GET {address} with the upgrade headers is answered with 101 Switching Protocols (RFC 6455)."),
        vec![connect(Some(Duration::from_secs(5)))],
    )
}

fn messages_schema(profile: &ProfileSpec) -> Case {
    let mut steps = vec![connect(None)];
    let mut sent = Vec::new();
    for (index, reply) in profile.replies.iter().enumerate() {
        if let Some((name, message, _)) = profile.request(reply, CORRELATION_BASE + 100 + index as u64) {
            sent.push(name);
            steps.push(send_json(message));
        }
    }
    steps.push(step(Action::Observe(Observe {
        duration: OBSERVE,
        validate: true,
        min_messages: 1,
        min_messages_level: Some(Level::Should),
        cadence: None,
    })));
    let provoked = if sent.is_empty() {
        String::new()
    } else {
        format!(" The case sends {} first, so there are replies to check.", sent.join(", "))
    };
    case(
        "asyncapi.messages.schema".into(),
        format!(
            "Every message in a {}-second window is one the server may send ({} names it at {}) and validates against that message's payload schema.{provoked} A window with no message at all is a warning.",
            OBSERVE.as_secs(),
            profile.name,
            profile.discriminator().pointer(),
        ),
        steps,
    )
}

fn reply_case(profile: &ProfileSpec, reply: &Reply, correlation: u64) -> Case {
    let id = format!("asyncapi.reply.{}", reply.operation);
    let answer = reply.replies.join(" or ");
    let Some((name, message, sent_id)) = profile.request(reply, correlation) else {
        // No request can be built: the case is skipped and says why, rather than passing on nothing.
        let mut unbuildable =
            case(id, format!("{} is answered with {answer}.", reply.requests.join(" or ")), vec![connect(None)]);
        unbuildable.needs.push(Need::RequestExample);
        return unbuildable;
    };
    let mut matches = BTreeMap::new();
    let mut correlation_rule = String::new();
    if let (Some(pointer), Some(sent_id)) = (&reply.reply_correlation, &sent_id) {
        matches.insert(pointer.clone(), Matcher::Equals(sent_id.clone()));
        correlation_rule = format!(", whose {pointer} echoes the request's correlation id");
    }
    let (first_reply, or_types) = match reply.replies.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let steps = vec![
        connect(None),
        send_json(message),
        step(Action::Expect(Expect {
            message_type: first_reply,
            or_types,
            timeout: REPLY_TIMEOUT,
            first: false,
            schema: false,
            optional: false,
            matches,
            save: BTreeMap::new(),
        })),
    ];
    case(
        id,
        format!(
            "A {name} request ({}) is answered with {answer} within {} s{correlation_rule}. The reply's shape is asyncapi.messages.schema's rule.",
            reply.operation,
            REPLY_TIMEOUT.as_secs()
        ),
        steps,
    )
}

fn bad_input(profile: &ProfileSpec) -> Vec<Case> {
    let discriminator = profile.discriminator();
    let survive = || step(Action::ExpectOpen(ExpectOpen { duration: SURVIVE }));
    let send_text = |text: String| step(Action::Send(Send { text: Some(text), ..Send::default() }));
    let mut unknown = Value::Object(Default::default());
    if let Some(place) = crate::profile::set_pointer(&mut unknown, discriminator.pointer()) {
        *place = Value::String("wsprobe-undocumented".into());
    }
    let mut cases = vec![
        case(
            "input.malformed_json".into(),
            "Malformed JSON never drops the connection.".into(),
            vec![connect(None), send_text(format!("{{\"{}\": ", discriminator.label())), survive()],
        ),
        case(
            "input.unknown_type".into(),
            format!(
                "A message whose {} names no message of the document never drops the connection.",
                discriminator.pointer()
            ),
            vec![connect(None), send_json(unknown), survive()],
        ),
        case(
            "input.binary_frame".into(),
            "A binary frame (the document describes JSON text) never drops the connection.".into(),
            vec![
                connect(None),
                step(Action::Send(Send { binary_hex: Some("deadbeef00ff".into()), ..Send::default() })),
                survive(),
            ],
        ),
    ];
    // A message the server receives, reduced to its name: invalid when its schema requires more.
    let invalid = profile.catalog.messages(profile.client).find_map(|schema| {
        let mut bare = Value::Object(Default::default());
        *crate::profile::set_pointer(&mut bare, discriminator.pointer())? = Value::String(schema.message_type.clone());
        (!schema.violations(&bare).is_empty()).then_some((schema.message_type.clone(), bare))
    });
    if let Some((name, bare)) = invalid {
        cases.push(case(
            "input.invalid_message".into(),
            format!("A {name} without the members its schema requires never drops the connection."),
            vec![connect(None), send_json(bare), survive()],
        ));
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::asyncapi::Document;

    /// A request whose schema wsprobe cannot satisfy (a pattern, no example) gets a case that
    /// is skipped with the reason, never one that passes on nothing.
    const DOC: &str = r##"
asyncapi: 3.0.0
info: {title: Orders, version: 1.0.0}
channels:
  orders:
    address: /orders
    messages:
      place: {payload: {type: object, required: [kind, symbol], properties: {kind: {const: place}, symbol: {type: string, pattern: '^[A-Z]{3,5}$'}}}}
      placed: {payload: {type: object, required: [kind], properties: {kind: {const: placed}}}}
      status: {payload: {type: object, required: [kind, id], properties: {kind: {const: status}, id: {type: integer, minimum: 1}}}}
      state: {payload: {type: object, required: [kind], properties: {kind: {const: state}, id: {type: integer}}}, correlationId: {location: '$message.payload#/id'}}
operations:
  placeOrder:
    action: receive
    channel: {$ref: '#/channels/orders'}
    messages: [{$ref: '#/channels/orders/messages/place'}]
    reply: {channel: {$ref: '#/channels/orders'}, messages: [{$ref: '#/channels/orders/messages/placed'}]}
  askStatus:
    action: receive
    channel: {$ref: '#/channels/orders'}
    messages: [{$ref: '#/channels/orders/messages/status'}]
    reply: {channel: {$ref: '#/channels/orders'}, messages: [{$ref: '#/channels/orders/messages/state'}]}
"##;

    #[test]
    fn the_suite_has_one_case_per_rule_and_skips_what_it_cannot_send() {
        let document = Document::parse(std::path::Path::new("orders.yaml"), DOC).unwrap();
        let profile = ProfileSpec::from_document(&document, None, None).unwrap();
        assert_eq!(profile.discriminator().pointer(), "/kind");
        let suite = suite(&profile);
        let ids: Vec<&str> = suite.file.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "handshake.upgrade",
                "asyncapi.messages.schema",
                "asyncapi.reply.askStatus",
                "asyncapi.reply.placeOrder",
                "input.malformed_json",
                "input.unknown_type",
                "input.binary_frame",
                "input.invalid_message"
            ]
        );
        let case = |id: &str| suite.file.cases.iter().find(|c| c.id == id).unwrap();
        assert_eq!(case("asyncapi.reply.placeOrder").needs, [Need::RequestExample]);
        // status has no example: one is built from its schema (id at its minimum). Only the
        // reply declares a correlation id, so there is no id of the request's to echo: the
        // reply is not matched on one.
        let status = &case("asyncapi.reply.askStatus").steps[1].action;
        let Action::Send(send) = status else { panic!("{status:?}") };
        assert_eq!(send.json, Some(serde_json::json!({"kind": "status", "id": 1})));
        let Action::Expect(expect) = &case("asyncapi.reply.askStatus").steps[2].action else { panic!() };
        assert_eq!(expect.message_type, "state");
        assert!(expect.matches.is_empty());
    }
}
