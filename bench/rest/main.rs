//! REST throughput and latency benchmark (issue: "The benchmark harness").
//!
//! Run: `cargo bench --bench rest` (flags after `--`, see `--help`). It starts the real plugin
//! binary inside the mock lightningd (tests/mock_lightningd) over loopback and drives
//! `POST /v1/getinfo` with a valid rune over HTTP and HTTPS (keep-alive) at concurrency 1, 8
//! and 32. In the same run it measures the ceiling: the same `checkrune` + `getinfo` pair sent
//! straight to the mock's `lightning-rpc` socket at the same concurrency. Then the HTTPS
//! handshake cost (new connection per request vs keep-alive) and the large-result case
//! (`listinvoices` with 100,000 invoices, plain and compressed). It prints Markdown tables and
//! a PASS/FAIL line per target to stdout (progress goes to stderr); docs/performance.md keeps
//! the latest output.
//!
//! With `--lightningd PATH` it runs instead against a real regtest lightningd
//! (`real_node.rs`): the plugin inside the node, against that node's own ceiling, over HTTP
//! only.
//!
//! Layout: the mock lightningd runs on its own tokio runtime ("mock" threads), the load
//! generator on another ("load" threads), the plugin is a child process. Every loop is bounded
//! by time and by count; everything is on loopback.
//!
//! Modules: `options` (the command line), `plugin` (the plugin behind the mock, its memory),
//! `load` (workers and measured cells), `breakdown` (where the added latency goes), `large`
//! (the large-result case), `report` (the tables), `verdict` (the targets, PASS/FAIL),
//! `real_node` (the `--lightningd` mode); `../support` is shared with the other benches.

#[path = "../support/mod.rs"]
mod support;

mod breakdown;
mod large;
mod load;
mod options;
mod plugin;
mod real_node;
mod report;
mod verdict;

use load::{run_cell, Worker};
use options::{Options, Protocol, USAGE};
use plugin::{restarted_https_memory, rss, Gateway, PluginMemory};
use report::{CellRow, HandshakeRow, Report, RowKind};
use std::time::{Duration, Instant};
use support::args::ArgError;
use support::procfs::{load_average, Machine};
use tokio::runtime::Runtime;

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(ArgError::Help) => {
            eprint!("{USAGE}");
            std::process::exit(0);
        }
        Err(ArgError::Invalid(message)) => {
            eprintln!("{message}\n");
            eprint!("{USAGE}");
            std::process::exit(2);
        }
    };
    let outcome = match &options.lightningd {
        Some(lightningd) => real_node::run(&options, lightningd).map(|()| true),
        None => run(&options),
    };
    match outcome {
        Ok(all_passed) => {
            if options.strict && !all_passed {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("rest bench failed: {e}");
            std::process::exit(2);
        }
    }
}

pub fn runtime(name: &str, threads: usize) -> Result<Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the {name} runtime: {e}"))
}

