//! `cargo bench --bench rest -- --lightningd PATH`: the plugin inside a real regtest
//! lightningd (tests/real_node/node.rs starts it, with the fake Bitcoin backend), its
//! directory on tmpfs, measured against that node's own ceiling.
//!
//! Per concurrency (and per round), for each plugin under test, in one node per plugin:
//!
//! 1. the ceiling: `checkrune` + `getinfo` written as canned bytes straight to the node's
//!    `lightning-rpc`, one connection per worker, the answers only split at `"\n\n"`;
//! 2. the plugin: `POST /v1/getinfo` with a rune the node made, over HTTP/1.1 keep-alive by the
//!    minimal client of the breakdown (canned request bytes, one connection per worker, the
//!    answer's head read for its status and length).
//!
//! Each cell gets a discarded warm-up on its own connections first, so the CPU time read from
//! /proc around the measured part (lightningd, the plugin, this process) is per measured
//! request. With `--compare PATH` a second node runs that plugin binary; the two are measured
//! cell by cell, the order swapped every round. Every loop is bounded by time and by count
//! (`run_cell`); everything is on loopback.

use crate::load::{run_cell, Measured, Worker};
use crate::options::Options;
use crate::plugin::{rss, Rss};
use crate::report::machine_line;
use crate::runtime;
use crate::support::args::command;
use crate::support::format::{bytes_to_mib as mib, median, ms};
use crate::support::procfs::{self, load_average, Machine};
use crate::support::real_node::node::{NodeConfig, RealNode};
use crate::support::real_node::{
    lightningd_version, node_parent, start_plugin_node, subjects, use_lightningd, Subject,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// A running node with one plugin under test.
struct Node {
    label: String,
    node: RealNode,
    rune: String,
    port: u16,
    lightningd_pid: u32,
    plugin_pid: u32,
    /// The plugin's memory right after the node started, and after its top-concurrency cell.
    rss_start: Rss,
    rss_after_top: Option<Rss>,
    /// HTTPS clients (`--tls-new-connections`).
    tls: Option<TlsClients>,
}

/// CPU time per measured request, microseconds, and how busy the machine was.
#[derive(Clone, Copy, Debug, Default)]
struct CpuCost {
    lightningd_us: f64,
    plugin_us: f64,
    client_us: f64,
    /// Share of all cores busy during the cell, 0..1.
    machine_busy: f64,
}

/// CPU seconds (user + system) of the processes a cell involves, and of the machine.
struct CpuSnapshot {
    lightningd: f64,
    plugin: f64,
    client: f64,
    machine_busy: f64,
    machine_total: f64,
}

impl CpuSnapshot {
    fn take(node: &Node) -> CpuSnapshot {
        let (machine_busy, machine_total) = procfs::machine_cpu();
        CpuSnapshot {
            lightningd: procfs::cpu_seconds(node.lightningd_pid),
            plugin: procfs::cpu_seconds(node.plugin_pid),
            client: procfs::cpu_seconds("self"),
            machine_busy,
            machine_total,
        }
    }

    fn per_request(&self, after: &CpuSnapshot, requests: u64) -> CpuCost {
        let per = |before: f64, after: f64| {
            if requests == 0 {
                0.0
            } else {
                (after - before) * 1e6 / requests as f64
            }
        };
        let total = after.machine_total - self.machine_total;
        CpuCost {
            lightningd_us: per(self.lightningd, after.lightningd),
            plugin_us: per(self.plugin, after.plugin),
            client_us: per(self.client, after.client),
            machine_busy: if total > 0.0 {
                (after.machine_busy - self.machine_busy) / total
            } else {
                0.0
            },
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// checkrune + getinfo straight on lightning-rpc.
    Ceiling,
    /// POST /v1/getinfo through the plugin.
    Rest,
    /// POST /v1/getinfo over HTTPS, a new TCP connection and a full TLS handshake per request
    /// (`--tls-new-connections`).
    TlsFull,
    /// The same, the client resuming the TLS session of an earlier connection when the
    /// server gave it a ticket.
    TlsResumed,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Ceiling => "ceiling: checkrune + getinfo on lightning-rpc",
            Via::Rest => "POST /v1/getinfo, HTTP keep-alive",
            Via::TlsFull => "POST /v1/getinfo, HTTPS, new connection + full handshake each",
            Via::TlsResumed => "POST /v1/getinfo, HTTPS, new connection, session resumed",
        }
    }

    /// What a cell measures in this mode.
    fn paths(options: &Options) -> &'static [Via] {
        if options.tls_new_connections {
            &[Via::TlsFull, Via::TlsResumed]
        } else {
            &[Via::Ceiling, Via::Rest]
        }
    }
}

