//! A flat, reusable JSON representation for the validation fast path.
//!
//! Building a `serde_json::Value` costs an allocation per string and per map node, and that
//! was over a third of `wsprobe validate`'s time. A [`Tape`] holds one message as a vector of
//! entries in document order, strings as ranges into one copy of the text; the vectors are kept
//! between messages, so a steady stream allocates nothing. jsonschema validates it through its
//! `Json` trait with the same compiled keywords as `serde_json` values.
//!
//! The tape is only ever a fast way to say "valid". It accepts a subset of what `serde_json`
//! accepts: anything it is unsure about (an escape it does not decode, duplicate keys, deep
//! nesting, a number it would parse differently) makes [`Tape::parse`] return false, and the
//! caller takes the `serde_json` path, which decides and explains. A message the tape calls
//! invalid is also re-checked there, so every reported error comes from one place.

use std::borrow::Cow;

use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::{Number, Value};

/// Deeper documents go the `serde_json` way (its own limit is 128).
const MAX_DEPTH: usize = 64;
/// Objects with more members go the `serde_json` way: duplicate keys are checked pairwise.
const MAX_MEMBERS_CHECKED: usize = 256;

/// The representation's marker type for jsonschema.
pub struct TapeJson;

#[derive(Debug, Clone)]
enum Entry {
    Null,
    Bool(bool),
    Number(Number),
    /// A range of [`Tape::text`], or of [`Tape::unescaped`] when the string had escapes.
    String {
        start: u32,
        end: u32,
        unescaped: bool,
    },
    /// `end` is the index of the first entry after the whole container.
    Array {
        len: u32,
        end: u32,
    },
    /// Members follow as key, value, key, value… (a key is a `String` entry).
    Object {
        len: u32,
        end: u32,
    },
}

/// The entries of one message, kept between messages so that a stream allocates nothing.
/// The text itself is borrowed, not copied.
#[derive(Debug, Default)]
pub struct Tape {
    unescaped: String,
    entries: Vec<Entry>,
    /// The keys of the objects being parsed, for the duplicate check: (signature, key entry).
    keys: Vec<(u32, Entry)>,
}

impl Tape {
    /// Parses `text` into this tape and returns its root. `None` when the text is not plainly
    /// valid JSON in the subset described above: the caller must then let `serde_json` decide.
    pub fn parse<'a>(&'a mut self, text: &'a str) -> Option<TapeNode<'a>> {
        self.unescaped.clear();
        self.entries.clear();
        self.keys.clear();
        if text.len() >= u32::MAX as usize {
            return None;
        }
        let mut parser = Parser {
            bytes: text.as_bytes(),
            pos: 0,
            tape: &mut self.entries,
            unescaped: &mut self.unescaped,
            keys: &mut self.keys,
        };
        parser.document()?;
        Some(TapeNode { text, tape: self, index: 0 })
    }

    fn end_of(&self, index: usize) -> usize {
        match self.entries[index] {
            Entry::Array { end, .. } | Entry::Object { end, .. } => end as usize,
            _ => index + 1,
        }
    }
}

struct Parser<'t> {
    bytes: &'t [u8],
    pos: usize,
    tape: &'t mut Vec<Entry>,
    keys: &'t mut Vec<(u32, Entry)>,
    unescaped: &'t mut String,
}

