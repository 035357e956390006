//! The API's listener: TCP connections whose protocol errors come out in the API's error shape.
//!
//! hyper answers a request it cannot parse itself, before any handler sees it: `400` for a header
//! holding a character HTTP does not allow (a control character in `Idempotency-Key`, say), `414`
//! for a URL over 64 KiB, `431` for headers over its buffer. Its answer is a bare head with
//! `content-length: 0`, which a client expecting `{"error": …}` cannot read. Every connection's
//! writes pass through [`Shaped`], which replaces exactly that head (a 400, 414 or 431 with an
//! empty body: the application never answers so) with the same status and a JSON error body.
//! Everything else passes through untouched.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A bound TCP listener whose connections are [`Shaped`].
pub struct ApiListener(pub TcpListener);

impl axum::serve::Listener for ApiListener {
    type Io = Shaped<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (Shaped::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The client's address (the connection's peer), as a request extension
/// (`ConnectInfo<Peer>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, ApiListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ApiListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A connection whose protocol-error answers are given the API's error shape.
pub struct Shaped<T> {
    inner: T,
    /// A shaped answer still being written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
}

impl<T> Shaped<T> {
    pub fn new(inner: T) -> Self {
        Shaped {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> Shaped<T> {
    /// Writes what is left of a shaped answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `head` (all of it) when it is hyper's own error answer, to write its shaped form.
    fn take_error_head(&mut self, cx: &mut Context<'_>, head: &[u8]) -> Option<io::Result<usize>> {
        let shaped = shape(head)?;
        self.pending = shaped;
        self.written = 0;
        match self.drain(cx) {
            // Pending: the rest is written by the next write, flush or shutdown.
            Poll::Ready(Ok(())) | Poll::Pending => Some(Ok(head.len())),
            Poll::Ready(Err(e)) => Some(Err(e)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Shaped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Shaped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(taken) = self.take_error_head(cx, buf) {
            return Poll::Ready(taken);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(taken) = self.take_error_head(cx, first)
        {
            return Poll::Ready(taken);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper's error answer `head`, with the API's error body; `None` for any other write.
fn shape(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let status = status_line.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let (code, message) = match status {
        "400" => (
            "malformed_request",
            "the request is not valid HTTP: a header holds a character HTTP does not allow \
             (such as a control character), or the request line is malformed",
        ),
        "414" => ("url_too_long", "the URL is longer than 64 KiB"),
        "431" => ("headers_too_large", "the request's headers are too large"),
        _ => return None,
    };
    let headers = rest.strip_suffix("\r\n\r\n")?;
    let headers: Vec<&str> = if headers.is_empty() {
        Vec::new()
    } else {
        headers.split("\r\n").collect()
    };
    if !headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-length: 0"))
    {
        return None; // an answer of the application's: it always has a body
    }
    let body = crate::error::error_body(code, message, serde_json::Value::Null).to_string();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for h in headers {
        let name = h.split(':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection")
        {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_error_head_gets_the_error_shape() {
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 16:00:00 GMT\r\n\r\n";
        let shaped = String::from_utf8(shape(head).unwrap()).unwrap();
        let (head, body) = shaped.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("date: Fri"), "{head}");
        assert!(!head.contains("content-length: 0"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "url_too_long");
    }

    #[test]
    fn the_applications_answers_pass_untouched() {
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n";
        assert!(shape(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(shape(ok).is_none());
        assert!(shape(b"{\"error\":").is_none());
        assert!(shape(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }
}
