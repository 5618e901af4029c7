//! Reads captured messages as a stream: JSON Lines (one message a line), one JSON document
//! (pretty-printed or not), or a top-level array of messages, element by element. Memory stays
//! bounded whatever the input's size: one message at a time is held, and a message larger than
//! the cap is reported and skipped without being stored. Every message keeps the line it
//! starts on, because a report that cannot point at the offending line is of little use on a
//! large capture.

use std::io::{self, BufRead};
use std::ops::Range;

use serde_json::Value;

use crate::byte_search;

/// The largest message read by default (`--max-message-bytes`): the size `wsprobe run` and
/// `load` accept from a server.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// One message as read from a capture, not yet parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    /// 1-based line on which the message starts.
    pub line: usize,
    /// Its text, or why it could not be kept (too large, not UTF-8).
    pub text: Result<String, String>,
}

/// A message read into a shared buffer: its line, and its text's range in the buffer or why it
/// has no text.
pub type ArenaMessage = (usize, Result<Range<usize>, String>);

/// One message as read from a capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// 1-based line on which the message starts (for a syntax error: the line of the error).
    pub line: usize,
    /// The message, or why its text is not JSON.
    pub parsed: Result<Value, String>,
}

impl RawMessage {
    pub fn parse(&self) -> Captured {
        parse(self.line, self.text.as_deref().map_err(String::as_str))
    }
}

/// Parses the message that starts on `line`, or passes on why it has no text.
pub fn parse(line: usize, text: Result<&str, &str>) -> Captured {
    match text {
        Err(reason) => Captured { line, parsed: Err(reason.to_string()) },
        Ok(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => Captured { line, parsed: Ok(value) },
            Err(error) => Captured {
                line: line + error.line().saturating_sub(1),
                parsed: Err(format!("not valid JSON: {error}")),
            },
        },
    }
}

