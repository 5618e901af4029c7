//! One connection's life under load: connect (with the spec's reconnect backoff), then the
//! mode's loop, recording into the shared recorder. Errors are counted and never stop the run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::operation::Answer;
use super::pacing::Schedule;
use super::plan::{ClockOffset, LoadPlan, Mode};
use super::recorder::{Metric, Recorder};
use crate::profile::MessageSet;
use crate::schema::Catalog;
use crate::session::{clip, ConnectError, ConnectOptions, Session, Stream};

/// The spec's reconnection strategy: 1 s doubling to 30 s, at most 10 attempts.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const MAX_ATTEMPTS: u32 = 10;
/// The spec's client heartbeat: a Ping every 30 s.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Counters are batched per connection and published this often (in messages).
const PUBLISH_EVERY: u64 = 64;
/// Messages handled per wake-up before the loop sends again.
const MAX_BATCH: usize = 256;
/// Read buffer per connection: small, so ten thousand idle connections stay cheap.
const READ_BUFFER: usize = 2 * 1024;
/// At the end of a run: how long each connection waits for the echo of its Close 1000.
const END_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Connect mode: how long a Close may wait for the server's echo before the next connect.
/// RFC 6455 requires the echo; a server that never sends it is counted (`close_not_echoed`),
/// and the wait is left out of the connect rate.
pub const CLOSE_ECHO_WAIT: Duration = Duration::from_millis(250);

pub struct Shared {
    pub plan: LoadPlan,
    pub recorder: Recorder,
    pub catalog: Arc<Catalog>,
    pub set: MessageSet,
    /// The other endpoint's messages, for the wrong-profile hint (shipped profiles only).
    pub other_set: Option<MessageSet>,
    pub started: tokio::time::Instant,
    pub deadline: tokio::time::Instant,
    /// Open loop: every connection's send schedule, and the wakers the pacing thread rings.
    pub schedule: Option<Schedule>,
    pub wakers: Vec<Arc<Notify>>,
}

/// Why a connection's loop ended.
enum End {
    /// The run is over.
    Deadline,
    /// The connection failed; reconnect.
    Broken,
    /// This server gives this mode nothing to measure (the reason is recorded); stop.
    Unmeasurable,
}

/// Per-connection counters, published in batches to keep atomics off the hot path.
#[derive(Default)]
struct Tally {
    sent: u64,
    received: u64,
    checked: u64,
    own_profile_only: u64,
    violations: u64,
    messages_seen: u64,
}

impl Tally {
    fn publish(&mut self, recorder: &Recorder) {
        let c = &recorder.counters;
        Recorder::add(&c.sent, std::mem::take(&mut self.sent));
        Recorder::add(&c.received, std::mem::take(&mut self.received));
        Recorder::add(&c.checked, std::mem::take(&mut self.checked));
        Recorder::add(&c.own_profile_only, std::mem::take(&mut self.own_profile_only));
        Recorder::add(&c.schema_violations, std::mem::take(&mut self.violations));
    }
}

