//! What the clients and the pusher share, and what each client records.

use crate::support::format::quantile;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

pub const WARMUP: usize = 0;
pub const STEADY: usize = 1;
pub const BURST: usize = 2;
pub const PHASES: usize = 3;

/// What the clients and the pusher share.
pub struct Shared {
    pub epoch: Instant,
    pub connected: AtomicUsize,
    pub connect_failed: AtomicUsize,
    /// Clients that lost their connection after connecting, before the end.
    pub dropped: AtomicUsize,
    /// Notifications received per phase, all clients together (duplicates included).
    pub received: [AtomicU64; PHASES],
    /// Clients that received every notification of the phase (the warm-up: at least one).
    pub complete: [AtomicUsize; PHASES],
}

impl Shared {
    /// Nothing connected or received yet; times count from now.
    pub fn new() -> Shared {
        Shared {
            epoch: Instant::now(),
            connected: AtomicUsize::new(0),
            connect_failed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            received: Default::default(),
            complete: Default::default(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn live(&self) -> usize {
        self.connected
            .load(Ordering::SeqCst)
            .saturating_sub(self.dropped.load(Ordering::SeqCst))
    }
}

/// One client's view of one phase.
#[derive(Default)]
pub struct PhaseRecord {
    pub expected: u64,
    pub seen: Vec<bool>,
    pub distinct: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub max_n: Option<u64>,
    /// Receive − push, in microseconds.
    pub latencies_us: Vec<u32>,
}

#[derive(Default)]
pub struct ClientResult {
    pub connected: bool,
    /// Why the handshake failed.
    pub connect_error: Option<String>,
    /// Why the connection ended before the end of the benchmark.
    pub dropped: Option<String>,
    /// A `disconnect_reason` event, if the server sent one.
    pub disconnect_reason: Option<String>,
    /// Frames that were none of the expected ones.
    pub unexpected: u64,
    pub phases: [PhaseRecord; PHASES],
}

impl ClientResult {
    pub fn new(expected: [u64; PHASES]) -> ClientResult {
        let mut result = ClientResult::default();
        for (phase, record) in result.phases.iter_mut().enumerate() {
            record.expected = expected[phase];
            if phase != WARMUP {
                record.seen = vec![false; expected[phase] as usize];
                record.latencies_us.reserve(expected[phase] as usize);
            }
        }
        result
    }

    pub fn record(&mut self, phase: usize, n: u64, latency_ns: u64, shared: &Shared) {
        let Some(record) = self.phases.get_mut(phase) else {
            self.unexpected += 1;
            return;
        };
        shared.received[phase].fetch_add(1, Ordering::Relaxed);
        if phase == WARMUP {
            if record.distinct == 0 {
                shared.complete[WARMUP].fetch_add(1, Ordering::SeqCst);
            }
            record.distinct += 1;
            return;
        }
        let Some(seen) = record.seen.get_mut(n as usize) else {
            self.unexpected += 1;
            return;
        };
        if *seen {
            record.duplicates += 1;
            return;
        }
        *seen = true;
        record.distinct += 1;
        if record.max_n.is_some_and(|max| n < max) {
            record.out_of_order += 1;
        }
        record.max_n = record.max_n.max(Some(n));
        record
            .latencies_us
            .push(u32::try_from(latency_ns / 1000).unwrap_or(u32::MAX));
        if record.distinct == record.expected {
            shared.complete[phase].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// One phase over every connected client: what was delivered, lost, reordered, and the
/// latencies.
pub struct PhaseSummary {
    /// Deliveries with a latency (distinct notifications, all clients together).
    pub deliveries: u64,
    /// Expected minus distinct received, all clients together.
    pub lost: u64,
    /// Clients that missed at least one.
    pub lost_clients: usize,
    /// Of `lost`, what clients that were never disconnected missed.
    pub lost_kept_up: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    pub max_us: Option<u32>,
    /// The p99 of the client whose p99 is the worst.
    pub worst_client_p99_us: Option<u32>,
}

impl PhaseSummary {
    /// Sums `phase` over the connected clients of `results` (their latencies are taken).
    pub fn of(results: &mut [ClientResult], phase: usize) -> PhaseSummary {
        let mut latencies: Vec<u32> = Vec::new();
        let mut summary = PhaseSummary {
            deliveries: 0,
            lost: 0,
            lost_clients: 0,
            lost_kept_up: 0,
            out_of_order: 0,
            duplicates: 0,
            p50_us: None,
            p99_us: None,
            max_us: None,
            worst_client_p99_us: None,
        };
        for result in results.iter_mut().filter(|r| r.connected) {
            let record = &mut result.phases[phase];
            let missing = record.expected.saturating_sub(record.distinct);
            summary.lost += missing;
            if missing > 0 {
                summary.lost_clients += 1;
                if result.dropped.is_none() {
                    summary.lost_kept_up += missing;
                }
            }
            summary.out_of_order += record.out_of_order;
            summary.duplicates += record.duplicates;
            latencies.extend_from_slice(&record.latencies_us);
            let mut own = std::mem::take(&mut record.latencies_us);
            summary.worst_client_p99_us = summary.worst_client_p99_us.max(quantile(&mut own, 0.99));
        }
        summary.deliveries = latencies.len() as u64;
        summary.p50_us = quantile(&mut latencies, 0.50);
        summary.p99_us = quantile(&mut latencies, 0.99);
        summary.max_us = latencies.iter().copied().max();
        summary
    }
}
