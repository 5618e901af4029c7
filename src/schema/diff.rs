//! What changed between two schema folders, per message type, and whom each change breaks.
//!
//! A server → client schema says what servers may send and clients must accept. A change that
//! lets it accept more (a field made optional, an enum value or a message type added, a type
//! widened, a range loosened) can break clients, which may now receive what they never handled;
//! a change that makes it accept less (a required field added, an enum value removed, a range
//! tightened) can break servers, whose messages may no longer conform. For client → server
//! schemas the roles swap. A change that is neither (a pattern or a `const` replaced) breaks both.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::SchemaSource;
use crate::profile::MessageSet;

/// Whom a change can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    BreaksClients,
    BreaksServers,
    BreaksBoth,
    Compatible,
}

impl Impact {
    pub fn label(self) -> &'static str {
        match self {
            Impact::BreaksClients => "breaking for clients",
            Impact::BreaksServers => "breaking for servers",
            Impact::BreaksBoth => "breaking for clients and servers",
            Impact::Compatible => "compatible",
        }
    }

    pub fn is_breaking(self) -> bool {
        self != Impact::Compatible
    }
}

/// Which way a change moves what the schema accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    AcceptsMore,
    AcceptsLess,
    AcceptsOther,
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `core`, `ai` or `client`.
    pub set: String,
    /// The message type.
    #[serde(rename = "type")]
    pub message_type: String,
    /// JSON Pointer into the message (`/data/price`); empty for the message itself.
    pub path: String,
    /// e.g. `required field added`.
    pub change: &'static str,
    pub detail: String,
    pub impact: Impact,
}

/// Every change from `old` to `new`, ordered by set, type and path.
pub fn diff(old: &SchemaSource, new: &SchemaSource) -> Vec<Change> {
    let (old_docs, new_docs) = (documents(old), documents(new));
    let mut changes = Vec::new();
    for set in MessageSet::FOLDERS {
        let (old_types, new_types) = (messages(&old_docs, set), messages(&new_docs, set));
        let names: BTreeSet<&String> = old_types.keys().chain(new_types.keys()).collect();
        for name in names {
            let mut walk = Walk { set, message_type: name, changes: &mut changes, old: &old_docs, new: &new_docs };
            match (old_types.get(name), new_types.get(name)) {
                (None, Some(_)) => walk.push("", "message type added", name.to_string(), Direction::AcceptsMore),
                (Some(_), None) => walk.push("", "message type removed", name.to_string(), Direction::AcceptsLess),
                (Some((old_file, old_schema)), Some((new_file, new_schema))) => {
                    walk.compare("", (old_file, old_schema), (new_file, new_schema), 0)
                }
                (None, None) => {}
            }
        }
    }
    changes
}

type Documents = BTreeMap<String, Value>;

fn documents(source: &SchemaSource) -> Documents {
    source.files().filter_map(|(path, text)| Some((path.to_string(), serde_json::from_str(text).ok()?))).collect()
}

/// Message schemas of one folder by their `type` const: type → (file, schema).
fn messages(docs: &Documents, set: MessageSet) -> BTreeMap<String, (String, Value)> {
    let prefix = format!("{}/", set.dir());
    docs.iter()
        .filter(|(path, _)| path.starts_with(&prefix) && !path.ends_with("envelope.json"))
        .filter_map(|(path, schema)| {
            let name = schema.pointer("/properties/type/const")?.as_str()?.to_string();
            Some((name, (path.clone(), schema.clone())))
        })
        .collect()
}

struct Walk<'a> {
    set: MessageSet,
    message_type: &'a str,
    changes: &'a mut Vec<Change>,
    old: &'a Documents,
    new: &'a Documents,
}

/// Deeper than this, `$ref` chains are taken as equal (they would be cycles in practice).
const MAX_DEPTH: usize = 24;
const LOWER_BOUNDS: [&str; 5] = ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];
const UPPER_BOUNDS: [&str; 5] = ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];

