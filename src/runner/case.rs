//! Executes one case's steps against its own connections.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::RunSettings;
use crate::outcome::Status;
use crate::profile::MessageSet;
use crate::profile_hint::TypeTally;
use crate::scenario::loader::decode_hex;
use crate::scenario::template::Variables;
use crate::scenario::{Action, Case, Connect, Expect, ExpectClose, Level, Observe, Step, TokenPlacement};
use crate::schema::{Catalog, Discriminator};
use crate::session::{
    ConnectError, ConnectOptions, Direction as FrameDirection, Event, Recorded, Session, TranscriptEntry,
};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection the case is done with waits for the echo of its Close 1000.
const FINISH_WAIT: Duration = Duration::from_secs(1);
/// How long a connection accepted despite a bad token may take to be closed.
const REJECTION_GRACE: Duration = Duration::from_secs(2);
/// Frames shown with a failure...
const TRANSCRIPT_SHOWN: usize = 12;
/// ...plus the client's own last sends, kept even when older frames are cut.
const SENDS_SHOWN: usize = 4;
/// Distinct message types named in a report; the rest are counted together.
const DISTINCT_KEPT: usize = 20;
/// Arrival times kept per cadence group.
const ARRIVALS_KEPT: usize = 10_000;
/// Unmet steps noted in a recording; a `repeat` of failing steps is counted no further.
const RECORDED_STEPS_KEPT: usize = 1_000;
/// Soft failures (should/info) named in a report; the rest are counted, so a `repeat` of
/// failing steps cannot grow without bound.
const SOFT_KEPT: usize = 20;

pub struct CaseOutcome {
    pub status: Status,
    pub message: String,
    pub transcript: Vec<TranscriptEntry>,
    /// Every frame, whole, when recording.
    pub recording: Vec<Recorded>,
    /// What the case's connections received, by type (for the wrong-profile hint).
    pub received_types: TypeTally,
}

/// Failures that did not stop the case: the first few with their messages, the rest counted.
#[derive(Default)]
struct SoftFailures {
    kept: Vec<(Level, String)>,
    omitted_should: usize,
    omitted_info: usize,
}

impl SoftFailures {
    fn push(&mut self, level: Level, message: String) {
        if self.kept.len() < SOFT_KEPT {
            self.kept.push((level, message));
        } else if level == Level::Should {
            self.omitted_should += 1;
        } else {
            self.omitted_info += 1;
        }
    }

    fn any_should(&self) -> bool {
        self.omitted_should > 0 || self.kept.iter().any(|(l, _)| *l == Level::Should)
    }

    fn messages(&self) -> impl Iterator<Item = String> + '_ {
        let omitted = self.omitted_should + self.omitted_info;
        self.kept.iter().map(|(level, m)| format!("{m} [{}]", level.name())).chain((omitted > 0).then(|| {
            format!("… and {omitted} more ({} should, {} info) not shown", self.omitted_should, self.omitted_info)
        }))
    }
}

/// A rule that did not hold at one step.
struct Failure {
    /// Set when the failure has its own level (a wrong close code at `code_level`).
    level: Option<Level>,
    expected: String,
    actual: String,
}

fn fail(expected: impl Into<String>, actual: impl Into<String>) -> Failure {
    Failure { level: None, expected: expected.into(), actual: actual.into() }
}

struct CaseRun<'a> {
    settings: &'a RunSettings,
    catalog: &'a Catalog,
    variables: Variables,
    session: Option<Session>,
    last_connect: Option<ConnectOptions>,
    case_started: Instant,
    /// Transcript entries of connections already gone, in case time.
    earlier: Vec<TranscriptEntry>,
    /// Failures that did not stop the case (should/info level), with their step labels.
    soft: SoftFailures,
    /// Received message types of every connection of the case.
    received_types: TypeTally,
    /// Every frame of the case's connections, in order, when recording.
    recording: Vec<Recorded>,
}

