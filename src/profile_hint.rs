//! Pointed at the AI endpoint with the default core profile, every message is "unknown type"
//! and every case fails for the same reason. When most of what arrived belongs to the other
//! profile, `run` and `load` say so and name the flag.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::profile::{Direction, MessageSet, ProfileSpec};
use crate::schema::Catalog;

/// Distinct types remembered; more are counted together, so a flood of odd types stays small.
const TYPES_KEPT: usize = 64;
const OTHER_TYPES: &str = "(other types)";

/// How many received messages had each `type` (bounded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeTally {
    counts: BTreeMap<String, u64>,
}

impl TypeTally {
    /// Counts a received text frame by its `type`; frames without one are not counted.
    pub fn note_text(&mut self, text: &str) {
        if let Some(message_type) = message_type(text) {
            self.add(&message_type, 1);
        }
    }

    fn add(&mut self, message_type: &str, n: u64) {
        let key = if self.counts.len() < TYPES_KEPT || self.counts.contains_key(message_type) {
            message_type
        } else {
            OTHER_TYPES
        };
        *self.counts.entry(key.to_string()).or_default() += n;
    }

    pub fn merge(&mut self, other: &TypeTally) {
        for (message_type, n) in &other.counts {
            self.add(message_type, *n);
        }
    }

    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }
}

fn message_type(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        message_type: Option<Value>,
    }
    match serde_json::from_str::<TypeOnly>(text).ok()?.message_type? {
        Value::String(t) => Some(t),
        _ => None,
    }
}

/// A hint when more received messages have types that only the other profile defines than
/// types that only the chosen profile defines. Types both define (Pong, Error,
/// AISignalReceived) say nothing either way. `counts` holds every received type. Only a
/// shipped profile has another to mistake it for.
pub fn hint(chosen: &ProfileSpec, counts: &BTreeMap<String, u64>) -> Option<String> {
    let (catalog, here, there) = sets(chosen)?;
    let own: u64 = counts
        .iter()
        .filter(|(t, _)| catalog.message(here, t).is_some() && catalog.message(there, t).is_none())
        .map(|(_, n)| n)
        .sum();
    hint_from(chosen, counts, own)
}

/// The same decision from the types the chosen profile does not define (`foreign`, which may
/// hold others too) and a count of messages whose types only the chosen profile defines, as
/// the load generator keeps them.
pub fn hint_from(chosen: &ProfileSpec, foreign: &BTreeMap<String, u64>, own: u64) -> Option<String> {
    let (catalog, here, there) = sets(chosen)?;
    let theirs: Vec<(&str, u64)> = foreign
        .iter()
        .filter(|(t, _)| catalog.message(here, t).is_none() && catalog.message(there, t).is_some())
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    let n: u64 = theirs.iter().map(|(_, n)| n).sum();
    if n == 0 || n <= own {
        return None;
    }
    let other = chosen.other?;
    let names: Vec<&str> = theirs.iter().map(|(t, _)| *t).collect();
    Some(format!(
        "{n} received message(s) are of types only the {other} profile defines ({}), against {own} of types only the {} profile defines: this looks like the {other} endpoint; pass --profile {other}",
        names.join(", "),
        chosen.name,
    ))
}

/// The catalog, the chosen profile's server set and the other profile's.
fn sets(chosen: &ProfileSpec) -> Option<(&Catalog, MessageSet, MessageSet)> {
    Some((&chosen.catalog, chosen.server, MessageSet::of(chosen.other?, Direction::Server)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    fn hint_for(chosen: Profile, counts: &BTreeMap<String, u64>) -> Option<String> {
        hint(&ProfileSpec::builtin(chosen), counts)
    }

    fn tally(texts: &[&str]) -> TypeTally {
        let mut tally = TypeTally::default();
        texts.iter().for_each(|t| tally.note_text(t));
        tally
    }

    #[test]
    fn the_ai_endpoint_under_the_core_profile_gives_a_hint() {
        // Shared types (Pong, AISignalReceived) outnumber the welcome, and do not dilute it.
        let t = tally(&[
            r#"{"type":"connection","message":"hi"}"#,
            r#"{"type":"Pong"}"#,
            r#"{"type":"Pong"}"#,
            r#"{"type":"AISignalReceived"}"#,
            r#"{"type":"connection"}"#,
        ]);
        let hint = hint_for(Profile::Core, t.counts()).expect("a hint");
        assert!(hint.contains("pass --profile ai") && hint.starts_with("2 received"), "{hint}");
        assert_eq!(hint_for(Profile::Ai, t.counts()), None);
    }

    #[test]
    fn the_core_endpoint_under_the_ai_profile_gives_a_hint() {
        let t = tally(&[r#"{"type":"Connected"}"#, r#"{"type":"MarketData"}"#, r#"{"type":"Pong"}"#]);
        let hint = hint_for(Profile::Ai, t.counts()).expect("a hint");
        assert!(hint.contains("pass --profile core"), "{hint}");
    }

    #[test]
    fn own_types_garbage_and_nothing_give_none() {
        let t = tally(&[r#"{"type":"Pong"}"#, "not json", r#"{"type":"Nonsense"}"#]);
        assert_eq!(hint_for(Profile::Core, t.counts()), None);
        // A core server that once sends the AI welcome is still a core server.
        let t = tally(&[r#"{"type":"Connected"}"#, r#"{"type":"MarketData"}"#, r#"{"type":"connection"}"#]);
        assert_eq!(hint_for(Profile::Core, t.counts()), None);
        assert_eq!(hint_for(Profile::Core, &BTreeMap::new()), None);
    }

    #[test]
    fn a_flood_of_distinct_types_stays_bounded() {
        let mut t = TypeTally::default();
        for i in 0..1000 {
            t.note_text(&format!(r#"{{"type":"T{i}"}}"#));
        }
        assert_eq!(t.counts().len(), TYPES_KEPT + 1);
        assert_eq!(t.counts().values().sum::<u64>(), 1000);
    }
}
