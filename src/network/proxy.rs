//! HTTP CONNECT proxies: `--proxy URL`, or the environment's `HTTPS_PROXY` (wss://),
//! `HTTP_PROXY` (ws://) and `ALL_PROXY`, with `NO_PROXY` honoured, as curl reads them (the
//! lower-case names too). The tunnel carries ws:// and wss:// alike: TLS, when used, is
//! end to end, through the tunnel.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy to tunnel through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `user:password` from the URL, sent as Basic `Proxy-Authorization`.
    credentials: Option<String>,
    /// Where the proxy came from, for messages: `--proxy` or the variable's name.
    pub source: String,
}

impl Proxy {
    /// `http://[user:password@]host[:port]`; the port defaults to 80, as for any http URL.
    pub fn parse(text: &str, source: &str) -> Result<Proxy, String> {
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{source} {text:?}: only http:// proxies (HTTP CONNECT) are supported, not {scheme}://"
                ))
            }
            // curl takes a bare host:port as http://.
            None => text,
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(percent_decode(credentials)), host_port),
            None => (None, authority),
        };
        let bad_port = |port: &str| format!("{source} {text:?}: port {port:?} is not a number");
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| format!("{source} {text:?}: missing ']'"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, port.parse::<u16>().map_err(|_| bad_port(port))?),
                None => (host, 80),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad_port(port))?),
                None => (host_port, 80),
            }
        };
        if host.is_empty() {
            return Err(format!("{source} {text:?} has no host; write it like http://proxy.example:3128"));
        }
        Ok(Proxy { host: host.to_string(), port, credentials, source: source.to_string() })
    }

    /// `http://host:port` without credentials, for messages.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    /// Opens the tunnel on `stream` (already connected to the proxy) to `host:port`.
    pub async fn tunnel(&self, stream: &mut TcpStream, host: &str, port: u16, user_agent: &str) -> Result<(), String> {
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {user_agent}\r\n");
        if let Some(credentials) = &self.credentials {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
        }
        request.push_str("\r\n");
        let name = format!("proxy {} ({})", self.display(), self.source);
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("{name}: cannot send CONNECT: {e}"))?;
        // The response head, byte by byte: nothing after it may be consumed, since the TLS or
        // WebSocket handshake that follows reads from the same stream.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_RESPONSE_HEAD {
                return Err(format!("{name}: its answer to CONNECT has no end within {MAX_RESPONSE_HEAD} bytes"));
            }
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(e) => return Err(format!("{name}: the connection ended before it answered CONNECT ({e})")),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let status_line = head.lines().next().unwrap_or_default();
        let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(200..=299) => Ok(()),
            Some(status) => {
                let why = match status {
                    407 => " (proxy authentication required: put user:password in the proxy URL)",
                    403 => " (the proxy forbids this destination)",
                    502..=504 => " (the proxy could not reach the target)",
                    _ => "",
                };
                Err(format!("{name} refused CONNECT {target} with HTTP {status}{why}"))
            }
            None => Err(format!("{name}: its answer to CONNECT is not HTTP: {:?}", crate::session::clip(status_line))),
        }
    }
}

const MAX_RESPONSE_HEAD: usize = 16 * 1024;

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which proxy, if any, a connection to `host` uses.
#[derive(Debug, Clone, Default)]
pub struct ProxyPolicy {
    /// `--proxy`: used for every target, NO_PROXY aside.
    explicit: Option<Proxy>,
    /// From the environment, by scheme.
    for_ws: Option<Proxy>,
    for_wss: Option<Proxy>,
    no_proxy: Vec<String>,
}

