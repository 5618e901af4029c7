//! Capacity search: the highest load at which a server still conforms. Steps are load runs
//! (plan → workers → recorder), each judged on the protocol's rules and the user's SLOs over
//! its measured window; a geometric ramp finds the first step that breaks, then bisection
//! narrows the gap between the last good and the first bad level to the resolution.
//!
//! What is ramped depends on the mode. Ping mode ramps the Ping rate over fixed connections.
//! Push mode ramps the number of connections the server pushes to (its fan-out), since the
//! push cadence is the server's own: a step breaks when a connection's cadence collapses
//! below a share of what each connection got at the first step.
//!
//! A step is `passed`, `broken` (the server broke an SLO or a rule) or `invalid` (the
//! generator, not the server, was the limit). An invalid step ends the search: the last good
//! rate is then a lower bound, and the report says the generator was the limit.

pub mod report;

use std::time::Duration;

use serde::Serialize;

use crate::load::assertion::Assertion;
use crate::load::interval_log::{Interval, IntervalLog};
use crate::load::plan::LoadPlan;
use crate::load::summary::{LoadSummary, Stats};
use crate::load::{self, LoadError, Outputs};

/// What to search and how.
#[derive(Debug, Clone)]
pub struct CapacityPlan {
    /// Every step's load; its `rate` (ping) or `connections` (push) and `duration` are set per step.
    pub load: LoadPlan,
    /// The first step's level: messages per second (ping) or connections (push).
    pub start: f64,
    /// No step goes above this level.
    pub max: f64,
    /// The measured part of each step.
    pub step: Duration,
    /// Run before each step's measured part, and not measured (whole seconds).
    pub warmup: Duration,
    /// Bisection stops when the gap is at most this share of the last good rate.
    pub resolution: f64,
    pub slos: Vec<Assertion>,
    /// Sends that may wait for a free in-flight slot before a step counts as saturated.
    pub max_window_held: f64,
    /// How far below the intended rate the achieved one may fall.
    pub rate_tolerance: f64,
    /// Push mode: the share of the first step's per-connection cadence below which a step's
    /// cadence has collapsed.
    pub cadence_floor: f64,
    pub threads: usize,
}

/// What a step's level counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Searched {
    /// Messages per second in total (ping mode).
    Rate,
    /// Connections the server pushes to (push mode).
    Connections,
}

impl Searched {
    pub fn of(mode: crate::load::plan::Mode) -> Searched {
        match mode {
            crate::load::plan::Mode::Push => Searched::Connections,
            _ => Searched::Rate,
        }
    }

    /// The flags that set the first and the highest level, for messages.
    pub fn flags(self) -> (&'static str, &'static str) {
        match self {
            Searched::Rate => ("--start-rate", "--max-rate"),
            Searched::Connections => ("--start-connections", "--max-connections"),
        }
    }

    /// What a level is called in a sentence.
    pub fn noun(self) -> &'static str {
        match self {
            Searched::Rate => "rate",
            Searched::Connections => "connection count",
        }
    }
}

/// Ramp factor between steps before anything breaks.
const RAMP: f64 = 2.0;
/// Time a step may take beyond its warm-up and measured part: connects and the wind-down.
const STEP_OVERHEAD: Duration = Duration::from_secs(2);

impl CapacityPlan {
    pub fn searched(&self) -> Searched {
        Searched::of(self.load.mode)
    }

    pub fn check(&self) -> Result<(), String> {
        let (start, max) = self.searched().flags();
        if !(self.start >= 1.0 && self.start.is_finite()) {
            return Err(format!("{start} must be at least 1"));
        }
        if !(self.max >= self.start && self.max.is_finite()) {
            return Err(format!("{max} ({}) must be at least {start} ({})", self.max, self.start));
        }
        if !(0.001..=0.5).contains(&self.resolution) {
            return Err("--resolution must be between 0.1% and 50%".into());
        }
        if !(0.01..=0.99).contains(&self.cadence_floor) {
            return Err("--cadence-floor must be between 1% and 99%".into());
        }
        if self.step < Duration::from_secs(1) {
            return Err("--step-duration must be at least 1s (latency is read in 1 s intervals)".into());
        }
        if self.warmup.subsec_nanos() != 0 {
            return Err("--warmup must be whole seconds (latency is read in 1 s intervals), e.g. 1s".into());
        }
        self.at_level(self.max).check()
    }

