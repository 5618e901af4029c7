//! Inputs from the client schemas (`schemas/client/`): valid messages with edge values,
//! mutations of them, not-JSON and frame-level abuse, and short sequences of these. Case `n` of
//! seed `s` is always the same input, so a run is reproducible from its seed alone.

use std::time::Duration;

use serde_json::Value;

use super::frame::{Frame, Payload};
use crate::schema::{Catalog, MessageSet};

/// SplitMix64: small, fast, and the same on every platform, which reproducibility needs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One client message's template: its example's members, and each member's schema.
#[derive(Debug, Clone)]
pub struct Template {
    pub message_type: String,
    pub members: Vec<(String, String)>,
    /// Edge values for each member, as raw JSON, from its schema.
    pub edges: Vec<Vec<String>>,
}

/// The messages a server receives, ready to generate from.
#[derive(Debug, Clone)]
pub struct Generator {
    templates: Vec<Template>,
    /// The member that names a message (`type`).
    name_member: String,
    /// Larger than the server accepts (the reference server's default is 64 KiB).
    oversize: usize,
}

impl Generator {
    /// Templates from the examples of the messages of `set` (what the server receives).
    pub fn from_catalog(catalog: &Catalog, set: MessageSet, oversize: usize) -> Generator {
        let documents = catalog.documents();
        let templates = catalog
            .messages(set)
            .filter_map(|message| {
                let example = message.examples.first()?.as_object()?;
                let schema = documents.get(&message.file)?;
                let members: Vec<(String, String)> = example.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                let edges = members
                    .iter()
                    .map(|(key, _)| {
                        let property = schema.pointer(&format!("/properties/{key}")).cloned().unwrap_or(Value::Null);
                        edge_values(&resolve(documents, &message.file, &property))
                    })
                    .collect();
                Some(Template { message_type: message.message_type.clone(), members, edges })
            })
            .collect();
        Generator { templates, name_member: catalog.discriminator().label().to_string(), oversize }
    }

    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// Every member name the client schemas define.
    pub fn known_keys(&self) -> std::collections::BTreeSet<String> {
        self.templates.iter().flat_map(|t| t.members.iter().map(|(k, _)| k.clone())).collect()
    }