pub async fn execute(case: &Case, settings: &RunSettings, catalog: &Catalog, variables: Variables) -> CaseOutcome {
    let mut run = CaseRun {
        settings,
        catalog,
        variables,
        session: None,
        last_connect: None,
        case_started: Instant::now(),
        earlier: Vec::new(),
        soft: SoftFailures::default(),
        received_types: TypeTally::default(),
        recording: Vec::new(),
    };
    let mut counter = 0;
    let hard = run.steps(&case.steps, case.level, &mut counter).await;
    let transcript = run.finish_transcript().await;
    let (status, message) = verdict(case.level, hard, &run.soft, settings.strict);
    let transcript = if status == Status::Passed { Vec::new() } else { transcript };
    CaseOutcome { status, message, transcript, received_types: run.received_types, recording: run.recording }
}

/// Combines the stopping failure (if any) and the soft ones into a status and a message.
fn verdict(case_level: Level, hard: Option<String>, soft: &SoftFailures, strict: bool) -> (Status, String) {
    let mut messages: Vec<String> = hard.iter().cloned().collect();
    messages.extend(soft.messages());
    let message = messages.join("\n");
    if case_level == Level::Info {
        let found = if message.is_empty() { "the rule held".to_string() } else { message };
        return (Status::Informational, found);
    }
    let status = if hard.is_some() {
        Status::Failed
    } else if soft.any_should() {
        if strict {
            Status::Failed
        } else {
            Status::Warned
        }
    } else {
        // Info-level notes on a passing case are kept in the message.
        Status::Passed
    };
    (status, message)
}

