//! Schema-driven fuzzing: inputs generated from the client schemas (generate) are sent as
//! frames (frame) to the target, each on a fresh connection, and judged on invariants that any
//! server must keep whatever it is sent (exec). A failing input is shrunk to its smallest form
//! that still breaks the same invariant (shrink), deduplicated by invariant and shape, and
//! written as a bundle that `wsprobe replay` sends again.
//!
//! Flow: seed → generator → cases → target (+ bystander) → broken invariants → shrink →
//! findings → bundles and reporters.

pub mod exec;
pub mod frame;
pub mod generate;
pub mod report;
pub mod shrink;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use exec::{Broken, Bystander, Invariant, Target};
use frame::{BundleFrame, Frame};
use generate::Generator;

use crate::schema::Catalog;

/// How long a campaign runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Cases(u64),
    Time(Duration),
}

#[derive(Debug, Clone)]
pub struct FuzzPlan {
    pub target: Target,
    pub seed: u64,
    pub budget: Budget,
    pub out: PathBuf,
    /// Larger than the server's message limit, for the oversize input.
    pub oversize: usize,
    /// Shrink attempts per finding.
    pub shrink_attempts: usize,
    /// The target is the bundled reference server.
    pub bundled_server: bool,
    /// At most this many cases (each a fresh connection) a second.
    pub rate: Option<f64>,
    /// The flags that name the profile again for `replay` (`--asyncapi FILE --channel ID`),
    /// empty for a shipped one, which the bundle names itself.
    pub profile_flags: String,
}

/// A bundle: one finding, enough to send it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub invariant: String,
    /// The profile's name: `core`, `ai`, or an AsyncAPI document's channel (`feed.yaml#public`).
    pub profile: String,
    pub seed: u64,
    /// The case of the seed that first broke the invariant.
    pub case: u64,
    pub sent: Vec<BundleFrame>,
    pub expected: String,
    pub observed: String,
    pub wsprobe_version: String,
}

impl Bundle {
    pub fn read(path: &Path) -> Result<Bundle, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let bundle: Bundle = serde_json::from_str(&text).map_err(|e| {
            format!("{} is not a wsprobe fuzz bundle: {e} (line {}, column {})", path.display(), e.line(), e.column())
        })?;
        if Invariant::parse(&bundle.invariant).is_none() {
            return Err(format!(
                "{}: unknown invariant {:?}; expected one of {}",
                path.display(),
                bundle.invariant,
                Invariant::ALL.map(Invariant::id).join(", ")
            ));
        }
        bundle.frames().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(bundle)
    }

    pub fn frames(&self) -> Result<Vec<Frame>, String> {
        self.sent.iter().enumerate().map(|(n, f)| Frame::try_from(f).map_err(|e| format!("sent[{n}]: {e}"))).collect()
    }

    pub fn invariant(&self) -> Invariant {
        Invariant::parse(&self.invariant).expect("checked when read")
    }
}

/// One distinct finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub invariant: Invariant,
    /// Where its bundle was written.
    pub bundle: PathBuf,
    /// One line: what broke, on what input.
    pub summary: String,
    #[serde(skip)]
    pub sent: Vec<String>,
    #[serde(skip)]
    pub observed: String,
    #[serde(skip)]
    pub shrunk_from: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FuzzReport {
    pub target: String,
    /// The target was the bundled reference server (its address is gone once the run ends).
    pub bundled_server: bool,
    pub profile: String,
    pub seed: u64,
    pub cases: u64,
    pub duration_s: f64,
    pub findings: Vec<Finding>,
    /// Breakages that did not come back when their input was sent again: not findings.
    pub unconfirmed: u64,
    /// Invariants a connection breaks with no input at all (say, broadcasts that are always
    /// invalid): no input is to blame, so they are not findings; `wsprobe run` judges them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_input: Vec<Invariant>,
    /// Why the campaign stopped before its budget, when it did (the server went down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// See [`FuzzPlan::profile_flags`].
    #[serde(skip)]
    pub profile_flags: String,
}

