//! Client faults as the user writes them: inline specs (`--fault drop-every=5s`) and plan files
//! (`--faults FILE`, a timeline of the same specs, schema `schemas/faults.schema.json`).
//! Every duration here is a spec-scale duration: `--time-scale` multiplies them all.

use std::path::Path;
use std::time::Duration;

use reference_server::{ClientFault, FaultPlan, ScheduledFault};
use serde::Deserialize;

use crate::scenario::parse_duration;

/// The largest plan file read: a timeline of faults is a few lines.
const MAX_PLAN_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error("fault {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    #[error("cannot read the fault plan {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("fault plan {path}: {reason}")]
    Plan { path: String, reason: String },
}

const KINDS: &str = "drop-every=T, close-every=T[:CODE], refuse-for=T, no-pong, stall-after=T, down-for=T@AT";

fn duration(spec: &str, text: &str) -> Result<Duration, FaultError> {
    let bad = |reason: String| FaultError::Spec { spec: spec.to_string(), reason };
    let value = parse_duration(text).map_err(bad)?;
    if value.is_zero() {
        return Err(FaultError::Spec { spec: spec.to_string(), reason: format!("{text:?} must be longer than zero") });
    }
    Ok(value)
}

/// One fault spec. `down-for` carries its start (`@AT`) inline, or takes it from the plan's `at:`.
pub fn parse_spec(spec: &str) -> Result<(ClientFault, Option<Duration>), FaultError> {
    let bad = |reason: &str| FaultError::Spec { spec: spec.to_string(), reason: reason.to_string() };
    let (name, value) = match spec.trim().split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (spec.trim(), None),
    };
    let needs_value = || value.ok_or_else(|| bad(&format!("{name} needs a duration, like {name}=5s")));
    let fault = match name {
        "drop-every" => ClientFault::DropEvery(duration(spec, needs_value()?)?),
        "close-every" => {
            let value = needs_value()?;
            let (after, code) = match value.split_once(':') {
                Some((after, code)) => {
                    let code: u16 =
                        code.trim().parse().map_err(|_| bad("the close code must be a number, like :4000"))?;
                    // Codes a server may send (RFC 6455 7.4): 1000-1003, 1007-1014, or 3000-4999.
                    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                        return Err(bad(&format!(
                            "{code} is not a close code a server may send; use 1000-1003, 1007-1014 or 3000-4999"
                        )));
                    }
                    (after, code)
                }
                None => (value, 1000),
            };
            ClientFault::CloseEvery(duration(spec, after)?, code)
        }
        "refuse-for" => ClientFault::RefuseFor(duration(spec, needs_value()?)?),
        "no-pong" => {
            if value.is_some() {
                return Err(bad("no-pong takes no value"));
            }
            ClientFault::NoPong
        }
        "stall-after" => ClientFault::StallAfter(duration(spec, needs_value()?)?),
        "down-for" => {
            let value = needs_value()?;
            return match value.split_once('@') {
                Some((length, at)) => Ok((ClientFault::DownFor(duration(spec, length)?), Some(parse_at(spec, at)?))),
                None => Ok((ClientFault::DownFor(duration(spec, value)?), None)),
            };
        }
        _ => return Err(bad(&format!("unknown fault; the faults are {KINDS}"))),
    };
    Ok((fault, None))
}

fn parse_at(spec: &str, text: &str) -> Result<Duration, FaultError> {
    parse_duration(text).map_err(|reason| FaultError::Spec { spec: spec.to_string(), reason })
}

