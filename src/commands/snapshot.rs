//! `wsprobe snapshot record | diff | accept`: the suite's cases, recorded whole, normalized and
//! kept as one `.snap` file per scenario file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::{RunFormat, SnapshotArgs, SnapshotCommand};
use crate::exit;
use crate::outcome::RunReport;
use crate::runner::{self, RunSettings};
use crate::schema::Catalog;
use crate::snapshot::normalize::{self, Rule};
use crate::snapshot::{store, textdiff};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Same,
    Changed,
    New,
    Missing,
}

#[derive(Serialize)]
struct SuiteResult {
    suite: String,
    file: String,
    status: Status,
    hunks: Vec<textdiff::Hunk>,
}

pub fn run(catalog: Catalog, command: &SnapshotCommand) -> anyhow::Result<u8> {
    match command {
        SnapshotCommand::Accept { dir } => accept(dir),
        SnapshotCommand::Record(args) => {
            let (profile, bodies) = record(catalog, args)?;
            let profile = profile.as_str();
            std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
            for recorded in &bodies {
                let suite = &recorded.suite;
                let path = store::path(&args.dir, suite, profile);
                std::fs::write(&path, store::render(suite, profile, &recorded.body))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let _ = std::fs::remove_file(store::pending(&path));
                // The messages as received, for replay under edited schemas (`validate --schemas`).
                let capture = store::capture_path(&args.dir, suite, profile);
                std::fs::write(&capture, &recorded.received)
                    .with_context(|| format!("cannot write {}", capture.display()))?;
            }
            println!("recorded {} snapshot(s) in {}", bodies.len(), args.dir.display());
            Ok(exit::SUCCESS)
        }
        SnapshotCommand::Diff(args) => {
            let (profile, bodies) = record(catalog, args)?;
            let mut results = Vec::new();
            for Recorded { suite, body, .. } in &bodies {
                let path = store::path(&args.dir, suite, &profile);
                let stored = std::fs::read_to_string(&path).ok();
                let (status, hunks) = match stored.as_deref().map(|f| store::body(f).unwrap_or(f)) {
                    None => (Status::New, textdiff::hunks("", body)),
                    Some(old) if old == body => (Status::Same, Vec::new()),
                    Some(old) => (Status::Changed, textdiff::hunks(old, body)),
                };
                if status != Status::Same {
                    std::fs::create_dir_all(&args.dir)
                        .with_context(|| format!("cannot create {}", args.dir.display()))?;
                    let pending = store::pending(&path);
                    std::fs::write(&pending, store::render(suite, &profile, body))
                        .with_context(|| format!("cannot write {}", pending.display()))?;
                }
                results.push(SuiteResult { suite: suite.clone(), file: path.display().to_string(), status, hunks });
            }
            // Stored snapshots of this profile that the run did not produce (a whole run only).
            if args.suite.filter.is_none() && args.suite.scenarios.is_empty() && !args.suite.no_builtin {
                let prefix = format!("{profile}__");
                for entry in std::fs::read_dir(&args.dir).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let Some(suite) = name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".snap")) else {
                        continue;
                    };
                    if !bodies.iter().any(|r| r.suite == suite) {
                        results.push(SuiteResult {
                            suite: suite.to_string(),
                            file: entry.path().display().to_string(),
                            status: Status::Missing,
                            hunks: Vec::new(),
                        });
                    }
                }
            }
            let mut out = std::io::stdout().lock();
            match args.format {
                RunFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?,
                RunFormat::Junit => out.write_all(junit(&results).as_bytes())?,
                RunFormat::Human => human(&mut out, &results)?,
            }
            let changed = results.iter().any(|r| r.status != Status::Same);
            Ok(if changed { exit::FAILURES } else { exit::SUCCESS })
        }
    }
}

fn human(out: &mut impl Write, results: &[SuiteResult]) -> std::io::Result<()> {
    for result in results {
        let label = match result.status {
            Status::Same => "same   ",
            Status::Changed => "CHANGED",
            Status::New => "NEW    ",
            Status::Missing => "MISSING",
        };
        writeln!(out, "{label} {} ({})", result.suite, result.file)?;
        for hunk in &result.hunks {
            writeln!(out, "  {}", hunk.header)?;
            for line in &hunk.lines {
                writeln!(out, "  {line}")?;
            }
        }
    }
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    writeln!(
        out,
        "{} same, {} changed, {} new, {} missing{}",
        count(Status::Same),
        count(Status::Changed),
        count(Status::New),
        count(Status::Missing),
        if results.iter().any(|r| matches!(r.status, Status::Changed | Status::New)) {
            "; review, then `wsprobe snapshot accept` to keep the .snap.new files"
        } else {
            ""
        }
    )
}

