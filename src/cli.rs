//! The command line, kept close to the flags; commands turn it into real objects.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::profile::{Direction, Profile};

#[derive(Debug, Parser)]
#[command(
    name = "wsprobe",
    version,
    about = "Conformance harness and load generator for the Bot Core WebSocket protocol",
    after_help = "Examples:\n  wsprobe run                 # the whole suite against the bundled reference server\n  wsprobe run --url ws://127.0.0.1:8080/ws\n  wsprobe load --duration 30s --assert 'p99<5ms'\n\nExit codes: 0 passed, 1 a check failed, 2 bad flags or input, 3 the target could not be reached."
)]
pub struct Cli {
    /// Load schemas from this folder instead of the copy built into wsprobe (same layout as schemas/).
    #[arg(long, global = true, value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    /// Colour in human reports: auto (a terminal, unless NO_COLOR is set or CLICOLOR_FORCE
    /// forces it), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour output going to a stream that is (or is not) a terminal. An explicit
    /// flag wins; under `auto`, NO_COLOR turns colour off and CLICOLOR_FORCE turns it on.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if anstyle_query::no_color() => false,
            ColorChoice::Auto => anstyle_query::clicolor_force() || terminal,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check captured messages (JSON Lines, a JSON document or an array) against the schemas.
    #[command(
        after_help = "Examples:\n  wsprobe validate capture.jsonl\n  tshark ... | wsprobe validate --profile ai --format json -"
    )]
    Validate(ValidateArgs),
    /// Run the conformance suite (and your scenarios) against a server; the bundled one without --url.
    #[command(
        after_help = "Examples:\n  wsprobe run                                   # the bundled reference server\n  wsprobe run --url ws://127.0.0.1:8080/ws --format junit --output wsprobe.xml\n  WSPROBE_JWT_SECRET=... wsprobe run --url ws://127.0.0.1:8000/ws --profile ai --filter 'auth.*'"
    )]
    Run(RunArgs),
    /// Generate load: many connections, HdrHistogram latencies, live progress; the bundled server without --url.
    #[command(
        after_help = "Examples:\n  wsprobe load --connections 100 --duration 30s --assert 'p99<5ms'\n  wsprobe load --url ws://127.0.0.1:8080/ws --connections 50 --rate 40 --json - > load.json"
    )]
    Load(LoadArgs),
    /// Find the highest load at which a server still conforms (a Ping rate, or the connections it pushes to): ramp, then bisect; each step judged on the protocol's rules and your SLOs.
    #[command(
        after_help = "Examples:\n  wsprobe capacity --slo 'p99<5ms'                      # the bundled server\n  wsprobe capacity --url ws://127.0.0.1:8080/ws --start-rate 500 --max-rate 50000 --slo 'p99<50ms' --expect 10000 --json capacity.json\n  wsprobe capacity --mode push --start-connections 250 --max-connections 8000 --slo 'p99<250ms'\n\nExit codes: 0 a capacity was found (and meets --expect), 1 the start already broke or the capacity is below --expect, 2 bad flags, 3 unreachable."
    )]
    Capacity(CapacityArgs),
    /// Merge the --json summaries and --hdr-log interval logs of load shards into one result.
    #[command(
        after_help = "Example: two shards started together, then one result:\n  wsprobe load --url ws://10.0.0.5:8080/ws --connections 2000 --shard 1/2 --start-at 2026-11-26T18:00:00Z --json s1.json --hdr-log s1.hlog\n  wsprobe load --url ws://10.0.0.5:8080/ws --connections 2000 --shard 2/2 --start-at 2026-11-26T18:00:00Z --json s2.json --hdr-log s2.hlog\n  wsprobe merge s1.json s2.json s1.hlog s2.hlog --json merged.json --hdr-log merged.hlog --assert 'p99<5ms'"
    )]
    Merge(MergeArgs),
    /// Render saved results as one self-contained HTML page: a run's JSON report, or load summaries and interval logs.
    #[command(
        after_help = "Examples:\n  wsprobe report wsprobe.json --html run.html                # from wsprobe run --format json\n  wsprobe report load.json load.hlog --html load.html\n  wsprobe report s1.json s2.json s1.hlog s2.hlog --html merged.html   # shards, merged"
    )]
    Report(ReportArgs),
    /// List, show and self-check the message schemas.
    #[command(after_help = "Example:\n  wsprobe schemas check && wsprobe schemas list")]
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
    /// Check clients: serve the protocol, provoke reconnects and timeouts, judge the client rules.
    #[command(after_help = SERVE_EXAMPLE)]
    Serve(ServeArgs),
    /// Attack a server with inputs derived from the client schemas; shrink and bundle what breaks it.
    #[command(
        after_help = "Examples:\n  wsprobe fuzz --seed 1 --duration 60s                     # the bundled reference server\n  wsprobe fuzz --url ws://127.0.0.1:8080/ws --cases 2000 --out findings/ --format junit --output fuzz.xml\n\nExit codes: 0 no finding, 1 findings (a bundle each, in --out), 2 bad flags, 3 unreachable."
    )]
    Fuzz(FuzzArgs),
    /// Send a fuzz bundle's frames again and re-judge its invariant: exit 1 if it still breaks.
    #[command(
        after_help = "Examples:\n  wsprobe replay wsprobe-fuzz/connection.unresponsive-0c1d2e3f.json --url ws://127.0.0.1:8080/ws\n  wsprobe replay BUNDLE --scenario >> scenarios/regressions.yaml   # as a scenario case"
    )]
    Replay(ReplayArgs),
    /// Record normalized transcripts of the suite, diff a server against them, accept changes.
    #[command(
        after_help = "Example: record once, then fail CI when the server's answers change:\n  wsprobe snapshot record --url ws://127.0.0.1:8080/ws && git add snapshots/\n  wsprobe snapshot diff --url ws://127.0.0.1:8080/ws --format junit > snapshots.xml"
    )]
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    #[command(
        after_help = "Example:\n  wsprobe completions bash > ~/.local/share/bash-completion/completions/wsprobe\n  wsprobe completions zsh > \"${fpath[1]}/_wsprobe\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  wsprobe man > wsprobe.1 && man ./wsprobe.1")]
    Man,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Run the cases and write one .snap file per scenario file (replacing what is there).
    #[command(after_help = "Example:\n  wsprobe snapshot record --url ws://127.0.0.1:8080/ws --dir snapshots")]
    Record(SnapshotArgs),
    /// Run the cases and compare with the stored snapshots; changes are written beside them as
    /// .snap.new (pending). Exits 1 when anything changed, is new or is missing.
    #[command(
        after_help = "Example:\n  wsprobe snapshot diff --url ws://127.0.0.1:8080/ws --dir snapshots --format junit"
    )]
    Diff(SnapshotArgs),
    /// Promote every pending .snap.new in the folder.
    #[command(after_help = "Example:\n  wsprobe snapshot accept --dir snapshots")]
    Accept {
        #[arg(long, default_value = "snapshots", value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Where the .snap files live.
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub dir: PathBuf,
    /// The bundled server's simulation seed (without --url).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Redaction rules (YAML: `rules: [{path: /data/**/price, action: round:2}]`), tried before
    /// the defaults. Actions: time, id, type, keep, round:N.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// human, json (one object per scenario file) or junit (one testcase per scenario file).
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Which endpoint's messages these are.
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    #[command(flatten)]
    pub document: DocumentArgs,
    /// Messages sent by the server (the default) or by a client (Ping, Authenticate).
    #[arg(long, value_enum, default_value_t = Direction::Server)]
    pub direction: Direction,
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
    /// The largest message read; a larger one is reported as invalid and skipped, so memory
    /// stays bounded whatever the input.
    #[arg(long, default_value_t = crate::capture::DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// Files to check; `-` reads standard input.
    #[arg(required = true, value_name = "FILE|-")]
    pub files: Vec<String>,
}

