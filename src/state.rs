//! What the HTTP handlers and the notification handler share: the connection pool to
//! lightningd, the notification journal and listeners, the routes other plugins registered, the
//! OpenAPI document, and the shutdown signal.

use crate::broker::stats::BrokerStats;
use crate::http::openapi::ApiDocument;
use crate::http::registered_routes::RegisteredRoutes;
use crate::lightningd::rpc::LightningRpc;
use crate::metrics::Metrics;
use crate::stream::journal::Journal;
use crate::stream::listeners::Listeners;
use crate::webhooks::Webhooks;
use std::sync::Arc;
use tokio::sync::watch;

/// Shared state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    rpc: Arc<LightningRpc>,
    journal: Journal,
    listeners: Arc<Listeners>,
    routes: RegisteredRoutes,
    api_document: ApiDocument,
    shutdown: watch::Sender<bool>,
    webhooks: Webhooks,
    metrics: Arc<Metrics>,
    broker: Arc<BrokerStats>,
}

impl AppState {
    pub fn new(rpc: LightningRpc, swagger_root: &str) -> AppState {
        let metrics = Arc::new(Metrics::default());
        rpc.set_observer(metrics.clone());
        AppState {
            inner: Arc::new(Shared {
                rpc: Arc::new(rpc),
                journal: Journal::default(),
                listeners: Arc::new(Listeners::default()),
                routes: RegisteredRoutes::new(swagger_root),
                api_document: ApiDocument::default(),
                shutdown: watch::Sender::new(false),
                webhooks: Webhooks::default(),
                metrics,
                broker: Arc::new(BrokerStats::default()),
            }),
        }
    }

    /// The connection pool to lightningd.
    pub fn rpc(&self) -> &LightningRpc {
        &self.inner.rpc
    }

    /// The pool, shared with background tasks.
    pub fn rpc_handle(&self) -> Arc<LightningRpc> {
        self.inner.rpc.clone()
    }

    /// Connected notification listeners.
    pub fn listeners(&self) -> &Arc<Listeners> {
        &self.inner.listeners
    }

    /// Routes other plugins registered.
    pub fn routes(&self) -> &RegisteredRoutes {
        &self.inner.routes
    }

    /// The OpenAPI document.
    pub fn api_document(&self) -> &ApiDocument {
        &self.inner.api_document
    }

    /// The notification journal.
    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// The webhook endpoints and their delivery tasks.
    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    /// The AMQP publisher's counters (all zero when `clnrest-amqp-url` is not set).
    pub fn broker(&self) -> &Arc<BrokerStats> {
        &self.inner.broker
    }

    /// The series `GET /metrics` reports.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Asks everything to stop (lightningd sent `shutdown`).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] has been called.
    pub async fn shutdown_requested(&self) {
        let mut receiver = self.inner.shutdown.subscribe();
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}
