//! wsprobe: conformance harness and load generator for the Bot Core WebSocket protocol.

pub mod byte_search;
pub mod capacity;
pub mod capture;
pub mod cli;
pub mod clients;
pub mod commands;
pub mod exit;
pub mod fuzz;
pub mod load;
pub mod network;
pub mod outcome;
pub mod profile;
pub mod profile_hint;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod target;
pub mod tokens;
