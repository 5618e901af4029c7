//! `wsprobe replay`: a fuzz bundle's frames sent again, its invariant judged again; or the
//! bundle as a scenario case, so a finding becomes a regression case.

use std::time::Duration;

use crate::cli::ReplayArgs;
use crate::exit;
use crate::fuzz::exec::{Bystander, Invariant};
use crate::fuzz::frame::{Frame, Payload};
use crate::fuzz::{breaks, Bundle};
use crate::load::operation::Operation;
use crate::profile::Profile;
use crate::schema::Catalog;

pub fn run(catalog: Catalog, args: &ReplayArgs) -> anyhow::Result<u8> {
    let bundle = Bundle::read(&args.bundle).map_err(anyhow::Error::msg)?;
    let frames = bundle.frames().map_err(anyhow::Error::msg)?;
    let profile = match (&args.document.asyncapi, args.profile) {
        (Some(_), _) => super::document_spec(&args.document)?,
        (None, Some(profile)) => super::profile_spec(catalog, profile, &args.document)?,
        (None, None) => {
            let shipped = <Profile as clap::ValueEnum>::from_str(&bundle.profile, false).map_err(|_| {
                anyhow::anyhow!(
                    "{} was found on {}, which is not a shipped profile: pass the document it came from with --asyncapi FILE (and --channel ID)",
                    args.bundle.display(),
                    bundle.profile
                )
            })?;
            super::profile_spec(catalog, shipped, &args.document)?
        }
    };
    if args.scenario {
        let probe = Operation::probe(&profile).map_err(anyhow::Error::msg)?;
        print!("{}", scenario(&bundle, &frames, args.probe_timeout, &probe).map_err(anyhow::Error::msg)?);
        return Ok(exit::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (server, target) = super::fuzz::target(
        &runtime,
        args.url.as_deref(),
        &args.document,
        profile,
        &args.connection,
        args.probe_timeout,
        None,
    )?;
    let catalog = target.profile.catalog.clone();
    let url = target.url.clone();
    let invariant = bundle.invariant();
    let observed = runtime.block_on(async {
        let mut bystander = Bystander::new();
        if invariant == Invariant::Bystander {
            // The bystander is connected and answered before the input, as in the campaign.
            let _ = bystander.check(&target, &catalog).await;
        }
        let observed = breaks(&target, &catalog, &mut bystander, &frames, invariant).await;
        bystander.close().await;
        observed
    });
    drop(server);
    println!("replay {} against {url}", args.bundle.display());
    for (n, frame) in frames.iter().enumerate() {
        println!("  sent {}: {}", n + 1, frame.describe());
    }
    println!("  expected: {}", bundle.expected);
    Ok(match observed {
        Some(observed) => {
            println!("  STILL BROKEN {}: {observed}", invariant.id());
            exit::FAILURES
        }
        None => {
            println!("  held: {} (the bundle had: {})", invariant.id(), bundle.observed);
            exit::SUCCESS
        }
    })
}

/// The bundle as a scenario case: its frames; then every reply must validate and the probe
/// request (a Ping) must get its reply (a Pong) in time, or, for a close code, the Close must
/// carry an allowed one.
fn scenario(bundle: &Bundle, frames: &[Frame], probe: Duration, request: &Operation) -> Result<String, String> {
    let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
    let mut steps = vec!["      - connect:".to_string()];
    for frame in frames {
        if !frame.delay.is_zero() {
            steps.push(format!("      - sleep: {}ms", frame.delay.as_millis()));
        }
        match &frame.payload {
            Payload::Text(text) => steps.push(format!("      - send:\n          text: {}", quote(text))),
            Payload::Object(members) => steps.push(format!(
                "      - send:\n          text: {}",
                quote(&crate::fuzz::frame::render_object(members))
            )),
            Payload::Binary(bytes) => {
                steps.push(format!("      - send:\n          binary_hex: \"{}\"", crate::fuzz::frame::hex(bytes)));
            }
            other => {
                return Err(format!(
                    "this bundle sends {}, which a scenario file cannot express (its sends are whole text or binary messages); keep it as a bundle and run `wsprobe replay` in CI",
                    Frame { payload: other.clone(), delay: Duration::ZERO }.describe()
                ))
            }
        }
    }
    let probe = probe.as_millis();
    if bundle.invariant() == Invariant::CloseCode {
        // The input ends the connection; what matters is the code it ends with.
        let codes = crate::fuzz::exec::ALLOWED_CLOSE_CODES.map(|c| c.to_string()).join(", ");
        steps.push(format!("      - expect_close:\n          timeout: {probe}ms\n          codes: [{codes}]"));
    } else {
        // Every reply to the input validates, then the probe request still gets its reply.
        let text = request.request_text(1, 1_697_234_567_000);
        let reply = request.replies.first().map(String::as_str).unwrap_or_default();
        steps.push("      - observe:\n          for: 300ms".into());
        steps.push(format!("      - send:\n          json: {text}"));
        steps.push(format!("      - expect:\n          type: {}\n          timeout: {probe}ms", quote(reply)));
    }
    Ok(format!(
        "  # From wsprobe fuzz (seed {}, case {}): {}\n  - id: regression.{}.case{}\n    level: must\n    description: {}\n    steps:\n{}\n",
        bundle.seed,
        bundle.case,
        bundle.observed,
        bundle.invariant,
        bundle.case,
        quote(&format!("fuzz finding: {} ({})", bundle.invariant, bundle.expected)),
        steps.join("\n")
    ))
}