pub async fn run_connection(shared: Arc<Shared>, index: usize) {
    let plan = &shared.plan;
    let ramp_offset = plan.ramp_up.mul_f64(index as f64 / plan.connections as f64);
    tokio::time::sleep_until(shared.started + ramp_offset).await;
    if plan.mode == Mode::Connect {
        return Box::pin(connect_storm(&shared)).await;
    }
    let counters = &shared.recorder.counters;
    let mut options = ConnectOptions::new(plan.url.clone(), plan.connect_timeout).with_network(plan.network.clone());
    options.read_buffer_bytes = READ_BUFFER;
    options.max_message_bytes = plan.max_message_bytes;
    let mut attempts = 0u32;
    let mut backoff = BACKOFF_START;
    let mut tally = Tally::default();
    // Open loop: the next scheduled send. It survives reconnects, so sends that fell due while
    // the connection was down are still made (late, and measured from when they were due).
    let mut next_send = 0u64;
    let mut ever_connected = false;
    let mut first = true;
    while tokio::time::Instant::now() < shared.deadline {
        if !first {
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                shared.recorder.error("gave_up_after_10_reconnects");
                return;
            }
            if tokio::time::timeout_at(shared.deadline, tokio::time::sleep(backoff)).await.is_err() {
                break;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            Recorder::add(&counters.reconnects, 1);
        }
        first = false;
        let started = Instant::now();
        Recorder::add(&counters.connect_attempts, 1);
        // Boxed, here and below: an idle connection's task keeps only the state of the step it
        // is in, not room for the largest step (ten thousand of them add up).
        let connected = tokio::time::timeout_at(shared.deadline, Box::pin(Session::connect(&options))).await;
        let session = match connected {
            Err(_) => {
                Recorder::add(&counters.handshake_pending_at_end, 1);
                break;
            }
            Ok(Err(error)) => {
                Recorder::add(&counters.connect_failures, 1);
                shared.recorder.error(connect_error_kind(&error));
                continue;
            }
            Ok(Ok(session)) => session,
        };
        shared.recorder.record(Metric::Connect, started.elapsed());
        if let Some(tls) = session.tls_handshake {
            shared.recorder.record(Metric::TlsHandshake, tls);
        }
        Recorder::add(&counters.connects, 1);
        attempts = 0;
        backoff = BACKOFF_START;
        if let (Some(schedule), false) = (shared.schedule, ever_connected) {
            // The schedule runs from the first open: a slow first handshake is not server latency.
            next_send = schedule.due_by(index, Instant::now());
        }
        ever_connected = true;
        let mut ws = session.into_stream();
        Recorder::add(&counters.connections_up, 1);
        let end = match plan.mode {
            Mode::Ping => Box::pin(ping_loop(&shared, index, &mut ws, &mut tally, &mut next_send)).await,
            Mode::Push => Box::pin(push_loop(&shared, &mut ws, &mut tally)).await,
            Mode::Connect => unreachable!("handled above"),
        };
        counters.connections_up.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tally.publish(&shared.recorder);
        match end {
            End::Broken => Recorder::add(&counters.connections_lost, 1),
            End::Deadline | End::Unmeasurable => {
                // Leave politely (Close 1000); a slow server delays the end by a second at most.
                crate::session::close_normally(&mut ws, END_CLOSE_WAIT).await;
                break;
            }
        }
    }
    if let (Some(schedule), true) = (shared.schedule, ever_connected) {
        let due = schedule.due_by(index, shared.deadline.into_std() - Duration::from_nanos(1));
        Recorder::add(&counters.unsent_at_end, due.saturating_sub(next_send));
    }
}

fn connect_error_kind(error: &ConnectError) -> String {
    match error {
        ConnectError::Rejected { status, .. } => format!("handshake_rejected_{status}"),
        ConnectError::Timeout(_) => "connect_timeout".into(),
        ConnectError::Unreachable { .. } => "connect_failed".into(),
        ConnectError::InvalidUrl { .. } | ConnectError::Handshake(_) => "handshake_failed".into(),
        ConnectError::Tls { .. } => "tls_failed".into(),
        ConnectError::Proxy(_) => "proxy_refused".into(),
        ConnectError::Subprotocol(_) => "no_subprotocol".into(),
    }
}

/// Request `n` of a connection, stamped now.
fn request_text(shared: &Shared, n: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    shared.plan.operation.request_text(n, now)
}