impl CaseRun<'_> {
    /// Runs steps in order; returns the message of a must-level failure, which stops the case.
    async fn steps(&mut self, steps: &[Step], case_level: Level, counter: &mut usize) -> Option<String> {
        for step in steps {
            // Every step yields, even one that is skipped or never waits, so the case's time
            // limit can always fire (a `repeat` of such steps would otherwise spin forever).
            tokio::task::yield_now().await;
            if !step.profiles.is_empty() && !self.settings.profile.shipped.is_some_and(|p| step.profiles.contains(&p)) {
                continue;
            }
            if step.when_saved.iter().any(|name| !self.variables.fixed.contains_key(&format!("saved.{name}"))) {
                continue;
            }
            *counter += 1;
            let label = match &step.label {
                Some(text) => format!("step {} ({}, {text})", counter, step.action.name()),
                None => format!("step {} ({})", counter, step.action.name()),
            };
            if let Action::Repeat(repeat) = &step.action {
                for _ in 0..repeat.times {
                    if let Some(stop) =
                        Box::pin(self.steps(&repeat.steps, step.level.unwrap_or(case_level), counter)).await
                    {
                        return Some(stop);
                    }
                }
                continue;
            }
            if let Err(failure) = self.step(&step.action).await {
                let level = failure.level.or(step.level).unwrap_or(case_level);
                if self.settings.record && self.recording.len() < RECORDED_STEPS_KEPT {
                    // What the step wanted, from the scenario: stable from run to run, unlike
                    // what arrived instead (counts of broadcasts, durations).
                    let data = format!("{label} [{}]: expected {}", level.name(), failure.expected);
                    self.recording.push(Recorded { direction: FrameDirection::Received, kind: "unmet", data });
                }
                let message = format!("{label}: expected {}; {}", failure.expected, failure.actual);
                if level == Level::Must {
                    return Some(message);
                }
                self.soft.push(level, message);
            }
        }
        None
    }

    async fn step(&mut self, action: &Action) -> Result<(), Failure> {
        match action {
            Action::Connect(connect) => self.connect(connect).await,
            Action::Reconnect(reconnect) => {
                let mut options =
                    self.last_connect.clone().ok_or_else(|| fail("an earlier connect step", "there was none"))?;
                if let Some(timeout) = reconnect.timeout {
                    options.timeout = self.settings.scaled(timeout);
                }
                self.retire_session().await;
                let result = Session::connect(&options).await;
                if self.settings.record {
                    let data = match &result {
                        Ok(_) => "accepted (reconnect)".to_string(),
                        Err(error) => format!("reconnect failed: {error}"),
                    };
                    self.recording.push(Recorded { direction: FrameDirection::Sent, kind: "connect", data });
                }
                let session =
                    result.map_err(|e| fail("the new connection to be accepted (HTTP 101)", e.to_string()))?;
                self.session = Some(session);
                Ok(())
            }
            Action::Send(send) => {
                let timeout = self.settings.scaled(Duration::from_secs(5));
                let variables = &self.variables;
                let session = self.session.as_mut().ok_or_else(no_connection)?;
                // A send on a connection that has ended fails this step; it never buffers.
                let sent = if let Some(template) = &send.json {
                    let message = variables.expand_json(template).map_err(|e| fail("a valid template", e))?;
                    session.send_text(&message.to_string(), timeout).await
                } else if let Some(text) = &send.text {
                    let text = variables.expand_str(text).map_err(|e| fail("a valid template", e))?;
                    session.send_text(&text, timeout).await
                } else {
                    let bytes = decode_hex(send.binary_hex.as_deref().unwrap_or("")).map_err(|e| fail("hex", e))?;
                    session.send_binary(&bytes, timeout).await
                };
                sent.map_err(|e| fail("to send the message", e))
            }
            Action::Expect(expect) => self.expect(expect).await,
            Action::ExpectSilence(silence) => {
                let session = self.session.as_mut().ok_or_else(no_connection)?;
                let deadline = Instant::now() + silence.duration;
                let wanted = format!("no message for {:?}", silence.duration);
                loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match session.recv(remaining).await {
                        Event::Timeout => return Ok(()),
                        Event::Text(text) => {
                            let t = self.catalog.discriminator().name_in(&text);
                            if !t.as_ref().is_some_and(|t| silence.ignore.contains(t)) {
                                return Err(fail(
                                    wanted,
                                    format!("got {}", describe_text(self.catalog.discriminator(), &text)),
                                ));
                            }
                        }
                        Event::Binary(bytes) => {
                            return Err(fail(wanted, format!("got a binary frame of {} bytes", bytes.len())))
                        }
                        other => return Err(fail(wanted, ended(&other, self.catalog.discriminator()))),
                    }
                }
            }
            Action::ExpectClose(close) => self.expect_close(close).await,
            Action::ExpectOpen(open) => {
                let session = self.session.as_mut().ok_or_else(no_connection)?;
                let wanted = format!("the connection to stay open for {:?}", open.duration);
                if session.has_ended() {
                    return Err(fail(wanted, session.end_reason().unwrap_or("it had already ended").to_string()));
                }
                let deadline = Instant::now() + open.duration;
                loop {
                    match session.recv(deadline.saturating_duration_since(Instant::now())).await {
                        Event::Timeout => return Ok(()),
                        Event::Text(_) | Event::Binary(_) => continue,
                        other => return Err(fail(wanted, ended(&other, self.catalog.discriminator()))),
                    }
                }
            }
            Action::Observe(observe) => self.observe(observe).await,
            Action::Close(close) => {
                let timeout = self.settings.scaled(Duration::from_secs(5));
                let session = self.session.as_mut().ok_or_else(no_connection)?;
                session.close(close.code, &close.reason, timeout).await.map_err(|e| fail("to send a Close frame", e))
            }
            Action::Drop(_) => {
                let session = self.session.take().ok_or_else(no_connection)?;
                let offset = session.started().saturating_duration_since(self.case_started);
                self.received_types.merge(session.received_types());
                let transcript = session.drop_connection();
                self.recording.extend(transcript.recording().iter().cloned());
                self.earlier.extend(transcript.entries().cloned().map(|e| shift(e, offset)));
                Ok(())
            }
            Action::Sleep(duration) => {
                tokio::time::sleep(*duration).await;
                Ok(())
            }
            Action::Repeat(_) => unreachable!("handled by steps()"),
        }
    }

    fn server_set(&self) -> MessageSet {
        self.settings.profile.server
    }

    /// Done with the current connection: it is closed cleanly (Close 1000, a short wait for
    /// the echo) unless it already ended, and its frames join the case's.
    async fn retire_session(&mut self) {
        if let Some(mut session) = self.session.take() {
            session.finish(self.settings.scaled(FINISH_WAIT)).await;
            self.recording.extend(session.transcript().recording().iter().cloned());
            self.received_types.merge(session.received_types());
            let offset = session.started().saturating_duration_since(self.case_started);
            self.earlier.extend(session.into_transcript().entries().cloned().map(|e| shift(e, offset)));
        }
    }

    /// The last frames of the case, always including the client's last few sends: on a chatty
    /// server, broadcasts would otherwise push what the client did out of view.
    async fn finish_transcript(&mut self) -> Vec<TranscriptEntry> {
        self.retire_session().await;
        let entries = std::mem::take(&mut self.earlier);
        let tail = entries.len().saturating_sub(TRANSCRIPT_SHOWN);
        let sent: Vec<usize> =
            entries.iter().enumerate().filter(|(_, e)| e.direction == FrameDirection::Sent).map(|(i, _)| i).collect();
        let recent_sends = &sent[sent.len().saturating_sub(SENDS_SHOWN)..];
        entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i >= tail || recent_sends.contains(i))
            .map(|(_, e)| e)
            .collect()
    }

    async fn connect(&mut self, connect: &Connect) -> Result<(), Failure> {
        let expand = |t: &str| self.variables.expand_str(t).map_err(|e| fail("a valid template", e));
        let timeout = self.settings.scaled(connect.timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
        let mut options =
            ConnectOptions::new(self.settings.url.clone(), timeout).with_network(self.settings.network.clone());
        options.max_message_bytes = self.settings.max_message_bytes;
        for (name, value) in &connect.headers {
            options.headers.push((name.clone(), expand(value)?));
        }
        for (name, value) in &connect.query {
            options.query.push((name.clone(), expand(value)?));
        }
        options.subprotocols = connect.subprotocols.clone();
        options.record = self.settings.record;
        if let Some(token) = &connect.token {
            let token = expand(token)?;
            match connect.token_in.unwrap_or(TokenPlacement::Header) {
                TokenPlacement::Header => options.headers.push(("Authorization".into(), format!("Bearer {token}"))),
                TokenPlacement::Query => options.query.push(("token".into(), token)),
            }
        }
        self.retire_session().await;
        let result = Session::connect(&options).await;
        if self.settings.record {
            let data = match &result {
                Ok(_) => "accepted".to_string(),
                Err(ConnectError::Rejected { status, .. }) => format!("refused with HTTP {status}"),
                Err(error) => format!("failed: {error}"),
            };
            self.recording.push(Recorded { direction: FrameDirection::Sent, kind: "connect", data });
        }
        if !connect.expect_rejected {
            self.last_connect = Some(options);
        }
        match (result, connect.expect_rejected) {
            (Ok(session), false) => {
                self.session = Some(session);
                Ok(())
            }
            (Err(error), false) => Err(fail("the upgrade to be accepted (HTTP 101)", error.to_string())),
            (Err(ConnectError::Rejected { status, .. }), true) if (400..500).contains(&status) => Ok(()),
            (Err(error), true) => {
                Err(fail("HTTP 401 at the handshake, or Close 1008 before any welcome", error.to_string()))
            }
            (Ok(session), true) => {
                self.session = Some(session);
                self.await_rejection().await
            }
        }
    }

    /// After an upgrade that should have been refused: the server may still refuse by closing
    /// with 1008 before welcoming the client.
    async fn await_rejection(&mut self) -> Result<(), Failure> {
        let wanted = "HTTP 401 at the handshake, or Close 1008 before any welcome";
        let welcome = self.variables.expand_str("{{welcome}}").unwrap_or_default();
        let grace = self.settings.scaled(REJECTION_GRACE);
        let discriminator = self.catalog.discriminator();
        let session = self.session.as_mut().ok_or_else(no_connection)?;
        let deadline = Instant::now() + grace;
        loop {
            match session.recv(deadline.saturating_duration_since(Instant::now())).await {
                Event::Text(text) if discriminator.name_in(&text).as_deref() == Some(welcome.as_str()) => {
                    return Err(fail(wanted, format!("the connection was accepted and welcomed ({welcome})")));
                }
                Event::Text(_) | Event::Binary(_) => continue,
                Event::Closed(Some((1008, _))) => return Ok(()),
                Event::Closed(frame) => return Err(fail(wanted, format!("it was closed with {}", close_text(&frame)))),
                Event::Dropped(reason) => {
                    return Err(fail(wanted, format!("it was dropped without a Close frame ({reason})")))
                }
                Event::Timeout => {
                    return Err(fail(wanted, format!("the connection was accepted and still open after {grace:?}")))
                }
            }
        }
    }

    async fn expect(&mut self, expect: &Expect) -> Result<(), Failure> {
        let mut wanted_type =
            self.variables.expand_str(&expect.message_type).map_err(|e| fail("a valid template", e))?;
        let first_type = wanted_type.clone();
        for other in &expect.or_types {
            wanted_type = format!("{wanted_type} or {other}");
        }
        let timeout = self.settings.scaled(expect.timeout);
        let set = self.server_set();
        let wanted =
            format!("{}{wanted_type} within {timeout:?}", if expect.first { "the first message to be " } else { "" });
        let discriminator = self.catalog.discriminator();
        let session = self.session.as_mut().ok_or_else(no_connection)?;
        let deadline = Instant::now() + timeout;
        let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
        let message = loop {
            let event = session.recv(deadline.saturating_duration_since(Instant::now())).await;
            let text = match event {
                Event::Text(text) => text,
                Event::Binary(_) if !expect.first => {
                    *skipped.entry("binary frames".into()).or_default() += 1;
                    continue;
                }
                Event::Binary(bytes) => {
                    return Err(fail(wanted, format!("got a binary frame of {} bytes", bytes.len())))
                }
                Event::Timeout if expect.optional => return Ok(()),
                Event::Timeout => {
                    let others = if skipped.is_empty() {
                        "nothing arrived".to_string()
                    } else {
                        let list: Vec<String> = skipped.iter().map(|(t, n)| format!("{n} {t}")).collect();
                        format!("only other messages arrived ({})", list.join(", "))
                    };
                    return Err(fail(wanted, others));
                }
                other => return Err(fail(wanted, ended(&other, self.catalog.discriminator()))),
            };
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            let found_type = parsed.as_ref().and_then(|v| discriminator.name_of(v)).map(str::to_string);
            let answers = |found: &str| found == first_type || expect.or_types.iter().any(|t| t == found);
            if found_type.as_deref().is_some_and(answers) {
                break parsed.expect("a type was read from it");
            }
            if expect.first {
                return Err(fail(wanted, format!("the first message was {}", describe_text(discriminator, &text))));
            }
            let mut key = found_type.unwrap_or_else(|| "untyped or non-JSON messages".into());
            if skipped.len() >= DISTINCT_KEPT && !skipped.contains_key(&key) {
                key = "messages of other types".into();
            }
            *skipped.entry(key).or_default() += 1;
        };
        if expect.schema {
            let verdict = self.catalog.validate(set, &message);
            if !verdict.is_valid() {
                let list: Vec<String> = verdict.violations.iter().take(5).map(|v| v.to_string()).collect();
                return Err(fail(
                    format!("{wanted_type} to match its schema"),
                    format!("it has {} violation(s): {}", verdict.violations.len(), list.join("; ")),
                ));
            }
        }
        let variables = &self.variables;
        let expand = |v: &Value| variables.expand_json(v).unwrap_or_else(|_| v.clone());
        for (pointer, matcher) in &expect.matches {
            matcher
                .check(message.pointer(pointer), &expand)
                .map_err(|e| fail(format!("{wanted_type}{pointer} to match"), e))?;
        }
        for (name, pointer) in &expect.save {
            let value = match message.pointer(pointer) {
                Some(value) => value,
                // An optional message's shape is another rule's business: save nothing.
                None if expect.optional => continue,
                None => return Err(fail(format!("{wanted_type}{pointer} to exist"), "it is absent")),
            };
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            self.variables.fixed.insert(format!("saved.{name}"), text);
        }
        Ok(())
    }

    async fn expect_close(&mut self, close: &ExpectClose) -> Result<(), Failure> {
        let timeout = self.settings.scaled(close.timeout);
        let codes: Vec<String> = close.codes.iter().map(u16::to_string).collect();
        let wanted = if codes.is_empty() {
            format!("a Close frame within {timeout:?}")
        } else {
            format!("a Close frame with code {} within {timeout:?}", codes.join(" or "))
        };
        let session = self.session.as_mut().ok_or_else(no_connection)?;
        let deadline = Instant::now() + timeout;
        loop {
            match session.recv(deadline.saturating_duration_since(Instant::now())).await {
                Event::Text(_) | Event::Binary(_) => continue,
                Event::Closed(frame) => {
                    let code = frame.as_ref().map(|(c, _)| *c);
                    if close.codes.is_empty() || code.is_some_and(|c| close.codes.contains(&c)) {
                        return Ok(());
                    }
                    return Err(Failure {
                        level: close.code_level,
                        expected: wanted,
                        actual: format!("the server closed with {}", close_text(&frame)),
                    });
                }
                Event::Timeout => return Err(fail(wanted, format!("the connection was still open after {timeout:?}"))),
                other => return Err(fail(wanted, ended(&other, self.catalog.discriminator()))),
            }
        }
    }

    async fn observe(&mut self, observe: &Observe) -> Result<(), Failure> {
        let set = self.server_set();
        let session = self.session.as_mut().ok_or_else(no_connection)?;
        let started = Instant::now();
        let deadline = started + observe.duration;
        // A hostile server may flood: keep a few examples and count the rest.
        let (mut count, mut invalid_count, mut invalid) = (0usize, 0usize, Vec::<String>::new());
        let mut note_invalid = |text: String| {
            invalid_count += 1;
            if invalid.len() < 5 {
                invalid.push(text);
            }
        };
        let mut arrivals: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        let wanted = format!("every message for {:?} to be valid", observe.duration);
        loop {
            let text = match session.recv(deadline.saturating_duration_since(Instant::now())).await {
                Event::Timeout => break,
                Event::Text(text) => text,
                Event::Binary(bytes) => {
                    count += 1;
                    if observe.validate {
                        note_invalid(format!("a binary frame of {} bytes (the protocol is JSON text)", bytes.len()));
                    }
                    continue;
                }
                other => {
                    return Err(fail(
                        format!("the connection to stay open for {:?}", observe.duration),
                        ended(&other, self.catalog.discriminator()),
                    ))
                }
            };
            count += 1;
            let Ok(message) = serde_json::from_str::<Value>(&text) else {
                if observe.validate {
                    note_invalid(format!("a text frame that is not JSON: {}", clip(&text)));
                }
                continue;
            };
            if observe.validate {
                let verdict = self.catalog.validate(set, &message);
                if let Some(first) = verdict.violations.first() {
                    let t = verdict.message_type.as_deref().unwrap_or("untyped message");
                    note_invalid(format!("{t} {first}"));
                }
            }
            if let Some(cadence) = &observe.cadence {
                if self.catalog.discriminator().name_of(&message) == Some(cadence.message_type.as_str()) {
                    let group = match &cadence.group_by {
                        Some(pointer) => message.pointer(pointer).map_or_else(|| "(none)".into(), |v| v.to_string()),
                        None => String::new(),
                    };
                    if arrivals.len() < DISTINCT_KEPT * 50 || arrivals.contains_key(&group) {
                        let times = arrivals.entry(group).or_default();
                        if times.len() < ARRIVALS_KEPT {
                            times.push(started.elapsed());
                        }
                    }
                }
            }
        }
        if invalid_count > 0 {
            return Err(fail(
                wanted,
                format!("{invalid_count} of {count} messages were invalid; first: {}", invalid.join(" | ")),
            ));
        }
        if count < observe.min_messages {
            return Err(Failure {
                level: observe.min_messages_level,
                expected: format!("at least {} message(s) in {:?}", observe.min_messages, observe.duration),
                actual: format!("{count} arrived"),
            });
        }
        if let Some(cadence) = &observe.cadence {
            check_cadence(cadence, &arrivals)?;
        }
        Ok(())
    }
}

