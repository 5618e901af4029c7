//! The schemas are the single source of truth: this module loads them, compiles each once,
//! and dispatches a message to its schema by `type`.
//!
//! Dispatch happens in code rather than through `envelope.json` because a failed `allOf/if`
//! chain produces unreadable errors; `envelope.json` is kept for other tools, and a test keeps
//! the two in agreement.

pub mod check;
mod compiled;
/// A `$ref` from a schema file: the target file and JSON Pointer, for the fuzzer's generator.
pub(crate) use compiled::resolve as resolve_reference;
pub mod diff;
pub mod scan;
mod source;
pub mod spec_examples;
pub mod tape;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde::Serialize;
use serde_json::Value;

pub use crate::profile::MessageSet;
use compiled::Program;
use scan::Scanned;
pub use source::SchemaSource;
use tape::{Tape, TapeJson, TapeNode};

/// Base URI under which schema files are registered, so relative `$ref`s resolve offline.
/// `.invalid` is reserved (RFC 2606): nothing is ever fetched from it.
pub(crate) const BASE_URI: &str = "https://wsprobe.invalid/schemas/";

/// The file that holds shared definitions; not a message schema.
const COMMON_FILE: &str = "common.json";
/// The per-set dispatch document for other tools; not a message schema.
pub(crate) const ENVELOPE_FILE: &str = "envelope.json";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no *.json schema files found under {0}; point --schemas at a folder laid out like wsprobe's schemas/")]
    EmptyDir(PathBuf),
    #[error("{file} is not valid JSON (line {line}, column {column}): {reason}")]
    Parse { file: String, line: usize, column: usize, reason: String },
    #[error("cannot register {file}: {reason}")]
    Register { file: String, reason: String },
    #[error("{file} does not compile: {reason}")]
    Compile { file: String, reason: String },
    #[error("{file} is a message schema but has no `properties.type.const`; add the message's type name there")]
    MissingTypeConst { file: String },
    #[error("{first} and {second} both define message type {message_type:?} in {set}/")]
    DuplicateType { set: MessageSet, message_type: String, first: String, second: String },
    #[error("no message schemas in {set}/ of {origin}")]
    EmptySet { set: MessageSet, origin: String },
}

/// One message type's compiled schema and what it says about itself.
pub struct MessageSchema {
    /// Path relative to the schema folder, e.g. `core/Pong.json`.
    pub file: String,
    pub message_type: String,
    pub title: Option<String>,
    /// The spec requirement id (`x-requirement`), where the spec names one.
    pub requirement: Option<String>,
    /// The spec's example messages, carried in the schema's `examples` keyword.
    pub examples: Vec<Value>,
    validator: Validator,
    /// The same schema compiled for [`tape`] instances, on first use (only `validate` needs it);
    /// `None` when it does not compile that way, which sends every message the `serde_json` way.
    tape_validator: OnceLock<Option<Validator<TapeJson>>>,
    /// The same schema compiled to direct checks ([`compiled`]), on first use; `None` when it
    /// uses keywords that are not compiled there, which leaves tapes to `tape_validator`.
    program: OnceLock<Option<Program>>,
}

/// Every schema document, with one compiled validator per message type and set.
pub struct Catalog {
    origin: String,
    documents: BTreeMap<String, Value>,
    /// Every document under its base URI, so any of them can be compiled with `$ref`s resolved.
    registry: jsonschema::Registry<'static>,
    sets: BTreeMap<MessageSet, BTreeMap<String, MessageSchema>>,
}

/// A single problem found in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer into the message (`/data/price`); empty for the whole message.
    pub instance_path: String,
    /// The schema file and JSON Pointer of the keyword that failed (`core/MarketData.json#/properties/data/...`).
    pub schema_path: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.instance_path.is_empty() { "(root)" } else { &self.instance_path };
        write!(f, "at {at}: {} [schema {}]", self.message, self.schema_path)
    }
}

/// The result of checking one message: its `type` (when it had a usable one) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub message_type: Option<String>,
    pub violations: Vec<Violation>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

impl Catalog {
    /// The schemas compiled into this binary. They are checked by the test suite, so a
    /// failure here is a build defect rather than a user error.
    pub fn embedded() -> Result<Catalog, SchemaError> {
        Catalog::compile(&SchemaSource::embedded())
    }

