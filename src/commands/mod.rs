//! One module per subcommand. Each returns an exit code for checks that ran, and `Err` only
//! when nothing meaningful could be checked (bad flags, unreadable files, no target).

mod capacity;
mod fuzz;
mod load;
mod merge;
mod replay;
mod report;
mod run;
mod schemas;
mod serve;
mod snapshot;
mod validate;

use anyhow::Context;

use std::sync::Arc;

use crate::cli::{Cli, Command, ConnectionArgs, DocumentArgs};
use crate::exit;
use crate::network::{Network, ProxyPolicy, SourceAddresses, TlsSettings};
use crate::profile::asyncapi::Document;
use crate::profile::{Profile, ProfileSpec};
use crate::schema::{Catalog, SchemaSource};
use crate::session::{ConnectError, ConnectOptions, Session};

/// Runs the parsed command line; the result is the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let mut stdout = std::io::stdout().lock();
    // Generated from the flag definitions; they need no schemas.
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "wsprobe", &mut stdout);
            return Ok(exit::SUCCESS);
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut stdout)
                .context("cannot write the man page")?;
            return Ok(exit::SUCCESS);
        }
        _ => {}
    }
    let catalog = load_catalog(&cli)?;
    match cli.command {
        Command::Completions { .. } | Command::Man => Ok(exit::SUCCESS),
        Command::Validate(args) => validate::run(catalog, &args, stdout),
        Command::Schemas { command } => schemas::run(&catalog, &command, stdout),
        Command::Load(args) => {
            drop(stdout);
            load::run(catalog, &args)
        }
        Command::Capacity(args) => {
            drop(stdout);
            capacity::run(catalog, &args)
        }
        Command::Report(args) => {
            drop(stdout);
            report::run(&args)
        }
        Command::Merge(args) => {
            drop(stdout);
            merge::run(&args)
        }
        Command::Run(args) => {
            drop(stdout);
            crate::cli::check_secret_environment().map_err(anyhow::Error::msg)?;
            run::run(catalog, &args, cli.color)
        }
        Command::Fuzz(args) => {
            drop(stdout);
            fuzz::run(catalog, &args, cli.color)
        }
        Command::Replay(args) => {
            drop(stdout);
            replay::run(catalog, &args)
        }
        Command::Serve(args) => {
            drop(stdout);
            serve::run(catalog, &args, cli.color)
        }
        Command::Snapshot { command } => {
            drop(stdout);
            crate::cli::check_secret_environment().map_err(anyhow::Error::msg)?;
            snapshot::run(catalog, &command)
        }
    }
}

fn load_catalog(cli: &Cli) -> anyhow::Result<Catalog> {
    match &cli.schemas {
        None => Catalog::embedded().context("the schemas built into wsprobe do not compile (a build defect)"),
        Some(dir) => {
            let source =
                SchemaSource::from_dir(dir).with_context(|| format!("cannot load --schemas {}", dir.display()))?;
            Catalog::compile(&source).with_context(|| format!("schemas in {} are not usable", dir.display()))
        }
    }
}

/// The profile a command talks to: a shipped one over `catalog` (the embedded schemas or
/// `--schemas`), or a channel of `--asyncapi`.
fn profile_spec(catalog: Catalog, profile: Profile, document: &DocumentArgs) -> anyhow::Result<ProfileSpec> {
    match &document.asyncapi {
        Some(_) => document_spec(document),
        None => ProfileSpec::shipped(profile, Arc::new(catalog))
            .context("the shipped schemas/asyncapi.yaml (a build defect)"),
    }
}

/// The profile of `--asyncapi FILE` (which must be given) and its `--channel`.
fn document_spec(document: &DocumentArgs) -> anyhow::Result<ProfileSpec> {
    let path = document.asyncapi.as_deref().context("no --asyncapi document was given")?;
    let loaded = Document::load(path)?;
    Ok(ProfileSpec::from_document(&loaded, document.channel.as_deref(), document.discriminator.as_deref())?)
}

/// The URL to connect to: `--url`, else the document's `--server`; `None` leaves it to the
/// bundled server, which only stands in for a profile it implements.
fn target_url(url: Option<&str>, document: &DocumentArgs, spec: &ProfileSpec) -> anyhow::Result<Option<String>> {
    match (url, &document.server) {
        (Some(_), Some(_)) => anyhow::bail!("--url and --server both name the target; pass one"),
        (Some(url), None) => Ok(Some(url.to_string())),
        (None, Some(server)) => {
            let url = spec.server_url(server)?;
            Ok(Some(crate::target::parse_ws_url(&url).map_err(anyhow::Error::msg)?))
        }
        (None, None) if spec.bundled.is_some() => Ok(None),
        (None, None) => anyhow::bail!(
            "{} describes a server wsprobe does not bundle: pass --url ws://HOST:PORT/PATH, or --server ID for one of the document's servers",
            spec.name
        ),
    }
}

