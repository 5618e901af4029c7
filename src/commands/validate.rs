//! `wsprobe validate`: check captured traffic against the schemas.

use std::io::{Read, Write};

use anyhow::{bail, Context};

use crate::capture;
use crate::cli::{ReportFormat, ValidateArgs};
use crate::exit;
use crate::profile::MessageSet;
use crate::report::validation::{HumanReporter, JsonReporter, MessageOutcome, Totals, ValidationReporter};
use crate::schema::{Catalog, Violation};

pub fn run(catalog: &Catalog, args: &ValidateArgs, out: impl Write) -> anyhow::Result<u8> {
    let out = std::io::BufWriter::new(out);
    let mut reporter: Box<dyn ValidationReporter> = match args.format {
        ReportFormat::Human => Box::new(HumanReporter::new(out)),
        ReportFormat::Json => Box::new(JsonReporter::new(out)),
    };
    let set = MessageSet::of(args.profile, args.direction);
    if args.files.iter().filter(|f| *f == "-").count() > 1 {
        bail!("standard input (`-`) can be named only once");
    }
    // Fail on a missing file before printing anything, so a typo never yields a partial report.
    for file in args.files.iter().filter(|f| *f != "-") {
        std::fs::metadata(file).with_context(|| format!("cannot read {file}: check the path"))?;
    }
    let mut totals = Totals { files: args.files.len(), ..Totals::default() };
    for file in &args.files {
        let text = read_input(file)?;
        let mut failure = None;
        capture::for_each_message(&text, |captured| {
            if failure.is_some() {
                return;
            }
            let (message_type, violations) = match &captured.parsed {
                Ok(message) => {
                    let verdict = catalog.validate(set, message);
                    (verdict.message_type, verdict.violations)
                }
                Err(reason) => (
                    None,
                    vec![Violation {
                        instance_path: String::new(),
                        schema_path: String::new(),
                        message: reason.clone(),
                    }],
                ),
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
        if let Some(error) = failure {
            return Err(error).context("cannot write the report");
        }
    }
    reporter.finish(&totals).context("cannot write the report")?;
    Ok(if totals.invalid == 0 { exit::SUCCESS } else { exit::FAILURES })
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
