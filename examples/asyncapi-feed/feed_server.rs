//! A ticker feed server written from `feed.yaml` alone, as a team with only the document would
//! write one, plus one planted deviation per rule wsprobe derives from the document. The tests
//! check that each deviation fails exactly its rule; `cargo run --example feed_server` serves it
//! for the README's commands.
//!
//! It also has a bug nobody planted, left in as found: on a frame of invalid UTF-8 the read
//! loop returns and the connection ends without a Close frame (RFC 6455 wants 1007).
//! `wsprobe fuzz --asyncapi feed.yaml` finds it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// One deviation from the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// subscriptionStatus leaves out the `reqid` of the subscribe it answers.
    StatusWithoutReqid,
    /// systemStatus reports `degraded`, a status outside its enum.
    StatusOutsideEnum,
    /// A ping gets no pong.
    IgnorePing,
    /// After its status, the feed sends `announcement`, a message the document does not have.
    UndocumentedMessage,
    /// A pong echoes a reqid its ping did not carry (one more).
    WrongReqid,
    /// Input that is no request of the document (bad JSON, an unknown event, an invalid
    /// request, a binary frame) ends the connection without a Close.
    DropOnBadInput,
    /// Pongs leave in swapped pairs: a ping's pong waits for the next ping's. Under load with
    /// several pings in flight the replies come out of order, which their `reqid` allows; a
    /// lone ping is never answered.
    SwapPongs,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::StatusWithoutReqid,
        Fault::StatusOutsideEnum,
        Fault::IgnorePing,
        Fault::UndocumentedMessage,
        Fault::WrongReqid,
        Fault::DropOnBadInput,
        Fault::SwapPongs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::StatusWithoutReqid => "status-without-reqid",
            Fault::StatusOutsideEnum => "status-outside-enum",
            Fault::IgnorePing => "ignore-ping",
            Fault::UndocumentedMessage => "undocumented-message",
            Fault::WrongReqid => "wrong-reqid",
            Fault::DropOnBadInput => "drop-on-bad-input",
            Fault::SwapPongs => "swap-pongs",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

const PAIRS: [&str; 3] = ["XBT/USD", "ETH/USD", "ETH/XBT"];
const HEARTBEAT: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(250);

/// A feed on 127.0.0.1:0, served on a thread of its own until the process ends; its URL. For
/// the tests, which share this file with the example.
#[allow(dead_code)]
pub fn spawn_on_loopback(fault: Option<Fault>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            serve(listener, fault).await;
        });
    });
    format!("ws://{address}/feed")
}

/// Serves every connection `listener` accepts, until the process ends.
pub async fn serve(listener: TcpListener, fault: Option<Fault>) {
    while let Ok((stream, _)) = listener.accept().await {
        // Replies are small and must not wait for more to send (Nagle's algorithm).
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, fault));
    }
}

// The refusal's type is tungstenite's callback contract, however large.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, fault: Option<Fault>) {
    // The channel's address is /feed; anything else is not found.
    let only_feed = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() == "/feed" {
            Ok(response)
        } else {
            let mut refused = ErrorResponse::new(Some("no such channel".into()));
            *refused.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            Err(refused)
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, only_feed).await else { return };
    let (mut sink, mut incoming) = ws.split();
    let status = if fault == Some(Fault::StatusOutsideEnum) { "degraded" } else { "online" };
    let mut out = vec![json!({"event": "systemStatus", "status": status, "version": "1.2.0"})];
    if fault == Some(Fault::UndocumentedMessage) {
        out.push(json!({"event": "announcement", "text": "maintenance at noon"}));
    }
    let mut subscribed: Vec<&'static str> = Vec::new();
    let mut held_pong: Option<Value> = None;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut tick = tokio::time::interval(TICK);
    loop {
        for message in out.drain(..) {
            if sink.send(Message::text(message.to_string())).await.is_err() {
                return;
            }
        }
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let request = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
                    if let Some(reqid) = ping(&request) {
                        if fault == Some(Fault::IgnorePing) {
                            continue;
                        }
                        let reqid = if fault == Some(Fault::WrongReqid) { reqid.map(|id| id + 1) } else { reqid };
                        let pong = with_reqid(json!({"event": "pong"}), reqid);
                        match (fault, held_pong.take()) {
                            (Some(Fault::SwapPongs), None) => held_pong = Some(pong),
                            (_, held) => out.extend(std::iter::once(pong).chain(held)),
                        }
                    } else if let Some((reqid, pairs)) = subscribe(&request) {
                        for pair in pairs {
                            let reqid = if fault == Some(Fault::StatusWithoutReqid) { None } else { reqid };
                            let status = json!({"event": "subscriptionStatus", "status": "subscribed", "pair": pair, "channelName": "ticker"});
                            out.push(with_reqid(status, reqid));
                            if !subscribed.contains(&pair) {
                                subscribed.push(pair);
                            }
                        }
                    } else if fault == Some(Fault::DropOnBadInput) {
                        return;
                    }
                    // Anything else is not a request of the document: ignored.
                }
                Some(Ok(Message::Binary(_))) if fault == Some(Fault::DropOnBadInput) => return,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => out.push(json!({"event": "heartbeat"})),
            _ = tick.tick() => {
                for pair in &subscribed {
                    let time = reference_server::iso8601(reference_server::now_ms() / 1000, 0);
                    out.push(json!({"event": "ticker", "pair": pair, "bid": 61_250.5, "ask": 61_251.0, "time": time}));
                }
            }
        }
    }
}

/// A valid ping's `reqid` (`Some(None)` for a ping without one).
fn ping(request: &Value) -> Option<Option<u64>> {
    let object = request.as_object()?;
    (object.get("event")? == "ping" && only(object, &["event", "reqid"])).then_some(())?;
    reqid(object)
}

/// A valid subscribe's `reqid` and pairs.
fn subscribe(request: &Value) -> Option<(Option<u64>, Vec<&'static str>)> {
    let object = request.as_object()?;
    (object.get("event")? == "subscribe" && only(object, &["event", "reqid", "pair", "subscription"])).then_some(())?;
    let subscription = object.get("subscription")?.as_object()?;
    (subscription.len() == 1 && subscription.get("name")? == "ticker").then_some(())?;
    let pairs: Option<Vec<&'static str>> = object
        .get("pair")?
        .as_array()?
        .iter()
        .map(|pair| PAIRS.into_iter().find(|known| Some(*known) == pair.as_str()))
        .collect();
    let pairs = pairs.filter(|p| !p.is_empty())?;
    Some((reqid(object)?, pairs))
}

/// `Some(None)` without a reqid, `None` for an invalid one.
fn reqid(object: &Map<String, Value>) -> Option<Option<u64>> {
    match object.get("reqid") {
        None => Some(None),
        Some(id) => id.as_u64().filter(|id| *id <= u64::from(u32::MAX)).map(Some),
    }
}

fn only(object: &Map<String, Value>, allowed: &[&str]) -> bool {
    object.keys().all(|key| allowed.contains(&key.as_str()))
}

fn with_reqid(mut message: Value, reqid: Option<u64>) -> Value {
    if let Some(reqid) = reqid {
        message["reqid"] = json!(reqid);
    }
    message
}
