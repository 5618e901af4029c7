//! One connection's life under load: connect (with the spec's reconnect backoff), then the
//! mode's loop, recording into the shared recorder. Errors are counted and never stop the run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::plan::{LoadPlan, Mode};
use super::recorder::{Metric, Recorder};
use crate::profile::MessageSet;
use crate::schema::Catalog;
use crate::session::{ConnectError, ConnectOptions, Session};

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The spec's reconnection strategy: 1 s doubling to 30 s, at most 10 attempts.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const MAX_ATTEMPTS: u32 = 10;
/// Counters are batched per connection and published this often (in messages).
const PUBLISH_EVERY: u64 = 64;
/// Messages handled per wake-up before the loop sends again.
const MAX_BATCH: usize = 256;
/// Read buffer per connection: small, so ten thousand idle connections stay cheap.
const READ_BUFFER: usize = 8 * 1024;

pub struct Shared {
    pub plan: LoadPlan,
    pub recorder: Recorder,
    pub catalog: Arc<Catalog>,
    pub set: MessageSet,
    pub started: tokio::time::Instant,
    pub deadline: tokio::time::Instant,
}

/// Why a connection's loop ended.
enum End {
    /// The run is over.
    Deadline,
    /// The connection failed; reconnect.
    Broken,
}

/// Per-connection counters, published in batches to keep atomics off the hot path.
#[derive(Default)]
struct Tally {
    sent: u64,
    received: u64,
    violations: u64,
    messages_seen: u64,
}

impl Tally {
    fn publish(&mut self, recorder: &Recorder) {
        let c = &recorder.counters;
        Recorder::add(&c.sent, std::mem::take(&mut self.sent));
        Recorder::add(&c.received, std::mem::take(&mut self.received));
        Recorder::add(&c.schema_violations, std::mem::take(&mut self.violations));
    }
}

pub async fn run_connection(shared: Arc<Shared>, index: usize) {
    let plan = &shared.plan;
    let ramp_offset = plan.ramp_up.mul_f64(index as f64 / plan.connections as f64);
    tokio::time::sleep_until(shared.started + ramp_offset).await;
    if plan.mode == Mode::Connect {
        return connect_storm(&shared).await;
    }
    let mut options = ConnectOptions::new(plan.url.clone(), plan.connect_timeout);
    options.read_buffer_bytes = READ_BUFFER;
    let mut attempts = 0u32;
    let mut backoff = BACKOFF_START;
    let mut tally = Tally::default();
    let mut first = true;
    while tokio::time::Instant::now() < shared.deadline {
        if !first {
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                shared.recorder.error("gave_up_after_10_reconnects");
                return;
            }
            if tokio::time::timeout_at(shared.deadline, tokio::time::sleep(backoff)).await.is_err() {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            Recorder::add(&shared.recorder.counters.reconnects, 1);
        }
        first = false;
        let started = Instant::now();
        let connected = tokio::time::timeout_at(shared.deadline, Session::connect(&options)).await;
        let session = match connected {
            Err(_) => return,
            Ok(Err(error)) => {
                shared.recorder.error(connect_error_kind(&error));
                continue;
            }
            Ok(Ok(session)) => session,
        };
        shared.recorder.record(Metric::Connect, started.elapsed());
        Recorder::add(&shared.recorder.counters.connects, 1);
        attempts = 0;
        backoff = BACKOFF_START;
        let mut ws = session.into_stream();
        Recorder::add(&shared.recorder.counters.connections_up, 1);
        let end = match plan.mode {
            Mode::Ping => ping_loop(&shared, index, &mut ws, &mut tally).await,
            Mode::Push => push_loop(&shared, &mut ws, &mut tally).await,
            Mode::Connect => unreachable!("handled above"),
        };
        shared.recorder.counters.connections_up.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tally.publish(&shared.recorder);
        if let End::Deadline = end {
            // Leave politely; the server may be slow to answer, so do not wait long.
            let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
            return;
        }
    }
}

fn connect_error_kind(error: &ConnectError) -> String {
    match error {
        ConnectError::Rejected { status, .. } => format!("handshake_rejected_{status}"),
        ConnectError::Timeout(_) => "connect_timeout".into(),
        ConnectError::Unreachable { .. } => "connect_failed".into(),
        ConnectError::InvalidUrl { .. } | ConnectError::Handshake(_) => "handshake_failed".into(),
    }
}

