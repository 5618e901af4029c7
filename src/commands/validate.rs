//! `wsprobe validate`: check captured traffic against the schemas.
//!
//! Input is streamed: messages are read one at a time (see [`capture`]) and gathered into
//! batches of about 4 MB; each wave of batches is parsed and checked on every core, each batch
//! renders its part of the report into a buffer, and the buffers are written in input order,
//! so the output is the same as a sequential run and memory stays bounded for any input size.

use std::io::{BufRead, Write};

use anyhow::{bail, Context};

use crate::capture::{self, ArenaMessage, Captured, MessageReader};
use crate::cli::{ReportFormat, ValidateArgs};
use crate::exit;
use crate::profile::MessageSet;
use crate::report::validation::{HumanReporter, JsonReporter, MessageOutcome, Totals, ValidationReporter};
use crate::schema::scan::Scanned;
use crate::schema::tape::Tape;
use crate::schema::{Catalog, Violation};

/// Bytes of messages per batch; bounds what each thread holds and buffers.
const BATCH_BYTES: usize = 4 << 20;

pub fn run(catalog: &Catalog, args: &ValidateArgs, out: impl Write) -> anyhow::Result<u8> {
    let mut out = std::io::BufWriter::new(out);
    let set = MessageSet::of(args.profile, args.direction);
    if args.files.iter().filter(|f| *f == "-").count() > 1 {
        bail!("standard input (`-`) can be named only once");
    }
    // Fail on a missing file before printing anything, so a typo never yields a partial report.
    for file in args.files.iter().filter(|f| *f != "-") {
        std::fs::metadata(file).with_context(|| format!("cannot read {file}: check the path"))?;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut totals = Totals { files: args.files.len(), ..Totals::default() };
    for file in &args.files {
        let input: Box<dyn BufRead> = if file == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let opened = std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?;
            Box::new(std::io::BufReader::with_capacity(256 << 10, opened))
        };
        let mut reader = MessageReader::new(input, args.max_message_bytes);
        loop {
            let wave = read_wave(&mut reader, threads, file)?;
            if wave.is_empty() {
                break;
            }
            let results: Vec<std::io::Result<(Vec<u8>, Totals)>> = if wave.len() == 1 {
                vec![check_batch(catalog, set, args.format, file, &wave[0])]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = wave
                        .iter()
                        .map(|batch| scope.spawn(move || check_batch(catalog, set, args.format, file, batch)))
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("a validation thread panicked")).collect()
                })
            };
            for result in results {
                let (buffer, batch_totals) = result.context("cannot render the report")?;
                out.write_all(&buffer).context("cannot write the report")?;
                totals.merge(batch_totals);
            }
            // A live capture piped in shows its findings as they come.
            out.flush().context("cannot write the report")?;
        }
    }
    reporter(args.format, &mut out).finish(&totals).context("cannot write the report")?;
    Ok(if totals.invalid == 0 { exit::SUCCESS } else { exit::FAILURES })
}

/// Messages read from one stretch of the input, their text in one buffer.
#[derive(Default)]
struct Batch {
    text: String,
    /// Each message's line, and its text's range in `text` or why it has none.
    messages: Vec<ArenaMessage>,
}

/// Up to `threads` batches of about [`BATCH_BYTES`] each; empty at the end of the input.
fn read_wave<R: BufRead>(reader: &mut MessageReader<R>, threads: usize, file: &str) -> anyhow::Result<Vec<Batch>> {
    let mut wave = Vec::with_capacity(threads);
    for _ in 0..threads.max(1) {
        let mut batch = Batch { text: String::with_capacity(BATCH_BYTES + (64 << 10)), messages: Vec::new() };
        // Messages without text (too large, not UTF-8) count too, so a batch stays bounded.
        while batch.text.len() + batch.messages.len() * 64 < BATCH_BYTES {
            let Some(message) =
                reader.next_message_into(&mut batch.text).with_context(|| format!("cannot read {file}"))?
            else {
                break;
            };
            batch.messages.push(message);
        }
        if batch.messages.is_empty() {
            break;
        }
        wave.push(batch);
    }
    Ok(wave)
}

/// Parses and checks one batch; returns its part of the report and its counts.
///
/// Each message first goes through the one-pass [`Catalog::scan`], then, when that is unsure,
/// the [`Tape`] fast path; both can only say "valid" for certain. Any other message is parsed into a `serde_json::Value` and checked by [`Catalog::validate`],
/// so every error reported comes from that one path.
fn check_batch(
    catalog: &Catalog,
    set: MessageSet,
    format: ReportFormat,
    file: &str,
    batch: &Batch,
) -> std::io::Result<(Vec<u8>, Totals)> {
    let mut buffer = Vec::with_capacity(batch.messages.len() * 96);
    let mut reporter = reporter(format, &mut buffer);
    let mut totals = Totals::default();
    let mut tape = Tape::default();
    for (line, range) in &batch.messages {
        let text = range.as_ref().map(|range| &batch.text[range.clone()]).map_err(String::as_str);
        if let Ok(text) = text {
            let valid_type = match catalog.scan(set, text, &mut tape) {
                Some((message_type, Scanned::Valid)) => Some(message_type),
                Some((_, Scanned::Rejected)) => None,
                Some((_, Scanned::Unsure)) | None => tape.parse(text).and_then(|root| catalog.valid_type(set, root)),
            };
            if let Some(message_type) = valid_type {
                totals.valid += 1;
                let outcome = MessageOutcome { file, line: *line, message_type: Some(message_type), violations: &[] };
                reporter.message(&outcome)?;
                continue;
            }
        }
        check_captured(catalog, set, file, capture::parse(*line, text), &mut *reporter, &mut totals)?;
    }
    drop(reporter);
    Ok((buffer, totals))
}

fn reporter<'w>(format: ReportFormat, out: &'w mut dyn Write) -> Box<dyn ValidationReporter + 'w> {
    match format {
        ReportFormat::Human => Box::new(HumanReporter::new(out)),
        ReportFormat::Json => Box::new(JsonReporter::new(out)),
    }
}

/// Checks one parsed message the full way and reports it.
fn check_captured(
    catalog: &Catalog,
    set: MessageSet,
    file: &str,
    captured: Captured,
    reporter: &mut dyn ValidationReporter,
    totals: &mut Totals,
) -> std::io::Result<()> {
    let (message_type, violations) = match &captured.parsed {
        Ok(message) => {
            let verdict = catalog.validate(set, message);
            (verdict.message_type, verdict.violations)
        }
        Err(reason) => {
            let violation =
                Violation { instance_path: String::new(), schema_path: String::new(), message: reason.clone() };
            (None, vec![violation])
        }
    };
    let outcome =
        MessageOutcome { file, line: captured.line, message_type: message_type.as_deref(), violations: &violations };
    if outcome.is_valid() {
        totals.valid += 1;
    } else {
        totals.invalid += 1;
        totals.note_invalid(&outcome);
    }
    reporter.message(&outcome)
}
