//! The HTTP client that delivers webhooks: hyper-util's pooling client over hyper-rustls
//! (rustls with the ring provider, as the server uses), HTTP/1.1, `https://` or `http://` as
//! the endpoint's URL says.
//!
//! It follows no redirect (a `3xx` is an answer like any other, so a failure), reads no
//! proxy from the environment, gives up connecting after the attempt timeout, and reads at
//! most [`MAX_RESPONSE_BODY`] of an answer. `https://` receivers are verified against the
//! system's CA certificates (on Debian, the `ca-certificates` package's
//! `/etc/ssl/certs/ca-certificates.crt`, `SSL_CERT_FILE`/`SSL_CERT_DIR` if set), read once,
//! when the client is built: [`super::Webhooks`] builds it when the first endpoint starts,
//! so a node without webhooks never reads them.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// How much of a response body is read (then the connection is dropped).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// How long an idle connection to a receiver is kept for the next delivery.
const IDLE_CONNECTION: Duration = Duration::from_secs(90);

/// Shared by every endpoint; cloning it shares its connection pool.
#[derive(Clone)]
pub struct DeliveryClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{url} cannot be called: {reason}")]
    Url { url: String, reason: String },
    /// The connection, the TLS handshake or the exchange failed; the error and its causes.
    #[error("{0}")]
    Exchange(String),
}

impl DeliveryClient {
    /// `connect_timeout` bounds the TCP connection; the caller bounds the whole attempt.
    /// Fails only if rustls refuses the TLS configuration.
    pub fn new(connect_timeout: Duration) -> Result<DeliveryClient, rustls::Error> {
        let mut http = HttpConnector::new();
        // The URL's scheme decides: the https connector below handles `https://`.
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_CONNECTION)
            .build(https);
        Ok(DeliveryClient { client })
    }

    /// POSTs `body` with `headers` (and a `User-Agent`) to `url`; the answer's status once
    /// at most [`MAX_RESPONSE_BODY`] of its body was read.
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<StatusCode, DeliveryError> {
        let bad_url = |reason: String| DeliveryError::Url {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad_url(e.to_string()))?;
        let mut request = Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| bad_url(e.to_string()))?;
        *request.headers_mut() = headers;
        request.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("clnrest/", env!("CARGO_PKG_VERSION"))),
        );
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| DeliveryError::Exchange(with_causes(&e)))?;
        let status = response.status();
        // Read a little of the body (so the connection can be reused), never more.
        let mut body = response.into_body();
        let mut read = 0;
        while read < MAX_RESPONSE_BODY {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                Some(Err(_)) | None => break,
            }
        }
        Ok(status)
    }
}

/// TLS 1.2 and 1.3 with the ring provider, the system's roots, no client certificate.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(system_roots())
        .with_no_client_auth())
}

/// The CA certificates of the system; what cannot be read or parsed is logged.
fn system_roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in found.errors.iter().take(3) {
        tracing::warn!("webhook TLS client: reading the system's CA certificates: {error}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "webhook TLS client: no CA certificate found in the system's store (install \
             ca-certificates, or set SSL_CERT_FILE): https deliveries will fail"
        );
    } else if ignored > 0 {
        tracing::debug!("webhook TLS client: {added} CA certificates, {ignored} unparsable");
    }
    roots
}

/// An error and its causes, on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
