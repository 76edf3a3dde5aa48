//! Soak run: the real plugin binary, run by the mock lightningd over plain HTTP on a free
//! loopback port, under a mixed load for `--minutes` (default 10), to show that nothing
//! leaks and nothing gets lost over time.
//!
//! All at once, for the whole run:
//! - **REST**: `--concurrency` (8) tasks, each with its own keep-alive reqwest client (one
//!   connection each), send a mix of requests back to back: mostly `getinfo`, also `invoice`
//!   (unique labels), `listinvoices` (by the label the task created last), and errors on
//!   purpose: a rune restricted to `invoice` calling `getinfo` (401, lightningd's code 1502),
//!   no rune (403, code 1501), an unknown method (404, lightningd's -32601 passed through).
//!   Every response is checked (status exactly, and the body's shape or error code); anything
//!   else counts as an unintended error, with the first examples printed.
//! - **Churning Socket.IO clients** (`--churn-clients`, 20): each connects (rune in the auth
//!   payload), stays a random 1-20 s, disconnects (`41`, websocket close) and reconnects.
//!   A refused or failed connection, or the server ending one early, is an unintended error.
//! - **Steady Socket.IO clients** (`--steady-clients`, 3): connected before the first
//!   notification with `{"seq": true, "since": 0}`, so they receive every notification the
//!   plugin ever journaled, as `notification` events `{"seq": n, ...}`. Each checks that
//!   sequence numbers come without gaps and in order, and that every notification this harness
//!   pushed (numbered `soak_n` in its payload) arrives exactly once, in order. If one is
//!   disconnected anyway it counts as an error, and it reconnects with `since` = the last
//!   sequence number it saw, so the rest of the run is still checked.
//! - **Notifications**: 5 s into every minute (the first minute's churning clients are
//!   connected by then) a burst of `--burst` (10,000) `invoice_creation` notifications pushed
//!   back to back, and a trickle of `--trickle` (5) per second the rest of the time.
//!   `invoice` calls make the mock send its own `invoice_creation` too (checked by sequence
//!   number only).
//! - **Samples** every 10 s: the plugin's VmRSS and thread count (/proc/<pid>/status) and
//!   open file descriptors (entries of /proc/<pid>/fd); and per minute the CPU time of the
//!   plugin, of this process and of the whole machine (/proc/<pid>/stat, /proc/stat), since
//!   the machine may be shared.
//!
//! Memory and file descriptors are compared at the same point of every minute, the
//! **checkpoint**: 48 s into the minute the churning clients are told to disconnect and stay
//! away; at 55 s (or once they have all gone, at most 57.5 s) RSS, fds and threads are read;
//! at 58 s the churn resumes. The verdicts compare the last minute's checkpoint with the
//! first's. After the last minute, REST stops, one last notification is pushed, and the steady
//! clients get a bounded time to receive everything. (This process grows meanwhile, ~60-90 MB
//! a minute: the mock keeps every log line the plugin sends, one per authorized request.)
//!
//! The report (Markdown, on stdout; progress on stderr) has a per-minute table, the samples,
//! totals and these verdicts: unintended errors = 0; notifications lost, duplicated or out of
//! order at the steady clients = 0; fds at the last checkpoint <= fds at the first + 2; RSS
//! growth from the first checkpoint to the last < 1 MiB. The exit status is 1 when a verdict
//! fails or the plugin died, except RSS growth, which fails the status only with
//! `--strict-memory`.
//!
//! Run: `cargo bench --bench soak` (options after `--`: `--minutes M`, `--concurrency C`,
//! `--churn-clients N`, `--steady-clients N`, `--burst B`, `--trickle R`, `--seed S`,
//! `--strict-memory`). Every wait is bounded (requests 10 s, connections 10 s, each push
//! 10 s, the final drain 120 s), and the plugin's process is checked every 200 ms: if it
//! dies or stops reading its stdin, the run stops, reports and exits 1.
//!
//! Modules: `shared` (the counters every task shares), `process` (the plugin's figures from
//! /proc, the source tree's state), `rest_load` (the REST mix), `socketio` (churning and steady
//! clients), `run` (pushing, the minutes, the checkpoints), `report` (the tables), `verdict`
//! (the limits, PASS/FAIL); `../support` is shared with the other benches.

#[path = "../support/mod.rs"]
mod support;

mod process;
mod report;
mod rest_load;
mod run;
mod shared;
mod socketio;
mod verdict;

use std::process::ExitCode;
use std::time::Duration;
use support::args::{ArgError, CommandLine};

pub struct Args {
    pub minutes: u64,
    pub concurrency: usize,
    pub churn_clients: usize,
    pub steady_clients: usize,
    pub burst: u64,
    pub trickle: u64,
    pub seed: u64,
    pub strict_memory: bool,
}

pub const USAGE: &str = "usage: cargo bench --bench soak [-- [--minutes M] [--concurrency C] \
[--churn-clients N] [--steady-clients N] [--burst B] [--trickle R] [--seed S] [--strict-memory]]";

pub fn parse_args() -> Result<Args, ArgError> {
    let mut args = Args {
        minutes: 10,
        concurrency: 8,
        churn_clients: 20,
        steady_clients: 3,
        burst: 10_000,
        trickle: 5,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        strict_memory: false,
    };
    let mut line = CommandLine::from_env();
    while let Some(name) = line.next_option()? {
        match name.as_str() {
            "--minutes" => args.minutes = line.number()?,
            "--concurrency" => args.concurrency = line.number()? as usize,
            "--churn-clients" => args.churn_clients = line.number()? as usize,
            "--steady-clients" => args.steady_clients = line.number()? as usize,
            "--burst" => args.burst = line.number()?,
            "--trickle" => args.trickle = line.number()?,
            "--seed" => args.seed = line.number()?,
            "--strict-memory" => args.strict_memory = true,
            _ => return Err(line.unknown()),
        }
    }
    if args.minutes == 0 || args.steady_clients == 0 {
        return Err("--minutes and --steady-clients must be at least 1".into());
    }
    if args.minutes > 24 * 60
        || args.concurrency > 256
        || args.churn_clients > 1000
        || args.steady_clients > 100
        || args.burst > 100_000
        || args.trickle > 1000
    {
        return Err(
            "bounded: --minutes ≤ 1440, --concurrency ≤ 256, --churn-clients ≤ 1000, \
             --steady-clients ≤ 100, --burst ≤ 100000, --trickle ≤ 1000"
                .into(),
        );
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = support::args::or_exit(parse_args(), USAGE);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("soak")
        .enable_all()
        .build()
        .expect("the runtime builds");
    let run = runtime.block_on(run::orchestrate(&args));
    let verdicts = verdict::judge(&args, &run);
    println!("{}", report::render(&args, &run, &verdicts));
    runtime.shutdown_timeout(Duration::from_secs(2));
    if verdicts.failed() {
        eprintln!("soak: FAILED (see the verdicts)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