    /// Case `index` of `seed`: one to three frames.
    pub fn case(&self, seed: u64, index: u64) -> Vec<Frame> {
        let mut rng = Rng::new(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
        let frames = 1 + rng.below(3);
        (0..frames)
            .map(|n| {
                let mut frame = self.frame(&mut rng);
                if n > 0 && rng.below(3) == 0 {
                    frame.delay = Duration::from_millis(rng.below(30) as u64);
                }
                frame
            })
            .collect()
    }

    fn frame(&self, rng: &mut Rng) -> Frame {
        if self.templates.is_empty() {
            return Frame::now(self.abuse(rng, "{}", ""));
        }
        let template = rng.pick(&self.templates).clone();
        let payload = match rng.below(4) {
            0 | 1 => Payload::Object(edge(rng, &template)),
            2 => Payload::Object(mutate(rng, &template, &self.name_member, &self.other_name(&template))),
            _ => {
                let valid = super::frame::render_object(&template.members);
                self.abuse(rng, &valid, &template.message_type)
            }
        };
        Frame::now(payload)
    }

    /// The name of another message than `template`'s, or a made-up one.
    fn other_name(&self, template: &Template) -> String {
        let other = self.templates.iter().find(|t| t.message_type != template.message_type);
        other.map_or_else(|| format!("{}2", template.message_type), |t| t.message_type.clone())
    }

    /// Not JSON, or not a plain text frame; `valid` is a valid message named `name`.
    fn abuse(&self, rng: &mut Rng, valid: &str, name: &str) -> Payload {
        let split = |text: &str, parts: usize| -> Vec<String> {
            let chars: Vec<char> = text.chars().collect();
            let size = chars.len().div_ceil(parts).max(1);
            chars.chunks(size).map(|c| c.iter().collect()).collect()
        };
        match rng.below(10) {
            0 => Payload::Binary(valid.as_bytes().to_vec()),
            1 => Payload::Binary((0..1 + rng.below(16)).map(|_| rng.next_u64() as u8).collect()),
            2 => Payload::Fragments(split(valid, 2 + rng.below(2))),
            3 => Payload::FragmentsWithPing(split(valid, 2)),
            4 => {
                let mut bytes = valid.as_bytes().to_vec();
                let at = rng.below(bytes.len() + 1);
                bytes.insert(at, *rng.pick(&[0xff_u8, 0xc0, 0xed, 0x80]));
                Payload::InvalidUtf8(bytes)
            }
            5 => {
                // The valid message with one more member that makes it too big.
                let open = valid
                    .strip_suffix('}')
                    .filter(|o| o.len() > 1)
                    .map_or_else(|| "{".to_string(), |o| format!("{o},"));
                Payload::Text(format!("{open}\"pad\":\"{}\"}}", "x".repeat(self.oversize)))
            }
            6 => {
                let name = Value::String(name.to_string()).to_string();
                let unnamed = format!("{{\"{}\":null}}", self.name_member);
                let texts = ["", " ", "null", "[]", "{}", "0", name.as_str(), unnamed.as_str()];
                Payload::Text(rng.pick(&texts).to_string())
            }
            // Deep nesting, left open: a recursive parser's stack, not its patience.
            7 => Payload::Text(format!("{}]", "[".repeat(200 + rng.below(2000)))),
            8 => Payload::Text(valid[..rng.below(valid.len().max(1))].to_string()),
            _ => Payload::Text(valid.replacen('"', "'", 1 + rng.below(4))),
        }
    }
}

/// Valid in shape, one member at an edge of its schema.
fn edge(rng: &mut Rng, template: &Template) -> Vec<(String, String)> {
    let mut members = template.members.clone();
    let candidates: Vec<usize> = (0..members.len()).filter(|&i| !template.edges[i].is_empty()).collect();
    if let Some(&index) = candidates.get(rng.below(candidates.len().max(1))) {
        members[index].1 = rng.pick(&template.edges[index]).clone();
    }
    members
}

/// One structural change: a member of the wrong type, missing, unknown, doubled, or a wrong
/// name (`name_member`: the template's name in other case, with a space, empty, `other`'s name,
/// not a string).
fn mutate(rng: &mut Rng, template: &Template, name_member: &str, other: &str) -> Vec<(String, String)> {
    const WRONG: [&str; 8] = ["\"text\"", "123", "-1.5", "true", "false", "null", "[]", "{}"];
    const UNKNOWN: [&str; 7] = ["true", "false", "1", "\"x\"", "null", "{\"n\":[1,{\"m\":null}]}", "[[[]]]"];
    let name = &template.message_type;
    let quoted = |text: &str| Value::String(text.to_string()).to_string();
    let names = [
        quoted(&name.to_uppercase()),
        quoted(&name.to_lowercase()),
        quoted(""),
        quoted(other),
        quoted(&format!("{name} ")),
        "123".to_string(),
        "null".to_string(),
        quoted(&format!("{name}\u{0}")),
    ];
    let mut members = template.members.clone();
    match rng.below(5) {
        0 if !members.is_empty() => {
            let index = rng.below(members.len());
            members[index].1 = rng.pick(&WRONG).to_string();
        }
        1 if !members.is_empty() => {
            members.remove(rng.below(members.len()));
        }
        2 => {
            let name = rng.pick(&["extra", "debug", "id", "type2", "__proto__"]).to_string();
            let value = rng.pick(&UNKNOWN).to_string();
            members.insert(rng.below(members.len() + 1), (name, value));
        }
        3 if !members.is_empty() => {
            let index = rng.below(members.len());
            let (key, _) = members[index].clone();
            let value = rng
                .pick(&template.edges[index].iter().map(String::as_str).chain(WRONG).collect::<Vec<_>>())
                .to_string();
            members.push((key, value));
        }
        _ => {
            if let Some(member) = members.iter_mut().find(|(k, _)| k == name_member) {
                member.1 = rng.pick(&names).clone();
            }
        }
    }
    members
}

/// Follows `$ref`s (relative file and JSON Pointer) from `file` to the schema they name, as
/// the validator resolves them; `null` for one it cannot follow or a chain that loops.
fn resolve(documents: &std::collections::BTreeMap<String, Value>, file: &str, schema: &Value) -> Value {
    let (mut file, mut schema) = (file.to_string(), schema.clone());
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { return schema };
        let Some((target, pointer)) = crate::schema::resolve_reference(&file, reference) else { return Value::Null };
        schema = documents.get(&target).and_then(|d| d.pointer(&pointer)).cloned().unwrap_or(Value::Null);
        file = target;
    }
    Value::Null
}

