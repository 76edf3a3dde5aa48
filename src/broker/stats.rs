//! The broker publisher's counters, for monitoring (`src/metrics/` reads them): plain atomics
//! the publisher task writes and anyone reads, without locks.
//!
//! Read them with [`BrokerStats::snapshot`]: `AppState::broker()` holds the one instance;
//! every field stays zero (and `enabled` false) when `clnrest-amqp-url` is not set.

use crate::stream::journal::Journal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Written by the publisher only.
#[derive(Debug, Default)]
pub struct BrokerStats {
    enabled: AtomicBool,
    connected: AtomicBool,
    published: AtomicU64,
    confirmed: AtomicU64,
    confirmed_seq: AtomicU64,
    in_flight: AtomicU64,
    failures: AtomicU64,
    lost: AtomicU64,
    last_confirm_micros: AtomicU64,
}

/// The counters at one moment. Counters only grow for the life of the plugin process;
/// gauges say what is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerSnapshot {
    /// `clnrest-amqp-url` is set and the publisher runs.
    pub enabled: bool,
    /// Gauge: a connection and its publishing channel are open.
    pub connected: bool,
    /// Counter: messages sent to the broker, re-sends after a reconnection included.
    pub published: u64,
    /// Counter: messages the broker confirmed (publisher confirms).
    pub confirmed: u64,
    /// Gauge: the journal sequence number up to which everything is confirmed (or lost to
    /// the journal's retention, see `lost`): where publishing resumes after a reconnection.
    pub confirmed_seq: u64,
    /// Gauge: notifications in the journal not confirmed yet (published or not): the
    /// delivery lag, in notifications.
    pub backlog: u64,
    /// Gauge: messages published and awaiting their confirm.
    pub in_flight: u64,
    /// Counter: failed connection attempts, lost connections, and negative confirms.
    pub failures: u64,
    /// Counter: notifications never published because the journal dropped them (the broker
    /// was away for more than the journal retains).
    pub lost: u64,
    /// Gauge: how long the broker took to confirm the last confirmed message after it was
    /// published (zero before the first).
    pub last_confirm_latency: Duration,
}

impl BrokerStats {
    /// The counters now; `journal` gives the backlog's upper end.
    pub fn snapshot(&self, journal: &Journal) -> BrokerSnapshot {
        let confirmed_seq = self.confirmed_seq.load(Ordering::Relaxed);
        let enabled = self.enabled.load(Ordering::Relaxed);
        BrokerSnapshot {
            enabled,
            connected: self.connected.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            confirmed_seq,
            backlog: if enabled {
                journal.last_seq().saturating_sub(confirmed_seq)
            } else {
                0
            },
            in_flight: self.in_flight.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            last_confirm_latency: Duration::from_micros(
                self.last_confirm_micros.load(Ordering::Relaxed),
            ),
        }
    }

    pub(crate) fn set_enabled(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub(crate) fn published(&self, in_flight: usize) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.set_in_flight(in_flight);
    }

    pub(crate) fn confirmed(&self, count: u64, confirmed_seq: u64, latency: Duration) {
        self.confirmed.fetch_add(count, Ordering::Relaxed);
        self.confirmed_seq.store(confirmed_seq, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.last_confirm_micros.store(micros, Ordering::Relaxed);
    }

    /// Everything up to `seq` is settled without a confirm (lost to the journal).
    pub(crate) fn skipped_to(&self, seq: u64, lost: u64) {
        self.lost.fetch_add(lost, Ordering::Relaxed);
        self.confirmed_seq.fetch_max(seq, Ordering::Relaxed);
    }

    pub(crate) fn set_in_flight(&self, in_flight: usize) {
        let in_flight = u64::try_from(in_flight).unwrap_or(u64::MAX);
        self.in_flight.store(in_flight, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_backlog_is_what_the_journal_holds_beyond_the_confirmed_position() {
        let journal = Journal::default();
        let stats = BrokerStats::default();
        for _ in 0..5 {
            journal.append("t", &json!({})).unwrap();
        }
        assert_eq!(stats.snapshot(&journal), BrokerSnapshot::default());
        stats.set_enabled();
        assert_eq!(stats.snapshot(&journal).backlog, 5);
        stats.published(1);
        stats.published(2);
        stats.confirmed(2, 2, Duration::from_micros(1500));
        stats.set_in_flight(0);
        let snapshot = stats.snapshot(&journal);
        assert_eq!(
            (snapshot.published, snapshot.confirmed, snapshot.backlog),
            (2, 2, 3)
        );
        assert_eq!(snapshot.last_confirm_latency, Duration::from_micros(1500));
        stats.skipped_to(5, 3);
        let snapshot = stats.snapshot(&journal);
        assert_eq!((snapshot.backlog, snapshot.lost), (0, 3));
    }
}
