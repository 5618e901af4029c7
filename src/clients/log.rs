//! What each client did, built from the reference server's events as they happen: attempts,
//! Pings, closes, and a running check of what the client sent (schema and rate), so memory
//! stays bounded however long `serve` runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reference_server::observe::{AttemptId, Event, EventKind, Observer};
use serde_json::Value;

use super::timing::Timing;
use crate::profile::MessageSet;
use crate::schema::Catalog;

/// Invalid messages kept per client as examples; more are counted.
const EXAMPLES_KEPT: usize = 5;
/// Connections kept per client; a client that reconnects more often than this is summarized.
const CONNECTIONS_KEPT: usize = 100_000;

/// One TCP connection from a client, successful or not. Times are since `serve` started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connection {
    pub at: Duration,
    /// The HTTP status the upgrade got instead of 101.
    pub refused: Option<u16>,
    pub opened: Option<Duration>,
    pub pings: Vec<Duration>,
    /// Pings the server left unanswered on purpose.
    pub withheld: Vec<Duration>,
    pub server_closed: Option<(Duration, u16)>,
    pub server_dropped: Option<Duration>,
    pub client_closed: Option<(Duration, Option<u16>)>,
    pub ended: Option<Duration>,
    pub messages: u64,
    /// The most messages in any one rate window, and when that window ended.
    pub rate_peak: (usize, Duration),
    /// Message times in the current rate window (emptied when the connection ends). Not
    /// capped, so the peak reported is the true count: past the limit the server closes the
    /// connection, which bounds what one connection can add.
    pub(super) recent: VecDeque<Duration>,
}

impl Connection {
    /// The server sent Close before the client did.
    pub fn server_closed_first(&self) -> Option<(Duration, u16)> {
        let (at, code) = self.server_closed?;
        match self.client_closed {
            Some((client_at, _)) if client_at < at => None,
            _ => Some((at, code)),
        }
    }

    /// The server ended it (a Close it started, or a drop), rather than the client.
    pub fn ended_by_server(&self) -> bool {
        self.server_dropped.is_some() || self.server_closed_first().is_some()
    }

    /// When the connection ended, or at the end of observation if it had not.
    pub fn end_or(&self, observed_until: Duration) -> Duration {
        self.ended.unwrap_or(observed_until)
    }
}

/// An invalid message, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub at: Duration,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientLog {
    /// The name the client gave, or its IP address.
    pub name: String,
    pub named: bool,
    pub connections: Vec<Connection>,
    /// Connections beyond [`CONNECTIONS_KEPT`], counted only.
    pub connections_dropped: u64,
    pub messages: u64,
    pub invalid: u64,
    pub invalid_examples: Vec<Invalid>,
}

#[derive(Default)]
struct State {
    clients: Vec<ClientLog>,
    by_name: HashMap<String, usize>,
    /// Attempt → (client index, connection index).
    attempts: HashMap<AttemptId, (usize, usize)>,
}

/// The observer `serve` gives the reference server.
pub struct ClientRecorder {
    origin: Instant,
    catalog: Arc<Catalog>,
    rate_window: Duration,
    state: Mutex<State>,
}

impl ClientRecorder {
    pub fn new(origin: Instant, catalog: Arc<Catalog>, timing: Timing) -> ClientRecorder {
        ClientRecorder { origin, catalog, rate_window: timing.rate_window(), state: Mutex::default() }
    }

    /// Every client seen, in the order they first connected.
    pub fn clients(&self) -> Vec<ClientLog> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clients.clone()
    }

    fn since(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    fn check_message(&self, text: Option<&str>) -> (bool, Option<String>) {
        let Some(text) = text else {
            return (false, Some("a binary frame: the protocol is JSON in text frames".into()));
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => return (false, Some(format!("not JSON ({error}): {}", crate::session::clip(text)))),
        };
        let is_ping = value.get("type").and_then(Value::as_str) == Some("Ping");
        let verdict = self.catalog.validate(MessageSet::Client, &value);
        let problem = verdict.violations.first().map(|v| {
            let shown = verdict.message_type.as_deref().unwrap_or("message");
            format!("{shown} {v}")
        });
        (is_ping, problem)
    }
}

impl Observer for ClientRecorder {
    fn observe(&self, event: Event) {
        let at = self.since(event.at);
        // Parse and validate outside the lock: it is the only costly part.
        let checked = match &event.kind {
            EventKind::Received { text } => Some(self.check_message(text.as_deref())),
            _ => None,
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { clients, by_name, attempts } = &mut *state;
        if let EventKind::Attempt { peer, client } = &event.kind {
            let (name, named) = match client {
                Some(name) => (name.clone(), true),
                None => (peer.ip().to_string(), false),
            };
            let index = *by_name.entry(name.clone()).or_insert_with(|| {
                clients.push(ClientLog { name, named, ..ClientLog::default() });
                clients.len() - 1
            });
            let log = &mut clients[index];
            if log.connections.len() >= CONNECTIONS_KEPT {
                log.connections_dropped += 1;
                return;
            }
            log.connections.push(Connection { at, ..Connection::default() });
            attempts.insert(event.attempt, (index, log.connections.len() - 1));
            return;
        }
        let Some(&(client, connection)) = attempts.get(&event.attempt) else { return };
        let log = &mut clients[client];
        let c = &mut log.connections[connection];
        match event.kind {
            EventKind::Attempt { .. } => {}
            EventKind::Refused { status, .. } => c.refused = Some(status),
            EventKind::Opened => c.opened = Some(at),
            EventKind::Received { .. } => {
                let (is_ping, problem) = checked.unwrap_or_default();
                if is_ping {
                    c.pings.push(at);
                }
                c.messages += 1;
                log.messages += 1;
                while c.recent.front().is_some_and(|t| at.saturating_sub(*t) >= self.rate_window) {
                    c.recent.pop_front();
                }
                c.recent.push_back(at);
                if c.recent.len() > c.rate_peak.0 {
                    c.rate_peak = (c.recent.len(), at);
                }
                if let Some(reason) = problem {
                    log.invalid += 1;
                    if log.invalid_examples.len() < EXAMPLES_KEPT {
                        log.invalid_examples.push(Invalid { at, reason });
                    }
                }
            }
            EventKind::PongWithheld => c.withheld.push(at),
            EventKind::ServerClosed { code } => {
                c.server_closed.get_or_insert((at, code));
            }
            EventKind::ServerDropped => c.server_dropped = Some(at),
            EventKind::ClientClosed { code } => {
                c.client_closed.get_or_insert((at, code));
            }
            EventKind::Ended => {
                c.ended = Some(at);
                c.recent = VecDeque::new();
                attempts.remove(&event.attempt);
            }
        }
    }
}
