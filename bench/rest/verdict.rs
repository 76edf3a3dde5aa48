//! The targets (the numbers) and the PASS/FAIL lines that judge a run against them.

use crate::large::LargeResult;
use crate::plugin::{PluginMemory, Rss};
use crate::report::{CellRow, RowKind};
use crate::support::format::{bytes_to_mib as mib, median, ms};
use crate::support::verdict::Verdicts;

pub const TARGET_THROUGHPUT_RATIO: f64 = 0.90;
pub const TARGET_ADDED_P50_MS: f64 = 0.1;
pub const TARGET_IDLE_RSS_MIB: f64 = 8.0;
pub const TARGET_AFTER_RSS_MIB: f64 = 16.0;
pub const TARGET_LARGE_RSS_FACTOR: f64 = 1.5;
pub const TARGET_LARGE_WALL_FACTOR: f64 = 1.2;
pub const TARGET_COMPRESSION_RATIO: f64 = 5.0;

/// Throughput and added latency against the ceiling, idle RSS and RSS after the top
/// concurrency.
pub fn judge_cells(rows: &[CellRow], memory: &[PluginMemory], verdicts: &mut Verdicts) {
    // Throughput per (service time, protocol): every concurrency at >= 90%.
    let mut groups: Vec<(u64, String)> = Vec::new();
    for row in rows.iter().filter(|r| r.kind == RowKind::Plugin) {
        let key = (row.service_time_us, row.client.clone());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    for (service_time_us, client) in &groups {
        let mut pass = true;
        let mut parts = Vec::new();
        for row in rows.iter().filter(|r| {
            r.kind == RowKind::Plugin
                && r.service_time_us == *service_time_us
                && &r.client == client
        }) {
            let ceiling = row.ceiling.as_ref().map_or(0.0, |c| c.per_second());
            let ratio = if ceiling > 0.0 {
                row.measured.per_second() / ceiling
            } else {
                0.0
            };
            pass &= ratio >= TARGET_THROUGHPUT_RATIO && row.measured.errors == 0;
            parts.push(format!(
                "c={} {:.0}%{}",
                row.concurrency,
                100.0 * ratio,
                if row.measured.errors > 0 {
                    format!(" ({} errors)", row.measured.errors)
                } else {
                    String::new()
                }
            ));
        }
        verdicts.add(
            pass,
            format!(
                "throughput >= 90% of the ceiling, {client}, service time {service_time_us} us: {}",
                parts.join(", ")
            ),
        );
    }
    // Added latency at concurrency 1 over HTTP.
    for row in rows.iter().filter(|r| {
        r.kind == RowKind::Plugin && r.concurrency == 1 && r.client == "HTTP keep-alive"
    }) {
        if let Some(ceiling) = &row.ceiling {
            let added = ms(row.measured.p50) - ms(ceiling.p50);
            verdicts.add(
                added <= TARGET_ADDED_P50_MS,
                format!(
                    "added p50 latency at c=1 over HTTP <= 0.1 ms, service time {} us: {:.3} ms (plugin {:.3} - ceiling {:.3})",
                    row.service_time_us,
                    added,
                    ms(row.measured.p50),
                    ms(ceiling.p50)
                ),
            );
        }
    }
    if let Some(worst) = memory.iter().map(|m| m.idle.now).max() {
        verdicts.add(
            mib(worst) <= TARGET_IDLE_RSS_MIB,
            format!(
                "idle RSS <= 8 MiB: {:.1} MiB (largest of {} plugin starts)",
                mib(worst),
                memory.len()
            ),
        );
    }
    let afters: Vec<(usize, Rss)> = memory.iter().filter_map(|m| m.after_top).collect();
    if let Some(&(c, worst)) = afters.iter().max_by_key(|(_, r)| r.now) {
        let peak = afters.iter().map(|(_, r)| r.peak).max().unwrap_or(0);
        verdicts.add(
            mib(worst.now) <= TARGET_AFTER_RSS_MIB,
            format!(
                "RSS <= 16 MiB after the c={c} run: {:.1} MiB (peak VmHWM {:.1} MiB)",
                mib(worst.now),
                mib(peak)
            ),
        );
    }
}

/// The large result: peak RSS growth, wall time against the socket's, compression.
pub fn judge_large(large: &LargeResult, verdicts: &mut Verdicts) {
    let direct_wall = median(large.direct.iter().map(|d| d.0).collect());
    let frame = large.direct.first().map_or(0, |d| d.1);
    let plugin_wall = median(large.plain.iter().map(|r| r.wall).collect());
    let size = large.plain.first().map_or(0, |r| r.body);
    let worst_growth = large
        .plain
        .iter()
        .map(|r| r.rss_peak.saturating_sub(r.rss_before))
        .max()
        .unwrap_or(0);
    verdicts.add(
        size > 0 && (worst_growth as f64) <= TARGET_LARGE_RSS_FACTOR * size as f64,
        format!(
            "large result peak RSS growth <= 1.5x the response: {:.1} MiB for {:.1} MiB ({:.2}x, worst of {})",
            mib(worst_growth),
            mib(size as u64),
            worst_growth as f64 / size.max(1) as f64,
            large.plain.len()
        ),
    );
    // Each plugin request ran right after a direct one: the median of the pairs' ratios
    // cancels slow drifts in what else the machine is doing.
    let mut ratios: Vec<f64> = large
        .direct
        .iter()
        .zip(&large.plain)
        .map(|(d, p)| ms(p.wall) / ms(d.0).max(1e-9))
        .collect();
    let first = ratios.first().copied().unwrap_or(f64::INFINITY);
    ratios.sort_by(|a, b| a.total_cmp(b));
    let wall_ratio = ratios
        .get(ratios.len() / 2)
        .copied()
        .unwrap_or(f64::INFINITY);
    verdicts.add(
        wall_ratio <= TARGET_LARGE_WALL_FACTOR,
        format!(
            "large result wall time <= 1.2x the socket's: {wall_ratio:.2}x (median of {} interleaved pairs, the first {first:.2}x; medians {:.0} ms vs {:.0} ms; direct frame {:.1} MB)",
            ratios.len(),
            ms(plugin_wall),
            ms(direct_wall),
            frame as f64 / 1e6
        ),
    );
    for (encoding, outcome) in &large.compressed {
        match outcome {
            Ok(r) => {
                let ratio = size as f64 / r.body.max(1) as f64;
                verdicts.add(
                    r.content_encoding == *encoding && ratio >= TARGET_COMPRESSION_RATIO,
                    format!(
                        "large result with Accept-Encoding: {encoding} shrinks >= 5x: {ratio:.1}x ({:.2} MB, Content-Encoding {}, {:.0} ms)",
                        r.body as f64 / 1e6,
                        r.content_encoding,
                        ms(r.wall)
                    ),
                );
            }
            Err(e) => verdicts.add(false, format!("large result with {encoding}: {e}")),
        }
    }
}