/// What a received text frame was, after optional validation.
fn classify(shared: &Shared, tally: &mut Tally, text: &str) -> Option<Value> {
    tally.received += 1;
    let n = tally.messages_seen;
    tally.messages_seen += 1;
    if !shared.plan.validation.checks(n) {
        return None;
    }
    tally.checked += 1;
    match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            let verdict = shared.catalog.validate(shared.set, &value);
            if let Some(t) = verdict.message_type.as_deref() {
                if shared.catalog.message(shared.set, t).is_none() {
                    shared.recorder.foreign_type(t);
                } else if shared.other_set.is_some_and(|other| shared.catalog.message(other, t).is_none()) {
                    tally.own_profile_only += 1;
                }
            }
            if !verdict.is_valid() {
                tally.violations += 1;
                shared.recorder.invalid_type(verdict.message_type.as_deref().unwrap_or("(no type)"));
            }
            Some(value)
        }
        // Not JSON at all: a schema violation like any other invalid message.
        Err(_) => {
            tally.violations += 1;
            shared.recorder.invalid_type("(not JSON)");
            None
        }
    }
}

/// Counts how a connection ended, naming the cause.
fn ended(shared: &Shared, ws: &Stream, message: Option<Result<Message, WsError>>) -> End {
    let mid_frame = ws.get_ref().tracker().mid_frame();
    shared.recorder.error(match message {
        Some(Ok(Message::Close(frame))) => {
            format!("closed_{}", frame.map_or_else(|| "without_code".to_string(), |f| u16::from(f.code).to_string()))
        }
        Some(Err(error)) => drop_kind(&error, mid_frame).to_string(),
        None => drop_kind(&WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake), mid_frame).to_string(),
        Some(Ok(_)) => "unexpected_message".to_string(),
    });
    End::Broken
}

/// The cause of a connection that ended without a Close frame, as an error kind. `mid_frame`
/// tells a TCP end inside a frame from one between frames, which the library reports alike.
pub fn drop_kind(error: &WsError, mid_frame: bool) -> &'static str {
    let eof = matches!(error, WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))
        || matches!(error, WsError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    if eof && mid_frame {
        return "dropped_mid_frame";
    }
    match error {
        WsError::Capacity(_) => "dropped_oversize_message",
        WsError::Utf8(_) => "dropped_invalid_utf8",
        WsError::Protocol(ProtocolError::MaskedFrameFromServer) => "dropped_masked_server_frame",
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => "dropped_without_close",
        WsError::Protocol(ProtocolError::NonZeroReservedBits) => "dropped_reserved_bits_set",
        WsError::Protocol(
            ProtocolError::InvalidOpcode(_)
            | ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::UnknownDataFrameType(_),
        ) => "dropped_unknown_opcode",
        WsError::Protocol(
            ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooBig
            | ProtocolError::UnexpectedContinueFrame
            | ProtocolError::ExpectedFragment(_),
        ) => "dropped_bad_fragmentation",
        WsError::Protocol(ProtocolError::InvalidCloseSequence) => "dropped_invalid_close_frame",
        WsError::Protocol(_) => "dropped_protocol_error",
        WsError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "dropped_reset",
        WsError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => "dropped_without_close",
        WsError::Io(_) => "dropped_io_error",
        WsError::ConnectionClosed | WsError::AlreadyClosed => "dropped_after_close",
        _ => "dropped_other",
    }
}