/// A target described by an AsyncAPI document instead of a shipped profile. Shared by every
/// command that reads a profile.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "AsyncAPI")]
pub struct DocumentArgs {
    /// Describe the target with this AsyncAPI 3.x document (YAML or JSON) instead of --profile:
    /// its messages, request/reply operations and correlation ids drive the command.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub asyncapi: Option<PathBuf>,
    /// The document's channel to use, when it has several.
    #[arg(long, value_name = "ID", requires = "asyncapi")]
    pub channel: Option<String>,
    /// The member that names each message, as a JSON Pointer (/event). Inferred when left out:
    /// the member whose `const` tells every message apart.
    #[arg(long, value_name = "POINTER", requires = "asyncapi")]
    pub discriminator: Option<String>,
    /// Connect to the document's server ID (its host and pathname, and the channel's address)
    /// instead of --url.
    #[arg(long = "server", value_name = "ID", requires = "asyncapi")]
    pub server: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    Human,
    Json,
    Junit,
}

/// The target and the cases: shared by `run` and `snapshot`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The endpoint to test, e.g. ws://127.0.0.1:8080/ws. Without it, wsprobe starts its bundled
    /// reference server on 127.0.0.1 (auth optional, with a secret it knows) and tests that.
    #[arg(long, value_parser = crate::target::parse_ws_url)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    #[command(flatten)]
    pub document: DocumentArgs,
    /// Extra scenario files or folders of them, run after the built-in suite.
    #[arg(long = "scenario", value_name = "PATH")]
    pub scenarios: Vec<PathBuf>,
    /// Run only cases whose id matches one of these globs (comma-separated), e.g. 'auth.*,heartbeat.*'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Leave out the built-in suite; run only --scenario files.
    #[arg(long)]
    pub no_builtin: bool,
    /// A valid JWT for the target: the auth cases on valid tokens run.
    #[arg(long, env = "WSPROBE_TOKEN", hide_env_values = true, conflicts_with = "jwt_secret", value_parser = secret)]
    pub token: Option<String>,
    /// The target's HS256 secret: wsprobe mints valid, expired and wrongly signed tokens, and every auth case runs.
    #[arg(long, env = "WSPROBE_JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_secret: Option<String>,
    /// Keep trying to reach the target for this long before giving up (exit 3), for a server
    /// started just before wsprobe, e.g. 30s.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub wait_for_server: Option<std::time::Duration>,
    /// Multiply every timeout by this factor, for slow links.
    #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
    pub timeout_scale: f64,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// How to reach the server: TLS, proxy and handshake headers. Shared by every command that
