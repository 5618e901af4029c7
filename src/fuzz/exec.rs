//! One input against the target, and the invariants it is judged on. Each case has a fresh
//! connection; a quiet second connection, the bystander, shows whether one client's input
//! costs another its service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::frame::Frame;
use crate::load::operation::{Answer, Operation};
use crate::network::Network;
use crate::profile::{MessageSet, ProfileSpec};
use crate::schema::Catalog;
use crate::session::{ConnectError, ConnectOptions, Event, Session};

/// What must hold after every input, each with a stable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Invariant {
    /// Every reply validates against the profile's server schemas.
    #[serde(rename = "reply.schema")]
    ReplySchema,
    /// A Ping sent after the input is answered within the probe timeout.
    #[serde(rename = "connection.unresponsive")]
    Unresponsive,
    /// The connection ends only with a Close frame.
    #[serde(rename = "connection.dropped")]
    Dropped,
    /// A Close carries a code RFC 6455 and the spec allow for bad input.
    #[serde(rename = "close.code")]
    CloseCode,
    /// A fresh connection still gets a welcome.
    #[serde(rename = "server.down")]
    ServerDown,
    /// A second, quiet connection still gets its Pong in time.
    #[serde(rename = "bystander")]
    Bystander,
}

impl Invariant {
    pub const ALL: [Invariant; 6] = [
        Invariant::ReplySchema,
        Invariant::Unresponsive,
        Invariant::Dropped,
        Invariant::CloseCode,
        Invariant::ServerDown,
        Invariant::Bystander,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Invariant::ReplySchema => "reply.schema",
            Invariant::Unresponsive => "connection.unresponsive",
            Invariant::Dropped => "connection.dropped",
            Invariant::CloseCode => "close.code",
            Invariant::ServerDown => "server.down",
            Invariant::Bystander => "bystander",
        }
    }

    pub fn parse(id: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.id() == id)
    }

    /// What should have happened, for bundles and reports.
    pub fn expected(self, target: &Target) -> String {
        let probe = crate::clients::timing::seconds(target.probe_timeout);
        match self {
            Invariant::ReplySchema => {
                format!("every reply validates against the schema of a message {} sends", target.profile.name)
            }
            Invariant::Unresponsive => format!(
                "a {} sent after the input is answered with a {} within {probe}",
                target.probe.request,
                target.probe.replies.join(" or ")
            ),
            Invariant::Dropped => "the connection ends only with a Close frame".into(),
            Invariant::CloseCode => format!(
                "a Close after bad input carries {} (RFC 6455 7.4.1 and the spec)",
                ALLOWED_CLOSE_CODES.map(|c| c.to_string()).join(", ")
            ),
            Invariant::ServerDown => match target.welcome() {
                Some(welcome) => format!("a fresh connection is welcomed with {welcome}"),
                None => "a fresh connection opens".into(),
            },
            Invariant::Bystander => {
                format!("a second, quiet connection gets its {} within {probe}", target.probe.replies.join(" or "))
            }
        }
    }
}

/// The codes a server may close with after bad input: protocol error, unsupported data,
/// invalid payload (not UTF-8), policy (the rate limit, auth) and too big.
pub const ALLOWED_CLOSE_CODES: [u16; 5] = [1002, 1003, 1007, 1008, 1009];

/// An invariant an input broke, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub invariant: Invariant,
    pub observed: String,
}

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub profile: Arc<ProfileSpec>,
    /// The request whose reply shows the server still answers (the heartbeat Ping for a
    /// shipped profile).
    pub probe: Operation,
    pub network: Arc<Network>,
    /// How long a Ping's Pong may take (far below the spec's 10 s).
    pub probe_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Replies have come and gone when nothing arrives for this long after the input.
const SETTLE: Duration = Duration::from_millis(25);
/// The longest the replies to an input are read before the probe.
const SETTLE_MAX: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Refused upgrades are retried with pauses doubling up to this one (about 3 s in all).
const REFUSED_RETRY_MAX: Duration = Duration::from_millis(1600);

