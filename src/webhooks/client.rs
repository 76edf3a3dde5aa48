//! The HTTP client that delivers webhooks: HTTP/1.1 over hyper-rustls's connector (rustls
//! with the ring provider, as the server uses), `https://` or `http://` as the endpoint's URL
//! says.
//!
//! Each endpoint has one connection of its own ([`EndpointClient`], hyper's
//! `client::conn::http1`), kept between deliveries for [`IDLE_CONNECTION`] and driven by the
//! endpoint's delivery task itself: a delivery is a write and a read on that task, with no
//! connection task, pool or channel in between (each endpoint has one delivery in flight
//! anyway). A kept connection that fails before any answer (the receiver closed it while it
//! was idle) is replaced by a new one for the same attempt, once.
//!
//! It follows no redirect (a `3xx` is an answer like any other, so a failure), reads no
//! proxy from the environment, gives up connecting after the attempt timeout, and reads at
//! most [`MAX_RESPONSE_BODY`] of an answer (then the connection is dropped). `https://`
//! receivers are verified against the system's CA certificates ([`crate::tls::client`], as
//! the AMQP broker is), read once, when the client is built: [`super::Webhooks`] builds it
//! when the first endpoint starts, so a node without webhooks never reads them.

use bytes::Bytes;
use futures::FutureExt;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tower::Service;

/// How much of a response body is read (then the connection is dropped).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// How long an idle connection to a receiver is kept for the next delivery.
const IDLE_CONNECTION: Duration = Duration::from_secs(90);
const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("clnrest/", env!("CARGO_PKG_VERSION")));

/// The connector (and its TLS configuration), shared by every endpoint.
#[derive(Clone)]
pub struct DeliveryClient {
    connector: HttpsConnector<HttpConnector>,
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

/// An endpoint's URL, parsed once: where to connect, and what the request line and the
/// `Host` header say.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    path: Uri,
    host: HeaderValue,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, DeliveryError> {
        let bad_url = |reason: String| DeliveryError::Url {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad_url(e.to_string()))?;
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(bad_url("the scheme is not http or https".to_string())),
        };
        let Some(name) = uri.host() else {
            return Err(bad_url("it names no host".to_string()));
        };
        let host = match uri.port_u16() {
            Some(port) if port != default_port => format!("{name}:{port}"),
            _ => name.to_string(),
        };
        let host = HeaderValue::try_from(host).map_err(|e| bad_url(e.to_string()))?;
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Ok(Target {
            path: Uri::from(path),
            uri,
            host,
        })
    }
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
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client::config("webhook")?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(DeliveryClient { connector })
    }
}

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;
/// hyper's state machine of one connection.
type Driver = Pin<Box<http1::Connection<Stream, Full<Bytes>>>>;

/// An open connection to a receiver.
struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    /// hyper's connection state machine, polled whenever this endpoint waits for an answer;
    /// `None` once it ended.
    driver: Option<Driver>,
    /// Why it ended, if it failed.
    failure: Option<String>,
    idle_since: Instant,
}

impl Connection {
    /// Still open, not idle for too long, and ready for a request. Polling it lets hyper see
    /// a close by the receiver that came while it was idle.
    fn usable(&mut self) -> bool {
        if let Some(driver) = self.driver.as_mut() {
            if let Some(ended) = driver.as_mut().now_or_never() {
                self.end(ended);
            }
        }
        self.driver.is_some()
            && self.idle_since.elapsed() < IDLE_CONNECTION
            && self.sender.is_ready()
    }

    /// Waits for `future` (the answer, a frame of its body) while driving the connection.
    ///
    /// Only the connection's progress completes `future`, so `future` is polled with a waker
    /// that does nothing, after the connection each time: the connection completing it (hyper
    /// fills the answer's channel while it reads) then does not wake this task while it runs,
    /// which tokio would answer by waking the other worker thread. The connection is polled
    /// with the task's waker, so the socket's readiness wakes the task.
    async fn drive<F: Future>(&mut self, future: F) -> F::Output {
        tokio::pin!(future);
        if let Some(driver) = self.driver.as_mut() {
            let progress = std::future::poll_fn(|cx| {
                let mut quiet = Context::from_waker(Waker::noop());
                if let Poll::Ready(output) = future.as_mut().poll(&mut quiet) {
                    return Poll::Ready(Ok(output));
                }
                match driver.as_mut().poll(cx) {
                    Poll::Ready(ended) => Poll::Ready(Err(ended)),
                    Poll::Pending => future.as_mut().poll(&mut quiet).map(Ok),
                }
            })
            .await;
            match progress {
                Ok(output) => return output,
                Err(ended) => self.end(ended),
            }
        }
        // What the connection delivered before it ended (an answer and the close may come in
        // one read) is there; the rest fails now that its sending side is dropped.
        future.await
    }

