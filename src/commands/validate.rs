//! `wsprobe validate`: check captured traffic against the schemas.
//!
//! Input is streamed, in waves: each wave is split into one stretch per core, each stretch is
//! checked on its own thread and renders its part of the report into a buffer, and the buffers
//! are written in input order, so the output is the same as a sequential run and memory stays
//! bounded for any input size.
//!
//! JSON Lines, the usual capture format, is read in chunks that end at a newline and split
//! into lines on the worker threads ([`capture::next_line`]). Any other layout (a top-level
//! array, pretty-printed documents) and any line that opens a multi-line document hands the
//! rest of the input, from that line, to [`MessageReader`], which reads one message at a time
//! in the main thread. Both read the same messages with the same line numbers.

use std::io::{BufRead, Read, Write};

use anyhow::{bail, Context};

use crate::capture::{self, ArenaMessage, Captured, MessageReader};
use crate::cli::{ReportFormat, ValidateArgs};
use crate::exit;
use crate::profile::{Direction, MessageSet};
use crate::report::validation::{HumanReporter, JsonReporter, MessageOutcome, Totals, ValidationReporter};
use crate::schema::scan::Scanned;
use crate::schema::tape::Tape;
use crate::schema::{Catalog, Violation};

/// Bytes of messages per batch or chunk; bounds what each thread holds and buffers.
const BATCH_BYTES: usize = 4 << 20;

pub fn run(catalog: Catalog, args: &ValidateArgs, out: impl Write) -> anyhow::Result<u8> {
    let mut out = std::io::BufWriter::new(out);
    if args.document.server.is_some() {
        bail!("--server names a server to connect to; validate reads captured messages and connects to none");
    }
    let profile = super::profile_spec(catalog, args.profile, &args.document)?;
    let catalog = profile.catalog.as_ref();
    let set = match args.direction {
        Direction::Server => profile.server,
        Direction::Client => profile.client,
    };
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
        let checker = Checker { catalog, set, format: args.format, file, max_bytes: args.max_message_bytes, threads };
        let (mut input, mut line, mut layout_known) = (input, 1, false);
        // JSON Lines as far as it goes, the reader where it does not, and back.
        while let Some(reader) = checker.json_lines(input, line, layout_known, &mut out, &mut totals)? {
            let Some((rest, at)) = checker.messages(reader, &mut out, &mut totals)? else { break };
            (input, line, layout_known) = (rest, at, true);
        }
    }
    reporter(args.format, &mut out).finish(&totals).context("cannot write the report")?;
    Ok(if totals.invalid == 0 { exit::SUCCESS } else { exit::FAILURES })
}

/// What every stretch of one file is checked with.
#[derive(Clone, Copy)]
struct Checker<'a> {
    catalog: &'a Catalog,
    set: MessageSet,
    format: ReportFormat,
    file: &'a str,
    max_bytes: usize,
    threads: usize,
}

/// The input left for [`MessageReader`] when it is not (or stops being) plain JSON Lines.
type Rest<'a> = MessageReader<Box<dyn BufRead + 'a>>;

/// A stretch of JSON Lines: whole lines, the number of the first, and whether the input
/// ends with it.
struct Chunk {
    bytes: Vec<u8>,
    line: usize,
    last: bool,
}

/// One checked stretch: its part of the report, its counts, and where it stopped at a line
/// that opens a multi-line document (offset in the chunk, line), if it did.
type Checked = (Vec<u8>, Totals, Option<(usize, usize)>);