impl Parser<'_> {
    fn document(&mut self) -> Option<()> {
        self.value(0)?;
        self.skip_whitespace();
        (self.pos == self.bytes.len()).then_some(())
    }

    fn skip_whitespace(&mut self) {
        skip_whitespace(self.bytes, &mut self.pos);
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.bytes.get(self.pos) == Some(&byte)).then(|| self.pos += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_whitespace();
        match *self.bytes.get(self.pos)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => {
                let entry = self.string()?;
                self.tape.push(entry);
                Some(())
            }
            b't' => self.literal(b"true", Entry::Bool(true)),
            b'f' => self.literal(b"false", Entry::Bool(false)),
            b'n' => self.literal(b"null", Entry::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], entry: Entry) -> Option<()> {
        self.bytes[self.pos..].starts_with(word).then(|| {
            self.pos += word.len();
            self.tape.push(entry);
        })
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        let at = self.tape.len();
        self.tape.push(Entry::Object { len: 0, end: 0 });
        self.pos += 1;
        self.skip_whitespace();
        let mut len = 0usize;
        // `serde_json` keeps the last of duplicate keys; rather than imitate that, objects with
        // duplicates (or too many members to check cheaply) go its way. Keys are compared only
        // when their length and first and last bytes agree.
        let first_key = self.keys.len();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                if self.bytes.get(self.pos) != Some(&b'"') || len == MAX_MEMBERS_CHECKED {
                    return None;
                }
                let key = self.string()?;
                let bytes = self.key_bytes(&key);
                let signature = (bytes.len() as u32) << 16
                    | u32::from(bytes.first().copied().unwrap_or(0)) << 8
                    | u32::from(bytes.last().copied().unwrap_or(0));
                if self.keys[first_key..]
                    .iter()
                    .any(|(seen, other)| *seen == signature && self.key_bytes(other) == bytes)
                {
                    return None;
                }
                self.keys.push((signature, key.clone()));
                self.tape.push(key);
                self.expect(b':')?;
                self.value(depth + 1)?;
                len += 1;
                if self.closes(b'}')? {
                    break;
                }
            }
        }
        self.keys.truncate(first_key);
        let end = self.tape.len() as u32;
        self.tape[at] = Entry::Object { len: len as u32, end };
        Some(())
    }

    fn closes(&mut self, close: u8) -> Option<bool> {
        closes(self.bytes, &mut self.pos, close)
    }

    fn key_bytes(&self, key: &Entry) -> &[u8] {
        match *key {
            Entry::String { start, end, unescaped } => {
                let source = if unescaped { self.unescaped.as_bytes() } else { self.bytes };
                &source[start as usize..end as usize]
            }
            _ => &[],
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        let at = self.tape.len();
        self.tape.push(Entry::Array { len: 0, end: 0 });
        self.pos += 1;
        self.skip_whitespace();
        let mut len = 0u32;
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
        } else {
            loop {
                self.value(depth + 1)?;
                len += 1;
                if self.closes(b']')? {
                    break;
                }
            }
        }
        let end = self.tape.len() as u32;
        self.tape[at] = Entry::Array { len, end };
        Some(())
    }

    /// A string at `pos` (on its opening quote). Control characters are refused, as JSON
    /// requires; escapes are decoded into `unescaped`.
    fn string(&mut self) -> Option<Entry> {
        self.pos += 1;
        let start = self.pos;
        self.pos = string_stop(self.bytes, start)?;
        match self.bytes[self.pos] {
            b'"' | b'\\' => {}
            _ => return None,
        }
        if self.bytes[self.pos] == b'"' {
            let entry = Entry::String { start: start as u32, end: self.pos as u32, unescaped: false };
            self.pos += 1;
            return Some(entry);
        }
        // The text is a `str`, so `start..pos` ends before an ASCII backslash: a char boundary.
        let decoded_start = self.unescaped.len();
        self.unescaped.push_str(std::str::from_utf8(&self.bytes[start..self.pos]).ok()?);
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    let end = self.unescaped.len();
                    return Some(Entry::String { start: decoded_start as u32, end: end as u32, unescaped: true });
                }
                b'\\' => {
                    let escaped = *self.bytes.get(self.pos + 1)?;
                    self.pos += 2;
                    let decoded = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    self.unescaped.push(decoded);
                }
                0..=0x1f => return None,
                _ => {
                    let run = self.pos;
                    while let Some(&byte) = self.bytes.get(self.pos) {
                        if byte == b'"' || byte == b'\\' || byte < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    self.unescaped.push_str(std::str::from_utf8(&self.bytes[run..self.pos]).ok()?);
                }
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair written as two escapes. A lone
    /// surrogate is left to `serde_json`.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                    return None;
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(first),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.bytes.get(self.pos..self.pos + 4)?).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn number(&mut self) -> Option<()> {
        let number = read_number(self.bytes, &mut self.pos)?;
        self.tape.push(Entry::Number(number));
        Some(())
    }
}

/// The first quote, backslash or control character at or after `from`: where a plain run
/// inside a string ends. Most strings are short keys and values, so eight bytes at a time beat
/// both a byte loop and a vector search's set-up.
pub(super) fn string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    use crate::byte_search::{controls, find, matches};
    find(
        bytes,
        from,
        |word| matches(word, b'"') | matches(word, b'\\') | controls(word),
        |byte| STRING_STOP[usize::from(byte)],
    )
}

/// Moves `*pos` past JSON whitespace.
pub(super) fn skip_whitespace(bytes: &[u8], pos: &mut usize) {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(*pos) {
        *pos += 1;
    }
}

