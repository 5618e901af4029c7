//! `wsprobe capacity`: build the search, start the bundled server if needed, search, report.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::capacity::{self, report, CapacityPlan, Progress};
use crate::cli::CapacityArgs;
use crate::exit;
use crate::load::operation::Operation;
use crate::load::plan::{ClockOffset, LoadPlan, Mode};
use crate::schema::Catalog;

/// The searched levels and the fixed connections, from the flags of the mode: a flag of the
/// other mode is refused, not ignored.
fn levels(args: &CapacityArgs) -> anyhow::Result<(f64, f64, usize)> {
    let given = |flag: &'static str, set: bool| set.then_some(flag);
    match args.mode {
        Mode::Ping => {
            if let Some(flag) = given("--start-connections", args.start_connections.is_some())
                .or(given("--max-connections", args.max_connections.is_some()))
                .or(given("--clock-offset", args.clock_offset.is_some()))
            {
                bail!("{flag} is for --mode push, which ramps connections and times pushes; ping mode ramps the rate: use --start-rate and --max-rate");
            }
            Ok((args.start_rate.unwrap_or(1000.0), args.max_rate.unwrap_or(1_000_000.0), args.connections.unwrap_or(10)))
        }
        Mode::Push => {
            if let Some(flag) = given("--start-rate", args.start_rate.is_some())
                .or(given("--max-rate", args.max_rate.is_some()))
                .or(given("--connections", args.connections.is_some()))
            {
                bail!(
                    "{flag} is for --mode ping: push mode ramps the number of connections the server pushes to (its cadence is its own); use --start-connections and --max-connections"
                );
            }
            let start = args.start_connections.unwrap_or(100);
            Ok((start as f64, args.max_connections.unwrap_or(10_000) as f64, start))
        }
        Mode::Connect => bail!(
            "--mode connect: capacity searches in ping mode (the Ping rate) or push mode (the connections pushed to); for connects a second, use wsprobe load --mode connect"
        ),
    }
}

pub fn run(catalog: Catalog, args: &CapacityArgs) -> anyhow::Result<u8> {
    let (start, max, connections) = levels(args)?;
    let push = args.mode == Mode::Push;
    let profile = Arc::new(super::profile_spec(catalog, args.profile, &args.document)?);
    let operation = Operation::of(&profile, args.operation.as_deref()).map_err(anyhow::Error::msg)?;
    let url = super::target_url(args.url.as_deref(), &args.document, &profile)?;
    let mut plan = CapacityPlan {
        load: LoadPlan {
            url: url.clone().unwrap_or_default(),
            profile: profile.clone(),
            operation,
            mode: args.mode,
            connections,
            duration: args.warmup + args.step_duration,
            ramp_up: Duration::ZERO,
            rate: (!push).then_some(start),
            in_flight: args.in_flight,
            validation: args.validate,
            reply_timeout: args.reply_timeout,
            connect_timeout: Duration::from_secs(10),
            max_message_bytes: crate::session::DEFAULT_MAX_MESSAGE_BYTES,
            // The bundled server shares this machine's clock; another server's offset is
            // estimated unless given.
            clock_offset: args.clock_offset.unwrap_or(if url.is_none() {
                ClockOffset::Fixed(0)
            } else {
                ClockOffset::Estimate
            }),
            max_connect_failure_rate: args.max_connect_failures,
            network: super::network(&args.connection, url.as_deref(), args.source_ip.clone())?,
        },
        start,
        max,
        step: args.step_duration,
        warmup: args.warmup,
        resolution: args.resolution,
        slos: args.slos.clone(),
        max_window_held: 0.01,
        rate_tolerance: 0.05,
        cadence_floor: args.cadence_floor,
        threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
    };
    plan.check().map_err(anyhow::Error::msg)?;
    let most_connections = if push { max as usize } else { connections };
    super::load::raise_fd_limit(most_connections * if url.is_none() { 2 } else { 1 } + 256)?;
    let server = match (&url, profile.bundled) {
        (Some(_), _) | (None, None) => None,
        (None, Some(implemented)) => {
            let server = super::load::start_bundled(implemented, args.server_threads, Duration::from_secs(1))?;
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
    let range = if push { format!("{start} to {max} connections (push)") } else { format!("{start}/s to {max}/s") };
    writeln!(
        out,
        "wsprobe capacity: {range}, {} s steps after {} s warm-up, {} resolution: at most {} steps, at most {:.0} s",
        args.step_duration.as_secs(),
        args.warmup.as_secs(),
        format_args!("{:.1}%", args.resolution * 100.0),
        plan.max_steps(),
        plan.max_time().as_secs_f64()
    )?;
    out.flush()?;
    let show = !args.no_progress;
    let report = capacity::search(&plan, |progress| {
        if !show {
            return;
        }
        let line = match progress {
            Progress::Starting { number, level } if push => format!("step {number}: {level:.0} connections …"),
            Progress::Starting { number, level } => format!("step {number}: {level:.0}/s …"),
            Progress::Finished { number, step } => report::step_line(number, plan.searched(), step),
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
    // --expect counts what was searched: messages a second, or connections.
    let found = if push { report.capacity_connections.map(|c| c as f64) } else { report.capacity_per_s };
    let unit = if push { " connections" } else { "/s" };
    let below = match (args.expect, found) {
        (Some(expected), Some(found)) if found < expected => {
            writeln!(out, "  expected at least {expected:.0}{unit}: FAILED")?;
            true
        }
        (Some(expected), None) => {
            writeln!(out, "  expected at least {expected:.0}{unit}: FAILED")?;
            true
        }
        _ => false,
    };
    // A lower bound (bound: generator or max-rate) is still a capacity found; the conclusion
    // line says it is one.
    Ok(if report.capacity_per_s.is_none() || below { exit::FAILURES } else { exit::SUCCESS })
}
