//! The spec's client rules, judged over one client's log. Each rule is measured only where the
//! run gave it something to measure; otherwise it is skipped with the reason, never passed.
//! One deviation breaks one rule: reconnect delays within an outage are `backoff`'s, the first
//! delay of each later outage is `reset`'s, attempts past the tenth are `cap`'s, and the
//! reconnect after a Pong timeout is `heartbeat.timeout`'s.

use std::time::Duration;

use reference_server::ScheduledFault;

use super::evidence::{self, Lifetimes};
use super::log::{ClientLog, Connection};
use super::timing::{seconds, Timing, Window, BACKOFF_MAX, MAX_ATTEMPTS, RATE_LIMIT};
use crate::outcome::{Moment, Status};
use crate::scenario::Level;

#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub requirement: &'static str,
    pub description: &'static str,
}

pub const HEARTBEAT_INTERVAL: Rule = Rule {
    id: "client.heartbeat.interval",
    level: Level::Must,
    requirement: "FR-WS-HEARTBEAT-001",
    description: "the client sends a Ping about every 30 s while connected (Heartbeat Protocol)",
};
pub const HEARTBEAT_TIMEOUT: Rule = Rule {
    id: "client.heartbeat.timeout",
    level: Level::Must,
    requirement: "FR-WS-HEARTBEAT-001",
    description: "after a Ping with no Pong, the client closes 10 s later and reconnects (Heartbeat Protocol)",
};
pub const RECONNECT_BACKOFF: Rule = Rule {
    id: "client.reconnect.backoff",
    level: Level::Must,
    requirement: "spec: Reconnection Strategy",
    description: "after a lost connection the client reconnects after 1, 2, 4, 8, 16, 30, 30 … s",
};
pub const RECONNECT_CAP: Rule = Rule {
    id: "client.reconnect.cap",
    level: Level::Must,
    requirement: "spec: Reconnection Strategy",
    description: "the client makes at most 10 reconnect attempts in one outage",
};
pub const RECONNECT_RESET: Rule = Rule {
    id: "client.reconnect.reset",
    level: Level::Must,
    requirement: "spec: Reconnection Strategy",
    description: "after a successful connection, the backoff starts again at 1 s",
};
pub const CLOSE_CLEAN: Rule = Rule {
    id: "client.close.clean",
    level: Level::Must,
    requirement: "RFC 6455 5.5.1",
    description: "the client answers the server's Close frame with a Close frame",
};
pub const MESSAGES_SCHEMA: Rule = Rule {
    id: "client.messages.schema",
    level: Level::Must,
    requirement: "schemas/client",
    description: "every message the client sends validates against the client schemas",
};
pub const RATE_LIMIT_RULE: Rule = Rule {
    id: "client.rate_limit",
    level: Level::Must,
    requirement: "spec: Rate Limiting",
    description: "the client sends at most 100 messages a minute on a connection",
};

pub const RULES: [&Rule; 8] = [
    &HEARTBEAT_INTERVAL,
    &HEARTBEAT_TIMEOUT,
    &RECONNECT_BACKOFF,
    &RECONNECT_CAP,
    &RECONNECT_RESET,
    &CLOSE_CLEAN,
    &MESSAGES_SCHEMA,
    &RATE_LIMIT_RULE,
];

#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static Rule,
    pub status: Status,
    pub message: String,
    pub timeline: Vec<Moment>,
}

/// Failures listed per rule; more are counted.
const FAILURES_LISTED: usize = 5;
/// Timeline lines shown per failing rule.
const MOMENTS_SHOWN: usize = 40;

/// What a rule found across the client's connections.
#[derive(Default)]
struct Tally {
    samples: usize,
    failures: Vec<String>,
    timeline: Vec<Moment>,
    /// Why something could not be judged; the first one explains a skip.
    unmeasured: Vec<String>,
    /// What a pass says.
    passed: Option<String>,
    /// The exact count, first, when `failures` holds only examples of more.
    count: Option<String>,
}

impl Tally {
    fn fail(&mut self, message: String, timeline: impl FnOnce() -> Vec<Moment>) {
        if self.failures.is_empty() {
            self.timeline = timeline();
            self.timeline.truncate(MOMENTS_SHOWN);
        }
        self.failures.push(message);
    }

    fn finish(self, rule: &'static Rule, skip_reason: impl FnOnce() -> String) -> Finding {
        let (status, message) = if !self.failures.is_empty() {
            let listed = self.failures.len().min(FAILURES_LISTED);
            let mut message: Vec<String> = self.count.into_iter().collect();
            message.extend(self.failures.iter().take(listed).cloned());
            if self.failures.len() > listed {
                message.push(format!("… and {} more ({} in all)", self.failures.len() - listed, self.failures.len()));
            }
            (Status::Failed, message.join("\n"))
        } else if self.samples > 0 {
            (Status::Passed, self.passed.unwrap_or_default())
        } else {
            let reason = self.unmeasured.first().cloned().unwrap_or_else(skip_reason);
            (Status::Skipped, format!("not measured: {reason}"))
        };
        let timeline = if status == Status::Failed { self.timeline } else { Vec::new() };
        Finding { rule, status, message, timeline }
    }
}

fn at(d: Duration) -> String {
    format!("+{}", seconds(d))
}

