//! The client's byte stream (TCP, or the plaintext side of TLS), watched for frame boundaries. When a server's connection ends
//! without a Close frame, the WebSocket library reports the same error whether the bytes
//! stopped between frames or in the middle of one; a server that dies mid-message is a
//! different defect from one that hangs up, so this reader follows the frame headers as the
//! bytes go by (it never changes them) and can tell the two apart.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::network::NetStream;

/// Where the byte stream from the server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Inside the HTTP response to the upgrade; `matched` bytes of `\r\n\r\n` seen.
    HttpHead { matched: u8 },
    /// Inside a frame header: `have` of `need` bytes (need is 2 until the length byte is seen).
    Header { have: u8, need: u8, first: [u8; 2] },
    /// Inside a payload, with this many bytes to go.
    Payload { left: u64 },
}

/// Follows frame boundaries in what the server sends.
#[derive(Debug, Clone, Copy)]
pub struct FrameTracker {
    position: Position,
    /// The payload length of the frame whose header is being read.
    length: u64,
}

impl Default for FrameTracker {
    fn default() -> FrameTracker {
        FrameTracker { position: Position::HttpHead { matched: 0 }, length: 0 }
    }
}

const HEADER_START: Position = Position::Header { have: 0, need: 2, first: [0; 2] };

impl FrameTracker {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.position {
                Position::HttpHead { matched } => {
                    let end = b"\r\n\r\n";
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    *matched = if byte == end[*matched as usize] {
                        *matched + 1
                    } else if byte == b'\r' {
                        1
                    } else {
                        0
                    };
                    if *matched == 4 {
                        self.position = HEADER_START;
                    }
                }
                Position::Header { have, need, first } => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    if (*have as usize) < 2 {
                        first[*have as usize] = byte;
                    }
                    *have += 1;
                    if *have == 2 {
                        let masked = first[1] & 0x80 != 0;
                        let extended = match first[1] & 0x7f {
                            126 => 2,
                            127 => 8,
                            _ => 0,
                        };
                        *need = 2 + extended + if masked { 4 } else { 0 };
                        self.length = 0;
                        if extended == 0 {
                            self.length = u64::from(first[1] & 0x7f);
                        }
                    } else if *have > 2 && (*have as usize) <= 2 + extended_len(first[1]) {
                        self.length = (self.length << 8) | u64::from(byte);
                    }
                    if *have == *need {
                        self.position =
                            if self.length == 0 { HEADER_START } else { Position::Payload { left: self.length } };
                    }
                }
                Position::Payload { left } => {
                    let take = (*left).min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    *left -= take;
                    if *left == 0 {
                        self.position = HEADER_START;
                    }
                }
            }
        }
    }

    /// True when the stream stopped inside a frame (its header or its payload).
    pub fn mid_frame(&self) -> bool {
        matches!(self.position, Position::Payload { .. } | Position::Header { have: 1.., .. })
    }
}

fn extended_len(second: u8) -> usize {
    match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

/// A stream whose incoming (decrypted) bytes feed a [`FrameTracker`].
pub struct TrackedStream {
    inner: NetStream,
    tracker: FrameTracker,
}

impl TrackedStream {
    pub fn new(inner: NetStream) -> TrackedStream {
        TrackedStream { inner, tracker: FrameTracker::default() }
    }

    pub fn tracker(&self) -> &FrameTracker {
        &self.tracker
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            this.tracker.feed(&buf.filled()[before..]);
        }
        poll
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after_handshake() -> FrameTracker {
        let mut tracker = FrameTracker::default();
        tracker.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        tracker
    }

    #[test]
    fn whole_frames_end_on_a_boundary_and_cut_ones_do_not() {
        let mut tracker = FrameTracker::default();
        tracker.feed(b"HTTP/1.1 101 Switching Protocols\r\n");
        assert!(!tracker.mid_frame(), "the HTTP head is not a frame");
        tracker.feed(b"\r\n");
        // A text frame "hi", then a 300-byte frame (16-bit length), both whole.
        tracker.feed(&[0x81, 0x02, b'h', b'i']);
        assert!(!tracker.mid_frame());
        let mut long = vec![0x81, 126, 0x01, 0x2c];
        long.extend(std::iter::repeat_n(b'x', 300));
        for chunk in long.chunks(7) {
            tracker.feed(chunk);
        }
        assert!(!tracker.mid_frame());
        // Half a payload.
        tracker.feed(&[0x81, 0x05, b'a', b'b']);
        assert!(tracker.mid_frame());
    }

    #[test]
    fn a_cut_header_and_64_bit_lengths_are_followed() {
        let mut tracker = after_handshake();
        tracker.feed(&[0x82]);
        assert!(tracker.mid_frame(), "one header byte");
        let mut tracker = after_handshake();
        tracker.feed(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
        assert!(!tracker.mid_frame());
        // A masked frame (as no server may send, but the bytes must still be followed).
        tracker.feed(&[0x81, 0x81, 9, 9, 9, 9, b'z']);
        assert!(!tracker.mid_frame());
        // An empty Close.
        tracker.feed(&[0x88, 0x00]);
        assert!(!tracker.mid_frame());
    }
}
