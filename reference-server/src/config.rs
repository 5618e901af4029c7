//! Server settings. Every duration is injectable so tests run in milliseconds while the
//! defaults follow the spec.

use std::time::Duration;

use crate::client_faults::FaultPlan;
use crate::observe::ObserverHandle;

/// Which endpoint to impersonate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Profile {
    /// The core engine: Connected, market simulation, paper trading.
    Core,
    /// The AI service: `connection` welcome and periodic AI signals.
    Ai,
}

impl Profile {
    pub fn default_port(self) -> u16 {
        match self {
            Profile::Core => 8080,
            Profile::Ai => 8000,
        }
    }
}

/// Whether clients must present a JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum AuthMode {
    /// Tokens are ignored.
    Off,
    /// No token is fine; a token that is present must be valid.
    Optional,
    /// A valid token is needed before Connected is sent.
    Required,
}

impl AuthMode {
    /// As written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Off => "off",
            AuthMode::Optional => "optional",
            AuthMode::Required => "required",
        }
    }
}

/// Deliberate protocol defects, one per flag. They turn the reference server into the broken
/// servers that prove wsprobe's checks fail when they should, and into a faulting peer for
/// testing clients' heartbeat and reconnect handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Fault {
    /// Never send Connected / `connection`.
    NoWelcome,
    /// Answer Ping with `{"type":"Pong","timestamp":""}`.
    MalformedPong,
    /// Answer Ping only after `pong_delay`.
    SlowPong,
    /// Send every MarketData with a negative price.
    CorruptMarketData,
    /// Send a non-JSON text frame on every tick.
    GarbageFrames,
    /// Send nothing at all and answer nothing, not even a Close.
    Silent,
    /// Drop the TCP connection, without a Close frame, on any bad input.
    DropOnBadInput,
    /// Once, after `stall_after_pings` Pings, stop reading and replying for `stall`.
    StallOnce,
    /// Accept any token in `Authorization: Bearer`, verified or not.
    AcceptAnyHeaderToken,
    /// Accept any token in `?token=`, verified or not.
    AcceptAnyQueryToken,
    /// Accept any token in an `Authenticate` message, verified or not.
    AcceptAnyAuthenticateToken,
    /// After a Ping whose `timestamp` is 0, stop answering that connection (it stays open).
    /// The suite never sends one; the fuzzer derives it from the schema's minimum.
    HangOnZeroTimestamp,
    /// Drop the TCP connection, without a Close frame, on an `Authenticate` whose token is
    /// the empty string.
    DropOnEmptyToken,
    /// Answer a message carrying a boolean member the schemas do not define with an Error
    /// whose `data` lacks its `code`.
    CodelessErrorOnExtraBoolean,
}

/// Everything the server can be told. Start from [`Config::new`] (the spec's defaults) and
/// change what a test needs, with the `with_*` methods or by setting fields. Non-exhaustive,
/// so new settings are not a breaking change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    pub profile: Profile,
    pub auth: AuthMode,
    /// HS256 secret; required unless auth is off.
    pub jwt_secret: Option<String>,
    /// How long a client may take to send its Authenticate message when auth is required.
    pub auth_timeout: Duration,
    /// Client data frames allowed per window; `None` lifts the limit (load testing).
    pub rate_limit: Option<u32>,
    pub rate_window: Duration,
    /// Simulation step; one tick is one simulated market minute.
    pub tick: Duration,
    pub seed: u64,
    pub symbols: Vec<String>,
    /// Largest client frame or message accepted; larger ones close the connection with 1009.
    pub max_message_bytes: usize,
    /// Outgoing messages buffered per connection before MarketData is dropped.
    pub outgoing_queue: usize,
    /// How long one write to a client may block before the client is considered gone.
    pub write_timeout: Duration,
    /// How long the WebSocket opening handshake may take.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for clients to answer the 1001 Close.
    pub shutdown_grace: Duration,
    /// Ticks between AI signals (both profiles).
    pub signal_every_ticks: u64,
    /// Deliberate defects; empty for a conforming server.
    pub faults: Vec<Fault>,
    /// How late Pong comes with [`Fault::SlowPong`].
    pub pong_delay: Duration,
    /// With [`Fault::StallOnce`]: how long the stall lasts, and how many Pings come first.
    pub stall: Duration,
    pub stall_after_pings: u64,
    /// Read buffer per connection. Client messages are small (a Ping is about 40 bytes), and
    /// the buffer grows for a larger one, so a small one keeps idle connections cheap: at 2 KiB,
    /// 10,000 connections fit in under 100 MB (README, Performance).
    pub read_buffer_bytes: usize,
    /// Open WebSocket connections at most; more are answered with HTTP 503. `None`: no cap.
    pub max_connections: Option<usize>,
    /// A welcomed client that sends nothing (not even a Ping) for this long is closed with
    /// 1008. Longer than the spec's 30 s Ping interval plus its 10 s Pong timeout. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// The upgrade request's head (request line and headers) at most; more gets HTTP 431.
    pub max_request_head_bytes: usize,
    /// Echo mode: the same listener, limits and frame handling, with an echo handler in place
    /// of the protocol (for Autobahn|Testsuite's cases).
    pub echo: bool,
    /// Faults aimed at clients, over time (drops, refusals, withheld Pongs, outages).
    pub client_faults: FaultPlan,
    /// Told about every attempt, frame and close, for checking clients.
    pub observer: Option<ObserverHandle>,
    /// Serve wss://: TLS with this certificate and key before the upgrade.
    pub tls: Option<crate::tls::TlsIdentity>,
}

