//! Validation throughput: how many captured messages per second `wsprobe validate` checks on
//! one core, parsing included, against a `serde_json` parse-only baseline run in the same process.
//!
//! Then, side by side on a corpus with 5 % invalid messages: `wsprobe validate` as a whole
//! process pinned to one core (`taskset -c 0`), against ajv (Node, draft 2020-12, the same
//! schema files, dispatch on `type`) timed in its inner loop only. The ajv side runs when
//! `node` and ajv are there (`bash ci/ecosystem.sh` installs ajv into target/ecosystem-node;
//! WSPROBE_AJV_NODE_PATH points elsewhere).
//!
//! `cargo bench --bench validate` (set WSPROBE_BENCH_MESSAGES to change the count, and
//! WSPROBE_BENCH_KEEP_CORPUS=PATH to keep the side-by-side corpus for profiling).

use std::time::Instant;

use serde_json::Value;
use wsprobe::capture;
use wsprobe::schema::{Catalog, MessageSet};

fn main() {
    let count: usize = std::env::var("WSPROBE_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let catalog = Catalog::embedded().expect("schemas compile");
    let jsonl = generate(&catalog, count);
    let path = std::env::temp_dir().join(format!("wsprobe-bench-{}.jsonl", std::process::id()));
    std::fs::write(&path, &jsonl).expect("write the generated capture");
    let text = std::fs::read_to_string(&path).expect("read it back");
    let _ = std::fs::remove_file(&path);
    println!("generated {count} mixed core messages ({:.1} MB of JSON Lines)", text.len() as f64 / 1e6);

    // Warm up both paths once so page faults and lazy init do not count.
    run_parse_only(&text[..text.len().min(1 << 20)]);
    run_validate(&catalog, &text[..text.len().min(1 << 20)]);

    let (parsed, parse_secs) = timed(|| run_parse_only(&text));
    let (validated, validate_secs) = timed(|| run_validate(&catalog, &text));
    assert_eq!(parsed, count);
    assert_eq!(validated, (count, 0), "every generated message is valid");
    let parse_rate = count as f64 / parse_secs;
    let validate_rate = count as f64 / validate_secs;
    println!("serde_json parse only (baseline):   {:>12.0} messages/s", parse_rate);
    println!(
        "validate's checks (scan, tape, serde): {:>10.0} messages/s  ({:.2}x the parse-only rate)",
        validate_rate,
        validate_rate / parse_rate
    );
    compare_with_ajv(&catalog, count);
}

/// `wsprobe validate` (whole process, one core) against ajv (inner loop) on the same corpus.
fn compare_with_ajv(catalog: &Catalog, count: usize) {
    let mut corpus = String::with_capacity(count * 400);
    for (i, line) in generate(catalog, count).lines().enumerate() {
        // Every 20th message breaks its schema: a negative number where one must be positive.
        if i % 20 == 7 {
            corpus.push_str(&line.replacen("\"timestamp\":", "\"timestamp\":-", 1));
        } else {
            corpus.push_str(line);
        }
        corpus.push('\n');
    }
    let path = std::env::temp_dir().join(format!("wsprobe-compare-{}.jsonl", std::process::id()));
    std::fs::write(&path, &corpus).expect("write the corpus");
    let messages = corpus.lines().count();
    println!(
        "\nside by side: {messages} messages, {:.0} bytes each, 5 % invalid",
        corpus.len() as f64 / messages as f64
    );

    let pinned = std::process::Command::new("taskset").arg("-V").output().is_ok();
    let mut command = if pinned {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", "0", env!("CARGO_BIN_EXE_wsprobe")]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"))
    };
    command.args(["validate", "--format", "json"]).arg(&path).stdout(std::process::Stdio::null());
    let node_path = std::env::var("WSPROBE_AJV_NODE_PATH").unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/ecosystem-node/node_modules")
            .display()
            .to_string()
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/compare/ajv-validate.cjs");
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");

    // The two sides alternate, round after round, so a noisy neighbour slows both alike; the
    // best round of each is compared (the least disturbed), and the median is shown beside it.
    let rounds: usize = std::env::var("WSPROBE_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let (mut wsprobe_rates, mut ajv_rates) = (Vec::new(), Vec::new());
    let mut ajv_problem = None;
    for _ in 0..rounds.max(1) {
        let (status, seconds) = timed(|| command.status().expect("wsprobe validate runs"));
        assert_eq!(status.code(), Some(1), "the corpus has invalid messages, so validate exits 1");
        wsprobe_rates.push(messages as f64 / seconds);
        match std::process::Command::new("node")
            .arg(&script)
            .arg(&schemas)
            .arg(&path)
            .env("NODE_PATH", &node_path)
            .output()
        {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                let fields: Vec<&str> = text.split_whitespace().collect();
                let invalid: usize = fields.get(2).and_then(|r| r.parse().ok()).unwrap_or(usize::MAX);
                assert_eq!(invalid, messages / 20, "ajv finds the same 5 % invalid");
                ajv_rates.push(fields.get(4).and_then(|r| r.parse().ok()).unwrap_or(0.0));
            }
            Ok(out) => {
                ajv_problem = Some(String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("failed").to_string())
            }
            Err(error) => ajv_problem = Some(format!("node: {error}")),
        }
        if ajv_problem.is_some() {
            break;
        }
    }
    match std::env::var_os("WSPROBE_BENCH_KEEP_CORPUS") {
        // For profiling: `perf record wsprobe validate CORPUS` on exactly this input.
        Some(keep) => {
            std::fs::rename(&path, &keep).or_else(|_| std::fs::copy(&path, &keep).map(drop)).expect("keep the corpus")
        }
        None => {
            let _ = std::fs::remove_file(&path);
        }
    }
    let cores = if pinned { "one core (taskset -c 0)" } else { "all cores (no taskset)" };
    let (best, median) = best_and_median(&mut wsprobe_rates);
    println!(
        "wsprobe validate, whole process, {cores}: best {best:>9.0} messages/s, median {median:>9.0} ({} rounds)",
        wsprobe_rates.len()
    );
    match ajv_problem {
        Some(problem) => println!("ajv: not run ({problem})"),
        None => {
            let (ajv_best, ajv_median) = best_and_median(&mut ajv_rates);
            println!(
                "ajv (Node, draft 2020-12), inner loop:      best {ajv_best:>9.0} messages/s, median {ajv_median:>9.0}"
            );
            println!(
                "ratio wsprobe / ajv: {:.2} best to best, {:.2} median to median",
                best / ajv_best,
                median / ajv_median
            );
        }
    }
}

