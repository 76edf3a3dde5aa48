//! The deadline for a connection's first bytes. hyper's HTTP/1 header read timeout only
//! starts once hyper-util's auto builder has seen enough bytes to tell HTTP/1 from HTTP/2;
//! [`HeaderDeadline`] closes connections that never get that far.

use axum_server::accept::Accept;
use futures::future::BoxFuture;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

/// hyper-util's auto builder first reads up to 24 bytes to tell HTTP/1 from the HTTP/2
/// preface, and only then hands the connection to hyper's HTTP/1 code, whose header read
/// timeout starts there. A client that sends nothing at all (or stops inside the preface's
/// first bytes) was therefore never timed out and held its connection, its file descriptor
/// and a `clnrest-max-connections` slot forever. This acceptor closes such a connection when
/// its timeout (the header read timeout) passes before its first bytes tell HTTP/1 from HTTP/2 (counted
/// after the TLS handshake, which has its own 10 s limit in axum-server).
#[derive(Clone)]
pub struct HeaderDeadline<A> {
    inner: A,
    timeout: Duration,
}

impl<A> HeaderDeadline<A> {
    /// Wraps `inner`: its connections must show their protocol within `timeout`.
    pub fn new(timeout: Duration, inner: A) -> HeaderDeadline<A> {
        HeaderDeadline { inner, timeout }
    }
}

impl<A, I, S> Accept<I, S> for HeaderDeadline<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = HeaderDeadlineStream<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        let timeout = self.timeout;
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let stream = HeaderDeadlineStream {
                inner: stream,
                deadline: Some(Box::pin(tokio::time::sleep(timeout))),
                preface_bytes: 0,
            };
            Ok((stream, service))
        })
    }
}

/// The HTTP/2 connection preface, which hyper-util's auto builder waits for.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection whose reads fail with `TimedOut` if its deadline passes while the bytes read
/// so far are still all a prefix of [`H2_PREFACE`] (none at all, in particular).
pub struct HeaderDeadlineStream<S> {
    inner: S,
    /// `None` once the bytes read have told the protocol (a byte off the preface: HTTP/1, or
    /// the whole preface: HTTP/2); hyper's own limits apply from there.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// How many bytes were read so far, all matching the preface (always fewer than all).
    preface_bytes: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for HeaderDeadlineStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(deadline) = this.deadline.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                let rest = &H2_PREFACE[this.preface_bytes..];
                if read.len() < rest.len() && rest.starts_with(read) {
                    // Still undecided (or end of stream, which hyper handles).
                    this.preface_bytes += read.len();
                } else {
                    // A byte off the preface (HTTP/1) or all of it (HTTP/2).
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                this.deadline = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the header read timeout",
                )))
            }
            other => other,
        }
    }
}

crate::http::write_through::delegate_async_write!(HeaderDeadlineStream);