    pub fn compile(source: &SchemaSource) -> Result<Catalog, SchemaError> {
        let mut documents = BTreeMap::new();
        for (file, text) in source.files() {
            let value: Value = serde_json::from_str(text).map_err(|e| SchemaError::Parse {
                file: file.to_string(),
                line: e.line(),
                column: e.column(),
                reason: e.to_string(),
            })?;
            documents.insert(file.to_string(), value);
        }

        let mut builder = jsonschema::Registry::new();
        for (file, doc) in &documents {
            builder = builder
                .add(format!("{BASE_URI}{file}"), doc.clone())
                .map_err(|e| SchemaError::Register { file: file.clone(), reason: e.to_string() })?;
        }
        let registry = builder
            .prepare()
            .map_err(|e| SchemaError::Register { file: source.origin().to_string(), reason: e.to_string() })?;

        let mut sets = BTreeMap::new();
        for set in MessageSet::ALL {
            let mut messages: BTreeMap<String, MessageSchema> = BTreeMap::new();
            let prefix = format!("{}/", set.dir());
            for (file, doc) in documents.range(prefix.clone()..) {
                let Some(name) = file.strip_prefix(&prefix) else { break };
                if name.contains('/') || name == ENVELOPE_FILE || name == COMMON_FILE {
                    continue;
                }
                let schema = compile_message(&registry, file, doc)?;
                if let Some(previous) = messages.get(&schema.message_type) {
                    return Err(SchemaError::DuplicateType {
                        set,
                        message_type: schema.message_type.clone(),
                        first: previous.file.clone(),
                        second: file.clone(),
                    });
                }
                messages.insert(schema.message_type.clone(), schema);
            }
            if messages.is_empty() {
                return Err(SchemaError::EmptySet { set, origin: source.origin().to_string() });
            }
            sets.insert(set, messages);
        }
        Ok(Catalog { origin: source.origin().to_string(), documents, registry, sets })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Compiles any document of the catalog (an envelope, say) the way message schemas are compiled.
    pub fn compile_document(&self, file: &str) -> Result<Validator, SchemaError> {
        let doc = self.documents.get(file).ok_or_else(|| SchemaError::Compile {
            file: file.to_string(),
            reason: "no such document in the catalog".into(),
        })?;
        compile_validator(&self.registry, file, doc)
    }

    /// Every schema document by relative path, message schemas and helpers alike.
    pub fn documents(&self) -> &BTreeMap<String, Value> {
        &self.documents
    }

    /// The message schemas of one set, by type.
    pub fn messages(&self, set: MessageSet) -> impl Iterator<Item = &MessageSchema> {
        self.sets.get(&set).into_iter().flat_map(|m| m.values())
    }

    pub fn message(&self, set: MessageSet, message_type: &str) -> Option<&MessageSchema> {
        self.sets.get(&set)?.get(message_type)
    }

    /// The sets whose schemas define `message_type`.
    pub fn sets_defining(&self, message_type: &str) -> Vec<MessageSet> {
        MessageSet::ALL.into_iter().filter(|s| self.message(*s, message_type).is_some()).collect()
    }

    /// The fastest path, for streams of mostly valid messages: one pass over `text` (see
    /// [`scan`]), with the message's `type`. `None` when `type` is neither the first nor the
    /// last member, or its schema is not compiled: the caller then takes [`Catalog::valid_type`].
    pub fn scan<'t>(&self, set: MessageSet, text: &'t str, tape: &mut Tape) -> Option<(&'t str, Scanned)> {
        let message_type = scan::message_type(text)?;
        let program = self.program(self.message(set, message_type)?)?;
        Some((message_type, scan::scan(program, text, tape)))
    }

    fn program<'c>(&'c self, schema: &'c MessageSchema) -> Option<&'c Program> {
        schema.program.get_or_init(|| Program::compile(&self.documents, &schema.file).ok()).as_ref()
    }

