//! The command line, kept close to the flags; commands turn it into real objects.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::profile::{Direction, Profile};

#[derive(Debug, Parser)]
#[command(
    name = "wsprobe",
    version,
    about = "Conformance harness and load generator for the Bot Core WebSocket protocol"
)]
pub struct Cli {
    /// Load schemas from this folder instead of the copy built into wsprobe (same layout as schemas/).
    #[arg(long, global = true, value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check captured messages (JSON Lines, a JSON document or an array) against the schemas.
    Validate(ValidateArgs),
    /// List, show and self-check the message schemas.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Which endpoint's messages these are.
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    /// Messages sent by the server (the default) or by a client (Ping, Authenticate).
    #[arg(long, value_enum, default_value_t = Direction::Server)]
    pub direction: Direction,
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
    /// Files to check; `-` reads standard input.
    #[arg(required = true, value_name = "FILE|-")]
    pub files: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// One line per message schema: set, type, file, requirement.
    List,
    /// Print one schema document, by file (`core/Pong.json`), set/type (`ai/Pong`) or unique type.
    Show { name: String },
    /// Compile every schema and validate every example it carries; optionally the spec's examples too.
    Check {
        /// A spec in Markdown: each ```json block is validated against the schema for its `type`.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
}
