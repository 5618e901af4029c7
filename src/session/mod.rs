//! The WebSocket connection as the harness and the load generator see it: connect with
//! headers, query and subprotocols; send; receive with a timeout; close or drop; and keep a
//! short timestamped transcript so a failure can show what actually arrived.
//!
//! Every wait takes a timeout: a hostile or dead server can stall a case, never the run.

mod tracked;
mod transcript;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

pub use tracked::TrackedStream;
pub use transcript::{Direction, Recorded, Transcript, TranscriptEntry};

use crate::network::{Network, OpenError};
use crate::profile_hint::TypeTally;

/// The largest frame or message accepted from a server by default (`--max-message-bytes`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// How to open a connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
    pub timeout: Duration,
    /// Largest frame or message accepted from the server; protects against hostile servers.
    pub max_message_bytes: usize,
    /// Read buffer reserved per connection; small for load runs holding many idle connections.
    pub read_buffer_bytes: usize,
    /// Keep a full recording of the connection (for snapshots).
    pub record: bool,
    /// TLS, proxy, source addresses and the headers every connection of the run sends.
    pub network: Arc<Network>,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, timeout: Duration) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            headers: Vec::new(),
            query: Vec::new(),
            subprotocols: Vec::new(),
            timeout,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            read_buffer_bytes: 128 * 1024,
            record: false,
            network: Network::shared_default(),
        }
    }

    /// The same, reaching the server through `network`.
    pub fn with_network(mut self, network: Arc<Network>) -> ConnectOptions {
        self.network = network;
        self
    }

    /// The URL with the query parameters appended.
    pub fn full_url(&self) -> String {
        if self.query.is_empty() {
            return self.url.clone();
        }
        let joined: Vec<String> = self.query.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}{}", self.url, joined.join("&"))
    }
}

/// The first 120 bytes of a frame's text (on a character boundary), for one-line messages.
pub fn clip(text: &str) -> String {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server answered the upgrade with HTTP {status} instead of 101")]
    Rejected { status: u16, body: String },
    #[error("no handshake response within {0:?}")]
    Timeout(Duration),
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    /// The text starts with the cause: unknown issuer, name mismatch, expired, handshake alert.
    #[error("TLS with {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("{0}")]
    Proxy(String),
    /// Subprotocols were offered and the server chose none (or one not offered).
    #[error("subprotocol: {0}")]
    Subprotocol(String),
}

impl ConnectError {
    /// True when the server was never spoken to: nothing answered, TLS failed, or a proxy
    /// refused the way there. Such a target is exit code 3, not a page of failed cases.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ConnectError::Unreachable { .. } | ConnectError::Tls { .. } | ConnectError::Proxy(_))
    }
}

/// One thing that happened on the connection while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    /// The server sent a Close frame (code and reason; `None` for an empty Close).
    Closed(Option<(u16, String)>),
    /// The TCP connection ended without a Close frame, or the protocol broke.
    Dropped(String),
    /// Nothing arrived in time.
    Timeout,
}

/// Sends Close 1000 and waits up to `wait` for the server's echo, reading past whatever it
/// still had in flight. True when the echo came.
pub async fn close_normally(ws: &mut Stream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    if !matches!(tokio::time::timeout_at(deadline, ws.close(Some(normal_close()))).await, Ok(Ok(()))) {
        return false;
    }
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Close(_) = message {
            return true;
        }
    }
    false
}

/// Close 1000 (normal closure), with no reason.
pub fn normal_close() -> CloseFrame {
    CloseFrame { code: CloseCode::Normal, reason: "".into() }
}

/// The WebSocket over a TCP stream whose frame boundaries are followed (see [`tracked`]).
pub type Stream = WebSocketStream<TrackedStream>;

/// Outgoing bytes gathered before a write.
const WRITE_BUFFER: usize = 128 * 1024;

pub struct Session {
    ws: Stream,
    started: Instant,
    transcript: Transcript,
    ended: bool,
    /// How the connection ended, for reports.
    end_reason: Option<String>,
    /// Why sending is no longer possible. The read side may still hold what the server sent
    /// before it went away (its Close frame), so a failed write does not end reading.
    send_blocked: Option<String>,
    /// Received messages by type, for the wrong-profile hint.
    received_types: TypeTally,
    /// Subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
    /// From the first byte sent to the upgrade's answer: TCP, proxy, TLS and HTTP together.
    pub handshake_duration: Duration,
    /// The TLS handshake alone, for wss://.
    pub tls_handshake: Option<Duration>,
}