struct Row {
    subject: usize,
    round: usize,
    concurrency: usize,
    path: Via,
    measured: Measured,
    cpu: CpuCost,
}

/// Runs the real-node mode and prints its report to stdout.
pub fn run(options: &Options, lightningd: &Path) -> Result<(), String> {
    let lightningd = use_lightningd(lightningd)?;
    let subjects = subjects(options.compare.as_deref())?;

    let machine = Machine::read();
    let load_before = load_average("unknown");
    let began = Instant::now();
    let version = lightningd_version(&lightningd);
    let parent = node_parent(options.node_dir.as_deref());
    let temp = tempfile::Builder::new()
        .prefix("rest-bench-node-")
        .tempdir_in(&parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
    let load_rt = runtime("load", options.client_threads)?;

    let mut nodes = Vec::new();
    for (index, subject) in subjects.iter().enumerate() {
        eprintln!("starting lightningd with {}", subject.label);
        nodes.push(start_node(
            subject,
            &temp.path().join(format!("node{index}")),
            options.tls_new_connections,
        )?);
    }
    for node in &nodes {
        sanity_check(node, &load_rt)?;
    }

    let top = options.concurrency.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::new();
    for round in 1..=options.rounds {
        for &concurrency in &options.concurrency {
            // Swap the order every round so that neither plugin always runs first.
            let order: Vec<usize> = if round % 2 == 1 {
                (0..nodes.len()).collect()
            } else {
                (0..nodes.len()).rev().collect()
            };
            for subject in order {
                for &path in Via::paths(options) {
                    let node = &nodes[subject];
                    eprintln!(
                        "  round {round}, c={concurrency}: {} {}",
                        node.label,
                        path.name()
                    );
                    let (measured, cpu) = measure(options, node, path, concurrency, &load_rt)?;
                    rows.push(Row {
                        subject,
                        round,
                        concurrency,
                        path,
                        measured,
                        cpu,
                    });
                }
                if concurrency == top {
                    let node = &mut nodes[subject];
                    node.rss_after_top = Some(rss(node.plugin_pid));
                }
            }
        }
    }

    let report = render(&Report {
        options,
        machine: &machine,
        version: &version,
        node_dir: &parent,
        load_before,
        load_after: load_average("unknown"),
        total: began.elapsed(),
        subjects: &subjects,
        nodes: &nodes,
        rows: &rows,
    });
    print!("{report}");
    for node in &mut nodes {
        node.node.stop();
    }
    load_rt.shutdown_background();
    Ok(())
}

/// Starts a node with `subject`'s binary as its clnrest over HTTP (HTTPS with `https`, the
/// plugin making its certificates), and makes a rune.
fn start_node(subject: &Subject, directory: &Path, https: bool) -> Result<Node, String> {
    let config = if https {
        NodeConfig::with_options(&[])
    } else {
        NodeConfig::http()
    };
    let started = start_plugin_node(subject, directory, config)?;
    let (node, port, lightningd_pid, plugin_pid) = (
        started.node,
        started.port,
        started.lightningd_pid,
        started.plugin_pid,
    );
    let rune = node.create_rune(Value::Null);
    let rss_start = rss(plugin_pid);
    let tls = if https {
        Some(TlsClients::for_node(&node, port)?)
    } else {
        None
    };
    Ok(Node {
        tls,
        label: subject.label.clone(),
        node,
        rune,
        port,
        lightningd_pid,
        plugin_pid,
        rss_start,
        rss_after_top: None,
    })
}

/// One request each way before measuring anything, so that a refusal says why.
fn sanity_check(node: &Node, load_rt: &tokio::runtime::Runtime) -> Result<(), String> {
    if let Some(tls) = &node.tls {
        return load_rt.block_on(async {
            for resume in [false, true] {
                tls.worker(resume, &node.rune).once().await.map_err(|e| {
                    format!(
                        "{}: POST /v1/getinfo over HTTPS failed: {e}\n{}",
                        node.label,
                        node.node.log_tail(20)
                    )
                })?;
            }
            Ok(())
        });
    }
    load_rt.block_on(async {
        let mut socket = Worker::socket(&node.node.rpc_path, &node.rune).await?;
        socket
            .once()
            .await
            .map_err(|e| format!("{}: the ceiling's pair failed: {e}", node.label))?;
        let mut http = Worker::raw_http(node.port, &node.rune).await?;
        http.once().await.map_err(|e| {
            format!(
                "{}: POST /v1/getinfo failed: {e}\n{}",
                node.label,
                node.node.log_tail(20)
            )
        })
    })
}

async fn workers(node: &Node, path: Via, concurrency: usize) -> Result<Vec<Worker>, String> {
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        workers.push(match path {
            Via::Ceiling => Worker::socket(&node.node.rpc_path, &node.rune).await?,
            Via::Rest => Worker::raw_http(node.port, &node.rune).await?,
            Via::TlsFull | Via::TlsResumed => node
                .tls
                .as_ref()
                .ok_or("the node does not serve HTTPS")?
                .worker(path == Via::TlsResumed, &node.rune),
        });
    }
    Ok(workers)
}

