//! A connection's bounded outgoing queue. Memory per client stays bounded however slowly the
//! client reads: when the queue is full the oldest MarketData goes first (a newer price
//! supersedes it), and a client that cannot keep up even with that is disconnected.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

/// What a queued text message is, for the drop policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Superseded by the next tick: may be dropped under pressure.
    MarketData,
    /// Everything else: replies, trades, positions, status.
    Important,
}

#[derive(Debug)]
pub enum Outgoing {
    Text(Utf8Bytes),
    /// Only echo mode sends binary frames.
    Binary(Bytes),
    /// Sends a Close frame, then the writer stops.
    Close(CloseFrame),
}

/// What happened to a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued after dropping the oldest queued MarketData.
    QueuedDroppingOldest,
    /// The message itself was MarketData and nothing older could make room: dropped.
    Dropped,
    /// The queue is full of messages that may not be dropped: the client must go.
    Overflow,
    /// The connection is closing; nothing more is queued.
    Closed,
}

struct State {
    queue: VecDeque<(Kind, Outgoing)>,
    closing: bool,
    dropped: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            // Grows on demand: most connections are idle most of the time.
            state: Mutex::new(State { queue: VecDeque::new(), closing: false, dropped: 0 }),
            ready: Notify::new(),
            capacity,
        }
    }

    pub fn push(&self, kind: Kind, text: Utf8Bytes) -> Pushed {
        self.push_message(kind, Outgoing::Text(text))
    }

    pub fn push_message(&self, kind: Kind, message: Outgoing) -> Pushed {
        let outcome = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closing {
                return Pushed::Closed;
            }
            let mut outcome = Pushed::Queued;
            if state.queue.len() >= self.capacity {
                if let Some(oldest) = state.queue.iter().position(|(k, _)| *k == Kind::MarketData) {
                    state.queue.remove(oldest);
                    state.dropped += 1;
                    outcome = Pushed::QueuedDroppingOldest;
                } else if kind == Kind::MarketData {
                    state.dropped += 1;
                    return Pushed::Dropped;
                } else {
                    return Pushed::Overflow;
                }
            }
            state.queue.push_back((kind, message));
            outcome
        };
        self.ready.notify_one();
        outcome
    }

    /// Queues a Close behind what is already queued; later pushes are refused.
    pub fn close(&self, frame: CloseFrame) {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closing {
                return;
            }
            state.closing = true;
            state.queue.push_back((Kind::Important, Outgoing::Close(frame)));
        }
        self.ready.notify_one();
    }

    /// Queues a Close behind the replies already queued, dropping queued MarketData: what the
    /// client was owed goes out, broadcasts do not hold the Close back.
    pub fn close_after_replies(&self, frame: CloseFrame) {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closing {
                return;
            }
            state.closing = true;
            let before = state.queue.len();
            state.queue.retain(|(kind, _)| *kind == Kind::Important);
            state.dropped += (before - state.queue.len()) as u64;
            state.queue.push_back((Kind::Important, Outgoing::Close(frame)));
        }
        self.ready.notify_one();
    }

    /// Like `close`, but discards what is queued so the Close goes out first.
    pub fn close_now(&self, frame: CloseFrame) {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closing {
                return;
            }
            state.closing = true;
            state.queue.clear();
            state.queue.push_back((Kind::Important, Outgoing::Close(frame)));
        }
        self.ready.notify_one();
    }

    pub fn dropped(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).dropped
    }

    /// Waits for at least one message and takes everything queued, so the writer can send a
    /// batch and flush once.
    pub async fn take_batch(&self, into: &mut Vec<Outgoing>) {
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if !state.queue.is_empty() {
                    into.extend(state.queue.drain(..).map(|(_, item)| item));
                    return;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_string())
    }

    fn drain(outbox: &Outbox) -> Vec<String> {
        let mut batch = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(outbox.take_batch(&mut batch));
        batch
            .into_iter()
            .map(|o| match o {
                Outgoing::Text(t) => t.to_string(),
                Outgoing::Binary(b) => format!("binary {}", b.len()),
                Outgoing::Close(f) => format!("close {}", u16::from(f.code)),
            })
            .collect()
    }

    #[test]
    fn closing_after_replies_keeps_them_and_drops_market_data() {
        let outbox = Outbox::new(8);
        outbox.push(Kind::Important, text("pong 1"));
        outbox.push(Kind::MarketData, text("m1"));
        outbox.push(Kind::Important, text("pong 2"));
        outbox.close_after_replies(CloseFrame { code: 1008.into(), reason: "rate".into() });
        assert_eq!(outbox.push(Kind::Important, text("late")), Pushed::Closed);
        assert_eq!(drain(&outbox), ["pong 1", "pong 2", "close 1008"]);
        assert_eq!(outbox.dropped(), 1);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_market_data_first() {
        let outbox = Outbox::new(3);
        assert_eq!(outbox.push(Kind::MarketData, text("m1")), Pushed::Queued);
        assert_eq!(outbox.push(Kind::Important, text("pong")), Pushed::Queued);
        assert_eq!(outbox.push(Kind::MarketData, text("m2")), Pushed::Queued);
        assert_eq!(outbox.push(Kind::MarketData, text("m3")), Pushed::QueuedDroppingOldest);
        assert_eq!(outbox.push(Kind::Important, text("trade")), Pushed::QueuedDroppingOldest);
        assert_eq!(outbox.dropped(), 2);
        assert_eq!(drain(&outbox), ["pong", "m3", "trade"]);
    }

    #[test]
    fn market_data_is_dropped_and_important_messages_overflow_when_nothing_can_go() {
        let outbox = Outbox::new(2);
        outbox.push(Kind::Important, text("a"));
        outbox.push(Kind::Important, text("b"));
        assert_eq!(outbox.push(Kind::MarketData, text("m")), Pushed::Dropped);
        assert_eq!(outbox.push(Kind::Important, text("c")), Pushed::Overflow);
        assert_eq!(outbox.dropped(), 1);
    }

    #[test]
    fn nothing_is_queued_after_close() {
        let outbox = Outbox::new(4);
        outbox.push(Kind::Important, text("a"));
        outbox.close_now(CloseFrame { code: 1001.into(), reason: "bye".into() });
        assert_eq!(outbox.push(Kind::Important, text("b")), Pushed::Closed);
        assert_eq!(drain(&outbox), ["close 1001"]);
    }
}
