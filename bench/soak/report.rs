//! The report: per minute, REST, the steady clients, memory and descriptors, samples,
//! errors, then the verdicts.

use crate::process::Sample;
use crate::rest_load::Kind;
use crate::run::Run;
use crate::shared::{Shared, MAX_EXAMPLES};
use crate::socketio::excerpt;
use crate::support::format::{kib_as_mib as mib, quantile, thousands, us_as_ms};
use crate::support::verdict::Verdicts;
use crate::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `q` quantile (0..=1) of `values`, which it reorders; in milliseconds.
fn quantile_ms(values: &mut [u32], q: f64) -> String {
    us_as_ms(quantile(values, q))
}

pub fn render(args: &Args, run: &Run, verdicts: &Verdicts) -> String {
    let shared = &run.shared;
    let mut out = String::new();
    let minutes = args.minutes as usize;
    let _ = writeln!(out, "## Soak: {} minute(s)\n", args.minutes);
    let _ = writeln!(
        out,
        "Plugin pid {} over plain HTTP, built from {}. REST at concurrency {} (keep-alive), {} churning + {} steady Socket.IO clients, a burst of {} notifications every minute and {}/s in between. Seed {}. Machine: {} cores, load average {} at the start, {} at the end. {:.0} s in all.\n",
        run.pid,
        run.source,
        args.concurrency,
        args.churn_clients,
        args.steady_clients,
        thousands(args.burst),
        args.trickle,
        args.seed,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        run.load_start,
        run.load_end,
        run.elapsed_secs,
    );
    if let Some(fatal) = &run.fatal {
        let _ = writeln!(out, "**The run stopped early: {fatal}**\n");
    }

    // Per minute.
    let mut latencies: Vec<Vec<u32>> = vec![Vec::new(); minutes + 1];
    for worker in &run.rest {
        for (slot, values) in worker.latencies_us.iter().enumerate() {
            latencies[slot].extend_from_slice(values);
        }
    }
    let _ = writeln!(
        out,
        "Per minute (RSS, fds and threads at the minute's checkpoint, 55 s in, churning clients away; max over the 10 s samples; plugin CPU per request includes its share of the notifications; other processes' CPU is the machine's busy time minus the plugin's and this process's):\n"
    );
    let _ = writeln!(
        out,
        "| minute | notifications pushed | burst push s | REST requests | req/s | p50 ms | p99 ms | unintended errors REST | unintended errors Socket.IO / push | churn connects | RSS MiB | RSS max MiB | fds | fds max | threads | plugin CPU s (µs per request) | machine busy | other processes' CPU s |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (slot, values) in latencies.iter_mut().enumerate() {
        let load = |slots: &[AtomicU64]| slots[slot].load(Ordering::Relaxed);
        let requests = load(&shared.rest_requests);
        let checkpoint = run.timeline.checkpoints.iter().find(|c| c.minute == slot);
        let in_minute: Vec<&Sample> = run
            .samples
            .iter()
            .filter(|s| (s.at_secs / 60.0) as usize == slot)
            .collect();
        let row_name = if slot < minutes {
            (slot + 1).to_string()
        } else if requests
            + load(&shared.pushed)
            + load(&shared.rest_errors)
            + load(&shared.socketio_errors)
            > 0
        {
            "end (wind-down, drain)".to_string()
        } else {
            continue;
        };
        let minute_secs = if slot < minutes { 60.0 } else { f64::NAN };
        let cpu = match (
            run.timeline.minute_cpu.get(slot),
            run.timeline.minute_cpu.get(slot + 1),
        ) {
            (Some(from), Some(to)) => Some(from.until(to)),
            _ => None,
        };
        let _ = writeln!(
            out,
            "| {row_name} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(load(&shared.pushed)),
            run.timeline.burst_secs.get(slot).map_or("–".to_string(), |s| format!("{s:.2}")),
            thousands(requests),
            if minute_secs.is_nan() { "–".to_string() } else { thousands((requests as f64 / minute_secs).round() as u64) },
            quantile_ms(values, 0.50),
            quantile_ms(values, 0.99),
            thousands(load(&shared.rest_errors)),
            thousands(load(&shared.socketio_errors)),
            load(&shared.push_errors),
            thousands(load(&shared.churn_connects)),
            checkpoint.map_or("–".to_string(), |c| mib(c.sample.rss_kib)),
            in_minute.iter().map(|s| s.rss_kib).max().map_or("–".to_string(), mib),
            checkpoint.map_or("–".to_string(), |c| c.sample.fds.to_string()),
            in_minute.iter().map(|s| s.fds).max().map_or("–".to_string(), |f| f.to_string()),
            checkpoint.map_or("–".to_string(), |c| c.sample.threads.to_string()),
            cpu.map_or("–".to_string(), |c| match requests {
                0 => format!("{:.1}", c.plugin),
                _ => format!("{:.1} ({:.0})", c.plugin, c.plugin * 1e6 / requests as f64),
            }),
            cpu.map_or("–".to_string(), |c| format!(
                "{:.0}%",
                100.0 * c.machine_busy / c.machine_total.max(1e-9)
            )),
            cpu.map_or("–".to_string(), |c| format!(
                "{:.1}",
                (c.machine_busy - c.plugin - c.bench).max(0.0)
            )),
        );
    }

    // Totals.
    let pushed = shared.next_n.load(Ordering::SeqCst);
    let requests = Shared::total(&shared.rest_requests);
    let _ = writeln!(out, "\nREST, {} requests in all:\n", thousands(requests));
    let _ = writeln!(
        out,
        "| request | intended answer | requests | as intended | unintended |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    let mut by_kind: BTreeMap<Kind, (u64, u64)> = BTreeMap::new();
    for worker in &run.rest {
        for (kind, (sent, good)) in &worker.by_kind {
            let entry = by_kind.entry(*kind).or_default();
            entry.0 += sent;
            entry.1 += good;
        }
    }
    for (kind, (sent, good)) in &by_kind {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            kind.describe(),
            kind.intended(),
            thousands(*sent),
            thousands(*good),
            thousands(sent - good)
        );
    }

    let _ = writeln!(
        out,
        "\nNotifications: {} pushed ({} bursts of {}, the trickle, 1 at the end). Steady clients (`seq: true`, connected from before the first):\n",
        thousands(pushed),
        run.timeline.burst_secs.len(),
        thousands(args.burst)
    );
    let _ = writeln!(
        out,
        "| client | pushed received | missing | twice | out of order | last seq | seq skipped | seq backwards | gap events | others received (by topic) | connection lost |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    );
    for (index, steady) in run.steady.iter().enumerate() {
        let others: Vec<String> = steady
            .others
            .iter()
            .map(|(topic, n)| format!("{topic} {}", thousands(*n)))
            .collect();
        let _ = writeln!(
            out,
            "| {index} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(steady.distinct),
            thousands(pushed.saturating_sub(steady.distinct)),
            steady.duplicates,
            steady.out_of_order,
            thousands(steady.last_seq),
            steady.seq_skipped,
            steady.seq_backwards,
            steady.gap_events.len(),
            if others.is_empty() {
                "–".to_string()
            } else {
                others.join(", ")
            },
            steady.disconnects.len(),
        );
    }
    let connects: u64 = run.churn.iter().map(|c| c.connects).sum();
    let messages: u64 = run.churn.iter().map(|c| c.messages).sum();
    let _ = writeln!(
        out,
        "\nChurning clients: {} connections in all, {} `message` events received.",
        thousands(connects),
        thousands(messages)
    );

    let _ = writeln!(out, "\nPlugin memory and descriptors:\n");
    let _ = writeln!(
        out,
        "| when | VmRSS MiB | fds | threads | bench process VmRSS MiB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let mut rows = vec![("started, no client".to_string(), run.idle)];
    if let Some(first) = run.timeline.checkpoints.first() {
        rows.push(("minute 1's checkpoint".to_string(), first.sample));
    }
    if let Some(last) = run
        .timeline
        .checkpoints
        .last()
        .filter(|_| run.timeline.checkpoints.len() > 1)
    {
        rows.push((
            format!("minute {}'s checkpoint", last.minute + 1),
            last.sample,
        ));
    }
    rows.push((
        "after the run (REST and churn stopped, drained)".to_string(),
        run.after,
    ));
    for (when, s) in rows {
        let _ = writeln!(
            out,
            "| {when} | {} | {} | {} | {} |",
            mib(s.rss_kib),
            s.fds,
            s.threads,
            mib(s.bench_rss_kib)
        );
    }
    let lags: Vec<String> = run
        .timeline
        .checkpoints
        .iter()
        .map(|c| c.steady_lag.to_string())
        .collect();
    let _ = writeln!(
        out,
        "\nSlowest steady client's backlog at each checkpoint (pushed, not received yet): {}.",
        lags.join(", ")
    );

    let _ = writeln!(out, "\n<details><summary>Samples every 10 s</summary>\n");
    let _ = writeln!(
        out,
        "| t s | VmRSS MiB | fds | threads | churning clients connected | bench VmRSS MiB |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    for s in &run.samples {
        let _ = writeln!(
            out,
            "| {:.0} | {} | {} | {} | {} | {} |",
            s.at_secs,
            mib(s.rss_kib),
            s.fds,
            s.threads,
            s.churn_connected,
            mib(s.bench_rss_kib)
        );
    }
    let _ = writeln!(out, "\n</details>");

    let examples = shared.examples.lock().unwrap_or_else(|e| e.into_inner());
    if !examples.is_empty() {
        let _ = writeln!(out, "\nFirst unintended errors:\n");
        for example in examples.iter() {
            let _ = writeln!(out, "- {example}");
        }
    }
    if !run.violations.is_empty() {
        let _ = writeln!(out, "\nProtocol violations seen by the mock:\n");
        for violation in run.violations.iter().take(MAX_EXAMPLES) {
            let _ = writeln!(out, "- {}", excerpt(violation));
        }
    }
    if run.fatal.is_some() && !run.stderr_tail.is_empty() {
        let _ = writeln!(out, "\nThe plugin's last stderr lines:\n\n```");
        for line in &run.stderr_tail {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "```");
    }

    let _ = writeln!(out, "\n### Verdicts\n");
    out.push_str(&verdicts.lines());
    out
}
