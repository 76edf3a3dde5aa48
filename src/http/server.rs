//! The HTTP(S) server: binds the listening socket (before `init` is answered, so a busy port
//! is reported to lightningd), assembles routes and middleware (CSP, CORS), and serves until
//! shutdown.

use crate::config::{Config, CorsOrigins, Protocol};
use crate::error::ApiError;
use crate::http::connection_limit::{ConnectionSlots, LimitedAcceptor};
use crate::http::header_deadline::HeaderDeadline;
use crate::http::{handlers, swagger};
use crate::metrics::request_layer::RecordRequestsLayer;
use crate::state::AppState;
use crate::stream::send_window::PollingSessions;
use crate::stream::socketio_relay::Relay;
use crate::stream::socketio_sessions::SocketIoFront;
use crate::stream::socketio_websocket::WebsocketEndpoint;
use crate::stream::{socketio, socketio_sessions, sse};
use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;
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

/// After this long without a frame from an HTTP/2 client the server pings it; a client
/// that has not answered [`HTTP2_PING_TIMEOUT`] later is gone (or hostile) and is closed.
/// HTTP/2 has no header timeout: without this a peer that sent the preface and then
/// nothing would hold its connection forever. Live clients answer pings by themselves.
pub const HTTP2_PING_INTERVAL: Duration = HEADER_READ_TIMEOUT;
pub const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Most requests one HTTP/2 connection may have in flight (hyper's default is 200). Each can
/// hold a request body being read and decoded before its rune is checked, so this bounds what
/// one connection can make the plugin hold; a browser or an app needs far fewer.
pub const HTTP2_MAX_STREAMS: u32 = 32;

/// Why the server cannot start; the text is the reason the plugin gives lightningd.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up TLS certificates: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl StartError {
    /// Whether the plugin was simply not asked to serve (no `clnrest-port`), as on every
    /// node that does not use it, rather than asked wrongly.
    pub fn is_unconfigured(&self) -> bool {
        matches!(
            self,
            StartError::Config(crate::config::ConfigError::MissingPort)
        )
    }
}

/// A server that is bound and has its certificates, ready to serve.
pub struct BoundServer {
    listener: TcpListener,
    tls: Option<crate::tls::ServerTls>,
    connections: ConnectionSlots,
}

impl BoundServer {
    /// Binds `config.bind_addr` and, for HTTPS, prepares the certificates in `clnrest-certs`
    /// or else `lightning_dir` (and loads `clnrest-tls-cert` if set). The error is the reason
    /// to give lightningd.
    pub fn prepare(config: &Config, lightning_dir: &Path) -> Result<BoundServer, StartError> {
        let listener = bind(config.bind_addr)?;
        let tls = match config.protocol {
            Protocol::Http => None,
            Protocol::Https => {
                let dir = config.certs_dir_or(lightning_dir);
                Some(crate::tls::prepare(&crate::tls::TlsSettings {
                    dir: &dir,
                    host: &config.host,
                    extra_names: config.tls_extra_names(),
                    own_cert: config.tls_own_cert.as_ref(),
                    client_auth: config.tls_client_auth,
                })?)
            }
        };
        Ok(BoundServer {
            listener,
            tls,
            connections: ConnectionSlots::new(config.max_connections),
        })
    }

    /// Lets `GET /metrics` count this server's open connections.
    pub fn report_connections_to(&self, state: &AppState) {
        state.metrics().watch_connections(self.connections.clone());
    }

    /// Serves `app` until `handle` is told to shut down.
    pub async fn serve(self, app: Router, handle: Handle<SocketAddr>) -> std::io::Result<()> {
        let service = app.into_make_service();
        let server = axum_server::from_tcp(self.listener)?.handle(handle);
        // Small responses go out at once (no Nagle delay), then TLS, then the cap, then the
        // deadline for a request's first bytes.
        match self.tls {
            Some(tls) => {
                // The operator's certificate is re-read while we serve.
                if let Some(reloader) = tls.reloader {
                    tokio::spawn(reloader.run());
                }
                let tls = RustlsAcceptor::new(RustlsConfig::from_config(tls.config))
                    .acceptor(NoDelayAcceptor::new());
                let mut server = server.acceptor(HeaderDeadline::new(
                    HEADER_READ_TIMEOUT,
                    LimitedAcceptor::new(tls, &self.connections),
                ));
                configure_http(server.http_builder());
                server.serve(service).await
            }
            None => {
                let mut server = server.acceptor(HeaderDeadline::new(
                    HEADER_READ_TIMEOUT,
                    LimitedAcceptor::new(NoDelayAcceptor::new(), &self.connections),
                ));
                configure_http(server.http_builder());
                server.serve(service).await
            }
        }
    }
}

/// HTTP/1 and HTTP/2 settings: a client must send its request headers within
/// [`HEADER_READ_TIMEOUT`], so idle half-open connections do not pile up. (hyper's timer
/// only starts once the first bytes have shown HTTP/1; before that, [`HeaderDeadline`].)
/// An HTTP/2 client must answer a ping after [`HTTP2_PING_INTERVAL`] of silence.
fn configure_http(builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_PING_INTERVAL)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
}

fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let listen_error = |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(addr).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    crate::http::connection_limit::limit_unsent(&listener).map_err(listen_error)?;
    Ok(listener)
}

/// Every route and middleware of the REST API.
pub fn router(state: AppState, config: &Config) -> Router {
    let api = Router::new()
        .route(
            "/v1/list-methods",
            get(handlers::list_methods)
                .post(handlers::call_method)
                .fallback(handlers::method_not_post),
        )
        .route(
            "/v1/notifications",
            get(sse::notifications)
                .post(handlers::call_method)
                .fallback(handlers::method_not_post),
        )
        .route(
            "/v1/{method}",
            post(handlers::call_method).fallback(handlers::method_not_post),
        )
        .route(
            crate::metrics::route::PATH,
            get(crate::metrics::route::metrics),
        )
        .fallback(handlers::path_not_found)
        .with_state(state.clone());

    let csp = HeaderValue::from_str(&config.csp)
        .unwrap_or_else(|_| HeaderValue::from_static(crate::config::DEFAULT_CSP));
    let app = api.merge(swagger::routes(&config.swagger_root, state.clone()));
    // The layers wrap the whole router once. (`Router::layer` would wrap every route in every
    // layer, and each request would clone that boxed stack level by level: ~10,000
    // instructions and 34 allocations per request.) Outermost first.
    // Socket.IO clients caught up with the journal are fed by one relay task, whichever
    // server holds their connection (socketioxide's, or our endpoint for websockets).
    let relay = Relay::start(state.clone());
    let websockets = WebsocketEndpoint::new(state.clone(), relay.clone());
    let layered = tower::ServiceBuilder::new()
        // Outermost: every request is counted, whatever answers it.
        .layer(RecordRequestsLayer::new(
            state.clone(),
            &config.swagger_root,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(cors_layer(&config.cors_origins))
        // gzip, br or zstd when the client's Accept-Encoding asks (never for event streams).
        .layer(CompressionLayer::new())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("the request handler failed; see lightningd's log".into())
                .into_response()
        }))
        .layer(middleware::from_fn_with_state(
            SocketIoFront::new(PollingSessions::default(), websockets),
            socketio_sessions::track_sessions,
        ))
        .layer(socketio::layer(state.clone(), relay))
        .layer(middleware::from_fn_with_state(
            state,
            handlers::dispatch_registered,
        ))
        .service(app);
    Router::new().fallback_service(layered)
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

/// The router in process (axum's `oneshot`): what it decides before lightningd is asked. The
/// RPC socket path does not exist, so a request that reached lightningd would get a 503.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawOptions;
    use crate::lightningd::rpc::LightningRpc;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    fn app() -> Router {
        let config = Config::validate(RawOptions {
            port: Some(3010),
            protocol: "http".into(),
            host: "127.0.0.1".into(),
            certs: None,
            cors_origins: vec!["*".into()],
            csp: crate::config::DEFAULT_CSP.into(),
            swagger_root: "/".into(),
            max_connections: None,
            tls_extra_names: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_auth: "none".into(),
            ..RawOptions::default()
        })
        .expect("a valid configuration");
        let rpc = LightningRpc::new("/nonexistent/clnrest-test/lightning-rpc");
        router(AppState::new(rpc, &config.swagger_root), &config)
    }

    async fn answer(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = app().oneshot(request).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("a body").to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, value)
    }

    #[tokio::test]
    async fn unknown_paths_and_wrong_methods_are_refused_with_json() {
        let (status, headers, body) = answer(
            Request::get("/nowhere")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"code": -32601, "message": "Path not found"}));
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            crate::config::DEFAULT_CSP
        );
        let (status, _, body) = answer(
            Request::get("/v1/getinfo")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            body,
            json!({"code": -32601, "message": "Path invalid, http_method must be POST for CLN methods"})
        );
    }

    #[tokio::test]
    async fn requests_refused_before_lightningd_never_reach_it() {
        let (status, _, body) = answer(
            Request::post("/v1/getinfo")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            body,
            json!({"code": 1501, "message": "Not authorized: Missing rune"})
        );
        let (status, _, body) = answer(
            Request::post("/v1/getinfo")
                .header("rune", "x")
                .header(header::ACCEPT, "image/png")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{body}");
        let (status, _, body) = answer(
            Request::post("/v1/getinfo")
                .header("rune", "x")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("hello"))
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
        let (status, _, body) = answer(
            Request::post("/v1/clnrest-register-path")
                .header("rune", "x")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // A request that does reach for lightningd finds no socket: 503, no path in the body.
        let (status, _, body) = answer(
            Request::post("/v1/getinfo")
                .header("rune", "x")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            json!({"code": -32603, "message": "lightningd is unreachable"})
        );
    }

    #[tokio::test]
    async fn cors_preflights_are_answered() {
        let (status, headers, _) = answer(
            Request::options("/v1/getinfo")
                .header(header::ORIGIN, "https://wallet.example")
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "rune")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert!(status.is_success(), "{status}");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
