//! `wsprobe validate`: check captured traffic against the schemas.
//!
//! Large JSON Lines captures are checked on every core: line-aligned pieces go to threads, each
//! renders its part of the report into a buffer, and the buffers are written in input order,
//! so the output is the same as a sequential run.

use std::io::{Read, Write};

use anyhow::{bail, Context};

use crate::capture::{self, Captured};
use crate::cli::{ReportFormat, ValidateArgs};
use crate::exit;
use crate::profile::MessageSet;
use crate::report::validation::{HumanReporter, JsonReporter, MessageOutcome, Totals, ValidationReporter};
use crate::schema::{Catalog, Violation};

/// Captures smaller than this are checked on one thread: threads would cost more than they save.
const PARALLEL_FROM_BYTES: usize = 8 << 20;
/// Size of the piece each thread checks at a time; bounds the report buffered per thread.
const PIECE_BYTES: usize = 4 << 20;

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
        let text = read_input(file)?;
        if threads > 1 && text.len() >= PARALLEL_FROM_BYTES && capture::is_json_lines(&text) {
            let pieces = capture::line_chunks(&text, PIECE_BYTES);
            for wave in pieces.chunks(threads) {
                let results: Vec<std::io::Result<(Vec<u8>, Totals)>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = wave
                        .iter()
                        .map(|(first_line, piece)| {
                            scope.spawn(move || {
                                let mut buffer = Vec::new();
                                let piece_totals = check_piece(catalog, set, args.format, file, &mut buffer, |each| {
                                    capture::for_each_line_from(piece, *first_line, each)
                                })?;
                                Ok((buffer, piece_totals))
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("a validation thread panicked")).collect()
                });
                for result in results {
                    let (buffer, piece_totals) = result.context("cannot render the report")?;
                    out.write_all(&buffer).context("cannot write the report")?;
                    totals.valid += piece_totals.valid;
                    totals.invalid += piece_totals.invalid;
                }
            }
        } else {
            let file_totals =
                check_piece(catalog, set, args.format, file, &mut out, |each| capture::for_each_message(&text, each))
                    .context("cannot write the report")?;
            totals.valid += file_totals.valid;
            totals.invalid += file_totals.invalid;
        }
    }
    reporter(args.format, &mut out).finish(&totals).context("cannot write the report")?;
    Ok(if totals.invalid == 0 { exit::SUCCESS } else { exit::FAILURES })
}

fn reporter<'w>(format: ReportFormat, out: &'w mut dyn Write) -> Box<dyn ValidationReporter + 'w> {
    match format {
        ReportFormat::Human => Box::new(HumanReporter::new(out)),
        ReportFormat::Json => Box::new(JsonReporter::new(out)),
    }
}

/// Checks the messages `read` yields and reports each into `out`; returns the counts.
fn check_piece(
    catalog: &Catalog,
    set: MessageSet,
    format: ReportFormat,
    file: &str,
    out: &mut dyn Write,
    read: impl FnOnce(&mut dyn FnMut(Captured)),
) -> std::io::Result<Totals> {
    let mut reporter = reporter(format, out);
    let mut totals = Totals::default();
    let mut failure = None;
    read(&mut |captured: Captured| {
        if failure.is_some() {
            return;
        }
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
        let outcome = MessageOutcome {
            file,
            line: captured.line,
            message_type: message_type.as_deref(),
            violations: &violations,
        };
        if outcome.is_valid() {
            totals.valid += 1;
        } else {
            totals.invalid += 1;
        }
        failure = reporter.message(&outcome).err();
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(totals),
    }
}

fn read_input(file: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes).context("cannot read standard input")?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{file} is not UTF-8 text (invalid byte at offset {}); captures must be JSON in UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}