/// After a member or an element: true past the closing `close`, false past a comma, `None`
/// at anything else.
pub(super) fn closes(bytes: &[u8], pos: &mut usize, close: u8) -> Option<bool> {
    skip_whitespace(bytes, pos);
    let byte = *bytes.get(*pos)?;
    *pos += 1;
    match byte {
        b',' => Some(false),
        _ if byte == close => Some(true),
        _ => None,
    }
}

/// The number at `*pos` (on its sign or first digit), by RFC 8259's grammar; `*pos` moves past
/// it. Plain integers below 10^19 and short decimals are computed here; every other literal is
/// handed to `serde_json::Number`'s own parser, so its value (and any out-of-range refusal) is
/// exactly what the `serde_json` path produces.
pub(super) fn read_number(bytes: &[u8], pos: &mut usize) -> Option<Number> {
    let start = *pos;
    let negative = bytes[*pos] == b'-';
    if negative {
        *pos += 1;
    }
    let (integer, integer_digits) = digits(bytes, pos);
    if integer_digits == 0 || (integer_digits > 1 && bytes[*pos - integer_digits] == b'0') {
        return None;
    }
    let mut fraction_digits = None;
    if bytes.get(*pos) == Some(&b'.') {
        *pos += 1;
        let (fraction, digits) = digits(bytes, pos);
        if digits == 0 {
            return None;
        }
        fraction_digits = Some((fraction, digits));
    }
    let mut exponent = false;
    if let Some(b'e' | b'E') = bytes.get(*pos) {
        *pos += 1;
        exponent = true;
        if let Some(b'+' | b'-') = bytes.get(*pos) {
            *pos += 1;
        }
        if digits(bytes, pos).1 == 0 {
            return None;
        }
    }
    Some(match (negative, fraction_digits, exponent) {
        (false, None, false) if integer_digits <= 19 => Number::from(integer),
        (_, Some((fraction, digits)), false) if integer_digits + digits <= 15 && digits < POW10.len() => {
            // Below 2^53 the significand is exact, and so is 10^digits up to 10^22: the
            // quotient is the correctly rounded value, which is what `serde_json` yields
            // for such a literal with or without its `float_roundtrip` feature.
            let significand = integer * POW10_INT[digits] + fraction;
            let magnitude = significand as f64 / POW10[digits];
            Number::from_f64(if negative { -magnitude } else { magnitude })?
        }
        _ => std::str::from_utf8(&bytes[start..*pos]).ok()?.parse::<Number>().ok()?,
    })
}

/// A run of ASCII digits at `*pos`: its value (wrapping past 19 digits; callers check the
/// count) and its length.
fn digits(bytes: &[u8], pos: &mut usize) -> (u64, usize) {
    let from = *pos;
    let mut value = 0u64;
    while let Some(&byte) = bytes.get(*pos) {
        if !byte.is_ascii_digit() {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
        *pos += 1;
    }
    (value, *pos - from)
}

/// Bytes that end a plain run inside a string: the quote, a backslash, control characters.
pub(super) const STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
const POW10_INT: [u64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// A node of a [`Tape`]: the tape and an entry index.
#[derive(Debug, Clone, Copy)]
pub struct TapeNode<'a> {
    text: &'a str,
    tape: &'a Tape,
    index: u32,
}

impl<'a> TapeNode<'a> {
    fn entry(&self) -> &'a Entry {
        &self.tape.entries[self.index as usize]
    }

    fn at(&self, index: usize) -> TapeNode<'a> {
        TapeNode { text: self.text, tape: self.tape, index: index as u32 }
    }

    /// The string this node holds, borrowed from the tape.
    pub fn str(&self) -> Option<&'a str> {
        match *self.entry() {
            Entry::String { start, end, unescaped } => {
                let source = if unescaped { self.tape.unescaped.as_str() } else { self.text };
                source.get(start as usize..end as usize)
            }
            _ => None,
        }
    }

    /// The number this node holds.
    pub fn number(&self) -> Option<&'a Number> {
        match self.entry() {
            Entry::Number(number) => Some(number),
            _ => None,
        }
    }

    /// The member `key` of this object.
    pub fn member(&self, key: &str) -> Option<TapeNode<'a>> {
        self.as_object()?.members().find(|(name, _)| *name == key).map(|(_, value)| value)
    }
}

impl Json for TapeJson {
    type Node<'a> = TapeNode<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = Tape;

