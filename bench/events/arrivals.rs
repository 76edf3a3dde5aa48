//! What reached a consumer, whichever consumer it is: each arrival is the bench's number of
//! the notification (`bench_n` in its payload) and its push time (`sent_ns`, Unix
//! nanoseconds, also in the payload), stamped with the time it arrived.
//!
//! The webhook receiver ([`crate::receiver`]) and the AMQP consumer
//! ([`crate::broker_consumer`]) both record here (the webhook body and the AMQP message body
//! are the same JSON) and get the same figures from [`Arrivals::summarize`].

use crate::support::format::quantile;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix nanoseconds (what the pusher writes into a payload).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Arrival {
    n: u64,
    latency_us: u32,
}

/// Every arrival, in the order they arrived, plus what could not be read.
#[derive(Default)]
pub struct Arrivals {
    arrived: Mutex<Vec<Arrival>>,
    unreadable: Mutex<u64>,
}

/// One phase's deliveries, for notifications `first..first + expected`.
#[derive(Debug, Clone, Default)]
pub struct DeliverySummary {
    pub expected: u64,
    /// Distinct notifications of the range that arrived.
    pub received: u64,
    pub lost: u64,
    /// Arrivals of a notification that had already arrived.
    pub duplicated: u64,
    /// Arrivals of a notification older than one that had already arrived.
    pub out_of_order: u64,
    /// Deliveries that did not carry a readable `bench_n`/`sent_ns`.
    pub unreadable: u64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    pub max_us: Option<u32>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Arrivals {
    /// Notification `n`, pushed at `sent_ns`, arrived now.
    pub fn record(&self, n: u64, sent_ns: u64) {
        let latency_ns = unix_ns().saturating_sub(sent_ns);
        let latency_us = u32::try_from(latency_ns / 1000).unwrap_or(u32::MAX);
        lock(&self.arrived).push(Arrival { n, latency_us });
    }

    /// A delivered body, `{"seq":..,"epoch":..,"topic":..,"payload":{"bench_n":..,
    /// "sent_ns":..,...}}`, arrived now.
    pub fn record_body(&self, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Delivery {
            payload: Marks,
        }
        #[derive(serde::Deserialize)]
        struct Marks {
            bench_n: u64,
            sent_ns: u64,
        }
        match serde_json::from_slice::<Delivery>(body) {
            Ok(delivery) => self.record(delivery.payload.bench_n, delivery.payload.sent_ns),
            Err(_) => self.record_unreadable(),
        }
    }

    /// A delivery whose body did not say which notification it was.
    pub fn record_unreadable(&self) {
        *lock(&self.unreadable) += 1;
    }

    /// Distinct-or-not arrivals so far of notifications `first..first + count`.
    pub fn count_in(&self, first: u64, count: u64) -> u64 {
        lock(&self.arrived)
            .iter()
            .filter(|a| a.n >= first && a.n < first + count)
            .count() as u64
    }

    /// Completeness, order and latency of notifications `first..first + expected`.
    pub fn summarize(&self, first: u64, expected: u64) -> DeliverySummary {
        let arrived = lock(&self.arrived);
        let mut seen = vec![false; expected as usize];
        let mut newest: Option<u64> = None;
        let mut summary = DeliverySummary {
            expected,
            unreadable: *lock(&self.unreadable),
            ..DeliverySummary::default()
        };
        let mut latencies = Vec::with_capacity(expected as usize);
        for arrival in arrived.iter() {
            let Some(index) = arrival
                .n
                .checked_sub(first)
                .filter(|i| *i < expected)
                .map(|i| i as usize)
            else {
                continue;
            };
            if seen[index] {
                summary.duplicated += 1;
                continue;
            }
            seen[index] = true;
            summary.received += 1;
            latencies.push(arrival.latency_us);
            if newest.is_some_and(|newest| arrival.n < newest) {
                summary.out_of_order += 1;
            }
            newest = newest.max(Some(arrival.n));
        }
        summary.lost = expected - summary.received;
        summary.p50_us = quantile(&mut latencies, 0.50);
        summary.p99_us = quantile(&mut latencies, 0.99);
        summary.max_us = latencies.iter().copied().max();
        summary
    }
}
