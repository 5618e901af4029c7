//! `wsprobe schemas list | show | check | diff`.

use std::io::Write;

use anyhow::{bail, Context};

use crate::cli::{ReportFormat, SchemasCommand};
use crate::exit;
use crate::schema::check::{check_schema_examples, check_spec, ExampleCheck};
use crate::schema::diff::{Change, Impact};
use crate::schema::{Catalog, MessageSet, SchemaSource};

/// Changes grouped by message, each with whom it breaks, then the counts.
fn write_diff(
    out: &mut impl Write,
    old: &std::path::Path,
    new: &std::path::Path,
    changes: &[Change],
) -> std::io::Result<()> {
    writeln!(out, "schemas diff: {} → {}", old.display(), new.display())?;
    let mut current = None;
    for change in changes {
        let message = format!("{}/{}", change.set, change.message_type);
        if current.as_ref() != Some(&message) {
            writeln!(out, "{message}")?;
            current = Some(message);
        }
        let path = if change.path.is_empty() { "(message)" } else { &change.path };
        writeln!(out, "  {path}  {} ({}): {}", change.change, change.detail, change.impact.label())?;
    }
    let count = |impact: Impact| changes.iter().filter(|c| c.impact == impact).count();
    writeln!(
        out,
        "{} change(s): {} breaking for clients, {} breaking for servers, {} breaking for both, {} compatible",
        changes.len(),
        count(Impact::BreaksClients),
        count(Impact::BreaksServers),
        count(Impact::BreaksBoth),
        count(Impact::Compatible)
    )
}

pub fn run(catalog: &Catalog, command: &SchemasCommand, mut out: impl Write) -> anyhow::Result<u8> {
    match command {
        SchemasCommand::List => {
            writeln!(out, "{:<7} {:<17} {:<30} REQUIREMENT", "SET", "TYPE", "FILE")?;
            for set in MessageSet::FOLDERS {
                for schema in catalog.messages(set) {
                    let requirement = schema.requirement.as_deref().unwrap_or("-");
                    writeln!(out, "{:<7} {:<17} {:<30} {requirement}", set.dir(), schema.message_type, schema.file)?;
                }
            }
            Ok(exit::SUCCESS)
        }
        SchemasCommand::Diff { old, new, format, allow_breaking } => {
            let load = |dir: &std::path::PathBuf| -> anyhow::Result<SchemaSource> {
                let source = SchemaSource::from_dir(dir)
                    .with_context(|| format!("cannot load schemas from {}", dir.display()))?;
                Catalog::compile(&source).with_context(|| format!("schemas in {} are not usable", dir.display()))?;
                Ok(source)
            };
            let (before, after) = (load(old)?, load(new)?);
            let changes = crate::schema::diff::diff(&before, &after);
            let breaking = changes.iter().filter(|c| c.impact.is_breaking()).count();
            match format {
                ReportFormat::Json => {
                    let document = serde_json::json!({
                        "old": old.display().to_string(),
                        "new": new.display().to_string(),
                        "breaking": breaking,
                        "changes": changes,
                    });
                    writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
                }
                ReportFormat::Human => write_diff(&mut out, old, new, &changes)?,
            }
            Ok(if breaking > 0 && !allow_breaking { exit::FAILURES } else { exit::SUCCESS })
        }
        SchemasCommand::Show { name } => {
            let file = resolve(catalog, name)?;
            let document = &catalog.documents()[&file];
            writeln!(out, "{}", serde_json::to_string_pretty(document)?)?;
            Ok(exit::SUCCESS)
        }
        SchemasCommand::Check { spec } => {
            let mut checks = check_schema_examples(catalog);
            let schema_checks = checks.len();
            if let Some(path) = spec {
                let markdown =
                    std::fs::read_to_string(path).with_context(|| format!("cannot read --spec {}", path.display()))?;
                let name =
                    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
                let found = check_spec(catalog, &name, &markdown);
                if found.is_empty() {
                    bail!("{} has no ```json example blocks; is it the right file?", path.display());
                }
                checks.extend(found);
            }
            print_checks(&mut out, &checks, schema_checks)?;
            Ok(if checks.iter().all(ExampleCheck::passed) { exit::SUCCESS } else { exit::FAILURES })
        }
    }
}

fn print_checks(out: &mut impl Write, checks: &[ExampleCheck], schema_checks: usize) -> std::io::Result<()> {
    for check in checks {
        let status = if check.passed() { "ok  " } else { "FAIL" };
        let sets: Vec<&str> = check.sets.iter().map(|s| s.dir()).collect();
        let what = match &check.message_type {
            Some(t) => format!(" {t} ({})", sets.join(", ")),
            None => String::new(),
        };
        writeln!(out, "{status} {}{what}", check.subject)?;
        for problem in &check.problems {
            writeln!(out, "     {problem}")?;
        }
    }
    let failed = checks.iter().filter(|c| !c.passed()).count();
    let spec_checks = checks.len() - schema_checks;
    let spec = if spec_checks > 0 { format!(" and {spec_checks} spec examples") } else { String::new() };
    writeln!(
        out,
        "checked {schema_checks} schema examples{spec}: {}",
        if failed == 0 { "all valid".to_string() } else { format!("{failed} failed") }
    )
}

/// Finds a document by relative path, `set/Type`, or a type name defined in one set only.
fn resolve(catalog: &Catalog, name: &str) -> anyhow::Result<String> {
    let docs = catalog.documents();
    for candidate in [name.to_string(), format!("{name}.json")] {
        if docs.contains_key(&candidate) {
            return Ok(candidate);
        }
    }
    let sets = catalog.sets_defining(name);
    match sets.as_slice() {
        [set] => Ok(catalog.message(*set, name).map(|m| m.file.clone()).unwrap_or_default()),
        [] => bail!(
            "no schema named {name:?}; `wsprobe schemas list` shows the names (files: {})",
            docs.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        many => bail!(
            "{name:?} is defined in several sets; name one of: {}",
            many.iter().map(|s| format!("{}/{name}", s.dir())).collect::<Vec<_>>().join(", ")
        ),
    }
}
