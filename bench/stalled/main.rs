//! Stalled-clients benchmark: what Socket.IO clients that stop reading cost the plugin.
//!
//! `--clients` (default 1,000) Socket.IO clients connect over websockets with a 4 KiB
//! receive buffer and then never read again (`--transport upgrade`: long-polling first, then
//! the upgrade to a websocket, as socket.io-client and python-socketio do by default;
//! `--transport polling`: long-polling, never polled again); one steady client (`seq: true`) reads
//! everything. The mock lightningd then pushes `--burst` (default 10,000) `invoice_creation`
//! notifications as fast as it can write them (`--padding` bytes of description each,
//! default 0: ~200 bytes of JSON). The plugin's VmRSS is sampled every 20 ms throughout and
//! its VmHWM (peak RSS) read at the end; the report gives both, how many stalled clients the
//! plugin cut off as slow consumers (its log), and whether the steady client got every
//! notification in order.
//!
//! Run: `cargo bench --bench stalled` (options after `--`: `--clients N`, `--burst M`,
//! `--padding B`, `--transport websocket|upgrade|polling`). `CLNREST_BIN=<path>` runs another plugin binary (e.g. an older build);
//! `STALLED_LOG=1` prints the plugin's log at the end. The steady client reads on a thread
//! of its own.
//! Target: peak RSS below 512 MiB with 1,000 stalled clients and a 10,000 burst.

#[path = "../support/mod.rs"]
mod support;

mod clients;

use mock_lightningd::gateway::Gateway;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::args::{ArgError, CommandLine};
use support::format::thousands;
use support::notification::PREIMAGE;
use support::procfs;
use support::verdict::Verdicts;

/// Clients connecting at once.
const CONNECT_CONCURRENCY: usize = 50;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The steady client gives up after this long without a notification.
const STEADY_IDLE: Duration = Duration::from_secs(20);
const SAMPLE_INTERVAL: Duration = Duration::from_millis(20);
/// Sampling goes on this long after the steady client is done.
const SETTLE: Duration = Duration::from_secs(2);
const TARGET_PEAK_MIB: u64 = 512;

struct Args {
    clients: usize,
    burst: u64,
    padding: usize,
    transport: clients::Transport,
}

const USAGE: &str = "usage: cargo bench --bench stalled [-- [--clients N] [--burst M] \
                     [--padding B] [--transport websocket|upgrade|polling]]";

fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        clients: 1000,
        burst: 10_000,
        padding: 0,
        transport: clients::Transport::Websocket,
    };
    let mut line = CommandLine::from_env();
    while let Some(name) = line.next_option()? {
        match name.as_str() {
            "--clients" => args.clients = line.number()? as usize,
            "--burst" => args.burst = line.number()?,
            "--padding" => args.padding = line.number()? as usize,
            "--transport" => {
                let name = line.value()?;
                args.transport = clients::Transport::parse(&name)
                    .ok_or("--transport: websocket, upgrade or polling")?;
            }
            _ => return Err(line.unknown()),
        }
    }
    if args.clients > 10_000 || args.burst == 0 || args.burst > 100_000 || args.padding > 1 << 20 {
        return Err("bounded: --clients ≤ 10000, 1 ≤ --burst ≤ 100000, --padding ≤ 1048576".into());
    }
    Ok(args)
}

struct Outcome {
    connected: usize,
    failed: usize,
    before_burst_kib: u64,
    peak_sampled_kib: u64,
    hwm_kib: u64,
    after_kib: u64,
    burst_time: Duration,
    cut_off: usize,
    steady: clients::Steady,
}