impl Walk<'_> {
    fn push(&mut self, path: &str, change: &'static str, detail: String, direction: Direction) {
        let server_to_client = self.set != MessageSet::Client;
        let impact = match (direction, server_to_client) {
            (Direction::Neutral, _) => Impact::Compatible,
            (Direction::AcceptsOther, _) => Impact::BreaksBoth,
            (Direction::AcceptsMore, true) | (Direction::AcceptsLess, false) => Impact::BreaksClients,
            (Direction::AcceptsLess, true) | (Direction::AcceptsMore, false) => Impact::BreaksServers,
        };
        self.changes.push(Change {
            set: self.set.dir().to_string(),
            message_type: self.message_type.to_string(),
            path: path.to_string(),
            change,
            detail,
            impact,
        });
    }

    fn compare(&mut self, path: &str, old: (&str, &Value), new: (&str, &Value), depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let (old_file, old) = resolve(self.old, old.0, old.1, 0);
        let (new_file, new) = resolve(self.new, new.0, new.1, 0);
        let changed: Vec<&str> = ANNOTATIONS.iter().copied().filter(|k| old.get(*k) != new.get(*k)).collect();
        if !changed.is_empty() {
            self.push(path, "annotation changed", changed.join(", "), Direction::Neutral);
        }
        // Equal text is not enough to stop: a `$ref` may point at a definition that changed.
        let (old, new) = (strip(old), strip(new));
        let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
            if old != new {
                self.push(path, "schema replaced", format!("{old} → {new}"), Direction::AcceptsOther);
            }
            return;
        };
        self.compare_types(path, o.get("type"), n.get("type"));
        self.compare_enum(path, o.get("enum"), n.get("enum"));
        for keyword in ["const", "pattern", "format"] {
            if o.get(keyword) != n.get(keyword) {
                let direction = match (o.get(keyword), n.get(keyword)) {
                    (Some(_), None) => Direction::AcceptsMore,
                    (None, Some(_)) => Direction::AcceptsLess,
                    _ => Direction::AcceptsOther,
                };
                let detail = format!("{keyword}: {} → {}", shown(o.get(keyword)), shown(n.get(keyword)));
                self.push(path, "constraint changed", detail, direction);
            }
        }
        for (keyword, lower) in LOWER_BOUNDS.iter().map(|k| (*k, true)).chain(UPPER_BOUNDS.iter().map(|k| (*k, false)))
        {
            let (was, now) = (o.get(keyword).and_then(Value::as_f64), n.get(keyword).and_then(Value::as_f64));
            if was == now {
                continue;
            }
            let tighter = match (was, now) {
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => (b > a) == lower,
                (None, None) => continue,
            };
            let detail = format!("{keyword}: {} → {}", shown(o.get(keyword)), shown(n.get(keyword)));
            if tighter {
                self.push(path, "range tightened", detail, Direction::AcceptsLess);
            } else {
                self.push(path, "range widened", detail, Direction::AcceptsMore);
            }
        }
        let closed = |m: &serde_json::Map<String, Value>| m.get("additionalProperties") == Some(&Value::Bool(false));
        match (closed(o), closed(n)) {
            (true, false) => {
                self.push(path, "object opened", "additionalProperties no longer false".into(), Direction::AcceptsMore)
            }
            (false, true) => {
                self.push(path, "object closed", "additionalProperties: false".into(), Direction::AcceptsLess)
            }
            _ => {}
        }
        self.compare_properties(path, (&old_file, o), (&new_file, n), depth);
        if let (Some(a), Some(b)) = (o.get("items"), n.get("items")) {
            self.compare(&format!("{path}/*"), (&old_file, a), (&new_file, b), depth + 1);
        }
        if let (Some(a), Some(b)) = (o.get("additionalProperties"), n.get("additionalProperties")) {
            if a.is_object() && b.is_object() {
                self.compare(&format!("{path}/*"), (&old_file, a), (&new_file, b), depth + 1);
            }
        }
    }

    fn compare_types(&mut self, path: &str, old: Option<&Value>, new: Option<&Value>) {
        let set = |v: Option<&Value>| -> Option<BTreeSet<String>> {
            let mut types: BTreeSet<String> = match v? {
                Value::String(t) => [t.clone()].into(),
                Value::Array(list) => list.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
                _ => return None,
            };
            // "number" includes "integer".
            if types.contains("number") {
                types.insert("integer".into());
            }
            Some(types)
        };
        let (was, now) = (set(old), set(new));
        if was == now {
            return;
        }
        let detail = format!("type: {} → {}", shown(old), shown(new));
        match (was, now) {
            (None, Some(_)) => self.push(path, "type narrowed", detail, Direction::AcceptsLess),
            (Some(_), None) => self.push(path, "type widened", detail, Direction::AcceptsMore),
            (Some(a), Some(b)) if a.is_subset(&b) => self.push(path, "type widened", detail, Direction::AcceptsMore),
            (Some(a), Some(b)) if b.is_subset(&a) => self.push(path, "type narrowed", detail, Direction::AcceptsLess),
            _ => self.push(path, "type changed", detail, Direction::AcceptsOther),
        }
    }

    fn compare_enum(&mut self, path: &str, old: Option<&Value>, new: Option<&Value>) {
        let values = |v: Option<&Value>| v.and_then(Value::as_array).cloned();
        match (values(old), values(new)) {
            (Some(was), Some(now)) => {
                for value in now.iter().filter(|v| !was.contains(v)) {
                    self.push(path, "enum value added", value.to_string(), Direction::AcceptsMore);
                }
                for value in was.iter().filter(|v| !now.contains(v)) {
                    self.push(path, "enum value removed", value.to_string(), Direction::AcceptsLess);
                }
            }
            (None, Some(now)) => self.push(path, "enum added", Value::Array(now).to_string(), Direction::AcceptsLess),
            (Some(was), None) => self.push(path, "enum removed", Value::Array(was).to_string(), Direction::AcceptsMore),
            (None, None) => {}
        }
    }

    fn compare_properties(
        &mut self,
        path: &str,
        old: (&str, &serde_json::Map<String, Value>),
        new: (&str, &serde_json::Map<String, Value>),
        depth: usize,
    ) {
        let required = |m: &serde_json::Map<String, Value>| -> BTreeSet<String> {
            m.get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let empty = serde_json::Map::new();
        let props = |m: &'_ serde_json::Map<String, Value>| {
            m.get("properties").and_then(Value::as_object).cloned().unwrap_or_else(|| empty.clone())
        };
        let (old_required, new_required) = (required(old.1), required(new.1));
        let (old_props, new_props) = (props(old.1), props(new.1));
        let names: BTreeSet<&String> = old_props.keys().chain(new_props.keys()).collect();
        for name in names {
            let here = format!("{path}/{name}");
            match (old_props.get(name), new_props.get(name)) {
                (None, Some(_)) if new_required.contains(name) => {
                    self.push(&here, "required field added", name.clone(), Direction::AcceptsLess)
                }
                (None, Some(_)) => self.push(&here, "optional field added", name.clone(), Direction::AcceptsMore),
                (Some(_), None) => {
                    // Closed objects refuse it now; clients that counted on a required one lose it.
                    let direction =
                        if old_required.contains(name) { Direction::AcceptsOther } else { Direction::AcceptsLess };
                    self.push(&here, "field removed", name.clone(), direction)
                }
                (Some(a), Some(b)) => {
                    match (old_required.contains(name), new_required.contains(name)) {
                        (false, true) => self.push(&here, "field made required", name.clone(), Direction::AcceptsLess),
                        (true, false) => self.push(&here, "field made optional", name.clone(), Direction::AcceptsMore),
                        _ => {}
                    }
                    self.compare(&here, (old.0, a), (new.0, b), depth + 1);
                }
                (None, None) => {}
            }
        }
    }
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "(none)".to_string(), Value::to_string)
}

