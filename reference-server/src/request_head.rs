//! The upgrade request's head, read before the WebSocket library sees it, so that an
//! oversized one gets a proper `431 Request Header Fields Too Large` instead of a dropped
//! connection. The bytes read are handed on untouched, ahead of the rest of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::tls::ServerStream;

/// A client's stream with bytes already read from it put back in front.
pub struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    inner: ServerStream,
}

pub enum Head {
    /// The head ended within the limit; the stream replays it.
    Complete(Prefixed),
    /// The head grew past the limit; the stream is answered 431 and closed.
    TooLarge,
}

const RESPONSE_431: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// Reads up to the blank line that ends the request head, at most `max` bytes.
pub async fn read(mut stream: ServerStream, max: usize) -> io::Result<Head> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the client closed during the upgrade request"));
        }
        // Search only where the terminator can newly appear.
        let from = buffer.len().saturating_sub(3);
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            if from + end + 4 > max {
                break;
            }
            return Ok(Head::Complete(Prefixed { prefix: buffer, at: 0, inner: stream }));
        }
        if buffer.len() > max {
            break;
        }
    }
    let _ = stream.write_all(RESPONSE_431).await;
    let _ = stream.shutdown().await;
    Ok(Head::TooLarge)
}

impl AsyncRead for Prefixed {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
