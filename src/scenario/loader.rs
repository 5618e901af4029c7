//! Reads scenario files (built-in and the user's) with errors that point at file:line and
//! suggest the fix.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Action, ScenarioFile, Step};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_scenarios.rs"));
}

/// A parsed scenario file and where it came from.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Report name: the file's `name`, or its stem.
    pub name: String,
    /// `builtin:heartbeat.yaml` or the path given.
    pub origin: String,
    pub file: ScenarioFile,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{origin}:{line}:{column}: {message}{hint}")]
    Parse { origin: String, line: usize, column: usize, message: String, hint: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{path} holds no *.yaml or *.yml scenario files")]
    EmptyDir { path: PathBuf },
}

/// The built-in suite, compiled into the binary from `scenarios/`.
pub fn builtin() -> Result<Vec<Suite>, ScenarioError> {
    embedded::SCENARIO_FILES
        .iter()
        .filter(|(path, _)| path.ends_with(".yaml") || path.ends_with(".yml"))
        .map(|(path, text)| parse(&format!("builtin:{path}"), path, text))
        .collect()
}

/// The user's files: each path is a scenario file or a folder of them.
pub fn from_paths(paths: &[PathBuf]) -> Result<Vec<Suite>, ScenarioError> {
    let mut suites = Vec::new();
    for path in paths {
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| ScenarioError::Io { path: path.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ScenarioError::EmptyDir { path: path.clone() });
            }
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|source| ScenarioError::Io { path: file.clone(), source })?;
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            suites.push(parse(&file.display().to_string(), &name, &text)?);
        }
    }
    Ok(suites)
}

/// A scenario file larger than this is refused before parsing: the built-in suite is 20 KB.
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;
/// Nesting deeper than this (flow brackets or block indentation levels) is refused before
/// parsing; real scenarios nest about 8 deep. The YAML parser would otherwise take seconds on
/// a small hostile file before its own recursion limit.
pub const MAX_SCENARIO_DEPTH: usize = 64;

pub fn parse(origin: &str, file_name: &str, text: &str) -> Result<Suite, ScenarioError> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(ScenarioError::Invalid {
            origin: origin.to_string(),
            message: format!(
                "the file is {} bytes; scenario files may be at most {MAX_SCENARIO_BYTES} bytes: split it into several files",
                text.len()
            ),
        });
    }
    if let Some((line, column, depth)) = too_deep(text) {
        return Err(ScenarioError::Parse {
            origin: origin.to_string(),
            line,
            column,
            message: format!("nesting deeper than {MAX_SCENARIO_DEPTH} levels ({depth} here)"),
            hint: ": scenarios need far less; flatten the structure".into(),
        });
    }
    let file: ScenarioFile = serde_norway::from_str(text).map_err(|error| {
        let (line, column) = error.location().map_or((1, 1), |l| (l.line(), l.column()));
        let message = error.to_string();
        // serde_norway appends " at line X column Y"; the prefix already says where.
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        let hint = hint_for(&message);
        ScenarioError::Parse { origin: origin.to_string(), line, column, message, hint }
    })?;
    let invalid = |message: String| ScenarioError::Invalid { origin: origin.to_string(), message };
    if file.cases.is_empty() {
        return Err(invalid("no cases: add at least one under `cases:`".into()));
    }
    for case in &file.cases {
        let id_ok = !case.id.is_empty()
            && case.id.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if !id_ok {
            return Err(invalid(format!(
                "case id {:?} must be dot-separated lower-case words, like heartbeat.pong",
                case.id
            )));
        }
        if case.steps.is_empty() {
            return Err(invalid(format!("case {} has no steps", case.id)));
        }
        check_steps(&case.steps).map_err(|e| invalid(format!("case {}: {e}", case.id)))?;
    }
    let stem = file_name.rsplit_once('.').map_or(file_name, |(stem, _)| stem).to_string();
    Ok(Suite { name: file.name.clone().unwrap_or(stem), origin: origin.to_string(), file })
}

/// Where nesting first goes past [`MAX_SCENARIO_DEPTH`]: flow brackets outside quotes, or
/// block indentation (two columns a level, the least YAML allows with sequences in maps).
fn too_deep(text: &str) -> Option<(usize, usize, usize)> {
    let mut flow = 0usize;
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        if indent / 2 > MAX_SCENARIO_DEPTH && !line.trim().is_empty() {
            return Some((index + 1, indent + 1, indent / 2));
        }
        let (mut quote, mut escaped) = (None::<char>, false);
        for (column, c) in line.char_indices() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '#' => break,
                    '"' | '\'' => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        if flow > MAX_SCENARIO_DEPTH {
                            return Some((index + 1, column + 1, flow));
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
        }
    }
    None
}

