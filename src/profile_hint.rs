//! Pointed at the AI endpoint with the default core profile, every message is "unknown type"
//! and every case fails for the same reason. When most of what arrived belongs to the other
//! profile, `run` and `load` say so and name the flag.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::profile::{Direction, MessageSet, Profile};
use crate::schema::Catalog;

/// Distinct types remembered; more are counted together, so a flood of odd types stays small.
const TYPES_KEPT: usize = 64;
const OTHER_TYPES: &str = "(other types)";

/// How many received messages had each `type` (bounded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeTally {
    counts: BTreeMap<String, u64>,
    total: u64,
}

impl TypeTally {
    /// Counts a received text frame by its `type`; frames without one count only in the total.
    pub fn note_text(&mut self, text: &str) {
        self.total += 1;
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
        self.total += other.total;
        for (message_type, n) in &other.counts {
            self.add(message_type, *n);
        }
    }

    pub fn total(&self) -> u64 {
        self.total
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

/// A hint when more than half of `total` received messages have types that the chosen
/// profile does not define and the other profile does. `counts` may hold only such foreign
/// types (as the load generator keeps) or every type (as a run's tally does).
pub fn hint(catalog: &Catalog, chosen: Profile, counts: &BTreeMap<String, u64>, total: u64) -> Option<String> {
    let other = match chosen {
        Profile::Core => Profile::Ai,
        Profile::Ai => Profile::Core,
    };
    let (here, there) = (MessageSet::of(chosen, Direction::Server), MessageSet::of(other, Direction::Server));
    let foreign: Vec<(&String, u64)> = counts
        .iter()
        .filter(|(t, _)| catalog.message(here, t).is_none() && catalog.message(there, t).is_some())
        .map(|(t, n)| (t, *n))
        .collect();
    let n: u64 = foreign.iter().map(|(_, n)| n).sum();
    if total == 0 || n * 2 <= total {
        return None;
    }
    let names: Vec<&str> = foreign.iter().map(|(t, _)| t.as_str()).collect();
    Some(format!(
        "{n} of {total} received messages are {} messages, which the {chosen} profile does not define but the {other} profile does: this looks like the {other} endpoint; pass --profile {other}",
        names.join(", "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(texts: &[&str]) -> TypeTally {
        let mut tally = TypeTally::default();
        texts.iter().for_each(|t| tally.note_text(t));
        tally
    }

    #[test]
    fn the_ai_welcome_under_the_core_profile_gives_a_hint() {
        let catalog = Catalog::embedded().unwrap();
        let t = tally(&[r#"{"type":"connection","message":"hi"}"#, r#"{"type":"Pong"}"#, r#"{"type":"connection"}"#]);
        let hint = hint(&catalog, Profile::Core, t.counts(), t.total()).expect("a hint");
        assert!(hint.contains("pass --profile ai") && hint.contains("2 of 3"), "{hint}");
        assert_eq!(super::hint(&catalog, Profile::Ai, t.counts(), t.total()), None);
    }

    #[test]
    fn shared_types_garbage_and_a_minority_give_none() {
        let catalog = Catalog::embedded().unwrap();
        let t = tally(&[r#"{"type":"Pong"}"#, "not json", r#"{"type":"Nonsense"}"#, r#"{"type":"connection"}"#]);
        assert_eq!(hint(&catalog, Profile::Core, t.counts(), t.total()), None);
        assert_eq!(hint(&catalog, Profile::Core, t.counts(), 0), None);
    }

    #[test]
    fn a_flood_of_distinct_types_stays_bounded() {
        let mut t = TypeTally::default();
        for i in 0..1000 {
            t.note_text(&format!(r#"{{"type":"T{i}"}}"#));
        }
        assert_eq!(t.counts().len(), TYPES_KEPT + 1);
        assert_eq!(t.total(), 1000);
    }
}
