//! Attack run (issue 14, item 7): the real plugin binary behind the mock lightningd, under
//! `--clients` (64) hostile clients for `--seconds` (30): half on HTTP/1.1 connections of
//! their own, half as streams of HTTP/2 connections (8 streams each), every one sending 8 MiB
//! bodies of `[[],[],...]` with a garbage rune back to back (`mock_lightningd::hostile_bodies`,
//! the same clients as the hardening test's six-second version).
//!
//! Meanwhile a normal client calls `getinfo` with a valid rune every 100 ms, and the plugin's
//! VmRSS is sampled every 250 ms.
//!
//! The report (Markdown, on stdout) gives the refusals (413 / 503 / 408), the normal
//! client's latencies and the plugin's memory; the verdicts: peak RSS (VmHWM) below 256 MiB;
//! every `getinfo` answered 201 within 5 s; every attacking request refused with 413, 503 +
//! `Retry-After` or 408 (or its connection closed: reported, not failed), none reaching
//! `checkrune`; the plugin and the mock lightningd still up. The exit status is 1 when a
//! verdict fails.
//!
//! Run: `cargo bench --bench attack` (options after `--`: `--seconds S`, `--clients N`, even).

#[path = "../support/mod.rs"]
mod support;

use mock_lightningd::gateway::{json_of, Gateway};
use mock_lightningd::hostile_bodies::{AttackShape, BodyAttack};
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::args::{ArgError, CommandLine};
use support::format::{kib_as_mib, ms};
use support::procfs;
use support::verdict::Verdicts;

const USAGE: &str =
    "usage: cargo bench --bench attack -- [--seconds S (30)] [--clients N (64, even)]";
/// Peak RSS the plugin must stay below.
const PEAK_RSS_LIMIT_KIB: u64 = 256 * 1024;
/// How long the normal client waits for one `getinfo`.
const GETINFO_WAIT: Duration = Duration::from_secs(5);
/// HTTP/2 clients share connections this many at a time.
const STREAMS_PER_CONNECTION: usize = 8;

struct Args {
    seconds: u64,
    clients: usize,
}

fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        seconds: 30,
        clients: 64,
    };
    let mut line = CommandLine::from_env();
    while let Some(name) = line.next_option()? {
        match name.as_str() {
            "--seconds" => args.seconds = line.number()?,
            "--clients" => args.clients = line.number()? as usize,
            _ => return Err(line.unknown()),
        }
    }
    if args.seconds == 0
        || args.clients < 2 * STREAMS_PER_CONNECTION
        || !args.clients.is_multiple_of(2)
    {
        return Err(ArgError::Invalid(format!(
            "--seconds must be at least 1 and --clients even and at least {}",
            2 * STREAMS_PER_CONNECTION
        )));
    }
    Ok(args)
}

/// What the normal client saw.
#[derive(Default)]
struct Served {
    latencies: Vec<Duration>,
    /// Answers other than 201, or none within [`GETINFO_WAIT`].
    failures: Vec<String>,
}