/// One testcase per scenario file; a changed, new or missing one fails with its diff.
fn junit(results: &[SuiteResult]) -> String {
    use crate::report::run::xml_escape;
    let failures = results.iter().filter(|r| r.status != Status::Same).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"wsprobe snapshot\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n  <testsuite name=\"snapshots\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n",
        results.len(),
        results.len()
    );
    for result in results {
        out.push_str(&format!("    <testcase name=\"{}\" classname=\"snapshot\"", xml_escape(&result.suite)));
        if result.status == Status::Same {
            out.push_str("/>\n");
            continue;
        }
        let mut diff = String::new();
        for hunk in &result.hunks {
            diff.push_str(&hunk.header);
            diff.push('\n');
            for line in &hunk.lines {
                diff.push_str(line);
                diff.push('\n');
            }
        }
        let status = format!("{:?}", result.status).to_lowercase();
        out.push_str(&format!(
            ">\n      <failure message=\"snapshot {status}: {}\">{}</failure>\n    </testcase>\n",
            xml_escape(&result.file),
            xml_escape(&diff)
        ));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn accept(dir: &Path) -> anyhow::Result<u8> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}: check --dir", dir.display()))?;
    let mut accepted = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.to_string_lossy().into_owned();
        if let Some(target) = name.strip_suffix(".snap.new") {
            let target = format!("{target}.snap");
            std::fs::rename(&path, &target).with_context(|| format!("cannot move {name} to {target}"))?;
            accepted += 1;
        }
    }
    println!("accepted {accepted} pending snapshot(s) in {}", dir.display());
    Ok(exit::SUCCESS)
}

/// Runs the cases with recording on and returns each scenario file's snapshot body, in order.
/// A scenario file's snapshot body, and the messages its cases received, whole, as JSON Lines.
struct Recorded {
    suite: String,
    body: String,
    received: String,
}

/// The profile's name as snapshot files carry it, and each scenario file's recording.
fn record(catalog: Catalog, args: &SnapshotArgs) -> anyhow::Result<(String, Vec<Recorded>)> {
    let mut rules: Vec<Rule> = match &args.rules {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read --rules {}", path.display()))?;
            normalize::rules_from_yaml(&text).map_err(|e| anyhow::anyhow!("--rules {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    rules.extend(normalize::default_rules());
    let super::run::SuiteTarget { profile, planned, bundled, url, jwt_secret, network } =
        super::run::suite_target(catalog, &args.suite, Some(args.seed))?;
    let settings = Arc::new(RunSettings {
        url,
        profile: profile.clone(),
        token: args.suite.token.clone(),
        jwt_secret,
        strict: false,
        timeout_scale: args.suite.timeout_scale,
        jobs: 8,
        max_message_bytes: crate::session::DEFAULT_MAX_MESSAGE_BYTES,
        record: true,
        network: network.clone(),
    });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let report: RunReport = runtime.block_on(async {
        super::preflight_suite(&settings, args.suite.wait_for_server).await?;
        let (events, _receiver) = tokio::sync::mpsc::unbounded_channel();
        anyhow::Ok(runner::run(planned, settings.clone(), events, bundled.is_some()).await)
    })?;
    drop(bundled);
    let mut bodies: Vec<Recorded> = Vec::new();
    for case in &report.cases {
        let text = normalize::case_text(case, &profile, &rules);
        let received: String = case
            .recording
            .iter()
            .filter(|f| f.direction == crate::session::Direction::Received && f.kind == "text")
            .map(|f| format!("{}\n", f.data.replace('\n', " ")))
            .collect();
        match bodies.iter_mut().find(|r| r.suite == case.suite) {
            Some(recorded) => {
                recorded.body.push('\n');
                recorded.body.push_str(&text);
                recorded.received.push_str(&received);
            }
            None => bodies.push(Recorded { suite: case.suite.clone(), body: text, received }),
        }
    }
    if bodies.is_empty() {
        bail!("no case ran");
    }
    Ok((profile.file_name(), bodies))
}