    /// The fast path for streams of mostly valid messages: the message's `type` when `root`
    /// is certainly valid in `set`. `None` means "not known to be valid": the caller checks the
    /// message with [`Catalog::validate`], which decides and explains.
    pub fn valid_type<'t>(&self, set: MessageSet, root: TapeNode<'t>) -> Option<&'t str> {
        let message_type = root.member("type")?.str()?;
        let schema = self.message(set, message_type)?;
        if let Some(Ok(valid)) = self.program(schema).map(|program| program.check(root)) {
            return valid.then_some(message_type);
        }
        let validator = schema
            .tape_validator
            .get_or_init(|| {
                let doc = self.documents.get(&schema.file)?;
                compile_validator_for::<TapeJson>(&self.registry, &schema.file, doc).ok()
            })
            .as_ref()?;
        validator.is_valid(root).then_some(message_type)
    }

    /// Checks one message against the schema its `type` selects within `set`.
    pub fn validate(&self, set: MessageSet, message: &Value) -> Verdict {
        let envelope = |pointer: &str| format!("{}/{ENVELOPE_FILE}#{pointer}", set.dir());
        let reject = |message_type: Option<String>, pointer: &str, message: String| Verdict {
            message_type,
            violations: vec![Violation { instance_path: String::new(), schema_path: envelope(pointer), message }],
        };
        let Some(object) = message.as_object() else {
            return reject(None, "/type", format!("expected a JSON object, found {}", describe(message)));
        };
        let message_type = match object.get("type") {
            None => return reject(None, "/required", "missing required property \"type\"".into()),
            Some(Value::String(t)) => t,
            Some(other) => {
                return Verdict {
                    message_type: None,
                    violations: vec![Violation {
                        instance_path: "/type".into(),
                        schema_path: envelope("/properties/type/enum"),
                        message: format!("\"type\" must be a string naming a message, found {}", describe(other)),
                    }],
                }
            }
        };
        let Some(schema) = self.message(set, message_type) else {
            let known: Vec<&str> = self.messages(set).map(|m| m.message_type.as_str()).collect();
            return Verdict {
                message_type: Some(message_type.clone()),
                violations: vec![Violation {
                    instance_path: "/type".into(),
                    schema_path: envelope("/properties/type/enum"),
                    message: format!(
                        "unknown message type {message_type:?} for {set} messages (expected one of: {})",
                        known.join(", ")
                    ),
                }],
            };
        };
        Verdict { message_type: Some(message_type.clone()), violations: schema.violations(message) }
    }
}

impl MessageSchema {
    /// Every violation of this schema, or none. The fast `is_valid` path comes first because
    /// almost every message in a capture or under load is valid.
    pub fn violations(&self, message: &Value) -> Vec<Violation> {
        if self.validator.is_valid(message) {
            return Vec::new();
        }
        self.validator
            .iter_errors(message)
            .map(|error| Violation {
                instance_path: error.instance_path().as_str().to_string(),
                schema_path: match error.absolute_keyword_location() {
                    // After a `$ref` the keyword lives in another file: name that file, since that is where to edit.
                    Some(uri) => uri.as_str().strip_prefix(BASE_URI).unwrap_or(uri.as_str()).to_string(),
                    None => format!("{}#{}", self.file, error.schema_path().as_str()),
                },
                message: error.to_string(),
            })
            .collect()
    }
}

fn compile_message(registry: &jsonschema::Registry<'_>, file: &str, doc: &Value) -> Result<MessageSchema, SchemaError> {
    let message_type = doc
        .pointer("/properties/type/const")
        .and_then(Value::as_str)
        .ok_or_else(|| SchemaError::MissingTypeConst { file: file.to_string() })?
        .to_string();
    let validator = compile_validator(registry, file, doc)?;
    Ok(MessageSchema {
        file: file.to_string(),
        message_type,
        title: doc.get("title").and_then(Value::as_str).map(str::to_string),
        requirement: doc.get("x-requirement").and_then(Value::as_str).map(str::to_string),
        examples: doc.get("examples").and_then(Value::as_array).cloned().unwrap_or_default(),
        validator,
        tape_validator: OnceLock::new(),
        program: OnceLock::new(),
    })
}

/// Draft 2020-12 with `format` asserted, relative `$ref`s resolved through `registry`.
fn compile_validator(registry: &jsonschema::Registry<'_>, file: &str, doc: &Value) -> Result<Validator, SchemaError> {
    compile_validator_for::<jsonschema::json::SerdeJson>(registry, file, doc)
}

/// [`compile_validator`] for instances in the JSON representation `F`.
fn compile_validator_for<F: jsonschema::json::Json>(
    registry: &jsonschema::Registry<'_>,
    file: &str,
    doc: &Value,
) -> Result<Validator<F>, SchemaError> {
    jsonschema::options_for::<F>()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_base_uri(format!("{BASE_URI}{file}"))
        .with_registry(registry)
        .should_validate_formats(true)
        .build(doc)
        .map_err(|e| SchemaError::Compile { file: file.to_string(), reason: e.to_string() })
}

/// "an array", "a string", ... for error messages.
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
