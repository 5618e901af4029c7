//! Message schemas compiled to plain checks over a [`Tape`](super::tape::Tape).
//!
//! jsonschema's keyword walk is general: every keyword is a trait object, every call carries a
//! context, and `$ref` is a hop through a shared node. For the stream of mostly valid messages
//! that `validate` sees, the keywords that message schemas use (`type`, `properties`,
//! `required`, `additionalProperties`, `const`, `enum`, bounds, lengths, `$ref`, the
//! applicators) are compiled here into a small tree that is walked directly.
//!
//! Exactness matters more than coverage: the answer must be jsonschema's. So:
//! - keywords whose meaning is local to one value and intricate (`pattern`, `format`,
//!   `multipleOf`, `uniqueItems`, counts) are delegated, each as a one-keyword schema compiled by
//!   jsonschema itself with the same options;
//! - a schema using anything else (`unevaluatedProperties`, `$dynamicRef`, `prefixItems`, an
//!   `$id` inside a document, …) does not compile here, and the caller keeps jsonschema for it;
//! - a check that cannot be settled here says [`Undecided`], and the caller asks jsonschema.
//!
//! `fast_path_agrees` (tests/integration/fuzz.rs) holds both answers equal on fuzzed messages.

use std::collections::BTreeMap;

use jsonschema::json::{Array as _, Node as _, Object as _};
use jsonschema::Validator;
use serde_json::{Number, Value};

use super::tape::{TapeJson, TapeNode};
use super::BASE_URI;

/// A check that could not be settled here; jsonschema decides instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided;

/// Why a schema was not compiled. Such a schema is checked by jsonschema instead: slower, not
/// less exact, so this is only read by tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct Unsupported {
    at: String,
    reason: String,
}

/// Beyond this many nested schema checks (a `$ref` loop that consumes no instance depth),
/// the answer is left to jsonschema.
const MAX_CHECK_DEPTH: usize = 256;

/// One message schema, compiled.
pub struct Program {
    pub(super) schemas: Vec<Schema>,
    pub(super) root: usize,
    /// Per schema, what [`super::scan`] needs of it.
    pub(super) plans: Vec<Plan>,
}

/// A schema as the one-pass scan uses it, worked out once: the schema behind any chain of
/// `$ref`-only schemas, and its checks sorted by the kind of value they apply to, so that
/// reading a value costs no search through its checks.
pub(super) struct Plan {
    /// The schema whose checks these are, past `$ref` aliases.
    pub(super) target: usize,
    /// Whether every check looks at the value only as it is read (see
    /// [`Check::looks_at_one_value`]); otherwise the value is checked whole, on a tape.
    pub(super) streamable: bool,
    /// The types every `type` allows, with `number` taken to include `integer`.
    pub(super) types: u8,
    /// A `const` or `enum` of strings: no other type passes.
    pub(super) only_strings: bool,
    /// Checks that apply to strings (`const`, `enum`, lengths, `pattern`, `format`).
    pub(super) string_checks: bool,
    pub(super) bounds: Vec<(Bound, Limit)>,
    /// The position of the `Object` check among the target's checks.
    pub(super) shape: Option<usize>,
    /// The `propertyNames` schema.
    pub(super) names: Option<usize>,
    /// The `items` schema.
    pub(super) items: Option<usize>,
}

/// The checks of one schema object, all of which must hold.
#[derive(Default)]
pub(super) struct Schema {
    pub(super) checks: Vec<Check>,
}

pub(super) enum Check {
    /// The `false` schema.
    Never,
    Types(TypeMask),
    ConstString(Box<str>),
    EnumStrings(Box<[Box<str>]>),
    /// `const` or `enum` over other values, compared as jsonschema compares them.
    Equals(Box<[Value]>),
    Bound(Bound, Limit),
    Length {
        min: u64,
        max: u64,
    },
    Object(ObjectShape),
    PropertyNames(usize),
    Items(usize),
    AllOf(Box<[usize]>),
    AnyOf(Box<[usize]>),
    OneOf(Box<[usize]>),
    Not(usize),
    IfThenElse {
        condition: usize,
        then: Option<usize>,
        otherwise: Option<usize>,
    },
    Ref(usize),
    /// One keyword checked by jsonschema itself; `strings_only` for keywords that pass every
    /// other type (`pattern`, `format`).
    Delegate {
        validator: Box<Validator<TapeJson>>,
        strings_only: bool,
    },
}

