//! Delivery to one endpoint: one task ([`run`]) reads the journal by position and spools the
//! events the endpoint wants, and sends the oldest pending one, one at a time, until the
//! endpoint acknowledges it, then the next.
//!
//! A 2xx acknowledges; any other status, a connection error or the timeout is a failure,
//! retried after an exponential backoff with jitter while later events wait behind it. An
//! event that still fails after the retry window makes the endpoint *failing* (in
//! `clnrest-webhook-list` and the log); it keeps being retried at the longest delay, the
//! backlog bounded in bytes, and the first success clears the mark.

use super::client::{DeliveryClient, EndpointClient, Target};
use super::signature;
use super::store::{EndpointConfig, Event, Spool};
use super::Settings;
use crate::state::AppState;
use crate::stream::journal::{Next, Sequenced, Subscription};
use bytes::Bytes;
use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use ring::hmac;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// One endpoint at run time, shared by its task and the RPC methods.
pub struct Endpoint {
    pub config: EndpointConfig,
    /// The URL, parsed once; why it cannot be called if it cannot.
    target: Result<Target, String>,
    key: hmac::Key,
    spool: Mutex<Spool>,
    status: Mutex<Status>,
    /// What `GET /metrics` reports: failed attempts, deliveries, how long the event being
    /// delivered has been in delivery.
    pub(crate) meter: crate::metrics::delivery::DeliveryMeter,
}

