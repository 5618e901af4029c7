//! A valid instance of a schema, for a document that gives a message no example: the request
//! a derived case sends, the template the fuzzer mutates. Plain choices (the first `enum`
//! value, the minimum, the shortest string) keep it predictable; the catalog checks the result
//! before anyone relies on it.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// An instance of `schema` (found in document `file` of `documents`, for its `$ref`s), or
/// `None` when the schema asks for something this does not build (`not`, patterns it would
/// have to satisfy, references it cannot follow).
pub fn instance(documents: &BTreeMap<String, Value>, file: &str, schema: &Value) -> Option<Value> {
    build(documents, file, schema, 0)
}

fn build(documents: &BTreeMap<String, Value>, file: &str, schema: &Value, depth: usize) -> Option<Value> {
    if depth > 16 {
        return None;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let (target, pointer) = super::compiled::resolve(file, reference)?;
        let resolved = documents.get(&target)?.pointer(&pointer)?;
        return build(documents, &target, resolved, depth + 1);
    }
    if schema.get("pattern").is_some() || schema.get("not").is_some() {
        return None;
    }
    if let Some(fixed) = schema.get("const") {
        return Some(fixed.clone());
    }
    for keyword in ["default", "examples", "enum"] {
        let value = schema.get(keyword);
        let value = if keyword == "default" { value } else { value.and_then(|v| v.get(0)) };
        if let Some(value) = value {
            return Some(value.clone());
        }
    }
    if let Some(first) = ["allOf", "anyOf", "oneOf"].iter().find_map(|k| schema.get(*k)?.get(0)) {
        // One branch is enough for anyOf and oneOf; for allOf it is a start the catalog checks.
        return build(documents, file, first, depth + 1);
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => return Some(Value::Null),
    };
    let number = |keyword: &str| schema.get(keyword).and_then(Value::as_f64);
    Some(match kind {
        "object" => {
            let mut object = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, property) in properties.into_iter().flatten() {
                // Members with a fixed value name the message; the others only when required.
                if required.contains(&name.as_str()) || property.get("const").is_some() {
                    object.insert(name.clone(), build(documents, file, property, depth + 1)?);
                }
            }
            Value::Object(object)
        }
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(Value::Bool(true));
            let count = number("minItems").unwrap_or(0.0) as usize;
            let item = if count > 0 { build(documents, file, &items, depth + 1)? } else { Value::Null };
            Value::Array(vec![item; count])
        }
        "string" => {
            let text = match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => "2026-01-01T00:00:00Z".to_string(),
                Some("date") => "2026-01-01".to_string(),
                Some("email") => "probe@example.invalid".to_string(),
                Some("uri") => "https://example.invalid/".to_string(),
                Some("uuid") => "00000000-0000-4000-8000-000000000000".to_string(),
                _ => "x".repeat(number("minLength").unwrap_or(1.0).max(1.0) as usize),
            };
            Value::String(text)
        }
        "integer" => json!(number("minimum")
            .map_or(0, |m| m.ceil() as i64)
            .max(number("exclusiveMinimum").map_or(i64::MIN, |m| m.floor() as i64 + 1))),
        "number" => json!(number("minimum").or(number("exclusiveMinimum").map(|m| m + 1.0)).unwrap_or(0.0)),
        "boolean" => json!(false),
        _ => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_fixes_the_discriminator_fills_what_is_required_and_follows_references() {
        let documents: BTreeMap<String, Value> = [
            ("common.json".to_string(), json!({"$defs": {"id": {"type": "integer", "minimum": 1}}})),
            (
                "msg/subscribe.json".to_string(),
                json!({
                    "type": "object",
                    "required": ["event", "pair", "reqid", "at"],
                    "properties": {
                        "event": {"const": "subscribe"},
                        "pair": {"type": "array", "items": {"type": "string", "minLength": 3}, "minItems": 1},
                        "reqid": {"$ref": "../common.json#/$defs/id"},
                        "at": {"type": "string", "format": "date-time"},
                        "depth": {"type": "integer", "enum": [10, 25]},
                    }
                }),
            ),
        ]
        .into();
        let schema = documents["msg/subscribe.json"].clone();
        assert_eq!(
            instance(&documents, "msg/subscribe.json", &schema),
            Some(json!({"event": "subscribe", "pair": ["xxx"], "reqid": 1, "at": "2026-01-01T00:00:00Z"}))
        );
        assert_eq!(instance(&documents, "x.json", &json!({"type": "string", "pattern": "^a+$"})), None);
        assert_eq!(instance(&documents, "x.json", &json!({"$ref": "missing.json"})), None);
    }
}
