//! `wsprobe serve`: the reference server as the endpoint a client under test connects to. It
//! applies the client faults, watches every client, and after `--duration` or a signal judges
//! the spec's client rules per client, in the same reports and exit codes as `run`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::ServeArgs;
use crate::clients::log::{ClientLog, ClientRecorder};
use crate::clients::timing::Timing;
use crate::clients::{faults, rules};
use crate::exit;
use crate::outcome::{CaseReport, RunReport, ServeInfo, Status};
use crate::scenario::BroadcastPolicy;
use crate::schema::Catalog;

pub fn run(catalog: Catalog, args: &ServeArgs, color: crate::cli::ColorChoice) -> anyhow::Result<u8> {
    let mut entries = faults::from_specs(&args.faults)?;
    if let Some(path) = &args.fault_plan {
        entries.extend(faults::from_plan_file(path)?);
    }
    let described: Vec<String> = entries.iter().map(faults::describe).collect();
    let described_entries = entries.clone();
    let timing = Timing::new(args.time_scale, args.slack);
    let bind = args.bind.unwrap_or_else(|| {
        SocketAddr::from(([127, 0, 0, 1], reference_server::Profile::from(args.profile).default_port()))
    });

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let origin = Instant::now();
    let recorder = Arc::new(ClientRecorder::new(origin, Arc::new(catalog), timing));
    let mut config = reference_server::Config::new(args.profile.into());
    // The server's own timings follow the scale too, so its rate limit and idle limit keep
    // their proportion to the client rules.
    config.rate_window = timing.rate_window();
    config.idle_timeout = Some(timing.scaled(reference_server::DEFAULT_IDLE_TIMEOUT));
    config.client_faults = faults::scaled(entries, args.time_scale);
    config.observer = Some(reference_server::observe::ObserverHandle(recorder.clone()));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(reference_server::TlsIdentity::from_pem_files(cert, key)?);
    }

    let (url, observed_until, elapsed, exec_note) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
            format!("cannot listen on {bind}; pick a free address with --bind, e.g. --bind 127.0.0.1:0")
        })?;
        let handle = reference_server::serve(listener, config).context("cannot start the reference server")?;
        let url = handle.url();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {url}")?;
            out.flush()?;
        }
        match args.duration {
            Some(d) => eprintln!("wsprobe serve: watching clients for {}", crate::clients::timing::seconds(d)),
            None => eprintln!("wsprobe serve: watching clients until SIGINT or SIGTERM"),
        }
        let client = args.exec.as_deref().map(|command| ClientCommand::start(command, &url)).transpose()?;
        wait_for_stop(args.duration).await;
        let observed_until = origin.elapsed();
        // The shutdown's Close 1001 is the last thing observed: it tells whether clients answer.
        handle.shutdown().await;
        let exec_note = client.map(|client| client.stop(origin));
        anyhow::Ok((url, observed_until, origin.elapsed(), exec_note))
    })?;

    let clients = recorder.clients();
    let run = rules::Run { timing: &timing, observed_until, faults: &described_entries };
    let cases: Vec<CaseReport> = clients.iter().flat_map(|client| client_cases(client, &run)).collect();
    let mut hints: Vec<String> = exec_note.into_iter().collect();
    hints.extend(late_faults(&described_entries, args.time_scale, observed_until));
    if clients.is_empty() {
        hints.push(format!(
            "no client connected in {}: nothing was checked; point the client at {url} (add ?client=NAME to tell clients apart)",
            crate::clients::timing::seconds(observed_until)
        ));
    }
    let report = RunReport {
        target: url,
        bundled: true,
        profile: args.profile.name().to_string(),
        cases,
        duration: elapsed,
        hints,
        tls_unverified: false,
        serve: Some(ServeInfo {
            time_scale: args.time_scale,
            slack_ms: args.slack.as_millis() as u64,
            faults: described,
            clients: clients.len(),
        }),
    };
    super::run::write_report(&report, args.format, args.output.as_deref(), color)?;
    // Nothing measured is never green: no client, or no rule that could be judged.
    let measured = report.cases.iter().any(|c| matches!(c.status, Status::Passed | Status::Failed));
    let failed = report.cases.iter().any(|c| c.status == Status::Failed);
    Ok(if failed || !measured { exit::FAILURES } else { exit::SUCCESS })
}

/// Faults that never came into play because the run ended first: a verdict must not suggest
/// they were tried.
fn late_faults(entries: &[reference_server::ScheduledFault], scale: f64, observed_until: Duration) -> Vec<String> {
    entries
        .iter()
        .filter(|entry| entry.from.mul_f64(scale) >= observed_until)
        .map(|entry| {
            format!(
                "{} starts at {} (scaled), after the run ended at {}: it never applied",
                faults::describe(entry),
                crate::clients::timing::seconds(entry.from.mul_f64(scale)),
                crate::clients::timing::seconds(observed_until)
            )
        })
        .collect()
}

/// The client under test, run by `--exec` in its own process group so that stopping it stops
/// whatever it started.
struct ClientCommand {
    child: std::process::Child,
    command: String,
}

impl ClientCommand {
    fn start(command: &str, url: &str) -> anyhow::Result<ClientCommand> {
        let mut process = std::process::Command::new("sh");
        process
            .arg("-c")
            .arg(command)
            .env("WSPROBE_URL", url)
            .stdin(std::process::Stdio::null())
            // The report may be on standard output: the client's output goes to standard error.
            .stdout(std::io::stderr())
            .stderr(std::io::stderr());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut process, 0);
        let child = process.spawn().with_context(|| format!("cannot run --exec {command:?} with sh"))?;
        Ok(ClientCommand { child, command: command.to_string() })
    }

    /// Stops the client if it still runs; says how it ended if it ended on its own.
    fn stop(mut self, origin: Instant) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("--exec {:?} had already exited ({status}) when serving ended", self.command);
        }
        #[cfg(target_os = "linux")]
        {
            let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!(
            "--exec {:?} was stopped at {} when serving ended",
            self.command,
            crate::clients::timing::seconds(origin.elapsed())
        )
    }
}

async fn wait_for_stop(duration: Option<Duration>) {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// One case per rule for one client; its suite is the client, so JUnit groups by client.
fn client_cases(client: &ClientLog, run: &rules::Run) -> Vec<CaseReport> {
    let observed_until = run.observed_until;
    let first = client.connections.first().map_or(Duration::ZERO, |c| c.at);
    let last = client.connections.iter().map(|c| c.end_or(observed_until)).max().unwrap_or(first);
    let suite = if client.named { format!("client {}", client.name) } else { format!("client at {}", client.name) };
    rules::check(client, run)
        .into_iter()
        .map(|finding| CaseReport {
            id: finding.rule.id.to_string(),
            suite: suite.clone(),
            requirement: Some(finding.rule.requirement.to_string()),
            level: finding.rule.level,
            status: finding.status,
            duration: last.saturating_sub(first),
            message: finding.message,
            description: finding.rule.description.to_string(),
            transcript: Vec::new(),
            recording: Vec::new(),
            broadcasts: BroadcastPolicy::default(),
            timeline: finding.timeline,
        })
        .collect()
}
