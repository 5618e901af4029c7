//! Exit codes are an interface: CI pipelines branch on them, so they never change meaning.

/// Everything checked out.
pub const SUCCESS: u8 = 0;
/// The run completed and found a failure: an invalid message, a failed case or assertion.
pub const FAILURES: u8 = 1;
/// The invocation or an input file is wrong: nothing meaningful was checked.
pub const USAGE: u8 = 2;
/// The target could not be reached at all.
pub const UNREACHABLE: u8 = 3;
