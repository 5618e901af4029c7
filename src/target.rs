//! The `--url` a command targets, checked before anything connects. tungstenite reads an
//! out-of-range port as "no port" and falls back to the scheme's default, so
//! `ws://127.0.0.1:99999/ws` would quietly test port 80: every part is checked here instead,
//! and a bad one is a usage error that names it.

/// Checks a WebSocket URL and returns it unchanged; the error names the offending part and
/// how to write it.
pub fn parse_ws_url(text: &str) -> Result<String, String> {
    const FORM: &str = "write it like ws://127.0.0.1:8080/ws or wss://host/ws";
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("{text:?} has no scheme; {FORM}"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "ws" | "wss" => {}
        other => return Err(format!("{text:?}: scheme {other:?} is not a WebSocket scheme; {FORM}")),
    }
    if rest.contains('#') {
        return Err(format!("{text:?}: a WebSocket URL has no #fragment (RFC 6455 section 3); remove it"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(format!("{text:?}: credentials in the URL are not supported; pass a token with --token instead"));
    }
    let (host, port) = split_host_port(authority).map_err(|reason| format!("{text:?}: {reason}; {FORM}"))?;
    if host.is_empty() {
        return Err(format!("{text:?} has no host; {FORM}"));
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            Ok(_) => return Err(format!("{text:?}: port {port} is out of range (1 to 65535)")),
            Err(_) if port.is_empty() => return Err(format!("{text:?}: the port after ':' is empty; {FORM}")),
            Err(_) => return Err(format!("{text:?}: port {port:?} is not a number (1 to 65535)")),
        }
    }
    Ok(text.to_string())
}

/// `host[:port]` or `[v6]:port`, with the host's characters checked.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) =
            bracketed.split_once(']').ok_or_else(|| "an IPv6 host is missing its closing ']'".to_string())?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("[{host}] is not an IPv6 address"));
        }
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .map(Ok)
                .unwrap_or_else(|| Err(format!("unexpected {after:?} after the IPv6 host"))),
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.contains(':')) {
        return Err("an IPv6 host must be in brackets, like [::1]:8080".into());
    }
    if let Some(bad) = host.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
        return Err(format!("host {host:?} contains {bad:?}"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls_pass_unchanged() {
        for url in [
            "ws://127.0.0.1:8080/ws",
            "ws://localhost/ws",
            "ws://[::1]:8000/ws?token=x",
            "WS://example.invalid:1/",
            "ws://127.0.0.1:65535",
            "wss://bot.example.com/ws",
            "wss://[::1]:8443/ws",
        ] {
            assert_eq!(parse_ws_url(url).as_deref(), Ok(url));
        }
    }

    #[test]
    fn each_bad_part_is_named() {
        let cases = [
            ("ws://127.0.0.1:99999/ws", "port 99999 is out of range"),
            ("ws://127.0.0.1:0/ws", "port 0 is out of range"),
            ("ws://127.0.0.1:http/ws", "port \"http\" is not a number"),
            ("ws://127.0.0.1:/ws", "the port after ':' is empty"),
            ("ws:///ws", "has no host"),
            ("ws://:8080/ws", "has no host"),
            ("http://127.0.0.1:8080/ws", "scheme \"http\" is not a WebSocket scheme"),
            ("127.0.0.1:8080/ws", "has no scheme"),
            ("ws://::1:8080/ws", "must be in brackets"),
            ("ws://[::1/ws", "closing ']'"),
            ("ws://[nope]:1/ws", "not an IPv6 address"),
            ("ws://user:pw@host/ws", "credentials"),
            ("ws://host/ws#frag", "fragment"),
            ("ws://ho st/ws", "contains ' '"),
        ];
        for (url, phrase) in cases {
            let error = parse_ws_url(url).unwrap_err();
            assert!(error.contains(phrase), "{url}: {error}");
        }
    }
}