/// connects, so a deployed server is reached the same way by `run`, `load` and `snapshot`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Trust this CA certificate (PEM) for wss://, besides the system's roots. Repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Accept any TLS certificate (wss://). Warns, and reports say the run was unverified.
    #[arg(long)]
    pub insecure: bool,
    /// An extra upgrade header, e.g. 'X-Api-Key: abc'. Repeatable; WSPROBE_HEADERS holds one per line.
    #[arg(long = "header", value_name = "'NAME: VALUE'", env = "WSPROBE_HEADERS", hide_env_values = true,
          value_delimiter = '\n', value_parser = crate::network::parse_header)]
    pub headers: Vec<(String, String)>,
    /// The Origin header, as a browser on that page would send it, e.g. https://app.example.com.
    #[arg(long, value_name = "URL", value_parser = crate::network::parse_origin)]
    pub origin: Option<String>,
    /// Offer this subprotocol (Sec-WebSocket-Protocol). Repeatable; the server must choose one.
    #[arg(long = "subprotocol", value_name = "NAME", value_parser = crate::network::parse_subprotocol)]
    pub subprotocols: Vec<String>,
    /// Tunnel through this HTTP CONNECT proxy (http://[user:pass@]host:port). Without it,
    /// HTTPS_PROXY (wss://), http_proxy (ws://) and ALL_PROXY are used, minus NO_PROXY.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Treat warnings (failed `should` rules) as failures.
    #[arg(long)]
    pub strict: bool,
    /// Cases run at once, each on its own connections.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
    /// Write the report here instead of standard output (`-` is standard output).
    #[arg(long, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Also write a self-contained HTML report: the verdict table, each failure's transcript folded under it.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Hide the live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// List the cases that would run (after --filter and --profile), without connecting.
    #[arg(long)]
    pub list: bool,
    /// The largest frame or message accepted from the server; a larger one ends the connection
    /// (and fails the step), so a hostile server cannot make wsprobe grow.
    #[arg(long, default_value_t = crate::session::DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,
}