fn check_steps(steps: &[Step]) -> Result<(), String> {
    for step in steps {
        match &step.action {
            Action::Send(send) => {
                if let Some(hex) = &send.binary_hex {
                    decode_hex(hex)?;
                }
            }
            Action::Repeat(repeat) => {
                if repeat.times == 0 || repeat.times > 100_000 {
                    return Err(format!("repeat.times must be 1 to 100000, not {}", repeat.times));
                }
                check_steps(&repeat.steps)?;
            }
            Action::Observe(observe) => {
                if let Some(cadence) = &observe.cadence {
                    if !(0.0..=1.0).contains(&cadence.tolerance) {
                        return Err("cadence.tolerance is a fraction from 0 to 1".into());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    let clean: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
    if clean.len() % 2 != 0 {
        return Err(format!("binary_hex {hex:?} has an odd number of digits"));
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).map_err(|_| format!("binary_hex {hex:?} is not hexadecimal")))
        .collect()
}

/// For "unknown field `expct`, expected one of ...", suggests the closest known name.
fn hint_for(message: &str) -> String {
    let Some(start) = message.find("unknown field `").or_else(|| message.find("unknown variant `")) else {
        return String::new();
    };
    let rest = &message[start..];
    let Some((unknown, expected)) = rest.split_once('`').and_then(|(_, r)| r.split_once('`')) else {
        return String::new();
    };
    if matches!(unknown, "level" | "profiles") {
        return format!(" (`{unknown}` belongs to the step, beside the action key, not inside it)");
    }
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates.iter().map(|c| (edit_distance(unknown, c), *c)).min();
    match best {
        Some((distance, candidate)) if distance <= 3 => format!(" (did you mean `{candidate}`?)"),
        _ if candidates.is_empty() => String::new(),
        _ => " (see schemas/scenario.schema.json)".to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            current.push((previous[j] + usize::from(ca != *cb)).min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Every case id must be unique across the suites that run together.
pub fn check_unique_ids(suites: &[Suite]) -> Result<(), ScenarioError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for suite in suites {
        for case in &suite.file.cases {
            if let Some(first) = seen.insert(&case.id, &suite.origin) {
                return Err(ScenarioError::Invalid {
                    origin: suite.origin.clone(),
                    message: format!("case id {} is already defined in {first}; ids must be unique", case.id),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "cases:\n  - id: a.b\n    level: must\n    description: d\n    steps:\n      - connect:\n      - expect: {type: Pong, timeout: 1s}\n";

    #[test]
    fn hostile_nesting_and_size_fail_fast_with_the_place() {
        let started = std::time::Instant::now();
        let flow = format!("cases: {}{}\n", "[".repeat(80_000), "]".repeat(80_000));
        let error = parse("deep.yaml", "deep.yaml", &flow).unwrap_err().to_string();
        assert!(error.starts_with("deep.yaml:1:72: nesting deeper than 64 levels"), "{error}");
        let mut block = String::from("cases:\n");
        for level in 0..200 {
            block.push_str(&format!("{}- \n", "  ".repeat(level)));
        }
        let error = parse("block.yaml", "block.yaml", &block).unwrap_err().to_string();
        assert!(error.contains("nesting deeper than 64 levels"), "{error}");
        let big = format!("{GOOD}# {}\n", "x".repeat(MAX_SCENARIO_BYTES));
        let error = parse("big.yaml", "big.yaml", &big).unwrap_err().to_string();
        assert!(error.contains("scenario files may be at most 1048576 bytes"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        // Brackets in strings and comments do not count.
        let quoted = format!("{GOOD}# {}\nname: \"{}\"\n", "[".repeat(100), "{".repeat(100));
        assert!(parse("q.yaml", "q.yaml", &quoted).is_ok());
        // The built-in suite is well inside both limits.
        assert!(builtin().is_ok());
    }

    #[test]
    fn a_good_file_parses_and_takes_its_name_from_the_file() {
        let suite = parse("x.yaml", "heartbeat.yaml", GOOD).unwrap();
        assert_eq!(suite.name, "heartbeat");
        assert_eq!(suite.file.cases[0].steps.len(), 2);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_the_likely_fix() {
        let text = GOOD.replace("expect: {type", "expct: {type");
        let error = parse("my.yaml", "my.yaml", &text).unwrap_err().to_string();
        assert!(error.starts_with("my.yaml:7:"), "{error}");
        assert!(error.contains("unknown field `expct`"), "{error}");
        assert!(error.contains("did you mean `expect`?"), "{error}");
    }

    #[test]
    fn a_step_with_two_actions_or_a_bad_value_is_refused() {
        let two = GOOD.replace("      - connect:\n", "      - {connect: {}, drop: {}}\n");
        assert!(parse("t", "t", &two).unwrap_err().to_string().contains("exactly one action"));
        let bad_duration = GOOD.replace("timeout: 1s", "timeout: soon");
        assert!(parse("t", "t", &bad_duration).unwrap_err().to_string().contains("500ms"));
        let bad_level = GOOD.replace("level: must", "level: could");
        assert!(parse("t", "t", &bad_level).unwrap_err().to_string().contains("unknown variant `could`"));
        let bad_id = GOOD.replace("id: a.b", "id: Heartbeat Pong");
        assert!(parse("t", "t", &bad_id).unwrap_err().to_string().contains("lower-case"));
    }

    #[test]
    fn the_builtin_suite_parses_with_unique_ids() {
        let suites = builtin().unwrap();
        assert!(!suites.is_empty());
        check_unique_ids(&suites).unwrap();
    }
}
