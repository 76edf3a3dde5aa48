//! The tower layer that records every HTTP request: in flight while its handler runs, then
//! counted by route kind, method and status, with its latency (to the response head: a
//! stream's body is not waited for).
//!
//! It wraps the whole router, outside CORS and catch-panic, so preflights and 500s from a
//! panic are counted too. A request whose client goes away before the answer is counted with
//! status 499 (nginx's "client closed request").

use crate::metrics::labels::{MethodLabel, RouteKind};
use crate::state::AppState;
use axum::http::{Method, Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// The status recorded for a request whose client went away before it was answered.
pub const CLIENT_CLOSED: u16 = 499;

/// Tells a request's route kind and method from its HTTP method and path, the way the
/// router will serve it.
struct Classifier {
    /// Where Swagger UI is (`clnrest-swagger-root`, or `/swagger-ui` for `/`).
    swagger_ui: String,
    /// `/` redirects to Swagger UI (`clnrest-swagger-root` is `/`).
    swagger_at_root: bool,
}

impl Classifier {
    fn classify(&self, state: &AppState, method: &Method, path: &str) -> (RouteKind, MethodLabel) {
        let metrics = state.metrics();
        if path == crate::metrics::route::PATH {
            return (RouteKind::Metrics, MethodLabel::None);
        }
        if path.starts_with("/socket.io/") || path == "/socket.io" {
            return (RouteKind::SocketIo, MethodLabel::None);
        }
        if method == Method::GET {
            match path {
                "/v1/notifications" => return (RouteKind::Notifications, MethodLabel::None),
                "/v1/list-methods" => return (RouteKind::ListMethods, MethodLabel::None),
                _ => {}
            }
        }
        if self.is_swagger(path) {
            return (RouteKind::Swagger, MethodLabel::None);
        }
        if !state.routes().is_empty() {
            if let Some(rpc_method) = state.routes().rpc_method_for(method.as_str(), path) {
                return (RouteKind::Registered, metrics.method_label(&rpc_method));
            }
        }
        if let Some(name) = path.strip_prefix("/v1/") {
            if name.contains('%') {
                let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                return (RouteKind::Rest, metrics.method_label(&decoded));
            }
            return (RouteKind::Rest, metrics.method_label(name));
        }
        (RouteKind::Other, MethodLabel::None)
    }

    fn is_swagger(&self, path: &str) -> bool {
        path == crate::http::openapi::DOCUMENT_PATH
            || (self.swagger_at_root && path == "/")
            || path
                .strip_prefix(self.swagger_ui.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Records every request of the service it wraps.
#[derive(Clone)]
pub struct RecordRequestsLayer {
    state: AppState,
    classifier: Arc<Classifier>,
}

impl RecordRequestsLayer {
    /// For a server with Swagger UI at `swagger_root` (as validated by `Config`).
    pub fn new(state: AppState, swagger_root: &str) -> RecordRequestsLayer {
        let swagger_at_root = swagger_root == "/";
        let swagger_ui = if swagger_at_root {
            crate::http::openapi::DEFAULT_UI_PATH
        } else {
            swagger_root
        };
        RecordRequestsLayer {
            state,
            classifier: Arc::new(Classifier {
                swagger_ui: swagger_ui.to_string(),
                swagger_at_root,
            }),
        }
    }
}

impl<S> Layer<S> for RecordRequestsLayer {
    type Service = RecordRequests<S>;

    fn layer(&self, inner: S) -> RecordRequests<S> {
        RecordRequests {
            inner,
            state: self.state.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// See [`RecordRequestsLayer`].
#[derive(Clone)]
pub struct RecordRequests<S> {
    inner: S,
    state: AppState,
    classifier: Arc<Classifier>,
}

impl<S, B, ResB> Service<Request<B>> for RecordRequests<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (kind, method) =
            self.classifier
                .classify(&self.state, request.method(), request.uri().path());
        self.state.metrics().request_started();
        let recording = Recording {
            state: self.state.clone(),
            kind,
            method,
            started: Instant::now(),
            status: CLIENT_CLOSED,
        };
        Recorded {
            inner: self.inner.call(request),
            recording: Some(recording),
        }
    }
}

/// One request being served; recorded when dropped, with the status it was answered with
/// (or [`CLIENT_CLOSED`] if it never was).
struct Recording {
    state: AppState,
    kind: RouteKind,
    method: MethodLabel,
    started: Instant,
    status: u16,
}

impl Drop for Recording {
    fn drop(&mut self) {
        let method = std::mem::replace(&mut self.method, MethodLabel::None);
        self.state.metrics().request_finished(
            self.kind,
            method,
            self.status,
            self.started.elapsed(),
        );
    }
}

pin_project! {
    /// The wrapped service's future, recording the request when it completes or is dropped.
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
    }
}

impl<F, ResB, E> Future for Recorded<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        if let Some(mut recording) = this.recording.take() {
            recording.status = match &output {
                Ok(response) => response.status().as_u16(),
                Err(_) => 500,
            };
        }
        Poll::Ready(output)
    }
}
