//! Checking clients (`wsprobe serve`): the reference server plays the endpoint, client faults
//! provoke reconnects and timeouts, and the spec's client rules are judged per client.
//!
//! Flow: faults (what the server does to clients) → the reference server, whose events feed
//! the log (what each client did) → rules (verdicts per client; evidence words their SKIPs) →
//! the run reporters.

pub mod evidence;
pub mod faults;
pub mod log;
pub mod rules;
pub mod timing;