/// Every event of one connection, for timelines.
fn connection_moments(c: &Connection) -> Vec<Moment> {
    let mut moments = vec![Moment { at: c.at, event: "connection attempt".into() }];
    if let Some(status) = c.refused {
        moments.push(Moment { at: c.at, event: format!("refused with HTTP {status}") });
    }
    if let Some(opened) = c.opened {
        moments.push(Moment { at: opened, event: "opened".into() });
    }
    let mut previous: Option<Duration> = None;
    for &ping in &c.pings {
        let gap = previous.map(|p| format!(" ({} after the last)", seconds(ping - p))).unwrap_or_default();
        moments.push(Moment { at: ping, event: format!("Ping{gap}") });
        previous = Some(ping);
    }
    for &withheld in &c.withheld {
        moments.push(Moment { at: withheld, event: "Pong withheld (fault)".into() });
    }
    if let Some((t, code)) = c.server_closed {
        moments.push(Moment { at: t, event: format!("server sent Close {code}") });
    }
    if let Some(t) = c.server_dropped {
        moments.push(Moment { at: t, event: "server dropped the TCP connection (fault)".into() });
    }
    if let Some((t, code)) = c.client_closed {
        let code = code.map(|c| c.to_string()).unwrap_or_else(|| "without a code".into());
        moments.push(Moment { at: t, event: format!("client sent Close {code}") });
    }
    if let Some(t) = c.ended {
        moments.push(Moment { at: t, event: "TCP connection ended".into() });
    }
    moments.sort_by_key(|m| m.at);
    moments
}

/// What the run did: the time scale and tolerance, when `serve` stopped watching (nothing is
/// expected of the client after it), and the faults as the user wrote them (unscaled), which
/// the reasons for a SKIP name.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub timing: &'a Timing,
    pub observed_until: Duration,
    pub faults: &'a [ScheduledFault],
}

/// Judges every rule for one client.
pub fn check(client: &ClientLog, run: &Run) -> Vec<Finding> {
    let (timing, observed_until) = (run.timing, run.observed_until);
    let outages = outages(client, observed_until);
    let lifetimes = Lifetimes::of(client, observed_until);
    vec![
        heartbeat_interval(client, run, &lifetimes),
        heartbeat_timeout(client, run, &lifetimes),
        reconnect_backoff(&outages, run, &lifetimes),
        reconnect_cap(&outages, timing, observed_until),
        reconnect_reset(&outages, run, &lifetimes),
        close_clean(client, &lifetimes),
        messages_schema(client, &lifetimes),
        rate_limit(client, timing, &lifetimes),
    ]
}

fn heartbeat_interval(client: &ClientLog, run: &Run, lifetimes: &Lifetimes) -> Finding {
    let (timing, observed_until) = (run.timing, run.observed_until);
    let window = timing.ping_interval();
    let mut tally = Tally::default();
    for c in &client.connections {
        let Some(opened) = c.opened else { continue };
        let end = c.end_or(observed_until).min(observed_until);
        let mut last = opened;
        let mut first = true;
        for &ping in c.pings.iter().filter(|&&p| p <= end) {
            let gap = ping - last;
            if first {
                if gap > window.high {
                    tally.fail(
                        format!(
                            "the first Ping came {} after the connection opened at {} (expected within {})",
                            seconds(gap),
                            at(opened),
                            seconds(window.high)
                        ),
                        || connection_moments(c),
                    );
                } else if end - opened > window.high {
                    tally.samples += 1;
                }
            } else if window.contains(gap) {
                tally.samples += 1;
            } else {
                tally.fail(
                    format!(
                        "Pings at {} and {} are {} apart; expected {}",
                        at(last),
                        at(ping),
                        seconds(gap),
                        window.describe()
                    ),
                    || connection_moments(c),
                );
            }
            first = false;
            last = ping;
        }
        let silent = end.saturating_sub(last);
        if silent > window.high {
            let what = if first { "the connection opened".to_string() } else { "the last Ping".to_string() };
            let until =
                if c.ended.is_some_and(|e| e <= observed_until) { "the connection ended" } else { "observation ended" };
            tally.fail(
                format!(
                    "no Ping for {} after {what} at {} (until {until} at {}); expected one every {}",
                    seconds(silent),
                    at(last),
                    at(end),
                    window.describe()
                ),
                || connection_moments(c),
            );
        }
    }
    tally.passed = Some(format!("{} interval(s) measured, each within {}", tally.samples, window.describe()));
    tally.finish(&HEARTBEAT_INTERVAL, || {
        let mut remedies = evidence::unfired(run.faults, timing, lifetimes);
        let enders = evidence::connection_enders(run.faults);
        if lifetimes.by_server > 0 && !enders.is_empty() {
            remedies.push(format!(
                "{} ended connections first: a T above {} would let an interval be seen",
                enders.join(", "),
                seconds(window.high.div_f64(timing.scale))
            ));
        } else if lifetimes.by_client > 0 {
            remedies.push(format!("the client closed {} connection(s) itself", lifetimes.by_client));
        }
        if lifetimes.open_at_end > 0 {
            remedies.push(format!("observation ended at {}: serve for longer", at(observed_until)));
        }
        format!(
            "no connection stayed open longer than {}, so no Ping interval could be seen: {}{}",
            seconds(window.high),
            lifetimes.describe(),
            evidence::then(&remedies)
        )
    })
}

/// When the client itself ended the connection (a Close, or dropping TCP), if it did.
fn client_end(c: &Connection) -> Option<Duration> {
    if c.ended_by_server() {
        return None;
    }
    c.client_closed.map(|(t, _)| t).or(c.ended)
}

fn server_end(c: &Connection) -> Option<Duration> {
    c.server_dropped.or(c.server_closed_first().map(|(t, _)| t))
}