/// The target could not be reached at all (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("cannot reach {url}: {reason}")]
pub struct Unreachable {
    pub url: String,
    pub reason: String,
}

/// The run's [`Network`] from its connection flags. `url` is `None` for the bundled server,
/// which is reached directly: no proxy stands between a process and its own loopback server.
fn network(args: &ConnectionArgs, url: Option<&str>, sources: Option<SourceAddresses>) -> anyhow::Result<Arc<Network>> {
    let tls = TlsSettings::new(&args.ca_certs, args.insecure)?;
    if args.insecure {
        eprintln!(
            "warning: --insecure: TLS certificates are not verified; anyone on the path could impersonate the server, \
             and the report is marked unverified"
        );
    }
    let mut headers = vec![("User-Agent".to_string(), crate::network::user_agent())];
    if let Some(origin) = &args.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    // A user's header replaces a default of the same name (User-Agent, Origin); several of
    // one name are all sent.
    headers.retain(|(default, _)| !args.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(default)));
    headers.extend(args.headers.iter().cloned());
    let proxy = match url {
        None => {
            if args.proxy.is_some() {
                eprintln!("note: --proxy is not used for the bundled server; it applies with --url");
            }
            ProxyPolicy::none()
        }
        Some(url) => {
            let policy = ProxyPolicy::from_sources(args.proxy.as_deref(), |name| std::env::var(name).ok())
                .map_err(anyhow::Error::msg)?;
            if let Ok(uri) = tokio_tungstenite::tungstenite::http::Uri::try_from(url) {
                let (secure, host, _) = crate::network::endpoint(&uri);
                if let Some(proxy) = policy.for_target(secure, &host) {
                    eprintln!("connecting through proxy {} (from {})", proxy.display(), proxy.source);
                }
            }
            policy
        }
    };
    Ok(Arc::new(Network {
        tls,
        headers,
        subprotocols: args.subprotocols.clone(),
        proxy,
        sources: sources.unwrap_or_default(),
    }))
}

/// One connection before the real work: a target that cannot be reached at all is exit code 3,
/// not a page of identical failures. A server that answers, even badly, passes: the checks
/// that follow say how it is wrong. With `wait`, a target that is not up yet (refused, or not
/// answering in time) is tried again until it answers or `wait` is over, for servers that a CI
/// job starts just before wsprobe.
async fn preflight(
    url: &str,
    network: &Arc<Network>,
    timeout: std::time::Duration,
    wait: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let deadline = wait.map(|wait| tokio::time::Instant::now() + wait);
    let mut pause = std::time::Duration::from_millis(50);
    let mut told = false;
    loop {
        let attempt_timeout = match deadline {
            Some(deadline) => timeout.min(deadline.saturating_duration_since(tokio::time::Instant::now())).max(pause),
            None => timeout,
        };
        let options = ConnectOptions::new(url, attempt_timeout).with_network(network.clone());
        let error = match Session::connect(&options).await {
            Ok(mut session) => {
                session.finish(std::time::Duration::from_millis(500)).await;
                return Ok(());
            }
            Err(error @ ConnectError::InvalidUrl { .. }) => {
                anyhow::bail!("{error}; write it like ws://127.0.0.1:8080/ws")
            }
            // Retrying cannot fix a certificate or a proxy's refusal.
            Err(error @ (ConnectError::Tls { .. } | ConnectError::Proxy(_))) => {
                return Err(Unreachable { url: url.to_string(), reason: error.to_string() }.into());
            }
            Err(error) if error.is_unreachable() || matches!(error, ConnectError::Timeout(_)) => error,
            Err(_) => return Ok(()),
        };
        let now = tokio::time::Instant::now();
        match deadline {
            Some(deadline) if now + pause < deadline => {
                if !told {
                    eprintln!(
                        "waiting for {url} ({error}); up to {:.1} s more (--wait-for-server)",
                        deadline.saturating_duration_since(now).as_secs_f64()
                    );
                    told = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            _ => {
                let waited =
                    wait.map(|w| format!(" (waited {:.1} s, --wait-for-server)", w.as_secs_f64())).unwrap_or_default();
                return Err(Unreachable { url: url.to_string(), reason: format!("{error}{waited}") }.into());
            }
        }
    }
}

/// [`preflight`] for the suite (`run`, `snapshot`): its target, network and timeout scale.
async fn preflight_suite(
    settings: &crate::runner::RunSettings,
    wait: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    preflight(&settings.url, &settings.network, settings.scaled(std::time::Duration::from_secs(5)), wait).await
}

/// Maps a setup error to its exit code. Unreachable targets are distinguished from bad input
/// so CI can tell "the server is down" from "the pipeline is misconfigured".
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<Unreachable>()) {
        exit::UNREACHABLE
    } else {
        exit::USAGE
    }
}