/// Inline `--fault` specs: each applies for the whole run; `down-for` needs its `@AT`.
pub fn from_specs(specs: &[String]) -> Result<Vec<ScheduledFault>, FaultError> {
    specs
        .iter()
        .map(|spec| {
            let (fault, at) = parse_spec(spec)?;
            match (fault, at) {
                (ClientFault::DownFor(_), None) => Err(FaultError::Spec {
                    spec: spec.clone(),
                    reason: "down-for needs its start, like down-for=30s@1m".into(),
                }),
                (fault, at) => Ok(ScheduledFault { fault, from: at.unwrap_or_default(), until: None }),
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    faults: Vec<PlanEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    fault: String,
    #[serde(default, deserialize_with = "crate::scenario::duration::deserialize_option")]
    at: Option<Duration>,
    #[serde(default, rename = "for", deserialize_with = "crate::scenario::duration::deserialize_option")]
    length: Option<Duration>,
}

/// A plan file: `faults:` is a list of `{fault: SPEC, at: T, for: T}`; `at` defaults to the
/// start and `for` to the rest of the run.
pub fn from_plan_text(path: &str, text: &str) -> Result<Vec<ScheduledFault>, FaultError> {
    let plan_error = |reason: String| FaultError::Plan { path: path.to_string(), reason };
    let plan: PlanFile = serde_norway::from_str(text).map_err(|e| {
        plan_error(format!("{e}; write it like `faults: [{{fault: drop-every=5s, at: 10s, for: 1m}}]`"))
    })?;
    if plan.faults.is_empty() {
        return Err(plan_error("`faults` is empty: list at least one fault".into()));
    }
    plan.faults
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let (fault, inline_at) =
                parse_spec(&entry.fault).map_err(|e| plan_error(format!("faults[{index}]: {e}")))?;
            let from = match (inline_at, entry.at) {
                (Some(_), Some(_)) => {
                    return Err(plan_error(format!(
                        "faults[{index}]: the start is given twice (`@` in the fault and `at:`); keep one"
                    )))
                }
                (Some(at), None) | (None, Some(at)) => at,
                (None, None) => Duration::ZERO,
            };
            if matches!(fault, ClientFault::DownFor(_)) && entry.length.is_some() {
                return Err(plan_error(format!("faults[{index}]: down-for=T already says how long; drop `for:`")));
            }
            Ok(ScheduledFault { fault, from, until: entry.length.map(|length| from + length) })
        })
        .collect()
}

pub fn from_plan_file(path: &Path) -> Result<Vec<ScheduledFault>, FaultError> {
    let shown = path.display().to_string();
    let read_error = |reason: String| FaultError::Read { path: shown.clone(), reason };
    let size = std::fs::metadata(path).map_err(|e| read_error(e.to_string()))?.len();
    if size > MAX_PLAN_BYTES {
        return Err(read_error(format!("{size} bytes is more than a fault plan needs (at most {MAX_PLAN_BYTES})")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
    from_plan_text(&shown, &text)
}

/// Multiplies every duration of the plan by the time scale (the rules are scaled alike).
pub fn scaled(entries: Vec<ScheduledFault>, scale: f64) -> FaultPlan {
    let s = |d: Duration| d.mul_f64(scale);
    let entries = entries
        .into_iter()
        .map(|entry| ScheduledFault {
            fault: match entry.fault {
                ClientFault::DropEvery(d) => ClientFault::DropEvery(s(d)),
                ClientFault::CloseEvery(d, code) => ClientFault::CloseEvery(s(d), code),
                ClientFault::RefuseFor(d) => ClientFault::RefuseFor(s(d)),
                ClientFault::NoPong => ClientFault::NoPong,
                ClientFault::StallAfter(d) => ClientFault::StallAfter(s(d)),
                ClientFault::DownFor(d) => ClientFault::DownFor(s(d)),
            },
            from: s(entry.from),
            until: entry.until.map(s),
        })
        .collect();
    FaultPlan { entries }
}

/// A duration as a user writes it: `500ms`, `5s`, `1.5s`, `2m`.
fn compact(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 60_000 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The fault as the user wrote it, for reports.
pub fn describe(entry: &ScheduledFault) -> String {
    let secs = compact;
    let fault = match entry.fault {
        ClientFault::DropEvery(d) => format!("drop-every={}", secs(d)),
        ClientFault::CloseEvery(d, code) => format!("close-every={}:{code}", secs(d)),
        ClientFault::RefuseFor(d) => format!("refuse-for={}", secs(d)),
        ClientFault::NoPong => "no-pong".to_string(),
        ClientFault::StallAfter(d) => format!("stall-after={}", secs(d)),
        ClientFault::DownFor(d) => return format!("down-for={}@{}", secs(d), secs(entry.from)),
    };
    match (entry.from.is_zero(), entry.until) {
        (true, None) => fault,
        (_, None) => format!("{fault} from {}", secs(entry.from)),
        (_, Some(until)) => format!("{fault} from {} to {}", secs(entry.from), secs(until)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn inline_specs_parse_with_their_defaults() {
        let parsed = from_specs(&[
            "drop-every=5s".into(),
            "close-every=2s:4000".into(),
            "close-every=2s".into(),
            "refuse-for=1m".into(),
            "no-pong".into(),
            "stall-after=500ms".into(),
            "down-for=30s@1m".into(),
        ])
        .unwrap();
        let faults: Vec<ClientFault> = parsed.iter().map(|e| e.fault).collect();
        assert_eq!(
            faults,
            [
                ClientFault::DropEvery(MS(5000)),
                ClientFault::CloseEvery(MS(2000), 4000),
                ClientFault::CloseEvery(MS(2000), 1000),
                ClientFault::RefuseFor(MS(60_000)),
                ClientFault::NoPong,
                ClientFault::StallAfter(MS(500)),
                ClientFault::DownFor(MS(30_000)),
            ]
        );
        assert_eq!(parsed[6].from, MS(60_000));
        let described: Vec<String> = parsed.iter().map(describe).collect();
        assert_eq!(
            described,
            [
                "drop-every=5s",
                "close-every=2s:4000",
                "close-every=2s:1000",
                "refuse-for=1m",
                "no-pong",
                "stall-after=500ms",
                "down-for=30s@1m"
            ]
        );
        assert!(parsed.iter().all(|e| e.until.is_none()));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let error = |spec: &str| from_specs(&[spec.to_string()]).unwrap_err().to_string();
        assert!(error("drop-everyy=5s").contains("unknown fault; the faults are drop-every=T"));
        assert!(error("drop-every").contains("needs a duration, like drop-every=5s"));
        assert!(error("drop-every=0s").contains("longer than zero"));
        assert!(error("close-every=1s:1005").contains("not a close code a server may send"));
        assert!(error("down-for=30s").contains("down-for needs its start, like down-for=30s@1m"));
        assert!(error("no-pong=1").contains("takes no value"));
        assert!(error("stall-after=soon").contains("write it like 500ms"));
    }

    #[test]
    fn a_plan_is_a_timeline_and_scales_whole() {
        let text = "faults:\n  - fault: drop-every=5s\n    for: 1m\n  - {fault: no-pong, at: 1m, for: 30s}\n  - {fault: down-for=20s, at: 2m}\n";
        let entries = from_plan_text("plan.yaml", text).unwrap();
        assert_eq!(
            entries[0],
            ScheduledFault { fault: ClientFault::DropEvery(MS(5000)), from: MS(0), until: Some(MS(60_000)) }
        );
        assert_eq!(entries[1].from, MS(60_000));
        assert_eq!(entries[1].until, Some(MS(90_000)));
        assert_eq!(
            entries[2],
            ScheduledFault { fault: ClientFault::DownFor(MS(20_000)), from: MS(120_000), until: None }
        );
        let plan = scaled(entries, 0.1);
        assert_eq!(plan.entries[0].fault, ClientFault::DropEvery(MS(500)));
        assert_eq!(plan.entries[1].until, Some(MS(9000)));
        assert_eq!(plan.entries[2].from, MS(12_000));
    }

    #[test]
    fn bad_plans_name_the_entry() {
        let error = |text: &str| from_plan_text("p.yaml", text).unwrap_err().to_string();
        assert!(error("faults: []").contains("`faults` is empty"));
        assert!(error("faults:\n  - {fault: nope}").contains("faults[0]: fault \"nope\": unknown fault"));
        assert!(error("faults:\n  - {fault: down-for=1s@2s, at: 3s}").contains("given twice"));
        assert!(error("faults:\n  - {fault: no-pong, when: 3s}").contains("unknown field"));
        assert!(error("faults:\n  - {fault: down-for=1s, at: 3s, for: 2s}").contains("drop `for:`"));
    }
}
