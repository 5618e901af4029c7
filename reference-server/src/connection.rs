//! One client: the opening handshake (path and token checks), the welcome, then a reader loop
//! that answers, rate-limits and rejects, with a writer task draining the outbox.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use crate::auth::{token_from_request, AuthFailure};
use crate::config::{AuthMode, Fault, Profile};
use crate::hub::{bump, Client};
use crate::observe::{client_name, AttemptId, EventKind};
use crate::outbox::{Kind, Outbox, Outgoing, Pushed};
use crate::protocol::{self, ClientMessage, Severity};
use crate::rate_limit::RateLimiter;
use crate::request_head::{self, Head, Prefixed};
use crate::tls::ServerStream;
use crate::Shared;
use tokio_tungstenite::tungstenite::error::ProtocolError;

/// What the handshake learned about the client's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandshakeAuth {
    /// A valid token came with the upgrade request.
    Verified,
    /// No token came with the request.
    Absent,
}

fn refuse(status: StatusCode, body: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body.to_string()));
    *response.status_mut() = status;
    response
}

/// Frames a connection reads before it lets other tasks run (see the reader loop).
const YIELD_EVERY_FRAMES: u64 = 8;

/// Counts and logs an opening handshake that failed (`None`: it timed out).
fn handshake_failed(shared: &Shared, peer: SocketAddr, error: Option<&dyn std::fmt::Display>) {
    bump(&shared.stats.handshakes_refused);
    match error {
        Some(error) => debug!(%peer, %error, "handshake refused"),
        None => debug!(%peer, "handshake timed out"),
    }
}

/// A connection's end that a client fault chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultAction {
    Drop,
    Close(u16),
    Stall,
}