/// What `clnrest-webhook-list` shows of an endpoint's deliveries.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// Failed past the retry window, and not delivered since.
    pub failing: bool,
    /// Failed attempts at the oldest pending event.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The last event acknowledged.
    pub last_acked: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Endpoint {
    /// `None` if the stored secret is not a `whsec_` secret.
    pub fn new(config: EndpointConfig, spool: Spool) -> Option<Endpoint> {
        let key = signature::key_of(&config.secret)?;
        let target = Target::parse(&config.url).map_err(|e| e.to_string());
        Some(Endpoint {
            config,
            target,
            key,
            spool: Mutex::new(spool),
            status: Mutex::new(Status::default()),
            meter: Default::default(),
        })
    }

    fn wants(&self, topic: &str) -> bool {
        self.config
            .topics
            .as_ref()
            .is_none_or(|topics| topics.iter().any(|t| t == topic))
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// (pending events, their bytes, events dropped to bound the backlog)
    pub fn backlog(&self) -> (usize, usize, u64) {
        let spool = lock(&self.spool);
        (spool.len(), spool.pending_bytes(), spool.dropped())
    }

    /// Deletes the pending file (the endpoint was removed; its tasks are stopped).
    pub fn remove_file(&self) {
        lock(&self.spool).remove_file();
    }

    fn spool(&self, event: Event) {
        let dropped = lock(&self.spool).push(event);
        if dropped > 0 {
            tracing::warn!(
                "webhook {}: backlog over its bound: dropped the {dropped} oldest pending \
                 event(s) after the one being retried",
                self.config.id
            );
        }
    }
}

/// An event's delivery in progress: it gives the client back once the event is
/// acknowledged.
type Delivery = Pin<Box<dyn Future<Output = EndpointClient> + Send>>;

/// Delivers to `endpoint` until its task is aborted (`clnrest-webhook-remove`) or the process
/// exits: one loop that spools every notification the endpoint wants as it comes
/// ([`spool_next`]) and sends the oldest pending event, one at a time, until it is
/// acknowledged, then the next ([`deliver`]).
///
/// Both in one `select!` rather than two futures woken through a `Notify`: a notification
/// spooled for an idle endpoint starts its delivery in the same poll, with no wake-up of
/// the task by itself (which has tokio wake the other worker thread). Acknowledgements are
/// recorded in the pending file at most every [`super::store::ACK_RECORD_INTERVAL`]: the
/// last one of a burst once that has passed with nothing to send.
pub async fn run(
    endpoint: Arc<Endpoint>,
    state: AppState,
    mut subscription: Subscription,
    client: DeliveryClient,
    settings: Settings,
) {
    let epoch = state.journal().epoch().to_string();
    if let Some(gap) = subscription.take_gap() {
        tracing::warn!(
            "webhook {}: notifications before {} are no longer in the journal",
            endpoint.config.id,
            gap.oldest
        );
    }
    let mut client = Some(EndpointClient::new(client));
    let mut delivery: Option<Delivery> = None;
    let mut journal_open = true;
    let record = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(record);
    loop {
        let mut ack_due = None;
        if delivery.is_none() {
            let (next, due) = {
                let spool = lock(&endpoint.spool);
                (spool.front().cloned(), spool.ack_due())
            };
            match (next, client.take()) {
                (Some(event), Some(idle)) => {
                    delivery = Some(Box::pin(deliver(
                        endpoint.clone(),
                        idle,
                        settings.clone(),
                        event,
                    )));
                }
                (_, idle) => {
                    client = idle;
                    endpoint.meter.set_in_delivery_since(None);
                    ack_due = due.map(tokio::time::Instant::from_std);
                }
            }
        }
        if let Some(due) = ack_due {
            if record.deadline() != due {
                record.as_mut().reset(due);
            }
        }
        let delivering = async {
            match delivery.as_mut() {
                Some(delivery) => delivery.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            idle = delivering => {
                client = Some(idle);
                delivery = None;
            }
            () = &mut record, if ack_due.is_some() => lock(&endpoint.spool).record_ack(),
            next = subscription.next(), if journal_open => {
                journal_open = spool_next(&endpoint, &epoch, &mut subscription, next);
            }
        }
    }
}

/// Spools what the subscription gave, if the endpoint wants it. The spool never waits on
/// the endpoint, so this keeps up with the journal; should it fall out of it anyway, it
/// resumes from the oldest retained notification and logs the gap. `false` once the journal
/// is closed (the plugin is stopping).
fn spool_next(
    endpoint: &Endpoint,
    epoch: &str,
    subscription: &mut Subscription,
    next: Next,
) -> bool {
    match next {
        Next::Notification(notification) => {
            if !endpoint.wants(notification.topic()) {
                return true;
            }
            match serde_json::to_vec(&Sequenced::new(&notification, epoch)) {
                Ok(body) => endpoint.spool(Event {
                    id: format!("{epoch}-{}", notification.seq),
                    body: Bytes::from(body),
                }),
                Err(e) => tracing::warn!(
                    "webhook {}: cannot encode notification {}: {e}",
                    endpoint.config.id,
                    notification.seq
                ),
            }
            true
        }
        Next::Lagged => {
            let lost = subscription.skip_lost();
            if !lost.is_empty() {
                tracing::warn!(
                    "webhook {}: fell behind the journal: notifications {}..{} are lost to it",
                    endpoint.config.id,
                    lost.start(),
                    lost.end() + 1
                );
            }
            true
        }
        Next::Closed => false,
    }
}

/// Delivers `event` until it is acknowledged, takes it off the spool, and gives the client
/// back.
async fn deliver(
    endpoint: Arc<Endpoint>,
    mut client: EndpointClient,
    settings: Settings,
    event: Event,
) -> EndpointClient {
    endpoint.meter.set_in_delivery_since(Some(Instant::now()));
    deliver_until_acknowledged(&endpoint, &mut client, &settings, &event).await;
    lock(&endpoint.spool).ack(&event.id);
    client
}

async fn deliver_until_acknowledged(
    endpoint: &Endpoint,
    client: &mut EndpointClient,
    settings: &Settings,
    event: &Event,
) {
    let id = &endpoint.config.id;
    let first_failure = Instant::now();
    let mut failures: u32 = 0;
    loop {
        match attempt(endpoint, client, settings, event).await {
            Ok(()) => {
                endpoint.meter.record_delivered(1);
                let mut status = lock(&endpoint.status);
                if status.failing {
                    tracing::info!("webhook {id}: delivering again");
                }
                status.failing = false;
                status.attempts = 0;
                status.last_acked = Some(event.id.clone());
                return;
            }
            Err(reason) => {
                endpoint.meter.record_failure();
                failures = failures.saturating_add(1);
                let delay = backoff(settings.backoff, failures);
                {
                    let mut status = lock(&endpoint.status);
                    status.attempts = failures;
                    if failures == 1 {
                        tracing::info!(
                            "webhook {id}: delivery of {} failed ({reason}); retrying with backoff",
                            event.id
                        );
                    } else {
                        tracing::debug!(
                        "webhook {id}: attempt {failures} at {} failed ({reason}); next in {delay:?}",
                        event.id
                    );
                    }
                    if !status.failing && first_failure.elapsed() >= settings.retry_window {
                        status.failing = true;
                        tracing::warn!(
                            "webhook {id}: marked failing: {} not delivered for {:?} ({failures} \
                         attempts, last: {reason}); still retrying every {:?}, later events \
                         wait",
                            event.id,
                            settings.retry_window,
                            settings.max_delay(),
                        );
                    }
                    status.last_error = Some(reason);
                }
                tokio::time::sleep(delay.min(settings.max_delay())).await;
            }
        }
    }
}

/// One signed POST; `Err` says why it did not count as acknowledged.
async fn attempt(
    endpoint: &Endpoint,
    client: &mut EndpointClient,
    settings: &Settings,
    event: &Event,
) -> Result<(), String> {
    let target = endpoint.target.as_ref().map_err(Clone::clone)?;
    let timestamp = HeaderValue::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    );
    let signature = signature::sign(&endpoint.key, &event.id, timestamp.as_bytes(), &event.body);
    let id = HeaderValue::from_str(&event.id).map_err(|e| format!("webhook-id: {e}"))?;
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(WEBHOOK_ID, id);
    headers.insert(WEBHOOK_TIMESTAMP, timestamp);
    headers.insert(WEBHOOK_SIGNATURE, signature);
    let exchange = client.post(target, headers, &event.body);
    match tokio::time::timeout(settings.timeout, exchange).await {
        Ok(Ok(status)) if status.is_success() => Ok(()),
        Ok(Ok(status)) => Err(format!("HTTP {}", status.as_u16())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", settings.timeout)),
    }
}

/// The wait after the `failures`-th failure: `base` doubled each time, at most
/// [`MAX_DELAY`], then between half of that and all of it ("equal jitter").
pub fn backoff(base: Duration, failures: u32) -> Duration {
    let doubled = base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let delay = doubled.min(MAX_DELAY);
    let random = u32::from_le_bytes(signature::random_bytes::<4>());
    let fraction = 0.5 + 0.5 * (f64::from(random) / f64::from(u32::MAX));
    delay.mul_f64(fraction).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let base = Duration::from_secs(5);
        for failures in 1..=6 {
            let full = base * (1 << (failures - 1));
            let delay = backoff(base, failures);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
        for failures in [20, 40, u32::MAX] {
            let delay = backoff(base, failures);
            assert!(delay >= MAX_DELAY / 2 && delay <= MAX_DELAY);
        }
    }
}
