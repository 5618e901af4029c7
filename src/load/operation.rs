//! The request/reply operation a `ping`-mode run times: the profile's heartbeat (Bot Core's
//! Ping → Pong) by default, any request/reply operation of an AsyncAPI document with
//! `--operation`. Requests are rendered from a template split around their varying parts, so a
//! send costs a few string pushes; replies are matched by correlation id where the document
//! declares one (any order, several in flight), else in order.

use serde_json::Value;

use crate::profile::{set_pointer, ProfileSpec};
use crate::schema::Discriminator;

/// Stand-ins for the varying parts while the template is rendered once; chosen so that no
/// example holds them.
const ID_SENTINEL: u64 = 918_273_645_546_372_819;
const STAMP_SENTINEL: u64 = 918_273_645_546_372_818;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The request's number on its connection, as a JSON number.
    Id,
    /// The same as a string, `wsprobe-N`.
    IdString,
    /// The send time in epoch milliseconds.
    Now,
}

/// What a reply said about its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not a reply of this operation.
    NotAReply,
    /// A reply; the operation declares no correlation id, so it answers the oldest request.
    InOrder,
    /// A reply carrying the id of request `n`.
    To(u64),
    /// A reply whose correlation id is missing.
    MissingId,
    /// A reply whose correlation id names no request wsprobe sent.
    UnknownId,
}

#[derive(Debug, Clone)]
pub struct Operation {
    /// The operation's id in the document (`coreAnswersPing`).
    pub id: String,
    /// The request's name and the replies' names, for reports.
    pub request: String,
    pub replies: Vec<String>,
    /// Literal text around the slots: one more part than slots.
    parts: Vec<String>,
    slots: Vec<Slot>,
    reply_correlation: Option<String>,
    discriminator: Discriminator,
}

impl Operation {
    /// The profile's operation `id`, or its only one (the heartbeat for a shipped profile).
    pub fn of(profile: &ProfileSpec, id: Option<&str>) -> Result<Operation, String> {
        let known = || profile.replies.iter().map(|r| r.operation.as_str()).collect::<Vec<_>>().join(", ");
        let reply = match id {
            Some(id) => profile.reply(id).ok_or_else(|| {
                format!(
                    "{} has no request/reply operation {id:?}; its operations with a reply: {}",
                    profile.name,
                    known()
                )
            })?,
            None => match profile.replies.as_slice() {
                [only] => only,
                [] => {
                    return Err(format!(
                    "{} has no request/reply operation to time: ping mode needs a `receive` operation with a `reply`",
                    profile.name
                ))
                }
                _ => {
                    return Err(format!(
                        "{} has several request/reply operations; pick one with --operation ({})",
                        profile.name,
                        known()
                    ))
                }
            },
        };
        // Built valid with id 1; the id's place then holds the sentinel of the same kind.
        let (request, mut message, id_value) = profile.request(reply, 1).ok_or_else(|| {
            format!(
                "operation {}: no valid example of its request, and none can be built from the schema; add `examples` to the request message",
                reply.operation
            )
        })?;
        let id_value = id_value.map(|id| match id {
            Value::String(_) => Value::String(format!("wsprobe-{ID_SENTINEL}")),
            _ => Value::from(ID_SENTINEL),
        });
        if let (Some(pointer), Some(id)) = (&reply.request_correlation, &id_value) {
            if let Some(place) = set_pointer(&mut message, pointer) {
                *place = id.clone();
            }
        }
        if let Some((_, pointer)) = profile.stamps.iter().find(|(name, _)| *name == request) {
            if let Some(place) = set_pointer(&mut message, pointer) {
                *place = Value::from(STAMP_SENTINEL);
            }
        }
        let text = serde_json::to_string(&message).map_err(|e| e.to_string())?;
        let id_slot = match id_value {
            Some(Value::String(_)) => Some((format!("\"wsprobe-{ID_SENTINEL}\""), Slot::IdString)),
            Some(_) => Some((ID_SENTINEL.to_string(), Slot::Id)),
            None => None,
        };
        let stamp_slot = Some((STAMP_SENTINEL.to_string(), Slot::Now));
        let (parts, slots) = split(&text, id_slot.into_iter().chain(stamp_slot).collect());
        Ok(Operation {
            id: reply.operation.clone(),
            request,
            replies: reply.replies.clone(),
            parts,
            slots,
            reply_correlation: reply.reply_correlation.clone().filter(|_| reply.request_correlation.is_some()),
            discriminator: profile.discriminator().clone(),
        })
    }

