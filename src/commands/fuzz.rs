//! `wsprobe fuzz`: start the bundled server if needed, run the campaign, write the report.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use std::sync::Arc;

use crate::cli::{ColorChoice, DocumentArgs, FuzzArgs, RunFormat};
use crate::exit;
use crate::fuzz::exec::Target;
use crate::fuzz::{report, Budget, FuzzPlan};
use crate::load::operation::Operation;
use crate::profile::ProfileSpec;
use crate::schema::Catalog;

pub fn run(catalog: Catalog, args: &FuzzArgs, _color: ColorChoice) -> anyhow::Result<u8> {
    let budget = match (args.cases, args.duration) {
        (Some(0), _) => anyhow::bail!("--cases 0 would check nothing; give at least 1"),
        (Some(cases), _) => Budget::Cases(cases),
        (None, Some(duration)) if duration.is_zero() => anyhow::bail!("--duration 0 would check nothing"),
        (None, Some(duration)) => Budget::Time(duration),
        (None, None) => Budget::Time(Duration::from_secs(30)),
    };
    if args.rate.is_some_and(|rate| !(rate > 0.0 && rate.is_finite())) {
        anyhow::bail!("--rate must be a positive number of cases a second, e.g. --rate 5");
    }
    if args.probe_timeout.is_zero() {
        anyhow::bail!("--probe-timeout must be more than 0, e.g. 2s");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let profile = super::profile_spec(catalog, args.profile, &args.document)?;
    let (server, target) = target(
        &runtime,
        args.url.as_deref(),
        &args.document,
        profile,
        &args.connection,
        args.probe_timeout,
        args.wait_for_server,
    )?;
    let catalog = target.profile.catalog.clone();
    let plan = FuzzPlan {
        target,
        seed,
        budget,
        out: args.out.clone(),
        oversize: args.oversize_bytes,
        shrink_attempts: args.shrink_attempts,
        bundled_server: server.is_some(),
        rate: args.rate,
        profile_flags: profile_flags(&args.document),
    };
    if let Err(why) = runtime.block_on(plan.target.baseline(&catalog)) {
        anyhow::bail!(
            "cannot fuzz {}: before any input, {why}; no input can be judged against a server that does not welcome a fresh connection (if it wants a token first, pass --header 'Authorization: Bearer TOKEN')",
            plan.target.url
        );
    }
    eprintln!(
        "wsprobe fuzz: seed {seed}, {}; findings go to {}",
        match budget {
            Budget::Cases(n) => format!("{n} case(s)"),
            Budget::Time(d) => format!("for {}", crate::clients::timing::seconds(d)),
        },
        plan.out.display()
    );
    let report = runtime
        .block_on(crate::fuzz::run(&plan, &catalog, |finding, case| {
            eprintln!("  case {case}: {} (bundle {})", finding.summary, finding.bundle.display());
        }))
        .with_context(|| format!("cannot write a finding's bundle in {}", plan.out.display()))?;
    drop(server);
    let text = match args.format {
        RunFormat::Human => report::human(&report),
        RunFormat::Json => report::json(&report),
        RunFormat::Junit => report::junit(&report),
    };
    match args.output.as_deref().filter(|path| !crate::cli::is_stdout(path)) {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write the report to {}", path.display()))?
        }
        None => std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write the report")?,
    }
    // Green only when no input broke anything and every invariant could be judged: one that a
    // connection breaks with no input at all hides what inputs do to it.
    let clean = report.findings.is_empty() && report.stopped.is_none() && report.without_input.is_empty();
    Ok(if clean { exit::SUCCESS } else { exit::FAILURES })
}

/// The flags that name a document's profile again, for the replay hint.
fn profile_flags(document: &DocumentArgs) -> String {
    let Some(path) = &document.asyncapi else { return String::new() };
    let mut flags = format!(" --asyncapi {}", path.display());
    for (flag, value) in [("--channel", &document.channel), ("--discriminator", &document.discriminator)] {
        if let Some(value) = value {
            flags.push_str(&format!(" {flag} {value}"));
        }
    }
    flags
}

/// The target of `fuzz` and `replay`: `url` (or the document's `--server`), or the bundled
/// reference server of `profile` (kept alive by the returned handle), checked reachable.
pub(super) fn target(
    runtime: &tokio::runtime::Runtime,
    url: Option<&str>,
    document: &DocumentArgs,
    profile: ProfileSpec,
    connection: &crate::cli::ConnectionArgs,
    probe_timeout: Duration,
    wait_for_server: Option<Duration>,
) -> anyhow::Result<(Option<reference_server::BackgroundServer>, Target)> {
    let probe = Operation::probe(&profile).map_err(|why| anyhow::anyhow!("cannot fuzz {}: {why}", profile.name))?;
    let url = super::target_url(url, document, &profile)?;
    let network = super::network(connection, url.as_deref(), None)?;
    let (server, url) = match (url, profile.bundled) {
        (Some(url), _) => (None, url),
        (None, implemented) => {
            let implemented = implemented.expect("target_url leaves the URL out only for a bundled profile");
            let (server, _secret) = super::run::start_bundled(implemented, None)?;
            let url = server.url().to_string();
            (Some(server), url)
        }
    };
    runtime.block_on(super::preflight(&url, &network, Duration::from_secs(5), wait_for_server))?;
    let target = Target {
        url,
        profile: Arc::new(profile),
        probe,
        network,
        probe_timeout,
        connect_timeout: Duration::from_secs(5),
    };
    Ok((server, target))
}
