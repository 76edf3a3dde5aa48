//! The report (Markdown on stdout): one row per phase, the medians over rounds, the
//! verdicts.

use crate::phases::{Kind, Phase, Sink};
use crate::support::args::command;
use crate::support::format::{kib_as_mib, median, thousands, us_as_ms};
use crate::support::verdict::Verdicts;
use crate::{Args, Run};

/// Push-to-receiver p99 on loopback must stay below this (issue 16).
const P99_LIMIT_MS: f64 = 50.0;
/// REST req/s with the webhook (or broker) delivering over without it must stay at or above
/// this.
const REST_KEPT: f64 = 0.95;

fn rest_rates(run: &Run, kind: Kind) -> Vec<f64> {
    run.phases
        .iter()
        .filter(|p| p.kind == kind)
        .filter_map(|p| p.rest.map(|r| r.per_second()))
        .collect()
}

pub fn judge(args: &Args, run: &Run) -> Verdicts {
    let mut verdicts = Verdicts::default();
    if let Some(fatal) = &run.fatal {
        verdicts.add(false, format!("the run stopped early: {fatal}"));
    }
    let mut sinks = vec![(Sink::Webhook, Kind::RestAndWebhook)];
    if args.amqp {
        sinks.push((Sink::Broker, Kind::RestAndBroker));
    }
    for (sink, with_rest) in sinks {
        judge_sink(args, run, sink, with_rest, &mut verdicts);
    }
    let errors: u64 = run
        .phases
        .iter()
        .filter_map(|p| p.rest.map(|r| r.errors))
        .sum();
    verdicts.add(errors == 0, format!("REST errors: {errors}"));
    verdicts
}

/// The verdicts on one sink: its phases complete and in order, their p99, and REST beside
/// it (`with_rest` phases) against the baseline.
fn judge_sink(args: &Args, run: &Run, sink: Sink, with_rest: Kind, verdicts: &mut Verdicts) {
    let name = sink.name();
    let delivered: Vec<&Phase> = run
        .phases
        .iter()
        .filter(|p| p.kind.sink() == Some(sink))
        .collect();
    let (mut lost, mut duplicated, mut out_of_order, mut expected) = (0, 0, 0, 0);
    let mut worst_p99: Option<u32> = None;
    for phase in &delivered {
        if let Some(d) = &phase.delivery {
            lost += d.lost;
            duplicated += d.duplicated;
            out_of_order += d.out_of_order;
            expected += d.expected;
            worst_p99 = worst_p99.max(d.p99_us);
        }
    }
    verdicts.add(
        !delivered.is_empty() && lost == 0 && out_of_order == 0,
        format!(
            "{name}: every delivery complete and in order: {} notifications, {lost} lost, \
             {out_of_order} out of order ({duplicated} delivered twice)",
            thousands(expected)
        ),
    );
    let p99_ms = worst_p99.map(|us| f64::from(us) / 1000.0);
    verdicts.add_with(
        p99_ms.is_some_and(|ms| ms < P99_LIMIT_MS),
        args.strict,
        format!(
            "{name}: push-to-receiver p99 < {P99_LIMIT_MS} ms at {}/s: worst phase {} ms",
            thousands(args.rate),
            us_as_ms(worst_p99)
        ),
    );
    let without = median(rest_rates(run, Kind::Rest));
    let with = median(rest_rates(run, with_rest));
    let kept = if without > 0.0 { with / without } else { 0.0 };
    verdicts.add_with(
        kept >= REST_KEPT,
        args.strict,
        format!(
            "REST with the {name} delivering >= {:.0}% of without: {:.0} vs {:.0} req/s \
             (medians), {:.1}%",
            REST_KEPT * 100.0,
            with,
            without,
            kept * 100.0
        ),
    );
}