    const ACYCLIC: bool = true;
    /// A lookup is a scan of the members, so one pass over them always beats a lookup per
    /// name (`required`); the bound only keeps the product from overflowing.
    const KEYS_PER_LOOKUP: usize = 1 << 16;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>(buffer: &mut Tape, string: &str, f: impl FnOnce(TapeNode<'_>) -> T) -> T {
        buffer.entries.clear();
        buffer.entries.push(Entry::String { start: 0, end: string.len() as u32, unescaped: false });
        f(TapeNode { text: string, tape: buffer, index: 0 })
    }
}

/// A number entry.
#[derive(Debug, Clone, Copy)]
pub struct TapeNumber<'a>(&'a Number);

impl JsonNumber for TapeNumber<'_> {
    fn as_u64(&self) -> Option<u64> {
        self.0.as_u64()
    }

    fn as_i64(&self) -> Option<i64> {
        self.0.as_i64()
    }

    fn as_f64(&self) -> Option<f64> {
        self.0.as_f64()
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.0.to_string())
    }

    fn to_number(&self) -> Cow<'_, Number> {
        Cow::Borrowed(self.0)
    }

    fn is_written_as_integer(&self) -> bool {
        !self.0.is_f64()
    }
}

impl<'a> Node<'a, TapeJson> for TapeNode<'a> {
    type Object = TapeObject<'a>;
    type Array = TapeArray<'a>;
    type Number = TapeNumber<'a>;

    fn as_object(&self) -> Option<TapeObject<'a>> {
        match *self.entry() {
            Entry::Object { len, .. } => Some(TapeObject { node: *self, len: len as usize }),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<TapeArray<'a>> {
        match *self.entry() {
            Entry::Array { len, .. } => Some(TapeArray { node: *self, len: len as usize }),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        self.str().map(Cow::Borrowed)
    }

    fn as_number(&self) -> Option<TapeNumber<'a>> {
        match self.entry() {
            Entry::Number(number) => Some(TapeNumber(number)),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match *self.entry() {
            Entry::Bool(value) => Some(value),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.entry(), Entry::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.entry() {
            Entry::Null => JsonType::Null,
            Entry::Bool(_) => JsonType::Boolean,
            Entry::Number(_) => JsonType::Number,
            Entry::String { .. } => JsonType::String,
            Entry::Array { .. } => JsonType::Array,
            Entry::Object { .. } => JsonType::Object,
        }
    }

    /// `const` and `enum` on scalars (every message's `type` is a `const`) compare in place.
    fn equals_value(&self, expected: &Value) -> bool {
        match (self.entry(), expected) {
            (Entry::String { .. }, Value::String(expected)) => self.str() == Some(expected.as_str()),
            (Entry::Bool(value), Value::Bool(expected)) => value == expected,
            (Entry::Null, Value::Null) => true,
            (Entry::Number(number), Value::Number(_)) => {
                jsonschema::json::cmp::equal(&Value::Number(number.clone()), expected)
            }
            (Entry::Array { .. } | Entry::Object { .. }, Value::Array(_) | Value::Object(_)) => {
                jsonschema::json::cmp::equal(&self.to_value(), expected)
            }
            _ => false,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(match self.entry() {
            Entry::Null => Value::Null,
            Entry::Bool(value) => Value::Bool(*value),
            Entry::Number(number) => Value::Number(number.clone()),
            Entry::String { .. } => Value::String(self.str().unwrap_or_default().to_string()),
            Entry::Array { .. } => Value::Array(
                self.as_array().into_iter().flat_map(|a| a.elements()).map(|e| e.to_value().into_owned()).collect(),
            ),
            Entry::Object { .. } => Value::Object(
                self.as_object()
                    .into_iter()
                    .flat_map(|o| o.members())
                    .map(|(name, value)| (name.to_string(), value.to_value().into_owned()))
                    .collect(),
            ),
        })
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(std::ptr::from_ref(self.tape) as usize, self.index))
    }
}

/// An object node and its member count.
#[derive(Debug, Clone, Copy)]
pub struct TapeObject<'a> {
    node: TapeNode<'a>,
    len: usize,
}

/// Walks an object's members: key at `next`, value after it.
pub struct Members<'a> {
    node: TapeNode<'a>,
    next: usize,
    left: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TapeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = self.node.at(self.next).str().unwrap_or_default();
        let value = self.node.at(self.next + 1);
        self.next = self.node.tape.end_of(self.next + 1);
        Some((name, value))
    }
}

