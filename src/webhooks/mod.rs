//! Signed webhooks: the node calls its users' HTTP endpoints with every notification they
//! asked for, the way the Standard Webhooks specification says (docs/webhooks.md).
//!
//! - [`methods`]: `clnrest-webhook-add`, `-list`, `-remove` (refused through REST).
//! - [`store`]: definitions in lightningd's datastore, pending deliveries in a file per
//!   endpoint under `<lightning-dir>/clnrest-webhooks/`.
//! - [`delivery`]: per endpoint, one task reading the journal by position and sending,
//!   in order, one at a time, with retries.
//! - [`client`]: the HTTP client (hyper, rustls with `crate::tls::client`'s configuration).
//! - [`signature`]: `whsec_` secrets and `v1,` HMAC-SHA256 signatures.

pub(crate) mod client;
pub(crate) mod delivery;
pub mod methods;
pub(crate) mod signature;
pub(crate) mod store;

use crate::state::AppState;
use crate::stream::journal::{Position, Subscription};
use client::DeliveryClient;
use delivery::Endpoint;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use store::{EndpointConfig, Spool};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How long an event is retried before its endpoint is marked failing.
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The first retry's delay (then doubled each time, up to [`delivery::MAX_DELAY`]).
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// How long an attempt may take, answer included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of pending bodies kept per endpoint.
pub const MAX_BACKLOG_BYTES: usize = 16 * 1024 * 1024;

/// Delivery timings and bounds. The environment variables below are for tests only (they
/// shorten what takes seconds to hours); operators have no reason to set them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `CLNREST_WEBHOOK_BACKOFF_MS`.
    pub backoff: Duration,
    /// `CLNREST_WEBHOOK_RETRY_WINDOW_MS`.
    pub retry_window: Duration,
    /// `CLNREST_WEBHOOK_TIMEOUT_MS`.
    pub timeout: Duration,
    /// `CLNREST_WEBHOOK_BACKLOG_BYTES`.
    pub max_backlog_bytes: usize,
}

impl Settings {
    pub fn from_env() -> Settings {
        fn number(name: &str) -> Option<u64> {
            std::env::var(name).ok()?.trim().parse().ok()
        }
        let millis = |name, default: Duration| {
            number(name).map_or(default, |ms| Duration::from_millis(ms.max(1)))
        };
        Settings {
            backoff: millis("CLNREST_WEBHOOK_BACKOFF_MS", FIRST_RETRY),
            retry_window: millis("CLNREST_WEBHOOK_RETRY_WINDOW_MS", RETRY_WINDOW),
            timeout: millis("CLNREST_WEBHOOK_TIMEOUT_MS", TIMEOUT),
            max_backlog_bytes: number("CLNREST_WEBHOOK_BACKLOG_BYTES")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(MAX_BACKLOG_BYTES),
        }
    }

    /// The longest wait between attempts.
    pub fn max_delay(&self) -> Duration {
        delivery::MAX_DELAY
    }
}

/// The endpoints and their tasks; in [`AppState`].
pub struct Webhooks {
    running: Mutex<BTreeMap<String, Running>>,
    /// Set once by [`start`].
    context: OnceLock<Context>,
    /// `true` once the stored endpoints are loaded (the methods wait for it).
    loaded: watch::Sender<bool>,
}

struct Context {
    /// `<lightning-dir>/clnrest-webhooks`.
    dir: PathBuf,
    /// Built when the first endpoint starts: a node without webhooks never holds an HTTP
    /// client and its parsed TLS roots.
    client: OnceLock<DeliveryClient>,
    settings: Settings,
}