async fn run(args: &Args) -> Outcome {
    let gateway = Gateway::start().await;
    let pid = gateway.node.pid().expect("the mock started the plugin");
    let (port, rune) = (gateway.port, gateway.rune.clone());

    // The stalled clients, connected a few at a time.
    let mut stalled = Vec::with_capacity(args.clients);
    let mut failed = 0;
    let mut pending = tokio::task::JoinSet::new();
    for n in 0..args.clients {
        let (rune, transport) = (rune.clone(), args.transport);
        pending.spawn(async move {
            tokio::time::timeout(CONNECT_TIMEOUT, clients::stalled(port, &rune, transport))
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
        });
        if pending.len() >= CONNECT_CONCURRENCY || n + 1 == args.clients {
            while let Some(done) = pending.join_next().await {
                match done {
                    Ok(Ok(client)) => stalled.push(client),
                    Ok(Err(e)) => {
                        failed += 1;
                        if failed <= 3 {
                            eprintln!("stalled: a client failed to connect: {e}");
                        }
                    }
                    Err(_) => failed += 1,
                }
            }
        }
    }
    eprintln!(
        "stalled: {} clients connected, {failed} failed",
        stalled.len()
    );
    // The steady client reads on a thread of its own, so the pushing never delays it.
    let (burst, steady_rune) = (args.burst, rune.clone());
    let (connected, is_connected) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the steady client's runtime builds");
        runtime.block_on(async move {
            let steady = clients::steady(port, &steady_rune)
                .await
                .expect("the steady client connects");
            let _ = connected.send(());
            clients::read_all(steady, burst, STEADY_IDLE).await
        })
    });
    is_connected.await.expect("the steady client connects");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_burst_kib = procfs::status(pid).rss_kib;

    // Sample RSS throughout.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(before_burst_kib));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(procfs::status(pid).rss_kib, Ordering::Relaxed);
                tokio::time::sleep(SAMPLE_INTERVAL).await;
            }
        })
    };

    let started = Instant::now();
    let description = "x".repeat(args.padding);
    for n in 1..=args.burst {
        let payload = json!({
            "msat": 10000,
            "preimage": PREIMAGE,
            "label": format!("stalled-{n}"),
            "description": description,
        });
        let pushed = tokio::time::timeout(
            PUSH_TIMEOUT,
            gateway.node.notify("invoice_creation", payload),
        )
        .await;
        if !matches!(pushed, Ok(true)) {
            eprintln!("stalled: pushing notification {n} failed");
            break;
        }
    }
    let steady = tokio::task::spawn_blocking(move || reader.join().unwrap_or_default())
        .await
        .unwrap_or_default();
    let burst_time = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let status = procfs::status(pid);
    let cut_off = gateway
        .node
        .logs()
        .iter()
        .filter(|l| l.message.contains("slow consumer"))
        .count();
    if std::env::var_os("STALLED_LOG").is_some() {
        for line in gateway.node.logs() {
            eprintln!("plugin: {}", line.message);
        }
    }
    drop(stalled);
    gateway.node.kill().await;
    Outcome {
        connected: args.clients - failed,
        failed,
        before_burst_kib,
        peak_sampled_kib: peak.load(Ordering::Relaxed),
        hwm_kib: status.hwm_kib,
        after_kib: status.rss_kib,
        burst_time,
        cut_off,
        steady,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn report(args: &Args, outcome: &Outcome) -> (String, bool) {
    let mut text = format!(
        "## Stalled Socket.IO clients\n\n\
         `cargo bench --bench stalled -- --clients {} --burst {} --padding {} --transport {}`\n\n\
         | stalled clients connected | burst | RSS before the burst | peak RSS sampled | \
         VmHWM | RSS after | cut off as slow consumers | steady client |\n\
         |---|---|---|---|---|---|---|---|\n",
        args.clients,
        args.burst,
        args.padding,
        args.transport.name()
    );
    let steady = &outcome.steady;
    text += &format!(
        "| {} ({} failed) | {} in {:.1} s | {} | {} | {} | {} | {} | {} received, {} out of \
         order{} |\n\n",
        thousands(outcome.connected as u64),
        outcome.failed,
        thousands(args.burst),
        outcome.burst_time.as_secs_f64(),
        mib(outcome.before_burst_kib),
        mib(outcome.peak_sampled_kib),
        mib(outcome.hwm_kib),
        mib(outcome.after_kib),
        outcome.cut_off,
        thousands(steady.received),
        steady.out_of_order,
        steady
            .ended
            .as_ref()
            .map(|why| format!(", stopped: {why}"))
            .unwrap_or_default(),
    );
    let mut verdicts = Verdicts::default();
    verdicts.add(
        outcome.hwm_kib < TARGET_PEAK_MIB * 1024,
        format!(
            "peak RSS (VmHWM) {} < {TARGET_PEAK_MIB} MiB",
            mib(outcome.hwm_kib)
        ),
    );
    verdicts.add(
        steady.received == args.burst && steady.out_of_order == 0,
        format!(
            "the steady client received all {} notifications in order",
            thousands(args.burst)
        ),
    );
    text += &verdicts.lines();
    (text, verdicts.failed())
}

fn main() {
    let args = support::args::or_exit(parse_args(), USAGE);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the bench's runtime builds");
    let outcome = runtime.block_on(run(&args));
    let (text, failed) = report(&args, &outcome);
    println!("{text}");
    if failed {
        std::process::exit(1);
    }
}
