//! `wsprobe validate` and `wsprobe schemas` end to end, through the real binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wsprobe(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wsprobe starts");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const PONG: &str = r#"{"type":"Pong","data":{"timestamp":1697234567000},"timestamp":1697234567000}"#;

#[test]
fn all_valid_exits_zero() {
    let file = temp_file("valid.jsonl", &format!("{PONG}\n\n{PONG}\n"));
    let out = wsprobe(&["validate", file.to_str().unwrap()], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("checked 2 messages in 1 file: all valid"), "{}", out.stdout);
}

#[test]
fn an_invalid_message_exits_one_with_its_line_and_path() {
    let bad = PONG.replace("\"data\":{\"timestamp\":1697234567000}", "\"data\":{\"timestamp\":\"now\"}");
    let file = temp_file("invalid.jsonl", &format!("{PONG}\n{bad}\n"));
    let out = wsprobe(&["validate", file.to_str().unwrap()], None);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("invalid.jsonl:2: invalid Pong message"), "{}", out.stdout);
    assert!(out.stdout.contains("at /data/timestamp"), "{}", out.stdout);
    assert!(out.stdout.contains("schema: common.json#/$defs/timestamp_ms/type"), "{}", out.stdout);
}

#[test]
fn json_format_prints_one_object_per_message_from_stdin_and_files() {
    let file = temp_file("array.json", &format!("[\n  {PONG},\n  {{\"type\": \"Nope\"}}\n]\n"));
    let out =
        wsprobe(&["validate", "--profile", "ai", "--format", "json", "-", file.to_str().unwrap()], Some("not json\n"));
    assert_eq!(out.code, 1);
    let lines: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0]["file"], "-");
    assert_eq!(lines[0]["valid"], false);
    assert_eq!(lines[0]["type"], Value::Null);
    assert!(lines[0]["errors"][0]["message"].as_str().unwrap().starts_with("not valid JSON"));
    assert_eq!((lines[1]["line"].as_u64(), lines[1]["valid"].as_bool()), (Some(2), Some(true)));
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(lines[2]["type"], "Nope");
    assert_eq!(lines[2]["errors"][0]["instance_path"], "/type");
    assert_eq!(lines[2]["errors"][0]["schema_path"], "ai/envelope.json#/properties/type/enum");
}

#[test]
fn client_direction_checks_client_messages() {
    let out = wsprobe(&["validate", "--direction", "client", "-"], Some("{\"type\":\"Ping\",\"timestamp\":1}\n"));
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out =
        wsprobe(&["validate", "--direction", "client", "-"], Some("{\"type\":\"Authenticate\",\"token\":\"\"}\n"));
    assert_eq!(out.code, 1, "{}", out.stdout);
}

#[test]
fn a_missing_file_is_a_usage_error_that_names_it() {
    let out = wsprobe(&["validate", "/definitely/not/here.jsonl"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/definitely/not/here.jsonl"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing is reported before the inputs are known to exist");
}

#[test]
fn bad_flags_are_usage_errors() {
    assert_eq!(wsprobe(&["validate", "--profile", "edge", "x"], None).code, 2);
    assert_eq!(wsprobe(&["validate"], None).code, 2);
}

#[test]
fn schemas_check_validates_the_spec_file() {
    let spec = crate::spec_path();
    let out = wsprobe(&["schemas", "check", "--spec", spec.to_str().unwrap()], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("spec examples: all valid"), "{}", out.stdout);
    let broken = temp_file("broken-spec.md", "```json\n{\"type\":\"MarketData\",\"data\":{},\"timestamp\":1}\n```\n");
    let out = wsprobe(&["schemas", "check", "--spec", broken.to_str().unwrap()], None);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("FAIL broken-spec.md:1 MarketData (core)"), "{}", out.stdout);
}

