//! Notification fan-out benchmark: N Socket.IO clients (default 1,000) connected to the real
//! plugin binary, run by the mock lightningd over plain HTTP on a free loopback port.
//!
//! 1. Warm-up: one notification every 100 ms until every client has received one (so every
//!    delivery task is subscribed), not measured.
//! 2. Steady: notifications pushed at `--rate` per second (default 100) for `--seconds`
//!    (default 10).
//! 3. Burst: `--burst` notifications (default 10,000) pushed as fast as the mock can write
//!    them to the plugin's stdin.
//!
//! Every notification is an `invoice_creation` whose payload carries the push time
//! (`sent_ns`, nanoseconds since this process's start, taken just before the mock writes it),
//! the phase and its number `n` in the phase. Each client records receive time − push time
//! and which `n` it got: loss is expected − distinct received, out-of-order counts
//! notifications older than one already received. The plugin's VmRSS/VmHWM and CPU time come
//! from /proc/<pid>. A Markdown report goes to stdout.
//!
//! The clients (`bench/fanout_clients.rs`) are minimal Socket.IO v5 / engine.io v4 clients
//! over a websocket: `GET /socket.io/?EIO=4&transport=websocket`, `40{"rune":...}`, pings
//! `2` answered with `3`, `42["message",{...}]` parsed by looking up three numbers. They run
//! as one epoll loop per client thread; the mock and the pusher run on a current-thread
//! runtime on the main thread.
//!
//! Run: `cargo bench --bench fanout` (options after `--`: `--clients N`, `--seconds S`,
//! `--rate R`, `--burst M`, `--client-threads T`, `--plugin-threads P` which sets
//! `TOKIO_WORKER_THREADS` for the plugin process).
//! Everything is bounded: connection, warm-up, each phase and its drain have deadlines.

#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/mock_lightningd/mod.rs"]
mod mock_lightningd;
#[path = "support/mod.rs"]
mod support;

mod fanout_clients;

use harness::Gateway;
use mock_lightningd::MockLightningd;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::args::{ArgError, CommandLine};
use support::format::{quantile, thousands};
use support::procfs::{self, machine_cpu, user_system};

const WARMUP: usize = 0;
const STEADY: usize = 1;
const BURST: usize = 2;
const PHASES: usize = 3;

/// One client's websocket + Socket.IO handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// All clients connected (or failed).
const CONNECT_DEADLINE: Duration = Duration::from_secs(60);
const WARMUP_INTERVAL: Duration = Duration::from_millis(100);
const WARMUP_DEADLINE: Duration = Duration::from_secs(20);
/// One write to the plugin's stdin.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for deliveries after the last push of a phase: give up after this long without
/// progress, or after the cap.
const STEADY_STALL: Duration = Duration::from_secs(5);
const STEADY_DRAIN_CAP: Duration = Duration::from_secs(20);
const BURST_STALL: Duration = Duration::from_secs(10);
const BURST_DRAIN_CAP: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(5);

/// A realistic `invoice_creation` (tests/fixtures/notifications/invoice_creation.json).
const PREIMAGE: &str = "b3b01aebcaec63b025af22a3f829c1c8a906f3e57043285481dfdef21d8b5deb";

struct Args {
    clients: usize,
    seconds: u64,
    rate: u64,
    burst: u64,
    client_threads: usize,
    /// `TOKIO_WORKER_THREADS` for the plugin (its `#[tokio::main]` runtime reads it); unset:
    /// tokio's default, one per core.
    plugin_threads: Option<u64>,
}

const USAGE: &str = "usage: cargo bench --bench fanout [-- [--clients N] [--seconds S] [--rate R] \
[--burst M] [--client-threads T] [--plugin-threads P]]";

fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        clients: 1000,
        seconds: 10,
        rate: 100,
        burst: 10_000,
        client_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        plugin_threads: None,
    };
    let mut line = CommandLine::from_env();
    while let Some(name) = line.next_option()? {
        match name.as_str() {
            "--clients" => args.clients = line.number()? as usize,
            "--seconds" => args.seconds = line.number()?,
            "--rate" => args.rate = line.number()?,
            "--burst" => args.burst = line.number()?,
            "--client-threads" => args.client_threads = line.number()? as usize,
            "--plugin-threads" => args.plugin_threads = Some(line.number()?),
            _ => return Err(line.unknown()),
        }
    }
    if args.clients == 0
        || args.rate == 0
        || args.client_threads == 0
        || args.plugin_threads == Some(0)
    {
        return Err("--clients, --rate and --client-threads must be at least 1".into());
    }
    if args.seconds > 600 || args.burst > 1_000_000 || args.clients > 10_000 {
        return Err("bounded: --seconds ≤ 600, --burst ≤ 1000000, --clients ≤ 10000".into());
    }
    Ok(args)
}

/// What the clients and the pusher share.
struct Shared {
    epoch: Instant,
    connected: AtomicUsize,
    connect_failed: AtomicUsize,
    /// Clients that lost their connection after connecting, before the end.
    dropped: AtomicUsize,
    /// Notifications received per phase, all clients together (duplicates included).
    received: [AtomicU64; PHASES],
    /// Clients that received every notification of the phase (the warm-up: at least one).
    complete: [AtomicUsize; PHASES],
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn live(&self) -> usize {
        self.connected
            .load(Ordering::SeqCst)
            .saturating_sub(self.dropped.load(Ordering::SeqCst))
    }
}

/// One client's view of one phase.
#[derive(Default)]
struct PhaseRecord {
    expected: u64,
    seen: Vec<bool>,
    distinct: u64,
    duplicates: u64,
    out_of_order: u64,
    max_n: Option<u64>,
    /// Receive − push, in microseconds.
    latencies_us: Vec<u32>,
}

#[derive(Default)]
struct ClientResult {
    connected: bool,
    /// Why the handshake failed.
    connect_error: Option<String>,
    /// Why the connection ended before the end of the benchmark.
    dropped: Option<String>,
    /// A `disconnect_reason` event, if the server sent one.
    disconnect_reason: Option<String>,
    /// Frames that were none of the expected ones.
    unexpected: u64,
    phases: [PhaseRecord; PHASES],
}

