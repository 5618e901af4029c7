//! `wsprobe run`: the conformance suite against a target, with a verdict CI can act on.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::mpsc;

use crate::cli::{ColorChoice, RunArgs, RunFormat, SuiteArgs};
use crate::exit;
use crate::outcome::Status;
use crate::profile::{Profile, ProfileSpec};
use crate::report::run::{self as reporters, Style};
use crate::runner::{self, RunEvent, RunSettings};
use crate::scenario::{derived, loader};
use crate::schema::Catalog;

/// The cases to run: the built-in suite (unless left out) and the user's files, filtered. The
/// built-in suite is the shipped scenario files for a shipped profile, and the suite derived
/// from the document for one read from AsyncAPI.
pub(super) fn planned_cases(
    no_builtin: bool,
    scenarios: &[std::path::PathBuf],
    filter: Option<&str>,
    profile: &ProfileSpec,
) -> anyhow::Result<Vec<runner::PlannedCase>> {
    let mut suites = match (no_builtin, profile.shipped) {
        (true, _) => Vec::new(),
        (false, Some(_)) => loader::builtin().context("the built-in suite")?,
        (false, None) => vec![derived::suite(profile)],
    };
    suites.extend(loader::from_paths(scenarios)?);
    loader::check_unique_ids(&suites)?;
    if suites.is_empty() {
        bail!("--no-builtin leaves nothing to run: add --scenario PATH");
    }
    let planned = runner::plan(&suites, profile, filter);
    if planned.is_empty() {
        bail!(
            "no case matches --filter {:?} on the {} profile; case ids look like heartbeat.pong",
            filter.unwrap_or("*"),
            profile.name
        );
    }
    Ok(planned)
}

/// What `run` and `snapshot` test: the profile, its cases, and the server (the bundled one
/// when no URL is given), reached through the connection flags.
pub(super) struct SuiteTarget {
    pub profile: Arc<ProfileSpec>,
    pub planned: Vec<runner::PlannedCase>,
    pub bundled: Option<(reference_server::BackgroundServer, String)>,
    pub url: String,
    pub jwt_secret: Option<String>,
    pub network: Arc<crate::network::Network>,
}

pub(super) fn suite_target(catalog: Catalog, suite: &SuiteArgs, seed: Option<u64>) -> anyhow::Result<SuiteTarget> {
    let profile = Arc::new(super::profile_spec(catalog, suite.profile, &suite.document)?);
    let planned = planned_cases(suite.no_builtin, &suite.scenarios, suite.filter.as_deref(), &profile)?;
    let url = super::target_url(suite.url.as_deref(), &suite.document, &profile)?;
    let bundled = match (&url, profile.bundled) {
        (None, Some(implemented)) => Some(start_bundled(implemented, seed)?),
        _ => None,
    };
    let (url, jwt_secret) = match (&bundled, url) {
        (Some((server, secret)), _) => (server.url().to_string(), Some(secret.clone())),
        (None, url) => (url.unwrap_or_default(), suite.jwt_secret.clone()),
    };
    let network = super::network(&suite.connection, bundled.is_none().then_some(url.as_str()), None)?;
    Ok(SuiteTarget { profile, planned, bundled, url, jwt_secret, network })
}

