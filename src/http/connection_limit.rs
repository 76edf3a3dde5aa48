//! A cap on concurrent client connections (`clnrest-max-connections`). A connection beyond
//! the cap is answered with a JSON 503 (`Connection: close`) and closed, instead of silently
//! exhausting file descriptors and memory; the others are served as usual.
//!
//! A slot is a permit of one semaphore. A TCP connection holds one from its first byte
//! until it closes. A Socket.IO long-polling session has no connection of its own (each poll
//! is a request, on whatever connection), so it holds a slot while it lives: the slot of the
//! connection its handshake came on, shared with that connection (freed when both are gone),
//! or, when that connection already lent its slot to an earlier session, a slot of its own.
//! A polling handshake finding no slot gets the same 503 ([`refusal`]). The slot travels
//! with the session's request parts ([`SessionSlot`] in their extensions), so it is given
//! back when engine.io drops the session.
//!
//! Each connection also counts the bytes written to it ([`Connection::written`]): how the
//! Socket.IO relay learns what a websocket client has taken from its send queue.
//!
//! And the kernel holds at most [`UNSENT_LIMIT`] bytes not yet sent for each connection
//! ([`limit_unsent`]), so what a connection has taken is what its client has (nearly) read.
//!
//! A connection can be closed from outside ([`Connection::abort`]): its reads and writes
//! then fail, waking whatever waits on them, so the server drops it even when its client
//! reads nothing (a Socket.IO client cut off as a slow consumer).

use axum::body::Body;
use axum::middleware::AddExtension;
use axum::response::Response;
use axum_server::accept::Accept;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The JSON body of the 503 a connection or polling session beyond the cap gets.
const REFUSAL_BODY: &str =
    "{\"code\":-32603,\"message\":\"Too many connections to clnrest, try again later\"}";

/// The answer a connection beyond the cap gets.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 76\r\n\
\r\n\
{\"code\":-32603,\"message\":\"Too many connections to clnrest, try again later\"}";

/// How long we try to deliver the refusal before just closing.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The most bytes the kernel queues on a connection beyond what is in flight to its client
/// (`TCP_NOTSENT_LOWAT`). Without it Linux grows a connection's send buffer up to
/// `net.ipv4.tcp_wmem`'s maximum (4 MiB by default), and a client that stops reading soaks up
/// that much before its writes block: with a few hundred stalled Socket.IO clients the plugin
/// spent its time writing hundreds of MiB nobody would read, every client (the ones reading
/// too) fell 4 MiB behind and all were cut off as slow consumers (`bench/stalled`). Data in
/// flight is not counted, so a fast client on a long link is not slowed down.
pub const UNSENT_LIMIT: u32 = 128 * 1024;

/// Sets [`UNSENT_LIMIT`] on the listening socket; accepted connections inherit it (Linux).
pub fn limit_unsent(listener: &std::net::TcpListener) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket2::SockRef::from(listener).set_tcp_notsent_lowat(UNSENT_LIMIT)?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = listener;
    Ok(())
}