const SERVE_EXAMPLE: &str =
    "Faults: drop-every=T, close-every=T[:CODE], refuse-for=T, no-pong, stall-after=T, down-for=T@AT.
Clients are told apart by ?client=NAME, the X-Wsprobe-Client header, or their IP address.

Examples:
  # A bot, for 5 minutes, while its connection drops every 45 s:
  wsprobe serve --fault drop-every=45s --duration 5m --exec './my-bot --url \"$WSPROBE_URL?client=bot\"'
  # A client whose timers scale too, ten times faster (30 s heartbeats become 3 s):
  wsprobe serve --bind 127.0.0.1:8080 --fault drop-every=5s --time-scale 0.1 --duration 20s";

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// The server to attack, e.g. ws://127.0.0.1:8080/ws. Without it, the bundled reference server.
    #[arg(long, value_parser = crate::target::parse_ws_url)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    #[command(flatten)]
    pub document: DocumentArgs,
    /// The same seed (and --cases) gives the same inputs, so the same findings in the same
    /// order [default: a random seed, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run this many cases.
    #[arg(long, conflicts_with = "duration")]
    pub cases: Option<u64>,
    /// Run for this long [default: 30s unless --cases].
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<std::time::Duration>,
    /// Where finding bundles are written.
    #[arg(long, default_value = "wsprobe-fuzz", value_name = "DIR")]
    pub out: PathBuf,
    /// At most this many cases a second (each opens a connection), for a server behind
    /// per-address limits [default: as fast as the server answers].
    #[arg(long, value_name = "CASES_PER_S")]
    pub rate: Option<f64>,
    /// How long the Ping after each input may wait for its Pong (far below the spec's 10 s).
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub probe_timeout: std::time::Duration,
    /// Shrink attempts per finding.
    #[arg(long, default_value_t = 200)]
    pub shrink_attempts: usize,
    /// The oversize input's bytes; above the server's message limit (the reference server's is 65536).
    #[arg(long, default_value_t = 70_000)]
    pub oversize_bytes: usize,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
    /// Write the report here instead of standard output (`-` is standard output).
    #[arg(long, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Keep trying to reach the target for this long before giving up (exit 3).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub wait_for_server: Option<std::time::Duration>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A bundle written by `wsprobe fuzz`.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// The server to replay against. Without it, the bundled reference server of the bundle's profile.
    #[arg(long, value_parser = crate::target::parse_ws_url)]
    pub url: Option<String>,
    /// How long the Ping after the input may wait for its Pong.
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub probe_timeout: std::time::Duration,
    /// Replay under this shipped profile instead of the bundle's.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    #[command(flatten)]
    pub document: DocumentArgs,
    /// Print the bundle as a scenario case (YAML) instead of replaying it: a regression case for scenarios/.
    #[arg(long)]
    pub scenario: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which endpoint to impersonate.
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    /// Address to listen on; defaults to 127.0.0.1:8080 (core) or 127.0.0.1:8000 (ai). Port 0 picks a free port.
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    /// A client fault for the whole run (repeatable), e.g. drop-every=5s, close-every=10s:4000,
    /// refuse-for=1m, no-pong, stall-after=45s, down-for=30s@2m.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// A timeline of faults (YAML: `faults: [{fault: SPEC, at: T, for: T}]`, schema schemas/faults.schema.json).
    #[arg(long = "faults", value_name = "FILE")]
    pub fault_plan: Option<PathBuf>,
    /// Multiply every spec timing, rules and faults alike (not --duration), e.g. 0.1 checks
    /// 30 s heartbeats as 3 s ones.
    #[arg(long, default_value_t = 1.0, value_parser = time_scale)]
    pub time_scale: f64,
    /// Stop after this long (wall clock, not scaled); without it, serve until SIGINT or SIGTERM.
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<std::time::Duration>,
    /// Run the client under test with this shell command, with WSPROBE_URL set to the served
    /// URL (`ws://IP:PORT/ws`, or `wss://` with --tls-cert); it is stopped when serving ends. Needs --duration.
    #[arg(long, value_name = "COMMAND", requires = "duration")]
    pub exec: Option<String>,
    /// Added to the late side of every timing tolerance, for scheduling and network delay.
    #[arg(long, default_value = "100ms", value_parser = duration_arg)]
    pub slack: std::time::Duration,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
    /// Write the report here instead of standard output (`-` is standard output).
    #[arg(long, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Serve wss:// with this certificate chain (PEM, leaf first), for clients that only speak TLS. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

