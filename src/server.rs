//! The HTTP(S) server: binds the listening socket (before `init` is answered, so a busy port
//! is reported to lightningd), assembles routes and middleware (CSP, CORS), and serves until
//! shutdown.

use crate::config::{Config, CorsOrigins, Protocol};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{openapi, routes, socketio, sse};
use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// How long in-flight requests may finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(700);

/// A server that is bound and has its certificates, ready to serve.
pub struct BoundServer {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
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
        Ok(BoundServer { listener, tls })
    }

    /// Serves `app` until `handle` is told to shut down.
    pub async fn serve(self, app: Router, handle: Handle<SocketAddr>) -> std::io::Result<()> {
        let service = app.into_make_service();
        match self.tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(self.listener, RustlsConfig::from_config(tls))?
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(self.listener)?
                    .handle(handle)
                    .serve(service)
                    .await
            }
        }
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
            get(routes::list_methods).fallback(routes::method_not_post),
        )
        .route(
            "/v1/notifications",
            get(sse::notifications).fallback(routes::method_not_post),
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
