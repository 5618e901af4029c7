//! The reference server against abusive clients: framing violations, oversized request
//! heads, too many connections, idle and slow clients, and the replies owed before a 1008.
//! Raw frames are written with a plain socket, since no well-behaved client library sends them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use std::net::SocketAddr;

use reference_server::{Config, Profile};
use tokio_tungstenite::tungstenite::{self, Message};
use wsprobe::session::{ConnectError, ConnectOptions, Event, Session};

use crate::support::{quiet, start, WAIT};

type SyncWs = tungstenite::WebSocket<TcpStream>;

/// A blocking client for raw frames; the handshake is tungstenite's.
fn sync_client(addr: SocketAddr, url: &str) -> SyncWs {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (ws, _) = tungstenite::client(url, stream).expect("handshake");
    ws
}

/// Reads until a Close frame and returns its code; skips text (the welcome).
fn close_code(ws: &mut SyncWs) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// A client frame with a mask of zeros (so the payload reads as is), with `first` as byte 0.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn framing_violations_get_close_1002_before_the_tcp_close() {
    let server = start(quiet(Profile::Core)).await;
    let violations: Vec<(&str, Vec<u8>)> = vec![
        ("RSV1 set", masked(0xC1, b"hi")),
        ("reserved data opcode 3", masked(0x83, b"hi")),
        ("reserved control opcode 11", masked(0x8B, b"")),
        ("unmasked client frame", vec![0x81, 0x02, b'h', b'i']),
        ("control frame over 125 bytes", {
            let mut f = vec![0x89, 0x80 | 126, 0, 126, 0, 0, 0, 0];
            f.extend(std::iter::repeat_n(b'p', 126));
            f
        }),
        ("fragmented control frame", masked(0x09, b"ping")),
        ("continuation with nothing to continue", masked(0x80, b"hi")),
    ];
    let handle = tokio::task::spawn_blocking({
        let server_url = server.url();
        let addr = server.local_addr();
        move || {
            for (name, frame) in violations {
                let mut ws = sync_client(addr, &server_url);
                ws.get_mut().write_all(&frame).unwrap();
                assert_eq!(close_code(&mut ws), Some(1002), "{name}");
            }
        }
    });
    handle.await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let server = start(quiet(Profile::Core)).await;
    let addr = server.local_addr();
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let padding = "a".repeat(100 * 1024);
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Padding: {padding}\r\n\r\n"
        );
        // The server may stop reading once the limit is passed; a failed write is fine.
        let _ = stream.write_all(request.as_bytes());
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 431"), "{response:?}");
    // A normal request still works.
    let mut session = Session::connect(&ConnectOptions::new(server.url(), WAIT)).await.expect("upgrade");
    assert!(matches!(session.recv(WAIT).await, Event::Text(_)));
    server.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let mut config = quiet(Profile::Core);
    config.max_connections = Some(2);
    let server = start(config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut session = Session::connect(&ConnectOptions::new(server.url(), WAIT)).await.expect("within the cap");
        assert!(matches!(session.recv(WAIT).await, Event::Text(_)), "welcomed, so counted");
        held.push(session);
    }
    match Session::connect(&ConnectOptions::new(server.url(), WAIT)).await {
        Err(ConnectError::Rejected { status: 503, .. }) => {}
        Err(other) => panic!("expected HTTP 503, got {other}"),
        Ok(_) => panic!("expected HTTP 503, got 101"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_client_is_closed_and_a_pinging_one_is_not() {
    let mut config = quiet(Profile::Core);
    config.idle_timeout = Some(Duration::from_millis(400));
    let server = start(config).await;
    let mut idle = Session::connect(&ConnectOptions::new(server.url(), WAIT)).await.unwrap();
    let mut pinging = Session::connect(&ConnectOptions::new(server.url(), WAIT)).await.unwrap();
    // The pinging client keeps talking for longer than two idle limits.
    for _ in 0..8 {
        pinging.send_text(r#"{"type":"Ping","timestamp":1}"#, WAIT).await.unwrap();
        match pinging.recv(Duration::from_millis(100)).await {
            Event::Closed(frame) => panic!("a client that pings was closed: {frame:?}"),
            Event::Dropped(reason) => panic!("a client that pings was dropped: {reason}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        match idle.recv(WAIT).await {
            Event::Text(_) => continue,
            Event::Closed(Some((code, reason))) => {
                assert_eq!(code, 1008);
                assert!(reason.contains("idle timeout"), "{reason}");
                break;
            }
            other => panic!("expected Close 1008 for the idle client, got {other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_socket() {
    let mut config = Config::new(Profile::Core);
    config.rate_limit = None;
    config.tick = Duration::from_millis(1);
    config.outgoing_queue = 16;
    config.write_timeout = Duration::from_millis(200);
    config.shutdown_grace = Duration::from_millis(250);
    let server = start(config).await;
    // The client completes the handshake, then never reads: its socket buffers fill, the
    // server's writes block, and after the write timeout the server lets the socket go.
    let addr = server.local_addr();
    let url = server.url();
    let client = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("handshake");
        ws
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.stats().connections_active > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still connected: {:?}", server.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.stats().slow_consumers_closed >= 1, "{:?}", server.stats());
    // The socket is closed from the server's side: reading to the end finishes.
    let ended = tokio::task::spawn_blocking(move || {
        let mut raw = client.into_inner();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = vec![0u8; 1 << 16];
        loop {
            match raw.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(ended, "the server kept the socket open");
    server.shutdown().await;
}

#[tokio::test]
async fn replies_owed_before_the_rate_limit_go_out_before_the_1008() {
    let mut config = quiet(Profile::Core);
    config.rate_limit = Some(100);
    let server = start(config).await;
    let addr = server.local_addr();
    let url = server.url();
    let (pongs, code) = tokio::task::spawn_blocking(move || {
        let mut ws = sync_client(addr, &url);
        // All 101 at once, before reading anything: the replies are still queued at the 101st.
        for _ in 0..101 {
            ws.write(Message::text(r#"{"type":"Ping","timestamp":1}"#)).unwrap();
        }
        ws.flush().unwrap();
        let mut pongs = 0;
        loop {
            match ws.read() {
                Ok(Message::Text(text)) if text.contains("\"Pong\"") => pongs += 1,
                Ok(Message::Close(frame)) => return (pongs, frame.map(|f| u16::from(f.code))),
                Ok(_) => continue,
                Err(error) => panic!("no Close after {pongs} Pongs: {error}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((pongs, code), (100, Some(1008)));
    server.shutdown().await;
}