impl Target {
    fn server_set(&self) -> MessageSet {
        self.profile.server
    }

    /// The welcome a fresh connection gets, when the profile names one.
    pub fn welcome(&self) -> Option<&str> {
        self.profile.welcome.as_deref()
    }

    /// The probe request, stamped now.
    fn probe_text(&self) -> String {
        self.probe.request_text(1, u128::from(reference_server::now_ms()))
    }

    /// Whether `text` answers the probe (with any id: a reply at all shows the server answers).
    fn answers_probe(&self, text: &str) -> bool {
        self.probe.answer_text(text) != Answer::NotAReply
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions::new(self.url.clone(), self.connect_timeout).with_network(self.network.clone())
    }

    /// Before any input: a fresh connection must be welcomed, or nothing can be judged (a
    /// server that withholds its welcome until a token is sent, say).
    pub async fn baseline(&self, catalog: &Catalog) -> Result<(), String> {
        let mut broken = Vec::new();
        match self.open(catalog, &mut broken).await {
            Some(mut session) => {
                session.finish(Duration::from_millis(300)).await;
                Ok(())
            }
            None => Err(broken.into_iter().map(|b| b.observed).next().unwrap_or_default()),
        }
    }

    /// A fresh connection and its welcome, or why the server is down. An upgrade refused with
    /// 429 or 503 (a limit on connections from this address) is tried again for a few seconds
    /// before the server counts as down.
    async fn open(&self, catalog: &Catalog, broken: &mut Vec<Broken>) -> Option<Session> {
        let mut pause = Duration::from_millis(200);
        let mut session = loop {
            match Session::connect(&self.options()).await {
                Ok(session) => break session,
                Err(ConnectError::Rejected { status: status @ (429 | 503), .. }) if pause <= REFUSED_RETRY_MAX => {
                    if pause == Duration::from_millis(200) {
                        eprintln!("wsprobe fuzz: the server refused an upgrade with HTTP {status}; pausing before trying again");
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(error) => {
                    broken.push(Broken {
                        invariant: Invariant::ServerDown,
                        observed: format!("a fresh connection failed: {error}"),
                    });
                    return None;
                }
            }
        };
        // Without a welcome to wait for, an open connection is all a fresh one shows.
        let Some(welcome) = self.welcome().map(str::to_string) else { return Some(session) };
        let deadline = tokio::time::Instant::now() + self.probe_timeout;
        loop {
            match session.recv(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
                Event::Text(text) => {
                    let kind = self.judge_reply(catalog, &text, broken);
                    if kind.is_some_and(|kind| kind.is(Some(&welcome))) {
                        return Some(session);
                    }
                }
                Event::Binary(_) => self.binary_reply(broken),
                other => {
                    broken.push(Broken {
                        invariant: Invariant::ServerDown,
                        observed: format!("a fresh connection got no {welcome} ({})", describe(&other)),
                    });
                    return None;
                }
            }
        }
    }

    /// Validates a reply; returns its type.
    fn judge_reply(&self, catalog: &Catalog, text: &str, broken: &mut Vec<Broken>) -> Option<Kind> {
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => {
                note(
                    broken,
                    Invariant::ReplySchema,
                    format!("a reply is not JSON ({error}): {}", crate::session::clip(text)),
                );
                return None;
            }
        };
        let verdict = catalog.validate(self.server_set(), &value);
        if let Some(violation) = verdict.violations.first() {
            let kind = verdict.message_type.clone().unwrap_or_else(|| "a reply".into());
            note(broken, Invariant::ReplySchema, format!("{kind} {violation}: {}", crate::session::clip(text)));
        }
        if self.profile.is_broadcast(&value) {
            return Some(Kind::Push);
        }
        self.profile.discriminator().name_of(&value).map(|name| Kind::Named(name.to_string()))
    }

    fn binary_reply(&self, broken: &mut Vec<Broken>) {
        note(broken, Invariant::ReplySchema, "a binary reply: the protocol's messages are JSON text".into());
    }

    /// Sends `frames` on a fresh connection, reads the replies, and probes with a Ping.
    pub async fn run_case(&self, catalog: &Catalog, frames: &[Frame]) -> Vec<Broken> {
        let mut broken = Vec::new();
        let Some(mut session) = self.open(catalog, &mut broken).await else { return broken };
        let mut ended = false;
        'send: for frame in frames {
            if !frame.delay.is_zero() {
                tokio::time::sleep(frame.delay).await;
            }
            for message in frame.messages() {
                if session.send_message(message, SEND_TIMEOUT).await.is_err() {
                    break 'send;
                }
            }
        }
        // The replies to the input, until none has come for a moment. Only replies (a Pong,
        // an Error, anything that is not a known push) count: a server that streams pushes
        // without pause would otherwise never look settled.
        let settle_until = tokio::time::Instant::now() + SETTLE_MAX;
        let mut quiet_until = tokio::time::Instant::now() + SETTLE;
        while !ended && tokio::time::Instant::now() < settle_until.min(quiet_until) {
            let wait = settle_until.min(quiet_until).saturating_duration_since(tokio::time::Instant::now());
            match session.recv(wait).await {
                Event::Timeout => break,
                event => match self.observe(catalog, event, &mut broken) {
                    Seen::Ended => ended = true,
                    Seen::Message { push: true } => {}
                    Seen::Message { push: false } => quiet_until = tokio::time::Instant::now() + SETTLE,
                },
            }
        }
        if !ended {
            if session.send_text(&self.probe_text(), SEND_TIMEOUT).await.is_ok() {
                let deadline = tokio::time::Instant::now() + self.probe_timeout;
                loop {
                    let event = session.recv(deadline.saturating_duration_since(tokio::time::Instant::now())).await;
                    if let Event::Timeout = event {
                        note(
                            &mut broken,
                            Invariant::Unresponsive,
                            format!(
                                "no {} within {} of the {} sent after the input",
                                self.probe.replies.join(" or "),
                                crate::clients::timing::seconds(self.probe_timeout),
                                self.probe.request
                            ),
                        );
                        break;
                    }
                    let pong = matches!(&event, Event::Text(text) if self.answers_probe(text));
                    ended = self.observe(catalog, event, &mut broken) == Seen::Ended;
                    if ended || pong {
                        break;
                    }
                }
            } else {
                // The write failed: the server ended the connection; read how.
                let event = session.recv(self.probe_timeout).await;
                ended = self.observe(catalog, event, &mut broken) == Seen::Ended;
                if !ended {
                    note(
                        &mut broken,
                        Invariant::Unresponsive,
                        format!(
                            "the server stopped reading: the {} after the input could not be sent",
                            self.probe.request
                        ),
                    );
                }
            }
        }
        if !ended && !broken.iter().any(|b| b.invariant == Invariant::Unresponsive) {
            session.finish(Duration::from_millis(300)).await;
        }
        broken
    }

