//! Validation in one pass over a message's text, for the common case of `validate`.
//!
//! Building a tape and then walking it reads every value twice and stores it once. Here the
//! compiled [`Program`] is walked together with the text: each member name is matched against
//! the schema's names as it is read, each scalar is checked where it stands, and nothing is
//! stored. Schemas that need a value as a whole (`allOf`, `if`, `uniqueItems`, …) get a tape of
//! just that value's text, checked by [`Program::check_at`].
//!
//! Like the tape, the scan only ever says "valid" for certain. Anything it does not handle (a
//! backslash escape, a root whose `type` is not its first member, deep nesting, a number it
//! cannot compare exactly) makes it [`Scanned::Unsure`], and the caller takes the tape path;
//! anything invalid or malformed makes it [`Scanned::Rejected`], and the caller takes the
//! `serde_json` path, which explains. `fast_path_agrees` (tests/integration/fuzz.rs) holds its
//! answers to the full validator's.

use std::cmp::Ordering;

use jsonschema::json::Json as _;

use super::compiled::{is_integer, within, Additional, Check, Limit, Plan, Program, TypeMask, Undecided};
use super::tape::{self, read_number, string_stop, Tape, TapeJson, STRING_STOP};

/// Nesting past this is left to the tape path (whose own limit it is).
const MAX_DEPTH: usize = 64;

/// What one pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    Valid,
    /// Not valid against the schema of the message's `type`, or not JSON: the full path
    /// decides and explains. (With a repeated `type`, the scan checks every one, while the
    /// full path reads the last.)
    Rejected,
    /// Not settled here: the tape path decides.
    Unsure,
}

/// The discriminator of a message whose root object has `"type":"…"` (`quoted_member` is the
/// discriminator's name in quotes, `"type"` for Bot Core) as its first or its last member
/// (whitespace allowed): producers put it first, and serializers that sort keys put it last.
/// `None` otherwise. A wrong guess is harmless: the scan checks the whole text against the
/// guessed schema, whose discriminator is a `const`.
pub fn message_type<'t>(text: &'t str, quoted_member: &[u8]) -> Option<&'t str> {
    leading_type(text, quoted_member).or_else(|| trailing_type(text, quoted_member))
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t')
}

fn leading_type<'t>(text: &'t str, quoted_member: &[u8]) -> Option<&'t str> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let expect = |token: &[u8], pos: &mut usize| {
        while bytes.get(*pos).is_some_and(|b| is_space(*b)) {
            *pos += 1;
        }
        bytes.get(*pos..*pos + token.len()).filter(|found| *found == token).map(|_| *pos += token.len())
    };
    expect(b"{", &mut pos)?;
    expect(quoted_member, &mut pos)?;
    expect(b":", &mut pos)?;
    expect(b"\"", &mut pos)?;
    let start = pos;
    let end = string_stop(bytes, start)?;
    (bytes[end] == b'"').then(|| &text[start..end])
}

/// The same read backwards from the closing brace: `…,"type":"X"}`.
fn trailing_type<'t>(text: &'t str, quoted_member: &[u8]) -> Option<&'t str> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    let expect = |token: &[u8], end: &mut usize| {
        while *end > 0 && is_space(bytes[*end - 1]) {
            *end -= 1;
        }
        let start = end.checked_sub(token.len())?;
        (&bytes[start..*end] == token).then(|| *end = start)
    };
    expect(b"}", &mut end)?;
    expect(b"\"", &mut end)?;
    let close = end;
    let open = bytes[..close].iter().rposition(|b| STRING_STOP[usize::from(*b)])?;
    if bytes[open] != b'"' {
        return None;
    }
    end = open;
    expect(b":", &mut end)?;
    expect(quoted_member, &mut end)?;
    if expect(b",", &mut end).is_none() {
        expect(b"{", &mut end)?;
    }
    text.get(open + 1..close)
}

