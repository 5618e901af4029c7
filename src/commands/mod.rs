//! One module per subcommand. Each returns an exit code for checks that ran, and `Err` only
//! when nothing meaningful could be checked (bad flags, unreadable files, no target).

mod load;
mod run;
mod schemas;
mod serve;
mod snapshot;
mod validate;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::exit;
use crate::schema::{Catalog, SchemaSource};
use crate::session::{ConnectError, ConnectOptions, Session};

/// Runs the parsed command line; the result is the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let catalog = load_catalog(&cli)?;
    let stdout = std::io::stdout().lock();
    match cli.command {
        Command::Validate(args) => validate::run(&catalog, &args, stdout),
        Command::Schemas { command } => schemas::run(&catalog, &command, stdout),
        Command::Load(args) => {
            drop(stdout);
            load::run(catalog, &args)
        }
        Command::Run(args) => {
            drop(stdout);
            run::run(catalog, &args)
        }
        Command::Serve(args) => {
            drop(stdout);
            serve::run(catalog, &args)
        }
        Command::Snapshot { command } => {
            drop(stdout);
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

/// The target could not be reached at all (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("cannot reach {url}: {reason}")]
pub struct Unreachable {
    pub url: String,
    pub reason: String,
}

/// One connection before the real work: a target that cannot be reached at all is exit code 3,
/// not a page of identical failures. A server that answers, even badly, passes: the checks
/// that follow say how it is wrong.
async fn preflight(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    match Session::connect(&ConnectOptions::new(url, timeout)).await {
        Ok(mut session) => {
            let _ = session.close(1000, "preflight", std::time::Duration::from_millis(500)).await;
            Ok(())
        }
        Err(error @ ConnectError::InvalidUrl { .. }) => anyhow::bail!("{error}; write it like ws://127.0.0.1:8080/ws"),
        Err(error) if error.is_unreachable() || matches!(error, ConnectError::Timeout(_)) => {
            Err(Unreachable { url: url.to_string(), reason: error.to_string() }.into())
        }
        Err(_) => Ok(()),
    }
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
