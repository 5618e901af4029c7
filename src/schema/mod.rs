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
pub mod instance;
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
    /// How violations name this schema's place instead of `file` ([`Entry::shown_as`]).
    shown_as: Option<String>,
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
    /// Where a message says which one it is.
    discriminator: Discriminator,
    /// Per set, where the list of its messages lives (`core/envelope.json`, or a channel's
    /// messages in an AsyncAPI document, `feed.yaml#/channels/public/messages`): named by the
    /// violation of a message that matches none.
    dispatch: BTreeMap<MessageSet, String>,
}

/// The member of a message that names it: `/type` in Bot Core, `/event` in many feeds. A JSON
/// Pointer, so it may sit deeper than the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discriminator {
    pointer: String,
    /// The member in quotes (`"type"`), for the one-pass scan; `None` below the root.
    quoted_member: Option<Vec<u8>>,
}

impl Discriminator {
    /// `pointer` is a JSON Pointer (`/type`); a bare name (`type`) is taken as one below the root.
    pub fn new(pointer: &str) -> Discriminator {
        let pointer = if pointer.starts_with('/') { pointer.to_string() } else { format!("/{pointer}") };
        let member = &pointer[1..];
        let plain = !member.is_empty() && !member.contains(['/', '~', '"', '\\']);
        Discriminator { quoted_member: plain.then(|| format!("\"{member}\"").into_bytes()), pointer }
    }

    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// How messages name it: `type`, `header/kind`.
    pub fn label(&self) -> &str {
        &self.pointer[1..]
    }

    /// The message's name for itself, when it has a string there.
    pub fn name_of<'v>(&self, message: &'v Value) -> Option<&'v str> {
        message.pointer(&self.pointer)?.as_str()
    }

    /// [`Discriminator::name_of`] a text frame: read where producers put it (first or last)
    /// without parsing the rest, else parsed.
    pub fn name_in(&self, text: &str) -> Option<String> {
        if let Some(name) = self.quoted_member.as_deref().and_then(|quoted| scan::message_type(text, quoted)) {
            return Some(name.to_string());
        }
        self.name_of(&serde_json::from_str::<Value>(text).ok()?).map(str::to_string)
    }

    /// The name a message schema fixes with `const` (or an `enum` of one value) at the
    /// discriminator: in `properties`, in any member of an `allOf`, or alike in every branch of
    /// a `oneOf`/`anyOf` (a message whose shapes vary but whose name does not).
    pub fn fixed_in(&self, schema: &Value) -> Option<String> {
        let tokens: Vec<&str> = self.pointer.split('/').skip(1).collect();
        fixed_at(schema, &tokens, 0)
    }
}

/// Every member of `schema`'s root that it fixes to a string, by name (see
/// [`Discriminator::fixed_in`]): the candidates for a discriminator.
pub fn fixed_members(schema: &Value) -> BTreeMap<String, String> {
    let mut names: Vec<String> = Vec::new();
    collect_property_names(schema, &mut names, 0);
    names.into_iter().filter_map(|name| Discriminator::new(&name).fixed_in(schema).map(|value| (name, value))).collect()
}

fn collect_property_names(schema: &Value, names: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    for name in schema.get("properties").and_then(Value::as_object).into_iter().flat_map(|p| p.keys()) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    for keyword in ["allOf", "oneOf", "anyOf"] {
        for branch in schema.get(keyword).and_then(Value::as_array).into_iter().flatten() {
            collect_property_names(branch, names, depth + 1);
        }
    }
}

fn fixed_at(schema: &Value, tokens: &[&str], depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let own = match tokens.split_first() {
        None => schema
            .get("const")
            .or_else(|| schema.get("enum")?.as_array().filter(|e| e.len() == 1)?.first())
            .and_then(Value::as_str)
            .map(str::to_string),
        Some((first, rest)) => schema
            .get("properties")
            .and_then(|properties| properties.get(*first))
            .and_then(|member| fixed_at(member, rest, depth + 1)),
    };
    own.or_else(|| {
        let all = schema.get("allOf").and_then(Value::as_array);
        all.into_iter().flatten().find_map(|member| fixed_at(member, tokens, depth + 1))
    })
    .or_else(|| {
        ["oneOf", "anyOf"].iter().find_map(|keyword| {
            let branches = schema.get(*keyword)?.as_array()?;
            let values: Vec<Option<String>> = branches.iter().map(|b| fixed_at(b, tokens, depth + 1)).collect();
            let first = values.first()?.clone()?;
            values.iter().all(|v| v.as_deref() == Some(first.as_str())).then_some(first)
        })
    })
}

