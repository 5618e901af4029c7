//! Deliberately broken peers on 127.0.0.1:0, each broken in exactly one way, for the verdict
//! tests of `run` and `load`. Each runs on plain threads, so sync and async tests can share
//! them, and every socket read has a timeout, so none outlives its test for long.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use tokio_tungstenite::tungstenite::{self, Message};

/// How long a hostile server holds a connection at most.
const HOLD: Duration = Duration::from_secs(30);

fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    (listener, url)
}

/// Serves each connection on its own thread with `handle`.
fn serve(handle: impl Fn(TcpStream) + Copy + Send + 'static) -> String {
    let (listener, url) = listen();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(HOLD));
            std::thread::spawn(move || handle(stream));
        }
    });
    url
}

/// Reads until the peer goes away or goes quiet for the stream's read timeout.
fn drain(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

/// Answers every connection with `reply` and then holds it open, reading.
pub fn tcp_reply(reply: &'static [u8]) -> String {
    serve(move |mut stream| {
        let _ = stream.write_all(reply);
        drain(&mut stream);
    })
}

pub const HTTP_500: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
pub const HTTP_404: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
pub const GARBAGE: &[u8] = b"\x00\xffHTTP/9.9 garbage\r\n\r\n\x01\x02";
/// A 101 whose Sec-WebSocket-Accept does not match any key the client sent.
pub const WRONG_ACCEPT: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";

fn handshake(stream: TcpStream) -> Option<tungstenite::WebSocket<TcpStream>> {
    tungstenite::accept(stream).ok()
}

/// Completes the WebSocket handshake, then drops the TCP connection at once.
pub fn drops_after_handshake() -> String {
    serve(|stream| drop(handshake(stream)))
}

/// Completes the handshake, then reads everything and answers nothing.
pub fn silent_after_handshake() -> String {
    serve(|stream| {
        let Some(ws) = handshake(stream) else { return };
        drain(&mut ws.into_inner());
    })
}

/// Answers each text Ping with a Pong, but never echoes a Close: after one arrives it holds
/// the connection without a word until the client goes away.
pub fn never_echoes_close() -> String {
    serve(|stream| {
        let Some(mut ws) = handshake(stream) else { return };
        loop {
            match ws.read() {
                Ok(Message::Text(text)) if text.contains("Ping") => {
                    let _ = ws.send(Message::text(r#"{"type":"Pong","data":{"timestamp":1},"timestamp":1}"#));
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(_) => return,
            }
        }
        // The library queued the echo; it goes out only on the next read or write, which never comes.
        drain(&mut ws.into_inner());
    })
}

/// Answers each text message with one JSON text of `reply` (a fixed wrong-profile server).
pub fn answers_everything_with(reply: &'static str) -> String {
    serve(move |stream| {
        let Some(mut ws) = handshake(stream) else { return };
        let _ = ws.send(Message::text(reply));
        while let Ok(message) = ws.read() {
            if message.is_text() && ws.send(Message::text(reply)).is_err() {
                return;
            }
        }
    })
}

/// Completes the handshake, writes `bytes` raw (frames of the test's making), then closes.
pub fn writes_after_handshake(bytes: &'static [u8]) -> String {
    serve(move |stream| {
        let Some(ws) = handshake(stream) else { return };
        let mut raw = ws.into_inner();
        let _ = raw.write_all(bytes);
        let _ = raw.flush();
        // Read what the client sent, so the close is a FIN and not a reset.
        let _ = raw.set_read_timeout(Some(Duration::from_millis(150)));
        drain(&mut raw);
    })
}

/// Half of a 100-byte text frame, then the TCP end.
pub const CUT_FRAME: &[u8] = b"\x81\x64{\"type\":\"Pong\"";
/// The header of a 64 MiB binary frame.
pub const HUGE_FRAME: &[u8] = b"\x82\x7f\x00\x00\x00\x00\x04\x00\x00\x00";
/// A text frame that is not UTF-8.
pub const INVALID_UTF8: &[u8] = b"\x81\x04\xff\xfe\xfd\xfc";
/// A masked text frame, which only clients may send (RFC 6455 5.1).
pub const MASKED_FRAME: &[u8] = b"\x81\x82\x01\x02\x03\x04\x7a\x6b";

/// Completes the handshake, lets the client's first frames arrive unread, then closes: unread
/// data makes the kernel answer with a TCP reset instead of a FIN.
pub fn resets_after_handshake() -> String {
    serve(|stream| {
        let Some(ws) = handshake(stream) else { return };
        std::thread::sleep(Duration::from_millis(200));
        drop(ws);
    })
}

/// A frame header claiming 2^63 − 1 bytes of payload.
pub const HEADER_2_63: &[u8] = b"\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff";

/// Completes the handshake, then sends one text message as endless 1 KB fragments.
pub fn endless_fragments() -> String {
    serve(|stream| {
        let Some(ws) = handshake(stream) else { return };
        let mut raw = ws.into_inner();
        let mut frame = vec![0x01, 0x7e, 0x04, 0x00];
        frame.extend(std::iter::repeat_n(b'a', 1024));
        if raw.write_all(&frame).is_err() {
            return;
        }
        frame[0] = 0x00;
        while raw.write_all(&frame).is_ok() {}
    })
}

/// Completes the handshake, then sends valid-looking text messages without pause.
pub fn floods() -> String {
    serve(|stream| {
        let Some(mut ws) = handshake(stream) else { return };
        let message = r#"{"type":"Pong","data":{"timestamp":1},"timestamp":1}"#;
        while ws.send(Message::text(message)).is_ok() {}
    })
}

/// Answers each text message with a 1 MB text message.
pub fn answers_with_megabytes() -> String {
    serve(|stream| {
        let Some(mut ws) = handshake(stream) else { return };
        let big = format!(r#"{{"type":"Pong","pad":"{}"}}"#, "x".repeat(1 << 20));
        while let Ok(message) = ws.read() {
            if message.is_text() && ws.send(Message::text(big.as_str())).is_err() {
                return;
            }
        }
    })
}
