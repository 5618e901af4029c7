//! `wsprobe load`: build the plan, start the bundled server if needed, run, report, gate.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::LoadArgs;
use crate::exit;
use crate::load::operation::Operation;
use crate::load::plan::LoadPlan;
use crate::load::summary::Verdict;
use crate::load::{self, summary, Outputs};
use crate::schema::Catalog;

pub fn run(catalog: Catalog, args: &LoadArgs) -> anyhow::Result<u8> {
    if [&args.json, &args.hdr_log].iter().all(|p| p.as_deref().is_some_and(crate::cli::is_stdout)) {
        bail!("--json - and --hdr-log - would both write to standard output; send one of them to a file");
    }
    let profile = Arc::new(super::profile_spec(catalog, args.profile, &args.document)?);
    let operation = Operation::of(&profile, args.operation.as_deref()).map_err(anyhow::Error::msg)?;
    let url = super::target_url(args.url.as_deref(), &args.document, &profile)?;
    let bundled = url.is_none();
    let mut plan = LoadPlan {
        url: url.clone().unwrap_or_default(),
        profile: profile.clone(),
        operation,
        mode: args.mode,
        connections: args.connections,
        duration: args.duration,
        ramp_up: args.ramp_up,
        rate: args.rate,
        in_flight: args.in_flight,
        validation: args.validate,
        reply_timeout: args.reply_timeout,
        connect_timeout: Duration::from_secs(10),
        max_message_bytes: args.max_message_bytes,
        clock_offset: args.clock_offset,
        max_connect_failure_rate: args.max_connect_failures,
        network: super::network(&args.connection, url.as_deref(), args.source_ip.clone())?,
    };
    if let Some(shard) = args.shard {
        plan.connections = shard.connections(args.connections).map_err(anyhow::Error::msg)?;
        plan.rate = args.rate.map(|rate| shard.rate(rate, args.connections)).transpose().map_err(anyhow::Error::msg)?;
    }
    plan.check().map_err(anyhow::Error::msg)?;
    raise_fd_limit(args.connections * if bundled { 2 } else { 1 } + 256)?;

    let mut notes = Vec::new();
    let server = if bundled {
        let implemented = profile.bundled.expect("target_url leaves the URL out only for a bundled profile");
        let server = start_bundled(implemented, args.server_threads, args.server_tick)?;
        notes.push(format!(
            "bundled reference server on its own {} thread(s); its 100-messages-a-minute rate limit is lifted for load",
            args.server_threads
        ));
        plan.url = server.url().to_string();
        Some(server)
    } else {
        None
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(super::preflight(
        &plan.url,
        &plan.network,
        Duration::from_secs(5),
        args.wait_for_server,
    ))?;

    if let Some(start) = args.start_at {
        // Checked after start-up and the server check, so every shard is ready when it comes.
        let wait = load::shard::wait_for(start, std::time::SystemTime::now()).map_err(anyhow::Error::msg)?;
        std::thread::sleep(wait);
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let outputs = Outputs {
        progress: !args.no_progress
            && std::io::stdout().is_terminal()
            && ![&args.json, &args.hdr_log].iter().any(|p| p.as_deref().is_some_and(crate::cli::is_stdout)),
        hdr_log: args.hdr_log.clone(),
        bundled_server: bundled,
        notes,
        threads,
        shard: args.shard,
        keep_log: args.html.is_some(),
    };
    let (summary, hlog) = load::run_keeping_log(plan, outputs)?;
    if let Some(path) = &args.html {
        let log = match &hlog {
            Some(bytes) => {
                Some(load::interval_log::IntervalLog::parse(bytes).context("cannot read back the run's interval log")?)
            }
            None => None,
        };
        let page = crate::report::html::load_page(&summary, log.as_ref(), &[]);
        std::fs::write(path, page).with_context(|| format!("cannot write --html {}", path.display()))?;
    }
    drop(server);

    // Standard output holds one thing: the human summary, or what `--json -` or `--hdr-log -`
    // sent there (the human summary then goes to standard error).
    let stdout_taken = args.json.iter().chain(&args.hdr_log).any(|p| crate::cli::is_stdout(p));
    let mut out: Box<dyn Write> =
        if stdout_taken { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    out.write_all(summary::human(&summary).as_bytes())?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&summary)? + "\n";
        if crate::cli::is_stdout(path) {
            std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write --json to standard output")?;
        } else {
            std::fs::write(path, text).with_context(|| format!("cannot write --json {}", path.display()))?;
        }
    }
    let mut failed = summary.verdict != Verdict::Passed;
    for assertion in &args.assertions {
        let checked = assertion.check(&summary);
        writeln!(out, "  assert {checked}")?;
        failed |= !checked.passed;
    }
    Ok(match summary.verdict {
        Verdict::Unreachable => exit::UNREACHABLE,
        _ if failed => exit::FAILURES,
        _ => exit::SUCCESS,
    })
}

/// The reference server on its own threads for a load run (`load`, `capacity`): its rate limit
/// lifted, and no cap on connections or idle time, since the run decides both.
pub(super) fn start_bundled(
    profile: crate::profile::Profile,
    threads: usize,
    tick: Duration,
) -> anyhow::Result<reference_server::BackgroundServer> {
    let mut config = reference_server::Config::new(profile.into());
    config.rate_limit = None;
    config.max_connections = None;
    config.idle_timeout = None;
    config.tick = tick;
    reference_server::BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), threads)
        .context("cannot start the bundled reference server on 127.0.0.1")
}

/// Each connection needs a file descriptor (two with the bundled server in-process).
pub(super) fn raise_fd_limit(needed: usize) -> anyhow::Result<()> {
    match rlimit::increase_nofile_limit(needed as u64) {
        Ok(limit) if limit >= needed as u64 => Ok(()),
        Ok(limit) => bail!(
            "{needed} file descriptors are needed but the limit is {limit} and cannot be raised further here; \
             lower --connections or raise the hard limit (ulimit -Hn)"
        ),
        // Platforms without rlimit support: go on, and connect errors will say what happened.
        Err(_) => Ok(()),
    }
}