/// Keywords that document a schema without changing what it accepts: a change to them is
/// reported, as compatible.
const ANNOTATIONS: [&str; 5] = ["description", "title", "examples", "$comment", "x-requirement"];

/// Follows `$ref`s (relative file paths and `#` pointers) to the schema they name, returning
/// it with the file it lives in.
fn resolve(docs: &Documents, file: &str, schema: &Value, depth: usize) -> (String, Value) {
    if depth < MAX_DEPTH {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
            let target_file = if target.is_empty() { file.to_string() } else { join(file, target) };
            if let Some(found) = docs.get(&target_file).and_then(|d| d.pointer(pointer)) {
                return resolve(docs, &target_file, found, depth + 1);
            }
        }
    }
    (file.to_string(), schema.clone())
}

/// The schema without its annotations and housekeeping keywords.
fn strip(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        for keyword in ANNOTATIONS.iter().chain(&["$schema", "$id"]) {
            map.remove(*keyword);
        }
    }
    schema
}

/// `core/Pong.json` + `../common.json` → `common.json`.
fn join(file: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = file.split('/').collect();
    parts.pop();
    for piece in relative.split('/') {
        match piece {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(files: &[(&str, Value)]) -> SchemaSource {
        SchemaSource::from_files(files.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect())
    }

    fn pong(extra: Value) -> Value {
        let mut schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["type", "timestamp", "side"],
            "properties": {
                "type": {"const": "Pong"},
                "timestamp": {"$ref": "../common.json#/$defs/ms"},
                "side": {"enum": ["LONG", "SHORT"]},
                "price": {"type": "number", "exclusiveMinimum": 0}
            }
        });
        merge(&mut schema, extra);
        schema
    }

    fn merge(into: &mut Value, patch: Value) {
        match (into, patch) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    if v.is_null() {
                        a.remove(&k);
                    } else {
                        merge(a.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
            (slot, patch) => *slot = patch,
        }
    }

    fn common(ms: Value) -> (&'static str, Value) {
        ("common.json", json!({"$defs": {"ms": ms}}))
    }

    fn changes(old: Value, new: Value) -> Vec<(String, &'static str, Impact)> {
        changes_in("core/Pong.json", old, new)
    }

    fn changes_in(file: &str, old: Value, new: Value) -> Vec<(String, &'static str, Impact)> {
        let base = common(json!({"type": "integer", "minimum": 0}));
        let (a, b) = (source(&[(file, old), base.clone()]), source(&[(file, new), base]));
        diff(&a, &b).into_iter().map(|c| (c.path, c.change, c.impact)).collect()
    }

    #[test]
    fn each_kind_of_change_is_classified() {
        use Impact::*;
        type Expected = Vec<(&'static str, &'static str, Impact)>;
        let cases: Vec<(Value, Expected)> = vec![
            (
                json!({"required": ["type", "timestamp", "side", "price"]}),
                vec![("/price", "field made required", BreaksServers)],
            ),
            (
                json!({"properties": {"extra": {"type": "string"}}, "required": ["type", "timestamp", "side", "extra"]}),
                vec![("/extra", "required field added", BreaksServers)],
            ),
            (
                json!({"properties": {"extra": {"type": "string"}}}),
                vec![("/extra", "optional field added", BreaksClients)],
            ),
            (json!({"properties": {"price": null}}), vec![("/price", "field removed", BreaksServers)]),
            (
                json!({"properties": {"side": null}, "required": ["type", "timestamp"]}),
                vec![("/side", "field removed", BreaksBoth)],
            ),
            (json!({"required": ["type", "timestamp"]}), vec![("/side", "field made optional", BreaksClients)]),
            (
                json!({"properties": {"side": {"enum": ["LONG", "SHORT", "FLAT"]}}}),
                vec![("/side", "enum value added", BreaksClients)],
            ),
            (json!({"properties": {"side": {"enum": ["LONG"]}}}), vec![("/side", "enum value removed", BreaksServers)]),
            (json!({"properties": {"price": {"type": "integer"}}}), vec![("/price", "type narrowed", BreaksServers)]),
            (
                json!({"properties": {"price": {"type": ["number", "string"]}}}),
                vec![("/price", "type widened", BreaksClients)],
            ),
            (json!({"properties": {"price": {"type": "string"}}}), vec![("/price", "type changed", BreaksBoth)]),
            (
                json!({"properties": {"price": {"exclusiveMinimum": 10}}}),
                vec![("/price", "range tightened", BreaksServers)],
            ),
            (
                json!({"properties": {"price": {"exclusiveMinimum": null}}}),
                vec![("/price", "range widened", BreaksClients)],
            ),
            (json!({"properties": {"price": {"maximum": 100}}}), vec![("/price", "range tightened", BreaksServers)]),
            (json!({"additionalProperties": null}), vec![("", "object opened", BreaksClients)]),
            (
                json!({"description": "reworded", "properties": {"price": {"description": "now in USDT"}}}),
                vec![("", "annotation changed", Compatible), ("/price", "annotation changed", Compatible)],
            ),
        ];
        for (patch, expected) in cases {
            let got = changes(pong(json!({})), pong(patch.clone()));
            let expected: Vec<(String, &str, Impact)> =
                expected.into_iter().map(|(p, c, i)| (p.to_string(), c, i)).collect();
            assert_eq!(got, expected, "{patch}");
        }
    }

    #[test]
    fn client_messages_swap_the_roles() {
        let old = pong(json!({}));
        let got =
            changes_in("client/Pong.json", old.clone(), pong(json!({"properties": {"side": {"enum": ["LONG"]}}})));
        assert_eq!(got, vec![("/side".to_string(), "enum value removed", Impact::BreaksClients)]);
    }

    #[test]
    fn message_types_added_and_removed_and_changes_behind_refs() {
        let old = source(&[("core/Pong.json", pong(json!({}))), common(json!({"type": "integer", "minimum": 0}))]);
        let new = source(&[
            ("core/Pong.json", pong(json!({}))),
            ("core/Hello.json", json!({"properties": {"type": {"const": "Hello"}}})),
            common(json!({"type": "integer", "minimum": 1000})),
        ]);
        let got: Vec<(String, String, &str, Impact)> =
            diff(&old, &new).into_iter().map(|c| (c.message_type, c.path, c.change, c.impact)).collect();
        assert_eq!(
            got,
            vec![
                ("Hello".into(), "".into(), "message type added", Impact::BreaksClients),
                ("Pong".into(), "/timestamp".into(), "range tightened", Impact::BreaksServers),
            ]
        );
        let removed = diff(&new, &old);
        assert!(removed.iter().any(|c| c.change == "message type removed" && c.impact == Impact::BreaksServers));
    }

    #[test]
    fn the_shipped_schemas_do_not_differ_from_themselves() {
        assert!(diff(&SchemaSource::embedded(), &SchemaSource::embedded()).is_empty());
    }
}