/// A discarded warm-up on its own connections, then the measured cell with the CPU time read
/// around it.
fn measure(
    options: &Options,
    node: &Node,
    path: Via,
    concurrency: usize,
    load_rt: &tokio::runtime::Runtime,
) -> Result<(Measured, CpuCost), String> {
    if !options.warmup.is_zero() {
        let warm = load_rt.block_on(workers(node, path, concurrency))?;
        load_rt.block_on(run_cell(warm, Duration::ZERO, options.warmup));
    }
    let measured_workers = load_rt.block_on(workers(node, path, concurrency))?;
    let before = CpuSnapshot::take(node);
    let measured = load_rt.block_on(run_cell(measured_workers, Duration::ZERO, options.duration));
    let after = CpuSnapshot::take(node);
    let cpu = before.per_request(&after, measured.ok + measured.errors);
    Ok((measured, cpu))
}

struct Report<'a> {
    options: &'a Options,
    machine: &'a Machine,
    version: &'a str,
    node_dir: &'a Path,
    load_before: String,
    load_after: String,
    total: Duration,
    subjects: &'a [Subject],
    nodes: &'a [Node],
    rows: &'a [Row],
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let o = r.options;
    let _ = writeln!(out, "### REST inside a real lightningd: latest run\n");
    let _ = writeln!(out, "Command: `{}`\n", command("rest"));
    let _ = writeln!(
        out,
        "{}",
        machine_line(r.machine, &r.load_before, &r.load_after, r.total)
    );
    let _ = writeln!(
        out,
        "lightningd {} (regtest, fake Bitcoin backend), node directories under {}. Per cell: {:.1} s measured after a {} ms warm-up on other connections; {} round(s); load generator: {} thread(s), one connection per worker.\n",
        r.version,
        r.node_dir.display(),
        o.duration.as_secs_f64(),
        o.warmup.as_millis(),
        o.rounds,
        o.client_threads
    );
    let _ = writeln!(
        out,
        "| plugin | round | concurrency | path | req/s | p50 ms | p99 ms | errors | vs ceiling | p50 added ms | lightningd CPU us/req | plugin CPU us/req | client CPU us/req | machine busy |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in r.rows {
        let m = &row.measured;
        let ceiling = ceiling_of(r.rows, row);
        let (ratio, added) = match (row.path, ceiling) {
            (Via::Rest, Some(c)) if c.per_second() > 0.0 => (
                format!("{:.0}%", 100.0 * m.per_second() / c.per_second()),
                format!("{:+.3}", ms(m.p50) - ms(c.p50)),
            ),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0}% |",
            r.subjects[row.subject].label,
            row.round,
            row.concurrency,
            row.path.name(),
            m.per_second(),
            ms(m.p50),
            ms(m.p99),
            m.errors,
            ratio,
            added,
            row.cpu.lightningd_us,
            row.cpu.plugin_us,
            row.cpu.client_us,
            100.0 * row.cpu.machine_busy
        );
    }
    for row in r.rows {
        if let Some(e) = &row.measured.first_error {
            let _ = writeln!(
                out,
                "\nFirst error ({}, round {}, c={}): `{e}`",
                r.subjects[row.subject].label, row.round, row.concurrency
            );
        }
    }

    // Per plugin and concurrency, the medians over the rounds.
    let _ = writeln!(
        out,
        "\nSummary (medians over {} round(s)):\n",
        r.options.rounds
    );
    let mut header =
        "| concurrency | path | plugin | req/s | ceiling req/s | vs ceiling | p50 ms | p99 ms | plugin CPU us/req |"
            .to_string();
    let mut rule = "|---:|---|---|---:|---:|---:|---:|---:|---:|".to_string();
    if r.subjects.len() > 1 {
        header.push_str(" vs this tree's req/s |");
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let measured_paths = Via::paths(o).iter().filter(|p| **p != Via::Ceiling);
    for (&concurrency, &path) in o
        .concurrency
        .iter()
        .flat_map(|c| measured_paths.clone().map(move |p| (c, p)))
    {
        for (subject, s) in r.subjects.iter().enumerate() {
            let rests: Vec<&Row> = r
                .rows
                .iter()
                .filter(|row| {
                    row.subject == subject && row.concurrency == concurrency && row.path == path
                })
                .collect();
            let ceilings: Vec<f64> = rests
                .iter()
                .filter_map(|row| ceiling_of(r.rows, row))
                .map(Measured::per_second)
                .collect();
            let ratios: Vec<f64> = rests
                .iter()
                .filter_map(|row| {
                    let c = ceiling_of(r.rows, row)?.per_second();
                    (c > 0.0).then(|| row.measured.per_second() / c)
                })
                .collect();
            let _ = write!(
                out,
                "| {concurrency} | {} | {} | {:.0} | {} | {} | {:.3} | {:.3} | {:.0} |",
                path.name(),
                s.label,
                median(rests.iter().map(|row| row.measured.per_second()).collect()),
                if ceilings.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.0}", median(ceilings))
                },
                if ratios.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.0}%", 100.0 * median(ratios))
                },
                median(rests.iter().map(|row| ms(row.measured.p50)).collect()),
                median(rests.iter().map(|row| ms(row.measured.p99)).collect()),
                median(rests.iter().map(|row| row.cpu.plugin_us).collect()),
            );
            if r.subjects.len() > 1 {
                // Per round: this plugin's req/s over ours in the same round.
                let versus: Vec<f64> = rests
                    .iter()
                    .filter_map(|row| {
                        let ours = r.rows.iter().find(|o| {
                            o.subject == 0
                                && o.round == row.round
                                && o.concurrency == concurrency
                                && o.path == path
                        })?;
                        let ours = ours.measured.per_second();
                        (ours > 0.0).then(|| row.measured.per_second() / ours)
                    })
                    .collect();
                let _ = write!(out, " {:.2}x |", median(versus));
            }
            let _ = writeln!(out);
        }
    }

    let _ = writeln!(out, "\nPlugin memory (VmRSS from /proc/<pid>/status):\n");
    let _ = writeln!(
        out,
        "| plugin | at start MiB | after the top concurrency MiB | VmHWM MiB | threads |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for node in r.nodes {
        let after = node.rss_after_top.unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {} |",
            node.label,
            mib(node.rss_start.now),
            mib(after.now),
            mib(after.peak),
            after.threads
        );
    }
    out
}