/// Calls `each` for every message in `text`, in order.
pub fn for_each_message(text: &str, mut each: impl FnMut(Captured)) {
    let mut reader = MessageReader::new(text.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES);
    while let Ok(Some(raw)) = reader.next_message() {
        each(raw.parse());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Not decided until the first non-blank byte.
    Unknown,
    /// One value per line, or several lines for a value that does not close on its line.
    Lines,
    /// Inside a top-level array.
    Array,
    /// After the top-level array's closing bracket.
    AfterArray,
}

/// Splits a byte stream into messages, holding at most one message (capped) at a time.
pub struct MessageReader<R> {
    input: R,
    max_bytes: usize,
    layout: Layout,
    /// The line the next byte is on.
    line: usize,
    /// A line read ahead and put back.
    pending: Option<Vec<u8>>,
    /// The current line, reused from line to line so that JSON Lines cost no allocation each.
    scratch: Vec<u8>,
}

/// What the line reader found: a message that is the trimmed current line (in `scratch`, not
/// yet copied anywhere), or one assembled elsewhere.
enum Next {
    Line { line: usize, from: usize, to: usize },
    Message(RawMessage),
}

impl<R: BufRead> MessageReader<R> {
    pub fn new(input: R, max_bytes: usize) -> MessageReader<R> {
        MessageReader { input, max_bytes, layout: Layout::Unknown, line: 1, pending: None, scratch: Vec::new() }
    }

    /// A reader that continues a JSON Lines input at line `line`: the layout is not
    /// re-detected, so a line that opens an array is one (multi-line) message, as it would
    /// have been had the whole input been read by one reader.
    pub fn resume_lines(input: R, max_bytes: usize, line: usize) -> MessageReader<R> {
        MessageReader { layout: Layout::Lines, line, ..MessageReader::new(input, max_bytes) }
    }

    /// A reader for the rest of an input, from line `line`, where nothing but blank lines
    /// came before: the layout is still to be detected.
    pub fn from_line(input: R, max_bytes: usize, line: usize) -> MessageReader<R> {
        MessageReader { line, ..MessageReader::new(input, max_bytes) }
    }

    /// The input from here and the number of the line it starts on, when the reader stands
    /// at the start of a line of JSON Lines with nothing read ahead, so that a faster line
    /// splitter can take over; the reader itself otherwise.
    pub fn into_line_input(self) -> Result<(R, usize), MessageReader<R>> {
        if self.at_line_start() {
            Ok((self.input, self.line))
        } else {
            Err(self)
        }
    }

    /// Whether the reader stands at the start of a line of JSON Lines with nothing read ahead.
    pub fn at_line_start(&self) -> bool {
        self.layout == Layout::Lines && self.pending.is_none()
    }

    /// The next message, or `None` at the end of the input.
    pub fn next_message(&mut self) -> io::Result<Option<RawMessage>> {
        Ok(match self.next()? {
            None => None,
            Some(Next::Line { line, from, to }) => {
                Some(RawMessage { line, text: utf8(self.scratch[from..to].to_vec()) })
            }
            Some(Next::Message(message)) => Some(message),
        })
    }

    /// The next message with its text appended to `arena`: its line, and the text's range in
    /// `arena` or why there is no text. A batch of messages then lives in one buffer.
    pub fn next_message_into(&mut self, arena: &mut String) -> io::Result<Option<ArenaMessage>> {
        let mut append = |text: &str| {
            let start = arena.len();
            arena.push_str(text);
            start..arena.len()
        };
        Ok(match self.next()? {
            None => None,
            Some(Next::Line { line, from, to }) => Some((line, utf8_str(&self.scratch[from..to]).map(append))),
            Some(Next::Message(RawMessage { line, text })) => Some((line, text.map(|text| append(&text)))),
        })
    }

    fn next(&mut self) -> io::Result<Option<Next>> {
        loop {
            match self.layout {
                Layout::Unknown => match self.skip_whitespace()? {
                    None => return Ok(None),
                    Some(b'[') => {
                        self.input.consume(1);
                        self.layout = Layout::Array;
                    }
                    Some(_) => self.layout = Layout::Lines,
                },
                Layout::Lines => return self.next_line_message(),
                Layout::Array => match self.skip_whitespace()? {
                    None => {
                        self.layout = Layout::AfterArray;
                        return Ok(Some(Next::Message(RawMessage {
                            line: self.line,
                            text: Err("not valid JSON: the top-level array is not closed".into()),
                        })));
                    }
                    Some(b',') => self.input.consume(1),
                    Some(b']') => {
                        self.input.consume(1);
                        self.layout = Layout::AfterArray;
                    }
                    Some(_) => return self.next_array_element().map(|m| Some(Next::Message(m))),
                },
                Layout::AfterArray => {
                    return match self.skip_whitespace()? {
                        None => Ok(None),
                        Some(_) => {
                            // Another document follows: read the rest as lines.
                            self.layout = Layout::Lines;
                            continue;
                        }
                    };
                }
            }
        }
    }

    /// Skips whitespace, counting lines; returns the next byte without consuming it.
    fn skip_whitespace(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            let mut used = 0;
            for &byte in buffer {
                if !byte.is_ascii_whitespace() {
                    let found = Some(byte);
                    self.input.consume(used);
                    return Ok(found);
                }
                if byte == b'\n' {
                    self.line += 1;
                }
                used += 1;
            }
            self.input.consume(used);
        }
    }

    /// A line holding a whole value is one message. A line that leaves a bracket open starts a
    /// multi-line document, which runs until its brackets close; but a later line that is a
    /// whole object on its own means the open line was a broken message of its own.
    fn next_line_message(&mut self) -> io::Result<Option<Next>> {
        let mut line_bytes = std::mem::take(&mut self.scratch);
        let next = self.next_line_message_in(&mut line_bytes);
        self.scratch = line_bytes;
        next
    }

    fn next_line_message_in(&mut self, line_bytes: &mut Vec<u8>) -> io::Result<Option<Next>> {
        let message = |m| Ok(Some(Next::Message(m)));
        loop {
            let start = self.line;
            let Some(overflow) = self.read_line_capped(line_bytes)? else { return Ok(None) };
            if overflow {
                return message(too_large(start, self.max_bytes));
            }
            let trimmed = trim(line_bytes);
            if trimmed.is_empty() {
                continue;
            }
            if is_closed_or_parses(trimmed) {
                let (from, to) = trimmed_range(line_bytes);
                return Ok(Some(Next::Line { line: start, from, to }));
            }
            // A multi-line document (or a broken line).
            let mut depth = Depth::default();
            depth.feed(trimmed);
            let mut document = trimmed.to_vec();
            document.push(b'\n');
            loop {
                let before = self.line;
                let Some(overflow) = self.read_line_capped(line_bytes)? else {
                    return message(RawMessage { line: start, text: utf8(document) });
                };
                let next = trim(line_bytes);
                if overflow || document.len() + next.len() > self.max_bytes {
                    // Skip to the document's end is not knowable; report it as too large.
                    return message(too_large(start, self.max_bytes));
                }
                if next.starts_with(b"{") && parses(next) {
                    // The open line was a broken message; this line is the next one. Hand the
                    // broken one back now and keep this line for the next call.
                    self.pending_line(before, next.to_vec());
                    return message(RawMessage { line: start, text: utf8(document) });
                }
                depth.feed(next);
                document.extend_from_slice(next);
                document.push(b'\n');
                if depth.closed() {
                    return message(RawMessage { line: start, text: utf8(document) });
                }
            }
        }
    }

    /// One element of the top-level array, up to the `,` or `]` that ends it.
    fn next_array_element(&mut self) -> io::Result<RawMessage> {
        let start = self.line;
        let mut element = Vec::new();
        let mut depth = Depth::default();
        let mut overflow = false;
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                // The input ended inside the array: this element is where it broke off.
                self.layout = Layout::AfterArray;
                break;
            }
            let mut used = 0;
            let mut done = false;
            for &byte in buffer {
                if depth.at_top() && (byte == b',' || byte == b']') {
                    done = true;
                    break;
                }
                if byte == b'\n' {
                    self.line += 1;
                }
                depth.feed(&[byte]);
                used += 1;
            }
            if !overflow {
                if element.len() + used > self.max_bytes {
                    overflow = true;
                    element = Vec::new();
                } else {
                    element.extend_from_slice(&buffer[..used]);
                }
            }
            self.input.consume(used);
            if done {
                break;
            }
        }
        if overflow {
            return Ok(too_large(start, self.max_bytes));
        }
        let trimmed = trim(&element).to_vec();
        Ok(RawMessage { line: start, text: utf8(trimmed) })
    }

    /// Reads one line (without its newline) into `into`, keeping at most `max_bytes`; `None`
    /// at the end of the input, `Some(true)` when the line was longer than the cap.
    fn read_line_capped(&mut self, into: &mut Vec<u8>) -> io::Result<Option<bool>> {
        into.clear();
        if let Some(line) = self.pending.take() {
            *into = line;
            self.line += 1;
            return Ok(Some(false));
        }
        let mut overflow = false;
        let mut read_any = false;
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                return Ok(read_any.then_some(overflow));
            }
            read_any = true;
            let (piece, newline) = match memchr::memchr(b'\n', buffer) {
                Some(at) => (&buffer[..at], true),
                None => (buffer, false),
            };
            if !overflow && into.len() + piece.len() > self.max_bytes {
                overflow = true;
                into.clear();
            }
            if !overflow {
                into.extend_from_slice(piece);
            }
            let used = piece.len() + usize::from(newline);
            self.input.consume(used);
            if newline {
                self.line += 1;
                return Ok(Some(overflow));
            }
        }
    }
}