struct Running {
    endpoint: Arc<Endpoint>,
    tasks: AbortHandle,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            running: Mutex::new(BTreeMap::new()),
            context: OnceLock::new(),
            loaded: watch::Sender::new(false),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Loads the stored endpoints and starts delivering to them. Called once, after `init`.
///
/// Their journal subscriptions start at the first notification of this process, so none
/// that arrived while they were loading is missed; what was pending when the plugin last
/// stopped goes first.
pub async fn start(state: AppState, lightning_dir: PathBuf) {
    let settings = Settings::from_env();
    let context = Context {
        dir: lightning_dir.join(store::PENDING_DIR),
        client: OnceLock::new(),
        settings,
    };
    if let Err(e) = std::fs::create_dir_all(&context.dir) {
        tracing::warn!("cannot create {}: {e}", context.dir.display());
    }
    let webhooks = state.webhooks();
    if webhooks.context.set(context).is_err() {
        return;
    }
    let mut delay = Duration::from_millis(200);
    let stored = loop {
        match store::load(state.rpc()).await {
            Ok(stored) => break stored,
            Err(e) => {
                tracing::warn!("cannot load webhooks from the datastore: {e}; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let epoch = state.journal().epoch().to_string();
    for config in stored {
        let from_start = state.journal().subscribe(Position::in_epoch(&epoch, 0));
        let id = config.id.clone();
        if let Err(e) = webhooks.launch(&state, config, from_start) {
            tracing::warn!("webhook {id} not started: {e}");
        }
    }
    let count = lock(&webhooks.running).len();
    if count > 0 {
        tracing::info!("delivering to {count} webhook(s)");
    }
    webhooks.loaded.send_replace(true);
}

impl Webhooks {
    /// Waits (up to 10 s) for [`start`] to have loaded the stored endpoints.
    async fn ready(&self) -> anyhow::Result<&Context> {
        let mut loaded = self.loaded.subscribe();
        tokio::time::timeout(Duration::from_secs(10), loaded.wait_for(|l| *l))
            .await
            .map_err(|_| anyhow::anyhow!("webhooks are not loaded yet"))?
            .map_err(|_| anyhow::anyhow!("webhooks are not available"))?;
        self.context
            .get()
            .ok_or_else(|| anyhow::anyhow!("webhooks are not available"))
    }

    /// Opens the endpoint's pending file and spawns its tasks.
    fn launch(
        &self,
        state: &AppState,
        config: EndpointConfig,
        subscription: Subscription,
    ) -> anyhow::Result<()> {
        let context = self
            .context
            .get()
            .ok_or_else(|| anyhow::anyhow!("webhooks are not started"))?;
        let spool = Spool::open(
            Spool::path(&context.dir, &config.id),
            context.settings.max_backlog_bytes,
        );
        let pending = spool.len();
        let id = config.id.clone();
        let endpoint = Arc::new(
            Endpoint::new(config, spool)
                .ok_or_else(|| anyhow::anyhow!("its stored secret is not a whsec_ secret"))?,
        );
        if pending > 0 {
            tracing::info!("webhook {id}: resuming {pending} pending delivery(ies)");
        }
        let client = match context.client.get() {
            Some(client) => client.clone(),
            None => {
                let client = DeliveryClient::new(context.settings.timeout)
                    .map_err(|e| anyhow::anyhow!("cannot set up the HTTP client: {e}"))?;
                context.client.get_or_init(|| client).clone()
            }
        };
        let tasks = tokio::spawn(delivery::run(
            endpoint.clone(),
            state.clone(),
            subscription,
            client,
            context.settings.clone(),
        ))
        .abort_handle();
        if let Some(old) = lock(&self.running).insert(id, Running { endpoint, tasks }) {
            old.tasks.abort();
        }
        Ok(())
    }

    /// Stores and starts a new endpoint; it gets notifications from now on.
    pub async fn add(&self, state: &AppState, config: EndpointConfig) -> anyhow::Result<()> {
        self.ready().await?;
        store::save(state.rpc(), &config).await?;
        let subscription = state.journal().subscribe(None);
        self.launch(state, config, subscription)
    }

    /// Stops an endpoint, forgets its pending deliveries and deletes it from the datastore;
    /// `false` if there is no such endpoint.
    pub async fn remove(&self, state: &AppState, id: &str) -> anyhow::Result<bool> {
        self.ready().await?;
        let Some(running) = lock(&self.running).remove(id) else {
            return Ok(false);
        };
        running.tasks.abort();
        running.endpoint.remove_file();
        store::delete(state.rpc(), id).await?;
        Ok(true)
    }

    /// The endpoints running now, without waiting for the stored ones to load (for the
    /// metrics).
    pub(crate) fn running(&self) -> Vec<Arc<Endpoint>> {
        lock(&self.running)
            .values()
            .map(|r| r.endpoint.clone())
            .collect()
    }

    /// Every endpoint, by id.
    pub async fn endpoints(&self) -> anyhow::Result<Vec<Arc<Endpoint>>> {
        self.ready().await?;
        Ok(lock(&self.running)
            .values()
            .map(|r| r.endpoint.clone())
            .collect())
    }
}
