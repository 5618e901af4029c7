//! Self-checks for spec authors: every schema carries the spec's examples and accepts them,
//! every dispatch document agrees with the code's dispatch, and every JSON example in the
//! spec's Markdown validates under the schema its `type` names.

use serde_json::Value;

use super::{spec_examples, Catalog, MessageSet, ENVELOPE_FILE};

/// The result of checking one example (or one schema-level property).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleCheck {
    /// Where the example lives: `core/Pong.json examples[0]`, `API-WEBSOCKET.md:153`.
    pub subject: String,
    /// The message type and the sets it was validated under.
    pub message_type: Option<String>,
    pub sets: Vec<MessageSet>,
    /// What is wrong; empty when the example passed.
    pub problems: Vec<String>,
}

impl ExampleCheck {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Validates every example carried by every message schema, through its own schema and
/// through the set's `envelope.json`, and checks that each envelope lists exactly the
/// message types the set defines.
pub fn check_schema_examples(catalog: &Catalog) -> Vec<ExampleCheck> {
    let mut checks = Vec::new();
    for set in MessageSet::FOLDERS {
        let envelope = compile_envelope(catalog, set);
        if let Err(problem) = &envelope {
            checks.push(ExampleCheck {
                subject: format!("{}/{ENVELOPE_FILE}", set.dir()),
                message_type: None,
                sets: vec![set],
                problems: vec![problem.clone()],
            });
        }
        for schema in catalog.messages(set) {
            if schema.examples.is_empty() {
                checks.push(ExampleCheck {
                    subject: schema.file.clone(),
                    message_type: Some(schema.message_type.clone()),
                    sets: vec![set],
                    problems: vec!["carries no `examples`: add the spec's example message(s)".into()],
                });
            }
            for (index, example) in schema.examples.iter().enumerate() {
                let verdict = catalog.validate(set, example);
                let mut problems: Vec<String> = verdict.violations.iter().map(|v| v.to_string()).collect();
                if verdict.message_type.as_deref() != Some(schema.message_type.as_str()) {
                    problems.push(format!("example's `type` is not {:?}", schema.message_type));
                }
                if let Ok(Some(envelope)) = &envelope {
                    problems.extend(envelope.iter_errors(example).map(|e| format!("{ENVELOPE_FILE} rejects it: {e}")));
                }
                checks.push(ExampleCheck {
                    subject: format!("{} examples[{index}]", schema.file),
                    message_type: Some(schema.message_type.clone()),
                    sets: vec![set],
                    problems,
                });
            }
        }
    }
    checks
}

/// Compiles `<set>/envelope.json` when present and checks its `type` enum against the set.
fn compile_envelope(catalog: &Catalog, set: MessageSet) -> Result<Option<jsonschema::Validator>, String> {
    let file = format!("{}/{ENVELOPE_FILE}", set.dir());
    let Some(doc) = catalog.documents().get(&file) else { return Ok(None) };
    let mut listed: Vec<&str> = doc
        .pointer("/properties/type/enum")
        .and_then(Value::as_array)
        .map(|types| types.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    listed.sort_unstable();
    let defined: Vec<&str> = catalog.messages(set).map(|m| m.message_type.as_str()).collect();
    if listed != defined {
        return Err(format!(
            "lists types [{}] but {}/ defines [{}]; keep properties.type.enum and allOf in step",
            listed.join(", "),
            set.dir(),
            defined.join(", ")
        ));
    }
    catalog.compile_document(&file).map(Some).map_err(|e| e.to_string())
}

/// Validates every ```json block of a Markdown spec against the schema(s) for its `type`.
/// A type defined by several sets (Pong, Error, AISignalReceived) must validate in each.
pub fn check_spec(catalog: &Catalog, spec_name: &str, markdown: &str) -> Vec<ExampleCheck> {
    spec_examples::extract(markdown)
        .into_iter()
        .map(|example| {
            let subject = format!("{spec_name}:{}", example.line);
            let message = match example.parsed {
                Ok(message) => message,
                Err(reason) => {
                    return ExampleCheck { subject, message_type: None, sets: vec![], problems: vec![reason] }
                }
            };
            let Some(message_type) = message.get("type").and_then(Value::as_str).map(str::to_string) else {
                return ExampleCheck {
                    subject,
                    message_type: None,
                    sets: vec![],
                    problems: vec!["has no string `type`, so no schema can be chosen for it".into()],
                };
            };
            let sets = catalog.sets_defining(&message_type);
            let mut problems = Vec::new();
            if sets.is_empty() {
                problems.push(format!("no schema defines message type {message_type:?}"));
            }
            for set in &sets {
                for violation in catalog.validate(*set, &message).violations {
                    problems.push(format!("as a {set} message, {violation}"));
                }
            }
            ExampleCheck { subject, message_type: Some(message_type), sets, problems }
        })
        .collect()
}