impl<R> MessageReader<R> {
    /// Puts back a line read ahead (it started on line `line`).
    fn pending_line(&mut self, line: usize, text: Vec<u8>) {
        self.pending = Some(text);
        self.line = line;
    }
}

/// A line of a chunk of JSON Lines, as [`next_line`] reads it.
#[derive(Debug, PartialEq)]
pub struct ChunkLine<'c> {
    /// 1-based line number.
    pub line: usize,
    /// Where the line starts in the chunk.
    pub offset: usize,
    /// The trimmed line, or why it has no text (too large, not UTF-8): what [`MessageReader`]
    /// yields for it, unless [`ChunkLine::opens_document`] says that a multi-line document
    /// starts here.
    pub text: Result<&'c str, String>,
    /// The trimmed line's bytes; `None` for a line over the cap, which is never stored.
    bytes: Option<&'c [u8]>,
}

impl ChunkLine<'_> {
    /// Whether the line opens a value it does not close, so that [`MessageReader`] would
    /// read it together with the lines after it (not UTF-8 or not, as the reader does).
    pub fn opens_document(&self) -> bool {
        self.bytes.is_some_and(|bytes| !is_closed_or_parses(bytes))
    }
}

/// The next non-blank line of `chunk` at or after `*offset` (which moves past it), numbered
/// from `*line`; `None` at the chunk's end.
///
/// `validate` splits JSON Lines itself, in parallel, with this. On such input it reads what
/// [`MessageReader`] reads, and the bracket count that finds multi-line documents
/// ([`ChunkLine::opens_document`]) is spent only on lines that are not valid messages anyway.
pub fn next_line<'c>(chunk: &'c [u8], offset: &mut usize, line: &mut usize, max_bytes: usize) -> Option<ChunkLine<'c>> {
    while *offset < chunk.len() {
        let start = *offset;
        let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |at| start + at);
        *offset = end + 1;
        let number = *line;
        *line += 1;
        if end - start > max_bytes {
            let text = Err(too_large_reason(max_bytes));
            return Some(ChunkLine { line: number, offset: start, text, bytes: None });
        }
        let trimmed = trim(&chunk[start..end]);
        if !trimmed.is_empty() {
            return Some(ChunkLine { line: number, offset: start, text: utf8_str(trimmed), bytes: Some(trimmed) });
        }
    }
    None
}