/// Ping → Pong. Closed loop keeps K in flight; open loop sends on the schedule the pacing
/// thread keeps (like wrk2), still with at most K in flight, and measures from the intended
/// send time as well as the actual one.
async fn ping_loop(shared: &Shared, index: usize, ws: &mut Stream, tally: &mut Tally, next_send: &mut u64) -> End {
    let plan = &shared.plan;
    let counters = &shared.recorder.counters;
    let k = plan.in_flight;
    // (request number, intended, actual send time), oldest first. Replies without a
    // correlation id (Bot Core's Pongs) come back in order; with one, in any order.
    let mut outstanding: VecDeque<InFlight> = VecDeque::with_capacity(k);
    let mut next_id = 0u64;
    let stop = tokio::time::sleep_until(shared.deadline);
    tokio::pin!(stop);
    let watchdog = tokio::time::sleep(plan.reply_timeout);
    tokio::pin!(watchdog);
    let waker = shared.wakers.get(index).cloned().unwrap_or_default();
    // When the window last went from full to not full: sends due before then waited on the server.
    let mut freed_at: Option<Instant> = None;
    // Sends that fell due while the connection was down (a reconnect's backlog) go out now:
    // their lateness is the outage's, not the generator's.
    let opened_at = Instant::now();
    let end = loop {
        if outstanding.len() < k {
            let was_idle = outstanding.is_empty();
            let sent = match shared.schedule {
                None => fill(ws, shared, &mut outstanding, &mut next_id, None).await,
                Some(schedule) => {
                    let open = OpenLoop { schedule, index, next_send: &mut *next_send, freed_at, opened_at };
                    fill(ws, shared, &mut outstanding, &mut next_id, Some(open)).await
                }
            };
            match sent {
                Err(()) => {
                    shared.recorder.error("send_failed");
                    break End::Broken;
                }
                Ok(n) => tally.sent += n,
            }
            if was_idle && !outstanding.is_empty() {
                watchdog.as_mut().reset(tokio::time::Instant::now() + plan.reply_timeout);
            }
        }
        tokio::select! {
            biased;
            _ = &mut stop => break End::Deadline,
            // The pacing thread rings when a send falls due; the fill above makes it.
            _ = waker.notified(), if shared.schedule.is_some() => {}
            message = ws.next() => {
                // Drain whatever else has already arrived before refilling and flushing once:
                // one write per batch instead of one per Pong.
                let mut next = Some(message);
                let mut drained = 0;
                while let Some(message) = next.take() {
                    let answer = match message {
                        Some(Ok(Message::Text(text))) => match classify(shared, tally, &text) {
                            Some(parsed) => shared.plan.operation.answer(&parsed),
                            None => shared.plan.operation.answer_text(&text),
                        },
                        Some(Ok(Message::Binary(_))) => {
                            tally.received += 1;
                            shared.recorder.error("unexpected_message_binary");
                            Answer::NotAReply
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Answer::NotAReply,
                        other => {
                            Recorder::add(&counters.unanswered_at_drop, outstanding.len() as u64);
                            return ended(shared, ws, other);
                        }
                    };
                    let answered = match answer {
                        Answer::NotAReply => None,
                        Answer::InOrder => {
                            let oldest = outstanding.pop_front();
                            if oldest.is_none() {
                                shared.recorder.error("unexpected_message_pong_without_ping");
                            }
                            oldest
                        }
                        Answer::To(id) => {
                            let request = outstanding.iter().position(|r| r.id == id).and_then(|at| outstanding.remove(at));
                            if request.is_none() {
                                shared.recorder.error("reply_with_unknown_correlation_id");
                            }
                            request
                        }
                        Answer::MissingId => {
                            shared.recorder.error("reply_without_correlation_id");
                            None
                        }
                        Answer::UnknownId => {
                            shared.recorder.error("reply_with_unknown_correlation_id");
                            None
                        }
                    };
                    if let Some(request) = answered {
                        let now = Instant::now();
                        if outstanding.len() + 1 == k {
                            freed_at = Some(now);
                        }
                        match shared.schedule {
                            Some(_) => shared.recorder.record_pair(
                                (Metric::Corrected, now - request.intended),
                                (Metric::Uncorrected, now - request.actual),
                            ),
                            None => shared.recorder.record(Metric::Uncorrected, now - request.actual),
                        }
                    }
                    if tally.received % PUBLISH_EVERY == 0 {
                        tally.publish(&shared.recorder);
                    }
                    drained += 1;
                    if drained < MAX_BATCH {
                        next = ws.next().now_or_never();
                    }
                }
                watchdog.as_mut().reset(tokio::time::Instant::now() + plan.reply_timeout);
            }
            _ = &mut watchdog, if !outstanding.is_empty() => {
                shared.recorder.error("timeout");
                break End::Broken;
            }
        }
    };
    let pending = &match end {
        End::Deadline => &counters.unanswered_at_end,
        _ => &counters.unanswered_at_drop,
    };
    Recorder::add(pending, outstanding.len() as u64);
    end
}

/// A request awaiting its reply.
struct InFlight {
    /// Its number on the connection, which a correlated reply echoes.
    id: u64,
    intended: Instant,
    actual: Instant,
}

/// What an open-loop fill needs: the schedule and this connection's place in it.
struct OpenLoop<'a> {
    schedule: Schedule,
    index: usize,
    /// The next scheduled send of this connection.
    next_send: &'a mut u64,
    /// When the in-flight window last went from full to not full.
    freed_at: Option<Instant>,
    /// When this connection opened.
    opened_at: Instant,
}

