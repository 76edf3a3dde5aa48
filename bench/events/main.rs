//! Events out: does webhook delivery (and, with `--amqp`, AMQP publishing) keep up with
//! `--rate` (1,000) notifications a second, and what does it cost REST? The real plugin binary, run by the mock lightningd over plain
//! HTTP, with a webhook receiver in this process (`receiver`: hyper on 127.0.0.1, answering
//! `200`).
//!
//! Each round runs four phases of `--seconds` (10) each, numbered notifications pushed at
//! `--rate` all the while, each carrying its push time:
//! - **REST, no endpoint**: `POST /v1/getinfo` at `--concurrency` (8) keep-alive connections
//!   (a minimal client, as bench/rest's) beside the notifications: the baseline;
//! - **REST + webhook**: the same, with a webhook endpoint (`clnrest-webhook-add`, topic
//!   `invoice_creation`, `allow_http`) taking every notification;
//! - **webhook, no REST**: deliveries alone;
//! - **notifications alone** (no REST, no endpoint): what reading them costs the plugin.
//!   The report's CPU per delivery of a sink is its no-REST phase's plugin CPU less this
//!   one's, per notification (medians over rounds).
//!
//! Odd rounds run them in that order, even rounds in the reverse one (the endpoint is added
//! before its first phase and removed after its last), so that a machine getting busier
//! weighs on both sides. After the push, an endpoint phase waits (bounded) for the last
//! deliveries.
//!
//! Figures: per phase, REST req/s and errors; notifications pushed and the rate achieved;
//! push-to-receiver latency p50/p99/max (the receiver reads the push time from the payload);
//! lost, duplicated and out-of-order deliveries; plugin CPU and RSS. Verdicts: every delivery
//! complete and in order; p99 < 50 ms; REST req/s with the webhook (median over rounds) at
//! least 95% of without. A lost or reordered delivery fails the exit status; latency and the
//! REST drop fail it only with `--strict` (the machine is shared).
//!
//! **`--amqp`** adds two phases a round, the same for the AMQP publisher (src/broker/):
//! - **REST + notifications + broker**: the REST load beside notifications published to a
//!   private RabbitMQ server (`mock_lightningd::rabbitmq`, Debian's `rabbitmq-server`);
//! - **notifications + broker, no REST**: publishing alone.
//!
//! Odd rounds then run the six phases in the order above, even rounds in the reverse one.
//! `clnrest-amqp-url` is read at start, so the broker phases run against a second plugin
//! (its own mock lightningd) started with it, both plugins up all along and each pushed
//! notifications only in its own phases: the baseline's plugin publishes nothing, and the
//! broker phases are judged against that same baseline (identical binary and options but
//! the URL). The consumer (`broker_consumer`, amqprs) declares the exchange as the plugin
//! would create it and a durable queue bound with the routing key `invoice_creation`, before
//! the plugin connects; it acknowledges each message after recording it into the same
//! `arrivals::Arrivals` (the AMQP body is the webhook body), so the broker gets the same
//! figures and verdicts. Latency is push to consumer: through the plugin's journal and
//! publisher, RabbitMQ (persistent messages, publisher confirms) and amqprs. The CPU
//! and RSS columns are the plugin's; the broker phases add RabbitMQ's CPU (its process
//! group), which shares the machine's cores with the plugin and the bench.
//!
//! Run: `cargo bench --bench events` (options after `--`: `--rate R`, `--seconds S`,
//! `--concurrency C`, `--rounds N`, `--strict`, `--amqp`). It is not run by `.ci/run`.

#[path = "../support/mod.rs"]
mod support;

mod arrivals;
mod broker_consumer;
mod phases;
mod pusher;
mod receiver;
mod report;
mod rest_load;

use arrivals::Arrivals;
use broker_consumer::BrokerConsumer;
use mock_lightningd::gateway::Gateway;
use mock_lightningd::rabbitmq::RabbitMq;
use phases::{Kind, Phase, Plugin, Setup};
use receiver::WebhookReceiver;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use support::args::{ArgError, CommandLine};
use support::procfs;

pub struct Args {
    pub rate: u64,
    pub seconds: u64,
    pub concurrency: usize,
    pub rounds: u64,
    pub strict: bool,
    pub amqp: bool,
}

