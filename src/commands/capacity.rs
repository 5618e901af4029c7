//! `wsprobe capacity`: build the search, start the bundled server if needed, search, report.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::capacity::{self, report, CapacityPlan, Progress};
use crate::cli::CapacityArgs;
use crate::exit;
use crate::load::plan::{ClockOffset, LoadPlan, Mode};
use crate::schema::Catalog;

pub fn run(catalog: Catalog, args: &CapacityArgs) -> anyhow::Result<u8> {
    if args.mode != Mode::Ping {
        bail!(
            "--mode {}: capacity ramps the Ping rate, so it searches in ping mode only; the server's push cadence is its own and cannot be ramped from here",
            args.mode.name()
        );
    }
    let mut plan = CapacityPlan {
        load: LoadPlan {
            url: args.url.clone().unwrap_or_default(),
            profile: args.profile,
            mode: args.mode,
            connections: args.connections,
            duration: args.warmup + args.step_duration,
            ramp_up: Duration::ZERO,
            rate: Some(args.start_rate),
            in_flight: args.in_flight,
            validation: args.validate,
            reply_timeout: args.reply_timeout,
            connect_timeout: Duration::from_secs(10),
            max_message_bytes: crate::session::DEFAULT_MAX_MESSAGE_BYTES,
            clock_offset: ClockOffset::Fixed(0),
            max_connect_failure_rate: args.max_connect_failures,
            network: super::network(&args.connection, args.url.as_deref(), args.source_ip.clone())?,
        },
        start_rate: args.start_rate,
        max_rate: args.max_rate,
        step: args.step_duration,
        warmup: args.warmup,
        resolution: args.resolution,
        slos: args.slos.clone(),
        max_window_held: 0.01,
        rate_tolerance: 0.05,
        threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
    };
    plan.check().map_err(anyhow::Error::msg)?;
    super::load::raise_fd_limit(args.connections * if args.url.is_none() { 2 } else { 1 } + 256)?;
    let server = match &args.url {
        Some(_) => None,
        None => {
            let server = super::load::start_bundled(args.profile, args.server_threads, Duration::from_secs(1))?;
            plan.load.url = server.url().to_string();
            eprintln!(
                "bundled reference server on its own {} thread(s), its rate limit lifted; it shares this machine's cores with the generator",
                args.server_threads
            );
            Some(server)
        }
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(super::preflight(
        &plan.load.url,
        &plan.load.network,
        Duration::from_secs(5),
        args.wait_for_server,
    ))?;

    if [&args.json, &args.hdr_log].iter().all(|p| p.as_deref().is_some_and(crate::cli::is_stdout)) {
        bail!("--json - and --hdr-log - would both write to standard output; send one of them to a file");
    }
    // Standard output holds one thing: the human report, or what `--json -`/`--hdr-log -` sent there.
    let stdout_taken = [&args.json, &args.hdr_log].iter().any(|p| p.as_deref().is_some_and(crate::cli::is_stdout));
    let mut out: Box<dyn Write> =
        if stdout_taken { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    writeln!(
        out,
        "wsprobe capacity: {}/s to {}/s, {} s steps after {} s warm-up, {} resolution: at most {} steps, at most {:.0} s",
        args.start_rate,
        args.max_rate,
        args.step_duration.as_secs(),
        args.warmup.as_secs(),
        format_args!("{:.1}%", args.resolution * 100.0),
        plan.max_steps(),
        plan.max_time().as_secs_f64()
    )?;
    out.flush()?;
    let show = !args.no_progress;
    let report = capacity::search(&plan, Arc::new(catalog), |progress| {
        if !show {
            return;
        }
        let line = match progress {
            Progress::Starting { number, rate } => format!("step {number}: {rate:.0}/s …"),
            Progress::Finished { number, step } => report::step_line(number, step),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })?;
    drop(server);
    out.write_all(report::human(&report).as_bytes())?;
    if let Some(path) = &args.json {
        let text = report::json(&report);
        if crate::cli::is_stdout(path) {
            std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write --json to standard output")?;
        } else {
            std::fs::write(path, text).with_context(|| format!("cannot write --json {}", path.display()))?;
        }
    }
    if let Some(path) = &args.hdr_log {
        let bytes = report.hlog().context("cannot encode the interval log")?;
        if crate::cli::is_stdout(path) {
            std::io::stdout().lock().write_all(&bytes).context("cannot write --hdr-log to standard output")?;
        } else {
            std::fs::write(path, bytes).with_context(|| format!("cannot write --hdr-log {}", path.display()))?;
        }
    }
    if let Some(path) = &args.html {
        std::fs::write(path, crate::report::html::capacity_page(&report))
            .with_context(|| format!("cannot write --html {}", path.display()))?;
    }
    let below = match (args.expect, report.capacity_per_s) {
        (Some(expected), Some(found)) if found < expected => {
            writeln!(out, "  expected at least {expected:.0}/s: FAILED")?;
            true
        }
        (Some(expected), None) => {
            writeln!(out, "  expected at least {expected:.0}/s: FAILED")?;
            true
        }
        _ => false,
    };
    // A lower bound (bound: generator or max-rate) is still a capacity found; the conclusion
    // line says it is one.
    Ok(if report.capacity_per_s.is_none() || below { exit::FAILURES } else { exit::SUCCESS })
}
