//! One integration binary, one module per area, so the crate links once.

mod asyncapi;
mod field;
mod fuzz;
mod hardening;
mod hostile;
mod load;
mod merge;
mod nginx;
mod run_broken;
mod run_cli;
mod schemas;
mod serve;
mod server;
mod snapshot_cli;
mod support;
mod terminal;
mod validate_cli;

/// The spec this project implements. CI lays `shared/` beside the clone, so the tests follow
/// the spec as it changes rather than a copy of it.
pub fn spec_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/API-WEBSOCKET.md")
}