pub fn run(catalog: Catalog, args: &RunArgs, color: ColorChoice) -> anyhow::Result<u8> {
    if args.list {
        let profile = super::profile_spec(catalog, args.suite.profile, &args.suite.document)?;
        let planned =
            planned_cases(args.suite.no_builtin, &args.suite.scenarios, args.suite.filter.as_deref(), &profile)?;
        let mut out = std::io::stdout().lock();
        let width = planned.iter().map(|p| p.case.id.len()).max().unwrap_or(0);
        for p in &planned {
            let case = &p.case;
            let requirement = case.requirement.as_deref().unwrap_or("-");
            let needs: Vec<&str> = case.needs.iter().map(|n| n.name()).collect();
            let needs = if needs.is_empty() { String::new() } else { format!(" (needs {})", needs.join(", ")) };
            writeln!(
                out,
                "{:<width$}  {:<6} {:<20} {}{needs}",
                case.id,
                case.level.name(),
                requirement,
                case.description
            )?;
        }
        writeln!(out, "{} case(s) on the {} profile", planned.len(), profile.name)?;
        return Ok(exit::SUCCESS);
    }

    // The bundled server gets its own runtime and thread, so the harness never competes with it.
    let SuiteTarget { profile, planned, bundled, url, jwt_secret, network } = suite_target(catalog, &args.suite, None)?;
    let settings = Arc::new(RunSettings {
        url: url.clone(),
        profile,
        token: args.suite.token.clone(),
        jwt_secret,
        strict: args.strict,
        timeout_scale: args.suite.timeout_scale,
        jobs: usize::from(args.jobs),
        max_message_bytes: args.max_message_bytes,
        record: false,
        network: network.clone(),
    });

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let report = runtime.block_on(async {
        super::preflight_suite(&settings, args.suite.wait_for_server).await?;
        let (events, mut receiver) = mpsc::unbounded_channel();
        let progress = tokio::spawn(async move {
            let bar = show_progress.then(indicatif::ProgressBar::hidden);
            while let Some(event) = receiver.recv().await {
                let Some(bar) = &bar else { continue };
                match event {
                    RunEvent::Started { total } => {
                        bar.set_length(total as u64);
                        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                        bar.set_style(
                            indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {pos}/{len} cases {msg}")
                                .expect("valid template"),
                        );
                        bar.enable_steady_tick(Duration::from_millis(120));
                    }
                    RunEvent::CaseFinished(case) => {
                        bar.inc(1);
                        bar.set_message(format!("{} {}", case.status.label(), case.id));
                    }
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        let report = runner::run(planned, settings.clone(), events, bundled.is_some()).await;
        let _ = progress.await;
        anyhow::Ok(report)
    })?;
    drop(bundled);

    write_report(&report, args.format, args.output.as_deref(), color)?;
    if let Some(path) = &args.html {
        std::fs::write(path, crate::report::html::run_page(&report))
            .with_context(|| format!("cannot write --html {}", path.display()))?;
    }
    let failed = report.cases.iter().any(|c| c.status == Status::Failed);
    Ok(if failed { exit::FAILURES } else { exit::SUCCESS })
}

/// Renders the report in the chosen format to `output` (or standard output). Hints go to
/// standard error when the report itself will not show them to the person watching.
pub(super) fn write_report(
    report: &crate::outcome::RunReport,
    format: RunFormat,
    output: Option<&std::path::Path>,
    color: ColorChoice,
) -> anyhow::Result<()> {
    let output = output.filter(|path| !crate::cli::is_stdout(path));
    let text = match format {
        RunFormat::Human => {
            let color = color.enabled(output.is_none() && std::io::stdout().is_terminal());
            reporters::human(report, Style { color })
        }
        RunFormat::Json => reporters::json(report),
        RunFormat::Junit => reporters::junit(report),
    };
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write the report to {}", path.display()))?
        }
        None => std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write the report")?,
    }
    if format != RunFormat::Human || output.is_some() {
        for hint in &report.hints {
            eprintln!("hint: {hint}");
        }
    }
    Ok(())
}

pub(super) fn start_bundled(
    profile: Profile,
    seed: Option<u64>,
) -> anyhow::Result<(reference_server::BackgroundServer, String)> {
    let secret = crate::tokens::random_secret();
    let mut config = reference_server::Config::new(profile.into());
    config.auth = reference_server::AuthMode::Optional;
    if let Some(seed) = seed {
        config.seed = seed;
    }
    config.jwt_secret = Some(secret.clone());
    let server = reference_server::BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1)
        .context("cannot start the bundled reference server on 127.0.0.1")?;
    Ok((server, secret))
}
