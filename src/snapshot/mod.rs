//! Snapshots of what a server says: each scenario file's cases, recorded whole, normalized
//! (placeholders for times and ids, broadcasts left out) and stored in insta's `.snap` format,
//! so `wsprobe snapshot diff` (or `cargo insta review`) shows exactly what changed.

pub mod normalize;
pub mod store;
pub mod textdiff;