    /// Judges one event after the input.
    fn observe(&self, catalog: &Catalog, event: Event, broken: &mut Vec<Broken>) -> Seen {
        match event {
            Event::Text(text) => {
                let kind = self.judge_reply(catalog, &text, broken);
                Seen::Message { push: kind == Some(Kind::Push) || kind.is_some_and(|k| k.is(self.welcome())) }
            }
            Event::Binary(_) => {
                self.binary_reply(broken);
                Seen::Message { push: false }
            }
            Event::Closed(Some((code, _))) if ALLOWED_CLOSE_CODES.contains(&code) => Seen::Ended,
            Event::Closed(frame) => {
                let what = frame.map_or("a Close without a code".to_string(), |(code, reason)| {
                    format!("Close {code} {reason}").trim_end().to_string()
                });
                note(broken, Invariant::CloseCode, format!("the server closed the connection with {what}"));
                Seen::Ended
            }
            Event::Dropped(reason) => {
                note(broken, Invariant::Dropped, format!("the connection ended without a Close frame ({reason})"));
                Seen::Ended
            }
            Event::Timeout => Seen::Message { push: false },
        }
    }
}

/// What a reply was: a message the server sends on its own schedule, or a named one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Push,
    Named(String),
}

impl Kind {
    fn is(&self, name: Option<&str>) -> bool {
        matches!((self, name), (Kind::Named(own), Some(name)) if own == name)
    }
}