#[test]
fn schemas_show_resolves_names_and_rejects_ambiguity() {
    let out = wsprobe(&["schemas", "show", "MarketData"], None);
    assert_eq!(out.code, 0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["properties"]["type"]["const"], "MarketData");
    assert_eq!(wsprobe(&["schemas", "show", "ai/Pong"], None).code, 0);
    let out = wsprobe(&["schemas", "show", "Pong"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("core/Pong") && out.stderr.contains("ai/Pong"), "{}", out.stderr);
}

#[test]
fn a_schemas_folder_overrides_the_built_in_copy() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemas-override");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas"), &dir);
    // A spec author relaxes Pong on the AI endpoint to ISO timestamps.
    let pong = dir.join("ai/Pong.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&pong).unwrap()).unwrap();
    doc["properties"]["timestamp"] = serde_json::json!({"$ref": "../common.json#/$defs/timestamp_iso8601"});
    doc["examples"][0]["timestamp"] = "2025-10-10T10:30:00Z".into();
    std::fs::write(&pong, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let input = "{\"type\":\"Pong\",\"data\":{\"timestamp\":1},\"timestamp\":\"2025-10-10T10:30:00Z\"}\n";
    assert_eq!(wsprobe(&["validate", "--profile", "ai", "-"], Some(input)).code, 1);
    let out = wsprobe(&["--schemas", dir.to_str().unwrap(), "validate", "--profile", "ai", "-"], Some(input));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = wsprobe(&["--schemas", "/no/such/dir", "schemas", "list"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--schemas /no/such/dir"), "{}", out.stderr);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn a_large_capture_is_checked_in_parallel_with_the_same_report_in_input_order() {
    // Over the 8 MB threshold, so the parallel path runs on a multi-core machine.
    let lines = 40_000;
    let bad_at = [1usize, 12_345, 27_001, lines];
    let mut text = String::with_capacity(lines * 260);
    for line in 1..=lines {
        if bad_at.contains(&line) {
            text.push_str(r#"{"type":"Pong","data":{"timestamp":-1},"timestamp":1697234567000}"#);
        } else {
            text.push_str(PONG);
            text.push_str(&" ".repeat(160));
        }
        text.push('\n');
    }
    assert!(text.len() > 8 << 20);
    let file = temp_file("large.jsonl", &text);
    let out = wsprobe(&["validate", "--format", "json", file.to_str().unwrap()], None);
    assert_eq!(out.code, 1);
    let reported: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reported.len(), lines);
    let numbers: Vec<usize> = reported.iter().map(|r| r["line"].as_u64().unwrap() as usize).collect();
    assert!(numbers.iter().copied().eq(1..=lines), "every line once, in input order");
    let invalid: Vec<usize> =
        reported.iter().filter(|r| r["valid"] == false).map(|r| r["line"].as_u64().unwrap() as usize).collect();
    assert_eq!(invalid, bad_at);
    let human = wsprobe(&["validate", file.to_str().unwrap()], None);
    assert!(
        human.stdout.ends_with(&format!("checked {lines} messages in 1 file: {} valid, 4 invalid\n", lines - 4)),
        "{}",
        human.stdout
    );
}

#[test]
fn standard_input_is_streamed_in_bounded_memory() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["validate", "--max-message-bytes", "1048576", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wsprobe starts");
    let mut stdin = child.stdin.take().unwrap();
    // 48 MB of valid Pongs, one 40 MB line (over the cap: reported and skipped, never held),
    // then one invalid message.
    let block: String = std::iter::repeat_n(format!("{PONG}\n"), 10_000).collect();
    let writer = std::thread::spawn(move || {
        for _ in 0..(48 << 20) / block.len() {
            stdin.write_all(block.as_bytes()).unwrap();
        }
        stdin.write_all(b"{\"type\":\"").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..40 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(b"\"}\n{\"type\":\"Pong\"}\n").unwrap();
    });
    let pid = child.id();
    let reader = std::thread::spawn(move || {
        let mut report = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut report).unwrap();
        (child.wait().unwrap(), report)
    });
    // The high-water mark, read while the process runs; memory that grew with the input would
    // show long before the end.
    let mut peak_kb = 0;
    while !reader.is_finished() {
        peak_kb = peak_kb.max(crate::support::peak_rss_kb(pid));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    writer.join().unwrap();
    let (status, report) = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{report}");
    assert!(report.contains("larger than 1048576 bytes"), "{report}");
    assert!(report.contains("invalid Pong message"), "{report}");
    assert!(peak_kb > 0 && peak_kb < 64 * 1024, "peak RSS {peak_kb} KB for 88 MB of input");
}

#[test]
fn schemas_diff_classifies_a_spec_authors_edits_and_gates_on_breaking_ones() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemas-diff");
    let _ = std::fs::remove_dir_all(&root);
    let (old, new) = (root.join("old"), root.join("new"));
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    copy_dir(&shipped, &old);
    copy_dir(&shipped, &new);
    let same = wsprobe(&["schemas", "diff", old.to_str().unwrap(), new.to_str().unwrap()], None);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    assert!(same.stdout.contains("0 change(s)"), "{}", same.stdout);
    // Position sides gain FLAT (servers may now send it: clients must handle it).
    let edit = |file: &str, change: &dyn Fn(&mut Value)| {
        let path = new.join(file);
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        change(&mut doc);
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    };
    edit("core/PositionUpdate.json", &|doc| {
        doc["properties"]["data"]["properties"]["position"]["properties"]["side"]["enum"]
            .as_array_mut()
            .unwrap()
            .push("FLAT".into())
    });
    let out = wsprobe(&["schemas", "diff", old.to_str().unwrap(), new.to_str().unwrap()], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("enum value added (\"FLAT\"): breaking for clients"), "{}", out.stdout);
    let allowed = wsprobe(&["schemas", "diff", "--allow-breaking", old.to_str().unwrap(), new.to_str().unwrap()], None);
    assert_eq!(allowed.code, 0);
    let json = wsprobe(&["schemas", "diff", "--format", "json", old.to_str().unwrap(), new.to_str().unwrap()], None);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let change = &report["changes"][0];
    assert_eq!((change["set"].as_str(), change["impact"].as_str()), (Some("core"), Some("breaks_clients")), "{report}");
    assert!(report["breaking"].as_u64().unwrap() >= 1);
    // Replay: which recorded messages would the new schemas reject, grouped by rule?
    edit("common.json", &|doc| doc["$defs"]["timestamp_ms"]["minimum"] = serde_json::json!(1_800_000_000_000u64));
    let capture = temp_file("replay.jsonl", &format!("{PONG}\n{PONG}\n"));
    let replay = wsprobe(&["--schemas", new.to_str().unwrap(), "validate", capture.to_str().unwrap()], None);
    assert_eq!(replay.code, 1, "{}", replay.stdout);
    assert!(replay.stdout.contains("invalid messages by rule:"), "{}", replay.stdout);
    assert!(replay.stdout.contains("common.json#/$defs/timestamp_ms/minimum"), "{}", replay.stdout);
    let missing = wsprobe(&["schemas", "diff", old.to_str().unwrap(), "/no/such/dir"], None);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("/no/such/dir"), "{}", missing.stderr);
}

/// What `validate` must report for `input`: the reader's messages, one at a time, each checked
/// the full way — the sequential definition that the parallel line splitter must match.
fn expected_report(input: &[u8], max_bytes: usize) -> Vec<(u64, bool, Option<String>)> {
    let catalog = wsprobe::schema::Catalog::embedded().unwrap();
    let mut reader = wsprobe::capture::MessageReader::new(input, max_bytes);
    let mut expected = Vec::new();
    while let Some(raw) = reader.next_message().unwrap() {
        let captured = raw.parse();
        let (valid, message_type) = match &captured.parsed {
            Ok(value) => {
                let verdict = catalog.validate(wsprobe::schema::MessageSet::Core, value);
                (verdict.is_valid(), verdict.message_type)
            }
            Err(_) => (false, None),
        };
        expected.push((captured.line as u64, valid, message_type));
    }
    expected
}

fn reported(stdout: &str) -> Vec<(u64, bool, Option<String>)> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["line"].as_u64().unwrap(), r["valid"] == true, r["type"].as_str().map(str::to_string)))
        .collect()
}

