//! Output sinks. Each writes to any `io::Write`, so every format is tested on bytes.

pub mod run;
pub mod validation;
