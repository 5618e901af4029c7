//! Reads captured messages: JSON Lines (one message a line), or one JSON document holding a
//! message or an array of messages. Every message keeps the line it starts on, because a
//! report that cannot point at the offending line is of little use on a large capture.

use serde_json::Value;

/// One message as read from a capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// 1-based line on which the message starts.
    pub line: usize,
    /// The message, or why its text is not JSON.
    pub parsed: Result<Value, String>,
}

/// Calls `each` for every message in `text`, in order, without holding them all in memory
/// when the input is JSON Lines.
pub fn for_each_message(text: &str, mut each: impl FnMut(Captured)) {
    let Some(first) = text.find(|c: char| !c.is_whitespace()) else { return };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => {
            let starts = array_element_lines(text, first);
            for (index, item) in items.into_iter().enumerate() {
                let line = starts.get(index).copied().unwrap_or_else(|| line_of(text, first));
                each(Captured { line, parsed: Ok(item) });
            }
        }
        Ok(value) => each(Captured { line: line_of(text, first), parsed: Ok(value) }),
        Err(error) if is_single_broken_document(text, first, &error) => {
            each(Captured { line: error.line(), parsed: Err(format!("not valid JSON: {error}")) })
        }
        Err(_) => for_each_line(text, each),
    }
}

/// JSON Lines: blank lines are skipped; a line that does not parse is reported, not fatal.
fn for_each_line(text: &str, each: impl FnMut(Captured)) {
    for_each_line_from(text, 1, each)
}

/// Like JSON Lines reading, for a piece of a capture whose first line is `first_line`.
pub fn for_each_line_from(text: &str, first_line: usize, mut each: impl FnMut(Captured)) {
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"));
        each(Captured { line: first_line + index, parsed });
    }
}

/// Whether `for_each_message` would read `text` as JSON Lines.
pub fn is_json_lines(text: &str) -> bool {
    let Some(first) = text.find(|c: char| !c.is_whitespace()) else { return false };
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => false,
        Err(error) => !is_single_broken_document(text, first, &error),
    }
}

/// Splits JSON Lines text into line-aligned pieces of about `size` bytes, each with the number
/// of its first line, so pieces can be checked in parallel and reported in order.
pub fn line_chunks(text: &str, size: usize) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let (mut start, mut line) = (0, 1);
    while start < text.len() {
        let mut end = (start + size.max(1)).min(text.len());
        end = match text[end..].find('\n') {
            Some(offset) if end < text.len() => end + offset + 1,
            _ => text.len(),
        };
        let piece = &text[start..end];
        chunks.push((line, piece));
        line += piece.bytes().filter(|b| *b == b'\n').count();
        start = end;
    }
    chunks
}

/// A pretty-printed document with a syntax error fails past its first line, and none of its
/// lines parses on its own (`{`, `"type": "Ping",`). JSON Lines fails with "trailing
/// characters" after a good first line, or has other lines that do parse on their own.
fn is_single_broken_document(text: &str, first: usize, error: &serde_json::Error) -> bool {
    const LINES_SAMPLED: usize = 100;
    let parses_alone = |line: &str| serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok();
    error.line() > line_of(text, first)
        && !text[first..].lines().filter(|l| !l.trim().is_empty()).take(LINES_SAMPLED).any(parses_alone)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset].iter().filter(|b| **b == b'\n').count() + 1
}

/// The starting line of each element of the top-level array that opens at byte `open`.
fn array_element_lines(text: &str, open: usize) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut line = line_of(text, open);
    let (mut depth, mut in_string, mut escaped, mut expect_value) = (0usize, false, false, true);
    for &byte in &bytes[open..] {
        if byte == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if depth == 1 && expect_value && !byte.is_ascii_whitespace() && byte != b']' {
            lines.push(line);
            expect_value = false;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => expect_value = true,
            _ => {}
        }
    }
    lines
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
        assert!(got[1].1.is_ok());
    }

    #[test]
    fn an_array_reports_where_each_element_starts() {
        let text = "\n[\n  {\"type\": \"x\", \"s\": \"],{\\\"\"},\n  [1, [2]],\n\n  3\n]\n";
        let got = read(text);
        let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert_eq!(got[0].1.as_ref().unwrap()["s"], "],{\"");
    }

    #[test]
    fn a_pretty_single_document_is_one_message() {
        let got = read("{\n  \"type\": \"Ping\",\n  \"timestamp\": 1\n}\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 1);
    }

    #[test]
    fn a_broken_pretty_document_is_one_error_at_the_fault() {
        let got = read("{\n  \"type\": \"Ping\",\n  \"timestamp\": \n}\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 4);
        assert!(got[0].1.is_err());
    }

    #[test]
    fn chunks_split_on_lines_and_keep_line_numbers() {
        let text = "{\"a\":1}\n\n{\"b\":2}\n{\"c\":3}\nbad\n";
        assert!(is_json_lines(text));
        assert!(!is_json_lines("[1, 2]"));
        let mut whole = Vec::new();
        for_each_message(text, |c| whole.push((c.line, c.parsed.is_ok())));
        for size in [1, 3, 8, 1000] {
            let mut pieces = Vec::new();
            for (first, piece) in line_chunks(text, size) {
                for_each_line_from(piece, first, |c| pieces.push((c.line, c.parsed.is_ok())));
            }
            assert_eq!(pieces, whole, "chunk size {size}");
        }
    }

    #[test]
    fn empty_input_has_no_messages() {
        assert!(read("  \n\n").is_empty());
    }
}
