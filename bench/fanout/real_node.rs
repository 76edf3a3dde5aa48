//! `cargo bench --bench fanout -- --lightningd PATH [--compare PATH]`: the fan-out inside a
//! real regtest lightningd (`support::real_node`), with real invoices.
//!
//! One run: a fresh node with the plugin under test over HTTP (directory on tmpfs), a
//! read-only rune from its `createrune`, `--clients` Socket.IO clients over websocket
//! (`clients.rs`, the same for every plugin: rune in the `Rune` header and in the auth
//! payload), a warm-up (an invoice every 100 ms until every client has one), the plugin's RSS
//! with the clients connected and idle (1 s later), then `--invoices` `invoice` calls on
//! `lightning-rpc` at `--rate` per second. lightningd sends each one's `invoice_creation` to
//! the plugin; its `label` carries the time just before the call, so latency is from the
//! `invoice` call to the client (lightningd's own part included, the same for every plugin).
//! The plugin's CPU (utime + stime of /proc/<pid>/stat) is read before the first call and
//! after every client has every notification (or deliveries stalled).
//!
//! With `--compare` (repeatable), runs go A B C, C B A, A B C, ... for `--rounds` rounds; the
//! report has every run, then per plugin the medians over its runs and, for the compared ones,
//! their figures over ours. `--plugin` names the binary run as ours.

use crate::clients::{self, label, Target};
use crate::phases::{measured_phase, PhaseRun};
use crate::record::{ClientResult, PhaseSummary, Shared, PHASES, STEADY, WARMUP};
use crate::support::args::command;
use crate::support::format::{kib_as_mib, thousands, us_as_ms};
use crate::support::procfs::{self, load_average, Machine};
use crate::support::real_node::node::{rpc_call, NodeConfig, RealNode};
use crate::support::real_node::{
    lightningd_version, node_parent, start_plugin_node, subjects, use_lightningd, Subject,
};
use crate::Args;
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_DEADLINE: Duration = Duration::from_secs(90);
const WARMUP_INTERVAL: Duration = Duration::from_millis(100);
const WARMUP_DEADLINE: Duration = Duration::from_secs(30);
/// After the warm-up, before the idle RSS is read.
const SETTLE: Duration = Duration::from_secs(1);
const STALL: Duration = Duration::from_secs(10);
const DRAIN_CAP: Duration = Duration::from_secs(60);

/// What one run of one plugin measured.
struct Measurement {
    subject: usize,
    round: usize,
    connected: usize,
    connect_time: Duration,
    /// Clients disconnected before the end, and one reason.
    dropped: usize,
    first_problem: Option<String>,
    phase: PhaseRun,
    summary: PhaseSummary,
    /// VmRSS with no client, and with every client connected and idle, KiB.
    rss_start_kib: u64,
    rss_idle_kib: u64,
}

impl Measurement {
    fn cpu(&self) -> f64 {
        self.phase.plugin_user_system.0 + self.phase.plugin_user_system.1
    }

    fn cpu_per_delivery_us(&self) -> f64 {
        self.cpu() * 1e6 / self.summary.deliveries.max(1) as f64
    }

    fn expected(&self) -> u64 {
        self.phase.pushed * self.connected as u64
    }

    fn invoice_rate(&self) -> f64 {
        self.phase.pushed as f64 / self.phase.push_time.as_secs_f64().max(1e-9)
    }

    fn machine_busy(&self) -> f64 {
        let (busy, total) = self.phase.machine;
        busy / total.max(1e-9)
    }
}