/// Sends Pings up to `k` in flight with one flush: every free slot in closed loop; in open
/// loop only the sends that are due, each recorded with its schedule lag. A send that fell due
/// while the window was full (before `freed_at`) waited on the server: it is counted as held.
/// The generator's lag counts from when a send could first go out: its due time, the freeing
/// of its slot, or the opening of the connection (`opened_at`). Returns how many.
async fn fill(
    ws: &mut Stream,
    shared: &Shared,
    outstanding: &mut VecDeque<InFlight>,
    next_id: &mut u64,
    open: Option<OpenLoop<'_>>,
) -> Result<u64, ()> {
    let k = shared.plan.in_flight;
    let mut sent = 0;
    match open {
        None => {
            while outstanding.len() < k {
                *next_id += 1;
                ws.feed(Message::text(request_text(shared, *next_id))).await.map_err(drop)?;
                let now = Instant::now();
                outstanding.push_back(InFlight { id: *next_id, intended: now, actual: now });
                sent += 1;
            }
        }
        Some(OpenLoop { schedule, index, next_send, freed_at, opened_at }) => {
            let due = schedule.due_by(index, Instant::now());
            while *next_send < due && outstanding.len() < k {
                let intended = schedule.due(index, *next_send);
                let now = Instant::now();
                let ready = match freed_at {
                    Some(freed) if freed > intended => {
                        Recorder::add(&shared.recorder.counters.window_held, 1);
                        freed
                    }
                    _ => intended,
                };
                shared.recorder.record(Metric::Lag, now.saturating_duration_since(ready.max(opened_at)));
                *next_id += 1;
                ws.feed(Message::text(request_text(shared, *next_id))).await.map_err(drop)?;
                outstanding.push_back(InFlight { id: *next_id, intended, actual: now });
                *next_send += 1;
                sent += 1;
            }
        }
    }
    if sent > 0 {
        ws.flush().await.map_err(drop)?;
    }
    Ok(sent)
}

fn epoch_micros() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i128).unwrap_or(0)
}

/// Why the clock offset could not be estimated.
enum OffsetFailure {
    /// The connection ended.
    Ended(End),
    /// The server's Pongs cannot give it; the reason says why.
    Unusable(String),
}