/// One message schema for [`Catalog::assemble`]: the set, the document it is, its name.
pub struct Entry {
    pub set: MessageSet,
    pub file: String,
    pub message_type: String,
    /// The message's title where the document has none of its own (an AsyncAPI message name).
    pub title: Option<String>,
    /// Examples from outside the schema (an AsyncAPI message's); the schema's own when empty.
    pub examples: Vec<Value>,
    /// How violations name the schema's place, when `file` is not where to edit it (a payload
    /// inside an AsyncAPI document: `feed.yaml#/components/messages/ping/payload`).
    pub shown_as: Option<String>,
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

    /// The schema tree: one set per folder (`core/`, `ai/`, `client/`), each message named by
    /// its `properties.type.const`.
    pub fn compile(source: &SchemaSource) -> Result<Catalog, SchemaError> {
        let documents = parse_documents(source)?;
        let discriminator = Discriminator::new("/type");
        let mut entries = Vec::new();
        for set in MessageSet::FOLDERS {
            let before = entries.len();
            let prefix = format!("{}/", set.dir());
            for (file, doc) in documents.range(prefix.clone()..) {
                let Some(name) = file.strip_prefix(&prefix) else { break };
                if name.contains('/') || name == ENVELOPE_FILE || name == COMMON_FILE {
                    continue;
                }
                let message_type =
                    discriminator.fixed_in(doc).ok_or_else(|| SchemaError::MissingTypeConst { file: file.clone() })?;
                entries.push(Entry {
                    set,
                    file: file.clone(),
                    message_type,
                    title: None,
                    examples: Vec::new(),
                    shown_as: None,
                });
            }
            if entries.len() == before {
                return Err(SchemaError::EmptySet { set, origin: source.origin().to_string() });
            }
        }
        let dispatch =
            MessageSet::FOLDERS.into_iter().map(|set| (set, format!("{}/{ENVELOPE_FILE}", set.dir()))).collect();
        Catalog::assemble(source.origin(), documents, entries, discriminator, dispatch)
    }

    /// A catalog of the given message schemas. `documents` holds them and every document they
    /// refer to, by path relative to one folder; `dispatch` names, per set, where its list of
    /// messages lives.
    pub fn assemble(
        origin: &str,
        documents: BTreeMap<String, Value>,
        entries: Vec<Entry>,
        discriminator: Discriminator,
        dispatch: BTreeMap<MessageSet, String>,
    ) -> Result<Catalog, SchemaError> {
        let mut builder = jsonschema::Registry::new();
        for (file, doc) in &documents {
            builder = builder
                .add(format!("{BASE_URI}{file}"), doc.clone())
                .map_err(|e| SchemaError::Register { file: file.clone(), reason: e.to_string() })?;
        }
        let registry =
            builder.prepare().map_err(|e| SchemaError::Register { file: origin.to_string(), reason: e.to_string() })?;

        let mut sets: BTreeMap<MessageSet, BTreeMap<String, MessageSchema>> = BTreeMap::new();
        for entry in entries {
            let doc = documents.get(&entry.file).ok_or_else(|| SchemaError::Compile {
                file: entry.file.clone(),
                reason: "no such document in the catalog".into(),
            })?;
            let mut schema = compile_message(&registry, &entry.file, entry.message_type, doc)?;
            schema.title = schema.title.or(entry.title);
            if !entry.examples.is_empty() {
                schema.examples = entry.examples;
            }
            schema.shown_as = entry.shown_as;
            let messages = sets.entry(entry.set).or_default();
            if let Some(previous) = messages.get(&schema.message_type) {
                return Err(SchemaError::DuplicateType {
                    set: entry.set,
                    message_type: schema.message_type.clone(),
                    first: previous.file.clone(),
                    second: entry.file,
                });
            }
            messages.insert(schema.message_type.clone(), schema);
        }
        Ok(Catalog { origin: origin.to_string(), documents, registry, sets, discriminator, dispatch })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn discriminator(&self) -> &Discriminator {
        &self.discriminator
    }

    /// The sets this catalog has messages for.
    pub fn sets(&self) -> impl Iterator<Item = MessageSet> + '_ {
        self.sets.keys().copied()
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
        self.sets().filter(|s| self.message(*s, message_type).is_some()).collect()
    }