pub const USAGE: &str = "usage: cargo bench --bench events [-- [--rate R] [--seconds S] \
[--concurrency C] [--rounds N] [--strict] [--amqp]]";

fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        rate: 1000,
        seconds: 10,
        concurrency: 8,
        rounds: 2,
        strict: false,
        amqp: false,
    };
    let mut line = CommandLine::from_env();
    while let Some(name) = line.next_option()? {
        match name.as_str() {
            "--rate" => args.rate = line.number()?,
            "--seconds" => args.seconds = line.number()?,
            "--concurrency" => args.concurrency = line.number()? as usize,
            "--rounds" => args.rounds = line.number()?,
            "--strict" => args.strict = true,
            "--amqp" => args.amqp = true,
            _ => return Err(line.unknown()),
        }
    }
    if !(1..=20_000).contains(&args.rate)
        || !(1..=600).contains(&args.seconds)
        || !(1..=256).contains(&args.concurrency)
        || !(1..=20).contains(&args.rounds)
    {
        return Err(
            "bounded: --rate 1..=20000, --seconds 1..=600, --concurrency 1..=256, \
             --rounds 1..=20"
                .into(),
        );
    }
    Ok(args)
}

/// What the report needs besides the phases.
pub struct Run {
    pub phases: Vec<Phase>,
    pub idle_rss_kib: u64,
    /// The broker phases' plugin's, with `--amqp`.
    pub broker_idle_rss_kib: Option<u64>,
    pub load_before: String,
    pub load_after: String,
    /// Why the run stopped early, if it did.
    pub fatal: Option<String>,
}

async fn call(gateway: &Gateway, method: &str, params: Value) -> Result<Value, String> {
    let answer = gateway.lightningd_call(method, params).await;
    match answer.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(format!("{method}: {answer}")),
    }
}

/// How long the broker phases' plugin may take to connect to RabbitMQ.
const BROKER_CONNECT: Duration = Duration::from_secs(30);
/// The exchange the plugin publishes to by default (docs/broker.md).
const EXCHANGE: &str = "clnrest";

/// The plugin started with `options` over HTTP and settled; its process id.
async fn start_plugin(options: Value) -> Result<(Gateway, u32), String> {
    let gateway = Gateway::start_with(options).await;
    gateway.settled().await;
    let pid = gateway
        .node
        .pid()
        .ok_or_else(|| "the mock started no plugin".to_string())?;
    Ok((gateway, pid))
}

