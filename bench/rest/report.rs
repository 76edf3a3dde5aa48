//! The report: Markdown tables of the cells, the plugin's memory, the connection cost and the
//! large result, then the verdicts.

use crate::large::{LargeResult, LargeRun};
use crate::load::Measured;
use crate::options::{Options, Protocol};
use crate::plugin::PluginMemory;
use crate::support::args::command;
use crate::support::format::{bytes_to_mib as mib, ms};
use crate::support::procfs::Machine;
use crate::support::verdict::Verdicts;
use crate::verdict;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Ceiling,
    /// Judged against the targets.
    Plugin,
    /// Where the time goes; not judged.
    Breakdown,
}

pub struct CellRow {
    pub kind: RowKind,
    pub service_time_us: u64,
    pub concurrency: usize,
    pub client: String,
    pub measured: Measured,
    pub ceiling: Option<Measured>,
}

pub struct HandshakeRow {
    pub protocol: Protocol,
    pub concurrency: usize,
    pub new_connection: Measured,
    pub keep_alive: Option<Measured>,
}

pub struct Report<'a> {
    pub options: &'a Options,
    pub machine: &'a Machine,
    pub load_before: String,
    pub load_after: String,
    pub total: Duration,
    pub rows: &'a [CellRow],
    pub memory: &'a [PluginMemory],
    pub handshakes: &'a [HandshakeRow],
    pub handshake_service_time: Option<u64>,
    pub large: Option<&'a LargeResult>,
}

impl Report<'_> {
    pub fn render(&self) -> (String, bool) {
        let mut out = String::new();
        let o = self.options;
        let _ = writeln!(out, "### REST throughput and latency: latest run\n");
        let _ = writeln!(out, "Command: `{}`\n", command("rest"));
        let _ = writeln!(
            out,
            "{}",
            machine_line(
                self.machine,
                &self.load_before,
                &self.load_after,
                self.total
            )
        );
        let _ = writeln!(
            out,
            "Per cell: {:.1} s measured after {} ms warm-up; service times (checkrune, writes serialized when > 0): {:?} us.\n",
            o.duration.as_secs_f64(),
            o.warmup.as_millis(),
            o.service_times_us
        );

        let _ = writeln!(
            out,
            "| service time | concurrency | client | req/s | p50 ms | p99 ms | errors | vs ceiling | p50 added ms |"
        );
        let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        for row in self.rows {
            let m = &row.measured;
            let (ratio, added) = match &row.ceiling {
                Some(c) if c.per_second() > 0.0 => (
                    format!("{:.0}%", 100.0 * m.per_second() / c.per_second()),
                    format!("{:+.3}", ms(m.p50) - ms(c.p50)),
                ),
                _ => ("".into(), "".into()),
            };
            let _ = writeln!(
                out,
                "| {} us | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} |",
                row.service_time_us,
                row.concurrency,
                row.client,
                m.per_second(),
                ms(m.p50),
                ms(m.p99),
                m.errors,
                ratio,
                added
            );
        }
        for row in self.rows {
            if let Some(e) = &row.measured.first_error {
                let _ = writeln!(
                    out,
                    "\nFirst error ({} us, c={}, {}): `{}`",
                    row.service_time_us, row.concurrency, row.client, e
                );
            }
        }

        // What the mock's service time really costs: tokio's timer rounds sleeps up to
        // whole milliseconds.
        let ceiling_c1 = |service_time_us: u64| {
            self.rows
                .iter()
                .find(|r| {
                    r.service_time_us == service_time_us
                        && r.concurrency == 1
                        && r.kind == RowKind::Ceiling
                })
                .map(|r| r.measured.p50)
        };
        for &service_time_us in o.service_times_us.iter().filter(|&&t| t > 0) {
            if let (Some(with), Some(without)) = (ceiling_c1(service_time_us), ceiling_c1(0)) {
                let _ = writeln!(
                    out,
                    "\nService time asked {service_time_us} us; measured at c=1 (ceiling p50 with it minus without): {:.3} ms.",
                    ms(with) - ms(without)
                );
            }
        }

        let _ = writeln!(out, "\nPlugin memory (from /proc/<pid>/status):\n");
        let _ = writeln!(
            out,
            "| service time | plugin | VmRSS at init MiB | idle VmRSS MiB (anon + file), 0.5 s later | threads | VmRSS after top concurrency MiB (anon + file) | VmHWM MiB |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|");
        for m in self.memory {
            let (after, peak) = match m.after_top {
                Some((c, r)) => (
                    format!(
                        "{:.1} ({:.1} + {:.1}) (c={c})",
                        mib(r.now),
                        mib(r.anon),
                        mib(r.file)
                    ),
                    format!("{:.1}", mib(r.peak)),
                ),
                None => ("".into(), "".into()),
            };
            let _ = writeln!(
                out,
                "| {} us | {} | {:.1} | {:.1} ({:.1} + {:.1}) | {} | {} | {} |",
                m.service_time_us,
                if m.certificates_reused {
                    format!("{} (restart, certificates reused)", m.protocol.name())
                } else {
                    m.protocol.name().to_string()
                },
                mib(m.at_init.now),
                mib(m.idle.now),
                mib(m.idle.anon),
                mib(m.idle.file),
                m.idle.threads,
                after,
                peak
            );
        }

        if !self.handshakes.is_empty() {
            let _ = writeln!(
                out,
                "\nConnection cost (service time {} us): a new connection per request vs keep-alive:\n",
                self.handshake_service_time.unwrap_or(0)
            );
            let _ = writeln!(
                out,
                "| protocol | concurrency | new conn req/s | new conn p50 ms | new conn p99 ms | errors | keep-alive req/s | keep-alive p50 ms | cost per connection (p50) ms |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for h in self.handshakes {
                let n = &h.new_connection;
                let (ka_rps, ka_p50, cost) = match &h.keep_alive {
                    Some(k) => (
                        format!("{:.0}", k.per_second()),
                        format!("{:.3}", ms(k.p50)),
                        format!("{:.3}", ms(n.p50) - ms(k.p50)),
                    ),
                    None => ("".into(), "".into(), "".into()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} |",
                    h.protocol.name(),
                    h.concurrency,
                    n.per_second(),
                    ms(n.p50),
                    ms(n.p99),
                    n.errors,
                    ka_rps,
                    ka_p50,
                    cost
                );
            }
            for h in self.handshakes {
                if let Some(e) = &h.new_connection.first_error {
                    let _ = writeln!(
                        out,
                        "\nFirst error ({} new connection, c={}): `{e}`",
                        h.protocol.name(),
                        h.concurrency
                    );
                }
            }
        }

        let mut verdicts = Verdicts::default();
        verdict::judge_cells(self.rows, self.memory, &mut verdicts);
        if let Some(large) = self.large {
            render_large(&mut out, large);
            verdict::judge_large(large, &mut verdicts);
        }
        let _ = writeln!(out, "\nTargets:\n");
        out.push_str(&verdicts.lines());
        (out, !verdicts.failed())
    }
}

