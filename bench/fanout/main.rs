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
//! The clients (`clients.rs`) are minimal Socket.IO v5 / engine.io v4 clients
//! over a websocket: `GET /socket.io/?EIO=4&transport=websocket`, `40{"rune":...}`, pings
//! `2` answered with `3`, `42["message",{...}]` parsed by looking up three numbers. They run
//! as one epoll loop per client thread; the mock and the pusher run on a current-thread
//! runtime on the main thread.
//!
//! Run: `cargo bench --bench fanout` (options after `--`: `--clients N`, `--seconds S`,
//! `--rate R`, `--burst M`, `--client-threads T`, `--plugin-threads P` which sets
//! `TOKIO_WORKER_THREADS` for the plugin process).
//! Everything is bounded: connection, warm-up, each phase and its drain have deadlines.
//!
//! With `--lightningd PATH` it runs instead inside a real regtest lightningd, with real
//! `invoice` calls, and `--compare PATH` runs other plugin binaries interleaved with ours
//! (`real_node.rs`).
//!
//! Modules: `record` (what the clients record), `clients` (the clients), `phases` (pushing
//! and measuring a phase), `sched` (per-thread scheduler figures), `report` (the tables),
//! `real_node` (the `--lightningd` mode);
//! `../support` is shared with the other benches.

#[path = "../support/mod.rs"]
mod support;

mod clients;
mod phases;
mod real_node;
mod record;
mod report;
mod sched;

use mock_lightningd::gateway::Gateway;
use phases::{measured_phase, push, Run};
use record::{ClientResult, Shared, BURST, STEADY, WARMUP};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::args::{ArgError, CommandLine};
use support::procfs::{self, load_average};

/// One client's websocket + Socket.IO handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// All clients connected (or failed).
const CONNECT_DEADLINE: Duration = Duration::from_secs(60);
const WARMUP_INTERVAL: Duration = Duration::from_millis(100);
const WARMUP_DEADLINE: Duration = Duration::from_secs(20);
/// One write to the plugin's stdin.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for deliveries after the last push of a phase: give up after this long without
/// progress, or after the cap.
const STEADY_STALL: Duration = Duration::from_secs(5);
const STEADY_DRAIN_CAP: Duration = Duration::from_secs(20);
const BURST_STALL: Duration = Duration::from_secs(10);
const BURST_DRAIN_CAP: Duration = Duration::from_secs(90);
pub const POLL: Duration = Duration::from_millis(5);

pub struct Args {
    pub clients: usize,
    pub seconds: u64,
    pub rate: u64,
    pub burst: u64,
    pub client_threads: usize,
    /// `TOKIO_WORKER_THREADS` for the plugin (its `#[tokio::main]` runtime reads it); unset:
    /// tokio's default, one per core.
    pub plugin_threads: Option<u64>,
    /// `--lightningd`: the real-node mode (`real_node.rs`).
    pub lightningd: Option<PathBuf>,
    /// `--plugin`: the plugin binary run as ours instead of this tree's build.
    pub plugin: Option<PathBuf>,
    /// `--compare` (repeatable): more plugin binaries, real-node mode only.
    pub compare: Vec<PathBuf>,
    /// Real-node mode: invoices created at `rate` per run, and runs per plugin.
    pub invoices: u64,
    pub rounds: usize,
    pub node_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: cargo bench --bench fanout [-- [--clients N] [--seconds S] [--rate R] \
[--burst M] [--client-threads T] [--plugin-threads P]]
   or: cargo bench --bench fanout -- --lightningd PATH [--plugin PATH] [--compare PATH]... \
[--clients N] [--invoices N] [--rate R] [--rounds N] [--client-threads T] [--node-dir DIR]
  --lightningd PATH  the plugin inside a real regtest lightningd; `invoice` calls at --rate
                     (default 100/s), --invoices of them (default 200) per run
  --plugin PATH      run this binary as ours instead of this tree's build (e.g. a copy
                     made before a change, so another build cannot replace it mid-run)
  --compare PATH     also run this plugin binary (e.g. CLN's clnrest; repeatable), runs
                     interleaved A B, B A, ... (--rounds, default 2, at most 20)
  --node-dir DIR     where the nodes live (default /dev/shm)";

fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        clients: 1000,
        seconds: 10,
        rate: 100,
        burst: 10_000,
        client_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        plugin_threads: None,
        lightningd: None,
        plugin: None,
        compare: Vec::new(),
        invoices: 200,
        rounds: 2,
        node_dir: None,
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
            "--lightningd" => args.lightningd = Some(PathBuf::from(line.value()?)),
            "--plugin" => args.plugin = Some(PathBuf::from(line.value()?)),
            "--compare" => args.compare.push(PathBuf::from(line.value()?)),
            "--invoices" => args.invoices = line.number()?,
            "--rounds" => args.rounds = line.number()? as usize,
            "--node-dir" => args.node_dir = Some(PathBuf::from(line.value()?)),
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
    if args.invoices == 0 || args.invoices > 100_000 || !(1..=20).contains(&args.rounds) {
        return Err("bounded: 1 ≤ --invoices ≤ 100000, 1 ≤ --rounds ≤ 20".into());
    }
    if (args.plugin.is_some() || !args.compare.is_empty()) && args.lightningd.is_none() {
        return Err("--plugin and --compare need --lightningd".into());
    }
    Ok(args)
}

async fn orchestrate(args: &Args) -> (Run, Vec<ClientResult>) {
    let load_start = load_average("");
    // The plugin over plain HTTP on a free port and an unrestricted rune, as the integration
    // tests start it (the Gateway's HTTP client goes unused).
    let Gateway {
        node, port, rune, ..
    } = Gateway::start().await;
    let pid = node.pid().expect("the mock started the plugin");
    let memory_start = procfs::status(pid);

    let steady_count = args.rate * args.seconds;
    let expected = [0, steady_count, args.burst];
    let shared = Arc::new(Shared::new());
    let stop = Arc::new(AtomicBool::new(false));
    let target = clients::Target {
        url: format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"),
        rune,
        expected,
        connect_timeout: CONNECT_TIMEOUT,
    };

    // Connect.
    let (threads, connect_time) = clients::connect_all(
        args.clients,
        args.client_threads,
        target,
        &shared,
        &stop,
        CONNECT_DEADLINE,
    )
    .await;
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
    let memory_connected = procfs::status(pid);
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
    let load_end = load_average("");

    stop.store(true, Ordering::SeqCst);
    let results = clients::collect(threads);
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

fn main() {
    let args = support::args::or_exit(parse_args(), USAGE);
    if let Some(lightningd) = &args.lightningd {
        match real_node::run(&args, lightningd) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                eprintln!("fanout: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
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
    let text = report::render(&args, &run, &mut results);
    println!("{text}");
    eprintln!(
        "fanout: finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(main);
}