/// Checks `text` against `program` in one pass. `tape` is scratch space for the parts that
/// need a tape.
pub fn scan(program: &Program, text: &str, tape: &mut Tape) -> Scanned {
    let mut scanner = Scanner { program, text, bytes: text.as_bytes(), pos: 0, tape };
    let outcome = scanner.value(Some(program.root), 0).map(|valid| {
        scanner.skip_whitespace();
        // Trailing bytes make it not JSON; the full path says so.
        valid && scanner.pos == scanner.bytes.len()
    });
    match outcome {
        Ok(true) => Scanned::Valid,
        Ok(false) => Scanned::Rejected,
        Err(Undecided) => Scanned::Unsure,
    }
}

/// `Ok(false)` ends the scan at once: the message is invalid, or not JSON.
type Step = Result<bool, Undecided>;

struct Scanner<'p, 't> {
    program: &'p Program,
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    tape: &'p mut Tape,
}

impl<'p, 't> Scanner<'p, 't> {
    fn skip_whitespace(&mut self) {
        tape::skip_whitespace(self.bytes, &mut self.pos);
    }

    /// Reads one value and checks it against `schema` (`None`: any value, read for its syntax).
    fn value(&mut self, schema: Option<usize>, depth: usize) -> Step {
        if depth > MAX_DEPTH {
            return Err(Undecided);
        }
        let program: &'p Program = self.program;
        let plan = schema.map_or(&ANY_VALUE, |index| &program.plans[index]);
        if !plan.streamable {
            return self.whole_value(plan.target, depth);
        }
        self.skip_whitespace();
        let Some(&first) = self.bytes.get(self.pos) else { return Ok(false) };
        let bit = match first {
            b'"' => {
                let Some(text) = self.string()? else { return Ok(false) };
                return Ok(self.string_holds(plan, text));
            }
            _ if plan.only_strings => return Ok(false),
            b'{' => TypeMask::OBJECT,
            b'[' => TypeMask::ARRAY,
            b'-' | b'0'..=b'9' => match self.number(plan)? {
                Some(bit) => bit,
                None => return Ok(false),
            },
            b't' | b'f' | b'n' => {
                let (word, bit): (&[u8], u8) = match first {
                    b't' => (b"true", TypeMask::BOOLEAN),
                    b'f' => (b"false", TypeMask::BOOLEAN),
                    _ => (b"null", TypeMask::NULL),
                };
                if !self.bytes[self.pos..].starts_with(word) {
                    return Ok(false);
                }
                self.pos += word.len();
                bit
            }
            _ => return Ok(false),
        };
        if plan.types & bit == 0 {
            return Ok(false);
        }
        match bit {
            TypeMask::OBJECT => self.object(plan, depth),
            TypeMask::ARRAY => self.array(plan.items, depth),
            _ => Ok(true),
        }
    }

    /// A number at `pos` checked against `plan`'s bounds: its type bit, or `None` when it is
    /// not a JSON number or out of bounds. Most bounds in message schemas are against zero,
    /// which the literal's sign and digits settle without computing its value.
    fn number(&mut self, plan: &Plan) -> Result<Option<u8>, Undecided> {
        let start = self.pos;
        let Some(literal) = NumberLiteral::read(self.bytes, &mut self.pos) else { return Ok(None) };
        // Up to 300 digits and without an exponent, a literal neither overflows nor rounds
        // to zero, so its sign and digits are its order against zero.
        let plain = !literal.exponent && literal.digits <= 300;
        if plain && plan.bounds.iter().all(|(_, limit)| matches!(limit, Limit::Integer(0))) {
            let ordering = match (literal.zero, literal.negative) {
                (true, _) => Ordering::Equal,
                (false, true) => Ordering::Less,
                (false, false) => Ordering::Greater,
            };
            if !plan.bounds.iter().all(|(bound, _)| bound.holds(ordering)) {
                return Ok(None);
            }
            // serde_json reads `5.0` as a float, which jsonschema counts as an integer too.
            return Ok(Some(if literal.whole { TypeMask::INTEGER } else { TypeMask::NUMBER }));
        }
        self.pos = start;
        let Some(number) = read_number(self.bytes, &mut self.pos) else { return Ok(None) };
        for (bound, limit) in &plan.bounds {
            if !within(&number, *bound, *limit).ok_or(Undecided)? {
                return Ok(None);
            }
        }
        Ok(Some(if is_integer(&number) { TypeMask::INTEGER } else { TypeMask::NUMBER }))
    }