fn ping_text() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!(r#"{{"type":"Ping","timestamp":{now}}}"#)
}

/// What a received text frame was, after optional validation.
fn classify(shared: &Shared, tally: &mut Tally, text: &str) -> Option<Value> {
    tally.received += 1;
    let n = tally.messages_seen;
    tally.messages_seen += 1;
    if !shared.plan.validation.checks(n) {
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            if !shared.catalog.validate(shared.set, &value).is_valid() {
                tally.violations += 1;
            }
            Some(value)
        }
        Err(_) => {
            tally.violations += 1;
            shared.recorder.error("unexpected_message_not_json");
            None
        }
    }
}

/// The message's `type`, reading only that field when the message was not fully parsed.
fn message_type<'a>(parsed: &'a Option<Value>, text: &'a str) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(value) = parsed {
        return value.get("type").and_then(Value::as_str).map(std::borrow::Cow::Borrowed);
    }
    #[derive(serde::Deserialize)]
    struct TypeOnly<'b> {
        #[serde(borrow, rename = "type")]
        message_type: Option<std::borrow::Cow<'b, str>>,
    }
    serde_json::from_str::<TypeOnly>(text).ok()?.message_type
}

fn ended(shared: &Shared, message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> End {
    match message {
        Some(Ok(Message::Close(frame))) => {
            let code = frame.map_or_else(|| "none".to_string(), |f| u16::from(f.code).to_string());
            shared.recorder.error(format!("closed_{code}"));
        }
        Some(Err(_)) | None => shared.recorder.error("dropped"),
        Some(Ok(_)) => shared.recorder.error("unexpected_message"),
    }
    End::Broken
}

/// Ping → Pong. Closed loop keeps K in flight; open loop sends on a schedule (like wrk2), still
/// with at most K in flight, and measures from the intended send time as well as the actual one.
async fn ping_loop(shared: &Shared, index: usize, ws: &mut Stream, tally: &mut Tally) -> End {
    let plan = &shared.plan;
    let interval = plan.send_interval();
    let k = plan.in_flight;
    // (intended, actual) send times, oldest first: Pongs carry no id, and come back in order.
    let mut outstanding: VecDeque<(Instant, Instant)> = VecDeque::with_capacity(k);
    let stop = tokio::time::sleep_until(shared.deadline);
    tokio::pin!(stop);
    let watchdog = tokio::time::sleep(plan.reply_timeout);
    tokio::pin!(watchdog);
    // Connections start evenly spread over one interval, so the total rate is smooth.
    let phase = interval.map_or(Duration::ZERO, |iv| iv.mul_f64(index as f64 / plan.connections as f64));
    let mut next_due = tokio::time::Instant::now() + phase;
    let pacer = tokio::time::sleep_until(next_due);
    tokio::pin!(pacer);
    loop {
        if interval.is_none() && outstanding.len() < k {
            while outstanding.len() < k {
                if ws.feed(Message::text(ping_text())).await.is_err() {
                    shared.recorder.error("send_failed");
                    return End::Broken;
                }
                let now = Instant::now();
                outstanding.push_back((now, now));
                tally.sent += 1;
            }
            if ws.flush().await.is_err() {
                shared.recorder.error("send_failed");
                return End::Broken;
            }
            watchdog.as_mut().reset(tokio::time::Instant::now() + plan.reply_timeout);
        }
        tokio::select! {
            biased;
            _ = &mut stop => return End::Deadline,
            _ = &mut pacer, if interval.is_some() && outstanding.len() < k => {
                let intended = next_due.into_std();
                let now = Instant::now();
                shared.recorder.record(Metric::Lag, now.saturating_duration_since(intended));
                if outstanding.is_empty() {
                    watchdog.as_mut().reset(tokio::time::Instant::now() + plan.reply_timeout);
                }
                if ws.send(Message::text(ping_text())).await.is_err() {
                    shared.recorder.error("send_failed");
                    return End::Broken;
                }
                outstanding.push_back((intended, now));
                tally.sent += 1;
                next_due += interval.unwrap_or_default();
                pacer.as_mut().reset(next_due);
            }
            message = ws.next() => {
                // Drain whatever else has already arrived before refilling and flushing once:
                // one write per batch instead of one per Pong.
                let mut next = Some(message);
                let mut drained = 0;
                while let Some(message) = next.take() {
                    let pong = match message {
                        Some(Ok(Message::Text(text))) => {
                            let parsed = classify(shared, tally, &text);
                            message_type(&parsed, &text).as_deref() == Some("Pong")
                        }
                        Some(Ok(Message::Binary(_))) => {
                            tally.received += 1;
                            shared.recorder.error("unexpected_message_binary");
                            false
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => false,
                        other => return ended(shared, other),
                    };
                    if pong {
                        let now = Instant::now();
                        match outstanding.pop_front() {
                            Some((intended, actual)) if interval.is_some() => shared.recorder.record_pair(
                                (Metric::Corrected, now - intended),
                                (Metric::Uncorrected, now - actual),
                            ),
                            Some((_, actual)) => shared.recorder.record(Metric::Uncorrected, now - actual),
                            None => shared.recorder.error("unexpected_message_pong_without_ping"),
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
                return End::Broken;
            }
        }
    }
}

fn epoch_micros() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i128).unwrap_or(0)
}

/// Estimates (server clock − local clock) in µs from Ping/Pong: the sample with the smallest
/// round trip bounds the error by half that round trip (plus the 1 ms timestamp resolution).
async fn clock_offset(shared: &Shared, ws: &mut Stream, tally: &mut Tally) -> Option<i128> {
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..5 {
        let sent = epoch_micros();
        ws.send(Message::text(ping_text())).await.ok()?;
        tally.sent += 1;
        let deadline = tokio::time::Instant::now() + shared.plan.reply_timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).ok()?;
            if value.get("type").and_then(Value::as_str) != Some("Pong") {
                continue;
            }
            let received = epoch_micros();
            let server_ms = value.pointer("/data/timestamp").or_else(|| value.get("timestamp"))?.as_i64()?;
            let rtt = received - sent;
            let offset = i128::from(server_ms) * 1000 - (sent + rtt / 2);
            if best.is_none_or(|(best_rtt, _)| rtt < best_rtt) {
                best = Some((rtt, offset));
            }
            break;
        }
    }
    best.map(|(_, offset)| offset)
}

async fn push_loop(shared: &Shared, ws: &mut Stream, tally: &mut Tally) -> End {
    let offset = match clock_offset(shared, ws, tally).await {
        Some(offset) => offset,
        None => {
            shared.recorder.error("clock_offset_unavailable");
            return End::Broken;
        }
    };
    let stop = tokio::time::sleep_until(shared.deadline);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return End::Deadline,
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        tally.received += 1;
                        shared.recorder.error("unexpected_message_binary");
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    other => return ended(shared, other),
                };
                let received = epoch_micros();
                let parsed = classify(shared, tally, &text).or_else(|| serde_json::from_str(&text).ok());
                let stamp = parsed.as_ref().and_then(|v| v.get("timestamp")).and_then(Value::as_i64);
                if let Some(server_ms) = stamp {
                    let latency = received - (i128::from(server_ms) * 1000 - offset);
                    shared.recorder.record(Metric::Push, Duration::from_micros(latency.max(0) as u64));
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
    let mut options = ConnectOptions::new(shared.plan.url.clone(), shared.plan.connect_timeout);
    options.read_buffer_bytes = READ_BUFFER;
    while tokio::time::Instant::now() < shared.deadline {
        let started = Instant::now();
        match tokio::time::timeout_at(shared.deadline, Session::connect(&options)).await {
            Err(_) => return,
            Ok(Err(error)) => {
                shared.recorder.error(connect_error_kind(&error));
                // A refused connect returns at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(Ok(session)) => {
                shared.recorder.record(Metric::Connect, started.elapsed());
                Recorder::add(&shared.recorder.counters.connects, 1);
                let mut ws = session.into_stream();
                // Closing first lets the server hold TIME_WAIT, so ephemeral ports last.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    ws.close(None).await.ok()?;
                    while let Some(Ok(message)) = ws.next().await {
                        if message.is_close() {
                            break;
                        }
                    }
                    Some(())
                })
                .await;
            }
        }
    }
}