#[test]
fn json_lines_split_in_parallel_read_exactly_what_the_reader_reads() {
    // Past two waves of 4 MB chunks, with everything the reader treats specially scattered
    // densely enough that some of it straddles the chunks' edges.
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(PONG).unwrap()).unwrap();
    let type_first = r#"{"type":"Pong","data":{"timestamp":1},"timestamp":2}"#;
    let odd: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        br#"{"type":"Pong","data":"#.to_vec(),
        pretty.clone().into_bytes(),
        pretty.replace("1697234567000", "-5").into_bytes(),
        b"[\n  1,\n  2\n]".to_vec(),
        b"{\"a\": [1,\n{\"type\":\"Pong\"}".to_vec(),
        b"\xff\xfe not UTF-8".to_vec(),
        format!("{{\"type\":\"{}\"}}", "x".repeat(5000)).into_bytes(),
        b"   ".to_vec(),
        format!("{type_first}\r").into_bytes(),
        br#"{"type":"Pong","data":{"timestamp":1},"timestamp":-2}"#.to_vec(),
    ];
    let mut input = Vec::with_capacity(10 << 20);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    while input.len() < 10 << 20 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        match (seed >> 33) % 40 {
            0..=10 => input.extend_from_slice(&odd[((seed >> 40) % odd.len() as u64) as usize]),
            11..=25 => input.extend_from_slice(type_first.as_bytes()),
            _ => input.extend_from_slice(PONG.as_bytes()),
        }
        input.push(b'\n');
    }
    let max_bytes = 4096;
    let expected = expected_report(&input, max_bytes);
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mixed.jsonl");
    std::fs::write(&file, &input).unwrap();
    let out = wsprobe(
        &["validate", "--format", "json", "--max-message-bytes", &max_bytes.to_string(), file.to_str().unwrap()],
        None,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let got = reported(&out.stdout);
    if let Some(at) = got.iter().zip(&expected).position(|(g, e)| g != e) {
        panic!("message {at} differs: got {:?}, the reader reads {:?}", got[at], expected[at]);
    }
    assert_eq!(got.len(), expected.len());
    assert!(expected.iter().any(|(_, valid, _)| *valid) && expected.iter().any(|(_, valid, _)| !*valid));

    // Nothing but pretty documents, past one 4 MB chunk: its edge falls inside one.
    let mut all_pretty = Vec::with_capacity(5 << 20);
    while all_pretty.len() < 5 << 20 {
        all_pretty.extend_from_slice(pretty.as_bytes());
        all_pretty.push(b'\n');
    }
    let expected = expected_report(&all_pretty, max_bytes);
    std::fs::write(&file, &all_pretty).unwrap();
    let out = wsprobe(
        &["validate", "--format", "json", "--max-message-bytes", &max_bytes.to_string(), file.to_str().unwrap()],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(reported(&out.stdout), expected);

    // A top-level array first, then JSON Lines after it: the reader, then the splitter.
    let mut array = b"\n\n[\n".to_vec();
    for i in 0..2000 {
        array.extend_from_slice(if i % 7 == 0 { pretty.as_bytes() } else { PONG.as_bytes() });
        array.extend_from_slice(b",\n");
    }
    array.extend_from_slice(format!("{PONG}\n]\n").as_bytes());
    array.extend_from_slice(&input[..1 << 20]);
    let expected = expected_report(&array, max_bytes);
    std::fs::write(&file, &array).unwrap();
    let out = wsprobe(
        &["validate", "--format", "json", "--max-message-bytes", &max_bytes.to_string(), file.to_str().unwrap()],
        None,
    );
    assert_eq!(reported(&out.stdout), expected);
}