/// Runs every round and returns the report.
pub fn run(args: &Args, lightningd: &Path) -> Result<String, String> {
    let lightningd = use_lightningd(lightningd)?;
    let subjects = plugins(args)?;
    let machine = Machine::read();
    let load_before = load_average("unknown");
    let began = Instant::now();
    let parent = node_parent(args.node_dir.as_deref());
    let temp = tempfile::Builder::new()
        .prefix("fanout-bench-node-")
        .tempdir_in(&parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    let mut measurements = Vec::new();
    for round in 1..=args.rounds {
        // A B, B A, ...: neither plugin always goes first.
        let order: Vec<usize> = if round % 2 == 1 {
            (0..subjects.len()).collect()
        } else {
            (0..subjects.len()).rev().collect()
        };
        for subject in order {
            eprintln!("fanout: round {round}, {}", subjects[subject].label);
            let directory = temp.path().join(format!("round{round}-plugin{subject}"));
            let measurement = runtime.block_on(one_run(
                args,
                &subjects[subject],
                &directory,
                subject,
                round,
            ))?;
            eprintln!(
                "fanout:   {} delivered, {} lost, {} out of order, plugin CPU {:.2} s ({:.2} us a delivery), p50 {} ms, p99 {} ms, idle RSS {} MiB",
                thousands(measurement.summary.deliveries),
                thousands(measurement.summary.lost),
                thousands(measurement.summary.out_of_order),
                measurement.cpu(),
                measurement.cpu_per_delivery_us(),
                us_as_ms(measurement.summary.p50_us),
                us_as_ms(measurement.summary.p99_us),
                kib_as_mib(measurement.rss_idle_kib),
            );
            measurements.push(measurement);
        }
    }
    Ok(render(&Report {
        args,
        machine: &machine,
        version: &lightningd_version(&lightningd),
        node_dir: &parent,
        load_before,
        load_after: load_average("unknown"),
        total: began.elapsed(),
        subjects: &subjects,
        measurements: &measurements,
    }))
}

/// Ours (this tree's build, or `--plugin`), then every `--compare` binary.
fn plugins(args: &Args) -> Result<Vec<Subject>, String> {
    let mut plugins = subjects(None)?;
    if let Some(plugin) = &args.plugin {
        let binary = plugin
            .canonicalize()
            .map_err(|e| format!("--plugin {}: {e}", plugin.display()))?;
        plugins[0] = Subject {
            label: format!("ours: {}", binary.display()),
            binary,
        };
    }
    for compare in &args.compare {
        plugins.extend(subjects(Some(compare))?.into_iter().skip(1));
    }
    Ok(plugins)
}

/// One plugin, one node, one run.
async fn one_run(
    args: &Args,
    subject: &Subject,
    directory: &Path,
    subject_index: usize,
    round: usize,
) -> Result<Measurement, String> {
    let started = start_plugin_node(subject, directory, NodeConfig::http())?;
    let node = &started.node;
    let pid = started.plugin_pid;
    let rune = node.create_rune(json!("readonly"));
    let rss_start_kib = procfs::status(pid).rss_kib;

    let mut expected = [0; PHASES];
    expected[STEADY] = args.invoices;
    let shared = Arc::new(Shared::new());
    let stop = Arc::new(AtomicBool::new(false));
    let target = Target {
        url: format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
            started.port
        ),
        rune,
        expected,
        connect_timeout: CONNECT_TIMEOUT,
    };
    let (threads, connect_time) = clients::connect_all(
        args.clients,
        args.client_threads,
        target,
        &shared,
        &stop,
        CONNECT_DEADLINE,
    )
    .await;

    // Warm-up: every client has received one notification.
    let warmup_start = Instant::now();
    let mut n = 0;
    while shared.complete[WARMUP].load(Ordering::SeqCst) < shared.live()
        && warmup_start.elapsed() < WARMUP_DEADLINE
    {
        create_invoice(node, &shared, WARMUP, n);
        n += 1;
        tokio::time::sleep(WARMUP_INTERVAL).await;
    }
    tokio::time::sleep(SETTLE).await;
    let rss_idle_kib = procfs::status(pid).rss_kib;
    eprintln!(
        "fanout:   plugin pid {pid}: {} clients connected, warm; creating invoices",
        shared.connected.load(Ordering::SeqCst)
    );

    let interval = Duration::from_nanos(1_000_000_000 / args.rate);
    let phase = measured_phase(
        &shared,
        pid,
        STEADY,
        format!("{} invoices at {}/s", args.invoices, args.rate),
        args.invoices,
        (STALL, DRAIN_CAP),
        async {
            let start = tokio::time::Instant::now();
            let mut failed = 0;
            for n in 0..args.invoices {
                tokio::time::sleep_until(start + interval * n as u32).await;
                if !create_invoice(node, &shared, STEADY, n) {
                    failed += 1;
                }
            }
            failed
        },
    )
    .await;

    stop.store(true, Ordering::SeqCst);
    let mut results = clients::collect(threads);
    let mut started = started;
    started.node.stop();
    let connected = results.iter().filter(|r| r.connected).count();
    let problems = problems(&results);
    Ok(Measurement {
        subject: subject_index,
        round,
        connected,
        connect_time,
        dropped: results.iter().filter(|r| r.dropped.is_some()).count(),
        first_problem: problems,
        summary: PhaseSummary::of(&mut results, STEADY),
        phase,
        rss_start_kib,
        rss_idle_kib,
    })
}

