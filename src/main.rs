use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = wsprobe::cli::Cli::parse();
    match wsprobe::commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`wsprobe man | head`): nothing is wrong, and nobody is listening.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(wsprobe::commands::exit_code_for(&error))
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
