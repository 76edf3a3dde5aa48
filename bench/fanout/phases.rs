//! Pushing notifications and measuring a phase: the deliveries waited for, and what the
//! plugin, this process and the machine used meanwhile.

use crate::clients::label;
use crate::record::Shared;
use crate::sched::{sched, sched_delta, Sched};
use crate::support::notification::PREIMAGE;
use crate::support::procfs::{self, machine_cpu, user_system, Status};
use crate::support::wait::{until_done, Patience};
use crate::{POLL, PUSH_TIMEOUT};
use mock_lightningd::MockLightningd;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub fn minus(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 - b.0, a.1 - b.1)
}

/// Pushes notification `n` of `phase`; false if the mock could not write it.
pub async fn push(node: &MockLightningd, shared: &Shared, phase: usize, n: u64) -> bool {
    let payload = json!({
        "msat": 10000,
        "preimage": PREIMAGE,
        "label": label(phase, n, shared.now_ns()),
    });
    matches!(
        tokio::time::timeout(PUSH_TIMEOUT, node.notify("invoice_creation", payload)).await,
        Ok(true)
    )
}

/// Waits until every live client completed `phase`, deliveries stall for `stall`, or `cap`
/// passes; returns how long it waited and whether every live client completed.
pub async fn drain(
    shared: &Shared,
    phase: usize,
    pushed: u64,
    stall: Duration,
    cap: Duration,
) -> (Duration, bool) {
    if pushed == 0 {
        return (Duration::ZERO, true);
    }
    let (drained, waited) = until_done(
        || shared.complete[phase].load(Ordering::SeqCst) >= shared.live(),
        || shared.received[phase].load(Ordering::Relaxed),
        || false,
        Patience {
            stall,
            cap,
            poll: POLL,
        },
    )
    .await;
    (waited, drained)
}

pub struct PhaseRun {
    pub name: String,
    pub pushed: u64,
    pub push_failed: u64,
    pub push_time: Duration,
    pub drain_time: Duration,
    pub drained: bool,
    pub plugin_sched: Sched,
    pub bench_sched: Sched,
    /// CPU seconds the whole machine was busy, and available (all cores).
    pub machine: (f64, f64),
    /// User and system CPU seconds of the plugin and of the bench process.
    pub plugin_user_system: (f64, f64),
    pub bench_user_system: (f64, f64),
    pub memory_after: Status,
}

/// One measured phase: `pushes` pushes its `pushed` notifications and returns how many of
/// those pushes failed; then the deliveries are waited for ([`drain`] with `(stall, cap)`) and
/// what the plugin, this process and the machine used meanwhile is read.
pub async fn measured_phase(
    shared: &Shared,
    pid: u32,
    phase: usize,
    name: String,
    pushed: u64,
    (stall, cap): (Duration, Duration),
    pushes: impl std::future::Future<Output = u64>,
) -> PhaseRun {
    let pid_text = pid.to_string();
    let plugin_sched = sched(&pid_text);
    let bench_sched = sched("self");
    let machine = machine_cpu();
    let plugin_us = user_system(&pid_text);
    let bench_us = user_system("self");
    let start = Instant::now();
    let push_failed = pushes.await;
    let push_time = start.elapsed();
    let (drain_time, drained) = drain(shared, phase, pushed, stall, cap).await;
    PhaseRun {
        name,
        pushed,
        push_failed,
        push_time,
        drain_time,
        drained,
        plugin_sched: sched_delta(&plugin_sched, &sched(&pid_text)),
        bench_sched: sched_delta(&bench_sched, &sched("self")),
        machine: {
            let (busy, total) = machine_cpu();
            (busy - machine.0, total - machine.1)
        },
        plugin_user_system: minus(user_system(&pid_text), plugin_us),
        bench_user_system: minus(user_system("self"), bench_us),
        memory_after: procfs::status(pid),
    }
}

pub struct Run {
    pub pid: u32,
    pub connect_time: Duration,
    pub warmup_pushes: u64,
    pub warmup_time: Duration,
    pub warmed: usize,
    pub memory_start: Status,
    pub memory_connected: Status,
    pub phases: Vec<(usize, PhaseRun)>,
    pub load_start: String,
    pub load_end: String,
}