/// Nobody reads the calls and log lines: keep the mock's memory flat. Then the idle RSS.
async fn quiet(gateway: &Gateway, pid: u32) -> u64 {
    gateway.node.record_calls(false);
    gateway.node.record_logs(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    procfs::status(pid).rss_kib
}

/// The private RabbitMQ server, the consumer bound to it, and a plugin publishing to it.
struct BrokerSide {
    gateway: Gateway,
    pid: u32,
    idle_rss_kib: u64,
    _consumer: BrokerConsumer,
    /// Dropped last: stops the server.
    server: RabbitMq,
}

async fn start_broker_side(arrivals: Arc<Arrivals>) -> Result<BrokerSide, String> {
    let mut server = RabbitMq::new();
    server.try_start().await?;
    let consumer = BrokerConsumer::start(server.port, EXCHANGE, arrivals).await?;
    let (gateway, pid) = start_plugin(json!({ "clnrest-amqp-url": server.url() })).await?;
    let connected = gateway
        .node
        .wait_for_log(
            |l| {
                l.message
                    .contains("publishing notifications to AMQP exchange")
            },
            BROKER_CONNECT,
        )
        .await;
    if connected.is_none() {
        return Err(format!(
            "the broker phases' plugin did not connect to RabbitMQ within {BROKER_CONNECT:?}"
        ));
    }
    let idle_rss_kib = quiet(&gateway, pid).await;
    Ok(BrokerSide {
        gateway,
        pid,
        idle_rss_kib,
        _consumer: consumer,
        server,
    })
}

/// Adds the webhook endpoint; its id.
async fn add_endpoint(gateway: &Gateway, url: &str) -> Result<String, String> {
    let added = call(
        gateway,
        "clnrest-webhook-add",
        json!({"url": url, "topics": ["invoice_creation"], "allow_http": true}),
    )
    .await?;
    added["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "clnrest-webhook-add returned no id".to_string())
}

async fn orchestrate(args: &Args) -> Run {
    let load_before = procfs::load_average("?");
    let mut run = Run {
        phases: Vec::new(),
        idle_rss_kib: 0,
        broker_idle_rss_kib: None,
        load_before,
        load_after: String::new(),
        fatal: None,
    };
    let (gateway, pid) = match start_plugin(json!({})).await {
        Ok(started) => started,
        Err(e) => {
            run.fatal = Some(e);
            return run;
        }
    };
    run.idle_rss_kib = quiet(&gateway, pid).await;
    let arrivals = Arc::new(Arrivals::default());
    let receiver = match WebhookReceiver::start(arrivals.clone()).await {
        Ok(receiver) => receiver,
        Err(e) => {
            run.fatal = Some(e);
            return run;
        }
    };
    let broker = if args.amqp {
        match start_broker_side(arrivals.clone()).await {
            Ok(side) => {
                run.broker_idle_rss_kib = Some(side.idle_rss_kib);
                Some(side)
            }
            Err(e) => {
                run.fatal = Some(e);
                return run;
            }
        }
    } else {
        None
    };
    let webhook_plugin = Plugin {
        gateway: &gateway,
        pid,
        broker_pids: Vec::new(),
    };
    let broker_plugin = broker.as_ref().map(|side| Plugin {
        gateway: &side.gateway,
        pid: side.pid,
        broker_pids: side.server.processes(),
    });
    // Warm-up: connections made, code paged in.
    for plugin in std::iter::once(&webhook_plugin).chain(broker_plugin.as_ref()) {
        rest_load::run(
            plugin.gateway.port,
            plugin.gateway.rune.clone(),
            args.concurrency,
            Duration::from_secs(1),
        )
        .await;
    }
    let setup = Setup {
        arrivals: &arrivals,
        rate: args.rate,
        duration: Duration::from_secs(args.seconds),
        concurrency: args.concurrency,
    };
    let mut kinds = vec![
        Kind::Rest,
        Kind::Notifications,
        Kind::RestAndWebhook,
        Kind::Webhook,
    ];
    if broker_plugin.is_some() {
        kinds.extend([Kind::RestAndBroker, Kind::Broker]);
    }
    let mut next_n = 0;
    'rounds: for round in 1..=args.rounds {
        let mut order = kinds.clone();
        if round % 2 == 0 {
            order.reverse();
        }
        let mut endpoint: Option<String> = None;
        for kind in order {
            if kind.has_webhook() && endpoint.is_none() {
                match add_endpoint(&gateway, &receiver.url).await {
                    Ok(id) => endpoint = Some(id),
                    Err(e) => {
                        run.fatal = Some(e);
                        break 'rounds;
                    }
                }
            }
            if !kind.has_webhook() {
                if let Some(id) = endpoint.take() {
                    if let Err(e) =
                        call(&gateway, "clnrest-webhook-remove", json!({ "id": id })).await
                    {
                        run.fatal = Some(e);
                        break 'rounds;
                    }
                }
            }
            let plugin = match (kind.sink(), &broker_plugin) {
                (Some(phases::Sink::Broker), Some(plugin)) => plugin,
                _ => &webhook_plugin,
            };
            eprintln!("events: round {round}, {}", kind.label());
            match phases::run(&setup, plugin, kind, round, next_n).await {
                Ok(phase) => {
                    next_n += phase.pushed;
                    run.phases.push(phase);
                }
                Err(e) => {
                    run.fatal = Some(e);
                    break 'rounds;
                }
            }
        }
        if let Some(id) = endpoint.take() {
            if let Err(e) = call(&gateway, "clnrest-webhook-remove", json!({ "id": id })).await {
                run.fatal = Some(e);
                break;
            }
        }
    }
    run.load_after = procfs::load_average("?");
    run
}

fn main() -> ExitCode {
    let args = support::args::or_exit(parse_args(), USAGE);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("events")
        .enable_all()
        .build()
        .expect("the runtime builds");
    let run = runtime.block_on(orchestrate(&args));
    let verdicts = report::judge(&args, &run);
    println!("{}", report::render(&args, &run, &verdicts));
    runtime.shutdown_timeout(Duration::from_secs(2));
    if verdicts.failed() || run.fatal.is_some() {
        eprintln!("events: FAILED (see the verdicts)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
