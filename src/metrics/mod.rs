//! Metrics for monitoring: what is recorded while the plugin serves, and `GET /metrics`,
//! which answers them in the Prometheus text format (docs/operations.md lists every series).
//!
//! - [`Metrics`] (in `AppState`): the series recorded as things happen — requests by route
//!   kind, method and status, their latency, requests in flight, lightningd calls and their
//!   latency. Recording is an atomic add or one of `prometheus-client`'s counters and
//!   histograms: no allocation once a label set has been seen, no lock held across an
//!   `await`.
//! - [`labels`]: bounded label values (route kinds; methods lightningd knows, else `other`).
//! - [`request_layer`]: the tower layer that records every HTTP request.
//! - [`delivery`]: meters for outbound deliveries (webhooks, and the place a message-broker
//!   publisher registers its own).
//! - [`process`]: RSS and open files, read from `/proc/self` at scrape time.
//! - [`exposition`]: a scrape: the recorded series plus what is read at that moment
//!   (connections, listeners, journal, deliveries, process), encoded by `prometheus-client`.
//! - [`route`]: `GET /metrics` and its rune check (`listclnrest-metrics`).

pub mod delivery;
pub mod exposition;
pub mod labels;
pub mod process;
pub mod request_layer;
pub mod route;

use crate::http::connection_limit::ConnectionSlots;
use crate::lightningd::rpc::{CallObserver, CallOutcome};
use delivery::Publishers;
use labels::{
    CallErrorLabels, CallLabels, KnownMethods, MethodLabel, RequestLabels, RouteKind, RouteLabels,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The series recorded as requests and calls happen; in `AppState`.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    in_flight: Gauge,
    call_duration: HistogramFamily<CallLabels>,
    call_errors: Family<CallErrorLabels, Counter>,
    methods: KnownMethods,
    connections: OnceLock<ConnectionSlots>,
    publishers: Publishers,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            call_duration: Family::new_with_constructor(latency_histogram),
            call_errors: Family::default(),
            methods: KnownMethods::default(),
            connections: OnceLock::new(),
            publishers: Publishers::default(),
        }
    }
}

impl Metrics {
    /// The `method` label for a lightningd method name.
    pub fn method_label(&self, name: &str) -> MethodLabel {
        self.methods.label(name)
    }

    /// A request started.
    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    /// A request was answered with `status` (499: the client went away first) after
    /// `elapsed`.
    pub fn request_finished(
        &self,
        kind: RouteKind,
        method: MethodLabel,
        status: u16,
        elapsed: Duration,
    ) {
        self.in_flight.dec();
        let route = RouteLabels { kind, method };
        self.request_duration
            .get_or_create(&route)
            .observe(elapsed.as_secs_f64());
        let RouteLabels { kind, method } = route;
        self.requests
            .get_or_create(&RequestLabels {
                kind,
                method,
                status,
            })
            .inc();
    }

    /// Lets scrapes count the open connections (set once, by `main`).
    pub fn watch_connections(&self, slots: ConnectionSlots) {
        let _ = self.connections.set(slots);
    }

    /// Delivery paths other than webhooks register their meters here (the broker).
    pub fn publishers(&self) -> &Publishers {
        &self.publishers
    }
}

impl CallObserver for Metrics {
    fn call_finished(&self, method: &str, elapsed: Duration, outcome: CallOutcome) {
        let method = self.methods.label(method);
        let error = match outcome {
            CallOutcome::Ok => None,
            CallOutcome::LightningdError => Some("lightningd"),
            CallOutcome::Unreachable => Some("unreachable"),
        };
        if let Some(error) = error {
            self.call_errors
                .get_or_create(&CallErrorLabels {
                    method: method.clone(),
                    error,
                })
                .inc();
        }
        self.call_duration
            .get_or_create(&CallLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    fn commands_known(&self, usage: &[String]) {
        self.methods.replace(usage);
    }
}