/// The slots: how many are taken, out of how many (for metrics).
#[derive(Clone)]
pub struct ConnectionSlots {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ConnectionSlots {
    /// `max` slots, all free.
    pub fn new(max: usize) -> ConnectionSlots {
        ConnectionSlots {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Slots taken now: open connections (TLS handshakes included) and polling sessions
    /// that do not share their handshake connection's slot.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// `clnrest-max-connections`.
    pub fn max(&self) -> usize {
        self.max
    }

    fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }
}

/// Wraps another acceptor and holds a slot for each connection it lets through.
#[derive(Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    slots: ConnectionSlots,
}

impl<A> LimitedAcceptor<A> {
    /// Wraps `inner`; its connections take `slots`.
    pub fn new(inner: A, slots: &ConnectionSlots) -> Self {
        LimitedAcceptor {
            inner,
            slots: slots.clone(),
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
    type Service = AddExtension<A::Service, Connection>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        // Counted from the first byte, TLS handshakes included.
        let permit = self.slots.take();
        let slots = self.slots.clone();
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (mut stream, service) = accepting.await?;
            match permit {
                Some(permit) => {
                    let connection = Connection::new(permit, slots);
                    let stream = Permitted {
                        inner: stream,
                        connection: connection.clone(),
                    };
                    let service = tower::Layer::layer(&axum::Extension(connection), service);
                    Ok((stream, service))
                }
                None => {
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

/// One accepted connection, as its requests see it (a request extension).
#[derive(Clone)]
pub struct Connection(Arc<ConnectionShared>);

struct ConnectionShared {
    slot: Arc<OwnedSemaphorePermit>,
    /// Whether a polling session shares `slot` already.
    slot_lent: AtomicBool,
    slots: ConnectionSlots,
    /// Bytes written to the connection so far (after TLS, before encryption).
    written: AtomicU64,
    abort: Abort,
}

/// Whether the connection was aborted, and the tasks to wake when it is.
#[derive(Default)]
struct Abort {
    aborted: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Abort {
    /// Remembers `waker` as the reader's or the writer's; an error once aborted.
    fn check(&self, side: &AtomicWaker, waker: &std::task::Waker) -> io::Result<()> {
        side.register(waker);
        if self.aborted.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            ));
        }
        Ok(())
    }
}

impl Connection {
    /// A connection holding `slot`, one of `slots`.
    fn new(slot: OwnedSemaphorePermit, slots: ConnectionSlots) -> Connection {
        Connection(Arc::new(ConnectionShared {
            slot: Arc::new(slot),
            slot_lent: AtomicBool::new(false),
            slots,
            written: AtomicU64::new(0),
            abort: Abort::default(),
        }))
    }

    /// How many bytes were written to this connection so far: for a websocket, what the
    /// client's socket (or, once that is full, nothing more) has taken.
    pub fn written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    /// Closes the connection: its pending and future reads and writes fail.
    pub fn abort(&self) {
        let abort = &self.0.abort;
        abort.aborted.store(true, Ordering::Release);
        abort.reader.wake();
        abort.writer.wake();
    }

    /// A slot for a long-polling session whose handshake came on this connection: this
    /// connection's own for the first such session, a new one after that; `None` when the
    /// cap is reached.
    pub fn session_slot(&self) -> Option<SessionSlot> {
        if !self.0.slot_lent.swap(true, Ordering::Relaxed) {
            return Some(SessionSlot(self.0.slot.clone()));
        }
        self.0
            .slots
            .take()
            .map(|permit| SessionSlot(Arc::new(permit)))
    }
}

/// The slot a long-polling session holds while it lives (in its request's extensions,
/// which engine.io keeps with the session).
#[derive(Clone)]
pub struct SessionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// The 503 for a polling session beyond the cap: the body and status a connection beyond it
/// gets.
pub fn refusal() -> Response {
    tracing::warn!("Socket.IO polling session refused: clnrest-max-connections reached");
    let mut response = Response::new(Body::from(REFUSAL_BODY));
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A stream that counts what is written to it and gives its slot back when it is dropped.
pub struct Permitted<S> {
    inner: S,
    connection: Connection,
}

impl<S> Permitted<S> {
    fn check_writable(&self, cx: &Context<'_>) -> io::Result<()> {
        let abort = &self.connection.0.abort;
        abort.check(&abort.writer, cx.waker())
    }

    fn count(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            self.connection
                .0
                .written
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Permitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let abort = &self.connection.0.abort;
        abort.check(&abort.reader, cx.waker())?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Permitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_writable(cx)?;
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_writable(cx)?;
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_writable(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinHandle;

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert_eq!(body, REFUSAL_BODY);
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], -32603);
    }

    /// A stream on a connection of its own, and the other end, which nobody reads.
    fn permitted_stream() -> (Permitted<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let slots = ConnectionSlots::new(1);
        let connection = Connection::new(slots.take().expect("a free slot"), slots);
        let (ours, theirs) = tokio::io::duplex(64);
        let stream = Permitted {
            inner: ours,
            connection,
        };
        (stream, theirs)
    }

    /// Aborts `connection` once `task` (a read or a write on it) is pending, and returns
    /// what `task` ended with: only the abort can wake it.
    async fn abort_when_pending<T>(connection: &Connection, task: JoinHandle<T>) -> T {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished(), "the io is pending");
        connection.abort();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the abort wakes the pending io")
            .expect("the io task does not panic")
    }

    #[tokio::test]
    async fn abort_fails_a_pending_read_and_later_writes() {
        use tokio::io::AsyncReadExt;
        let (mut stream, _theirs) = permitted_stream();
        let connection = stream.connection.clone();
        let task = tokio::spawn(async move { (stream.read(&mut [0u8; 1]).await, stream) });
        let (read, mut stream) = abort_when_pending(&connection, task).await;
        let error = read.expect_err("the pending read fails");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        let error = stream.write_all(b"x").await.expect_err("writes fail");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn abort_fails_a_pending_write() {
        let (mut stream, _theirs) = permitted_stream();
        let connection = stream.connection.clone();
        // Nobody reads the other end: the second 64 bytes wait for room.
        let task = tokio::spawn(async move { stream.write_all(&[0u8; 128]).await });
        let write = abort_when_pending(&connection, task).await;
        let error = write.expect_err("the pending write fails");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(connection.written(), 64, "what the stream took counts");
    }

    #[test]
    fn the_first_polling_session_shares_its_connection_slot_the_next_takes_one() {
        let slots = ConnectionSlots::new(2);
        let connection = Connection::new(slots.take().expect("a free slot"), slots.clone());
        let shared = connection
            .session_slot()
            .expect("the connection's own slot");
        assert_eq!(slots.open(), 1);
        let own = connection.session_slot().expect("the last free slot");
        assert_eq!(slots.open(), 2);
        assert!(connection.session_slot().is_none(), "the cap is reached");
        drop(own);
        assert_eq!(slots.open(), 1);
        drop(connection);
        assert_eq!(slots.open(), 1, "the session still holds the shared slot");
        drop(shared);
        assert_eq!(slots.open(), 0);
    }
}