fn time_scale(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number; write it like 0.1"))?;
    if !(0.001..=10.0).contains(&value) {
        return Err(format!("{value} is out of range: use 0.001 to 10 (1 is the spec's own timings)"));
    }
    Ok(value)
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The endpoint to load, e.g. ws://127.0.0.1:8080/ws. Without it, wsprobe starts its bundled
    /// reference server on its own threads, with the rate limit lifted.
    #[arg(long, value_parser = crate::target::parse_ws_url)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    #[command(flatten)]
    pub document: DocumentArgs,
    #[arg(long, default_value_t = 10)]
    pub connections: usize,
    /// How long to run (e.g. 10s, 1m; at most 1h).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub duration: std::time::Duration,
    /// Connections open evenly over this period.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub ramp_up: std::time::Duration,
    #[arg(long, value_enum, default_value_t = crate::load::plan::Mode::Ping)]
    pub mode: crate::load::plan::Mode,
    /// Ping mode: the request/reply operation to time, by its id in the profile's AsyncAPI
    /// document. Replies are matched by correlation id where the document declares one, else in
    /// order. Default: the profile's only one (the heartbeat Ping → Pong for core and ai).
    #[arg(long, value_name = "ID")]
    pub operation: Option<String>,
    /// Open loop: Pings per second in total, paced on a schedule; without it, closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Pings in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Schema-check received messages: all, off, or sample:N (one in N).
    #[arg(long, default_value = "all")]
    pub validate: crate::load::plan::Validation,
    /// Write the summary as JSON here (`-`: standard output, and the human summary goes to
    /// standard error).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (.hlog, one interval per second) here (`-`: standard
    /// output, and the human summary goes to standard error).
    #[arg(long, value_name = "FILE|-")]
    pub hdr_log: Option<PathBuf>,
    /// Fail (exit 1) unless this holds, e.g. 'p99<5ms', 'errors==0', 'throughput>50000'. Repeatable.
    #[arg(long = "assert", value_name = "EXPR")]
    pub assertions: Vec<crate::load::assertion::Assertion>,
    /// Hide the live progress line (it is hidden anyway when stdout is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// A reply later than this is a timeout, and the connection is replaced.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub reply_timeout: std::time::Duration,
    /// Push mode: the server's clock minus this machine's, in ms; `auto` estimates it from
    /// Ping/Pong timestamps (and fails the run, saying why, when the Pong has none); `0` suits a
    /// server on this machine.
    #[arg(long, default_value = "auto", value_name = "auto|MS")]
    pub clock_offset: crate::load::plan::ClockOffset,
    /// The run fails when more than this share of connection attempts fail or are lost before
    /// the end, e.g. 1% (the default) or 0%.
    #[arg(long, default_value = "1%", value_parser = percentage, value_name = "PERCENT")]
    pub max_connect_failures: f64,
    /// The largest frame or message accepted from the server; a larger one ends the
    /// connection, counted as `dropped_oversize_message`.
    #[arg(long, default_value_t = crate::session::DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// Generator threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Keep trying to reach the target for this long before giving up (exit 3), for a server
    /// started just before wsprobe, e.g. 30s.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub wait_for_server: Option<std::time::Duration>,
    /// Threads for the bundled server.
    #[arg(long, default_value_t = 1)]
    pub server_threads: usize,
    /// Write a self-contained HTML report: percentile spectrum, throughput and p99 over time, errors.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Run shard I of N (1-based): this process's share of --connections and --rate, against
    /// one server (--url). Merge the shards' --json and --hdr-log files with `wsprobe merge`.
    #[arg(long, value_name = "I/N", requires = "url")]
    pub shard: Option<crate::load::shard::Shard>,
    /// Start at this wall-clock time (RFC 3339, at most 1 h ahead), so that shards begin together.
    #[arg(long, value_name = "RFC3339", value_parser = crate::load::shard::parse_rfc3339)]
    pub start_at: Option<std::time::SystemTime>,
    /// The bundled server's simulation tick (more push traffic when shorter).
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub server_tick: std::time::Duration,
    /// Spread connections over these local addresses, in turn: ADDR[,ADDR…] or a CIDR block
    /// (127.0.0.2/31), to get past per-IP limits and the ~28,000 ports of one address.
    #[arg(long, value_name = "ADDRS", value_parser = crate::network::SourceAddresses::parse)]
    pub source_ip: Option<crate::network::SourceAddresses>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The endpoint to search, e.g. ws://127.0.0.1:8080/ws. Without it, the bundled reference
    /// server on its own threads, with the rate limit lifted.
    #[arg(long, value_parser = crate::target::parse_ws_url)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = Profile::Core)]
    pub profile: Profile,
    #[command(flatten)]
    pub document: DocumentArgs,
    /// Ping mode: the request/reply operation whose rate is searched (see `load --operation`).
    #[arg(long, value_name = "ID")]
    pub operation: Option<String>,
    /// ping: Pings on an open-loop schedule over fixed connections, the rate ramped step by
    /// step. push: the number of connections the server pushes to, ramped step by step.
    #[arg(long, value_enum, default_value_t = crate::load::plan::Mode::Ping)]
    pub mode: crate::load::plan::Mode,
    /// Ping mode: the connections the Pings are spread over [default: 10].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Pings in flight per connection; a step whose sends wait for a free slot is saturated.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Ping mode: the first step's rate, messages per second in total [default: 1000].
    #[arg(long)]
    pub start_rate: Option<f64>,
    /// Ping mode: no step goes above this rate [default: 1000000].
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// Push mode: the first step's connections [default: 100].
    #[arg(long)]
    pub start_connections: Option<usize>,
    /// Push mode: no step opens more connections than this [default: 10000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Push mode: a step breaks when a connection gets less than this share of the pushes a
    /// second each connection got at the first step.
    #[arg(long, default_value = "50%", value_parser = percentage, value_name = "PERCENT")]
    pub cadence_floor: f64,
    /// Push mode: the server's clock minus this machine's, in ms, or `auto` (estimated from
    /// Ping/Pong timestamps) [default: 0 for the bundled server, auto with --url].
    #[arg(long, value_name = "auto|MS")]
    pub clock_offset: Option<crate::load::plan::ClockOffset>,
    /// The measured part of each step (whole seconds).
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub step_duration: std::time::Duration,
    /// Run before each step's measured part and not measured (whole seconds).
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub warmup: std::time::Duration,
    /// Bisection stops when the gap between the last good and the first broken rate is at most this share.
    #[arg(long, default_value = "5%", value_parser = percentage, value_name = "PERCENT")]
    pub resolution: f64,
    /// A service level each step must keep, in the --assert grammar: 'p99<50ms', 'errors==0'. Repeatable.
    #[arg(long = "slo", value_name = "EXPR")]
    pub slos: Vec<crate::load::assertion::Assertion>,
    /// Exit 1 unless the capacity is at least this: messages per second (ping) or
    /// connections (push).
    #[arg(long, value_name = "N")]
    pub expect: Option<f64>,
    /// Schema-check received messages: all, off, or sample:N (one in N).
    #[arg(long, default_value = "all")]
    pub validate: crate::load::plan::Validation,
    /// A reply later than this breaks the step (the spec's Pong deadline).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub reply_timeout: std::time::Duration,
    /// A step breaks when more than this share of connection attempts fail or are lost.
    #[arg(long, default_value = "1%", value_parser = percentage, value_name = "PERCENT")]
    pub max_connect_failures: f64,
    /// Generator threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Threads for the bundled server.
    #[arg(long, default_value_t = 1)]
    pub server_threads: usize,
    /// Keep trying to reach the target for this long before giving up (exit 3).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub wait_for_server: Option<std::time::Duration>,
    /// Write the report as JSON here (`-`: standard output, and the human report goes to standard error).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML page: latency against throughput, the knee marked, each step's verdict.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write an HdrHistogram interval log (.hlog) of every step's main latency (corrected, or push), one tag per step (`stepN-LEVEL`).
    #[arg(long, value_name = "FILE|-")]
    pub hdr_log: Option<PathBuf>,
    /// Hide the per-step progress lines.
    #[arg(long)]
    pub no_progress: bool,
    /// Spread connections over these local addresses, in turn (as `load --source-ip`).
    #[arg(long, value_name = "ADDRS", value_parser = crate::network::SourceAddresses::parse)]
    pub source_ip: Option<crate::network::SourceAddresses>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `-` as an output path means standard output, for every output flag.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shards' --json summaries and --hdr-log interval logs, in any order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the merged summary as JSON ("-" for standard output).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<PathBuf>,
    /// Write the merged HdrHistogram interval log ("-" for standard output).
    #[arg(long, value_name = "FILE|-")]
    pub hdr_log: Option<PathBuf>,
    /// Write a self-contained HTML report of the merged result, one line per shard in its plots.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Check the merged result, as `wsprobe load --assert` does (repeatable).
    #[arg(long = "assert", value_name = "EXPR")]
    pub assertions: Vec<crate::load::assertion::Assertion>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run's JSON report, or load summaries (--json) and interval logs (--hdr-log).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

pub fn is_stdout(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// A token or secret: an empty one is what a CI job gets when the secret is not available
/// (a pull request from a fork), and running on without it would skip the auth cases silently.
fn secret(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("is empty (an unset CI secret?); pass a value, or leave the flag and its environment variable \
                    (WSPROBE_JWT_SECRET / WSPROBE_TOKEN) out to skip the cases that need it"
            .into());
    }
    Ok(text.to_string())
}

/// clap does not see an environment variable that is set but empty; a CI secret that is
/// missing looks exactly like that, so it is refused here rather than ignored.
pub fn check_secret_environment() -> Result<(), String> {
    for name in ["WSPROBE_JWT_SECRET", "WSPROBE_TOKEN"] {
        if std::env::var_os(name).is_some_and(|value| value.to_string_lossy().trim().is_empty()) {
            return Err(format!(
                "{name} is set but empty (an unset CI secret?); give it a value, or unset it to skip the cases that need it"
            ));
        }
    }
    Ok(())
}

fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::scenario::parse_duration(text)
}

