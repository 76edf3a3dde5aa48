//! One scrape: the series [`Metrics`](super::Metrics) recorded, plus what is read at this
//! moment (open connections, notification listeners, the journal, deliveries, the process),
//! encoded in the Prometheus text format (version 0.0.4) by `prometheus-client`.
//!
//! The registry is built for each scrape: the recorded families are shared handles (an
//! `Arc` each), the values read now are fresh gauges. Names and labels are listed in
//! docs/operations.md; a name changed here must change there.

use crate::metrics::delivery::DeliveryReading;
use crate::metrics::process;
use crate::state::AppState;
use crate::stream::listeners::Transport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    /// `webhook` or `broker`.
    sink: &'static str,
    /// The webhook's id, the broker's target.
    target: String,
}

/// Per-delivery-path families, filled from readings.
#[derive(Default)]
struct DeliverySeries {
    backlog_events: Family<DeliveryLabels, Gauge>,
    backlog_bytes: Family<DeliveryLabels, Gauge>,
    lag: Family<DeliveryLabels, Gauge<f64, AtomicU64>>,
    failing: Family<DeliveryLabels, Gauge>,
    failures: Family<DeliveryLabels, Counter>,
    delivered: Family<DeliveryLabels, Counter>,
    dropped: Family<DeliveryLabels, Counter>,
}

impl DeliverySeries {
    fn add(&self, labels: DeliveryLabels, reading: &DeliveryReading, dropped: Option<u64>) {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.backlog_events
            .get_or_create(&labels)
            .set(count(reading.backlog_events));
        self.backlog_bytes
            .get_or_create(&labels)
            .set(count(reading.backlog_bytes));
        self.lag
            .get_or_create(&labels)
            .set(reading.lag.as_secs_f64());
        self.failing
            .get_or_create(&labels)
            .set(i64::from(reading.failing));
        self.failures
            .get_or_create(&labels)
            .inc_by(reading.failures);
        self.delivered
            .get_or_create(&labels)
            .inc_by(reading.delivered);
        if let Some(dropped) = dropped {
            self.dropped.get_or_create(&labels).inc_by(dropped);
        }
    }

    fn register(self, registry: &mut Registry) {
        registry.register(
            "clnrest_delivery_backlog_events",
            "Events waiting to be delivered (the one in delivery included), by sink and target",
            self.backlog_events,
        );
        registry.register(
            "clnrest_delivery_backlog_bytes",
            "Bytes of the events waiting to be delivered, by sink and target",
            self.backlog_bytes,
        );
        registry.register(
            "clnrest_delivery_lag_seconds",
            "How long the event now being delivered has been in delivery, retries included \
             (0 when nothing is pending)",
            self.lag,
        );
        registry.register(
            "clnrest_delivery_failing",
            "1 while the target is failing (a webhook past its retry window without a \
             delivery, the broker unreachable)",
            self.failing,
        );
        registry.register(
            "clnrest_delivery_failures",
            "Failed delivery attempts (each is retried)",
            self.failures,
        );
        registry.register(
            "clnrest_delivery_delivered",
            "Events delivered and acknowledged",
            self.delivered,
        );
        registry.register(
            "clnrest_delivery_dropped",
            "Pending events dropped to keep the backlog within its bound in bytes",
            self.dropped,
        );
    }
}

fn gauge(value: impl TryInto<i64>) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value.try_into().unwrap_or(i64::MAX));
    gauge
}

/// The whole scrape, as text.
pub fn render(state: &AppState) -> String {
    let metrics = state.metrics();
    let mut registry = Registry::default();

    registry.register(
        "clnrest_http_requests",
        "HTTP requests answered, by route kind, lightningd method (other: one lightningd does \
         not list) and status (499: the client left first)",
        metrics.requests.clone(),
    );
    registry.register(
        "clnrest_http_request_duration_seconds",
        "Time from a request's arrival to its response head, by route kind and method",
        metrics.request_duration.clone(),
    );
    registry.register(
        "clnrest_http_requests_in_flight",
        "HTTP requests being handled now",
        metrics.in_flight.clone(),
    );
    if let Some(slots) = metrics.connections.get() {
        registry.register(
            "clnrest_http_connections_open",
            "Client connections open now (TLS handshakes included)",
            gauge(slots.open()),
        );
        registry.register(
            "clnrest_http_connections_max",
            "The most client connections served at once (clnrest-max-connections)",
            gauge(slots.max()),
        );
    }
    registry.register(
        "clnrest_lightningd_call_duration_seconds",
        "Time from sending a call to lightningd's answer, by method (checkrune included)",
        metrics.call_duration.clone(),
    );
    registry.register(
        "clnrest_lightningd_call_errors",
        "Calls to lightningd that failed, by method and error (lightningd: it answered with \
         an error; unreachable: no answer)",
        metrics.call_errors.clone(),
    );

    let listeners = Family::<TransportLabels, Gauge>::default();
    for (transport, name) in [(Transport::SocketIo, "socketio"), (Transport::Sse, "sse")] {
        listeners
            .get_or_create(&TransportLabels { transport: name })
            .set(i64::try_from(state.listeners().count(transport)).unwrap_or(i64::MAX));
    }
    registry.register(
        "clnrest_notification_listeners",
        "Notification listeners connected now, by transport",
        listeners,
    );

    let journal = state.journal();
    let retained = journal.retained();
    registry.register(
        "clnrest_journal_last_sequence",
        "The last notification sequence number of this plugin process (0: none yet)",
        gauge(journal.last_seq()),
    );
    registry.register(
        "clnrest_journal_retained_notifications",
        "Notifications the journal retains for resuming listeners",
        gauge(retained.count),
    );
    registry.register(
        "clnrest_journal_retained_bytes",
        "Bytes of the notifications the journal retains",
        gauge(retained.bytes),
    );

    let deliveries = DeliverySeries::default();
    for endpoint in state.webhooks().running() {
        let (events, bytes, dropped) = endpoint.backlog();
        endpoint.meter.set_backlog(events as u64, bytes as u64);
        endpoint.meter.set_failing(endpoint.status().failing);
        let labels = DeliveryLabels {
            sink: "webhook",
            target: endpoint.config.id.clone(),
        };
        deliveries.add(labels, &endpoint.meter.read(), Some(dropped));
    }
    for (sink, target, reading) in metrics.publishers().read() {
        deliveries.add(DeliveryLabels { sink, target }, &reading, None);
    }
    deliveries.register(&mut registry);

    let process = process::read();
    if let Some(bytes) = process.resident_bytes {
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            gauge(bytes),
        );
    }
    if let Some(fds) = process.open_fds {
        registry.register(
            "process_open_fds",
            "Number of open file descriptors",
            gauge(fds),
        );
    }
    if let Some(fds) = process.max_fds {
        registry.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            gauge(fds),
        );
    }

    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        // Writing to a String cannot fail; an encoder error would be a bug of ours.
        tracing::warn!("encoding the metrics failed: {e}");
    }
    text
}