pub fn render(args: &Args, run: &Run, verdicts: &Verdicts) -> String {
    let mut out = String::new();
    out.push_str("# Events bench\n\n");
    out.push_str(&format!(
        "Command: `{}`. {} notifications/s for {} s a phase, REST at concurrency {}, {} \
         round(s). Load average {} before, {} after. Plugin idle RSS {} MiB{}.\n\n",
        command("events"),
        thousands(args.rate),
        args.seconds,
        args.concurrency,
        args.rounds,
        run.load_before.trim(),
        run.load_after.trim(),
        kib_as_mib(run.idle_rss_kib),
        match run.broker_idle_rss_kib {
            Some(kib) => format!(" (the broker phases' plugin: {} MiB)", kib_as_mib(kib)),
            None => String::new(),
        },
    ));
    out.push_str(
        "| round | phase | REST req/s | REST errors | pushed (rate/s) | delivered | lost | \
         dup | out of order | p50 ms | p99 ms | max ms | drain s | plugin CPU s | RabbitMQ CPU s | \
         RSS MiB |\n",
    );
    out.push_str(
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &run.phases {
        let (rest_rate, rest_errors) = match p.rest {
            Some(r) => (format!("{:.0}", r.per_second()), r.errors.to_string()),
            None => ("–".into(), "–".into()),
        };
        let rate = if p.push_seconds > 0.0 {
            p.pushed as f64 / p.push_seconds
        } else {
            0.0
        };
        let dash = || "–".to_string();
        let (delivered, lost, dup, ooo, p50, p99, max) = match &p.delivery {
            Some(d) => (
                thousands(d.received),
                d.lost.to_string(),
                d.duplicated.to_string(),
                d.out_of_order.to_string(),
                us_as_ms(d.p50_us),
                us_as_ms(d.p99_us),
                us_as_ms(d.max_us),
            ),
            None => (dash(), dash(), dash(), dash(), dash(), dash(), dash()),
        };
        out.push_str(&format!(
            "| {} | {} | {rest_rate} | {rest_errors} | {} ({rate:.0}) | {delivered} | {lost} | \
             {dup} | {ooo} | {p50} | {p99} | {max} | {:.2} | {:.2} | {} | {} |\n",
            p.round,
            p.kind.label(),
            thousands(p.pushed),
            p.drain_seconds,
            p.plugin_cpu,
            p.broker_cpu.map_or_else(dash, |cpu| format!("{cpu:.2}")),
            kib_as_mib(p.rss_kib),
        ));
    }
    out.push_str(&cpu_per_notification(args, run));
    out.push_str("\nVerdicts:\n\n");
    out.push_str(&verdicts.lines());
    out
}

/// The plugin's CPU (microseconds) and context switches per notification, medians over
/// rounds, in the no-REST phases of `kind`.
fn cpu_us_per_notification(run: &Run, kind: Kind) -> Option<(f64, f64)> {
    let phases: Vec<&Phase> = run
        .phases
        .iter()
        .filter(|p| p.kind == kind && p.pushed > 0)
        .collect();
    let cpu = phases.iter().map(|p| p.plugin_cpu * 1e6 / p.pushed as f64);
    let switches = phases.iter().map(|p| p.switches as f64 / p.pushed as f64);
    (!phases.is_empty()).then(|| (median(cpu.collect()), median(switches.collect())))
}

/// What reading notifications costs the plugin alone, and what each sink adds per delivery.
fn cpu_per_notification(args: &Args, run: &Run) -> String {
    let Some((alone, alone_switches)) = cpu_us_per_notification(run, Kind::Notifications) else {
        return String::new();
    };
    let mut out = format!(
        "\nPlugin CPU (context switches) per notification, no REST (medians): read alone \
         {alone:.0} us ({alone_switches:.2})"
    );
    let mut sinks = vec![(Sink::Webhook, Kind::Webhook)];
    if args.amqp {
        sinks.push((Sink::Broker, Kind::Broker));
    }
    for (sink, kind) in sinks {
        if let Some((with, switches)) = cpu_us_per_notification(run, kind) {
            out.push_str(&format!(
                "; with the {} {with:.0} us ({switches:.2}), +{:.0} us (+{:.2}) a delivery",
                sink.name(),
                with - alone,
                switches - alone_switches
            ));
        }
    }
    out.push_str(".\n");
    out
}