pub async fn handle(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let accepted_at = Instant::now();
    let attempt = shared.next_attempt.fetch_add(1, Ordering::Relaxed) + 1;
    // Set once the upgrade request was seen, so the observer hears of the end too.
    let observed = std::sync::atomic::AtomicBool::new(false);
    let ended = || {
        if observed.load(Ordering::Relaxed) {
            shared.observe(attempt, || EventKind::Ended);
        }
    };
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    // The whole opening handshake, TLS and request head included, is bounded in time (slowloris).
    let handshake_deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let stream = match &config.tls {
        None => ServerStream::Plain(stream),
        Some(identity) => match tokio::time::timeout_at(handshake_deadline, Box::pin(identity.accept(stream))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return handshake_failed(&shared, peer, Some(&format!("TLS: {error}"))),
            Err(_) => return handshake_failed(&shared, peer, None),
        },
    };
    let stream =
        // Boxed, like the upgrade below: the task of an idle connection keeps only what its
        // current step needs, not room for the handshake's buffers (ten thousand add up).
        match tokio::time::timeout_at(
            handshake_deadline,
            Box::pin(request_head::read(stream, config.max_request_head_bytes)),
        )
        .await
        {
            Ok(Ok(Head::Complete(stream))) => stream,
            Ok(Ok(Head::TooLarge)) => {
                bump(&shared.stats.handshakes_refused);
                warn!(%peer, limit = config.max_request_head_bytes, "refused upgrade: request head too large (431)");
                return;
            }
            Ok(Err(error)) => return handshake_failed(&shared, peer, Some(&error)),
            Err(_) => return handshake_failed(&shared, peer, None),
        };
    let mut handshake_auth = HandshakeAuth::Absent;
    // Who the client is, for refusal windows: its name if it gave one, else its address.
    let mut client_key = peer.ip().to_string();
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let name =
            client_name(request.uri().query(), request.headers().get("x-wsprobe-client").and_then(|v| v.to_str().ok()));
        if let Some(name) = &name {
            client_key = name.clone();
        }
        observed.store(true, Ordering::Relaxed);
        shared.observe_at(attempt, accepted_at, || EventKind::Attempt { peer, client: name });
        let refuse = |status: StatusCode, body: &str| {
            shared.observe(attempt, || EventKind::Refused {
                status: status.as_u16(),
                reason: body.trim_end().to_string(),
            });
            refuse(status, body)
        };
        if request.uri().path() != "/ws" {
            return Err(refuse(StatusCode::NOT_FOUND, "not found: the WebSocket endpoint is /ws\n"));
        }
        if let Some(why) = shared.refusal(&client_key) {
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")));
        }
        if config
            .max_connections
            .is_some_and(|max| shared.stats.connections_active.load(Ordering::Relaxed) >= max as u64)
        {
            warn!(%peer, "refused upgrade: connection limit reached (503)");
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "service unavailable: too many connections\n"));
        }
        if config.auth == AuthMode::Off {
            return Ok(response);
        }
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        if let Some(token) = token_from_request(header, request.uri().query()) {
            let verifier = shared.verifier.as_ref().expect("checked at start: auth needs a secret");
            let unchecked = if header.is_some() { Fault::AcceptAnyHeaderToken } else { Fault::AcceptAnyQueryToken };
            let verdict = if config.has(unchecked) { Ok(()) } else { verifier.verify(&token) };
            if let Err(failure) = verdict {
                bump(&shared.stats.auth_failures);
                warn!(%peer, reason = %failure, "refused upgrade: bad token");
                return Err(refuse(StatusCode::UNAUTHORIZED, &format!("unauthorized: {failure}\n")));
            }
            handshake_auth = HandshakeAuth::Verified;
        }
        Ok(response)
    };
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_bytes)
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let upgrade = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)));
    let ws = match tokio::time::timeout_at(handshake_deadline, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            ended();
            return handshake_failed(&shared, peer, Some(&error));
        }
        Err(_) => {
            ended();
            return handshake_failed(&shared, peer, None);
        }
    };
    shared.observe(attempt, || EventKind::Opened);
    let opened_at = tokio::time::Instant::now();
    let planned = config.client_faults.for_connection(shared.since_start());
    // The client faults still to come for this connection, soonest last.
    let mut fault_timers: Vec<(tokio::time::Instant, FaultAction)> = [
        planned.drop_after.map(|after| (opened_at + after, FaultAction::Drop)),
        planned.close_after.map(|(after, code)| (opened_at + after, FaultAction::Close(code))),
        planned.stall_after.map(|after| (opened_at + after, FaultAction::Stall)),
    ]
    .into_iter()
    .flatten()
    .collect();
    fault_timers.sort_by_key(|t| std::cmp::Reverse(t.0));
    let mut dropped_by_fault = false;
    let outages_planned = !config.client_faults.outages().is_empty();

    let id = shared.next_client.fetch_add(1, Ordering::Relaxed) + 1;
    let client_id = format!("client_{id:06}");
    bump(&shared.stats.connections_active);
    info!(%peer, %client_id, "connected");
    let client = Arc::new(Client::new(Outbox::new(config.outgoing_queue)));
    shared.hub.add(id, client.clone());

    let (mut sink, mut stream) = ws.split();
    let writer_client = client.clone();
    let write_timeout = config.write_timeout;
    // The writer hands the sink back when it stops, so the connection can linger after a
    // Close it sent (see `linger`).
    // The writer tells the reader when it stops. If it could not write (the client stopped
    // reading, or went away) the reader ends the connection at once: a slow consumer does not
    // keep its socket. If it sent a Close (from anywhere: the hub closes slow consumers too),
    // the reader waits for the client's answer for the closing grace only.
    let writer_stopped = Arc::new(tokio::sync::Notify::new());
    let write_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stopped, failed) = (writer_stopped.clone(), write_failed.clone());
    let writer_failed = {
        let (stopped, failed) = (stopped.clone(), failed.clone());
        move || {
            failed.store(true, Ordering::Release);
            stopped.notify_one();
        }
    };
    let writer_shared = shared.clone();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        'writing: loop {
            writer_client.outbox.take_batch(&mut batch).await;
            for item in batch.drain(..) {
                let (message, last) = match item {
                    Outgoing::Text(text) => (Message::Text(text), false),
                    Outgoing::Binary(bytes) => (Message::Binary(bytes), false),
                    Outgoing::Close(frame) => {
                        let code = u16::from(frame.code);
                        writer_shared.observe(attempt, || EventKind::ServerClosed { code });
                        (Message::Close(Some(frame)), true)
                    }
                };
                if !matches!(tokio::time::timeout(write_timeout, sink.feed(message)).await, Ok(Ok(()))) {
                    writer_failed();
                    break 'writing;
                }
                if last {
                    if !matches!(tokio::time::timeout(write_timeout, sink.flush()).await, Ok(Ok(()))) {
                        writer_failed();
                    }
                    break 'writing;
                }
            }
            if !matches!(tokio::time::timeout(write_timeout, sink.flush()).await, Ok(Ok(()))) {
                writer_failed();
                break;
            }
        }
        stopped.notify_one();
        drop(failed);
        sink
    });

    let mut session = Session {
        shared: &shared,
        client: &client,
        client_arc: client.clone(),
        drop_now: false,
        hung: false,
        stalled_reply: None,
        client_id: &client_id,
        peer,
        limiter: config.rate_limit.map(|limit| RateLimiter::new(limit, config.rate_window)),
        awaiting_auth: config.auth == AuthMode::Required && handshake_auth != HandshakeAuth::Verified,
        closing_since: None,
        attempt,
    };
    if !session.awaiting_auth && !config.echo {
        session.welcome();
    }
    let auth_deadline = tokio::time::Instant::now() + config.auth_timeout;
    let mut last_heard = tokio::time::Instant::now();
    let mut frames_read = 0u64;

    loop {
        // Waits are bounded while authenticating and while closing; a welcomed, idle client may stay.
        let deadline = match (session.closing_since, session.awaiting_auth) {
            (Some(since), _) => Some(tokio::time::Instant::from_std(since) + config.shutdown_grace),
            (None, true) => Some(auth_deadline),
            (None, false) => config.idle_timeout.map(|idle| last_heard + idle),
        };
        let read = async {
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, stream.next()).await,
                None => Ok(stream.next().await),
            }
        };
        let next_fault = fault_timers.last().copied();
        let fault_due = async move {
            match next_fault {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            biased;
            // Only an outage rings this; without client faults the branch is never polled, so
            // the reader does not register with the Notify on every frame.
            _ = client.killed.notified(), if outages_planned => {
                dropped_by_fault = true;
                break;
            }
            _ = fault_due, if next_fault.is_some() => {
                fault_timers.pop();
                match next_fault.map(|(_, action)| action) {
                    Some(FaultAction::Drop) => {
                        info!(%peer, "dropping the connection (fault drop-every)");
                        shared.refuse_after_drop(&client_key);
                        dropped_by_fault = true;
                        break;
                    }
                    Some(FaultAction::Close(code)) => {
                        shared.refuse_after_drop(&client_key);
                        session.close(CloseCode::from(code), "closing on purpose (fault close-every)");
                    }
                    Some(FaultAction::Stall) => {
                        info!(%peer, "stalling: sending nothing from now on (fault stall-after)");
                        client.stalled.store(true, Ordering::Release);
                    }
                    None => {}
                }
                continue;
            }
            _ = writer_stopped.notified() => {
                if write_failed.load(Ordering::Acquire) {
                    bump(&shared.stats.slow_consumers_closed);
                    info!(%peer, "the client stopped reading (write timed out or failed): closing its socket");
                    break;
                }
                // A Close went out; wait for the answer for the closing grace only.
                session.closing_since.get_or_insert_with(Instant::now);
                continue;
            }
            read = read => match read {
                Ok(next) => next,
                Err(_) if session.closing_since.is_some() => break,
                Err(_) if session.awaiting_auth => {
                    bump(&shared.stats.auth_failures);
                    warn!(%peer, "no token before the authentication timeout");
                    session.close(CloseCode::Policy, "authentication timeout");
                    continue;
                }
                Err(_) => {
                    let idle = config.idle_timeout.unwrap_or_default();
                    info!(%peer, ?idle, "idle client: nothing received");
                    session.close(CloseCode::Policy, &format!("idle timeout: nothing received for {} s", idle.as_secs()));
                    continue;
                }
            },
        };
        last_heard = tokio::time::Instant::now();
        // A client with a backlog of frames yields now and then, so one flooding client (or
        // hundreds) cannot hold the thread while others wait for their broadcasts.
        frames_read += 1;
        if frames_read % YIELD_EVERY_FRAMES == 0 {
            tokio::task::yield_now().await;
        }
        match next {
            None => break,
            Some(Ok(message)) => {
                let open = session.on_message(message);
                if session.drop_now {
                    break;
                }
                if let Some(reply) = session.stalled_reply.take() {
                    warn!(%peer, stall = ?config.stall, "stalling on purpose (fault stall-once)");
                    tokio::time::sleep(config.stall).await;
                    session.reply(reply);
                }
                if !open {
                    if config.has(Fault::Silent) {
                        // Never echo the Close: hold the connection, then let it fall.
                        tokio::time::sleep(config.shutdown_grace).await;
                        break;
                    }
                    // The client closed: one more read lets tungstenite flush the echoed Close.
                    let _ = tokio::time::timeout(config.shutdown_grace, stream.next()).await;
                    break;
                }
            }
            // The rest of the offending frame is still unread, so the WebSocket stream cannot
            // be read further: send the Close, then drain raw bytes (see `linger`).
            Some(Err(error @ (WsError::Capacity(_) | WsError::Utf8(_) | WsError::Protocol(_))))
                if !matches!(error, WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) =>
            {
                let (code, reason) = match error {
                    WsError::Capacity(_) => (CloseCode::Size, "message too big"),
                    WsError::Utf8(_) => (CloseCode::Invalid, "text frame is not valid UTF-8"),
                    // RFC 6455 7.1.7: fail the connection, with 1002, on a framing violation.
                    _ => (CloseCode::Protocol, "protocol error"),
                };
                info!(%peer, %error, "unreadable frame");
                // Replies to the frames before the bad one are still owed; broadcasts are not.
                session.close_after_replies(code, reason);
                shared.hub.remove(id);
                linger(writer, stream, config.shutdown_grace).await;
                shared.stats.connections_active.fetch_sub(1, Ordering::Relaxed);
                ended();
                return;
            }
            Some(Err(error)) => {
                debug!(%peer, %error, "connection ended without a closing handshake");
                break;
            }
        }
    }

    shared.hub.remove(id);
    writer.abort();
    if dropped_by_fault {
        shared.observe(attempt, || EventKind::ServerDropped);
    }
    // Both halves go now, so the TCP connection is closed before the observer hears of the end.
    drop(writer);
    drop(stream);
    ended();
    shared.stats.connections_active.fetch_sub(1, Ordering::Relaxed);
    let dropped = client.outbox.dropped();
    info!(%peer, %client_id, dropped_market_data = dropped, "disconnected");
}