/// The highest and the median of `rates`.
fn best_and_median(rates: &mut [f64]) -> (f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates.last().copied().unwrap_or(0.0), rates.get(rates.len() / 2).copied().unwrap_or(0.0))
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn run_parse_only(text: &str) -> usize {
    let mut n = 0;
    capture::for_each_message(text, |m| {
        n += usize::from(m.parsed.is_ok());
    });
    n
}

/// (messages, invalid) through the path `wsprobe validate` takes: the one-pass scan, the tape
/// when the scan is unsure, and `serde_json` with full error collection for whatever neither
/// calls valid.
fn run_validate(catalog: &Catalog, text: &str) -> (usize, usize) {
    use wsprobe::schema::scan::Scanned;
    let (mut n, mut invalid) = (0, 0);
    let mut tape = wsprobe::schema::tape::Tape::default();
    for line in text.lines() {
        n += 1;
        let valid = match catalog.scan(MessageSet::Core, line, &mut tape) {
            Some((_, Scanned::Valid)) => true,
            Some((_, Scanned::Rejected)) => false,
            Some((_, Scanned::Unsure)) | None => {
                tape.parse(line).is_some_and(|root| catalog.valid_type(MessageSet::Core, root).is_some())
            }
        };
        if valid {
            continue;
        }
        let valid = serde_json::from_str::<Value>(line)
            .map(|v| catalog.validate(MessageSet::Core, &v).is_valid())
            .unwrap_or(false);
        invalid += usize::from(!valid);
    }
    (n, invalid)
}

/// Mixes the spec's core examples in the proportions a live feed has (mostly MarketData),
/// varying every timestamp and price so no two lines are identical.
fn generate(catalog: &Catalog, count: usize) -> String {
    let examples: Vec<(&str, Value)> =
        catalog.messages(MessageSet::Core).map(|m| (m.message_type.as_str(), m.examples[0].clone())).collect();
    let weight = |t: &str| match t {
        "MarketData" => 12,
        "Pong" => 4,
        "ChartUpdate" | "AISignalReceived" | "PositionUpdate" => 2,
        _ => 1,
    };
    let mix: Vec<&Value> = examples.iter().flat_map(|(t, v)| std::iter::repeat_n(v, weight(t))).collect();
    let mut out = String::with_capacity(count * 400);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..count {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut message = mix[(seed >> 33) as usize % mix.len()].clone();
        vary(&mut message, i as u64, seed);
        out.push_str(&message.to_string());
        out.push('\n');
    }
    out
}

fn vary(value: &mut Value, i: u64, seed: u64) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::Number(n) if n.is_u64() && key.contains("time") => *child = (n.as_u64().unwrap() + i).into(),
                    Value::Number(n) if n.is_f64() && key.contains("price") => {
                        let jitter = 1.0 + ((seed % 1000) as f64 - 500.0) / 1e5;
                        *child = serde_json::json!((n.as_f64().unwrap() * jitter * 100.0).round() / 100.0);
                    }
                    _ => vary(child, i, seed),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| vary(v, i, seed)),
        _ => {}
    }
}