/// Runs a campaign; `progress` hears of every finding as it is made.
pub async fn run(
    plan: &FuzzPlan,
    catalog: &Catalog,
    mut progress: impl FnMut(&Finding, u64),
) -> std::io::Result<FuzzReport> {
    let generator = Generator::from_catalog(catalog, plan.target.profile.client, plan.oversize);
    let started = Instant::now();
    let mut bystander = Bystander::new();
    let mut findings: Vec<Finding> = Vec::new();
    let keys = generator.known_keys();
    // Every finding's invariant and its shrunk frames' shapes.
    let mut known: Vec<(Invariant, Vec<String>)> = Vec::new();
    let mut stopped = None;
    let mut unconfirmed = 0;
    let mut without_input = std::collections::BTreeSet::new();
    let mut index = 0;
    loop {
        let spent = match plan.budget {
            Budget::Cases(n) => index >= n,
            Budget::Time(limit) => started.elapsed() >= limit,
        };
        if spent {
            break;
        }
        // At most `rate` cases (so connections) a second, for servers behind per-address
        // limits; the schedule is kept from the start, so slow cases are not made up for later.
        if let Some(rate) = plan.rate {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let frames = generator.case(plan.seed, index);
        let mut broken = plan.target.run_case(catalog, &frames).await;
        if bystander.due() {
            broken.extend(bystander.check(&plan.target, catalog).await);
        }
        index += 1;
        for Broken { invariant, observed } in broken {
            // The server is down: no later input can be judged, and nothing can be shrunk.
            if invariant == Invariant::ServerDown {
                let origin = Origin { case: index - 1, frames: frames.len() };
                let finding = record(plan, &keys, origin, &frames, invariant, observed.clone(), &mut known)?;
                if let Some(finding) = finding {
                    progress(&finding, index - 1);
                    findings.push(finding);
                }
                stopped = Some(format!("the server went down after case {}: {observed}", index - 1));
                break;
            }
            // An input holding the shapes of a finding of the same invariant is that finding
            // again: not worth shrinking a second time.
            let shapes: Vec<String> = frames.iter().map(|f| f.shape(&keys)).collect();
            if known.iter().any(|(i, shrunk)| *i == invariant && contains(&shapes, shrunk)) {
                continue;
            }
            if without_input.contains(&invariant) {
                continue;
            }
            // Only what the input causes is a finding: a breakage that does not come back when
            // the same input is sent again (a broadcast that happened to be invalid, a moment
            // of load) is counted, not reported.
            if breaks(&plan.target, catalog, &mut bystander, &frames, invariant).await.is_none() {
                unconfirmed += 1;
                continue;
            }
            // Nor is one that a connection with no input at all shows (broadcasts that are
            // always invalid): that is the conformance suite's to judge, not an input's.
            if breaks(&plan.target, catalog, &mut bystander, &[], invariant).await.is_some() {
                without_input.insert(invariant);
                continue;
            }
            let (shrunk, observed) = shrink(plan, catalog, &mut bystander, frames.clone(), invariant, observed).await;
            let origin = Origin { case: index - 1, frames: frames.len() };
            if let Some(finding) = record(plan, &keys, origin, &shrunk, invariant, observed, &mut known)? {
                progress(&finding, index - 1);
                findings.push(finding);
            }
        }
        if stopped.is_some() {
            break;
        }
    }
    bystander.close().await;
    Ok(FuzzReport {
        target: plan.target.url.clone(),
        bundled_server: plan.bundled_server,
        profile: plan.target.profile.name.clone(),
        seed: plan.seed,
        cases: index,
        duration_s: started.elapsed().as_secs_f64(),
        findings,
        unconfirmed,
        without_input: without_input.into_iter().collect(),
        stopped,
        profile_flags: plan.profile_flags.clone(),
    })
}

/// True when `inner` appears in `outer` in order.
fn contains(outer: &[String], inner: &[String]) -> bool {
    let mut rest = outer.iter();
    inner.iter().all(|shape| rest.any(|candidate| candidate == shape))
}

/// Whether `frames` break `invariant` now (the bystander checked too, for its invariant).
pub async fn breaks(
    target: &Target,
    catalog: &Catalog,
    bystander: &mut Bystander,
    frames: &[Frame],
    invariant: Invariant,
) -> Option<String> {
    let mut broken = target.run_case(catalog, frames).await;
    if invariant == Invariant::Bystander {
        broken.extend(bystander.check(target, catalog).await);
    }
    broken.into_iter().find(|b| b.invariant == invariant).map(|b| b.observed)
}

async fn shrink(
    plan: &FuzzPlan,
    catalog: &Catalog,
    bystander: &mut Bystander,
    mut best: Vec<Frame>,
    invariant: Invariant,
    mut observed: String,
) -> (Vec<Frame>, String) {
    let mut attempts = 0;
    'shrinking: loop {
        for candidate in shrink::candidates(&best) {
            if attempts >= plan.shrink_attempts {
                break 'shrinking;
            }
            attempts += 1;
            if let Some(seen) = breaks(&plan.target, catalog, bystander, &candidate, invariant).await {
                best = candidate;
                observed = seen;
                continue 'shrinking;
            }
        }
        break;
    }
    (best, observed)
}

/// Writes the bundle of a new finding; `None` when an earlier one had the same invariant and
/// shape.
/// Where a finding came from: the seed's case, and its frames before shrinking.
#[derive(Debug, Clone, Copy)]
struct Origin {
    case: u64,
    frames: usize,
}

fn record(
    plan: &FuzzPlan,
    keys: &std::collections::BTreeSet<String>,
    origin: Origin,
    shrunk: &[Frame],
    invariant: Invariant,
    observed: String,
    known: &mut Vec<(Invariant, Vec<String>)>,
) -> std::io::Result<Option<Finding>> {
    let shapes: Vec<String> = shrunk.iter().map(|f| f.shape(keys)).collect();
    if known.iter().any(|(i, s)| *i == invariant && *s == shapes) {
        return Ok(None);
    }
    known.push((invariant, shapes.clone()));
    let shape = shapes.join(" ; ");
    let bundle = Bundle {
        invariant: invariant.id().to_string(),
        profile: plan.target.profile.name.clone(),
        seed: plan.seed,
        case: origin.case,
        sent: shrunk.iter().map(BundleFrame::from).collect(),
        expected: invariant.expected(&plan.target),
        observed: observed.clone(),
        wsprobe_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    std::fs::create_dir_all(&plan.out)?;
    let path = plan.out.join(format!("{}-{:08x}.json", invariant.id(), fnv1a(&shape) as u32));
    std::fs::write(&path, serde_json::to_string_pretty(&bundle).expect("a bundle serializes") + "\n")?;
    let sent: Vec<String> = shrunk.iter().map(Frame::describe).collect();
    Ok(Some(Finding {
        invariant,
        summary: format!("{}: {observed}, after {}", invariant.id(), sent.join(", then ")),
        bundle: path,
        sent,
        observed,
        shrunk_from: origin.frames,
    }))
}

/// A stable 64-bit hash for bundle names (the same shape, the same file).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
