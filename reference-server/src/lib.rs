#![doc = include_str!("../README.md")]
//!
//! `serve(listener, config)` runs it on any listener; the binary wraps it with flags and signal
//! handling. wsprobe's integration tests check that every message it sends validates against
//! the schemas in `schemas/`.

mod auth;
mod client_faults;
mod clock;
mod config;
mod connection;
mod hub;
pub mod observe;
mod outbox;
mod protocol;
mod rate_limit;
mod request_head;
pub mod simulation;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::info;

pub use auth::{AuthFailure, TokenVerifier};
pub use client_faults::{ClientFault, FaultPlan, ScheduledFault};
pub use clock::{iso8601, now_ms};
pub use config::{
    AuthMode, Config, ConfigError, Fault, Profile, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUEST_HEAD_BYTES,
};
pub use hub::StatsSnapshot;
pub use protocol::parse_client_message;
pub use tls::{TlsError, TlsIdentity};

use hub::{Hub, Stats};
use simulation::Simulation;

/// State shared by the accept loop, the simulation and every connection.
struct Shared {
    config: Config,
    verifier: Option<TokenVerifier>,
    hub: Hub,
    stats: Stats,
    next_client: AtomicU64,
    /// Pings answered by all connections, for [`Fault::StallOnce`].
    pings: AtomicU64,
    /// When serving began: client faults are scheduled from here.
    started: Instant,
    /// Numbers every TCP connection, for the observer.
    next_attempt: AtomicU64,
    /// Clients refused until a time, by name or address (client fault `RefuseFor`).
    refused_until: Mutex<HashMap<String, Instant>>,
    /// Every upgrade is refused until this time (client fault `DownFor`).
    down_until: Mutex<Option<Instant>>,
}

impl Shared {
    /// Tells the observer, if there is one, what happened at `at`; `kind` is built only then.
    fn observe_at(&self, attempt: observe::AttemptId, at: Instant, kind: impl FnOnce() -> observe::EventKind) {
        if let Some(observer) = &self.config.observer {
            observer.0.observe(observe::Event { at, attempt, kind: kind() });
        }
    }

    /// Tells the observer, if there is one, what happens now. Without one this costs a branch:
    /// it sits on the path of every frame, so not even the clock is read.
    fn observe(&self, attempt: observe::AttemptId, kind: impl FnOnce() -> observe::EventKind) {
        if self.config.observer.is_some() {
            self.observe_at(attempt, Instant::now(), kind);
        }
    }

    fn since_start(&self) -> Duration {
        self.started.elapsed()
    }

    /// Why an upgrade from `client` must be refused now (an outage or a refusal window), if it must.
    fn refusal(&self, client: &str) -> Option<&'static str> {
        let now = Instant::now();
        if self.down_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|until| now < until) {
            return Some("service unavailable: the server is down (fault down-for)");
        }
        let refused = self.refused_until.lock().unwrap_or_else(|p| p.into_inner());
        refused
            .get(client)
            .is_some_and(|until| now < *until)
            .then_some("service unavailable: refusing reconnects (fault refuse-for)")
    }

    /// A fault ended `client`'s connection: start its refusal window, if the plan has one.
    fn refuse_after_drop(&self, client: &str) {
        if let Some(length) = self.config.client_faults.refusal_after_drop(self.since_start()) {
            let mut refused = self.refused_until.lock().unwrap_or_else(|p| p.into_inner());
            refused.insert(client.to_string(), Instant::now() + length);
        }
    }
}

/// A running server. Dropping it leaves the server running until its runtime ends; call
/// [`ServerHandle::shutdown`] for the graceful path (STOPPED status, Close 1001 to everyone).
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    simulation_task: JoinHandle<()>,
    outage_task: JoinHandle<()>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://IP:PORT/ws`, or `wss://` with a TLS identity.
    pub fn url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.local_addr)
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, broadcasts the final status, sends Close 1001 to every client and
    /// waits (up to the configured grace period) for them to go.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.accept_task.abort();
        self.outage_task.abort();
        let _ = self.simulation_task.await;
        self.shared.hub.close_all(&CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() });
        let grace = self.shared.config.shutdown_grace + Duration::from_millis(100);
        let _ = tokio::time::timeout(grace, self.shared.hub.emptied()).await;
        let stats = self.shared.stats.snapshot();
        info!(
            connections = stats.connections_accepted,
            auth_failures = stats.auth_failures,
            rate_limited = stats.rate_limited,
            market_data_dropped = stats.market_data_dropped,
            slow_consumers_closed = stats.slow_consumers_closed,
            "shut down"
        );
    }
}