impl ProxyPolicy {
    /// `--proxy` if given, else the environment (read through `var`, so tests need not touch
    /// the process's own).
    pub fn from_sources(flag: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Result<ProxyPolicy, String> {
        let read = |names: &[&str]| -> Result<Option<Proxy>, String> {
            for name in names {
                if let Some(value) = var(name).filter(|v| !v.trim().is_empty()) {
                    return Proxy::parse(value.trim(), name).map(Some);
                }
            }
            Ok(None)
        };
        let explicit = flag.map(|text| Proxy::parse(text, "--proxy")).transpose()?;
        let (for_ws, for_wss) = if explicit.is_some() {
            (None, None)
        } else {
            let all = read(&["ALL_PROXY", "all_proxy"])?;
            // curl ignores upper-case HTTP_PROXY (a CGI program could be handed it by a request
            // header), so only the lower-case name is read for it.
            let ws = read(&["http_proxy"])?.or_else(|| all.clone());
            let wss = read(&["HTTPS_PROXY", "https_proxy"])?.or(all);
            (ws, wss)
        };
        let no_proxy = ["NO_PROXY", "no_proxy"]
            .iter()
            .find_map(|name| var(name))
            .map(|list| list.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Ok(ProxyPolicy { explicit, for_ws, for_wss, no_proxy })
    }

    pub fn none() -> ProxyPolicy {
        ProxyPolicy::default()
    }

    /// The proxy for a connection to `host` (without brackets), or `None` to connect directly.
    pub fn for_target(&self, secure: bool, host: &str) -> Option<&Proxy> {
        let proxy = self.explicit.as_ref().or(if secure { self.for_wss.as_ref() } else { self.for_ws.as_ref() })?;
        (!self.bypassed(host)).then_some(proxy)
    }

    /// NO_PROXY as curl reads it: `*` matches everything; a name matches itself and its
    /// subdomains (a leading dot is optional); an IP address or CIDR block matches addresses.
    fn bypassed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let address = host.parse::<std::net::IpAddr>().ok();
        self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            if let (Some(address), Some((network, bits))) = (address, entry.split_once('/')) {
                return cidr_contains(network, bits, address);
            }
            let entry = entry.trim_start_matches('.').trim_start_matches('[');
            let entry = entry.split(']').next().unwrap_or(entry);
            host == entry || host.ends_with(&format!(".{entry}"))
        })
    }
}

fn cidr_contains(network: &str, bits: &str, address: std::net::IpAddr) -> bool {
    let (Ok(network), Ok(bits)) = (network.parse::<std::net::IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (network, address) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn proxy_urls_parse_with_and_without_credentials_and_ports() {
        let proxy = Proxy::parse("http://user:p%40ss@proxy.example:3128/", "--proxy").unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.example", 3128));
        assert_eq!(proxy.credentials.as_deref(), Some("user:p@ss"));
        assert_eq!(proxy.display(), "http://proxy.example:3128");
        let bare = Proxy::parse("10.1.2.3:8080", "HTTPS_PROXY").unwrap();
        assert_eq!((bare.host.as_str(), bare.port), ("10.1.2.3", 8080));
        assert_eq!(Proxy::parse("http://proxy", "x").unwrap().port, 80);
        let v6 = Proxy::parse("http://[::1]:3128", "x").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 3128));
        assert!(Proxy::parse("socks5://proxy:1080", "ALL_PROXY").unwrap_err().contains("only http://"));
        assert!(Proxy::parse("http://proxy:http", "x").unwrap_err().contains("not a number"));
    }

    #[test]
    fn the_environment_is_read_by_scheme_and_no_proxy_is_honoured() {
        let vars = [
            ("HTTPS_PROXY", "http://secure:1"),
            ("http_proxy", "http://plain:2"),
            ("NO_PROXY", "internal.example, .corp,10.0.0.0/8, ::1"),
        ];
        let policy = ProxyPolicy::from_sources(None, env(&vars)).unwrap();
        assert_eq!(policy.for_target(true, "api.example").unwrap().host, "secure");
        assert_eq!(policy.for_target(false, "api.example").unwrap().host, "plain");
        for bypassed in ["internal.example", "a.internal.example", "x.corp", "10.2.3.4", "::1"] {
            assert!(policy.for_target(true, bypassed).is_none(), "{bypassed}");
        }
        assert!(policy.for_target(true, "notinternal.example").is_some());
        assert!(policy.for_target(true, "11.0.0.1").is_some());
        // Upper-case HTTP_PROXY is not read (curl's rule); ALL_PROXY is the fallback.
        let policy = ProxyPolicy::from_sources(None, env(&[("HTTP_PROXY", "http://x:1")])).unwrap();
        assert!(policy.for_target(false, "a").is_none());
        let policy = ProxyPolicy::from_sources(None, env(&[("ALL_PROXY", "http://all:3")])).unwrap();
        assert_eq!(policy.for_target(false, "a").unwrap().host, "all");
        assert_eq!(policy.for_target(true, "a").unwrap().host, "all");
        // --proxy wins over the environment and applies to both schemes.
        let policy = ProxyPolicy::from_sources(Some("http://flag:4"), env(&vars)).unwrap();
        assert_eq!(policy.for_target(false, "a").unwrap().source, "--proxy");
        assert!(ProxyPolicy::from_sources(None, env(&[("NO_PROXY", "*"), ("ALL_PROXY", "http://a:1")]))
            .unwrap()
            .for_target(true, "anything")
            .is_none());
    }
}