/// `invoice` on `lightning-rpc` (a connection per call), labelled for the clients; false if
/// it failed.
fn create_invoice(node: &RealNode, shared: &Shared, phase: usize, n: u64) -> bool {
    let params = json!({
        "amount_msat": 10000,
        "label": label(phase, n, shared.now_ns()),
        "description": "fanout bench",
    });
    match rpc_call(&node.rpc_path, "invoice", &params) {
        Ok(answer) if answer.get("result").is_some() => true,
        Ok(answer) => {
            eprintln!("fanout: invoice failed: {answer}");
            false
        }
        Err(e) => {
            eprintln!("fanout: invoice failed: {e}");
            false
        }
    }
}

/// The first failed handshake, disconnection or unexpected frame, for the report.
fn problems(results: &[ClientResult]) -> Option<String> {
    let failed = results.iter().filter_map(|r| r.connect_error.as_deref());
    let dropped = results.iter().filter_map(|r| {
        let reason = r.dropped.as_deref()?;
        Some(reason)
    });
    let unexpected: u64 = results.iter().map(|r| r.unexpected).sum();
    failed
        .map(|e| format!("connect failed: {e}"))
        .chain(dropped.map(|e| format!("disconnected: {e}")))
        .next()
        .or_else(|| (unexpected > 0).then(|| format!("{unexpected} unexpected frame(s)")))
}

struct Report<'a> {
    args: &'a Args,
    machine: &'a Machine,
    version: &'a str,
    node_dir: &'a Path,
    load_before: String,
    load_after: String,
    total: Duration,
    subjects: &'a [Subject],
    measurements: &'a [Measurement],
}

