//! Pulls the example messages out of a spec written in Markdown, so `schemas check --spec`
//! can prove that the schemas accept everything the spec shows.

use serde_json::Value;

/// One fenced ```json block of the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecExample {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The parsed block, or why it does not parse.
    pub parsed: Result<Value, String>,
}

/// Every ```json fenced block, in order. Other languages are ignored: the spec's JavaScript
/// and Python snippets are code, not messages.
pub fn extract(markdown: &str) -> Vec<SpecExample> {
    let mut examples = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let language = info.split_whitespace().next().unwrap_or("");
                    if language.eq_ignore_ascii_case("json") {
                        open = Some((index + 1, String::new()));
                    } else {
                        // Skip a non-JSON block whole, so its closing fence is not taken for an opening.
                        open = Some((0, String::new()));
                    }
                }
            }
            Some((start, body)) => {
                if trimmed == "```" {
                    if *start > 0 {
                        let parsed = serde_json::from_str(body)
                            .map_err(|e| format!("not valid JSON at line {}: {e}", *start + e.line()));
                        examples.push(SpecExample { line: *start, parsed });
                    }
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    examples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_blocks_with_their_lines_and_skips_other_languages() {
        let md = "# t\n```javascript\nconst a = {\"type\":1};\n```\n\n```json\n{\"type\": \"Ping\",\n \"timestamp\": 1}\n```\n```json\n{oops}\n```\n";
        let found = extract(md);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line, 6);
        assert_eq!(found[0].parsed.as_ref().unwrap()["type"], "Ping");
        assert_eq!(found[1].line, 10);
        assert!(found[1].parsed.as_ref().unwrap_err().contains("line 11"), "{:?}", found[1].parsed);
    }

    #[test]
    fn unlabelled_fences_are_not_json() {
        assert!(extract("```\n{\"type\":\"Ping\"}\n```\n").is_empty());
    }
}