/// A fresh HS256 secret: 256 bits from the kernel's random source (so no forged token
/// guesses it), written in hex.
pub fn random_secret() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_err() {
        // No /dev/urandom (not Linux): the standard library's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts serving on `listener`. Must be called inside a Tokio runtime.
pub fn serve(listener: TcpListener, config: Config) -> Result<ServerHandle, ConfigError> {
    config.check()?;
    let local_addr = listener.local_addr().map_err(|e| ConfigError::Listener(e.to_string()))?;
    let verifier = match config.auth {
        AuthMode::Off => None,
        _ => config.jwt_secret.as_deref().map(TokenVerifier::new),
    };
    let shared = Arc::new(Shared {
        config,
        verifier,
        hub: Hub::default(),
        stats: Stats::default(),
        next_client: 0.into(),
        pings: 0.into(),
        started: Instant::now(),
        next_attempt: 0.into(),
        refused_until: Mutex::default(),
        down_until: Mutex::default(),
    });
    let (stop, stopped) = watch::channel(false);

    let accept_shared = shared.clone();
    let mut accept_stopped = stopped.clone();
    let accept_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        hub::bump(&accept_shared.stats.connections_accepted);
                        tokio::spawn(connection::handle(stream, peer, accept_shared.clone()));
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = accept_stopped.changed() => break,
            }
        }
    });

    let outage_task = tokio::spawn(run_outages(shared.clone()));
    let simulation_task = tokio::spawn(run_simulation(shared.clone(), stopped));
    Ok(ServerHandle { local_addr, shared, stop, accept_task, simulation_task, outage_task })
}

/// The plan's outages, in order: each drops every connection, then refuses upgrades a while.
async fn run_outages(shared: Arc<Shared>) {
    let mut outages = shared.config.client_faults.outages();
    outages.sort();
    for (from, length) in outages {
        tokio::time::sleep_until((shared.started + from).into()).await;
        tracing::warn!(?length, "outage (fault down-for): dropping every connection");
        *shared.down_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + length);
        shared.hub.kill_all();
    }
}

async fn run_simulation(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let config = &shared.config;
    let mut simulation = Simulation::new(
        config.profile,
        config.seed,
        &config.symbols,
        config.tick.as_millis() as u64,
        config.signal_every_ticks,
        now_ms(),
    );
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + config.tick, config.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if config.has(config::Fault::Silent) {
                    continue;
                }
                for (kind, mut message) in simulation.step(now_ms()) {
                    if config.has(config::Fault::CorruptMarketData) && message["type"] == "MarketData" {
                        message["data"]["price"] = serde_json::json!(-1.0);
                    }
                    shared.hub.broadcast(kind, &Utf8Bytes::from(message.to_string()), &shared.stats);
                }
                if config.has(config::Fault::GarbageFrames) {
                    shared.hub.broadcast(outbox::Kind::Important, &Utf8Bytes::from_static("\u{1}garbage{not json"), &shared.stats);
                }
            }
            _ = stopped.changed() => break,
        }
    }
    for (kind, message) in simulation.stop(now_ms()).into_iter().filter(|_| !config.has(config::Fault::Silent)) {
        shared.hub.broadcast(kind, &Utf8Bytes::from(message.to_string()), &shared.stats);
    }
}

/// A server on its own runtime and threads, so a load generator in the same process does not
/// share workers with it. Stops when dropped.
pub struct BackgroundServer {
    url: String,
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    pub fn start(config: Config, bind: SocketAddr, worker_threads: usize) -> std::io::Result<BackgroundServer> {
        config.check().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("reference-server")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(bind))?;
        let handle = runtime
            .block_on(async { serve(listener, config) })
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let (url, local_addr) = (handle.url(), handle.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("reference-server".into()).spawn(move || {
            runtime.block_on(async move {
                let _ = stopped.await;
                handle.shutdown().await;
            });
        })?;
        Ok(BackgroundServer { url, local_addr, stop: Some(stop), thread: Some(thread) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