    /// A string at `pos` (on its quote) without escapes: its text. `None` when it is not a
    /// JSON string; [`Undecided`] at a backslash, which the tape path decodes.
    fn string(&mut self) -> Result<Option<&'t str>, Undecided> {
        let start = self.pos + 1;
        let Some(end) = string_stop(self.bytes, start) else { return Ok(None) };
        match self.bytes[end] {
            b'"' => {
                self.pos = end + 1;
                // Both ends are ASCII quotes in a `str`: char boundaries.
                let text: &'t str = self.text;
                Ok(text.get(start..end))
            }
            b'\\' => Err(Undecided),
            _ => Ok(None),
        }
    }

    /// Whether a string satisfies every check of a streamable schema.
    fn string_holds(&mut self, plan: &Plan, text: &str) -> bool {
        if plan.types & TypeMask::STRING == 0 {
            return false;
        }
        if !plan.string_checks {
            return true;
        }
        let program: &'p Program = self.program;
        for check in &program.schemas[plan.target].checks {
            let holds = match check {
                Check::ConstString(expected) => **expected == *text,
                Check::EnumStrings(options) => options.iter().any(|option| **option == *text),
                Check::Length { min, max } => {
                    let chars = text.chars().count() as u64;
                    *min <= chars && chars <= *max
                }
                Check::Delegate { validator, .. } => {
                    TapeJson::with_string_node(self.tape, text, |node| validator.is_valid(node))
                }
                _ => true,
            };
            if !holds {
                return false;
            }
        }
        true
    }

    fn object(&mut self, plan: &Plan, depth: usize) -> Step {
        let program: &'p Program = self.program;
        let shape = program.shape(plan);
        self.pos += 1;
        self.skip_whitespace();
        let mut seen = 0u64;
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                if self.bytes.get(self.pos) != Some(&b'"') {
                    return Ok(false);
                }
                let Some(name) = self.string()? else { return Ok(false) };
                if let Some(index) = plan.names {
                    if !self.string_holds(&program.plans[index], name) {
                        return Ok(false);
                    }
                }
                self.skip_whitespace();
                if self.bytes.get(self.pos) != Some(&b':') {
                    return Ok(false);
                }
                self.pos += 1;
                let member_schema = match shape {
                    None => None,
                    Some(shape) => match shape.name(name) {
                        Some(known) if known.in_properties => {
                            seen |= known.required_bit;
                            known.schema
                        }
                        known => {
                            seen |= known.map_or(0, |known| known.required_bit);
                            match shape.additional {
                                Additional::Allowed => None,
                                Additional::Forbidden => return Ok(false),
                                Additional::Schema(index) => Some(index),
                            }
                        }
                    },
                };
                if !self.value(member_schema, depth + 1)? {
                    return Ok(false);
                }
                match self.closes(b'}') {
                    Some(true) => break,
                    Some(false) => {}
                    None => return Ok(false),
                }
            }
        }
        Ok(shape.is_none_or(|shape| seen & shape.required == shape.required))
    }

    fn closes(&mut self, close: u8) -> Option<bool> {
        tape::closes(self.bytes, &mut self.pos, close)
    }

    fn array(&mut self, items: Option<usize>, depth: usize) -> Step {
        self.pos += 1;
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(true);
        }
        loop {
            if !self.value(items, depth + 1)? {
                return Ok(false);
            }
            match self.closes(b']') {
                Some(true) => return Ok(true),
                Some(false) => {}
                None => return Ok(false),
            }
        }
    }

    /// A value whose schema needs it whole: read past it, then check a tape of its text.
    fn whole_value(&mut self, index: usize, depth: usize) -> Step {
        self.skip_whitespace();
        let start = self.pos;
        if !self.value(None, depth)? {
            return Ok(false);
        }
        let text = &self.text[start..self.pos];
        match self.tape.parse(text) {
            Some(node) => self.program.check_at(index, node),
            None => Err(Undecided),
        }
    }
}