impl Check {
    /// Whether the check needs nothing but the value as it is read: its type, a scalar, and
    /// an object's members or an array's elements one at a time.
    fn looks_at_one_value(&self) -> bool {
        match self {
            Check::Types(_)
            | Check::ConstString(_)
            | Check::EnumStrings(_)
            | Check::Bound(..)
            | Check::Length { .. }
            | Check::Object(_)
            | Check::Items(_) => true,
            Check::Delegate { strings_only, .. } => *strings_only,
            _ => false,
        }
    }
}

impl Plan {
    /// Any value: nothing but its syntax is checked.
    pub(super) const ANY: Plan = Plan {
        target: 0,
        streamable: true,
        types: u8::MAX,
        only_strings: false,
        string_checks: false,
        bounds: Vec::new(),
        shape: None,
        names: None,
        items: None,
    };
}

/// `properties`, `required` and `additionalProperties` in one pass over the members.
pub(super) struct ObjectShape {
    /// Every name in `properties` or `required`.
    pub(super) names: Vec<Name>,
    /// The bits of `required` names, all of which must be seen.
    pub(super) required: u64,
    pub(super) additional: Additional,
}

pub(super) struct Name {
    pub(super) text: Box<str>,
    /// The first sixteen bytes of `text` as two words (see [`prefix_words`]), compared first.
    pub(super) prefix: [u64; 2],
    /// The schema from `properties`, when the name is there.
    pub(super) schema: Option<usize>,
    pub(super) in_properties: bool,
    pub(super) required_bit: u64,
}

impl ObjectShape {
    /// The entry for member `name`, if the schema names it.
    pub(super) fn name(&self, name: &str) -> Option<&Name> {
        let prefix = prefix_words(name.as_bytes());
        self.names.iter().find(|n| {
            n.prefix == prefix && n.text.len() == name.len() && (name.len() <= 16 || n.text[16..] == name[16..])
        })
    }
}

/// Up to the first sixteen bytes of `bytes`, zero-padded, as two words: member names are told
/// apart by them (and the length) without a byte-wise comparison, up to sixteen bytes long.
pub(super) fn prefix_words(bytes: &[u8]) -> [u64; 2] {
    let mut words = [0u8; 16];
    let len = bytes.len().min(16);
    words[..len].copy_from_slice(&bytes[..len]);
    let (low, high) = words.split_at(8);
    [
        u64::from_le_bytes(low.try_into().expect("eight bytes")),
        u64::from_le_bytes(high.try_into().expect("eight bytes")),
    ]
}

pub(super) enum Additional {
    Allowed,
    Forbidden,
    Schema(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
    Minimum,
    Maximum,
    ExclusiveMinimum,
    ExclusiveMaximum,
}

/// A bound's limit, kept as written: an integer compares exactly with integers and floats.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    Integer(i128),
    Float(f64),
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TypeMask(u8);

impl TypeMask {
    pub(super) const NULL: u8 = 1;
    pub(super) const BOOLEAN: u8 = 2;
    pub(super) const INTEGER: u8 = 4;
    pub(super) const NUMBER: u8 = 8;
    pub(super) const STRING: u8 = 16;
    pub(super) const ARRAY: u8 = 32;
    pub(super) const OBJECT: u8 = 64;

    pub(super) fn allows(self, bits: u8) -> bool {
        self.0 & bits != 0
    }

    fn bit(name: &str) -> Option<u8> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "string" => Self::STRING,
            "array" => Self::ARRAY,
            "object" => Self::OBJECT,
            _ => return None,
        })
    }
}

/// Keywords that assert nothing, as jsonschema reads draft 2020-12.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords that look at one value alone, left to jsonschema one at a time.
const DELEGATED: &[&str] = &[
    "pattern",
    "format",
    "multipleOf",
    "uniqueItems",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "dependentRequired",
];