/// Estimates (server clock − local clock) in µs from Ping/Pong: the sample with the smallest
/// round trip bounds the error by half that round trip (plus the 1 ms timestamp resolution).
async fn estimate_clock_offset(shared: &Shared, ws: &mut Stream, tally: &mut Tally) -> Result<i128, OffsetFailure> {
    let mut best: Option<(i128, i128)> = None;
    for n in 0..5 {
        let sent = epoch_micros();
        if ws.send(Message::text(request_text(shared, n))).await.is_err() {
            shared.recorder.error("send_failed");
            return Err(OffsetFailure::Ended(End::Broken));
        }
        tally.sent += 1;
        let deadline = tokio::time::Instant::now() + shared.plan.reply_timeout;
        loop {
            let text = match tokio::time::timeout_at(deadline.min(shared.deadline), ws.next()).await {
                Err(_) if tokio::time::Instant::now() >= shared.deadline => {
                    return Err(OffsetFailure::Ended(End::Deadline))
                }
                Err(_) => {
                    return Err(OffsetFailure::Unusable(format!(
                        "no Pong arrived within {:?} of a Ping",
                        shared.plan.reply_timeout
                    )))
                }
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Binary(_)))) => {
                    tally.received += 1;
                    shared.recorder.error("unexpected_message_binary");
                    continue;
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
                Ok(other) => return Err(OffsetFailure::Ended(ended(shared, ws, other))),
            };
            let received = epoch_micros();
            let value = classify(shared, tally, &text).or_else(|| serde_json::from_str(&text).ok());
            if value.as_ref().is_none_or(|v| shared.plan.operation.answer(v) == Answer::NotAReply) {
                continue;
            }
            let stamp = value.as_ref().and_then(|v| v.pointer("/data/timestamp").or_else(|| v.get("timestamp")));
            let Some(server_ms) = stamp.and_then(Value::as_i64) else {
                return Err(OffsetFailure::Unusable(format!(
                    "the server's Pong has no integer millisecond timestamp at /data/timestamp or /timestamp: {}",
                    clip(&text)
                )));
            };
            let rtt = received - sent;
            let offset = i128::from(server_ms) * 1000 - (sent + rtt / 2);
            if best.is_none_or(|(best_rtt, _)| rtt < best_rtt) {
                best = Some((rtt, offset));
            }
            break;
        }
    }
    best.map(|(_, offset)| offset).ok_or_else(|| OffsetFailure::Unusable("no Pong could be timed".into()))
}

async fn push_loop(shared: &Shared, ws: &mut Stream, tally: &mut Tally) -> End {
    let offset = match shared.plan.clock_offset {
        ClockOffset::Fixed(ms) => i128::from(ms) * 1000,
        ClockOffset::Estimate => match Box::pin(estimate_clock_offset(shared, ws, tally)).await {
            Ok(offset) => offset,
            Err(OffsetFailure::Ended(end)) => return end,
            Err(OffsetFailure::Unusable(reason)) => {
                shared.recorder.clock_offset_failed(reason);
                return End::Unmeasurable;
            }
        },
    };
    let stop = tokio::time::sleep_until(shared.deadline);
    tokio::pin!(stop);
    // A client Pings every 30 s (the spec's heartbeat), so a server's idle limit does not end
    // a long push run; the Pongs are not pushes and are not timed.
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut heartbeats = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return End::Deadline,
            _ = heartbeat.tick() => {
                heartbeats += 1;
                if ws.send(Message::text(request_text(shared, heartbeats))).await.is_err() {
                    shared.recorder.error("send_failed");
                    return End::Broken;
                }
                tally.sent += 1;
            }
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        tally.received += 1;
                        shared.recorder.error("unexpected_message_binary");
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    other => return ended(shared, ws, other),
                };
                let received = epoch_micros();
                let parsed = classify(shared, tally, &text).or_else(|| serde_json::from_str(&text).ok());
                if parsed.as_ref().is_some_and(|v| shared.plan.operation.answer(v) != Answer::NotAReply) {
                    continue;
                }
                let stamp = parsed.as_ref().and_then(|v| v.get("timestamp")).and_then(Value::as_i64);
                match stamp {
                    Some(server_ms) => {
                        let latency = received - (i128::from(server_ms) * 1000 - offset);
                        shared.recorder.record(Metric::Push, Duration::from_micros(latency.max(0) as u64));
                    }
                    None => Recorder::add(&shared.recorder.counters.unstamped, 1),
                }
                if tally.received % PUBLISH_EVERY == 0 {
                    tally.publish(&shared.recorder);
                }
            }
        }
    }
}

