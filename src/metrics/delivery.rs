//! Delivery meters: what every outbound delivery path (a webhook endpoint, the AMQP
//! publisher of `src/broker/`) reports for the `clnrest_delivery_*` series: its backlog, failures, deliveries
//! and lag.
//!
//! # For a delivery path (the AMQP publisher does this)
//!
//! Register once with [`Publishers::register`] (through
//! `state.metrics().publishers().register("broker", name)`), keep the returned
//! [`DeliveryMeter`] and update it from the delivery task: [`DeliveryMeter::set_backlog`]
//! when events are queued or confirmed, [`DeliveryMeter::record_failure`] per failed
//! attempt, [`DeliveryMeter::record_delivered`] per confirmed event,
//! [`DeliveryMeter::set_in_delivery_since`] when an event starts being delivered (and `None`
//! when nothing is pending), [`DeliveryMeter::set_failing`] for a lasting outage. Every
//! update is an atomic store or add: nothing is locked and nothing allocated. The series
//! disappear when the last `Arc` of the meter is dropped.
//!
//! Webhook endpoints carry a meter of their own (`webhooks::delivery::Endpoint::meter`);
//! their backlog is read from their spool at scrape time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The instant meters measure from (an `Instant` does not fit in an atomic).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// One delivery path's counters and gauges.
#[derive(Debug, Default)]
pub struct DeliveryMeter {
    backlog_events: AtomicU64,
    backlog_bytes: AtomicU64,
    failures: AtomicU64,
    delivered: AtomicU64,
    /// Microseconds after [`origin`] plus one when the event now being delivered started
    /// being delivered; 0 when nothing is.
    in_delivery_since: AtomicU64,
    failing: AtomicBool,
}

/// What a scrape reads of a meter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeliveryReading {
    pub backlog_events: u64,
    pub backlog_bytes: u64,
    pub failures: u64,
    pub delivered: u64,
    /// How long the event now being delivered has been in delivery, retries included.
    pub lag: Duration,
    pub failing: bool,
}

impl DeliveryMeter {
    /// Events (and their bytes) waiting to be delivered, the one in delivery included.
    pub fn set_backlog(&self, events: u64, bytes: u64) {
        self.backlog_events.store(events, Ordering::Relaxed);
        self.backlog_bytes.store(bytes, Ordering::Relaxed);
    }

    /// An attempt failed (it will be retried).
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// `count` events were acknowledged (a 2xx, a publisher confirm of one or several).
    pub fn record_delivered(&self, count: u64) {
        self.delivered.fetch_add(count, Ordering::Relaxed);
    }

    /// The event at the head of the line started being delivered at `since`; `None`: nothing
    /// is pending.
    pub fn set_in_delivery_since(&self, since: Option<Instant>) {
        let micros = since.map_or(0, |since| {
            let after = since.saturating_duration_since(origin()).as_micros();
            u64::try_from(after).unwrap_or(u64::MAX - 1) + 1
        });
        self.in_delivery_since.store(micros, Ordering::Relaxed);
    }

    /// Marks the path as failing (a lasting outage: retry window passed, broker down) or not.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// The values now.
    pub fn read(&self) -> DeliveryReading {
        let since = self.in_delivery_since.load(Ordering::Relaxed);
        let lag = match since {
            0 => Duration::ZERO,
            micros => origin()
                .elapsed()
                .saturating_sub(Duration::from_micros(micros - 1)),
        };
        DeliveryReading {
            backlog_events: self.backlog_events.load(Ordering::Relaxed),
            backlog_bytes: self.backlog_bytes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            lag,
            failing: self.failing.load(Ordering::Relaxed),
        }
    }
}

struct Registered {
    sink: &'static str,
    target: String,
    meter: Weak<DeliveryMeter>,
}

/// Delivery paths other than webhooks (the broker), registered at run time.
#[derive(Default)]
pub struct Publishers {
    registered: Mutex<Vec<Registered>>,
}

impl Publishers {
    /// A meter for the `sink` (`"broker"`) delivering to `target` (e.g. the exchange), in
    /// the `clnrest_delivery_*` series as `{sink, target}` until the meter is dropped.
    pub fn register(&self, sink: &'static str, target: impl Into<String>) -> Arc<DeliveryMeter> {
        let meter = Arc::new(DeliveryMeter::default());
        let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        registered.retain(|r| r.meter.strong_count() > 0);
        registered.push(Registered {
            sink,
            target: target.into(),
            meter: Arc::downgrade(&meter),
        });
        meter
    }

    /// `(sink, target, reading)` of every meter still alive.
    pub fn read(&self) -> Vec<(&'static str, String, DeliveryReading)> {
        let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        registered.retain(|r| r.meter.strong_count() > 0);
        registered
            .iter()
            .filter_map(|r| Some((r.sink, r.target.clone(), r.meter.upgrade()?.read())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_reads_what_was_recorded_and_goes_when_dropped() {
        let publishers = Publishers::default();
        let meter = publishers.register("broker", "clnrest");
        meter.set_backlog(3, 300);
        meter.record_failure();
        meter.record_failure();
        meter.record_delivered(1);
        meter.set_in_delivery_since(Some(Instant::now()));
        std::thread::sleep(Duration::from_millis(30));
        let readings = publishers.read();
        assert_eq!(readings.len(), 1);
        let (sink, target, reading) = &readings[0];
        assert_eq!((*sink, target.as_str()), ("broker", "clnrest"));
        assert_eq!((reading.backlog_events, reading.backlog_bytes), (3, 300));
        assert_eq!((reading.failures, reading.delivered), (2, 1));
        assert!(reading.lag >= Duration::from_millis(30) && reading.lag < Duration::from_secs(60));
        meter.set_in_delivery_since(None);
        assert_eq!(meter.read().lag, Duration::ZERO);
        drop(meter);
        assert!(publishers.read().is_empty());
    }
}