impl Program {
    /// Compiles the message schema `file` of `documents` (relative paths, as the catalog keeps
    /// them), or says what it uses that is not compiled here.
    pub fn compile(documents: &BTreeMap<String, Value>, file: &str) -> Result<Program, Unsupported> {
        let mut compiler = Compiler { documents, schemas: Vec::new(), compiled: BTreeMap::new() };
        let root = compiler.reference(file, "")?;
        let mut program = Program { schemas: compiler.schemas, root, plans: Vec::new() };
        program.plans = (0..program.schemas.len()).map(|index| program.plan(index)).collect();
        Ok(program)
    }

    /// Whether `instance` is valid, or [`Undecided`].
    pub fn check(&self, instance: TapeNode<'_>) -> Result<bool, Undecided> {
        self.schema(self.root, instance, 0)
    }

    /// Whether `instance` is valid against schema `index` of this program.
    pub(super) fn check_at(&self, index: usize, instance: TapeNode<'_>) -> Result<bool, Undecided> {
        self.schema(index, instance, 0)
    }

    /// The schema that `index` stands for: through any schema that is only a `$ref`.
    pub(super) fn target(&self, mut index: usize) -> usize {
        for _ in 0..MAX_CHECK_DEPTH {
            match self.schemas[index].checks.as_slice() {
                [Check::Ref(next)] => index = *next,
                _ => return index,
            }
        }
        index
    }

    /// How the scan reads values against schema `index`. A schema is streamable when every
    /// check looks at one value as it is read: its type, a scalar's value, an object's
    /// members one by one, an array's elements one by one. Applicators over the same value
    /// (`allOf`, `if`, a `$ref` beside other keywords) and keywords needing a whole container
    /// are not.
    fn plan(&self, index: usize) -> Plan {
        let target = self.target(index);
        let checks = &self.schemas[target].checks;
        let mut plan = Plan {
            target,
            // Names are read as they come, and checked as strings on the spot.
            streamable: checks.iter().all(|check| match check {
                Check::PropertyNames(names) => {
                    self.schemas[self.target(*names)].checks.iter().all(Check::looks_at_one_value)
                }
                other => other.looks_at_one_value(),
            }),
            ..Plan::ANY
        };
        for (position, check) in checks.iter().enumerate() {
            match check {
                Check::Types(mask) => {
                    let widened = if mask.allows(TypeMask::NUMBER) { mask.0 | TypeMask::INTEGER } else { mask.0 };
                    plan.types &= widened;
                }
                Check::ConstString(_) | Check::EnumStrings(_) => {
                    plan.only_strings = true;
                    plan.string_checks = true;
                }
                Check::Length { .. } | Check::Delegate { .. } => plan.string_checks = true,
                Check::Bound(bound, limit) => plan.bounds.push((*bound, *limit)),
                Check::Object(_) => plan.shape = Some(position),
                Check::PropertyNames(names) => plan.names = Some(self.target(*names)),
                Check::Items(items) => plan.items = Some(*items),
                _ => {}
            }
        }
        plan
    }

    /// The `properties`/`required`/`additionalProperties` checks of a plan.
    pub(super) fn shape(&self, plan: &Plan) -> Option<&ObjectShape> {
        match &self.schemas[plan.target].checks[plan.shape?] {
            Check::Object(shape) => Some(shape),
            _ => None,
        }
    }