impl ClientResult {
    fn new(expected: [u64; PHASES]) -> ClientResult {
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

    fn record(&mut self, phase: usize, n: u64, latency_ns: u64, shared: &Shared) {
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

type Memory = procfs::Status;

fn memory(pid: u32) -> Memory {
    procfs::status(&pid.to_string())
}

/// Scheduler figures of a group of threads: nanoseconds running, nanoseconds runnable but
/// waiting for a CPU (/proc/<pid>/task/<tid>/schedstat), and context switches (voluntary and
/// not, from .../status).
#[derive(Clone, Copy, Default)]
struct ThreadTimes {
    run_ns: u64,
    wait_ns: u64,
    switches: u64,
}

/// Per thread name, summed over the threads of that name.
type Sched = BTreeMap<String, ThreadTimes>;

fn sched(pid: &str) -> Sched {
    let mut out = Sched::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        let mut numbers = stat
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (run, wait) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let switches: u64 = status
            .lines()
            .filter(|line| line.contains("ctxt_switches:"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        let entry = out.entry(name.trim().to_string()).or_default();
        entry.run_ns += run;
        entry.wait_ns += wait;
        entry.switches += switches;
    }
    out
}

/// What `after` adds to `before` (threads gone since are not counted).
fn sched_delta(before: &Sched, after: &Sched) -> Sched {
    after
        .iter()
        .map(|(name, now)| {
            let then = before.get(name).copied().unwrap_or_default();
            let delta = ThreadTimes {
                run_ns: now.run_ns.saturating_sub(then.run_ns),
                wait_ns: now.wait_ns.saturating_sub(then.wait_ns),
                switches: now.switches.saturating_sub(then.switches),
            };
            (name.clone(), delta)
        })
        .collect()
}

fn sched_total(sched: &Sched) -> ThreadTimes {
    sched
        .values()
        .fold(ThreadTimes::default(), |sum, t| ThreadTimes {
            run_ns: sum.run_ns + t.run_ns,
            wait_ns: sum.wait_ns + t.wait_ns,
            switches: sum.switches + t.switches,
        })
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `ran 1.23 s, waited 0.45 s for a CPU, 1,234 context switches (tokio-rt-worker ...)`.
fn sched_summary(sched: &Sched) -> String {
    let total = sched_total(sched);
    let mut busy: Vec<(&String, &ThreadTimes)> = sched
        .iter()
        .filter(|(_, t)| t.run_ns + t.wait_ns >= 10_000_000)
        .collect();
    busy.sort_by_key(|(_, t)| std::cmp::Reverse(t.run_ns));
    let parts: Vec<String> = busy
        .iter()
        .map(|(name, t)| {
            format!(
                "{name} {:.2}/{:.2}/{}",
                secs(t.run_ns),
                secs(t.wait_ns),
                thousands(t.switches)
            )
        })
        .collect();
    format!(
        "ran {:.2} s, waited {:.2} s for a CPU, {} context switches (by thread name, ran s/waited s/switches: {})",
        secs(total.run_ns),
        secs(total.wait_ns),
        thousands(total.switches),
        parts.join(", ")
    )
}

fn minus(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 - b.0, a.1 - b.1)
}

fn load_average() -> String {
    procfs::load_average().unwrap_or_default()
}

/// Pushes notification `n` of `phase`; false if the mock could not write it.
async fn push(node: &MockLightningd, shared: &Shared, phase: usize, n: u64) -> bool {
    let sent_ns = shared.now_ns();
    let payload = json!({
        "sent_ns": sent_ns,
        "phase": phase,
        "n": n,
        "msat": 10000,
        "preimage": PREIMAGE,
        "label": format!("fanout-{phase}-{n}"),
    });
    matches!(
        tokio::time::timeout(PUSH_TIMEOUT, node.notify("invoice_creation", payload)).await,
        Ok(true)
    )
}

/// Waits until every live client completed `phase`, deliveries stall for `stall`, or `cap`
/// passes; returns how long it waited and whether every live client completed.
async fn drain(
    shared: &Shared,
    phase: usize,
    pushed: u64,
    stall: Duration,
    cap: Duration,
) -> (Duration, bool) {
    let start = Instant::now();
    if pushed == 0 {
        return (Duration::ZERO, true);
    }
    let mut last = shared.received[phase].load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        if shared.complete[phase].load(Ordering::SeqCst) >= shared.live() {
            return (start.elapsed(), true);
        }
        if start.elapsed() >= cap || last_progress.elapsed() >= stall {
            return (start.elapsed(), false);
        }
        tokio::time::sleep(POLL).await;
        let now = shared.received[phase].load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
    }
}

struct PhaseRun {
    name: String,
    pushed: u64,
    push_failed: u64,
    push_time: Duration,
    drain_time: Duration,
    drained: bool,
    plugin_sched: Sched,
    bench_sched: Sched,
    /// CPU seconds the whole machine was busy, and available (all cores).
    machine: (f64, f64),
    /// User and system CPU seconds of the plugin and of the bench process.
    plugin_user_system: (f64, f64),
    bench_user_system: (f64, f64),
    memory_after: Memory,
}

/// One measured phase: `pushes` pushes its `pushed` notifications and returns how many of
/// those pushes failed; then the deliveries are waited for ([`drain`] with `(stall, cap)`) and
/// what the plugin, this process and the machine used meanwhile is read.
async fn measured_phase(
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
        memory_after: memory(pid),
    }
}

struct Run {
    pid: u32,
    connect_time: Duration,
    warmup_pushes: u64,
    warmup_time: Duration,
    warmed: usize,
    memory_start: Memory,
    memory_connected: Memory,
    phases: Vec<(usize, PhaseRun)>,
    load_start: String,
    load_end: String,
}

async fn orchestrate(args: &Args) -> (Run, Vec<ClientResult>) {
    let load_start = load_average();
    // The plugin over plain HTTP on a free port and an unrestricted rune, as the integration
    // tests start it (the Gateway's HTTP client goes unused).
    let Gateway {
        node, port, rune, ..
    } = Gateway::start().await;
    let pid = node.pid().expect("the mock started the plugin");
    let memory_start = memory(pid);

    let steady_count = args.rate * args.seconds;
    let expected = [0, steady_count, args.burst];
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        connected: AtomicUsize::new(0),
        connect_failed: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        received: Default::default(),
        complete: Default::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let target = fanout_clients::Target {
        url: format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"),
        rune,
        expected,
        connect_timeout: CONNECT_TIMEOUT,
    };

    // Connect.
    let connect_start = Instant::now();
    let threads = fanout_clients::spawn(
        args.clients,
        args.client_threads,
        target,
        shared.clone(),
        stop.clone(),
    );
    while shared.connected.load(Ordering::SeqCst) + shared.connect_failed.load(Ordering::SeqCst)
        < args.clients
        && connect_start.elapsed() < CONNECT_DEADLINE
    {
        tokio::time::sleep(POLL).await;
    }
    let connect_time = connect_start.elapsed();
    eprintln!(
        "fanout: {} of {} clients connected in {:.2} s ({} failed)",
        shared.connected.load(Ordering::SeqCst),
        args.clients,
        connect_time.as_secs_f64(),
        shared.connect_failed.load(Ordering::SeqCst)
    );

    // Warm-up: every delivery task is subscribed once its client has received one.
    let warmup_start = Instant::now();
    let mut warmup_pushes = 0;
    while shared.complete[WARMUP].load(Ordering::SeqCst) < shared.live()
        && warmup_start.elapsed() < WARMUP_DEADLINE
    {
        push(&node, &shared, WARMUP, warmup_pushes).await;
        warmup_pushes += 1;
        tokio::time::sleep(WARMUP_INTERVAL).await;
    }
    // Let the last warm-up notifications reach everyone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warmup_time = warmup_start.elapsed();
    let warmed = shared.complete[WARMUP].load(Ordering::SeqCst);
    let memory_connected = memory(pid);
    eprintln!(
        "fanout: warm-up reached {warmed} clients; plugin RSS {} MiB",
        memory_connected.rss_kib / 1024
    );

    let mut phases = Vec::new();

    // Steady rate.
    let interval = Duration::from_nanos(1_000_000_000 / args.rate);
    let steady = measured_phase(
        &shared,
        pid,
        STEADY,
        format!("steady {}/s for {} s", args.rate, args.seconds),
        steady_count,
        (STEADY_STALL, STEADY_DRAIN_CAP),
        async {
            let start = tokio::time::Instant::now();
            let mut push_failed = 0;
            for n in 0..steady_count {
                tokio::time::sleep_until(start + interval * n as u32).await;
                if !push(&node, &shared, STEADY, n).await {
                    push_failed += 1;
                }
            }
            push_failed
        },
    )
    .await;
    phases.push((STEADY, steady));
    eprintln!("fanout: steady phase done");

    // Burst.
    let burst = measured_phase(
        &shared,
        pid,
        BURST,
        "burst, as fast as the mock writes".to_string(),
        args.burst,
        (BURST_STALL, BURST_DRAIN_CAP),
        async {
            let mut push_failed = 0;
            for n in 0..args.burst {
                if !push(&node, &shared, BURST, n).await {
                    push_failed += 1;
                }
            }
            push_failed
        },
    )
    .await;
    phases.push((BURST, burst));
    eprintln!("fanout: burst phase done");
    let load_end = load_average();

    stop.store(true, Ordering::SeqCst);
    let mut results = Vec::with_capacity(args.clients);
    let stopping = Instant::now();
    while threads.iter().any(|thread| !thread.is_finished())
        && stopping.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(POLL).await;
    }
    for thread in threads {
        if !thread.is_finished() {
            eprintln!("fanout: a client thread did not stop within 10 s");
            continue;
        }
        match thread.join() {
            Ok(mut clients) => results.append(&mut clients),
            Err(_) => eprintln!("fanout: a client thread panicked"),
        }
    }
    let violations = node.violations();
    if !violations.is_empty() {
        eprintln!("fanout: protocol violations seen by the mock: {violations:?}");
    }
    node.kill().await;
    let run = Run {
        pid,
        connect_time,
        warmup_pushes,
        warmup_time,
        warmed,
        memory_start,
        memory_connected,
        phases,
        load_start,
        load_end,
    };
    (run, results)
}

fn ms(us: Option<u32>) -> String {
    match us {
        Some(us) => format!("{:.2} ms", f64::from(us) / 1000.0),
        None => "–".to_string(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn report(args: &Args, run: &Run, results: &mut [ClientResult]) -> String {
    let mut out = String::new();
    let connected = results.iter().filter(|r| r.connected).count();
    let dropped: Vec<String> = results
        .iter()
        .filter_map(|r| {
            let reason = r.dropped.as_deref()?;
            Some(format!(
                "{reason} {}",
                r.disconnect_reason.as_deref().unwrap_or_default()
            ))
        })
        .collect();
    let _ = writeln!(
        out,
        "Fan-out to {} Socket.IO clients ({} connected in {:.2} s, {} disconnected before the end); plugin pid {} with {} runtime worker thread(s), {} client thread(s).\n",
        thousands(args.clients as u64),
        thousands(connected as u64),
        run.connect_time.as_secs_f64(),
        dropped.len(),
        run.pid,
        args.plugin_threads
            .map_or("the default".to_string(), |t| t.to_string()),
        args.client_threads,
    );
    let _ = writeln!(
        out,
        "| phase | clients | notifications | rate achieved | p50 | p99 | max latency | loss | out-of-order | plugin RSS (peak) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let mut details = String::new();
    for (phase, phase_run) in &run.phases {
        let phase = *phase;
        let mut latencies: Vec<u32> = Vec::new();
        let (mut lost, mut lost_clients, mut ooo, mut dups) = (0u64, 0usize, 0u64, 0u64);
        let mut lost_kept_up = 0u64;
        let mut worst_client_p99: Option<u32> = None;
        for result in results.iter_mut().filter(|r| r.connected) {
            let record = &mut result.phases[phase];
            let missing = record.expected - record.distinct;
            lost += missing;
            if missing > 0 {
                lost_clients += 1;
                if result.dropped.is_none() {
                    lost_kept_up += missing;
                }
            }
            ooo += record.out_of_order;
            dups += record.duplicates;
            latencies.extend_from_slice(&record.latencies_us);
            let mut own = std::mem::take(&mut record.latencies_us);
            worst_client_p99 = worst_client_p99.max(quantile(&mut own, 0.99));
        }
        let deliveries = latencies.len() as u64;
        let p50 = quantile(&mut latencies, 0.50);
        let p99 = quantile(&mut latencies, 0.99);
        let max = latencies.iter().copied().max();
        let rate = phase_run.pushed as f64 / phase_run.push_time.as_secs_f64().max(1e-9);
        let loss = if lost == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({} clients; {} of it at clients not disconnected)",
                thousands(lost),
                lost_clients,
                thousands(lost_kept_up)
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}/s | {} | {} | {} | {} | {} | {} ({}) |",
            phase_run.name,
            thousands(connected as u64),
            thousands(phase_run.pushed),
            thousands(rate.round() as u64),
            ms(p50),
            ms(p99),
            ms(max),
            loss,
            thousands(ooo),
            mib(phase_run.memory_after.rss_kib),
            mib(phase_run.memory_after.hwm_kib),
        );
        let _ = writeln!(
            details,
            "- {}: {} pushed in {:.2} s ({} push failures); {} deliveries of {} expected ({} duplicates), all delivered {:.2} s after the last push{}; worst client's p99 {}.",
            phase_run.name,
            thousands(phase_run.pushed),
            phase_run.push_time.as_secs_f64(),
            phase_run.push_failed,
            thousands(deliveries),
            thousands(phase_run.pushed * connected as u64),
            dups,
            phase_run.drain_time.as_secs_f64(),
            if phase_run.drained { "" } else { " (gave up waiting: stalled or deadline)" },
            ms(worst_client_p99),
        );
        let wall = (phase_run.push_time + phase_run.drain_time).as_secs_f64();
        let plugin_run = secs(sched_total(&phase_run.plugin_sched).run_ns);
        let bench_run = secs(sched_total(&phase_run.bench_sched).run_ns);
        let (busy, total) = phase_run.machine;
        let cores = total / wall.max(1e-9);
        let _ = writeln!(
            details,
            "  - CPU over its {wall:.2} s: the machine's {cores:.1} cores were {:.0}% busy: plugin {:.2} s (user {:.2}, system {:.2}), bench process {:.2} s (user {:.2}, system {:.2}), everything else {:.2} s.",
            100.0 * busy / total.max(1e-9),
            plugin_run,
            phase_run.plugin_user_system.0,
            phase_run.plugin_user_system.1,
            bench_run,
            phase_run.bench_user_system.0,
            phase_run.bench_user_system.1,
            (busy - plugin_run - bench_run).max(0.0),
        );
        let _ = writeln!(
            details,
            "  - plugin threads {}; {:.2} µs of plugin CPU per delivery.",
            sched_summary(&phase_run.plugin_sched),
            plugin_run * 1e6 / (deliveries.max(1) as f64)
        );
        let _ = writeln!(
            details,
            "  - bench threads {}.",
            sched_summary(&phase_run.bench_sched)
        );
    }
    let _ = writeln!(out, "\nPlugin memory (/proc/{}/status):\n", run.pid);
    let _ = writeln!(out, "| when | VmRSS | VmHWM | threads |");
    let _ = writeln!(out, "|---|---|---|---|");
    let mut rows = vec![
        ("started, no client", run.memory_start),
        ("clients connected, after warm-up", run.memory_connected),
    ];
    for (phase, phase_run) in &run.phases {
        rows.push((
            if *phase == STEADY {
                "after the steady phase"
            } else {
                "after the burst"
            },
            phase_run.memory_after,
        ));
    }
    for (when, m) in rows {
        let _ = writeln!(
            out,
            "| {when} | {} | {} | {} |",
            mib(m.rss_kib),
            mib(m.hwm_kib),
            m.threads
        );
    }
    let _ = writeln!(out, "\nDetails:\n");
    out.push_str(&details);
    let _ = writeln!(
        out,
        "- warm-up: {} notification(s) in {:.2} s reached {} clients.",
        run.warmup_pushes,
        run.warmup_time.as_secs_f64(),
        run.warmed
    );
    let unexpected: u64 = results.iter().map(|r| r.unexpected).sum();
    if unexpected > 0 {
        let _ = writeln!(out, "- {unexpected} unexpected frame(s) received.");
    }
    let failures: Vec<&str> = results
        .iter()
        .filter_map(|r| r.connect_error.as_deref())
        .collect();
    if let Some(first) = failures.first() {
        let _ = writeln!(
            out,
            "- {} client(s) failed to connect, e.g.: {first}",
            failures.len()
        );
    }
    if let Some(first) = dropped.first() {
        let _ = writeln!(
            out,
            "- {} client(s) were disconnected, e.g.: {first}",
            dropped.len()
        );
    }
    let _ = writeln!(
        out,
        "- load average (1/5/15 min): {} at the start, {} at the end.",
        run.load_start, run.load_end
    );
    out
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{}", e.with_usage(USAGE));
            std::process::exit(2);
        }
    };
    if let Some(threads) = args.plugin_threads {
        // Before any other thread exists; inherited by the plugin process.
        std::env::set_var("TOKIO_WORKER_THREADS", threads.to_string());
    }
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the mock's runtime builds");
    let started = Instant::now();
    let (run, mut results) = main.block_on(orchestrate(&args));
    let text = report(&args, &run, &mut results);
    println!("{text}");
    eprintln!(
        "fanout: finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(main);
}
