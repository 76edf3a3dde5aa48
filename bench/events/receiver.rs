//! The webhook receiver: a hyper HTTP/1.1 server on 127.0.0.1 that answers every request
//! `200` with an empty body once it has read it, and records the notification it carried
//! into [`Arrivals`] ([`Arrivals::record_body`]).
//!
//! It does not check signatures (tests/webhooks.rs does): the bench measures delivery.

use crate::arrivals::Arrivals;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct WebhookReceiver {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    stop: CancellationToken,
}

impl WebhookReceiver {
    /// Listens on a free loopback port until dropped.
    pub async fn start(arrivals: Arc<Arrivals>) -> Result<WebhookReceiver, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("receiver: cannot listen on 127.0.0.1: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("receiver: {e}"))?;
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, arrivals, stop.clone()));
        Ok(WebhookReceiver {
            url: format!("http://{address}/hook"),
            stop,
        })
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: TcpListener, arrivals: Arc<Arrivals>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let arrivals = arrivals.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, arrivals.clone()));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    arrivals: Arc<Arrivals>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    match request.into_body().collect().await {
        Ok(body) => arrivals.record_body(&body.to_bytes()),
        Err(_) => arrivals.record_unreadable(),
    }
    Ok(Response::new(Empty::new()))
}
