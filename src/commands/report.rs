//! `wsprobe report`: saved results as one HTML page, after the fact (a CI artifact, say).

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cli::ReportArgs;
use crate::exit;
use crate::load::merge::{self, Inputs};
use crate::report::html;

pub fn run(args: &ReportArgs) -> anyhow::Result<u8> {
    // A run's JSON report is rendered on its own; anything else is load results.
    let mut run_reports = Vec::new();
    for path in &args.files {
        let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(document) = serde_json::from_slice::<Value>(&text) {
            if document.get("cases").is_some() {
                run_reports.push((path, document));
            }
        }
    }
    let page = match run_reports.as_slice() {
        [] => {
            let inputs = Inputs::read(&args.files)?;
            let shards = inputs.shard_series();
            let merged = merge::merge(inputs)?;
            let log = merged.log.as_ref().map(merge::MergedLog::as_interval_log);
            // One log is the run itself; several are shards, each drawn beside the whole.
            let shards = if shards.len() > 1 { shards } else { Vec::new() };
            html::load_page(&merged.summary, log.as_ref(), &shards)
        }
        [(path, document)] if args.files.len() == 1 => html::run_page_from_json(document)
            .with_context(|| format!("{} is not a wsprobe run report", path.display()))?,
        _ => bail!(
            "a run's JSON report is rendered on its own: give one run report, or load summaries and interval logs"
        ),
    };
    std::fs::write(&args.html, page).with_context(|| format!("cannot write --html {}", args.html.display()))?;
    println!("wrote {}", args.html.display());
    Ok(exit::SUCCESS)
}
