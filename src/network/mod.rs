//! How wsprobe reaches a server in the field: TLS (`wss://`), HTTP CONNECT proxies, the
//! handshake headers gateways want (custom headers, Origin, subprotocols, User-Agent) and the
//! local addresses connections leave from. One [`Network`] is built from the command line and
//! shared by every connection of a run, so `run`, `load` and `snapshot` reach a server the same way.

pub mod proxy;
pub mod source;
pub mod stream;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};

pub use proxy::{Proxy, ProxyPolicy};
pub use source::SourceAddresses;
pub use stream::NetStream;
pub use tls::TlsSettings;

/// Whether a WebSocket URI is wss://, its host (IPv6 without brackets) and its port (the
/// scheme's default when none is written).
pub fn endpoint(uri: &tokio_tungstenite::tungstenite::http::Uri) -> (bool, String, u16) {
    let secure = uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("wss"));
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    (secure, host, uri.port_u16().unwrap_or(if secure { 443 } else { 80 }))
}

/// `wsprobe/VERSION`, sent unless `--header 'User-Agent: …'` says otherwise, so operators can
/// tell test traffic apart in their logs.
pub fn user_agent() -> String {
    format!("wsprobe/{}", env!("CARGO_PKG_VERSION"))
}

/// Everything about reaching a server that is the same for every connection of a run.
#[derive(Debug)]
pub struct Network {
    pub tls: TlsSettings,
    /// Sent on every upgrade request, after the library's own WebSocket headers.
    pub headers: Vec<(String, String)>,
    /// Offered on every upgrade unless a scenario's connect step names its own.
    pub subprotocols: Vec<String>,
    pub proxy: ProxyPolicy,
    pub sources: SourceAddresses,
}

impl Default for Network {
    fn default() -> Network {
        Network {
            tls: TlsSettings::default(),
            headers: vec![("User-Agent".into(), user_agent())],
            subprotocols: Vec::new(),
            proxy: ProxyPolicy::none(),
            sources: SourceAddresses::default(),
        }
    }
}

/// Why the transport under the WebSocket could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// TCP to the target (or the proxy) failed.
    Unreachable(String),
    /// The proxy refused or broke the tunnel.
    Proxy(String),
    /// The TLS handshake failed; the text starts with the cause.
    Tls(String),
}

/// An open transport, and what opening it cost.
pub struct Opened {
    pub stream: NetStream,
    /// The TLS handshake alone (after TCP and any proxy tunnel), for wss://.
    pub tls_handshake: Option<Duration>,
}

impl Network {
    /// The network of a run with no connection flags: direct, plain or system-trusted TLS.
    pub fn shared_default() -> Arc<Network> {
        static DEFAULT: OnceLock<Arc<Network>> = OnceLock::new();
        DEFAULT.get_or_init(|| Arc::new(Network::default())).clone()
    }

    /// Whether reports must say that certificates were not checked.
    pub fn tls_unverified(&self) -> bool {
        self.tls.insecure
    }

    /// Opens TCP (from the next source address, through the proxy if one applies), then TLS
    /// when `secure`. The caller bounds the whole in time.
    pub async fn open(&self, host: &str, port: u16, secure: bool) -> Result<Opened, OpenError> {
        let source = self.sources.next();
        let proxy = self.proxy.for_target(secure, host);
        let mut tcp = match proxy {
            Some(proxy) => tcp_connect(&proxy.host, proxy.port, source).await.map_err(|e| {
                OpenError::Unreachable(format!("cannot connect to proxy {} ({}): {e}", proxy.display(), proxy.source))
            })?,
            None => tcp_connect(host, port, source).await.map_err(|e| OpenError::Unreachable(e.to_string()))?,
        };
        let _ = tcp.set_nodelay(true);
        if let Some(proxy) = proxy {
            let agent = self.header("User-Agent").unwrap_or_default();
            proxy.tunnel(&mut tcp, host, port, &agent).await.map_err(OpenError::Proxy)?;
        }
        if !secure {
            return Ok(Opened { stream: NetStream::Plain(tcp), tls_handshake: None });
        }
        let name = tls::server_name(host).map_err(OpenError::Tls)?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.client_config());
        let started = Instant::now();
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|error| OpenError::Tls(tls::describe_failure(&error, host, &self.tls)))?;
        Ok(Opened { stream: NetStream::Tls(Box::new(tls)), tls_handshake: Some(started.elapsed()) })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

async fn tcp_connect(host: &str, port: u16, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last_error = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        if address.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(local, 0)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot use source address {local} (--source-ip): {e}"))
        })?;
        match socket.connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        let family = if local.is_ipv4() { "IPv4" } else { "IPv6" };
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no {family} address to reach from source address {local} (--source-ip)"),
        )
    }))
}

/// Headers the WebSocket library writes itself: setting them by hand would break the upgrade.
const RESERVED_HEADERS: [&str; 5] =
    ["connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"];

/// `Name: value` from `--header` or a line of `WSPROBE_HEADERS`.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!("{text:?} has no ':'; write it like 'X-Api-Key: abc123'"));
    };
    let (name, value) = (name.trim(), value.trim());
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))?;
    HeaderValue::from_str(value).map_err(|_| format!("the value of {name} has characters a header cannot carry"))?;
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!("{name} is part of the WebSocket handshake and is set by wsprobe itself"));
    }
    if lower == "sec-websocket-protocol" {
        return Err("use --subprotocol NAME (repeatable) to offer subprotocols".into());
    }
    Ok((name.to_string(), value.to_string()))
}

/// `--origin`: a serialized origin, `scheme://host[:port]`, as browsers send it.
pub fn parse_origin(text: &str) -> Result<String, String> {
    match text.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(text.trim_end_matches('/').to_string())
        }
        _ if text == "null" => Ok(text.to_string()),
        _ => Err(format!("{text:?} is not an origin; write it like https://app.example.com")),
    }
}

/// A subprotocol name is an HTTP token (RFC 6455 section 4.1).
pub fn parse_subprotocol(text: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if text.is_empty() || !text.chars().all(token) {
        return Err(format!("{text:?} is not a subprotocol name (letters, digits and !#$%&'*+-.^_`|~)"));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_and_handshake_headers_refused() {
        assert_eq!(parse_header("X-Api-Key:  abc "), Ok(("X-Api-Key".into(), "abc".into())));
        assert_eq!(parse_header("Cookie: a=b; c=d").unwrap().1, "a=b; c=d");
        assert!(parse_header("no colon").unwrap_err().contains("no ':'"));
        assert!(parse_header("Bad Name: x").unwrap_err().contains("not a valid header name"));
        assert!(parse_header("Sec-WebSocket-Key: x").unwrap_err().contains("set by wsprobe"));
        assert!(parse_header("Sec-WebSocket-Protocol: x").unwrap_err().contains("--subprotocol"));
        assert!(parse_header("X: a\u{7f}").is_err());
    }

    #[test]
    fn origins_and_subprotocols_are_checked() {
        assert_eq!(parse_origin("https://app.example.com/").as_deref(), Ok("https://app.example.com"));
        assert!(parse_origin("app.example.com").is_err());
        assert_eq!(parse_subprotocol("botcore.v1").as_deref(), Ok("botcore.v1"));
        assert!(parse_subprotocol("a b").is_err());
        assert!(parse_subprotocol("").is_err());
    }

    #[test]
    fn the_default_network_names_itself() {
        let network = Network::default();
        assert_eq!(network.header("user-agent"), Some(format!("wsprobe/{}", env!("CARGO_PKG_VERSION"))));
        assert!(!network.tls_unverified());
    }
}
