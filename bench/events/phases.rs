//! One measured phase: notifications pushed at the rate for the phase's length, with or
//! without the REST load beside them, with or without a webhook endpoint or the AMQP
//! consumer taking them; then, if one is there, a bounded wait for the last deliveries.

use crate::arrivals::{Arrivals, DeliverySummary};
use crate::pusher::push_at_rate;
use crate::rest_load::{self, RestFigures};
use crate::support::procfs::{self, cpu_seconds};
use mock_lightningd::gateway::Gateway;
use std::time::{Duration, Instant};

/// The deliveries still missing after the push must keep coming: no progress for this long
/// ends the wait.
const DRAIN_STALL: Duration = Duration::from_secs(10);
/// And the wait never lasts longer than this.
const DRAIN_CAP: Duration = Duration::from_secs(60);

/// Where a phase's notifications are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Webhook,
    Broker,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Sink::Webhook => "webhook",
            Sink::Broker => "AMQP broker",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// REST load and notifications, no webhook endpoint: the baseline.
    Rest,
    /// Notifications alone, no REST, no endpoint: what reading them costs the plugin, for
    /// the CPU per delivery of the sinks' phases.
    Notifications,
    /// REST load and notifications, delivered to the webhook endpoint.
    RestAndWebhook,
    /// Notifications delivered to the webhook endpoint, no REST load.
    Webhook,
    /// REST load and notifications, published to the broker (`--amqp`).
    RestAndBroker,
    /// Notifications published to the broker, no REST load (`--amqp`).
    Broker,
}

impl Kind {
    pub fn has_rest(self) -> bool {
        matches!(
            self,
            Kind::Rest | Kind::RestAndWebhook | Kind::RestAndBroker
        )
    }

    /// Where the notifications go, if anywhere.
    pub fn sink(self) -> Option<Sink> {
        match self {
            Kind::Rest | Kind::Notifications => None,
            Kind::RestAndWebhook | Kind::Webhook => Some(Sink::Webhook),
            Kind::RestAndBroker | Kind::Broker => Some(Sink::Broker),
        }
    }

    pub fn has_webhook(self) -> bool {
        self.sink() == Some(Sink::Webhook)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Rest => "REST + notifications, no endpoint",
            Kind::Notifications => "notifications, no REST, no endpoint",
            Kind::RestAndWebhook => "REST + notifications + webhook",
            Kind::Webhook => "notifications + webhook, no REST",
            Kind::RestAndBroker => "REST + notifications + broker",
            Kind::Broker => "notifications + broker, no REST",
        }
    }
}

/// A plugin the phases run against.
pub struct Plugin<'a> {
    pub gateway: &'a Gateway,
    pub pid: u32,
    /// The RabbitMQ server's processes it publishes to (none for the webhook plugin).
    pub broker_pids: Vec<u32>,
}

/// What the phases share.
pub struct Setup<'a> {
    pub arrivals: &'a Arrivals,
    pub rate: u64,
    pub duration: Duration,
    pub concurrency: usize,
}

pub struct Phase {
    pub kind: Kind,
    pub round: u64,
    pub rest: Option<RestFigures>,
    pub pushed: u64,
    pub push_seconds: f64,
    pub delivery: Option<DeliverySummary>,
    /// From the end of the push to the last delivery (or giving up).
    pub drain_seconds: f64,
    /// Plugin CPU seconds over the phase, drain included.
    pub plugin_cpu: f64,
    /// RabbitMQ's CPU seconds over the phase, for a broker phase.
    pub broker_cpu: Option<f64>,
    /// The plugin's context switches (all threads, voluntary and not) over the phase: its
    /// wake-ups, a measure of its work that a busy machine disturbs less than CPU time.
    pub switches: u64,
    pub rss_kib: u64,
}

/// Runs one phase against `plugin`; notifications are numbered from `first`.
pub async fn run(
    setup: &Setup<'_>,
    plugin: &Plugin<'_>,
    kind: Kind,
    round: u64,
    first: u64,
) -> Result<Phase, String> {
    let cpu_before = cpu_seconds(plugin.pid);
    let switches_before = context_switches(plugin.pid);
    let broker_cpu_before = broker_cpu(plugin);
    let rest = kind.has_rest().then(|| {
        tokio::spawn(rest_load::run(
            plugin.gateway.port,
            plugin.gateway.rune.clone(),
            setup.concurrency,
            setup.duration,
        ))
    });
    let pushed = push_at_rate(&plugin.gateway.node, first, setup.rate, setup.duration).await;
    let rest = match rest {
        Some(handle) => Some(handle.await.map_err(|e| format!("REST load: {e}"))?),
        None => None,
    };
    let pushed = pushed?;
    let drain_started = Instant::now();
    let delivery = if kind.sink().is_some() {
        drain(setup.arrivals, first, pushed.count).await;
        Some(setup.arrivals.summarize(first, pushed.count))
    } else {
        None
    };
    Ok(Phase {
        kind,
        round,
        rest,
        pushed: pushed.count,
        push_seconds: pushed.seconds,
        delivery,
        drain_seconds: drain_started.elapsed().as_secs_f64(),
        plugin_cpu: cpu_seconds(plugin.pid) - cpu_before,
        switches: context_switches(plugin.pid).saturating_sub(switches_before),
        broker_cpu: broker_cpu(plugin)
            .zip(broker_cpu_before)
            .map(|(after, before)| after - before),
        rss_kib: procfs::status(plugin.pid).rss_kib,
    })
}

/// The context switches of every thread of `pid` so far (`/proc/<pid>/task/*/status`).
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// RabbitMQ's CPU seconds so far, if the plugin publishes to it.
fn broker_cpu(plugin: &Plugin<'_>) -> Option<f64> {
    (!plugin.broker_pids.is_empty())
        .then(|| plugin.broker_pids.iter().copied().map(cpu_seconds).sum())
}

/// Waits until notifications `first..first + count` have all arrived, or stopped arriving.
async fn drain(arrivals: &Arrivals, first: u64, count: u64) {
    let started = Instant::now();
    let mut last = (arrivals.count_in(first, count), Instant::now());
    while last.0 < count && started.elapsed() < DRAIN_CAP {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = arrivals.count_in(first, count);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > DRAIN_STALL {
            return;
        }
    }
}
