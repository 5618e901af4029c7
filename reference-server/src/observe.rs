//! What happens to each client, as events, for a harness that checks clients (`wsprobe
//! serve`). The server reports facts only (who connected, what they sent, who closed); judging
//! them against the spec's client rules is the observer's job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// One TCP connection from arrival to end; the same id links all its events.
pub type AttemptId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Instant,
    pub attempt: AttemptId,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// An upgrade request arrived. `at` is when the TCP connection was accepted, so the time is
    /// the client's attempt, not the end of its request. `client` is the name the client gave
    /// (`?client=NAME` or the `X-Wsprobe-Client` header), if any.
    Attempt { peer: SocketAddr, client: Option<String> },
    /// The upgrade was answered with this HTTP status instead of 101.
    Refused { status: u16, reason: String },
    /// The WebSocket is open.
    Opened,
    /// A data frame from the client: its text, or `None` for a binary frame.
    Received { text: Option<String> },
    /// A Ping the server deliberately left unanswered (a fault).
    PongWithheld,
    /// The server sent a Close frame with this code.
    ServerClosed { code: u16 },
    /// The server dropped the TCP connection without a Close (a fault).
    ServerDropped,
    /// The client sent a Close frame (first, or in answer to the server's).
    ClientClosed { code: Option<u16> },
    /// The TCP connection is gone.
    Ended,
}

/// Receives every event as it happens. Called from connection tasks: keep it cheap.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, event: Event);
}

/// An observer in a [`Config`](crate::Config): shared, and shown in debug output by name only.
#[derive(Clone)]
pub struct ObserverHandle(pub Arc<dyn Observer>);

impl std::fmt::Debug for ObserverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserverHandle(..)")
    }
}

/// The client's name, from the query (`client=NAME`) or the `X-Wsprobe-Client` header. The
/// query wins, since a browser cannot set headers on a WebSocket.
pub fn client_name(query: Option<&str>, header: Option<&str>) -> Option<String> {
    let from_query = query.and_then(|q| {
        q.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == "client" && !value.is_empty()).then(|| percent_decode(value))
        })
    });
    from_query.or_else(|| header.map(str::trim).filter(|h| !h.is_empty()).map(String::from))
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_client_before_the_header() {
        assert_eq!(client_name(Some("token=x&client=bot%201"), Some("hdr")).as_deref(), Some("bot 1"));
        assert_eq!(client_name(Some("token=x"), Some(" frontend ")).as_deref(), Some("frontend"));
        assert_eq!(client_name(Some("client="), None), None);
        assert_eq!(client_name(None, None), None);
        assert_eq!(client_name(Some("client=a%2"), None).as_deref(), Some("a%2"));
    }
}