fn check_cadence(
    cadence: &crate::scenario::Cadence,
    arrivals: &BTreeMap<String, Vec<Duration>>,
) -> Result<(), Failure> {
    let every = cadence.every.as_secs_f64();
    let (low, high) = (every * (1.0 - cadence.tolerance), every * (1.0 + cadence.tolerance));
    let wanted = format!(
        "{} about every {:?} (median interval {:.0}–{:.0} ms) per {}",
        cadence.message_type,
        cadence.every,
        low * 1000.0,
        high * 1000.0,
        cadence.group_by.as_deref().unwrap_or("connection")
    );
    if arrivals.len() < cadence.min_groups.max(1) {
        return Err(fail(wanted, format!("{} arrived for {} group(s)", cadence.message_type, arrivals.len())));
    }
    let mut problems = Vec::new();
    for (group, times) in arrivals {
        if times.len() < 2 {
            problems.push(format!("{group}: only {} message(s)", times.len()));
            continue;
        }
        let mut intervals: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        intervals.sort_by(f64::total_cmp);
        let median = intervals[intervals.len() / 2];
        if !(low..=high).contains(&median) {
            problems.push(format!("{group}: median interval {:.0} ms", median * 1000.0));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(wanted, problems.join(", ")))
    }
}

fn no_connection() -> Failure {
    fail("an open connection", "there is none: add a connect step first")
}

fn shift(mut entry: TranscriptEntry, offset: Duration) -> TranscriptEntry {
    entry.at_ms += offset.as_millis() as u64;
    entry
}

use crate::session::clip;

fn describe_text(discriminator: &Discriminator, text: &str) -> String {
    match discriminator.name_in(text) {
        Some(t) => format!("{t} ({})", clip(text)),
        None => format!("{:?}", clip(text)),
    }
}

fn close_text(frame: &Option<(u16, String)>) -> String {
    match frame {
        Some((code, reason)) if reason.is_empty() => format!("code {code}"),
        Some((code, reason)) => format!("code {code} ({reason})"),
        None => "an empty Close frame (no code)".into(),
    }
}

fn ended(event: &Event, discriminator: &Discriminator) -> String {
    match event {
        Event::Closed(frame) => format!("the server closed the connection with {}", close_text(frame)),
        Event::Dropped(reason) => format!("the connection was dropped without a Close frame ({reason})"),
        Event::Timeout => "nothing arrived".into(),
        Event::Text(text) => format!("got {}", describe_text(discriminator, text)),
        Event::Binary(bytes) => format!("got a binary frame of {} bytes", bytes.len()),
    }
}