    /// Every step's load plan at `level`.
    fn at_level(&self, level: f64) -> LoadPlan {
        let mut plan = self.load.clone();
        match self.searched() {
            Searched::Rate => plan.rate = Some(level),
            Searched::Connections => {
                plan.connections = level as usize;
                plan.rate = None;
            }
        }
        plan.duration = self.warmup + self.step;
        plan.ramp_up = Duration::ZERO;
        plan
    }

    /// The most steps the search can take: the ramp's, then the bisection's.
    pub fn max_steps(&self) -> usize {
        let ramp = (self.max / self.start).log(RAMP).ceil().max(0.0) as usize + 1;
        let bisection = (1.0 / self.resolution).log2().ceil() as usize;
        ramp + bisection
    }

    /// An upper bound on the whole search's time.
    pub fn max_time(&self) -> Duration {
        (self.warmup + self.step + STEP_OVERHEAD) * self.max_steps() as u32
    }
}

/// What ended the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// A step broke: the server's limit lies between the capacity and the first broken rate.
    Server,
    /// The generator ran out before the server did: the capacity is a lower bound.
    Generator,
    /// Every step up to `--max-rate` passed: the capacity is at least that.
    MaxRate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepVerdict {
    Passed,
    /// The server broke an SLO or a rule.
    Broken,
    /// The generator was the limit: nothing is known about the server at this rate.
    Invalid,
}

/// One thing that broke at a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakage {
    /// `slo` or `rule`.
    pub kind: &'static str,
    pub name: String,
    pub detail: String,
}

impl std::fmt::Display for Breakage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.kind, self.name, self.detail)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The step's connections: fixed in ping mode, the searched level in push mode.
    pub connections: usize,
    /// Ping: the scheduled rate. Push: the connections times the first step's cadence.
    pub intended_per_s: f64,
    pub achieved_per_s: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub verdict: StepVerdict,
    pub broken: Vec<Breakage>,
    /// Why the step is invalid (the generator's limits), when it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_cpu: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    pub target: String,
    pub mode: &'static str,
    /// What the search ramped: `rate` (ping) or `connections` (push).
    pub searched: Searched,
    /// Ping mode's fixed connections; push mode's first step's.
    pub connections: usize,
    pub in_flight: usize,
    pub step_s: f64,
    pub warmup_s: f64,
    pub resolution: f64,
    pub slos: Vec<String>,
    /// The highest passing rate (ping), or the pushes a second delivered at the highest
    /// passing connection count (push); `None` when even the start did not pass.
    pub capacity_per_s: Option<f64>,
    /// Push mode: the highest passing connection count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_connections: Option<usize>,
    /// Push mode: pushes a second each connection got at the first step, the cadence later
    /// steps are held to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cadence_per_connection: Option<f64>,
    /// Push mode: the share of that cadence below which a step broke.
    #[serde(skip)]
    pub cadence_floor: f64,
    pub bound: Bound,
    /// What broke just above the capacity (the lowest broken rate's breakages).
    pub broken: Vec<Breakage>,
    pub steps: Vec<Step>,
    /// `"unverified"` under `--insecure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'static str>,
    /// Every step's main-latency intervals, tagged `stepN-RATE`, from the search's start.
    #[serde(skip)]
    pub intervals: Vec<Interval>,
    #[serde(skip)]
    pub started: Option<std::time::SystemTime>,
}

impl CapacityReport {
    /// The steps' intervals as an HdrHistogram interval log, one tag per step.
    pub fn hlog(&self) -> std::io::Result<Vec<u8>> {
        crate::load::merge::MergedLog {
            start: self.started.unwrap_or(std::time::UNIX_EPOCH),
            comment: format!(
                "wsprobe capacity {} against {}; one tag per step; values in microseconds",
                self.mode, self.target
            ),
            intervals: self.intervals.clone(),
        }
        .to_bytes()
    }
}

/// Told as the search goes, for live progress.
pub enum Progress<'a> {
    /// `level` is a rate (ping) or a number of connections (push).
    Starting {
        number: usize,
        level: f64,
    },
    Finished {
        number: usize,
        step: &'a Step,
    },
}