/// Open, measure the handshake, close cleanly, repeat.
async fn connect_storm(shared: &Shared) {
    let counters = &shared.recorder.counters;
    let mut options = ConnectOptions::new(shared.plan.url.clone(), shared.plan.connect_timeout)
        .with_network(shared.plan.network.clone());
    options.read_buffer_bytes = READ_BUFFER;
    options.max_message_bytes = shared.plan.max_message_bytes;
    while tokio::time::Instant::now() < shared.deadline {
        let started = Instant::now();
        Recorder::add(&counters.connect_attempts, 1);
        match tokio::time::timeout_at(shared.deadline, Session::connect(&options)).await {
            Err(_) => {
                Recorder::add(&counters.handshake_pending_at_end, 1);
                return;
            }
            Ok(Err(error)) => {
                Recorder::add(&counters.connect_failures, 1);
                shared.recorder.error(connect_error_kind(&error));
                // A refused connect returns at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(Ok(session)) => {
                shared.recorder.record(Metric::Connect, started.elapsed());
                if let Some(tls) = session.tls_handshake {
                    shared.recorder.record(Metric::TlsHandshake, tls);
                }
                Recorder::add(&counters.connects, 1);
                let mut ws = session.into_stream();
                // Closing first lets the server hold TIME_WAIT, so ephemeral ports last.
                close_and_await_echo(shared, &mut ws).await;
            }
        }
    }
}

/// Sends a Close and waits up to [`CLOSE_ECHO_WAIT`] for the echo, counting what the server did.
async fn close_and_await_echo(shared: &Shared, ws: &mut Stream) {
    let waiting = Instant::now();
    if ws.close(Some(crate::session::normal_close())).await.is_err() {
        shared.recorder.error("close_failed");
        return;
    }
    let echo = tokio::time::timeout(CLOSE_ECHO_WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => continue,
                Some(Err(WsError::ConnectionClosed)) => return Ok(()),
                Some(Err(error)) => return Err(drop_kind(&error, ws.get_ref().tracker().mid_frame())),
                None => return Err("dropped_without_close"),
            }
        }
    })
    .await;
    match echo {
        Ok(Ok(())) => {}
        Ok(Err(kind)) => shared.recorder.error(format!("close_not_echoed_{kind}")),
        Err(_) => {
            shared.recorder.error("close_not_echoed");
            Recorder::add(&shared.recorder.counters.close_wait_unechoed_us, waiting.elapsed().as_micros() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task holds this future for the whole run; 10,000 idle connections
    /// must fit in 100 MB (README, Performance), so the connect and the mode loops are boxed
    /// rather than inlined. Un-boxing them shows up here first.
    #[test]
    fn a_connection_task_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let plan = LoadPlan {
                url: "ws://127.0.0.1:9/ws".into(),
                profile: std::sync::Arc::new(crate::profile::ProfileSpec::builtin(crate::profile::Profile::Core)),
                operation: crate::load::operation::Operation::of(
                    &crate::profile::ProfileSpec::builtin(crate::profile::Profile::Core),
                    None,
                )
                .unwrap(),
                mode: Mode::Push,
                connections: 1,
                duration: Duration::from_secs(1),
                ramp_up: Duration::ZERO,
                rate: None,
                in_flight: 1,
                validation: "all".parse().unwrap(),
                reply_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                max_message_bytes: 1 << 20,
                clock_offset: "0".parse().unwrap(),
                max_connect_failure_rate: 0.01,
                network: crate::network::Network::shared_default(),
            };
            let shared = Arc::new(Shared {
                plan,
                recorder: Recorder::new(),
                catalog: Arc::new(Catalog::embedded().unwrap()),
                set: MessageSet::Core,
                other_set: Some(MessageSet::Ai),
                started: tokio::time::Instant::now(),
                deadline: tokio::time::Instant::now(),
                schedule: None,
                wakers: Vec::new(),
            });
            let task = run_connection(shared, 0);
            let size = std::mem::size_of_val(&task);
            assert!(size <= 2048, "the connection future is {size} bytes");
        });
    }
}