/// `5%` or `5` → 0.05.
fn percentage(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
    }
}

fn positive_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 100.0 => Ok(f),
        _ => Err(format!("{text:?} is not a factor between 0 and 100 (e.g. 2 doubles every timeout)")),
    }
}

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// One line per message schema: set, type, file, requirement.
    #[command(after_help = "Example:\n  wsprobe schemas list")]
    List,
    /// Print one schema document, by file (`core/Pong.json`), set/type (`ai/Pong`) or unique type.
    #[command(after_help = "Example:\n  wsprobe schemas show core/Pong")]
    Show { name: String },
    /// Compile every schema and validate every example it carries; optionally the spec's examples too.
    #[command(after_help = "Example:\n  wsprobe schemas check --spec ../shared/spec/API-WEBSOCKET.md")]
    Check {
        /// A spec in Markdown: each ```json block is validated against the schema for its `type`.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
    /// Compare two schema folders: each change per message type, classified as breaking for
    /// clients, breaking for servers, or compatible. Exits 1 on a breaking change.
    #[command(after_help = "Example:\n  wsprobe schemas diff old-schemas/ schemas/")]
    Diff {
        /// The schemas before (same layout as schemas/).
        old: PathBuf,
        /// The schemas after.
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
        /// Exit 0 even when a change is breaking (the report still says so).
        #[arg(long)]
        allow_breaking: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_s_help_ends_with_an_example() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let shown = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            if !shown.contains("Example") || !shown.contains("wsprobe ") {
                missing.push(path.to_string());
            }
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "wsprobe", &mut missing);
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn colour_follows_the_flag_then_the_terminal() {
        assert!(ColorChoice::Always.enabled(false));
        assert!(!ColorChoice::Never.enabled(true));
    }
}