/// The ceiling measured just before `row`, on the same node.
fn ceiling_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Measured> {
    rows.iter()
        .find(|c| {
            c.path == Via::Ceiling
                && c.subject == row.subject
                && c.round == row.round
                && c.concurrency == row.concurrency
        })
        .map(|c| &c.measured)
}

/// HTTPS clients for `--tls-new-connections`: reqwest over rustls (ring), trusting the node's
/// `ca.pem` (both plugins write one), `localhost` resolved to 127.0.0.1 without DNS, HTTP/1.1,
/// no connection kept (a new TCP connection and TLS handshake per request).
struct TlsClients {
    full: reqwest::Client,
    resumed: reqwest::Client,
    url: String,
}

impl TlsClients {
    fn for_node(node: &RealNode, port: u16) -> Result<TlsClients, String> {
        let ca_path = node.network_dir.join("ca.pem");
        let ca = std::fs::read(&ca_path).map_err(|e| format!("{}: {e}", ca_path.display()))?;
        let client = |resume: bool| -> Result<reqwest::Client, String> {
            let mut config = mock_lightningd::client_tls::trusting(&ca);
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            if !resume {
                config.resumption = rustls::client::Resumption::disabled();
            }
            reqwest::Client::builder()
                .use_preconfigured_tls(config)
                .resolve(
                    "localhost",
                    std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                )
                .pool_max_idle_per_host(0)
                .timeout(crate::load::REQUEST_TIMEOUT)
                .tcp_nodelay(true)
                .no_proxy()
                .build()
                .map_err(|e| format!("reqwest client: {e}"))
        };
        Ok(TlsClients {
            full: client(false)?,
            resumed: client(true)?,
            url: format!("https://localhost:{port}/v1/getinfo"),
        })
    }

    fn worker(&self, resume: bool, rune: &str) -> Worker {
        let client = if resume { &self.resumed } else { &self.full };
        Worker::rest_to(client.clone(), self.url.clone(), rune)
    }
}
