//! What every task shares: the counters per minute, the examples of unintended errors, and
//! a small random number generator.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Unintended errors printed in full; the rest are only counted.
pub const MAX_EXAMPLES: usize = 12;

/// splitmix64: enough randomness for stay times and the request mix, reproducible by seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `min..=max`, whole milliseconds.
    pub fn duration(&mut self, min: Duration, max: Duration) -> Duration {
        let (min, max) = (min.as_millis() as u64, max.as_millis() as u64);
        Duration::from_millis(min + self.next_u64() % (max - min + 1))
    }
}

/// Where a request or a Socket.IO client went wrong.
#[derive(Clone, Copy, PartialEq)]
pub enum Source {
    Rest,
    SocketIo,
    Push,
}

pub struct Shared {
    /// The start of the first minute (set once the steady clients are connected).
    pub start: OnceLock<Instant>,
    /// Minutes of the run; slot `minutes` collects what happens after them (the drain).
    pub minutes: usize,
    pub rest_requests: Vec<AtomicU64>,
    pub rest_errors: Vec<AtomicU64>,
    pub socketio_errors: Vec<AtomicU64>,
    pub push_errors: Vec<AtomicU64>,
    pub churn_connects: Vec<AtomicU64>,
    pub pushed: Vec<AtomicU64>,
    pub examples: Mutex<Vec<String>>,
    /// Churning clients connected right now (decremented once their close is done).
    pub churn_connected: AtomicUsize,
    /// Per steady client: how many of the pushed notifications it has, counted from
    /// `soak_n` = 0 without a hole.
    pub steady_contiguous: Vec<AtomicU64>,
    pub steady_connected: AtomicUsize,
    /// Notifications pushed so far (the next `soak_n`).
    pub next_n: AtomicU64,
}

impl Shared {
    pub fn new(minutes: usize, steady_clients: usize) -> Shared {
        let slots = || (0..=minutes).map(|_| AtomicU64::new(0)).collect();
        Shared {
            start: OnceLock::new(),
            minutes,
            rest_requests: slots(),
            rest_errors: slots(),
            socketio_errors: slots(),
            push_errors: slots(),
            churn_connects: slots(),
            pushed: slots(),
            examples: Mutex::new(Vec::new()),
            churn_connected: AtomicUsize::new(0),
            steady_contiguous: (0..steady_clients).map(|_| AtomicU64::new(0)).collect(),
            steady_connected: AtomicUsize::new(0),
            next_n: AtomicU64::new(0),
        }
    }

    /// Time since the start of the first minute (zero before it).
    pub fn elapsed(&self) -> Duration {
        self.start.get().map_or(Duration::ZERO, Instant::elapsed)
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.elapsed().as_secs_f64()
    }

    /// The minute we are in (the slot after the last one once the minutes are over);
    /// setting up counts as the first.
    pub fn minute(&self) -> usize {
        ((self.elapsed().as_secs() / 60) as usize).min(self.minutes)
    }

    pub fn count(&self, slots: &[AtomicU64]) {
        slots[self.minute()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an unintended error and keeps its description if there are few so far.
    pub fn error(&self, source: Source, what: String) {
        let slots = match source {
            Source::Rest => &self.rest_errors,
            Source::SocketIo => &self.socketio_errors,
            Source::Push => &self.push_errors,
        };
        self.count(slots);
        let mut examples = self.examples.lock().unwrap_or_else(|e| e.into_inner());
        if examples.len() < MAX_EXAMPLES {
            let source = match source {
                Source::Rest => "REST",
                Source::SocketIo => "Socket.IO",
                Source::Push => "push",
            };
            examples.push(format!("[{:.1} s, {source}] {what}", self.elapsed_secs()));
        }
    }

    pub fn total(slots: &[AtomicU64]) -> u64 {
        slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    pub fn steady_min_contiguous(&self) -> u64 {
        self.steady_contiguous
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .min()
            .unwrap_or(0)
    }
}