type Sink = futures_util::stream::SplitSink<WebSocketStream<Prefixed>, Message>;
type Stream = futures_util::stream::SplitStream<WebSocketStream<Prefixed>>;

/// Waits for the writer to send its Close, then reads and discards whatever the client still
/// sends until it goes quiet. Closing a socket with unread data makes the kernel send a reset,
/// which can destroy the Close frame before the client reads it.
async fn linger(writer: tokio::task::JoinHandle<Sink>, stream: Stream, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    let Ok(Ok(sink)) = tokio::time::timeout_at(deadline, writer).await else { return };
    let Ok(mut ws) = sink.reunite(stream) else { return };
    let tcp = ws.get_mut();
    let mut buffer = vec![0u8; 16 * 1024];
    const QUIET: Duration = Duration::from_millis(100);
    while let Ok(Ok(read)) =
        tokio::time::timeout(QUIET.min(deadline - tokio::time::Instant::now()), tcp.read(&mut buffer)).await
    {
        if read == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
    }
}

struct Session<'a> {
    shared: &'a Shared,
    client: &'a Client,
    client_arc: Arc<Client>,
    /// Set by [`Fault::HangOnZeroTimestamp`]: every later message goes unanswered.
    hung: bool,
    /// Set by [`Fault::DropOnBadInput`]: end the connection without a Close.
    drop_now: bool,
    /// Set by [`Fault::StallOnce`]: a reply to send after the stall.
    stalled_reply: Option<String>,
    client_id: &'a str,
    peer: SocketAddr,
    limiter: Option<RateLimiter>,
    awaiting_auth: bool,
    closing_since: Option<Instant>,
    attempt: AttemptId,
}

