//! The report: a table per phase, the plugin's memory, and the details.

use crate::phases::Run;
use crate::record::{ClientResult, PhaseSummary, STEADY};
use crate::sched::{sched_summary, sched_total, secs};
use crate::support::format::{kib_as_mib, thousands, us_as_ms};
use crate::Args;
use std::fmt::Write as _;

/// Microseconds as `1.23 ms`, or `–`.
fn ms(us: Option<u32>) -> String {
    match us {
        Some(_) => format!("{} ms", us_as_ms(us)),
        None => us_as_ms(us),
    }
}

fn mib(kib: u64) -> String {
    format!("{} MiB", kib_as_mib(kib))
}

pub fn render(args: &Args, run: &Run, results: &mut [ClientResult]) -> String {
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
        let PhaseSummary {
            deliveries,
            lost,
            lost_clients,
            lost_kept_up,
            out_of_order: ooo,
            duplicates: dups,
            p50_us: p50,
            p99_us: p99,
            max_us: max,
            worst_client_p99_us: worst_client_p99,
        } = PhaseSummary::of(results, phase);
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
