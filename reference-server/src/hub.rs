//! Every live connection, for broadcasts and for shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::outbox::{Kind, Outbox, Pushed};

pub struct Client {
    pub outbox: Outbox,
    /// Set once the client is welcomed (after auth): only then does it get broadcasts.
    pub subscribed: AtomicBool,
    /// Set by a stall fault: nothing more is sent to this client, broadcasts included.
    pub stalled: AtomicBool,
    /// Rung by an outage fault: the connection drops at once, without a Close.
    pub killed: tokio::sync::Notify,
}

impl Client {
    pub fn new(outbox: Outbox) -> Client {
        Client { outbox, subscribed: false.into(), stalled: false.into(), killed: tokio::sync::Notify::new() }
    }
}

/// Counters for logs, tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub handshakes_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub rate_limited: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    pub market_data_dropped: AtomicU64,
    pub messages_received: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub handshakes_refused: u64,
    pub auth_failures: u64,
    pub rate_limited: u64,
    pub slow_consumers_closed: u64,
    pub market_data_dropped: u64,
    pub messages_received: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_active: get(&self.connections_active),
            handshakes_refused: get(&self.handshakes_refused),
            auth_failures: get(&self.auth_failures),
            rate_limited: get(&self.rate_limited),
            slow_consumers_closed: get(&self.slow_consumers_closed),
            market_data_dropped: get(&self.market_data_dropped),
            messages_received: get(&self.messages_received),
        }
    }
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub struct Hub {
    clients: Mutex<HashMap<u64, Arc<Client>>>,
    /// How many clients are connected, for shutdown to await zero.
    count: watch::Sender<usize>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub { clients: Mutex::default(), count: watch::Sender::new(0) }
    }
}

impl Hub {
    pub fn add(&self, id: u64, client: Arc<Client>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.insert(id, client);
        self.count.send_replace(clients.len());
    }

    pub fn remove(&self, id: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(&id);
        self.count.send_replace(clients.len());
    }

    /// Resolves once no client is connected.
    pub async fn emptied(&self) {
        let _ = self.count.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Queues one serialized message for every welcomed client.
    pub fn broadcast(&self, kind: Kind, text: &Utf8Bytes, stats: &Stats) {
        let clients: Vec<Arc<Client>> =
            self.clients.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for client in
            clients.iter().filter(|c| c.subscribed.load(Ordering::Acquire) && !c.stalled.load(Ordering::Acquire))
        {
            match client.outbox.push(kind, text.clone()) {
                Pushed::Queued | Pushed::Closed => {}
                Pushed::QueuedDroppingOldest | Pushed::Dropped => bump(&stats.market_data_dropped),
                Pushed::Overflow => {
                    bump(&stats.slow_consumers_closed);
                    client.outbox.close_now(CloseFrame { code: CloseCode::Again, reason: "slow consumer".into() });
                }
            }
        }
    }

    /// Drops every connection without a Close (an outage fault).
    pub fn kill_all(&self) {
        for client in self.clients.lock().unwrap_or_else(|p| p.into_inner()).values() {
            client.killed.notify_one();
        }
    }

    /// Sends `frame` to every client, welcomed or not, behind what is already queued.
    pub fn close_all(&self, frame: &CloseFrame) {
        for client in self.clients.lock().unwrap_or_else(|p| p.into_inner()).values() {
            client.outbox.close(frame.clone());
        }
    }
}