/// The large result's table.
pub fn render_large(out: &mut String, large: &LargeResult) {
    let size = large.plain.first().map_or(0, |r| r.body);
    let _ = writeln!(
        out,
        "\nLarge result: `listinvoices` with {} invoices, {:.1} MB of JSON (peak RSS from {}):\n",
        large.invoices,
        size as f64 / 1e6,
        if large.hwm_reset {
            "VmHWM reset before each request"
        } else {
            "VmRSS sampled every 2 ms"
        }
    );
    let _ = writeln!(
        out,
        "| path | Accept-Encoding | body MB | wall ms | ratio | RSS before MiB | peak RSS growth MiB | growth / response | RSS after MiB |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (wall, bytes) in &large.direct {
        let _ = writeln!(
            out,
            "| socket (direct) | | {:.1} | {:.0} | | | | | |",
            *bytes as f64 / 1e6,
            ms(*wall)
        );
    }
    let row = |out: &mut String, encoding: &str, r: &LargeRun| {
        let growth = r.rss_peak.saturating_sub(r.rss_before);
        let ratio = if r.body > 0 {
            format!("{:.1}x smaller", size as f64 / r.body as f64)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| plugin (HTTP) | {} | {:.2} | {:.0} | {} | {:.1} | {:.1} | {:.2} | {:.1} |",
            encoding,
            r.body as f64 / 1e6,
            ms(r.wall),
            if encoding == "identity" {
                String::new()
            } else {
                ratio
            },
            mib(r.rss_before),
            mib(growth),
            growth as f64 / size.max(1) as f64,
            mib(r.rss_after)
        );
    };
    for r in &large.plain {
        row(out, "identity", r);
    }
    for (encoding, outcome) in &large.compressed {
        match outcome {
            Ok(r) => row(out, &format!("{encoding} (got {})", r.content_encoding), r),
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| plugin (HTTP) | {encoding} | failed: {e} | | | | | | |"
                );
            }
        }
    }
}

/// `Machine: 2 cores (model), 7.8 GiB RAM. Load average before: ..., after: .... Total run
/// time 12 s.`
pub fn machine_line(
    machine: &Machine,
    load_before: &str,
    load_after: &str,
    total: Duration,
) -> String {
    format!(
        "Machine: {} cores ({}), {} RAM. Load average before: {}, after: {}. Total run time {:.0} s.",
        machine.cores,
        machine.cpu,
        machine.memory,
        load_before,
        load_after,
        total.as_secs_f64()
    )
}