/// What an event after the input was: a message (one the server pushes on its own, or a
/// reply), or the end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Message { push: bool },
    Ended,
}

/// Keeps the first observation of each invariant.
fn note(broken: &mut Vec<Broken>, invariant: Invariant, observed: String) {
    if !broken.iter().any(|b| b.invariant == invariant) {
        broken.push(Broken { invariant, observed });
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Text(text) => format!("got {}", crate::session::clip(text)),
        Event::Binary(bytes) => format!("got {} binary bytes", bytes.len()),
        Event::Closed(Some((code, reason))) => format!("closed with {code} {reason}").trim_end().to_string(),
        Event::Closed(None) => "closed without a code".into(),
        Event::Dropped(reason) => format!("dropped: {reason}"),
        Event::Timeout => "nothing arrived in time".into(),
    }
}

/// The quiet second connection: a Ping now and then (well within the rate limit), whose Pong
/// must come within the probe timeout.
pub struct Bystander {
    session: Option<Session>,
    last: Option<Instant>,
}

/// Bystander Pings at most this often: 60 a minute, within the spec's 100.
pub const BYSTANDER_EVERY: Duration = Duration::from_secs(1);

impl Bystander {
    pub fn new() -> Bystander {
        Bystander { session: None, last: None }
    }

    pub fn due(&self) -> bool {
        self.last.is_none_or(|last| last.elapsed() >= BYSTANDER_EVERY)
    }

    /// Pings the bystander (opening it again if it was closed); what broke, if anything.
    pub async fn check(&mut self, target: &Target, catalog: &Catalog) -> Option<Broken> {
        if let Some(last) = self.last {
            // Never faster than the limit, even when a shrink asks often.
            let wait = BYSTANDER_EVERY.saturating_sub(last.elapsed());
            tokio::time::sleep(wait).await;
        }
        self.last = Some(Instant::now());
        let mut ignored = Vec::new();
        if self.session.as_ref().is_none_or(Session::has_ended) {
            self.session = target.open(catalog, &mut ignored).await;
        }
        let session = self.session.as_mut()?;
        if session.send_text(&target.probe_text(), SEND_TIMEOUT).await.is_err() {
            self.session = None;
            return Some(Broken {
                invariant: Invariant::Bystander,
                observed: format!("the bystander's {} could not be sent", target.probe.request),
            });
        }
        let sent = Instant::now();
        let deadline = tokio::time::Instant::now() + target.probe_timeout;
        loop {
            match session.recv(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
                Event::Text(text) if target.answers_probe(&text) => return None,
                Event::Text(_) | Event::Binary(_) => continue,
                // A policy close (a limit counted per address, which the fuzzer's own
                // connections fill) is the server's rule, not a bystander starved: open again.
                Event::Closed(Some((1008, _))) => {
                    self.session = None;
                    return None;
                }
                other => {
                    let observed = match other {
                        Event::Timeout => format!(
                            "the bystander's {} got no {} within {}",
                            target.probe.request,
                            target.probe.replies.join(" or "),
                            crate::clients::timing::seconds(target.probe_timeout)
                        ),
                        other => {
                            format!("the bystander's connection ended after {:?}: {}", sent.elapsed(), describe(&other))
                        }
                    };
                    self.session = None;
                    return Some(Broken { invariant: Invariant::Bystander, observed });
                }
            }
        }
    }

    pub async fn close(&mut self) {
        if let Some(mut session) = self.session.take() {
            session.finish(Duration::from_millis(300)).await;
        }
    }
}

impl Default for Bystander {
    fn default() -> Bystander {
        Bystander::new()
    }
}