fn heartbeat_timeout(client: &ClientLog, run: &Run, lifetimes: &Lifetimes) -> Finding {
    let (timing, observed_until) = (run.timing, run.observed_until);
    let window = timing.pong_timeout();
    let reconnect_wait = timing.window(timing.scaled(BACKOFF_MAX)).high;
    let mut tally = Tally::default();
    for (index, c) in client.connections.iter().enumerate() {
        let Some(&withheld) = c.withheld.first() else { continue };
        let deadline = withheld + window.high;
        let moments = || {
            let mut m = connection_moments(c);
            if let Some(next) = client.connections.get(index + 1) {
                m.push(Moment { at: next.at, event: "next connection attempt".into() });
            }
            m
        };
        match (client_end(c), server_end(c)) {
            (Some(end), _) if end <= observed_until => {
                let after = end - withheld;
                if after < window.low {
                    tally.fail(
                        format!("the client closed {} after the unanswered Ping at {}: too soon, the spec waits {} for the Pong", seconds(after), at(withheld), window.describe()),
                        moments,
                    );
                } else if after > window.high {
                    tally.fail(
                        format!("the client closed only {} after the unanswered Ping at {}; expected {}", seconds(after), at(withheld), window.describe()),
                        moments,
                    );
                } else if client.connections.get(index + 1).is_some_and(|next| next.at <= observed_until) {
                    tally.samples += 1;
                } else if observed_until - c.end_or(end) > reconnect_wait {
                    tally.fail(
                        format!("the client closed {} after the unanswered Ping at {}, then did not reconnect (watched for {} more)", seconds(after), at(withheld), seconds(observed_until - c.end_or(end))),
                        moments,
                    );
                } else {
                    tally.unmeasured.push(format!("observation ended {} after the client's timeout close, before a reconnect was due", seconds(observed_until - end)));
                }
            }
            (_, Some(end)) if end <= deadline.min(observed_until) => tally.unmeasured.push(format!(
                "the server ended the connection {} after the unanswered Ping, before the client's deadline",
                seconds(end - withheld)
            )),
            _ if observed_until > deadline => tally.fail(
                format!("the connection was still open {} after the unanswered Ping at {}; expected the client to close it within {}", seconds(observed_until.min(c.end_or(observed_until)) - withheld), at(withheld), window.describe()),
                moments,
            ),
            _ => tally.unmeasured.push(format!(
                "observation ended {} after the unanswered Ping at {}, before the client's deadline ({})",
                seconds(observed_until.saturating_sub(withheld)),
                at(withheld),
                seconds(window.high)
            )),
        }
    }
    tally.passed =
        Some(format!("{} Pong timeout(s): closed within {} and reconnected", tally.samples, window.describe()));
    tally.finish(&HEARTBEAT_TIMEOUT, || {
        let pings: usize = client.connections.iter().map(|c| c.pings.len()).sum();
        if pings == 0 {
            return format!("the client sent no Ping, so none could be left unanswered: {}", lifetimes.describe());
        }
        let starvers = evidence::starvers(run.faults);
        let mut why = evidence::unfired(run.faults, timing, lifetimes);
        if starvers.is_empty() {
            why.push("use --fault no-pong or stall-after=T".into());
        } else if why.is_empty() {
            why.push(format!("no Ping fell where {} applied", starvers.join(", ")));
        }
        format!("every Ping ({pings}) was answered{}", evidence::then(&why))
    })
}

/// Why an outage began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    ServerDropped,
    ServerClosed(u16),
    /// The client closed after an unanswered Ping.
    PongTimeout,
    /// The client ended the connection itself (Close or drop), no Ping unanswered. Its
    /// reconnects are judged like any others; a client that never comes back left for good.
    ClientClosed,
    /// A connect that was not a reconnect failed.
    ConnectFailed,
}