/// `getinfo` every 100 ms until `until`, sampling the plugin's RSS every 250 ms meanwhile.
async fn serve_normal_client(gateway: &Gateway, pid: u32, until: Instant) -> (Served, u64) {
    let mut served = Served::default();
    let mut highest_rss_kib = 0;
    let mut next_sample = Instant::now();
    while Instant::now() < until {
        if Instant::now() >= next_sample {
            highest_rss_kib = highest_rss_kib.max(procfs::status(pid).rss_kib);
            next_sample += Duration::from_millis(250);
        }
        let asked = Instant::now();
        match tokio::time::timeout(GETINFO_WAIT, gateway.call("getinfo", json!({}))).await {
            Ok(response) => {
                let (status, body) = json_of(response).await;
                if status == 201 {
                    served.latencies.push(asked.elapsed());
                } else {
                    served.failures.push(format!("{status} {body}"));
                }
            }
            Err(_) => served
                .failures
                .push(format!("no answer within {GETINFO_WAIT:?}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (served, highest_rss_kib)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let args = support::args::or_exit(parse_args(), USAGE);
    let shape = AttackShape {
        http1_clients: args.clients / 2,
        http2_connections: args.clients / 2 / STREAMS_PER_CONNECTION,
        streams_per_connection: STREAMS_PER_CONNECTION,
    };
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let Some(pid) = gateway.node.pid() else {
        eprintln!("the plugin has no pid");
        return ExitCode::FAILURE;
    };
    let idle = procfs::status(pid);
    let checkrunes_before = gateway.node.calls_of("checkrune").len();
    eprintln!(
        "attacking for {} s with {} clients ({} HTTP/1.1, {} HTTP/2 streams over {} connections)",
        args.seconds,
        shape.clients(),
        shape.http1_clients,
        shape.http2_connections * shape.streams_per_connection,
        shape.http2_connections
    );
    let started = Instant::now();
    let attack = match BodyAttack::start(gateway.port, shape).await {
        Ok(attack) => attack,
        Err(e) => {
            eprintln!("the attack could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let until = started + Duration::from_secs(args.seconds);
    let (served, highest_rss_kib) = serve_normal_client(&gateway, pid, until).await;
    let refusals = attack.stop().await;
    let elapsed = started.elapsed();
    let after = procfs::status(pid);
    let plugin_up = procfs::alive(pid);
    let garbage_checked = gateway
        .node
        .calls_of("checkrune")
        .iter()
        .skip(checkrunes_before)
        .filter(|c| c.params["rune"] == "garbage")
        .count();
    let lightningd_up = gateway
        .lightningd_call("getinfo", json!({}))
        .await
        .get("id")
        .is_some();

    let mut latencies = served.latencies.clone();
    latencies.sort();
    println!(
        "# Attack: {} clients × 8 MiB garbage-rune bodies, {:.1} s\n",
        shape.clients(),
        elapsed.as_secs_f64()
    );
    println!("Command: `{}`\n", support::args::command("attack"));
    println!("| figure | value |\n|---|---|");
    match &refusals {
        Ok(r) => {
            println!(
                "| attacking requests refused | {} (413: {}, 503 + Retry-After: {}, 408: {}) |",
                r.total(),
                r.too_large,
                r.busy,
                r.slow
            );
            println!(
                "| attacking HTTP/1.1 requests cut off by a close | {}{} |",
                r.dropped,
                r.first_drop
                    .as_ref()
                    .map(|why| format!(" (first: {why})"))
                    .unwrap_or_default()
            );
        }
        Err(e) => println!("| attacking requests | a client failed: {e} |"),
    }
    println!(
        "| normal getinfo answered 201 | {} of {} |",
        served.latencies.len(),
        served.latencies.len() + served.failures.len()
    );
    println!(
        "| getinfo latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "| plugin RSS idle / highest sampled / after | {} / {} / {} MiB |",
        kib_as_mib(idle.rss_kib),
        kib_as_mib(highest_rss_kib),
        kib_as_mib(after.rss_kib)
    );
    println!(
        "| plugin peak RSS (VmHWM) | {} MiB |",
        kib_as_mib(after.hwm_kib)
    );
    println!("| machine load average | {} |\n", procfs::load_average("?"));

    let mut verdicts = Verdicts::default();
    verdicts.add(
        after.hwm_kib < PEAK_RSS_LIMIT_KIB,
        format!(
            "plugin peak RSS {} MiB < 256 MiB",
            kib_as_mib(after.hwm_kib)
        ),
    );
    verdicts.add(
        served.failures.is_empty() && !served.latencies.is_empty(),
        format!(
            "every normal getinfo answered 201 within 5 s ({} failed{})",
            served.failures.len(),
            served
                .failures
                .first()
                .map(|f| format!(", first: {f}"))
                .unwrap_or_default()
        ),
    );
    verdicts.add(
        matches!(&refusals, Ok(r) if r.total() > 0),
        "every attacking request refused with 413, 503 + Retry-After or 408".to_string(),
    );
    verdicts.add(
        garbage_checked == 0,
        format!("no garbage rune reached checkrune ({garbage_checked} did)"),
    );
    verdicts.add(
        plugin_up && lightningd_up,
        format!("plugin up: {plugin_up}, lightningd answering: {lightningd_up}"),
    );
    print!("{}", verdicts.lines());
    if verdicts.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