/// Defaults for the limits above, documented in the README's "Hostile peers" section.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

impl Config {
    pub fn new(profile: Profile) -> Config {
        Config {
            profile,
            auth: AuthMode::Off,
            jwt_secret: None,
            auth_timeout: Duration::from_millis(5000),
            rate_limit: Some(100),
            rate_window: Duration::from_millis(60_000),
            tick: Duration::from_millis(1000),
            seed: 1,
            symbols: ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"].map(String::from).to_vec(),
            max_message_bytes: 64 * 1024,
            outgoing_queue: 1024,
            write_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(2),
            signal_every_ticks: 5,
            faults: Vec::new(),
            pong_delay: Duration::from_secs(15),
            stall: Duration::from_millis(500),
            stall_after_pings: 100,
            read_buffer_bytes: 2 * 1024,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_request_head_bytes: DEFAULT_MAX_REQUEST_HEAD_BYTES,
            echo: false,
            client_faults: FaultPlan::default(),
            observer: None,
            tls: None,
        }
    }

    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// Tokens checked with this HS256 secret: `Optional` (a token that is present must be
    /// valid) or `Required` (no welcome without one).
    pub fn with_auth(mut self, auth: AuthMode, jwt_secret: impl Into<String>) -> Config {
        self.auth = auth;
        self.jwt_secret = Some(jwt_secret.into());
        self
    }

    /// Client messages allowed per rate window; `None` lifts the limit (load tests).
    pub fn with_rate_limit(mut self, limit: Option<u32>) -> Config {
        self.rate_limit = limit;
        self
    }

    /// The simulation step: MarketData and the other broadcasts come once per tick.
    pub fn with_tick(mut self, tick: Duration) -> Config {
        self.tick = tick;
        self
    }

    pub fn with_tls(mut self, identity: crate::tls::TlsIdentity) -> Config {
        self.tls = Some(identity);
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Config {
        self.seed = seed;
        self
    }

    /// Breaks the protocol on purpose, to see that a client or a harness notices.
    pub fn with_fault(mut self, fault: Fault) -> Config {
        self.faults.push(fault);
        self
    }

    /// Faults aimed at clients, over time (see [`FaultPlan`]).
    pub fn with_client_faults(mut self, plan: FaultPlan) -> Config {
        self.client_faults = plan;
        self
    }

    /// How long shutdown waits for clients to answer its Close 1001.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Config {
        self.shutdown_grace = grace;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--auth {} needs --jwt-secret (the HS256 key tokens are signed with)", .0.name())]
    MissingSecret(AuthMode),
    #[error("--symbols must name at least one symbol")]
    NoSymbols,
    #[error("symbol {0:?} must be upper-case letters and digits, like BTCUSDT")]
    BadSymbol(String),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("the listener has no local address: {0}")]
    Listener(String),
}

impl Config {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.auth != AuthMode::Off && self.jwt_secret.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::MissingSecret(self.auth));
        }
        if self.symbols.is_empty() {
            return Err(ConfigError::NoSymbols);
        }
        if let Some(bad) = self
            .symbols
            .iter()
            .find(|s| s.len() < 2 || !s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
        {
            return Err(ConfigError::BadSymbol(bad.clone()));
        }
        for (name, zero) in [
            ("--tick-ms", self.tick.is_zero()),
            ("--rate-window-ms", self.rate_window.is_zero()),
            ("--auth-timeout-ms", self.auth_timeout.is_zero()),
            ("the outgoing queue", self.outgoing_queue == 0),
            ("the maximum message size", self.max_message_bytes == 0),
            ("the signal interval", self.signal_every_ticks == 0),
            ("--max-request-head-bytes", self.max_request_head_bytes == 0),
            ("--handshake-timeout-ms", self.handshake_timeout.is_zero()),
            ("--write-timeout-ms", self.write_timeout.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }
}