    /// The fastest path, for streams of mostly valid messages: one pass over `text` (see
    /// [`scan`]), with the message's name. `None` when the discriminator is neither the first
    /// nor the last member, or its schema is not compiled: the caller then takes
    /// [`Catalog::valid_type`].
    pub fn scan<'t>(&self, set: MessageSet, text: &'t str, tape: &mut Tape) -> Option<(&'t str, Scanned)> {
        let message_type = scan::message_type(text, self.discriminator.quoted_member.as_deref()?)?;
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
        let mut node = root;
        for token in self.discriminator.pointer.split('/').skip(1) {
            node = node.member(token)?;
        }
        let message_type = node.str()?;
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

    /// Checks one message against the schema its discriminator selects within `set`.
    pub fn validate(&self, set: MessageSet, message: &Value) -> Verdict {
        let dispatch = self.dispatch.get(&set).map(String::as_str).unwrap_or(set.dir());
        let name = self.discriminator.label();
        let pointer = &self.discriminator.pointer;
        // A dispatch document's keyword, or the place in an AsyncAPI document that lists the messages.
        let at = |keyword: &str| match dispatch.contains('#') {
            true => dispatch.to_string(),
            false => format!("{dispatch}#{keyword}"),
        };
        let reject = |message_type: Option<String>, instance_path: &str, keyword: &str, message: String| Verdict {
            message_type,
            violations: vec![Violation { instance_path: instance_path.into(), schema_path: at(keyword), message }],
        };
        if !message.is_object() {
            let found = describe(message);
            return reject(None, "", pointer, format!("expected a JSON object, found {found}"));
        }
        let message_type = match message.pointer(pointer) {
            None => return reject(None, "", "/required", format!("missing required property {name:?}")),
            Some(Value::String(t)) => t,
            Some(other) => {
                let found = describe(other);
                let text = format!("{name:?} must be a string naming a message, found {found}");
                return reject(None, pointer, &format!("/properties{pointer}/enum"), text);
            }
        };
        let Some(schema) = self.message(set, message_type) else {
            let known: Vec<&str> = self.messages(set).map(|m| m.message_type.as_str()).collect();
            let text = format!(
                "unknown message {name} {message_type:?} for {set} messages (expected one of: {})",
                known.join(", ")
            );
            return reject(Some(message_type.clone()), pointer, &format!("/properties{pointer}/enum"), text);
        };
        Verdict { message_type: Some(message_type.clone()), violations: schema.violations(message) }
    }
}

/// Every file of `source`, parsed.
fn parse_documents(source: &SchemaSource) -> Result<BTreeMap<String, Value>, SchemaError> {
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
    Ok(documents)
}

impl MessageSchema {
    /// `file#pointer` as the user edits it: inside the AsyncAPI document for an inline payload.
    fn shown(&self, location: String) -> String {
        match (&self.shown_as, location.strip_prefix(self.file.as_str()).and_then(|rest| rest.strip_prefix('#'))) {
            (Some(shown), Some(pointer)) => format!("{shown}{pointer}"),
            _ => location,
        }
    }

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
                schema_path: self.shown(match error.absolute_keyword_location() {
                    // After a `$ref` the keyword lives in another file: name that file, since that is where to edit.
                    Some(uri) => uri.as_str().strip_prefix(BASE_URI).unwrap_or(uri.as_str()).to_string(),
                    None => format!("{}#{}", self.file, error.schema_path().as_str()),
                }),
                message: error.to_string(),
            })
            .collect()
    }
}

fn compile_message(
    registry: &jsonschema::Registry<'_>,
    file: &str,
    message_type: String,
    doc: &Value,
) -> Result<MessageSchema, SchemaError> {
    let validator = compile_validator(registry, file, doc)?;
    Ok(MessageSchema {
        file: file.to_string(),
        message_type,
        title: doc.get("title").and_then(Value::as_str).map(str::to_string),
        requirement: doc.get("x-requirement").and_then(Value::as_str).map(str::to_string),
        examples: doc.get("examples").and_then(Value::as_array).cloned().unwrap_or_default(),
        validator,
        tape_validator: OnceLock::new(),
        shown_as: None,
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