/// What a number literal's text says without computing its value.
struct NumberLiteral {
    negative: bool,
    /// Every digit is 0.
    zero: bool,
    /// No fraction digit other than 0.
    whole: bool,
    exponent: bool,
    /// Digits before and after the point.
    digits: usize,
}

impl NumberLiteral {
    /// The literal at `*pos` by RFC 8259's grammar, `*pos` moved past it; `None` when it is
    /// not one.
    fn read(bytes: &[u8], pos: &mut usize) -> Option<NumberLiteral> {
        let digits = |pos: &mut usize| {
            let from = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            from..*pos
        };
        let negative = bytes.get(*pos) == Some(&b'-');
        *pos += usize::from(negative);
        let integer = digits(pos);
        if integer.is_empty() || (integer.len() > 1 && bytes[integer.start] == b'0') {
            return None;
        }
        let mut literal = NumberLiteral {
            negative,
            zero: bytes[integer.start] == b'0',
            whole: true,
            exponent: false,
            digits: integer.len(),
        };
        if bytes.get(*pos) == Some(&b'.') {
            *pos += 1;
            let fraction = digits(pos);
            if fraction.is_empty() {
                return None;
            }
            let fraction_zero = bytes[fraction.clone()].iter().all(|b| *b == b'0');
            literal.zero &= fraction_zero;
            literal.whole = fraction_zero;
            literal.digits += fraction.len();
        }
        if let Some(b'e' | b'E') = bytes.get(*pos) {
            *pos += 1;
            if let Some(b'+' | b'-') = bytes.get(*pos) {
                *pos += 1;
            }
            if digits(pos).is_empty() {
                return None;
            }
            literal.exponent = true;
        }
        Some(literal)
    }
}

/// The plan for a value read only for its syntax.
static ANY_VALUE: Plan = Plan::ANY;

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &[u8] = b"\"type\"";

    #[test]
    fn the_type_is_found_first_or_last_and_nowhere_else() {
        assert_eq!(message_type(r#" { "type" : "Pong", "data": {} }"#, TYPE), Some("Pong"));
        assert_eq!(message_type(r#"{"data":{"type":"X"},"type":"Pong"}"#, TYPE), Some("Pong"));
        assert_eq!(message_type("{\"data\":1 ,\n \"type\" : \"Pong\" }\n", TYPE), Some("Pong"));
        assert_eq!(message_type(r#"{"type":"Pong"}"#, TYPE), Some("Pong"));
        assert_eq!(message_type(r#"{"data":{"type":"X"},"timestamp":1}"#, TYPE), None);
        assert_eq!(message_type(r#"{"data":{"type":"X"}}"#, TYPE), None);
        assert_eq!(message_type(r#"{"a":"q\",\"type\":\"X"}"#, TYPE), None);
        assert_eq!(message_type(r#"{"type":"P\u006fng"}"#, TYPE), None);
        assert_eq!(message_type(r#"["type","Pong"]"#, TYPE), None);
        assert_eq!(message_type("", TYPE), None);
        assert_eq!(message_type("}", TYPE), None);
        assert_eq!(message_type(r#"{"reqid":1,"event":"pong"}"#, b"\"event\""), Some("pong"));
        assert_eq!(message_type(r#"{"type":"pong"}"#, b"\"event\""), None);
    }
}