    fn end(&mut self, ended: hyper::Result<()>) {
        self.driver = None;
        if let Err(e) = ended {
            self.failure = Some(with_causes(&e));
        }
    }
}

/// One endpoint's client: its connection, opened when needed.
pub struct EndpointClient {
    client: DeliveryClient,
    connection: Option<Connection>,
}

/// How an exchange failed.
enum Failure {
    /// Without an answer: on a kept connection, worth a new one.
    NoAnswer(String),
    Other(DeliveryError),
}

impl Failure {
    fn into_error(self) -> DeliveryError {
        match self {
            Failure::NoAnswer(why) => DeliveryError::Exchange(why),
            Failure::Other(error) => error,
        }
    }
}

impl EndpointClient {
    pub fn new(client: DeliveryClient) -> EndpointClient {
        EndpointClient {
            client,
            connection: None,
        }
    }

    /// POSTs `body` with `headers` (and `Host`, `User-Agent`, so leave room for two more) to
    /// `target`; the answer's status once at most [`MAX_RESPONSE_BODY`] of its body was read.
    pub async fn post(
        &mut self,
        target: &Target,
        headers: HeaderMap,
        body: &Bytes,
    ) -> Result<StatusCode, DeliveryError> {
        // Taken out for the exchange: one cut short (the attempt timed out) is not kept.
        let kept = self
            .connection
            .take()
            .and_then(|mut c| c.usable().then_some(c));
        let retry_headers = kept.as_ref().map(|_| headers.clone());
        let first = self.exchange(kept, target, headers, body).await;
        match (first, retry_headers) {
            (Ok(status), _) => Ok(status),
            (Err(Failure::NoAnswer(_)), Some(headers)) => self
                .exchange(None, target, headers, body)
                .await
                .map_err(Failure::into_error),
            (Err(failure), _) => Err(failure.into_error()),
        }
    }

    /// One request on `connection` (a new one if `None`); the connection is kept for the
    /// next delivery only if the answer was read whole.
    async fn exchange(
        &mut self,
        connection: Option<Connection>,
        target: &Target,
        headers: HeaderMap,
        body: &Bytes,
    ) -> Result<StatusCode, Failure> {
        let mut connection = match connection {
            Some(connection) => connection,
            None => self.connect(target).await.map_err(Failure::Other)?,
        };
        let mut request = Request::post(target.path.clone())
            .body(Full::new(body.clone()))
            .map_err(|e| {
                Failure::Other(DeliveryError::Url {
                    url: target.uri.to_string(),
                    reason: e.to_string(),
                })
            })?;
        *request.headers_mut() = headers;
        let request_headers = request.headers_mut();
        request_headers.insert(header::HOST, target.host.clone());
        request_headers.insert(header::USER_AGENT, USER_AGENT);
        let sent = connection.sender.send_request(request);
        let response = match connection.drive(sent).await {
            Ok(response) => response,
            Err(e) => {
                let why = connection.failure.take().unwrap_or_else(|| with_causes(&e));
                return Err(Failure::NoAnswer(why));
            }
        };
        let status = response.status();
        // Read a little of the body (so the connection can be kept), never more.
        let mut body = response.into_body();
        let mut read = 0;
        let mut whole = false;
        while read < MAX_RESPONSE_BODY {
            match connection.drive(body.frame()).await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                None => {
                    whole = true;
                    break;
                }
                Some(Err(_)) => break,
            }
        }
        if whole && connection.driver.is_some() {
            connection.idle_since = Instant::now();
            self.connection = Some(connection);
        }
        Ok(status)
    }

    async fn connect(&mut self, target: &Target) -> Result<Connection, DeliveryError> {
        let mut connector = self.client.connector.clone();
        let exchange =
            |e: &(dyn std::error::Error + 'static)| DeliveryError::Exchange(with_causes(e));
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| exchange(&*e))?;
        let stream = connector
            .call(target.uri.clone())
            .await
            .map_err(|e| exchange(&*e))?;
        let (sender, driver) = http1::Builder::new()
            .handshake(stream)
            .await
            .map_err(|e| exchange(&e))?;
        Ok(Connection {
            sender,
            driver: Some(Box::pin(driver)),
            failure: None,
            idle_since: Instant::now(),
        })
    }
}

/// An error and its causes, on one line.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_give_the_request_line_and_the_host_header() {
        let target = Target::parse("https://shop.example/hooks/ln?x=1").unwrap();
        assert_eq!(target.path, "/hooks/ln?x=1");
        assert_eq!(target.host, "shop.example");
        let target = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (
                target.path.to_string().as_str(),
                target.host.to_str().unwrap()
            ),
            ("/", "127.0.0.1:8080")
        );
        assert_eq!(Target::parse("http://[::1]:80/a").unwrap().host, "[::1]");
        assert!(Target::parse("ftp://h/").is_err());
        assert!(Target::parse("/relative").is_err());
    }
}
