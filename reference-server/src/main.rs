use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reference_server::{AuthMode, Config, Fault, Profile};

/// The reference implementation of the Bot Core WebSocket protocol.
#[derive(Debug, Parser)]
#[command(name = "reference-server", version)]
struct Args {
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    profile: Profile,
    /// Address to listen on; defaults to 127.0.0.1:8080 (core) or 127.0.0.1:8000 (ai). Port 0 picks a free port.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// off ignores tokens; optional (the default) checks a token when one is sent; required
    /// wants one before the welcome.
    #[arg(long, value_enum, default_value_t = AuthMode::Optional)]
    auth: AuthMode,
    /// HS256 secret for JWTs. Also read from WSPROBE_JWT_SECRET. Without it, a random one is
    /// made at start and printed, so no forged token is ever accepted.
    #[arg(long, env = "WSPROBE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Serve wss://: the certificate chain (PEM, leaf first). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 5000)]
    auth_timeout_ms: u64,
    /// Client messages allowed per window; 0 lifts the limit.
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    #[arg(long, default_value_t = 60_000)]
    rate_window_ms: u64,
    /// Simulation tick: one simulated market minute.
    #[arg(long, default_value_t = 1000)]
    tick_ms: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_delimiter = ',', default_value = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT")]
    symbols: Vec<String>,
    /// Largest client message accepted; larger ones are closed with 1009.
    #[arg(long, default_value_t = 65_536)]
    max_message_bytes: usize,
    /// Outgoing messages buffered per client before the oldest MarketData is dropped.
    #[arg(long, default_value_t = 1024)]
    outgoing_queue: usize,
    /// Ticks between AI signals.
    #[arg(long, default_value_t = 5)]
    signal_every_ticks: u64,
    /// Break the protocol on purpose (repeatable), to test clients or the harness itself.
    #[arg(long = "fault", value_enum)]
    faults: Vec<Fault>,
    /// Pong delay under --fault slow-pong.
    #[arg(long, default_value_t = 15_000)]
    pong_delay_ms: u64,
    /// Stall length under --fault stall-once.
    #[arg(long, default_value_t = 500)]
    stall_ms: u64,
    /// Pings answered before the stall under --fault stall-once.
    #[arg(long, default_value_t = 100)]
    stall_after_pings: u64,
    /// Open WebSocket connections at most; more get HTTP 503 at the handshake. 0 lifts the cap.
    #[arg(long, default_value_t = reference_server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Close (1008) a client that sends nothing for this long; 0 never does. The default is
    /// longer than the spec's 30 s Ping interval plus its 10 s Pong timeout.
    #[arg(long, default_value_t = reference_server::DEFAULT_IDLE_TIMEOUT.as_millis() as u64)]
    idle_timeout_ms: u64,
    /// How long the opening handshake (request head included) may take; slower is dropped.
    #[arg(long, default_value_t = 10_000)]
    handshake_timeout_ms: u64,
    /// How long one write to a client may block before the client's socket is closed.
    #[arg(long, default_value_t = 30_000)]
    write_timeout_ms: u64,
    /// Largest upgrade request head (request line and headers); larger gets HTTP 431.
    #[arg(long, default_value_t = reference_server::DEFAULT_MAX_REQUEST_HEAD_BYTES)]
    max_request_head_bytes: usize,
    /// Echo every text and binary message instead of speaking the protocol: the same listener,
    /// limits and frame handling, for Autobahn|Testsuite's cases (ci/autobahn.sh). No welcome,
    /// no broadcasts, and the rate limit is lifted.
    #[arg(long)]
    echo: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "reference_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::new(args.profile);
    config.auth = args.auth;
    config.jwt_secret = args.jwt_secret;
    // `--auth required` with no secret stays an error (nobody could ever get in); optional auth,
    // the default, gets a secret of its own.
    if config.auth == AuthMode::Optional && config.jwt_secret.is_none() {
        // A server that accepted any token would fail every forged-token check; one whose
        // secret nobody knows refuses them all, and the secret is here for valid ones.
        let secret = reference_server::random_secret();
        eprintln!(
            "auth {}: no --jwt-secret given, so tokens are checked against a random secret made at start: {secret}\n\
             (pass it to wsprobe as --jwt-secret to run the valid-token cases; --auth off ignores tokens)",
            config.auth.name()
        );
        config.jwt_secret = Some(secret);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(reference_server::TlsIdentity::from_pem_files(cert, key)?);
    }
    config.auth_timeout = Duration::from_millis(args.auth_timeout_ms);
    config.rate_limit = (args.rate_limit > 0).then_some(args.rate_limit);
    config.rate_window = Duration::from_millis(args.rate_window_ms);
    config.tick = Duration::from_millis(args.tick_ms);
    config.seed = args.seed;
    config.symbols = args.symbols;
    config.max_message_bytes = args.max_message_bytes;
    config.outgoing_queue = args.outgoing_queue;
    config.signal_every_ticks = args.signal_every_ticks;
    config.faults = args.faults;
    config.pong_delay = Duration::from_millis(args.pong_delay_ms);
    config.stall = Duration::from_millis(args.stall_ms);
    config.stall_after_pings = args.stall_after_pings;
    config.max_connections = (args.max_connections > 0).then_some(args.max_connections);
    config.idle_timeout = (args.idle_timeout_ms > 0).then(|| Duration::from_millis(args.idle_timeout_ms));
    config.max_request_head_bytes = args.max_request_head_bytes;
    config.handshake_timeout = Duration::from_millis(args.handshake_timeout_ms);
    config.write_timeout = Duration::from_millis(args.write_timeout_ms);
    config.echo = args.echo;
    if args.echo {
        config.rate_limit = None;
    }
    config.check()?;
    if !config.faults.is_empty() {
        tracing::warn!(faults = ?config.faults, "deliberate protocol faults are on: this server does not conform");
    }
    let bind = args.bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], args.profile.default_port())));

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}; is another server using it? try --bind 127.0.0.1:0"))?;
        let handle = reference_server::serve(listener, config)?;
        println!("listening on {}", handle.url());
        use std::io::Write;
        std::io::stdout().flush()?;
        wait_for_signal().await?;
        handle.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