impl<'a> TapeObject<'a> {
    /// The member names as string nodes, for `propertyNames`.
    pub fn keys(&self) -> impl Iterator<Item = TapeNode<'a>> {
        let mut members = self.members();
        std::iter::from_fn(move || {
            let key = members.node.at(members.next);
            members.next()?;
            Some(key)
        })
    }
}

impl<'a> Object<'a, TapeJson> for TapeObject<'a> {
    type Node = TapeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, key: &Box<str>) -> Option<TapeNode<'a>> {
        self.members().find(|(name, _)| *name == &**key).map(|(_, value)| value)
    }

    fn members(&self) -> Members<'a> {
        Members { node: self.node, next: self.node.index as usize + 1, left: self.len }
    }
}

/// An array node and its length.
#[derive(Debug, Clone, Copy)]
pub struct TapeArray<'a> {
    node: TapeNode<'a>,
    len: usize,
}

/// Walks an array's elements.
pub struct Elements<'a> {
    node: TapeNode<'a>,
    next: usize,
    left: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = TapeNode<'a>;

    fn next(&mut self) -> Option<TapeNode<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let element = self.node.at(self.next);
        self.next = self.node.tape.end_of(self.next);
        Some(element)
    }
}

impl<'a> Array<'a, TapeJson> for TapeArray<'a> {
    type Node = TapeNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        self.len
    }

    fn elements(&self) -> Elements<'a> {
        Elements { node: self.node, next: self.node.index as usize + 1, left: self.len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(text: &str) -> Option<Value> {
        let mut tape = Tape::default();
        tape.parse(text).map(|root| root.to_value().into_owned())
    }

    #[test]
    fn documents_read_back_as_serde_json_reads_them() {
        for text in [
            r#"{"type":"MarketData","data":{"symbol":"BTCUSDT","price":67500.5,"volume":-1.5e3,"n":18446744073709551615},"timestamp":1697234567000}"#,
            r#" [1, -0, 0.5, 1E2, 1e-2, true, false, null, [], {}, [[{"a":[]}]]] "#,
            r#"{"escaped":"q\"b\\s\/\b\f\n\r\t \u00e9 \ud83d\ude00 end","plain":"héllo ☃"}"#,
            r#"{"big":123456789012345678901234567890,"negative":-9223372036854775808}"#,
            "\t{\r\n\"a\" : 1 }\n",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(value_of(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn anything_doubtful_is_left_to_serde_json() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        let wide = format!(
            "{{{}}}",
            (0..MAX_MEMBERS_CHECKED + 1).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",")
        );
        for text in [
            "",
            "{",
            "}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "{\"a\" 1}",
            "{a:1}",
            "\"\u{1}\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\u12G4\"",
            "1e400",
            "{\"a\":1,\"a\":2}",
            "{\"\\u0061\":1,\"a\":2}",
            "1 2",
            "[1] x",
            &deep,
            &wide,
        ] {
            assert!(value_of(text).is_none(), "the tape took {text:?}");
        }
        // Each of these `serde_json` refuses too, apart from the duplicates, deep and wide ones,
        // which it reads in its own way.
    }

    proptest::proptest! {
        #[test]
        fn numbers_have_the_value_serde_json_gives_them(
            integer in 0u64..10_000_000_000,
            fraction in 0u64..1_000_000,
            digits in 1usize..7,
            negative: bool,
            exponent in proptest::option::of(-30i32..30),
        ) {
            let mut literal = format!("{}{integer}.{:0digits$}", if negative { "-" } else { "" }, fraction % 10u64.pow(digits as u32));
            if let Some(exponent) = exponent {
                literal.push_str(&format!("e{exponent}"));
            }
            for text in [literal.clone(), format!("{}{integer}", if negative { "-" } else { "" })] {
                let expected: Value = serde_json::from_str(&text).unwrap();
                let read = value_of(&text).expect("a plain number");
                proptest::prop_assert_eq!(&read, &expected, "{}", text);
                // The same variant too (PosInt / NegInt / Float), not only an equal value.
                proptest::prop_assert_eq!(read.as_f64().map(f64::to_bits), expected.as_f64().map(f64::to_bits));
                proptest::prop_assert_eq!(read.is_f64(), expected.is_f64());
            }
        }
    }

    #[test]
    fn the_representation_keeps_jsonschemas_contract() {
        let document = serde_json::to_string(&jsonschema::json::conformance::document()).unwrap();
        let mut tape = Tape::default();
        let root = tape.parse(&document).expect("the conformance document is plain JSON");
        jsonschema::json::conformance::assert_conformance::<TapeJson>(&root);
    }
}
