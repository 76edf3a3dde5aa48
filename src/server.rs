//! The HTTP(S) server: binds the listening socket (before `init` is answered, so a busy port
//! is reported to lightningd), assembles routes and middleware (CSP, CORS), and serves until
//! shutdown.

use crate::config::{Config, CorsOrigins, Protocol};
use crate::connection_limit::LimitedAcceptor;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{openapi, routes, socketio, sse};
use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// How long in-flight requests may finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(450);
/// How long notification listeners get to fetch what is queued for them before shutdown.
/// With [`SHUTDOWN_GRACE`] the plugin still exits within 1 s of lightningd's `shutdown`.
pub const LISTENER_DRAIN: Duration = Duration::from_millis(250);

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A server that is bound and has its certificates, ready to serve.
pub struct BoundServer {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
}

impl BoundServer {
    /// Binds `config.bind_addr` and, for HTTPS, loads or creates the certificates in
    /// `clnrest-certs` or else `lightning_dir`. The error is the reason to give lightningd.
    pub fn prepare(config: &Config, lightning_dir: &Path) -> Result<BoundServer, String> {
        let listener = bind(config.bind_addr)?;
        let tls = match config.protocol {
            Protocol::Http => None,
            Protocol::Https => {
                let dir = config.certs_dir.as_deref().unwrap_or(lightning_dir);
                let tls = crate::tls::load_or_generate(dir, &config.host)
                    .map_err(|e| format!("cannot set up TLS certificates: {e}"))?;
                Some(tls)
            }
        };
        Ok(BoundServer {
            listener,
            tls,
            max_connections: config.max_connections,
        })
    }

    /// Serves `app` until `handle` is told to shut down.
    pub async fn serve(self, app: Router, handle: Handle<SocketAddr>) -> std::io::Result<()> {
        let service = app.into_make_service();
        let server = axum_server::from_tcp(self.listener)?.handle(handle);
        // Small responses go out at once (no Nagle delay), then TLS, then the cap, then the
        // deadline for a request's first bytes.
        match self.tls {
            Some(tls) => {
                let tls = RustlsAcceptor::new(RustlsConfig::from_config(tls))
                    .acceptor(NoDelayAcceptor::new());
                let mut server = server.acceptor(FirstBytesDeadline(LimitedAcceptor::new(
                    tls,
                    self.max_connections,
                )));
                configure_http(server.http_builder());
                server.serve(service).await
            }
            None => {
                let mut server = server.acceptor(FirstBytesDeadline(LimitedAcceptor::new(
                    NoDelayAcceptor::new(),
                    self.max_connections,
                )));
                configure_http(server.http_builder());
                server.serve(service).await
            }
        }
    }
}

/// HTTP/1 and HTTP/2 settings: a client must send its request headers within
/// [`HEADER_READ_TIMEOUT`], so idle half-open connections do not pile up. (hyper's timer
/// only starts once the first bytes have shown HTTP/1; before that, [`FirstBytesDeadline`].)
fn configure_http(builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
}

/// hyper-util's auto builder first reads up to 24 bytes to tell HTTP/1 from the HTTP/2
/// preface, and only then hands the connection to hyper's HTTP/1 code, whose header read
/// timeout starts there. A client that sends nothing at all (or stops inside the preface's
/// first bytes) was therefore never timed out and held its connection, its file descriptor
/// and a `clnrest-max-connections` slot forever. This acceptor closes such a connection when
/// [`HEADER_READ_TIMEOUT`] passes before its first bytes tell HTTP/1 from HTTP/2 (counted
/// after the TLS handshake, which has its own 10 s limit in axum-server).
#[derive(Clone)]
struct FirstBytesDeadline<A>(A);

impl<A, I, S> Accept<I, S> for FirstBytesDeadline<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = FirstBytesDeadlineStream<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let stream = FirstBytesDeadlineStream {
                inner: stream,
                deadline: Some(Box::pin(tokio::time::sleep(HEADER_READ_TIMEOUT))),
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
struct FirstBytesDeadlineStream<S> {
    inner: S,
    /// `None` once the bytes read have told the protocol (a byte off the preface: HTTP/1, or
    /// the whole preface: HTTP/2); hyper's own limits apply from there.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// How many bytes were read so far, all matching the preface (always fewer than all).
    preface_bytes: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytesDeadlineStream<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadlineStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(listener)
}

/// Every route and middleware of the REST API.
pub fn router(state: AppState, config: &Config) -> Router {
    let api = Router::new()
        .route(
            "/v1/list-methods",
            get(routes::list_methods)
                .post(routes::call_method)
                .fallback(routes::method_not_post),
        )
        .route(
            "/v1/notifications",
            get(sse::notifications)
                .post(routes::call_method)
                .fallback(routes::method_not_post),
        )
        .route(
            "/v1/{method}",
            post(routes::call_method).fallback(routes::method_not_post),
        )
        .fallback(routes::path_not_found)
        .with_state(state.clone());

    let csp = HeaderValue::from_str(&config.csp)
        .unwrap_or_else(|_| HeaderValue::from_static(crate::config::DEFAULT_CSP));
    api.merge(openapi::routes(&config.swagger_root, state.clone()))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            routes::dispatch_registered,
        ))
        .layer(socketio::layer(state))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("the request handler failed; see lightningd's log".into())
                .into_response()
        }))
        // gzip, br or zstd when the client's Accept-Encoding asks (never for event streams).
        .layer(CompressionLayer::new())
        .layer(cors_layer(&config.cors_origins))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
}

fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .max_age(Duration::from_secs(3600))
}