fn run(options: &Options) -> Result<bool, String> {
    let machine = Machine::read();
    let load_before = load_average("unknown");
    let began = Instant::now();
    let threads = machine.cores.max(1);
    let mock_rt = runtime("mock", threads)?;
    let load_rt = runtime("load", threads)?;

    let mut rows: Vec<CellRow> = Vec::new();
    let mut memory: Vec<PluginMemory> = Vec::new();
    let mut handshakes: Vec<HandshakeRow> = Vec::new();
    let mut handshake_service_time = None;
    let top = options.concurrency.iter().copied().max().unwrap_or(1);

    if options.protocols.contains(&Protocol::Https) {
        eprintln!("starting the plugin twice in one lightning-dir (HTTPS, certificates reused)");
        memory.push(restarted_https_memory(&mock_rt)?);
    }

    for &service_time_us in &options.service_times_us {
        let mut gateways = Vec::new();
        let mut at_init = Vec::new();
        for &protocol in &options.protocols {
            eprintln!(
                "starting the plugin ({}, service time {service_time_us} us)",
                protocol.name()
            );
            let gateway = mock_rt.block_on(Gateway::start(protocol))?;
            at_init.push(rss(gateway.pid));
            gateway.set_service_time(service_time_us);
            gateways.push(gateway);
        }
        // Let start-up work (certificates, first log lines) settle before "idle".
        std::thread::sleep(Duration::from_millis(500));
        let mut memories: Vec<PluginMemory> = gateways
            .iter()
            .zip(at_init)
            .map(|(g, at_init)| PluginMemory::idle(g, service_time_us, false, at_init))
            .collect();
        let rpc_path = gateways
            .first()
            .map(|g| g.node.rpc_path())
            .ok_or("no protocol to run")?;
        let ceiling_rune = gateways[0].rune.clone();

        for &concurrency in &options.concurrency {
            eprintln!("  c={concurrency}: ceiling");
            let workers = load_rt.block_on(async {
                let mut workers = Vec::new();
                for _ in 0..concurrency {
                    workers.push(Worker::socket(&rpc_path, &ceiling_rune).await?);
                }
                Ok::<_, String>(workers)
            })?;
            let ceiling = load_rt.block_on(run_cell(workers, options.warmup, options.duration));
            rows.push(CellRow {
                kind: RowKind::Ceiling,
                service_time_us,
                concurrency,
                client: "ceiling (socket)".into(),
                measured: ceiling.clone(),
                ceiling: None,
            });
            for (gateway, memory) in gateways.iter().zip(memories.iter_mut()) {
                eprintln!("  c={concurrency}: {}", gateway.protocol.name());
                let workers = {
                    let _guard = load_rt.enter();
                    (0..concurrency)
                        .map(|_| Worker::rest(gateway, true))
                        .collect::<Result<Vec<_>, _>>()?
                };
                let measured =
                    load_rt.block_on(run_cell(workers, options.warmup, options.duration));
                if concurrency == top {
                    memory.after_top = Some((concurrency, rss(gateway.pid)));
                }
                rows.push(CellRow {
                    kind: RowKind::Plugin,
                    service_time_us,
                    concurrency,
                    client: format!("{} keep-alive", gateway.protocol.name()),
                    measured,
                    ceiling: Some(ceiling.clone()),
                });
            }
        }
        memory.extend(memories);

        // Where the added latency goes, at c=1 over HTTP, once.
        let http_gateway = gateways.iter().find(|g| g.protocol == Protocol::Http);
        if let (true, false, Some(gateway)) = (
            options.breakdown,
            rows.iter().any(|r| r.kind == RowKind::Breakdown),
            http_gateway,
        ) {
            breakdown::run(
                options,
                gateway,
                service_time_us,
                &mock_rt,
                &load_rt,
                &mut rows,
            )?;
        }

        // The handshake cost, once, on the first service time's plugins.
        if handshake_service_time.is_none() && !options.handshake.is_zero() {
            handshake_service_time = Some(service_time_us);
            for gateway in &gateways {
                for concurrency in [1usize, 8] {
                    eprintln!(
                        "  handshake: {} new connection per request, c={concurrency}",
                        gateway.protocol.name()
                    );
                    let workers = {
                        let _guard = load_rt.enter();
                        (0..concurrency)
                            .map(|_| Worker::rest(gateway, false))
                            .collect::<Result<Vec<_>, _>>()?
                    };
                    let new_connection = load_rt.block_on(run_cell(
                        workers,
                        options.warmup.min(Duration::from_millis(100)),
                        options.handshake,
                    ));
                    let label = format!("{} keep-alive", gateway.protocol.name());
                    let keep_alive = rows
                        .iter()
                        .find(|r| {
                            r.service_time_us == service_time_us
                                && r.concurrency == concurrency
                                && r.client == label
                        })
                        .map(|r| r.measured.clone());
                    handshakes.push(HandshakeRow {
                        protocol: gateway.protocol,
                        concurrency,
                        new_connection,
                        keep_alive,
                    });
                }
            }
        }

        let _guard = mock_rt.enter();
        drop(gateways);
    }

    let large = if options.invoices > 0 {
        Some(large::run(options, &mock_rt, &load_rt)?)
    } else {
        None
    };

    let report = Report {
        options,
        machine: &machine,
        load_before,
        load_after: load_average("unknown"),
        total: began.elapsed(),
        rows: &rows,
        memory: &memory,
        handshakes: &handshakes,
        handshake_service_time,
        large: large.as_ref(),
    };
    let (text, all_passed) = report.render();
    print!("{text}");
    {
        let _guard = mock_rt.enter();
        drop(large);
    }
    // The runtimes may hold the mocks' socket tasks; do not wait for them.
    mock_rt.shutdown_background();
    load_rt.shutdown_background();
    Ok(all_passed)
}
