//! Events out: does webhook delivery keep up with `--rate` (1,000) notifications a second,
//! and what does it cost REST? The real plugin binary, run by the mock lightningd over plain
//! HTTP, with a webhook receiver in this process (`receiver`: hyper on 127.0.0.1, answering
//! `200`).
//!
//! Each round runs three phases of `--seconds` (10) each, numbered notifications pushed at
//! `--rate` all the while, each carrying its push time:
//! - **REST, no endpoint**: `POST /v1/getinfo` at `--concurrency` (8) keep-alive connections
//!   (a minimal client, as bench/rest's) beside the notifications: the baseline;
//! - **REST + webhook**: the same, with a webhook endpoint (`clnrest-webhook-add`, topic
//!   `invoice_creation`, `allow_http`) taking every notification;
//! - **webhook, no REST**: deliveries alone.
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
//! A message-broker consumer fits beside the receiver: it records what it consumes into the
//! same `arrivals::Arrivals` and gets the same figures.
//!
//! Run: `cargo bench --bench events` (options after `--`: `--rate R`, `--seconds S`,
//! `--concurrency C`, `--rounds N`, `--strict`).

#[path = "../support/mod.rs"]
mod support;

mod arrivals;
mod phases;
mod pusher;
mod receiver;
mod report;
mod rest_load;

use arrivals::Arrivals;
use mock_lightningd::gateway::Gateway;
use phases::{Kind, Phase, Setup};
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
}

pub const USAGE: &str = "usage: cargo bench --bench events [-- [--rate R] [--seconds S] \
[--concurrency C] [--rounds N] [--strict]]";

fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        rate: 1000,
        seconds: 10,
        concurrency: 8,
        rounds: 2,
        strict: false,
    };
    let mut line = CommandLine::from_env();
    while let Some(name) = line.next_option()? {
        match name.as_str() {
            "--rate" => args.rate = line.number()?,
            "--seconds" => args.seconds = line.number()?,
            "--concurrency" => args.concurrency = line.number()? as usize,
            "--rounds" => args.rounds = line.number()?,
            "--strict" => args.strict = true,
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

async fn orchestrate(args: &Args) -> Run {
    let load_before = procfs::load_average("?");
    let gateway = Gateway::start().await;
    gateway.settled().await;
    // Nobody reads the calls and log lines: keep the mock's memory flat.
    gateway.node.record_calls(false);
    gateway.node.record_logs(false);
    let pid = gateway.node.pid().expect("the mock started the plugin");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = procfs::status(pid).rss_kib;
    let arrivals = Arc::new(Arrivals::default());
    let mut run = Run {
        phases: Vec::new(),
        idle_rss_kib,
        load_before,
        load_after: String::new(),
        fatal: None,
    };
    let receiver = match WebhookReceiver::start(arrivals.clone()).await {
        Ok(receiver) => receiver,
        Err(e) => {
            run.fatal = Some(e);
            return run;
        }
    };
    // Warm-up: connections made, code paged in.
    rest_load::run(
        gateway.port,
        gateway.rune.clone(),
        args.concurrency,
        Duration::from_secs(1),
    )
    .await;
    let setup = Setup {
        gateway: &gateway,
        pid,
        arrivals: &arrivals,
        rate: args.rate,
        duration: Duration::from_secs(args.seconds),
        concurrency: args.concurrency,
    };
    let mut next_n = 0;
    'rounds: for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [Kind::Rest, Kind::RestAndWebhook, Kind::Webhook]
        } else {
            [Kind::Webhook, Kind::RestAndWebhook, Kind::Rest]
        };
        let mut endpoint: Option<String> = None;
        for kind in order {
            if kind.has_endpoint() && endpoint.is_none() {
                let added = call(
                    &gateway,
                    "clnrest-webhook-add",
                    json!({"url": receiver.url, "topics": ["invoice_creation"], "allow_http": true}),
                )
                .await;
                match added.map(|a| a["id"].as_str().map(str::to_string)) {
                    Ok(Some(id)) => endpoint = Some(id),
                    Ok(None) => {
                        run.fatal = Some("clnrest-webhook-add returned no id".into());
                        break 'rounds;
                    }
                    Err(e) => {
                        run.fatal = Some(e);
                        break 'rounds;
                    }
                }
            }
            if !kind.has_endpoint() {
                if let Some(id) = endpoint.take() {
                    if let Err(e) =
                        call(&gateway, "clnrest-webhook-remove", json!({ "id": id })).await
                    {
                        run.fatal = Some(e);
                        break 'rounds;
                    }
                }
            }
            eprintln!("events: round {round}, {}", kind.label());
            match phases::run(&setup, kind, round, next_n).await {
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{}", e.with_usage(USAGE));
            return ExitCode::from(2);
        }
    };
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