/// Raw JSON values at the edges of a member's schema: its bounds and one either side, zero and
/// minus zero, huge and tiny numbers, the empty and a long string, every enum value, Unicode
/// that trips parsers (non-ASCII, astral, U+2028, a lone surrogate escape).
pub fn edge_values(schema: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(value) = schema.get("const") {
        out.push(value.to_string());
        return out;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        out.extend(values.iter().map(Value::to_string));
    }
    let kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for kind in kinds {
        match kind {
            "integer" | "number" => {
                for bound in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
                    if let Some(b) = schema.get(bound).and_then(Value::as_i64) {
                        out.extend([b.to_string(), (b - 1).to_string(), (b + 1).to_string()]);
                    }
                }
                out.extend(
                    [
                        "0",
                        "-0",
                        "1.0",
                        "-1",
                        "9007199254740993",
                        "18446744073709551616",
                        "-9223372036854775808",
                        "1e308",
                        "5e-324",
                    ]
                    .map(String::from),
                );
            }
            "string" => out.extend([
                "\"\"".to_string(),
                format!("\"{}\"", "a".repeat(4096)),
                "\"é€\"".to_string(),
                "\"𝄞\"".to_string(),
                "\"\\u2028\"".to_string(),
                "\"\\ud800\"".to_string(),
                "\"a.b.c\"".to_string(),
            ]),
            "boolean" => out.extend(["true".to_string(), "false".to_string()]),
            _ => {}
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator() -> Generator {
        Generator::from_catalog(&Catalog::embedded().unwrap(), MessageSet::Client, 70_000)
    }

    #[test]
    fn templates_come_from_the_client_schemas_with_their_members_edges() {
        let generator = generator();
        let ping = generator.templates().iter().find(|t| t.message_type == "Ping").unwrap();
        let timestamp = ping.members.iter().position(|(k, _)| k == "timestamp").unwrap();
        // timestamp_ms: an integer, minimum 0, through a $ref into common.json.
        for edge in ["0", "-1", "-0", "18446744073709551616"] {
            assert!(ping.edges[timestamp].contains(&edge.to_string()), "{edge} in {:?}", ping.edges[timestamp]);
        }
        let auth = generator.templates().iter().find(|t| t.message_type == "Authenticate").unwrap();
        let token = auth.members.iter().position(|(k, _)| k == "token").unwrap();
        assert!(auth.edges[token].contains(&"\"\"".to_string()));
        assert!(auth.edges[token].contains(&"\"\\ud800\"".to_string()));
    }

    #[test]
    fn a_seed_gives_the_same_cases_and_another_seed_others() {
        let generator = generator();
        let run = |seed: u64| (0..50).map(|i| generator.case(seed, i)).collect::<Vec<_>>();
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let cases = run(1);
        assert!(cases.iter().all(|c| (1..=3).contains(&c.len())));
        let known = generator.known_keys();
        let kinds: std::collections::BTreeSet<String> =
            cases.iter().flatten().map(|f| f.shape(&known).split([':', '{']).next().unwrap().to_string()).collect();
        assert!(kinds.len() >= 4, "several kinds of input in 50 cases: {kinds:?}");
    }
}