fn ms(us: Option<u32>) -> f64 {
    us.map_or(f64::NAN, |us| f64::from(us) / 1000.0)
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let a = r.args;
    let _ = writeln!(out, "### Fan-out inside a real lightningd: latest run\n");
    let _ = writeln!(out, "Command: `{}`\n", command("fanout"));
    let _ = writeln!(
        out,
        "Machine: {} cores ({}), {} RAM. Load average before: {}, after: {}. Total run time {:.0} s.\n",
        r.machine.cores,
        r.machine.cpu,
        r.machine.memory,
        r.load_before,
        r.load_after,
        r.total.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "lightningd {} (regtest, fake Bitcoin backend), node directories under {}. Per run: a new node, {} Socket.IO clients over websocket ({} client thread(s), read-only rune from `createrune`), {} `invoice` calls at {}/s; {} round(s), the order swapped every round.\n",
        r.version,
        r.node_dir.display(),
        thousands(a.clients as u64),
        a.client_threads,
        thousands(a.invoices),
        a.rate,
        a.rounds
    );
    let _ = writeln!(
        out,
        "| plugin | round | clients | delivered | lost | out of order | plugin CPU s (user + sys) | CPU us / delivery | p50 ms | p99 ms | max ms | RSS idle, clients connected MiB | invoices/s | machine busy |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in r.measurements {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} ({:.2} + {:.2}) | {:.2} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {:.0}% |",
            r.subjects[m.subject].label,
            m.round,
            thousands(m.connected as u64),
            thousands(m.summary.deliveries),
            thousands(m.summary.lost),
            thousands(m.summary.out_of_order),
            m.cpu(),
            m.phase.plugin_user_system.0,
            m.phase.plugin_user_system.1,
            m.cpu_per_delivery_us(),
            ms(m.summary.p50_us),
            ms(m.summary.p99_us),
            ms(m.summary.max_us),
            kib_as_mib(m.rss_idle_kib),
            m.invoice_rate(),
            100.0 * m.machine_busy(),
        );
    }
    let _ = writeln!(out);
    for m in r.measurements {
        let _ = writeln!(
            out,
            "- {} round {}: {} of {} clients connected in {:.1} s, RSS {} MiB before them; {} of {} expected deliveries ({} duplicates), {} {:.2} s after the last call{}{}.",
            r.subjects[m.subject].label,
            m.round,
            thousands(m.connected as u64),
            thousands(a.clients as u64),
            m.connect_time.as_secs_f64(),
            kib_as_mib(m.rss_start_kib),
            thousands(m.summary.deliveries),
            thousands(m.expected()),
            m.summary.duplicates,
            if m.phase.drained {
                "all delivered"
            } else {
                "gave up waiting"
            },
            m.phase.drain_time.as_secs_f64(),
            if m.dropped > 0 {
                format!("; {} client(s) disconnected", m.dropped)
            } else {
                String::new()
            },
            m.first_problem
                .as_deref()
                .map(|p| format!("; first problem: {p}"))
                .unwrap_or_default(),
        );
    }

    let _ = writeln!(
        out,
        "\nMedians over each plugin's runs (of an even count, the mean of the middle two):\n"
    );
    let mut header = "| plugin | delivered | lost | out of order | plugin CPU s | CPU us / delivery | p50 ms | p99 ms | RSS idle MiB |".to_string();
    let mut rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|".to_string();
    if r.subjects.len() > 1 {
        header.push_str(" CPU / delivery vs ours | p50 vs ours | p99 vs ours | RSS vs ours |");
        rule.push_str("---:|---:|---:|---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let medians: Vec<[f64; 8]> = (0..r.subjects.len())
        .map(|subject| {
            let runs: Vec<&Measurement> = r
                .measurements
                .iter()
                .filter(|m| m.subject == subject)
                .collect();
            let of = |f: &dyn Fn(&Measurement) -> f64| middle(runs.iter().map(|m| f(m)).collect());
            [
                of(&|m| m.summary.deliveries as f64),
                of(&|m| m.summary.lost as f64),
                of(&|m| m.summary.out_of_order as f64),
                of(&|m| m.cpu()),
                of(&|m| m.cpu_per_delivery_us()),
                of(&|m| ms(m.summary.p50_us)),
                of(&|m| ms(m.summary.p99_us)),
                of(&|m| m.rss_idle_kib as f64 / 1024.0),
            ]
        })
        .collect();
    for (subject, s) in r.subjects.iter().enumerate() {
        let m = &medians[subject];
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
            s.label,
            thousands(m[0] as u64),
            thousands(m[1] as u64),
            thousands(m[2] as u64),
            m[3],
            m[4],
            m[5],
            m[6],
            m[7]
        );
        if r.subjects.len() > 1 {
            let ours = &medians[0];
            let ratio = |i: usize| {
                if ours[i] > 0.0 {
                    format!("{:.2}x", m[i] / ours[i])
                } else {
                    "–".to_string()
                }
            };
            let _ = write!(
                out,
                " {} | {} | {} | {} |",
                ratio(4),
                ratio(5),
                ratio(6),
                ratio(7)
            );
        }
        let _ = writeln!(out);
    }
    out
}

/// The median of `values`, the mean of the two middle ones for an even count; NaN for none.
fn middle(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