impl<'a> Checker<'a> {
    /// Checks `input` as JSON Lines for as long as it is; returns a reader for the rest when
    /// it turns out not to be.
    fn json_lines(
        &self,
        mut input: Box<dyn BufRead + 'a>,
        mut line: usize,
        mut layout_known: bool,
        out: &mut dyn Write,
        totals: &mut Totals,
    ) -> anyhow::Result<Option<Rest<'a>>> {
        let read_error = || format!("cannot read {}", self.file);
        let mut carry = Vec::new();
        loop {
            let mut wave = Vec::with_capacity(self.threads);
            // Bytes from which the exact reader must go on, and whether they start in JSON Lines.
            let mut handoff: Option<(Vec<u8>, bool)> = None;
            while wave.len() < self.threads.max(1) {
                let Some(read) = read_chunk(&mut input, &mut carry, self.max_bytes).with_context(read_error)? else {
                    break;
                };
                let (bytes, whole_lines, last) = read;
                if !layout_known {
                    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
                        Some(b'[') => {
                            handoff = Some((bytes, false));
                            break;
                        }
                        Some(_) => layout_known = true,
                        None => {}
                    }
                }
                if !whole_lines {
                    // A line longer than a chunk and the cap: the reader skips it in bounded memory.
                    handoff = Some((bytes, layout_known));
                    break;
                }
                let first = line;
                line += memchr::memchr_iter(b'\n', &bytes).count();
                wave.push(Chunk { bytes, line: first, last });
            }
            let results: Vec<std::io::Result<Checked>> = if wave.len() <= 1 {
                wave.iter().map(|chunk| self.check_chunk(chunk)).collect()
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        wave.iter().map(|chunk| scope.spawn(move || self.check_chunk(chunk))).collect();
                    handles.into_iter().map(|h| h.join().expect("a validation thread panicked")).collect()
                })
            };
            for (index, result) in results.into_iter().enumerate() {
                let (buffer, chunk_totals, stopped) = result.context("cannot render the report")?;
                out.write_all(&buffer).context("cannot write the report")?;
                totals.merge(chunk_totals);
                if let Some((offset, at_line)) = stopped {
                    // Everything from the opening line on, in order, goes to the reader.
                    let mut rest = wave[index].bytes.split_off(offset);
                    for later in &wave[index + 1..] {
                        rest.extend_from_slice(&later.bytes);
                    }
                    if let Some((bytes, _)) = &handoff {
                        rest.extend_from_slice(bytes);
                    }
                    rest.append(&mut carry);
                    let rest: Box<dyn BufRead + 'a> = Box::new(std::io::Cursor::new(rest).chain(input));
                    return Ok(Some(MessageReader::resume_lines(rest, self.max_bytes, at_line)));
                }
            }
            out.flush().context("cannot write the report")?;
            if let Some((mut bytes, in_lines)) = handoff {
                bytes.append(&mut carry);
                let rest: Box<dyn BufRead + 'a> = Box::new(std::io::Cursor::new(bytes).chain(input));
                return Ok(Some(if in_lines {
                    MessageReader::resume_lines(rest, self.max_bytes, line)
                } else {
                    MessageReader::from_line(rest, self.max_bytes, line)
                }));
            }
            if wave.is_empty() {
                return Ok(None);
            }
        }
    }

    /// Checks one chunk of JSON Lines, up to a line that opens a multi-line document.
    fn check_chunk(&self, chunk: &Chunk) -> std::io::Result<Checked> {
        let mut buffer = Vec::with_capacity(chunk.bytes.len() / 3);
        let mut reporter = reporter(self.format, &mut buffer);
        let mut totals = Totals::default();
        let mut tape = Tape::default();
        let (mut offset, mut line) = (0, chunk.line);
        while let Some(found) = capture::next_line(&chunk.bytes, &mut offset, &mut line, self.max_bytes) {
            let text = found.text.as_deref().map_err(String::as_str);
            if self.report_fast_valid(found.line, text, &mut tape, &mut *reporter, &mut totals)? {
                continue;
            }
            if found.opens_document() {
                // The reader takes the document (and any broken line it finds) from here,
                // then hands the line splitting back.
                let mut reader = MessageReader::resume_lines(&chunk.bytes[found.offset..], self.max_bytes, found.line);
                let mut read = Vec::new();
                let resume = loop {
                    let Some(raw) = reader.next_message()? else { break None };
                    read.push(raw);
                    match reader.into_line_input() {
                        Ok((rest, at)) => break Some((rest.len(), at)),
                        Err(unfinished) => reader = unfinished,
                    }
                };
                // Read to the chunk's end, the document may go on in the next chunk: leave
                // it all to the reader over the whole input.
                let Some((rest, at)) = resume.filter(|(rest, _)| *rest > 0 || chunk.last) else {
                    drop(reporter);
                    return Ok((buffer, totals, Some((found.offset, found.line))));
                };
                for raw in read {
                    let text = raw.text.as_deref().map_err(String::as_str);
                    self.check_message(raw.line, text, &mut tape, &mut *reporter, &mut totals)?;
                }
                (offset, line) = (chunk.bytes.len() - rest, at);
                continue;
            }
            // Not valid the fast way: the full way, which explains.
            check_captured(
                self.catalog,
                self.set,
                self.file,
                capture::parse(found.line, text),
                &mut *reporter,
                &mut totals,
            )?;
        }
        drop(reporter);
        Ok((buffer, totals, None))
    }

    /// Checks one message the fast way, else the full way, and reports it.
    fn check_message(
        &self,
        line: usize,
        text: Result<&str, &str>,
        tape: &mut Tape,
        reporter: &mut dyn ValidationReporter,
        totals: &mut Totals,
    ) -> std::io::Result<()> {
        if self.report_fast_valid(line, text, tape, reporter, totals)? {
            return Ok(());
        }
        check_captured(self.catalog, self.set, self.file, capture::parse(line, text), reporter, totals)
    }

    /// Reports the message as valid when [`fast_valid_type`] says it is; false otherwise,
    /// with nothing reported.
    fn report_fast_valid(
        &self,
        line: usize,
        text: Result<&str, &str>,
        tape: &mut Tape,
        reporter: &mut dyn ValidationReporter,
        totals: &mut Totals,
    ) -> std::io::Result<bool> {
        let Ok(text) = text else { return Ok(false) };
        let Some(message_type) = fast_valid_type(self.catalog, self.set, text, tape) else { return Ok(false) };
        totals.valid += 1;
        reporter.message(&MessageOutcome {
            file: self.file,
            line,
            message_type: Some(message_type),
            violations: &[],
        })?;
        Ok(true)
    }

    /// Checks the messages `reader` reads, a wave of batches at a time, until the input ends
    /// or is plain JSON Lines again: then the input from there, and its line number.
    fn messages<R: BufRead>(
        &self,
        mut reader: MessageReader<R>,
        out: &mut dyn Write,
        totals: &mut Totals,
    ) -> anyhow::Result<Option<(R, usize)>> {
        loop {
            let wave = read_wave(&mut reader, self.threads, self.file)?;
            if wave.is_empty() {
                return Ok(None);
            }
            let results: Vec<std::io::Result<(Vec<u8>, Totals)>> = if wave.len() == 1 {
                vec![check_batch(self, &wave[0])]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        wave.iter().map(|batch| scope.spawn(move || check_batch(self, batch))).collect();
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
            match reader.into_line_input() {
                Ok(back) => return Ok(Some(back)),
                Err(still) => reader = still,
            }
        }
    }
}

