//! `wsprobe merge`: the shards of one load test as one result.

use std::io::Write;

use anyhow::{bail, Context};

use crate::cli::MergeArgs;
use crate::exit;
use crate::load::merge::{self, Inputs};
use crate::load::summary::{self, Verdict};

pub fn run(args: &MergeArgs) -> anyhow::Result<u8> {
    if args.json.as_deref().is_some_and(crate::cli::is_stdout)
        && args.hdr_log.as_deref().is_some_and(crate::cli::is_stdout)
    {
        bail!("--json - and --hdr-log - cannot both go to standard output; write one of them to a file");
    }
    let inputs = Inputs::read(&args.files)?;
    let shards = if args.html.is_some() { inputs.shard_series() } else { Vec::new() };
    let merged = merge::merge(inputs)?;
    if let Some(path) = &args.html {
        let log = merged.log.as_ref().map(merge::MergedLog::as_interval_log);
        let page = crate::report::html::load_page(&merged.summary, log.as_ref(), &shards);
        std::fs::write(path, page).with_context(|| format!("cannot write --html {}", path.display()))?;
    }

    let stdout_taken = args.json.iter().chain(&args.hdr_log).any(|p| crate::cli::is_stdout(p));
    let mut out: Box<dyn Write> =
        if stdout_taken { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    writeln!(out, "wsprobe merge: {} file(s)", args.files.len())?;
    out.write_all(merge::human_shards(&merged.shards).as_bytes())?;
    writeln!(out)?;
    out.write_all(summary::human(&merged.summary).as_bytes())?;

    if let Some(path) = &args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            summary: &'a summary::LoadSummary,
            shards: &'a [merge::ShardLine],
        }
        let text = serde_json::to_string_pretty(&Report { summary: &merged.summary, shards: &merged.shards })? + "\n";
        write_output(path, text.as_bytes(), "--json")?;
    }
    if let Some(path) = &args.hdr_log {
        match &merged.log {
            Some(log) => {
                write_output(path, &log.to_bytes().context("cannot encode the merged interval log")?, "--hdr-log")?
            }
            None => bail!("--hdr-log needs interval logs to merge: give the shards' .hlog files"),
        }
    }
    let mut failed = merged.summary.verdict != Verdict::Passed;
    for assertion in &args.assertions {
        let checked = assertion.check(&merged.summary);
        writeln!(out, "  assert {checked}")?;
        failed |= !checked.passed;
    }
    Ok(match merged.summary.verdict {
        Verdict::Unreachable => exit::UNREACHABLE,
        _ if failed => exit::FAILURES,
        _ => exit::SUCCESS,
    })
}

fn write_output(path: &std::path::Path, bytes: &[u8], flag: &str) -> anyhow::Result<()> {
    if crate::cli::is_stdout(path) {
        std::io::stdout().lock().write_all(bytes).with_context(|| format!("cannot write {flag} to standard output"))
    } else {
        std::fs::write(path, bytes).with_context(|| format!("cannot write {flag} {}", path.display()))
    }
}