    fn schema(&self, index: usize, instance: TapeNode<'_>, depth: usize) -> Result<bool, Undecided> {
        if depth > MAX_CHECK_DEPTH {
            return Err(Undecided);
        }
        for check in &self.schemas[index].checks {
            if !self.holds(check, instance, depth + 1)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn holds(&self, check: &Check, instance: TapeNode<'_>, depth: usize) -> Result<bool, Undecided> {
        Ok(match check {
            Check::Never => false,
            Check::Types(mask) => has_type(instance, *mask),
            Check::ConstString(expected) => instance.str() == Some(&**expected),
            Check::EnumStrings(options) => instance.str().is_some_and(|s| options.iter().any(|o| **o == *s)),
            Check::Equals(options) => options.iter().any(|o| instance.equals_value(o)),
            Check::Bound(bound, limit) => match instance.number() {
                Some(number) => within(number, *bound, *limit).ok_or(Undecided)?,
                None => true,
            },
            Check::Length { min, max } => match instance.str() {
                Some(text) => {
                    let chars = text.chars().count() as u64;
                    *min <= chars && chars <= *max
                }
                None => true,
            },
            Check::Object(shape) => self.object(shape, instance, depth)?,
            Check::PropertyNames(schema) => match instance.as_object() {
                Some(object) => self.each_valid(*schema, object.keys(), depth)?,
                None => true,
            },
            Check::Items(schema) => match instance.as_array() {
                Some(array) => self.each_valid(*schema, array.elements(), depth)?,
                None => true,
            },
            Check::AllOf(schemas) => {
                for schema in schemas.iter() {
                    if !self.schema(*schema, instance, depth)? {
                        return Ok(false);
                    }
                }
                true
            }
            Check::AnyOf(schemas) => {
                for schema in schemas.iter() {
                    if self.schema(*schema, instance, depth)? {
                        return Ok(true);
                    }
                }
                false
            }
            Check::OneOf(schemas) => {
                let mut matched = 0;
                for schema in schemas.iter() {
                    matched += usize::from(self.schema(*schema, instance, depth)?);
                }
                matched == 1
            }
            Check::Not(schema) => !self.schema(*schema, instance, depth)?,
            Check::IfThenElse { condition, then, otherwise } => {
                let branch = if self.schema(*condition, instance, depth)? { then } else { otherwise };
                match branch {
                    Some(schema) => self.schema(*schema, instance, depth)?,
                    None => true,
                }
            }
            Check::Ref(schema) => self.schema(*schema, instance, depth)?,
            Check::Delegate { validator, .. } => validator.is_valid(instance),
        })
    }

    /// Whether every one of `instances` is valid against `schema`.
    fn each_valid<'i>(
        &self,
        schema: usize,
        instances: impl Iterator<Item = TapeNode<'i>>,
        depth: usize,
    ) -> Result<bool, Undecided> {
        for instance in instances {
            if !self.schema(schema, instance, depth)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn object(&self, shape: &ObjectShape, instance: TapeNode<'_>, depth: usize) -> Result<bool, Undecided> {
        let Some(object) = instance.as_object() else { return Ok(true) };
        let mut seen = 0u64;
        for (name, value) in object.members() {
            if let Some(known) = shape.name(name) {
                seen |= known.required_bit;
                if let Some(schema) = known.schema {
                    if !self.schema(schema, value, depth)? {
                        return Ok(false);
                    }
                }
                if known.in_properties {
                    continue;
                }
            }
            match shape.additional {
                Additional::Allowed => {}
                Additional::Forbidden => return Ok(false),
                Additional::Schema(schema) => {
                    if !self.schema(schema, value, depth)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(seen & shape.required == shape.required)
    }
}

fn has_type(instance: TapeNode<'_>, mask: TypeMask) -> bool {
    use jsonschema::JsonType;
    let bit = match instance.json_type() {
        JsonType::Null => TypeMask::NULL,
        JsonType::Boolean => TypeMask::BOOLEAN,
        JsonType::String => TypeMask::STRING,
        JsonType::Array => TypeMask::ARRAY,
        JsonType::Object => TypeMask::OBJECT,
        JsonType::Number | JsonType::Integer => {
            let integer = instance.number().is_some_and(is_integer);
            let wanted = TypeMask::NUMBER | if integer { TypeMask::INTEGER } else { 0 };
            return mask.0 & wanted != 0;
        }
    };
    mask.0 & bit != 0
}

/// jsonschema's `integer` for draft 2020-12: an integer literal, or a float with no fraction.
pub(super) fn is_integer(number: &Number) -> bool {
    // `fract` is a library call without SSE4.1; from 2^53 up every float is whole, and below
    // it the cast truncates exactly.
    const TWO_TO_THE_53: f64 = 9_007_199_254_740_992.0;
    number.is_u64()
        || number.is_i64()
        || number.as_f64().is_some_and(|f| f.abs() >= TWO_TO_THE_53 || (f as i64) as f64 == f)
}

/// Whether `number` satisfies `bound`; `None` when it cannot be compared exactly here.
pub(super) fn within(number: &Number, bound: Bound, limit: Limit) -> Option<bool> {
    Some(bound.holds(compare(number, limit)?))
}

impl Bound {
    /// Whether a value that compares to the limit as `ordering` satisfies the bound.
    pub(super) fn holds(self, ordering: std::cmp::Ordering) -> bool {
        match self {
            Bound::Minimum => ordering.is_ge(),
            Bound::Maximum => ordering.is_le(),
            Bound::ExclusiveMinimum => ordering.is_gt(),
            Bound::ExclusiveMaximum => ordering.is_lt(),
        }
    }
}

/// The exact order of `number` and `limit`, integers against floats included.
fn compare(number: &Number, limit: Limit) -> Option<std::cmp::Ordering> {
    let integer = number.as_u64().map(i128::from).or_else(|| number.as_i64().map(i128::from));
    match (integer, limit) {
        (Some(value), Limit::Integer(limit)) => Some(value.cmp(&limit)),
        (Some(value), Limit::Float(limit)) => compare_float_integer(limit, value).map(std::cmp::Ordering::reverse),
        (None, Limit::Integer(limit)) => compare_float_integer(number.as_f64()?, limit),
        (None, Limit::Float(limit)) => number.as_f64()?.partial_cmp(&limit),
    }
}

/// The exact order of a float and an integer of at most 65 bits, without rounding either.
fn compare_float_integer(float: f64, integer: i128) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    const TWO_TO_THE_100: f64 = 1_267_650_600_228_229_401_496_703_205_376.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_TO_THE_100 {
        return Some(Ordering::Greater);
    }
    if float <= -TWO_TO_THE_100 {
        return Some(Ordering::Less);
    }
    // The cast truncates toward zero, exactly below 2^63 (below 2^100 through i128, a slower
    // library call), and the whole part is itself a float.
    let whole = if float.abs() < 9.0e18 { i128::from(float as i64) } else { float as i128 };
    match whole.cmp(&integer) {
        Ordering::Equal => (whole as f64).partial_cmp(&float).map(Ordering::reverse),
        unequal => Some(unequal),
    }
}

struct Compiler<'d> {
    documents: &'d BTreeMap<String, Value>,
    schemas: Vec<Schema>,
    /// (file, JSON pointer) → schema index, so shared and recursive `$ref`s compile once.
    compiled: BTreeMap<(String, String), usize>,
}

impl Compiler<'_> {
    /// The schema at `pointer` in `file`, compiled once.
    fn reference(&mut self, file: &str, pointer: &str) -> Result<usize, Unsupported> {
        let key = (file.to_string(), pointer.to_string());
        if let Some(index) = self.compiled.get(&key) {
            return Ok(*index);
        }
        let unsupported = |reason: &str| Unsupported { at: format!("{file}#{pointer}"), reason: reason.to_string() };
        let document = self.documents.get(file).ok_or_else(|| unsupported("no such document"))?;
        if pointer.is_empty() {
            // The document's own `$id` must be where the catalog registers it, or relative
            // references would resolve elsewhere.
            match document.get("$id") {
                None => {}
                Some(Value::String(id)) if id.strip_prefix(BASE_URI) == Some(file) => {}
                Some(_) => return Err(unsupported("the document's $id differs from its path")),
            }
        }
        let schema = document.pointer(pointer).ok_or_else(|| unsupported("the reference points at nothing"))?;
        let index = self.schemas.len();
        self.schemas.push(Schema::default());
        self.compiled.insert(key, index);
        let checks = self.checks(file, pointer, schema)?;
        self.schemas[index].checks = checks;
        Ok(index)
    }

    fn checks(&mut self, file: &str, pointer: &str, schema: &Value) -> Result<Vec<Check>, Unsupported> {
        let at = |keyword: &str| format!("{file}#{pointer}/{keyword}");
        let unsupported = |keyword: &str, reason: &str| Unsupported { at: at(keyword), reason: reason.to_string() };
        let object = match schema {
            Value::Bool(true) => return Ok(Vec::new()),
            Value::Bool(false) => return Ok(vec![Check::Never]),
            Value::Object(object) => object,
            _ => return Err(unsupported("", "a schema must be an object or a boolean")),
        };
        let child = |this: &mut Self, keyword: &str, suffix: &str| {
            this.reference(file, &format!("{pointer}/{}{suffix}", escape_pointer(keyword)))
        };
        let mut checks = Vec::new();
        let mut shape: Option<ObjectShape> = None;
        for (keyword, value) in object {
            let keyword = keyword.as_str();
            if ANNOTATIONS.contains(&keyword) || keyword.starts_with("x-") {
                continue;
            }
            match (keyword, value) {
                ("$id", _) if pointer.is_empty() => {}
                ("type", Value::String(name)) => {
                    checks.push(Check::Types(TypeMask(
                        TypeMask::bit(name).ok_or_else(|| unsupported(keyword, "unknown type"))?,
                    )));
                }
                ("type", Value::Array(names)) => {
                    let mut mask = 0;
                    for name in names {
                        mask |= name
                            .as_str()
                            .and_then(TypeMask::bit)
                            .ok_or_else(|| unsupported(keyword, "unknown type"))?;
                    }
                    checks.push(Check::Types(TypeMask(mask)));
                }
                ("const", Value::String(text)) => checks.push(Check::ConstString(text.as_str().into())),
                ("const", other) => checks.push(Check::Equals(Box::new([other.clone()]))),
                ("enum", Value::Array(options)) => {
                    match options.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                        Some(texts) => checks.push(Check::EnumStrings(texts.into_iter().map(Into::into).collect())),
                        None => checks.push(Check::Equals(options.clone().into_boxed_slice())),
                    }
                }
                ("minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum", Value::Number(limit)) => {
                    let bound = match keyword {
                        "minimum" => Bound::Minimum,
                        "maximum" => Bound::Maximum,
                        "exclusiveMinimum" => Bound::ExclusiveMinimum,
                        _ => Bound::ExclusiveMaximum,
                    };
                    let limit = match (limit.as_u64(), limit.as_i64(), limit.as_f64()) {
                        (Some(u), _, _) => Limit::Integer(i128::from(u)),
                        (_, Some(i), _) => Limit::Integer(i128::from(i)),
                        (_, _, Some(f)) if f.is_finite() => Limit::Float(f),
                        _ => return Err(unsupported(keyword, "a limit past f64")),
                    };
                    checks.push(Check::Bound(bound, limit));
                }
                ("minLength" | "maxLength", Value::Number(n)) => {
                    let n = n.as_u64().ok_or_else(|| unsupported(keyword, "not a whole number"))?;
                    checks.push(if keyword == "minLength" {
                        Check::Length { min: n, max: u64::MAX }
                    } else {
                        Check::Length { min: 0, max: n }
                    });
                }
                ("properties", Value::Object(properties)) => {
                    for name in properties.keys() {
                        let schema = child(self, keyword, &format!("/{}", escape_pointer(name)))?;
                        let shape = shape_of(&mut shape);
                        match shape.names.iter_mut().find(|n| *n.text == **name) {
                            Some(known) => {
                                known.schema = Some(schema);
                                known.in_properties = true;
                            }
                            None => shape.names.push(Name {
                                text: name.as_str().into(),
                                prefix: prefix_words(name.as_bytes()),
                                schema: Some(schema),
                                in_properties: true,
                                required_bit: 0,
                            }),
                        }
                    }
                }
                ("required", Value::Array(names)) => {
                    for name in names {
                        let name = name.as_str().ok_or_else(|| unsupported(keyword, "a name that is not a string"))?;
                        let shape = shape_of(&mut shape);
                        let bit = 1u64
                            .checked_shl(shape.required.count_ones())
                            .filter(|bit| *bit != 0)
                            .ok_or_else(|| unsupported(keyword, "more than 64 names"))?;
                        match shape.names.iter_mut().find(|n| *n.text == *name) {
                            Some(known) if known.required_bit == 0 => known.required_bit = bit,
                            Some(_) => continue,
                            None => shape.names.push(Name {
                                text: name.into(),
                                prefix: prefix_words(name.as_bytes()),
                                schema: None,
                                in_properties: false,
                                required_bit: bit,
                            }),
                        }
                        shape.required |= bit;
                    }
                }
                ("additionalProperties", Value::Bool(allowed)) => {
                    shape_of(&mut shape).additional =
                        if *allowed { Additional::Allowed } else { Additional::Forbidden };
                }
                ("additionalProperties", Value::Object(_)) => {
                    let schema = child(self, keyword, "")?;
                    shape_of(&mut shape).additional = Additional::Schema(schema);
                }
                ("propertyNames", _) => checks.push(Check::PropertyNames(child(self, keyword, "")?)),
                // Without `prefixItems` (refused below), `items` applies to every element.
                ("items", _) if !object.contains_key("prefixItems") => {
                    checks.push(Check::Items(child(self, keyword, "")?))
                }
                ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                    let schemas =
                        (0..items.len())
                            .map(|i| child(self, keyword, &format!("/{i}")))
                            .collect::<Result<Box<[usize]>, _>>()?;
                    checks.push(match keyword {
                        "allOf" => Check::AllOf(schemas),
                        "anyOf" => Check::AnyOf(schemas),
                        _ => Check::OneOf(schemas),
                    });
                }
                ("not", _) => checks.push(Check::Not(child(self, keyword, "")?)),
                ("if", _) => {
                    let then = object.contains_key("then").then(|| child(self, "then", "")).transpose()?;
                    let otherwise = object.contains_key("else").then(|| child(self, "else", "")).transpose()?;
                    checks.push(Check::IfThenElse { condition: child(self, keyword, "")?, then, otherwise });
                }
                // Without `if`, `then` and `else` do nothing; with it, they were read above.
                ("then" | "else", _) => {}
                ("$ref", Value::String(reference)) => {
                    let (target_file, target_pointer) = resolve(file, reference)
                        .ok_or_else(|| unsupported(keyword, "a reference other than a relative file and pointer"))?;
                    checks.push(Check::Ref(self.reference(&target_file, &target_pointer)?));
                }
                _ if DELEGATED.contains(&keyword) => {
                    let alone = serde_json::json!({ keyword: value });
                    let validator = jsonschema::options_for::<TapeJson>()
                        .with_draft(jsonschema::Draft::Draft202012)
                        .should_validate_formats(true)
                        .build(&alone)
                        .map_err(|e| unsupported(keyword, &e.to_string()))?;
                    let strings_only = matches!(keyword, "pattern" | "format");
                    checks.push(Check::Delegate { validator: Box::new(validator), strings_only });
                }
                _ => return Err(unsupported(keyword, "not compiled here")),
            }
        }
        // The object checks run first: they are where most messages spend their time, and
        // a cheap `type` check fails first anyway when it is listed first.
        if let Some(shape) = shape {
            checks.push(Check::Object(shape));
        }
        Ok(checks)
    }
}

/// The object checks of a schema, started on its first object keyword.
fn shape_of(shape: &mut Option<ObjectShape>) -> &mut ObjectShape {
    shape.get_or_insert_with(|| ObjectShape { names: Vec::new(), required: 0, additional: Additional::Allowed })
}

/// `reference` from `file`: the target file and JSON pointer, for references of the form
/// `[relative or base-URI path]#[/pointer]`. `None` for anything else (anchors, other hosts,
/// percent-escapes), which jsonschema resolves instead.
pub(crate) fn resolve(file: &str, reference: &str) -> Option<(String, String)> {
    let (path, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    if !(fragment.is_empty() || fragment.starts_with('/')) || fragment.contains('%') || path.contains('%') {
        return None;
    }
    let target = if path.is_empty() {
        file.to_string()
    } else if let Some(absolute) = path.strip_prefix(BASE_URI) {
        absolute.to_string()
    } else if path.contains(':') || path.starts_with('/') {
        return None;
    } else {
        let mut parts: Vec<&str> = file.split('/').collect();
        parts.pop();
        for part in path.split('/') {
            match part {
                ".." => {
                    parts.pop()?;
                }
                "." | "" => {}
                other => parts.push(other),
            }
        }
        parts.join("/")
    };
    Some((target, fragment.to_string()))
}

/// A JSON pointer token for `name` (RFC 6901).
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn references_resolve_like_uris_within_the_schema_folder() {
        assert_eq!(resolve("core/A.json", "../common.json#/$defs/x"), Some(("common.json".into(), "/$defs/x".into())));
        assert_eq!(resolve("core/A.json", "#/$defs/x"), Some(("core/A.json".into(), "/$defs/x".into())));
        assert_eq!(resolve("core/A.json", "B.json"), Some(("core/B.json".into(), String::new())));
        assert_eq!(
            resolve("core/A.json", "https://wsprobe.invalid/schemas/common.json#/a"),
            Some(("common.json".into(), "/a".into()))
        );
        assert_eq!(resolve("core/A.json", "#anchor"), None);
        assert_eq!(resolve("core/A.json", "https://example.com/x.json"), None);
        assert_eq!(resolve("core/A.json", "../../x.json"), None);
        assert_eq!(resolve("core/A.json", "#/a%20b"), None);
    }

    #[test]
    fn floats_and_integers_compare_exactly() {
        assert_eq!(compare_float_integer(0.5, 0), Some(Ordering::Greater));
        assert_eq!(compare_float_integer(-0.5, 0), Some(Ordering::Less));
        assert_eq!(compare_float_integer(-0.0, 0), Some(Ordering::Equal));
        assert_eq!(compare_float_integer(1.0, 1), Some(Ordering::Equal));
        // 2^53 + 1 is not a float: the float 2^53 is below it, though `as f64` would round it equal.
        assert_eq!(compare_float_integer(9_007_199_254_740_992.0, 9_007_199_254_740_993), Some(Ordering::Less));
        assert_eq!(compare_float_integer(1e30, i128::from(u64::MAX)), Some(Ordering::Greater));
        assert_eq!(compare_float_integer(-1e30, i128::from(i64::MIN)), Some(Ordering::Less));
        assert_eq!(compare_float_integer(f64::NAN, 0), None);
        let n = |text: &str| serde_json::from_str::<Number>(text).unwrap();
        assert_eq!(compare(&n("18446744073709551615"), Limit::Float(1.8446744073709552e19)), Some(Ordering::Less));
        assert_eq!(compare(&n("-1"), Limit::Integer(0)), Some(Ordering::Less));
        assert_eq!(compare(&n("0.0"), Limit::Integer(0)), Some(Ordering::Equal));
    }

    fn compiled(schema: Value) -> Result<Program, Unsupported> {
        let documents = BTreeMap::from([("t/S.json".to_string(), schema)]);
        Program::compile(&documents, "t/S.json")
    }

    #[test]
    fn keywords_outside_the_compiled_set_are_refused_not_ignored() {
        for schema in [
            serde_json::json!({"unevaluatedProperties": false}),
            serde_json::json!({"prefixItems": [true], "items": false}),
            serde_json::json!({"properties": {"a": {"$id": "x.json"}}}),
            serde_json::json!({"$ref": "#anchor"}),
            serde_json::json!({"$id": "https://example.com/S.json"}),
            serde_json::json!({"contentEncoding": "base64"}),
            serde_json::json!({"patternProperties": {"^a": true}}),
        ] {
            assert!(compiled(schema.clone()).is_err(), "{schema}");
        }
        assert!(compiled(serde_json::json!({"x-requirement": "R", "title": "t", "pattern": "^a"})).is_ok());
    }

    #[test]
    fn every_bundled_message_schema_compiles() {
        let catalog = crate::schema::Catalog::embedded().unwrap();
        for set in crate::schema::MessageSet::FOLDERS {
            for message in catalog.messages(set) {
                if let Err(error) = Program::compile(catalog.documents(), &message.file) {
                    panic!("{} is left to jsonschema: {error}", message.file);
                }
            }
        }
    }

    #[test]
    fn recursive_references_compile_once_and_check_to_the_instance_depth() {
        let program = compiled(serde_json::json!({
            "type": "array",
            "items": {"$ref": "#"},
        }))
        .unwrap();
        let mut tape = super::super::tape::Tape::default();
        assert_eq!(program.check(tape.parse("[[[]],[]]").unwrap()), Ok(true));
        assert_eq!(program.check(tape.parse("[[1]]").unwrap()), Ok(false));
        let looping = compiled(serde_json::json!({"$ref": "#"})).unwrap();
        assert_eq!(looping.check(tape.parse("1").unwrap()), Err(Undecided));
    }
}