/// The reader's test for a line that is a message on its own.
fn is_closed_or_parses(trimmed: &[u8]) -> bool {
    let mut depth = Depth::default();
    depth.feed(trimmed);
    depth.closed() || parses(trimmed)
}

fn too_large(line: usize, max: usize) -> RawMessage {
    RawMessage { line, text: Err(too_large_reason(max)) }
}

fn too_large_reason(max: usize) -> String {
    format!("the message is larger than {max} bytes (--max-message-bytes); it was skipped")
}

fn utf8(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| not_utf8(e.utf8_error()))
}

fn utf8_str(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(not_utf8)
}

fn not_utf8(error: std::str::Utf8Error) -> String {
    format!("not UTF-8 text (invalid byte at offset {}); captures must be JSON in UTF-8", error.valid_up_to())
}

fn trim(bytes: &[u8]) -> &[u8] {
    let (start, end) = trimmed_range(bytes);
    &bytes[start..end]
}

/// Where `bytes` starts and ends without its surrounding whitespace.
fn trimmed_range(bytes: &[u8]) -> (usize, usize) {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    (start, end)
}

fn parses(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// The quotes and brackets of `word` (see [`byte_search::matches`]).
fn structural(word: u64) -> u64 {
    use byte_search::matches;
    matches(word, b'"') | matches(word, b'[') | matches(word, b']') | matches(word, b'{') | matches(word, b'}')
}

/// Bracket depth outside strings, as bytes go by.
#[derive(Debug, Default, Clone, Copy)]
struct Depth {
    depth: i64,
    opened: bool,
    in_string: bool,
    escaped: bool,
}

impl Depth {
    /// Jumps from one quote, backslash or bracket to the next, eight bytes at a time: between
    /// them nothing changes the depth.
    fn feed(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            if self.escaped {
                self.escaped = false;
                at += 1;
                continue;
            }
            let next = if self.in_string {
                byte_search::find(
                    bytes,
                    at,
                    |w| byte_search::matches(w, b'"') | byte_search::matches(w, b'\\'),
                    |b| b == b'"' || b == b'\\',
                )
            } else {
                byte_search::find(bytes, at, structural, |b| matches!(b, b'"' | b'[' | b']' | b'{' | b'}'))
            };
            let Some(found) = next else { return };
            match bytes[found] {
                b'\\' => self.escaped = true,
                b'"' => self.in_string = !self.in_string,
                b'[' | b'{' => {
                    self.depth += 1;
                    self.opened = true;
                }
                _ => self.depth -= 1,
            }
            at = found + 1;
        }
    }

    /// Outside any bracket and string (for array elements: between elements).
    fn at_top(&self) -> bool {
        self.depth <= 0 && !self.in_string
    }

    /// A bracket was opened and every bracket is closed again.
    fn closed(&self) -> bool {
        self.opened && self.depth <= 0 && !self.in_string
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(usize, Result<Value, String>)> {
        let mut out = Vec::new();
        for_each_message(text, |c| out.push((c.line, c.parsed)));
        out
    }

    #[test]
    fn json_lines_keep_line_numbers_and_skip_blanks() {
        let got = read("{\"a\":1}\n\n  \n{\"b\":2}\nnope\n");
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[1].0, got[2].0), (1, 4, 5));
        assert!(got[2].1.as_ref().unwrap_err().starts_with("not valid JSON"));
    }

    #[test]
    fn a_bad_first_line_is_one_bad_message_not_a_broken_document() {
        let got = read("{\"a\":\n{\"b\":2}\n");
        assert_eq!(got.len(), 2);
        assert!(got[0].1.is_err());
        assert_eq!(got[1], (2, Ok(serde_json::json!({"b": 2}))));
    }

    #[test]
    fn an_array_reports_where_each_element_starts() {
        let text = "\n[\n  {\"type\": \"x\", \"s\": \"],{\\\"\"},\n  [1, [2]],\n\n  3\n]\n";
        let got = read(text);
        let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert_eq!(got[0].1.as_ref().unwrap()["s"], "],{\"");
        assert_eq!(got[2].1.as_ref().unwrap(), &serde_json::json!(3));
    }

    #[test]
    fn a_pretty_single_document_is_one_message() {
        let got = read("{\n  \"type\": \"Ping\",\n  \"timestamp\": 1\n}\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 1);
        assert!(got[0].1.is_ok());
    }

    #[test]
    fn a_broken_pretty_document_is_one_error_at_the_fault() {
        let got = read("{\n  \"type\": \"Ping\",\n  \"timestamp\": \n}\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 4);
        assert!(got[0].1.is_err());
    }

    #[test]
    fn oversized_messages_are_reported_and_skipped_in_every_layout() {
        let big = format!("{{\"type\":\"{}\"}}", "x".repeat(100));
        let lines = format!("{{\"a\":1}}\n{big}\n{{\"b\":2}}\n");
        let array = format!("[{{\"a\":1}},\n{big},\n{{\"b\":2}}]");
        for text in [lines, array] {
            let mut reader = MessageReader::new(text.as_bytes(), 50);
            let mut got = Vec::new();
            while let Some(raw) = reader.next_message().unwrap() {
                got.push(raw.parse());
            }
            assert_eq!(got.len(), 3, "{text}");
            assert!(got[1].parsed.as_ref().unwrap_err().contains("larger than 50 bytes"), "{got:?}");
            assert_eq!((got[1].line, got[2].line), (2, 3));
            assert!(got[2].parsed.is_ok());
        }
    }

    #[test]
    fn an_unclosed_array_and_bytes_that_are_not_utf8_are_errors_not_panics() {
        let got = read("[{\"a\":1},\n{\"b\":");
        assert_eq!(got.len(), 2);
        assert!(got[1].1.is_err());
        let mut reader = MessageReader::new(&b"{\"a\":\"\xff\"}\n{\"b\":2}\n"[..], 1000);
        let first = reader.next_message().unwrap().unwrap().parse();
        assert!(first.parsed.unwrap_err().contains("not UTF-8"));
        assert!(reader.next_message().unwrap().unwrap().parse().parsed.is_ok());
    }

    /// The byte-at-a-time definition of [`Depth::feed`].
    fn depth_by_bytes(bytes: &[u8]) -> (i64, bool, bool, bool) {
        let (mut depth, mut opened, mut in_string, mut escaped) = (0, false, false, false);
        for &byte in bytes {
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => (depth, opened) = (depth + 1, true),
                b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        (depth, opened, in_string, escaped)
    }

    proptest::proptest! {
        #[test]
        fn depth_jumps_agree_with_a_byte_walk(text in "[a\\\\\"{}\\[\\] ,:]{0,40}", split in 0usize..41) {
            let bytes = text.as_bytes();
            let split = split.min(bytes.len());
            let mut depth = Depth::default();
            depth.feed(&bytes[..split]);
            depth.feed(&bytes[split..]);
            proptest::prop_assert_eq!((depth.depth, depth.opened, depth.in_string, depth.escaped), depth_by_bytes(bytes));
        }
    }

    #[test]
    fn empty_input_has_no_messages() {
        assert!(read("  \n\n").is_empty());
        assert!(read("[]").is_empty());
    }
}