/// About [`BATCH_BYTES`] of the input, `carry` first: whole lines (`true`), or, when a line
/// runs past the chunk and the message cap together, what was read of it (`false`), for the
/// reader to skip in bounded memory; and whether the input ends there. The start of a line
/// read past the chunk's last newline is left in `carry`. `None` at the end of the input.
fn read_chunk(
    input: &mut dyn BufRead,
    carry: &mut Vec<u8>,
    max_bytes: usize,
) -> std::io::Result<Option<(Vec<u8>, bool, bool)>> {
    let mut bytes = std::mem::take(carry);
    bytes.reserve(BATCH_BYTES + (64 << 10));
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok((!bytes.is_empty()).then_some((bytes, true, true)));
        }
        let taken = buffer.len();
        bytes.extend_from_slice(buffer);
        input.consume(taken);
        if bytes.len() >= BATCH_BYTES {
            if let Some(last) = memchr::memrchr(b'\n', &bytes) {
                *carry = bytes.split_off(last + 1);
                return Ok(Some((bytes, true, false)));
            }
            if bytes.len() > BATCH_BYTES + max_bytes {
                return Ok(Some((bytes, false, false)));
            }
        }
    }
}

/// The fast ways to a "valid" verdict: the one-pass scan, then the tape when the scan is
/// unsure. `None` when neither says valid.
fn fast_valid_type<'t>(catalog: &Catalog, set: MessageSet, text: &'t str, tape: &'t mut Tape) -> Option<&'t str> {
    match catalog.scan(set, text, tape) {
        Some((message_type, Scanned::Valid)) => Some(message_type),
        Some((_, Scanned::Rejected)) => None,
        Some((_, Scanned::Unsure)) | None => tape.parse(text).and_then(|root| catalog.valid_type(set, root)),
    }
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
            if reader.at_line_start() {
                // Plain JSON Lines again: the line splitter takes over after this wave.
                return Ok(wave.into_iter().chain([batch]).collect());
            }
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
/// Each message first goes through [`fast_valid_type`], which can only say "valid" for
/// certain. Any other message is parsed into a `serde_json::Value` and checked by
/// [`Catalog::validate`], so every error reported comes from that one path.
fn check_batch(checker: &Checker<'_>, batch: &Batch) -> std::io::Result<(Vec<u8>, Totals)> {
    let mut buffer = Vec::with_capacity(batch.messages.len() * 96);
    let mut reporter = reporter(checker.format, &mut buffer);
    let mut totals = Totals::default();
    let mut tape = Tape::default();
    for (line, range) in &batch.messages {
        let text = range.as_ref().map(|range| &batch.text[range.clone()]).map_err(String::as_str);
        checker.check_message(*line, text, &mut tape, &mut *reporter, &mut totals)?;
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
