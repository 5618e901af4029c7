//! Output sinks. Each writes to any `io::Write`, so every format is tested on bytes.

pub mod html;
pub mod run;
pub mod validation;