impl Cause {
    fn describe(self) -> String {
        match self {
            Cause::ServerDropped => "the server dropped the connection".into(),
            Cause::ServerClosed(code) => format!("the server closed the connection ({code})"),
            Cause::PongTimeout => "the client closed after its Pong timeout".into(),
            Cause::ClientClosed => "the client ended the connection".into(),
            Cause::ConnectFailed => "a connect failed".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    at: Duration,
    delay: Duration,
    refused: Option<u16>,
    opened: bool,
    /// When a failed attempt ended, from which the next delay runs.
    failed_at: Duration,
}

/// From a lost connection to the next successful one (or to the end of observation).
#[derive(Debug, Clone)]
struct Outage {
    start: Duration,
    cause: Cause,
    attempts: Vec<Attempt>,
    resolved: bool,
}

impl Outage {
    fn last_failure(&self) -> Duration {
        self.attempts.last().map_or(self.start, |a| a.failed_at)
    }

    fn moments(&self, timing: &Timing) -> Vec<Moment> {
        let mut moments = vec![Moment { at: self.start, event: format!("outage: {}", self.cause.describe()) }];
        for (n, a) in self.attempts.iter().enumerate() {
            let result = match (a.opened, a.refused) {
                (true, _) => "opened".to_string(),
                (false, Some(status)) => format!("refused with HTTP {status}"),
                (false, None) => "failed".to_string(),
            };
            moments.push(Moment {
                at: a.at,
                event: format!(
                    "attempt {} after {} (the spec's step {}: {}): {result}",
                    n + 1,
                    seconds(a.delay),
                    n + 1,
                    seconds(timing.backoff(n + 1))
                ),
            });
        }
        moments
    }
}

fn outages(client: &ClientLog, observed_until: Duration) -> Vec<Outage> {
    let mut outages = Vec::new();
    let mut current: Option<Outage> = None;
    for c in client.connections.iter().filter(|c| c.at <= observed_until) {
        let opened = c.opened.is_some();
        if let Some(outage) = current.as_mut() {
            let delay = c.at.saturating_sub(outage.last_failure());
            let failed_at = c.end_or(c.at);
            outage.attempts.push(Attempt { at: c.at, delay, refused: c.refused, opened, failed_at });
            if !opened {
                continue;
            }
            outage.resolved = true;
            outages.extend(current.take());
        } else if !opened {
            current = Some(Outage {
                start: c.end_or(c.at),
                cause: Cause::ConnectFailed,
                attempts: Vec::new(),
                resolved: false,
            });
            continue;
        }
        let Some(end) = c.ended.filter(|&e| e <= observed_until) else { continue };
        let cause = if c.server_dropped.is_some() {
            Cause::ServerDropped
        } else if let Some((_, code)) = c.server_closed_first() {
            Cause::ServerClosed(code)
        } else if !c.withheld.is_empty() {
            Cause::PongTimeout
        } else {
            // A reconnect is a reconnect whoever closed: its delay is judged from this end.
            Cause::ClientClosed
        };
        current = Some(Outage { start: end, cause, attempts: Vec::new(), resolved: false });
    }
    outages.extend(current);
    outages
}

/// The windows a reconnect attempt may fall in: the spec's step for its place in the outage,
/// and double the previous attempt's delay (capped). A client keeps its own delay, doubling
/// it whenever its timer fires late, so one late attempt is not followed by a second blame when
/// the next is back on the spec's step; and a client that starts from a wrong base and then
/// doubles is blamed for the start only. Steps are matched by order, never by the nearest
/// value: at a small time scale the unscaled slack makes neighbouring steps' windows overlap.
fn backoff_windows(timing: &Timing, n: usize, previous: Option<Duration>) -> (Window, Option<Window>) {
    let step = timing.window(timing.backoff(n));
    let doubled = previous.map(|delay| timing.window((delay * 2).min(timing.scaled(BACKOFF_MAX))));
    (step, doubled.filter(|doubled| *doubled != step))
}

fn reconnect_backoff(outages: &[Outage], run: &Run, lifetimes: &Lifetimes) -> Finding {
    let (timing, observed_until) = (run.timing, run.observed_until);
    let mut tally = Tally::default();
    for (index, outage) in outages.iter().enumerate() {
        let mut previous: Option<Duration> = None;
        for (n, attempt) in outage.attempts.iter().enumerate().take(MAX_ATTEMPTS) {
            // The first delay of a later outage is the reset rule's to judge.
            if n == 0 && index > 0 {
                previous = Some(attempt.delay);
                continue;
            }
            let (step, doubled) = backoff_windows(timing, n + 1, previous);
            if step.contains(attempt.delay) || doubled.is_some_and(|w| w.contains(attempt.delay)) {
                tally.samples += 1;
            } else {
                let or_doubled =
                    doubled.map(|w| format!(", or double the previous delay: {}", w.describe())).unwrap_or_default();
                tally.fail(
                    format!(
                        "reconnect attempt {} at {} came {} after the previous failure; expected the spec's step {}: {}{or_doubled}",
                        n + 1,
                        at(attempt.at),
                        seconds(attempt.delay),
                        n + 1,
                        step.describe()
                    ),
                    || outage.moments(timing),
                );
            }
            previous = Some(attempt.delay);
        }
        let made = outage.attempts.len();
        // A client that ends a connection itself may be leaving for good: only the reconnects
        // it does make are judged.
        let left = matches!(outage.cause, Cause::PongTimeout | Cause::ClientClosed);
        if outage.resolved || made >= MAX_ATTEMPTS || (made == 0 && left) {
            continue;
        }
        // No attempt yet: wait as long as any step could be, since a later outage may start late.
        let wait = match previous {
            Some(_) => {
                let (step, doubled) = backoff_windows(timing, made + 1, previous);
                step.high.max(doubled.map_or(Duration::ZERO, |w| w.high))
            }
            None if index == 0 => timing.window(timing.backoff(1)).high,
            None => timing.window(timing.scaled(BACKOFF_MAX)).high,
        };
        let quiet = observed_until.saturating_sub(outage.last_failure());
        if quiet > wait {
            tally.fail(
                format!(
                    "after {} at {}, the client stopped after {made} reconnect attempt(s): nothing for {} (the spec makes up to {MAX_ATTEMPTS})",
                    outage.cause.describe(),
                    at(outage.start),
                    seconds(quiet)
                ),
                || outage.moments(timing),
            );
        }
    }
    tally.passed = Some(format!("{} reconnect delay(s) measured, each on the 1, 2, 4 … 30 s sequence", tally.samples));
    tally.finish(&RECONNECT_BACKOFF, || no_reconnect(outages, run, lifetimes))
}

/// Why there was no reconnect to judge, from what happened: no connection ended at all (and
/// which fault never fired), or the ends there were (by whom) and no attempt after any of them.
fn no_reconnect(outages: &[Outage], run: &Run, lifetimes: &Lifetimes) -> String {
    if outages.is_empty() {
        let mut remedies = evidence::unfired(run.faults, run.timing, lifetimes);
        if evidence::connection_enders(run.faults).is_empty() {
            remedies.push("use --fault drop-every=T or close-every=T".into());
        }
        return format!(
            "no connection ended in {}, so there was no reconnect to time: {}{}",
            seconds(run.observed_until),
            lifetimes.describe(),
            evidence::then(&remedies)
        );
    }
    format!("{}, and the client never reconnected after any", outage_causes(outages))
}

/// "3 connection end(s) (2× the server dropped the connection, 1× a connect failed)".
fn outage_causes(outages: &[Outage]) -> String {
    let mut causes: Vec<(String, usize)> = Vec::new();
    for outage in outages {
        let cause = outage.cause.describe();
        match causes.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => causes.push((cause, 1)),
        }
    }
    let list: Vec<String> = causes.iter().map(|(cause, n)| format!("{n}× {cause}")).collect();
    format!("{} connection end(s) ({})", outages.len(), list.join(", "))
}

fn reconnect_cap(outages: &[Outage], timing: &Timing, observed_until: Duration) -> Finding {
    let mut tally = Tally::default();
    let wait = timing.window(timing.backoff(MAX_ATTEMPTS + 1)).high;
    for outage in outages {
        let made = outage.attempts.len();
        if made > MAX_ATTEMPTS {
            tally.fail(
                format!(
                    "{made} reconnect attempts after {} at {}; the spec stops after {MAX_ATTEMPTS}",
                    outage.cause.describe(),
                    at(outage.start)
                ),
                || outage.moments(timing),
            );
        } else if made == MAX_ATTEMPTS
            && !outage.resolved
            && observed_until.saturating_sub(outage.last_failure()) > wait
        {
            tally.samples += 1;
        }
    }
    let most = outages.iter().map(|o| o.attempts.len()).max().unwrap_or(0);
    tally.passed = Some(format!("stopped after {MAX_ATTEMPTS} attempts in {} outage(s)", tally.samples));
    let needed: Duration = (1..=MAX_ATTEMPTS).map(|n| timing.backoff(n)).sum::<Duration>() + wait;
    tally.finish(&RECONNECT_CAP, || {
        format!(
            "no outage lasted through {MAX_ATTEMPTS} attempts (the most in one was {most}); refuse-for=T or down-for=T must refuse the client for {} at this time scale",
            seconds(needed)
        )
    })
}

fn reconnect_reset(outages: &[Outage], run: &Run, lifetimes: &Lifetimes) -> Finding {
    let timing = run.timing;
    let mut tally = Tally::default();
    let mut with_attempts = outages.iter().filter(|o| !o.attempts.is_empty());
    let Some(first) = with_attempts.next() else {
        return tally.finish(&RECONNECT_RESET, || no_reconnect(outages, run, lifetimes));
    };
    let base = first.attempts[0].delay;
    // Starting again means starting at the spec's first step or at whatever the client began
    // with the first time: a wrong start is the backoff rule's, not this one's.
    let first_step = timing.window(timing.backoff(1));
    let limit = if first_step.high >= timing.window(base).high { first_step } else { timing.window(base) };
    for outage in with_attempts {
        let delay = outage.attempts[0].delay;
        if delay > limit.high {
            tally.fail(
                format!(
                    "after a successful connection, the outage at {} began with a {} delay where the first outage began with {}: the backoff was not reset",
                    at(outage.start),
                    seconds(delay),
                    seconds(base)
                ),
                || {
                    let mut moments = first.moments(timing);
                    moments.extend(outage.moments(timing));
                    moments
                },
            );
        } else {
            tally.samples += 1;
        }
    }
    tally.passed = Some(format!("{} later outage(s) began again at {}", tally.samples, seconds(base)));
    tally.finish(&RECONNECT_RESET, || {
        let enders = evidence::connection_enders(run.faults);
        let remedy = if enders.is_empty() {
            "use --fault drop-every=T for many".to_string()
        } else {
            format!("serve for longer than {} so {} ends a second connection", seconds(run.observed_until), enders.join(", "))
        };
        format!(
            "only the outage at {} had reconnects ({}); a reset needs a second outage after a successful connection: {remedy}",
            at(first.start),
            outage_causes(outages)
        )
    })
}

fn close_clean(client: &ClientLog, lifetimes: &Lifetimes) -> Finding {
    let mut tally = Tally::default();
    for c in &client.connections {
        let Some((sent, code)) = c.server_closed_first() else { continue };
        match (c.client_closed, c.ended) {
            (Some((answered, _)), _) if answered >= sent => tally.samples += 1,
            (_, Some(ended)) => tally.fail(
                format!(
                    "the server sent Close {code} at {}; the client ended the TCP connection at {} without answering with a Close",
                    at(sent),
                    at(ended)
                ),
                || connection_moments(c),
            ),
            _ => tally.fail(
                format!("the server sent Close {code} at {}; the client never answered", at(sent)),
                || connection_moments(c),
            ),
        }
    }
    tally.passed = Some(format!("{} Close frame(s) answered", tally.samples));
    tally.finish(&CLOSE_CLEAN, || {
        format!("the server sent no Close while the client was connected: {}", lifetimes.describe())
    })
}

fn messages_schema(client: &ClientLog, lifetimes: &Lifetimes) -> Finding {
    let mut tally = Tally { samples: client.messages as usize, ..Tally::default() };
    for invalid in &client.invalid_examples {
        tally.fail(format!("at {}: {}", at(invalid.at), invalid.reason), || {
            client
                .invalid_examples
                .iter()
                .map(|i| Moment { at: i.at, event: format!("invalid: {}", i.reason) })
                .collect()
        });
    }
    // The examples are a few of the invalid messages; the count says how many there were.
    if client.invalid > client.invalid_examples.len() as u64 {
        tally.count = Some(format!(
            "{} of {} message(s) invalid; the first {} shown:",
            client.invalid,
            client.messages,
            client.invalid_examples.len().min(FAILURES_LISTED)
        ));
    }
    tally.passed = Some(format!("{} message(s), all valid", client.messages));
    tally.finish(&MESSAGES_SCHEMA, || format!("the client sent no messages: {}", lifetimes.describe()))
}

fn rate_limit(client: &ClientLog, timing: &Timing, lifetimes: &Lifetimes) -> Finding {
    let window = timing.rate_window();
    let mut tally = Tally::default();
    let mut peak = 0;
    for c in client.connections.iter().filter(|c| c.messages > 0) {
        let (count, when) = c.rate_peak;
        peak = peak.max(count);
        if count > RATE_LIMIT {
            tally.fail(
                format!(
                    "{count} messages within {} on the connection opened at {} (by {}); the limit is {RATE_LIMIT} per {}",
                    seconds(window),
                    at(c.opened.unwrap_or(c.at)),
                    at(when),
                    seconds(window)
                ),
                || connection_moments(c),
            );
        } else {
            tally.samples += 1;
        }
    }
    tally.passed =
        Some(format!("at most {peak} message(s) in any {} on one connection (limit {RATE_LIMIT})", seconds(window)));
    tally.finish(&RATE_LIMIT_RULE, || format!("the client sent no messages: {}", lifetimes.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::log::Invalid;

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn timing() -> Timing {
        Timing::new(1.0, Duration::from_millis(100))
    }

    /// A connection opened at `at` that the server dropped at `dropped`.
    fn dropped(at: f64, dropped: f64) -> Connection {
        Connection {
            at: s(at),
            opened: Some(s(at)),
            server_dropped: Some(s(dropped)),
            ended: Some(s(dropped)),
            ..Connection::default()
        }
    }

    fn refused(at: f64) -> Connection {
        Connection { at: s(at), refused: Some(503), ended: Some(s(at)), ..Connection::default() }
    }

    fn open(at: f64) -> Connection {
        Connection { at: s(at), opened: Some(s(at)), ..Connection::default() }
    }

    fn client(connections: Vec<Connection>) -> ClientLog {
        ClientLog { name: "bot".into(), named: true, connections, ..ClientLog::default() }
    }

    fn verdict(finding: &Finding) -> (Status, &str) {
        (finding.status, finding.message.as_str())
    }

    fn judged(log: &ClientLog, until: f64, rule: &Rule) -> Finding {
        let run = Run { timing: &timing(), observed_until: s(until), faults: &[] };
        check(log, &run).into_iter().find(|f| f.rule.id == rule.id).unwrap()
    }

    /// Drop at 10 s, then refused attempts after the spec's delays, then an open at the end.
    fn outage(start: f64, delays: &[f64], succeed: bool) -> Vec<Connection> {
        let mut connections = Vec::new();
        let mut t = start;
        for (i, delay) in delays.iter().enumerate() {
            t += delay;
            if succeed && i == delays.len() - 1 {
                connections.push(open(t));
            } else {
                connections.push(refused(t));
            }
        }
        connections
    }

    #[test]
    fn backoff_passes_the_spec_sequence_and_fails_an_immediate_reconnect() {
        let mut connections = vec![dropped(0.0, 10.0)];
        connections.extend(outage(10.0, &[1.02, 2.01, 4.05, 8.0, 16.1, 30.0], true));
        let finding = judged(&client(connections), 200.0, &RECONNECT_BACKOFF);
        assert_eq!(finding.status, Status::Passed, "{}", finding.message);

        let mut connections = vec![dropped(0.0, 10.0)];
        connections.extend(outage(10.0, &[0.001], true));
        let finding = judged(&client(connections), 200.0, &RECONNECT_BACKOFF);
        assert_eq!(finding.status, Status::Failed);
        assert!(finding.message.contains("came 0.001 s after"), "{}", finding.message);
        assert_eq!(finding.timeline[0].event, "outage: the server dropped the connection");
    }

    #[test]
    fn a_wrong_delay_is_blamed_once_at_any_time_scale() {
        // A client that starts its backoff at 5 s and then doubles correctly: its first delay is
        // wrong, and only that one. At 0.1 the unscaled 100 ms slack makes 0.5 s fall inside
        // step 3's window (0.36–0.54 s); matching by order must not read it as step 3.
        for scale in [1.0, 0.1] {
            let timing = Timing::new(scale, Duration::from_millis(100));
            let d = |seconds: f64| seconds * scale;
            let mut connections = vec![dropped(0.0, d(10.0))];
            connections.extend(outage(d(10.0), &[d(5.0), d(10.0), d(20.0), d(30.0)], true));
            let run = Run { timing: &timing, observed_until: s(d(200.0)), faults: &[] };
            let finding =
                check(&client(connections), &run).into_iter().find(|f| f.rule.id == RECONNECT_BACKOFF.id).unwrap();
            assert_eq!(finding.status, Status::Failed, "scale {scale}: {}", finding.message);
            assert_eq!(finding.message.lines().count(), 1, "scale {scale}: {}", finding.message);
            assert!(finding.message.starts_with("reconnect attempt 1 "), "scale {scale}: {}", finding.message);
        }
    }

    #[test]
    fn one_late_timer_is_blamed_once_when_the_client_keeps_its_own_schedule() {
        // Attempt 1 fired 0.19 s late (scale 0.1: due at 0.1 s); the client's own delay then
        // went on to 0.2, 0.4 s, as the spec's code does whatever its timer did.
        let timing = Timing::new(0.1, Duration::from_millis(100));
        let mut connections = vec![dropped(0.0, 1.0)];
        connections.extend(outage(1.0, &[0.29, 0.2, 0.4, 0.8], true));
        let run = Run { timing: &timing, observed_until: s(20.0), faults: &[] };
        let finding =
            check(&client(connections), &run).into_iter().find(|f| f.rule.id == RECONNECT_BACKOFF.id).unwrap();
        assert_eq!(finding.status, Status::Failed, "{}", finding.message);
        assert_eq!(
            finding.message,
            "reconnect attempt 1 at +1.290 s came 0.290 s after the previous failure; expected the spec's step 1: 0.100 s (allowed 0.090 s–0.210 s)"
        );
    }

    #[test]
    fn a_reconnect_after_the_client_s_own_close_is_judged_and_leaving_for_good_is_not() {
        // The client closed at 10 s on its own (no Ping unanswered) and came back 0.2 s later.
        let left = Connection { client_closed: Some((s(10.0), Some(1000))), ended: Some(s(10.01)), ..open(0.0) };
        let finding = judged(&client(vec![left.clone(), open(10.21)]), 60.0, &RECONNECT_BACKOFF);
        assert_eq!(finding.status, Status::Failed, "{}", finding.message);
        assert!(finding.message.contains("came 0.200 s after"), "{}", finding.message);
        assert_eq!(finding.timeline[0].event, "outage: the client ended the connection");
        // The same close with no reconnect: the client may have left for good; nothing to judge.
        let finding = judged(&client(vec![left]), 60.0, &RECONNECT_BACKOFF);
        assert_eq!(finding.status, Status::Skipped);
        // The reason is what happened, not a guess about the server.
        assert!(
            finding
                .message
                .contains("1 connection end(s) (1× the client ended the connection), and the client never reconnected"),
            "{}",
            finding.message
        );
        let finding = judged(&client(vec![open(0.0)]), 60.0, &RECONNECT_RESET);
        assert!(
            finding.message.contains("no connection ended in 60.0 s, so there was no reconnect"),
            "{}",
            finding.message
        );
    }

    #[test]
    fn backoff_fails_a_client_that_gives_up_early_but_not_one_still_waiting() {
        let mut connections = vec![dropped(0.0, 10.0)];
        connections.extend(outage(10.0, &[1.0, 2.0, 4.0], false));
        // 4 s after the third attempt the fourth (8 s) is not due yet: nothing to say.
        assert_eq!(judged(&client(connections.clone()), 21.0, &RECONNECT_BACKOFF).status, Status::Passed);
        let finding = judged(&client(connections), 40.0, &RECONNECT_BACKOFF);
        assert_eq!(finding.status, Status::Failed);
        assert!(finding.message.contains("stopped after 3 reconnect attempt(s)"), "{}", finding.message);
    }

    #[test]
    fn the_cap_counts_attempts_in_one_outage() {
        let delays = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0];
        let mut ten = vec![dropped(0.0, 10.0)];
        ten.extend(outage(10.0, &delays, false));
        let finding = judged(&client(ten.clone()), 191.0 + 40.0, &RECONNECT_CAP);
        assert_eq!(verdict(&finding), (Status::Passed, "stopped after 10 attempts in 1 outage(s)"));
        assert_eq!(judged(&client(ten.clone()), 191.0 + 40.0, &RECONNECT_BACKOFF).status, Status::Passed);
        // Watched too briefly after the tenth: the cap was not yet shown.
        assert_eq!(judged(&client(ten), 195.0, &RECONNECT_CAP).status, Status::Skipped);

        let mut eleven = vec![dropped(0.0, 10.0)];
        eleven.extend(outage(10.0, &[delays.as_slice(), &[30.0]].concat(), false));
        let finding = judged(&client(eleven.clone()), 300.0, &RECONNECT_CAP);
        assert_eq!(finding.status, Status::Failed);
        assert!(finding.message.starts_with("11 reconnect attempts"), "{}", finding.message);
        // The eleventh attempt is the cap's failure alone.
        assert_eq!(judged(&client(eleven), 300.0, &RECONNECT_BACKOFF).status, Status::Passed);

        let finding = judged(&client(vec![dropped(0.0, 10.0), open(11.0)]), 20.0, &RECONNECT_CAP);
        assert_eq!(finding.status, Status::Skipped);
        assert!(finding.message.contains("the most in one was 1"), "{}", finding.message);
    }

    #[test]
    fn reset_compares_each_later_outage_with_the_first() {
        let reset = vec![dropped(0.0, 5.0), dropped(6.0, 10.0), dropped(11.0, 15.0), open(16.0)];
        let finding = judged(&client(reset), 20.0, &RECONNECT_RESET);
        assert_eq!(finding.status, Status::Passed, "{}", finding.message);

        let grown = vec![dropped(0.0, 5.0), dropped(6.0, 10.0), dropped(12.0, 15.0), open(19.0)];
        let finding = judged(&client(grown.clone()), 20.0, &RECONNECT_RESET);
        assert_eq!(finding.status, Status::Failed);
        assert!(finding.message.contains("began with a 2.000 s delay where the first outage began with 1.000 s"));
        // Not resetting is not also a backoff failure.
        assert_eq!(judged(&client(grown), 20.0, &RECONNECT_BACKOFF).status, Status::Passed);

        let finding = judged(&client(vec![dropped(0.0, 5.0), open(6.0)]), 20.0, &RECONNECT_RESET);
        assert_eq!(finding.status, Status::Skipped);

        // The first outage began at once, a later one at the spec's 1 s: that is a reset; the
        // too-fast start is the backoff rule's alone.
        let fast_start = vec![dropped(0.0, 5.0), dropped(5.002, 10.0), open(11.0)];
        assert_eq!(judged(&client(fast_start.clone()), 20.0, &RECONNECT_RESET).status, Status::Passed);
        assert_eq!(judged(&client(fast_start), 20.0, &RECONNECT_BACKOFF).status, Status::Failed);
    }

    #[test]
    fn the_ping_interval_is_judged_on_gaps_and_silences() {
        let pings = |c: Connection, at: &[f64]| Connection { pings: at.iter().map(|&t| s(t)).collect(), ..c };
        let steady = pings(open(0.0), &[30.0, 60.2, 90.1]);
        assert_eq!(judged(&client(vec![steady]), 100.0, &HEARTBEAT_INTERVAL).status, Status::Passed);

        let hurried = pings(open(0.0), &[30.0, 40.0]);
        let finding = judged(&client(vec![hurried]), 50.0, &HEARTBEAT_INTERVAL);
        assert_eq!(finding.status, Status::Failed);
        assert!(
            finding.message.contains("10.0 s apart; expected 30.0 s (allowed 27.0 s–33.1 s)"),
            "{}",
            finding.message
        );

        let silent = open(0.0);
        let finding = judged(&client(vec![silent]), 50.0, &HEARTBEAT_INTERVAL);
        assert!(finding.message.starts_with("no Ping for 50.0 s after the connection opened"), "{}", finding.message);

        let finding = judged(&client(vec![dropped(0.0, 5.0), dropped(6.0, 11.0)]), 12.0, &HEARTBEAT_INTERVAL);
        assert_eq!(finding.status, Status::Skipped);
        assert!(
            finding.message.contains("every connection (2) ended within 5.000 s, by the server"),
            "{}",
            finding.message
        );
    }

    #[test]
    fn a_client_that_always_closes_first_is_told_so_and_the_fault_that_never_fired_is_named() {
        // At scale 0.1 the client gives up 0.5 s into every connection, so drop-every=6s (0.6 s)
        // never fires and no Ping interval (3 s) can be seen.
        let timing = Timing::new(0.1, Duration::from_millis(100));
        let faults = crate::clients::faults::from_specs(&["drop-every=6s".into()]).unwrap();
        let closes = |at: f64| Connection {
            client_closed: Some((s(at + 0.5), Some(1000))),
            ended: Some(s(at + 0.53)),
            ..open(at)
        };
        let log = client((0..10).map(|i| closes(i as f64 * 0.65)).collect());
        let run = Run { timing: &timing, observed_until: s(7.0), faults: &faults };
        let findings = check(&log, &run);
        let interval = findings.iter().find(|f| f.rule.id == HEARTBEAT_INTERVAL.id).unwrap();
        assert_eq!(interval.status, Status::Skipped);
        assert_eq!(
            interval.message,
            "not measured: no connection stayed open longer than 3.400 s, so no Ping interval could be seen: \
             every connection (10) ended within 0.530 s, by the client; drop-every=6s never fired (it acts \
             0.600 s after a connect at this time scale); the client closed 10 connection(s) itself"
        );
        let timeout = findings.iter().find(|f| f.rule.id == HEARTBEAT_TIMEOUT.id).unwrap();
        assert_eq!(
            timeout.message,
            "not measured: the client sent no Ping, so none could be left unanswered: every connection (10) ended within 0.530 s, by the client"
        );
        let schema = findings.iter().find(|f| f.rule.id == MESSAGES_SCHEMA.id).unwrap();
        assert_eq!(
            schema.message,
            "not measured: the client sent no messages: every connection (10) ended within 0.530 s, by the client"
        );
        let close = findings.iter().find(|f| f.rule.id == CLOSE_CLEAN.id).unwrap();
        assert!(
            close.message.ends_with("every connection (10) ended within 0.530 s, by the client"),
            "{}",
            close.message
        );
        // Its reconnects after its own closes are judged (0.12 s where 0.1 s is due: on time).
        let backoff = findings.iter().find(|f| f.rule.id == RECONNECT_BACKOFF.id).unwrap();
        assert_eq!(backoff.status, Status::Passed, "{}", backoff.message);
    }

    #[test]
    fn the_pong_timeout_needs_a_close_in_the_window_and_a_reconnect() {
        let starved = |closed: f64| Connection {
            pings: vec![s(30.0)],
            withheld: vec![s(30.0)],
            client_closed: Some((s(closed), None)),
            ended: Some(s(closed)),
            ..open(0.0)
        };
        let good = client(vec![starved(40.0), open(41.0)]);
        assert_eq!(judged(&good, 50.0, &HEARTBEAT_TIMEOUT).status, Status::Passed);
        let finding = judged(&good, 50.0, &RECONNECT_BACKOFF);
        assert_eq!(finding.status, Status::Passed, "the reconnect after a timeout is timed too");

        let hasty = judged(&client(vec![starved(31.0), open(32.0)]), 50.0, &HEARTBEAT_TIMEOUT);
        assert!(hasty.message.contains("too soon"), "{}", hasty.message);

        let stubborn = Connection { pings: vec![s(30.0)], withheld: vec![s(30.0)], ..open(0.0) };
        let finding = judged(&client(vec![stubborn.clone()]), 50.0, &HEARTBEAT_TIMEOUT);
        assert!(finding.message.starts_with("the connection was still open 20.0 s after"), "{}", finding.message);
        assert_eq!(judged(&client(vec![stubborn]), 35.0, &HEARTBEAT_TIMEOUT).status, Status::Skipped);

        let finding = judged(&client(vec![starved(40.0)]), 80.0, &HEARTBEAT_TIMEOUT);
        assert!(finding.message.contains("then did not reconnect"), "{}", finding.message);
        // Not reconnecting after a timeout is the timeout rule's failure, not backoff's.
        assert_eq!(judged(&client(vec![starved(40.0)]), 80.0, &RECONNECT_BACKOFF).status, Status::Skipped);
    }

    #[test]
    fn a_close_must_be_answered_and_messages_must_be_valid_and_few() {
        let answered = Connection {
            server_closed: Some((s(5.0), 4000)),
            client_closed: Some((s(5.01), Some(4000))),
            ended: Some(s(5.02)),
            ..open(0.0)
        };
        assert_eq!(judged(&client(vec![answered]), 10.0, &CLOSE_CLEAN).status, Status::Passed);
        let ignored = Connection { server_closed: Some((s(5.0), 4000)), ended: Some(s(5.02)), ..open(0.0) };
        let finding = judged(&client(vec![ignored]), 10.0, &CLOSE_CLEAN);
        assert!(finding.message.contains("without answering with a Close"), "{}", finding.message);
        // A Close the client started, echoed by the server, is not one the client owes an answer to.
        let leaving = Connection {
            client_closed: Some((s(4.0), Some(1000))),
            server_closed: Some((s(4.01), 1000)),
            ended: Some(s(4.02)),
            ..open(0.0)
        };
        assert_eq!(judged(&client(vec![leaving]), 10.0, &CLOSE_CLEAN).status, Status::Skipped);

        let mut sloppy = client(vec![open(0.0)]);
        sloppy.messages = 3;
        sloppy.invalid = 1;
        sloppy.invalid_examples = vec![Invalid { at: s(1.0), reason: "Ping at /timestamp: missing".into() }];
        assert_eq!(
            verdict(&judged(&sloppy, 10.0, &MESSAGES_SCHEMA)),
            (Status::Failed, "at +1.000 s: Ping at /timestamp: missing")
        );
        // 74 invalid Pings, five kept as examples: the count is exact, not the lines cut.
        sloppy.messages = 80;
        sloppy.invalid = 74;
        sloppy.invalid_examples = (0..5)
            .map(|i| Invalid { at: s(1.0 + f64::from(i)), reason: "Ping at /timestamp: not an integer".into() })
            .collect();
        let finding = judged(&sloppy, 10.0, &MESSAGES_SCHEMA);
        assert!(finding.message.starts_with("74 of 80 message(s) invalid; the first 5 shown:"), "{}", finding.message);
        assert_eq!(finding.message.lines().count(), 6, "{}", finding.message);
        assert!(!finding.message.contains("more"), "{}", finding.message);

        let mut flood = open(0.0);
        flood.messages = 150;
        flood.rate_peak = (101, s(2.0));
        let mut log = client(vec![flood]);
        log.messages = 150;
        let finding = judged(&log, 10.0, &RATE_LIMIT_RULE);
        assert!(finding.message.starts_with("101 messages within 60.0 s"), "{}", finding.message);
    }
}