    /// The first operation whose request can be sent: what shows a server still answers.
    pub fn probe(profile: &ProfileSpec) -> Result<Operation, String> {
        let mut why =
            format!("{} has no request/reply operation, so nothing shows that the server still answers", profile.name);
        for reply in &profile.replies {
            match Operation::of(profile, Some(&reply.operation)) {
                Ok(operation) => return Ok(operation),
                Err(error) => why = error,
            }
        }
        Err(why)
    }

    /// Where a reply names its request; without it, replies answer in order.
    pub fn reply_correlation(&self) -> Option<&str> {
        self.reply_correlation.as_deref()
    }

    /// Request number `n` of a connection, sent at `now_ms`.
    pub fn request_text(&self, n: u64, now_ms: u128) -> String {
        let mut text = String::with_capacity(self.parts.iter().map(String::len).sum::<usize>() + 24);
        for (index, part) in self.parts.iter().enumerate() {
            text.push_str(part);
            match self.slots.get(index) {
                Some(Slot::Id) => text.push_str(&n.to_string()),
                Some(Slot::IdString) => text.push_str(&format!("\"wsprobe-{n}\"")),
                Some(Slot::Now) => text.push_str(&now_ms.to_string()),
                None => {}
            }
        }
        text
    }

    /// What `message` (already parsed) says about this operation's requests.
    pub fn answer(&self, message: &Value) -> Answer {
        match self.discriminator.name_of(message) {
            Some(name) if self.replies.iter().any(|r| r == name) => {}
            _ => return Answer::NotAReply,
        }
        let Some(pointer) = &self.reply_correlation else { return Answer::InOrder };
        match message.pointer(pointer) {
            None | Some(Value::Null) => Answer::MissingId,
            Some(Value::Number(n)) => n.as_u64().map_or(Answer::UnknownId, Answer::To),
            Some(Value::String(s)) => {
                s.strip_prefix("wsprobe-").and_then(|n| n.parse().ok()).map_or(Answer::UnknownId, Answer::To)
            }
            Some(_) => Answer::UnknownId,
        }
    }

    /// [`Operation::answer`] for a message not parsed yet: parsed only when its name makes it a
    /// reply and the reply's id must be read.
    pub fn answer_text(&self, text: &str) -> Answer {
        match self.discriminator.name_in(text) {
            Some(name) if self.replies.contains(&name) => {}
            _ => return Answer::NotAReply,
        }
        if self.reply_correlation.is_none() {
            return Answer::InOrder;
        }
        serde_json::from_str::<Value>(text).map_or(Answer::NotAReply, |message| self.answer(&message))
    }
}

/// `text` cut at every occurrence of the slots' sentinels, in order of appearance.
fn split(text: &str, slots: Vec<(String, Slot)>) -> (Vec<String>, Vec<Slot>) {
    let mut parts = Vec::new();
    let mut found = Vec::new();
    let mut rest = text;
    loop {
        let next = slots
            .iter()
            .filter_map(|(sentinel, slot)| rest.find(sentinel.as_str()).map(|at| (at, sentinel, *slot)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, sentinel, slot)) => {
                parts.push(rest[..at].to_string());
                found.push(slot);
                rest = &rest[at + sentinel.len()..];
            }
            None => {
                parts.push(rest.to_string());
                return (parts, found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_shipped_heartbeat_is_a_stamped_ping_answered_in_order() {
        let catalog = Arc::new(crate::schema::Catalog::embedded().unwrap());
        let core = ProfileSpec::shipped(crate::profile::Profile::Core, catalog).unwrap();
        let operation = Operation::of(&core, None).unwrap();
        assert_eq!((operation.id.as_str(), operation.request.as_str()), ("coreAnswersPing", "Ping"));
        assert_eq!(operation.reply_correlation(), None);
        let text = operation.request_text(3, 1_700_000_000_123);
        let sent: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(sent["type"], "Ping");
        assert_eq!(sent["timestamp"], 1_700_000_000_123u64);
        assert!(core.catalog.validate(core.client, &sent).is_valid(), "{text}");
        assert_eq!(operation.answer(&serde_json::json!({"type": "Pong", "timestamp": 1})), Answer::InOrder);
        assert_eq!(operation.answer(&serde_json::json!({"type": "MarketData"})), Answer::NotAReply);
        assert!(Operation::of(&core, Some("nope")).unwrap_err().contains("coreAnswersPing"));
    }

    #[test]
    fn split_cuts_at_each_sentinel_in_order() {
        let (parts, slots) = split("{\"a\":2,\"b\":1,\"c\":2}", vec![("1".into(), Slot::Now), ("2".into(), Slot::Id)]);
        assert_eq!(parts, ["{\"a\":", ",\"b\":", ",\"c\":", "}"]);
        assert_eq!(slots, [Slot::Id, Slot::Now, Slot::Id]);
    }
}