impl Session<'_> {
    fn send(&self, text: String) {
        if self.client.stalled.load(Ordering::Acquire) {
            return;
        }
        if self.client.outbox.push(Kind::Important, Utf8Bytes::from(text)) == Pushed::Overflow {
            bump(&self.shared.stats.slow_consumers_closed);
            self.client.outbox.close_now(CloseFrame { code: CloseCode::Again, reason: "slow consumer".into() });
        }
    }

    /// Connected (core) or `connection` (AI), then broadcasts start.
    fn welcome(&mut self) {
        self.awaiting_auth = false;
        let config = &self.shared.config;
        if !config.has(Fault::NoWelcome) && !config.has(Fault::Silent) {
            self.send(match config.profile {
                Profile::Core => protocol::connected(self.client_id),
                Profile::Ai => protocol::ai_welcome(),
            });
        }
        self.client.subscribed.store(true, Ordering::Release);
    }

    /// Every reply to a client goes through here, so the reply faults apply to all of them.
    fn reply(&mut self, text: String) {
        if !self.shared.config.has(Fault::Silent) {
            self.send(text);
        }
    }

    /// Under a client fault that withholds Pongs (`no-pong`, `stall-after`), the reply to a
    /// heartbeat Ping is held back and the observer told. Any text message whose `type` is
    /// `Ping` is a heartbeat, valid or not (schemas/README.md, choice 24): a client whose Pings
    /// fail their schema must still meet the heartbeat rules. True when withheld.
    fn withhold_pong(&mut self) -> bool {
        let config = &self.shared.config;
        let withheld = self.client.stalled.load(Ordering::Acquire)
            || (!config.client_faults.is_empty() && config.client_faults.withholds_pongs(self.shared.since_start()));
        if withheld {
            self.shared.observe(self.attempt, || EventKind::PongWithheld);
        }
        withheld
    }

    fn pong(&mut self) {
        if self.withhold_pong() {
            return;
        }
        let config = &self.shared.config;
        if config.has(Fault::MalformedPong) {
            self.reply(r#"{"type":"Pong","timestamp":""}"#.to_string());
        } else if config.has(Fault::SlowPong) {
            let (client, delay) = (self.client_arc.clone(), config.pong_delay);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                client.outbox.push(Kind::Important, Utf8Bytes::from(protocol::pong()));
            });
        } else if config.has(Fault::StallOnce)
            && self.shared.pings.fetch_add(1, Ordering::Relaxed) + 1 == config.stall_after_pings
        {
            self.stalled_reply = Some(protocol::pong());
        } else {
            self.reply(protocol::pong());
        }
    }

    /// The faults that plant one bug reachable only by inputs the suite never sends (for the
    /// fuzzer's tests). True when the message was handled by one.
    fn planted_bug(&mut self, text: &str) -> bool {
        let config = &self.shared.config;
        if self.hung {
            return true;
        }
        let planted = [Fault::HangOnZeroTimestamp, Fault::DropOnEmptyToken, Fault::CodelessErrorOnExtraBoolean];
        if !planted.iter().any(|fault| config.has(*fault)) {
            return false;
        }
        let Ok(serde_json::Value::Object(message)) = serde_json::from_str::<serde_json::Value>(text) else {
            return false;
        };
        let kind = message.get("type").and_then(serde_json::Value::as_str);
        if config.has(Fault::HangOnZeroTimestamp) && kind == Some("Ping") && message.get("timestamp") == Some(&json!(0))
        {
            self.hung = true;
            return true;
        }
        if config.has(Fault::DropOnEmptyToken)
            && kind == Some("Authenticate")
            && message.get("token") == Some(&json!(""))
        {
            self.drop_now = true;
            return true;
        }
        let known = ["type", "timestamp", "token"];
        if config.has(Fault::CodelessErrorOnExtraBoolean)
            && message.iter().any(|(key, value)| !known.contains(&key.as_str()) && value.is_boolean())
        {
            let now = crate::now_ms();
            self.reply(json!({"type": "Error", "data": {"message": "unexpected member", "severity": "error", "timestamp": now}, "timestamp": now}).to_string());
            return true;
        }
        false
    }

    /// Bad input: an Error reply, or the TCP connection dropped under that fault.
    fn reject_input(&mut self, rejection: &protocol::Rejection) {
        if self.shared.config.has(Fault::DropOnBadInput) {
            self.drop_now = true;
        } else {
            self.reply(protocol::input_error(rejection));
        }
    }

    /// Queues a Close behind pending messages (so an Error before it is delivered).
    fn close(&mut self, code: CloseCode, reason: &str) {
        if self.closing_since.is_none() && !self.shared.config.has(Fault::Silent) {
            info!(peer = %self.peer, code = u16::from(code), reason, "closing");
            self.client.outbox.close(CloseFrame { code, reason: reason.to_string().into() });
            self.closing_since = Some(Instant::now());
        }
    }

    fn close_after_replies(&mut self, code: CloseCode, reason: &str) {
        if self.closing_since.is_none() && !self.shared.config.has(Fault::Silent) {
            info!(peer = %self.peer, code = u16::from(code), reason, "closing");
            self.client.outbox.close_after_replies(CloseFrame { code, reason: reason.to_string().into() });
            self.closing_since = Some(Instant::now());
        }
    }

    fn reject_auth(&mut self, failure: AuthFailure) {
        bump(&self.shared.stats.auth_failures);
        warn!(peer = %self.peer, reason = %failure, "authentication failed");
        self.reply(protocol::error(
            "WEBSOCKET_ERROR",
            &format!("authentication failed: {failure}"),
            Severity::Error,
            json!({}),
            false,
        ));
        self.close(CloseCode::Policy, "authentication failed");
    }

    /// Echo mode: each data message goes back as it came, text as text, binary as binary.
    fn echo(&mut self, message: Message) -> bool {
        let outgoing = match message {
            Message::Text(text) => Outgoing::Text(text),
            Message::Binary(bytes) => Outgoing::Binary(bytes),
            Message::Close(_) => return false,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return true,
        };
        if self.client.outbox.push_message(Kind::Important, outgoing) == Pushed::Overflow {
            bump(&self.shared.stats.slow_consumers_closed);
            self.client.outbox.close_now(CloseFrame { code: CloseCode::Again, reason: "slow consumer".into() });
        }
        true
    }

    /// Handles one frame; false when the client closed the connection.
    fn on_message(&mut self, message: Message) -> bool {
        let is_data = matches!(message, Message::Text(_) | Message::Binary(_));
        if is_data {
            self.shared.observe(self.attempt, || EventKind::Received {
                text: match &message {
                    Message::Text(text) => Some(text.as_str().to_string()),
                    _ => None,
                },
            });
            bump(&self.shared.stats.messages_received);
            if self.closing_since.is_some() {
                return true;
            }
            if let Some(limiter) = &mut self.limiter {
                if !limiter.admit(Instant::now()) {
                    bump(&self.shared.stats.rate_limited);
                    warn!(peer = %self.peer, "rate limit exceeded");
                    // Replies owed to the messages admitted before this one go out first.
                    self.close_after_replies(CloseCode::Policy, "rate limit exceeded");
                    return true;
                }
            }
        }
        if self.shared.config.echo {
            return self.echo(message);
        }
        match message {
            Message::Text(text) => self.on_text(&text),
            Message::Binary(_) => {
                let rejection = protocol::Rejection::InvalidMessage {
                    message_type: "binary".into(),
                    reason: "binary frames are not supported; send JSON in text frames".into(),
                };
                if self.awaiting_auth {
                    self.reject_auth(AuthFailure::Missing);
                } else {
                    self.reject_input(&rejection);
                }
            }
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                self.shared.observe(self.attempt, || EventKind::ClientClosed { code });
                info!(peer = %self.peer, ?code, "client closed");
                return false;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        true
    }

    fn on_text(&mut self, text: &str) {
        if self.planted_bug(text) {
            return;
        }
        let parsed = protocol::parse_client_message(text);
        let auth = self.shared.config.auth;
        match parsed {
            Ok(ClientMessage::Authenticate { token }) if auth != AuthMode::Off => {
                let verifier = self.shared.verifier.as_ref().expect("checked at start: auth needs a secret");
                let unchecked = self.shared.config.has(Fault::AcceptAnyAuthenticateToken);
                match if unchecked { Ok(()) } else { verifier.verify(&token) } {
                    Ok(()) if self.awaiting_auth => self.welcome(),
                    Ok(()) => {}
                    Err(failure) => self.reject_auth(failure),
                }
            }
            _ if self.awaiting_auth => self.reject_auth(AuthFailure::Missing),
            Ok(ClientMessage::Ping { .. }) => self.pong(),
            Ok(ClientMessage::Authenticate { .. }) => {}
            Err(rejection) => {
                debug!(peer = %self.peer, reason = %rejection.describe(), "rejected client message");
                let heartbeat = matches!(&rejection, protocol::Rejection::InvalidMessage { message_type, .. } if message_type == "Ping");
                if !(heartbeat && self.withhold_pong()) {
                    self.reject_input(&rejection);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every connection's task holds this future for its whole life; ten thousand idle
    /// connections must fit in 100 MB (README, Performance), so the handshake's buffers are
    /// boxed rather than inlined. Un-boxing them shows up here first.
    #[test]
    fn a_connection_task_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let server = crate::serve(listener, crate::Config::new(crate::Profile::Core)).unwrap();
            let task = super::handle(stream, peer, server.shared.clone());
            let size = std::mem::size_of_val(&task);
            assert!(size <= 2048, "the connection future is {size} bytes");
        });
    }
}
