//! A cap on concurrent client connections. A connection beyond the cap is answered with a
//! JSON 503 (`Connection: close`) and closed, instead of silently exhausting file descriptors
//! and memory; the others are served as usual.

use axum_server::accept::Accept;
use futures::future::BoxFuture;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The answer a connection beyond the cap gets.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 76\r\n\
\r\n\
{\"code\":-32603,\"message\":\"Too many connections to clnrest, try again later\"}";

/// How long we try to deliver the refusal before just closing.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The cap's permits: one per connection that may be open, shared by the acceptor and the
/// metrics (which count the open connections).
#[derive(Clone)]
pub struct ConnectionSlots {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ConnectionSlots {
    pub fn new(max_connections: usize) -> Self {
        ConnectionSlots {
            permits: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
        }
    }

    /// Connections holding a permit now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Wraps another acceptor and holds a permit for each connection it lets through.
#[derive(Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, slots: &ConnectionSlots) -> Self {
        LimitedAcceptor {
            inner,
            permits: slots.permits.clone(),
        }
    }
}

impl<A, I, S> Accept<I, S> for LimitedAcceptor<A>
where
    A: Accept<I, S>,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
    A::Future: Send + 'static,
{
    type Stream = Permitted<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        // Counted from the first byte, TLS handshakes included.
        let permit = self.permits.clone().try_acquire_owned();
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (mut stream, service) = accepting.await?;
            match permit {
                Ok(permit) => Ok((
                    Permitted {
                        inner: stream,
                        _permit: permit,
                    },
                    service,
                )),
                Err(_) => {
                    tracing::warn!("connection refused: clnrest-max-connections reached");
                    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                        stream.write_all(REFUSAL).await?;
                        stream.shutdown().await
                    })
                    .await;
                    Err(io::Error::other("connection limit reached"))
                }
            }
        })
    }
}

/// A stream that gives its permit back when it is dropped.
pub struct Permitted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Permitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::http::write_through::delegate_async_write!(Permitted);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], -32603);
    }
}