impl Session {
    pub async fn connect(options: &ConnectOptions) -> Result<Session, ConnectError> {
        let url = options.full_url();
        let network = &options.network;
        let invalid = |reason: String| ConnectError::InvalidUrl { url: url.clone(), reason };
        let mut request = url.as_str().into_client_request().map_err(|e| invalid(e.to_string()))?;
        // The run's headers replace the library's defaults of the same name, and a case's own
        // replace the run's (an auth case's Authorization wins over a gateway's); several of
        // one name within a layer are all sent.
        for layer in [&network.headers, &options.headers] {
            let mut replaced = HashSet::new();
            for (name, value) in layer {
                let name =
                    HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(format!("header {name:?}: {e}")))?;
                let value = HeaderValue::from_str(value).map_err(|e| invalid(format!("header value: {e}")))?;
                if replaced.insert(name.clone()) {
                    request.headers_mut().remove(&name);
                }
                request.headers_mut().append(name, value);
            }
        }
        let subprotocols = if options.subprotocols.is_empty() { &network.subprotocols } else { &options.subprotocols };
        if !subprotocols.is_empty() {
            let value =
                HeaderValue::from_str(&subprotocols.join(", ")).map_err(|e| invalid(format!("subprotocol: {e}")))?;
            request.headers_mut().insert("sec-websocket-protocol", value);
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(options.read_buffer_bytes)
            .max_message_size(Some(options.max_message_bytes))
            .max_frame_size(Some(options.max_message_bytes))
            .write_buffer_size(WRITE_BUFFER)
            // A server that stops reading makes sends fail instead of making the client grow.
            .max_write_buffer_size(WRITE_BUFFER + options.max_message_bytes);
        let (secure, host, port) = crate::network::endpoint(request.uri());
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + options.timeout;
        let opened = match tokio::time::timeout_at(deadline, network.open(&host, port, secure)).await {
            Err(_) => return Err(ConnectError::Timeout(options.timeout)),
            Ok(Err(OpenError::Unreachable(reason))) => return Err(ConnectError::Unreachable { url, reason }),
            Ok(Err(OpenError::Proxy(reason))) => return Err(ConnectError::Proxy(reason)),
            Ok(Err(OpenError::Tls(reason))) => return Err(ConnectError::Tls { url, reason }),
            Ok(Ok(opened)) => opened,
        };
        let tls_handshake = opened.tls_handshake;
        let upgrading =
            tokio_tungstenite::client_async_with_config(request, TrackedStream::new(opened.stream), Some(config));
        let (ws, response) = match tokio::time::timeout_at(deadline, upgrading).await {
            Err(_) => return Err(ConnectError::Timeout(options.timeout)),
            Ok(Ok(pair)) => pair,
            Ok(Err(WsError::Http(response))) => {
                let body =
                    response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                return Err(ConnectError::Rejected { status: response.status().as_u16(), body });
            }
            Ok(Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(error)))) => {
                let offered = subprotocols.join(", ");
                return Err(ConnectError::Subprotocol(match error {
                    SubProtocolError::NoSubProtocol => {
                        format!(
                            "the server accepted the upgrade but chose none of the offered subprotocols ({offered})"
                        )
                    }
                    SubProtocolError::InvalidSubProtocol => {
                        format!("the server chose a subprotocol that was not offered (offered: {offered})")
                    }
                    SubProtocolError::ServerSentSubProtocolNoneRequested => {
                        "the server named a subprotocol although none was offered".to_string()
                    }
                }));
            }
            Ok(Err(WsError::Io(error))) => return Err(ConnectError::Unreachable { url, reason: error.to_string() }),
            Ok(Err(WsError::Url(error))) => return Err(invalid(error.to_string())),
            Ok(Err(error)) => return Err(ConnectError::Handshake(error.to_string())),
        };
        let subprotocol =
            response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut transcript = Transcript::default();
        if options.record {
            transcript.start_recording();
        }
        Ok(Session {
            ws,
            started,
            transcript,
            ended: false,
            end_reason: None,
            send_blocked: None,
            received_types: TypeTally::default(),
            subprotocol,
            handshake_duration: started.elapsed(),
            tls_handshake,
        })
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// When the connection attempt began; transcript times count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the connection has ended (Close received, dropped, or closed by us).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// How the connection ended, once it has.
    pub fn end_reason(&self) -> Option<&str> {
        self.end_reason.as_deref()
    }

    pub async fn send_text(&mut self, text: &str, timeout: Duration) -> Result<(), String> {
        self.transcript.record(self.started.elapsed(), Direction::Sent, "text", text);
        self.send(Message::text(text), timeout).await
    }

    pub async fn send_binary(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), String> {
        self.transcript.record(self.started.elapsed(), Direction::Sent, "binary", &format!("{} bytes", bytes.len()));
        self.send(Message::binary(bytes.to_vec()), timeout).await
    }

    /// Sends any message or raw frame (a fragment, a text frame that is not UTF-8), for the
    /// fuzzer; recorded as the kind of frame it is.
    pub async fn send_message(&mut self, message: Message, timeout: Duration) -> Result<(), String> {
        let kind = match &message {
            Message::Text(_) => "text",
            Message::Binary(_) => "binary",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::Close(_) => "close",
            Message::Frame(_) => "frame",
        };
        self.transcript.record(self.started.elapsed(), Direction::Sent, kind, &format!("{} bytes", message.len()));
        self.send(message, timeout).await
    }

    /// A send on a connection that has ended fails at once: the library would otherwise keep
    /// buffering frames it can never write, and a loop of sends would grow without bound.
    async fn send(&mut self, message: Message, timeout: Duration) -> Result<(), String> {
        let ended = self.end_reason.as_ref().filter(|_| self.ended);
        if let Some(reason) = ended.or(self.send_blocked.as_ref()) {
            return Err(format!("cannot send: the connection had already ended ({reason})"));
        }
        match tokio::time::timeout(timeout, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                self.send_blocked = Some(format!("an earlier send failed: {error}"));
                Err(format!("send failed: {error}"))
            }
            Err(_) => {
                // The server stopped reading; anything sent after this would only pile up.
                self.send_blocked =
                    Some(format!("the server stopped reading: a send did not complete within {timeout:?}"));
                Err(format!("send did not complete within {timeout:?}"))
            }
        }
    }

    /// Waits up to `timeout` for the next data frame or the end of the connection.
    /// Control frames are answered by the library and not reported.
    pub async fn recv(&mut self, timeout: Duration) -> Event {
        if self.ended {
            return Event::Dropped("the connection has already ended".into());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Event::Timeout,
                Ok(next) => next,
            };
            let at = self.started.elapsed();
            let mid_frame = self.ws.get_ref().tracker().mid_frame();
            let event = match next {
                None if mid_frame => Event::Dropped("the TCP connection ended in the middle of a frame".into()),
                None => Event::Dropped("connection ended".into()),
                Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) if mid_frame => {
                    Event::Dropped("the TCP connection ended in the middle of a frame".into())
                }
                Some(Ok(Message::Text(text))) => Event::Text(text.to_string()),
                Some(Ok(Message::Binary(bytes))) => Event::Binary(bytes.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    Event::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(WsError::Protocol(error))) => Event::Dropped(format!("protocol error: {error}")),
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    Event::Dropped("connection closed".into())
                }
                Some(Err(error)) => Event::Dropped(error.to_string()),
            };
            match &event {
                Event::Text(text) => {
                    self.received_types.note_text(text);
                    self.transcript.record(at, Direction::Received, "text", text)
                }
                Event::Binary(bytes) => {
                    self.transcript.record(at, Direction::Received, "binary", &format!("{} bytes", bytes.len()))
                }
                Event::Closed(frame) => {
                    self.ended = true;
                    self.end_reason = Some(match frame {
                        Some((code, reason)) => {
                            format!("the server closed it with code {code} {reason}").trim_end().to_string()
                        }
                        None => "the server closed it with an empty Close frame".into(),
                    });
                    // Completes the closing handshake: the library queued our echo; send it now.
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                    let text = frame.as_ref().map_or("(no code)".to_string(), |(c, r)| format!("{c} {r}"));
                    self.transcript.record(at, Direction::Received, "close", &text);
                }
                Event::Dropped(reason) => {
                    self.ended = true;
                    self.end_reason = Some(format!("it was dropped without a Close frame ({reason})"));
                    self.transcript.record(at, Direction::Received, "dropped", reason);
                }
                Event::Timeout => {}
            }
            return event;
        }
    }

    /// Starts the closing handshake. The server's echo arrives as [`Event::Closed`] from `recv`.
    pub async fn close(&mut self, code: u16, reason: &str, timeout: Duration) -> Result<(), String> {
        self.transcript.record(self.started.elapsed(), Direction::Sent, "close", &format!("{code} {reason}"));
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
        match tokio::time::timeout(timeout, self.ws.close(Some(frame))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("close failed: {error}")),
            Err(_) => Err(format!("close did not complete within {timeout:?}")),
        }
    }

    /// Ends a connection the harness is done with as a well-behaved client does: Close 1000,
    /// then up to `wait` for the server's echo. Housekeeping, not part of any case: nothing is
    /// recorded, and a server that does not echo is judged by `close.handshake`, not here.
    pub async fn finish(&mut self, wait: Duration) {
        if self.ended || self.send_blocked.is_some() {
            return;
        }
        self.ended = true;
        close_normally(&mut self.ws, wait).await;
    }

    /// Ends the TCP connection without a closing handshake, as a crashing client would.
    pub fn drop_connection(mut self) -> Transcript {
        self.transcript.record(self.started.elapsed(), Direction::Sent, "dropped", "TCP connection dropped");
        std::mem::take(&mut self.transcript)
    }

    pub fn into_transcript(self) -> Transcript {
        self.transcript
    }

    /// Received messages by type, so far.
    pub fn received_types(&self) -> &TypeTally {
        &self.received_types
    }

    /// The bare WebSocket, for the load generator's hot loops, which keep no transcript.
    pub fn into_stream(self) -> Stream {
        self.ws
    }
}
