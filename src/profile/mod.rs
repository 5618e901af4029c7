//! The two endpoints of the protocol and the direction a message travels.
//!
//! Everything the spec leaves open differs per endpoint (timestamps, welcome shape), so the
//! profile is the unit of configuration: each one owns a folder of schemas.

pub mod asyncapi;
mod spec;

use std::fmt;

pub use spec::{set_pointer, ProfileError, ProfileSpec, Reply};

/// Which endpoint a target implements.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The Rust core engine, `ws://HOST:8080/ws`.
    Core,
    /// The Python AI service, `ws://HOST:8000/ws`.
    Ai,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Core, Profile::Ai];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Core => "core",
            Profile::Ai => "ai",
        }
    }
}

/// The bundled server impersonates the same endpoint.
impl From<Profile> for reference_server::Profile {
    fn from(profile: Profile) -> reference_server::Profile {
        match profile {
            Profile::Core => reference_server::Profile::Core,
            Profile::Ai => reference_server::Profile::Ai,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Direction {
    /// Server to client: the messages a target emits.
    Server,
    /// Client to server: Ping and Authenticate.
    Client,
}

/// A folder of message schemas under `schemas/`: what one side of one endpoint may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageSet {
    /// `schemas/core/`: what the core endpoint sends.
    Core,
    /// `schemas/ai/`: what the AI endpoint sends.
    Ai,
    /// `schemas/client/`: what clients send to either endpoint; in a catalog read from an
    /// AsyncAPI document, the messages of the channel's `receive` operations.
    Client,
    /// In a catalog read from an AsyncAPI document: the messages the channel's server sends
    /// (its `send` operations and its replies). Not a folder.
    Server,
}

impl MessageSet {
    /// The sets that are folders of the schema tree.
    pub const FOLDERS: [MessageSet; 3] = [MessageSet::Core, MessageSet::Ai, MessageSet::Client];

    pub fn of(profile: Profile, direction: Direction) -> MessageSet {
        match (direction, profile) {
            (Direction::Client, _) => MessageSet::Client,
            (Direction::Server, Profile::Core) => MessageSet::Core,
            (Direction::Server, Profile::Ai) => MessageSet::Ai,
        }
    }

    /// The folder below `schemas/`.
    pub fn dir(self) -> &'static str {
        match self {
            MessageSet::Core => "core",
            MessageSet::Ai => "ai",
            MessageSet::Client => "client",
            MessageSet::Server => "server",
        }
    }
}

impl fmt::Display for MessageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}