/// Runs the search.
pub fn search(plan: &CapacityPlan, mut progress: impl FnMut(Progress<'_>)) -> Result<CapacityReport, LoadError> {
    let mut steps: Vec<Step> = Vec::new();
    let mut last_good: Option<(f64, usize)> = None;
    let mut first_bad: Option<(f64, Vec<Breakage>)> = None;
    let mut level = plan.start;
    let mut cadence: Option<f64> = None;
    let (started, wall_start) = (std::time::Instant::now(), std::time::SystemTime::now());
    let mut intervals = Vec::new();
    // The metric every step's load run itself calls its main latency.
    let main = load::main_metric(&plan.at_level(plan.start));
    // Each step is measured once: a level is never run twice.
    let bound = loop {
        progress(Progress::Starting { number: steps.len() + 1, level });
        let offset = started.elapsed();
        let (step, log) = run_step(plan, level, cadence)?;
        let tag = format!("step{}-{level:.0}", steps.len() + 1);
        for interval in log.into_iter().flat_map(|log| log.intervals) {
            if interval.tag.as_deref() == Some(main.name()) {
                intervals.push(Interval { tag: Some(tag.clone()), start: offset + interval.start, ..interval });
            }
        }
        progress(Progress::Finished { number: steps.len() + 1, step: &step });
        let verdict = step.verdict;
        let broken = step.broken.clone();
        // The first step that measured pushes sets the cadence later steps are held to.
        if plan.searched() == Searched::Connections && cadence.is_none() && step.achieved_per_s > 0.0 {
            cadence = Some(step.achieved_per_s / step.connections as f64);
        }
        let index = steps.len();
        steps.push(step);
        match verdict {
            StepVerdict::Invalid => break Bound::Generator,
            StepVerdict::Passed => last_good = Some((level, index)),
            StepVerdict::Broken => first_bad = Some((level, broken)),
        }
        match next_level(plan, last_good.map(|(good, _)| good), first_bad.as_ref().map(|(bad, _)| *bad)) {
            Next::Run(next) => level = next,
            Next::Stop(why) => break why,
        }
    };
    let broken = match (bound, &first_bad) {
        (Bound::Server, Some((_, broken))) => broken.clone(),
        _ => Vec::new(),
    };
    let capacity = last_good.map(|(_, index)| &steps[index]);
    let push = plan.searched() == Searched::Connections;
    Ok(CapacityReport {
        target: plan.load.url.clone(),
        mode: plan.load.mode.name(),
        searched: plan.searched(),
        connections: steps.first().map_or(plan.load.connections, |s| s.connections),
        in_flight: plan.load.in_flight,
        step_s: plan.step.as_secs_f64(),
        warmup_s: plan.warmup.as_secs_f64(),
        resolution: plan.resolution,
        slos: plan.slos.iter().map(|slo| slo.text().to_string()).collect(),
        capacity_per_s: capacity.map(|step| if push { step.achieved_per_s } else { step.intended_per_s }),
        capacity_connections: capacity.filter(|_| push).map(|step| step.connections),
        cadence_per_connection: cadence.filter(|_| push),
        cadence_floor: plan.cadence_floor,
        bound,
        broken,
        steps,
        tls: plan.load.network.tls_unverified().then_some(crate::report::run::UNVERIFIED),
        intervals,
        started: Some(wall_start),
    })
}

enum Next {
    Run(f64),
    Stop(Bound),
}

/// The level after a step: up the ramp while nothing broke, then the midpoint of the last
/// good and the first broken level, until the gap is within the resolution.
fn next_level(plan: &CapacityPlan, last_good: Option<f64>, first_bad: Option<f64>) -> Next {
    match (last_good, first_bad) {
        (None, _) => Next::Stop(Bound::Server),
        (Some(good), None) if good >= plan.max => Next::Stop(Bound::MaxRate),
        (Some(good), None) => Next::Run((good * RAMP).min(plan.max)),
        (Some(good), Some(bad)) => {
            // Whole messages a second or connections: a midpoint that rounds onto either end has been run.
            let middle = ((good + bad) / 2.0).round();
            if bad - good <= plan.resolution * good || middle <= good || middle >= bad {
                Next::Stop(Bound::Server)
            } else {
                Next::Run(middle)
            }
        }
    }
}

/// One load run at `level`, judged over its measured window; `cadence` is push mode's
/// per-connection cadence from the first step, once there is one.
fn run_step(plan: &CapacityPlan, level: f64, cadence: Option<f64>) -> Result<(Step, Option<IntervalLog>), LoadError> {
    let load_plan = plan.at_level(level);
    let connections = load_plan.connections;
    let outputs = Outputs {
        progress: false,
        hdr_log: None,
        bundled_server: false,
        notes: Vec::new(),
        threads: plan.threads,
        shard: None,
        keep_log: true,
    };
    let (summary, log) = load::run_keeping_log(load_plan, outputs)?;
    let log = log.as_deref().and_then(|bytes| IntervalLog::parse(bytes).ok());
    let measured = measured_summary(&summary, log.as_ref(), plan);
    let load = match plan.searched() {
        Searched::Rate => Load::Rate(level),
        Searched::Connections => Load::Push { connections, cadence },
    };
    Ok((judge(plan, load, &summary, &measured), log))
}

/// What a step asked of the server.
#[derive(Debug, Clone, Copy)]
enum Load {
    Rate(f64),
    Push { connections: usize, cadence: Option<f64> },
}

/// The summary with its latencies and rate taken from the measured window only (the
/// intervals after the warm-up).
fn measured_summary(summary: &LoadSummary, log: Option<&IntervalLog>, plan: &CapacityPlan) -> LoadSummary {
    let mut measured = summary.clone();
    let Some(log) = log else { return measured };
    let window = plan.step.as_secs_f64();
    for (tag, stats) in measured.latency_us.iter_mut() {
        if let Some(histogram) = log.total_between(tag, plan.warmup, Duration::MAX) {
            if let Some(window_stats) = Stats::of(&histogram) {
                *stats = window_stats;
            }
        }
    }
    let main = log.total_between(summary.main_latency, plan.warmup, Duration::MAX).map_or(0, |h| h.len());
    measured.throughput_per_s = (main as f64 / window * 10.0).round() / 10.0;
    measured.measured_s = window;
    measured
}

/// The step's verdict: what the server broke, or why the generator could not tell.
fn judge(plan: &CapacityPlan, load: Load, whole: &LoadSummary, measured: &LoadSummary) -> Step {
    let mut broken = Vec::new();
    // Rules that hold whoever set the pace: what the server sent and whether it stayed up.
    if whole.schema_violations > 0 {
        let by_type: Vec<String> = whole
            .schema_violations_by_type
            .iter()
            .map(|(kind, n)| format!("{} invalid {kind}", crate::load::summary::thousands(*n)))
            .collect();
        broken.push(rule("messages.schema", by_type.join(", ")));
    }
    let attempts = whole.connect_attempts.max(1);
    let failed = whole.connect_failures + whole.connections_lost;
    if failed as f64 / attempts as f64 > plan.load.max_connect_failure_rate {
        let kinds: Vec<String> = whole.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        broken.push(rule(
            "connections",
            format!("{failed} of {attempts} connection attempts failed or were lost ({})", kinds.join(", ")),
        ));
    }
    let hard = broken.len();
    if let Some(timeouts) = whole.errors.get("timeout") {
        broken.push(rule(
            "heartbeat.pong",
            format!("{timeouts} connection(s) waited more than {:?} for a Pong", plan.load.reply_timeout),
        ));
    }
    if whole.sent > 0 && whole.window_held as f64 > plan.max_window_held * whole.sent as f64 {
        broken.push(rule(
            "saturation",
            format!(
                "{} of {} sends waited for a free in-flight slot (--in-flight {}): the server fell behind",
                whole.window_held, whole.sent, plan.load.in_flight
            ),
        ));
    }
    let achieved = measured.throughput_per_s;
    let (intended, connections) = match load {
        Load::Rate(rate) => {
            if achieved < rate * (1.0 - plan.rate_tolerance) {
                broken.push(rule(
                    "rate",
                    format!("achieved {achieved:.0}/s of {rate:.0}/s ({:.1}% short)", (1.0 - achieved / rate) * 100.0),
                ));
            }
            (rate, plan.load.connections)
        }
        Load::Push { connections, cadence } => {
            let each = achieved / connections.max(1) as f64;
            match cadence {
                Some(first) if each < first * plan.cadence_floor => broken.push(rule(
                    "cadence",
                    format!(
                        "each connection got {each:.2} pushes/s, {:.0}% of the {first:.2}/s at the first step (floor {:.0}%)",
                        each / first * 100.0,
                        plan.cadence_floor * 100.0
                    ),
                )),
                _ => {}
            }
            (cadence.map_or(achieved, |first| first * connections as f64), connections)
        }
    };
    if !measured.latency_us.contains_key(measured.main_latency) && whole.connects > 0 {
        let (name, what) = match load {
            Load::Rate(_) => ("replies", "reply"),
            Load::Push { .. } => ("pushes", "push"),
        };
        // The load run says why (e.g. no clock offset for push latency) when it measured nothing.
        let why = whole.failures.first().map(|f| format!(": {f}")).unwrap_or_default();
        broken.push(rule(name, format!("no {what} was measured in the window{why}")));
    }
    for slo in &plan.slos {
        let checked = slo.check(measured);
        if !checked.passed {
            let detail = match &checked.actual {
                Ok(actual) => format!("actual {}", checked.unit.show(*actual)),
                Err(why) => why.clone(),
            };
            broken.push(Breakage { kind: "slo", name: slo.text().to_string(), detail });
        }
    }
    // The generator's own limits make timing figures meaningless, not the server's messages.
    let invalid = whole.invalid_reasons.clone();
    let verdict = if !invalid.is_empty() {
        broken.truncate(hard);
        if broken.is_empty() {
            StepVerdict::Invalid
        } else {
            StepVerdict::Broken
        }
    } else if broken.is_empty() {
        StepVerdict::Passed
    } else {
        StepVerdict::Broken
    };
    let main = measured.latency_us.get(measured.main_latency);
    Step {
        connections,
        intended_per_s: intended,
        achieved_per_s: achieved,
        p50_us: main.map(|s| s.p50),
        p99_us: main.map(|s| s.p99),
        verdict,
        broken,
        invalid_reasons: invalid,
        generator_cpu: whole.generator_cpu,
    }
}

fn rule(name: &str, detail: String) -> Breakage {
    Breakage { kind: "rule", name: name.to_string(), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(start: f64, max: f64, resolution: f64) -> CapacityPlan {
        CapacityPlan {
            load: LoadPlan {
                url: "ws://127.0.0.1:9/ws".into(),
                profile: std::sync::Arc::new(crate::profile::ProfileSpec::builtin(crate::profile::Profile::Core)),
                operation: crate::load::operation::Operation::of(
                    &crate::profile::ProfileSpec::builtin(crate::profile::Profile::Core),
                    None,
                )
                .unwrap(),
                mode: crate::load::plan::Mode::Ping,
                connections: 10,
                duration: Duration::from_secs(1),
                ramp_up: Duration::ZERO,
                rate: None,
                in_flight: 8,
                validation: crate::load::plan::Validation::All,
                reply_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(5),
                max_message_bytes: 1 << 20,
                clock_offset: crate::load::plan::ClockOffset::Fixed(0),
                max_connect_failure_rate: 0.01,
                network: crate::network::Network::shared_default(),
            },
            start,
            max,
            step: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            resolution,
            slos: Vec::new(),
            max_window_held: 0.01,
            rate_tolerance: 0.05,
            cadence_floor: 0.5,
            threads: 1,
        }
    }

    #[test]
    fn the_search_ramps_then_bisects_and_always_ends() {
        let plan = plan(1000.0, 64_000.0, 0.05);
        let run = |next: Next| match next {
            Next::Run(rate) => Some(rate),
            Next::Stop(_) => None,
        };
        assert_eq!(run(next_level(&plan, Some(1000.0), None)), Some(2000.0));
        assert_eq!(run(next_level(&plan, Some(48_000.0), None)), Some(64_000.0));
        assert!(matches!(next_level(&plan, Some(64_000.0), None), Next::Stop(Bound::MaxRate)));
        assert_eq!(run(next_level(&plan, Some(4000.0), Some(8000.0))), Some(6000.0));
        assert!(matches!(next_level(&plan, Some(4000.0), Some(4150.0)), Next::Stop(Bound::Server)));
        assert!(matches!(next_level(&plan, None, Some(1000.0)), Next::Stop(Bound::Server)));
        // At one message a second the midpoint rounds onto the broken end: stop, never rerun it.
        let tiny = super::CapacityPlan { start: 1.0, resolution: 0.001, ..plan };
        assert!(matches!(next_level(&tiny, Some(1.0), Some(2.0)), Next::Stop(Bound::Server)));
    }

    #[test]
    fn the_time_bound_covers_the_ramp_and_the_bisection() {
        // 1,000 → 64,000 is 7 ramp steps; 5 % takes 5 halvings.
        let plan = plan(1000.0, 64_000.0, 0.05);
        assert_eq!(plan.max_steps(), 12);
        assert_eq!(plan.max_time(), Duration::from_secs(12 * 8));
        assert!(plan.check().is_ok());
        assert!(super::CapacityPlan { resolution: 0.9, ..plan.clone() }.check().is_err());
        assert!(super::CapacityPlan { max: 10.0, ..plan.clone() }.check().is_err());
        assert!(super::CapacityPlan { warmup: Duration::from_millis(1500), ..plan }.check().is_err());
    }
}
