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

#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/mock_lightningd/mod.rs"]
mod mock_lightningd;
#[path = "support/mod.rs"]
mod support;

use futures::{SinkExt, StreamExt};
use harness::Gateway;
use mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use support::args::{ArgError, CommandLine};
use support::format::{quantile, thousands};
use support::procfs::{self, machine_cpu, open_fds, user_system};
use support::socketio_client::{self, number_after, BeforeAck, Ws};

const MINUTE: Duration = Duration::from_secs(60);
/// Offsets into each minute: the burst (once the churning clients of the first minute are
/// connected, so that every minute's burst meets the same load), churn stops, the checkpoint is read (at the latest at
/// `CHECKPOINT_LATEST`, even if a churning client is still connected), churn resumes.
const BURST_AT: Duration = Duration::from_secs(5);
const CHURN_PAUSE_AT: Duration = Duration::from_secs(48);
const CHECKPOINT_AT: Duration = Duration::from_secs(55);
const CHECKPOINT_LATEST: Duration = Duration::from_millis(57_500);
const CHURN_RESUME_AT: Duration = Duration::from_secs(58);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How often the main loop looks at the clock and at the plugin when there is no trickle.
const TICK: Duration = Duration::from_millis(200);

/// Churning clients stay connected this long (uniformly random, whole milliseconds).
const CHURN_STAY_MIN: Duration = Duration::from_secs(1);
const CHURN_STAY_MAX: Duration = Duration::from_secs(20);
/// Pause between a churning client's disconnect and its next connect (random up to this).
const CHURN_AWAY_MAX: Duration = Duration::from_millis(500);

/// One REST request, one websocket + Socket.IO handshake, one write to the plugin's stdin.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Closing a websocket politely (our close frame, then the server's).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting before a retry after a failed connection.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Steady clients connected before the first notification.
const STEADY_CONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// After the last push: give up after this long without progress, or after the cap.
const DRAIN_STALL: Duration = Duration::from_secs(15);
const DRAIN_CAP: Duration = Duration::from_secs(120);
/// Tasks told to stop get this long to return their results.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

/// Unintended errors printed in full; the rest are only counted.
const MAX_EXAMPLES: usize = 12;

/// The verdicts' limits.
const FD_SLACK: u64 = 2;
const RSS_GROWTH_LIMIT_KIB: u64 = 1024;

/// A realistic `invoice_creation` (tests/fixtures/notifications/invoice_creation.json).
const PREIMAGE: &str = "b3b01aebcaec63b025af22a3f829c1c8a906f3e57043285481dfdef21d8b5deb";

/// The method the restricted rune allows; it is used to call `getinfo`.
const RESTRICTED_TO: &str = "invoice";
const UNKNOWN_METHOD: &str = "soak-no-such-method";

// ---------------------------------------------------------------------------------------
// Arguments.

struct Args {
    minutes: u64,
    concurrency: usize,
    churn_clients: usize,
    steady_clients: usize,
    burst: u64,
    trickle: u64,
    seed: u64,
    strict_memory: bool,
}

const USAGE: &str = "usage: cargo bench --bench soak [-- [--minutes M] [--concurrency C] \
[--churn-clients N] [--steady-clients N] [--burst B] [--trickle R] [--seed S] [--strict-memory]]";

fn parse_args() -> Result<Args, ArgError> {
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

// ---------------------------------------------------------------------------------------
// Small helpers.

/// splitmix64: enough randomness for stay times and the request mix, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `min..=max`, whole milliseconds.
    fn duration(&mut self, min: Duration, max: Duration) -> Duration {
        let (min, max) = (min.as_millis() as u64, max.as_millis() as u64);
        Duration::from_millis(min + self.next_u64() % (max - min + 1))
    }
}

/// The string right after `key` (e.g. `"topic":"`), up to the next quote.
fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    Some(&rest[..rest.find('"')?])
}

fn excerpt(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let ellipsis = if end < text.len() { "…" } else { "" };
    format!("{}{ellipsis}", &text[..end])
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn signed_kib(delta: i64) -> String {
    format!("{delta:+} KiB ({:+.2} MiB)", delta as f64 / 1024.0)
}

/// The `q` quantile (0..=1) of `values`, which it reorders; in milliseconds.
fn quantile_ms(values: &mut [u32], q: f64) -> String {
    match quantile(values, q) {
        Some(us) => format!("{:.2}", f64::from(us) / 1000.0),
        None => "–".to_string(),
    }
}

fn load_average() -> String {
    procfs::load_average().unwrap_or_default()
}

/// `git describe` of the source tree, and the files of `src/` that differ from it: the
/// plugin binary was built from that tree.
fn source_state() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (no git)".to_string();
    };
    let dirty = git(&["status", "--porcelain", "--", "src"]).unwrap_or_default();
    let files: Vec<&str> = dirty
        .lines()
        .filter_map(|l| l.get(3..))
        .filter(|f| !f.is_empty())
        .collect();
    if files.is_empty() {
        format!("commit {commit}, no uncommitted changes in src/")
    } else {
        format!(
            "commit {commit} plus uncommitted changes in {}",
            files.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------------------
// The plugin process, from /proc.

#[derive(Clone, Copy, Default)]
struct Sample {
    /// Seconds since the start of the first minute (negative: before it).
    at_secs: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    /// This bench process (the mock, its records, the clients).
    bench_rss_kib: u64,
    churn_connected: usize,
}

/// Whether the process still runs (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// CPU seconds used so far: by the plugin, by this process, and by the whole machine (busy,
/// and available on all cores), from /proc (clock ticks of 1/100 s).
#[derive(Clone, Copy, Default)]
struct Cpu {
    plugin: f64,
    bench: f64,
    machine_busy: f64,
    machine_total: f64,
}

impl Cpu {
    fn now(pid: u32) -> Cpu {
        let process = |pid: &str| {
            let (user, system) = user_system(pid);
            user + system
        };
        let (machine_busy, machine_total) = machine_cpu();
        Cpu {
            plugin: process(&pid.to_string()),
            bench: process("self"),
            machine_busy,
            machine_total,
        }
    }

    /// What was used from `self` to `later`.
    fn until(&self, later: &Cpu) -> Cpu {
        Cpu {
            plugin: later.plugin - self.plugin,
            bench: later.bench - self.bench,
            machine_busy: later.machine_busy - self.machine_busy,
            machine_total: later.machine_total - self.machine_total,
        }
    }
}

// ---------------------------------------------------------------------------------------
// What every task shares.

/// Where a request or a Socket.IO client went wrong.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    Rest,
    SocketIo,
    Push,
}

struct Shared {
    /// The start of the first minute (set once the steady clients are connected).
    start: OnceLock<Instant>,
    /// Minutes of the run; slot `minutes` collects what happens after them (the drain).
    minutes: usize,
    rest_requests: Vec<AtomicU64>,
    rest_errors: Vec<AtomicU64>,
    socketio_errors: Vec<AtomicU64>,
    push_errors: Vec<AtomicU64>,
    churn_connects: Vec<AtomicU64>,
    pushed: Vec<AtomicU64>,
    examples: Mutex<Vec<String>>,
    /// Churning clients connected right now (decremented once their close is done).
    churn_connected: AtomicUsize,
    /// Per steady client: how many of the pushed notifications it has, counted from
    /// `soak_n` = 0 without a hole.
    steady_contiguous: Vec<AtomicU64>,
    steady_connected: AtomicUsize,
    /// Notifications pushed so far (the next `soak_n`).
    next_n: AtomicU64,
}

impl Shared {
    fn new(minutes: usize, steady_clients: usize) -> Shared {
        let slots = || (0..=minutes).map(|_| AtomicU64::new(0)).collect();
        Shared {
            start: OnceLock::new(),
            minutes,
            rest_requests: slots(),
            rest_errors: slots(),
            socketio_errors: slots(),
            push_errors: slots(),
            churn_connects: slots(),
            pushed: slots(),
            examples: Mutex::new(Vec::new()),
            churn_connected: AtomicUsize::new(0),
            steady_contiguous: (0..steady_clients).map(|_| AtomicU64::new(0)).collect(),
            steady_connected: AtomicUsize::new(0),
            next_n: AtomicU64::new(0),
        }
    }

    /// Time since the start of the first minute (zero before it).
    fn elapsed(&self) -> Duration {
        self.start.get().map_or(Duration::ZERO, Instant::elapsed)
    }

    fn elapsed_secs(&self) -> f64 {
        self.elapsed().as_secs_f64()
    }

    /// The minute we are in (the slot after the last one once the minutes are over);
    /// setting up counts as the first.
    fn minute(&self) -> usize {
        ((self.elapsed().as_secs() / 60) as usize).min(self.minutes)
    }

    fn count(&self, slots: &[AtomicU64]) {
        slots[self.minute()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an unintended error and keeps its description if there are few so far.
    fn error(&self, source: Source, what: String) {
        let slots = match source {
            Source::Rest => &self.rest_errors,
            Source::SocketIo => &self.socketio_errors,
            Source::Push => &self.push_errors,
        };
        self.count(slots);
        let mut examples = self.examples.lock().unwrap_or_else(|e| e.into_inner());
        if examples.len() < MAX_EXAMPLES {
            let source = match source {
                Source::Rest => "REST",
                Source::SocketIo => "Socket.IO",
                Source::Push => "push",
            };
            examples.push(format!("[{:.1} s, {source}] {what}", self.elapsed_secs()));
        }
    }

    fn total(slots: &[AtomicU64]) -> u64 {
        slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    fn steady_min_contiguous(&self) -> u64 {
        self.steady_contiguous
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .min()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------
// REST.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Getinfo,
    Invoice,
    ListInvoices,
    RuneForAnotherMethod,
    MissingRune,
    UnknownMethod,
}

/// The mix, by weight out of 1,000. Invoices stay rare: the mock looks labels up by
/// scanning every invoice, so their number must not grow fast over a long run.
const MIX: [(Kind, u64); 6] = [
    (Kind::Getinfo, 900),
    (Kind::Invoice, 10),
    (Kind::ListInvoices, 10),
    (Kind::RuneForAnotherMethod, 30),
    (Kind::MissingRune, 30),
    (Kind::UnknownMethod, 20),
];

impl Kind {
    fn pick(rng: &mut Rng) -> Kind {
        let total: u64 = MIX.iter().map(|(_, w)| w).sum();
        let mut roll = rng.next_u64() % total;
        for (kind, weight) in MIX {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        Kind::Getinfo
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Getinfo => "`getinfo`",
            Kind::Invoice => "`invoice`, unique label",
            Kind::ListInvoices => "`listinvoices` by label",
            Kind::RuneForAnotherMethod => "`getinfo` with a rune for `invoice` only",
            Kind::MissingRune => "`getinfo` without a rune",
            Kind::UnknownMethod => "unknown method",
        }
    }

    fn intended(self) -> &'static str {
        match self {
            Kind::Getinfo => "201, `id`",
            Kind::Invoice => "201, `bolt11`",
            Kind::ListInvoices => "201, the one invoice",
            Kind::RuneForAnotherMethod => "401, code 1502",
            Kind::MissingRune => "403, code 1501",
            Kind::UnknownMethod => "404, code -32601",
        }
    }
}

struct Runes {
    full: String,
    restricted: String,
}

/// What one REST task did.
#[derive(Default)]
struct RestResult {
    /// Per kind: requests, and those answered as intended.
    by_kind: BTreeMap<Kind, (u64, u64)>,
    /// Per minute slot: latencies in microseconds.
    latencies_us: Vec<Vec<u32>>,
}

/// Checks one response against what `kind` should get; `Err` says how it differs.
fn check_response(kind: Kind, status: u16, body: &[u8], label: Option<&str>) -> Result<(), String> {
    let text = || excerpt(&String::from_utf8_lossy(body));
    let error_code = |expected_status: u16, expected_code: i64| {
        if status != expected_status {
            return Err(format!(
                "expected {expected_status}, got {status}: {}",
                text()
            ));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("body not JSON ({e}): {}", text()))?;
        match (value["code"].as_i64(), value["message"].as_str()) {
            (Some(code), Some(_)) if code == expected_code => Ok(()),
            _ => Err(format!(
                "expected code {expected_code} and a message, got {}",
                text()
            )),
        }
    };
    match kind {
        Kind::Getinfo => {
            if status != 201 || memchr::memmem::find(body, b"\"id\":\"").is_none() {
                return Err(format!("expected 201 with `id`, got {status}: {}", text()));
            }
            Ok(())
        }
        Kind::Invoice => {
            let value: Value = serde_json::from_slice(body).unwrap_or_default();
            if status != 201 || !value["bolt11"].is_string() {
                return Err(format!(
                    "expected 201 with `bolt11`, got {status}: {}",
                    text()
                ));
            }
            Ok(())
        }
        Kind::ListInvoices => {
            let value: Value = serde_json::from_slice(body).unwrap_or_default();
            let invoices = value["invoices"].as_array();
            let expected = usize::from(label.is_some());
            let as_intended = status == 201
                && invoices.is_some_and(|list| {
                    list.len() == expected
                        && list
                            .iter()
                            .all(|i| i["label"].as_str() == label && i["bolt11"].is_string())
                });
            if !as_intended {
                return Err(format!(
                    "expected 201 with {expected} invoice(s) labelled {label:?}, got {status}: {}",
                    text()
                ));
            }
            Ok(())
        }
        Kind::RuneForAnotherMethod => error_code(401, 1502),
        Kind::MissingRune => error_code(403, 1501),
        Kind::UnknownMethod => error_code(404, -32601),
    }
}

async fn rest_worker(
    id: usize,
    base: String,
    runes: Arc<Runes>,
    seed: u64,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> RestResult {
    let mut result = RestResult {
        latencies_us: vec![Vec::new(); shared.minutes + 1],
        ..RestResult::default()
    };
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            shared.error(Source::Rest, format!("cannot build a client: {e}"));
            return result;
        }
    };
    let mut rng = Rng::new(seed);
    let mut invoices = 0u64;
    // The label of the last invoice this task created, which `listinvoices` asks for.
    let mut last_label: Option<String> = None;
    while !stop.is_cancelled() {
        let kind = Kind::pick(&mut rng);
        let (method, rune, body) = match kind {
            Kind::Getinfo => ("getinfo", Some(&runes.full), json!({})),
            Kind::Invoice => {
                invoices += 1;
                let label = format!("soak-{id}-{invoices}");
                let body = json!({"amount_msat": 1000, "label": label, "description": "soak"});
                ("invoice", Some(&runes.full), body)
            }
            Kind::ListInvoices => {
                let label = last_label
                    .clone()
                    .unwrap_or_else(|| format!("soak-{id}-none"));
                ("listinvoices", Some(&runes.full), json!({ "label": label }))
            }
            Kind::RuneForAnotherMethod => ("getinfo", Some(&runes.restricted), json!({})),
            Kind::MissingRune => ("getinfo", None, json!({})),
            Kind::UnknownMethod => (UNKNOWN_METHOD, Some(&runes.full), json!({})),
        };
        let mut request = client.post(format!("{base}/v1/{method}")).json(&body);
        if let Some(rune) = rune {
            request = request.header("Rune", rune.as_str());
        }
        let started = Instant::now();
        let outcome = async {
            let response = request.send().await.map_err(|e| format!("{e:#}"))?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>((status, bytes))
        };
        let outcome = tokio::select! {
            outcome = outcome => outcome,
            _ = stop.cancelled() => break,
        };
        let minute = shared.minute();
        result.latencies_us[minute]
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        shared.count(&shared.rest_requests);
        let label = match kind {
            Kind::ListInvoices => last_label.as_deref(),
            _ => None,
        };
        let checked =
            outcome.and_then(|(status, bytes)| check_response(kind, status, &bytes, label));
        let entry = result.by_kind.entry(kind).or_default();
        entry.0 += 1;
        match checked {
            Ok(()) => {
                entry.1 += 1;
                if kind == Kind::Invoice {
                    last_label = body["label"].as_str().map(str::to_string);
                }
            }
            Err(e) => shared.error(Source::Rest, format!("{}: {e}", kind.describe())),
        }
    }
    result
}

// ---------------------------------------------------------------------------------------
// Socket.IO clients (engine.io v4 / Socket.IO v5 over a websocket, by hand).

/// Websocket, engine.io open, Socket.IO connect to `/` with `auth`; returns after the
/// server's connect ack. Bounded by [`CONNECT_TIMEOUT`].
async fn connect(url: &str, auth: &Value) -> Result<Ws, String> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        socketio_client::handshake(url, auth, BeforeAck::Fail),
    )
    .await
    .map_err(|_| format!("no connect ack within {CONNECT_TIMEOUT:?}"))?
}

/// Socket.IO disconnect, websocket close, and waiting (bounded) for the server's close.
async fn leave(mut ws: Ws) {
    let polite = async {
        let _ = ws.send(Message::text("41")).await;
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, polite).await;
}

/// What one frame from the server means to a client.
enum Frame {
    /// A `42[...]` event: its text after `42`.
    Event(String),
    /// Something we answered (a ping) or ignore.
    Handled,
    /// The server ended the connection, or it broke.
    Ended(String),
}

async fn read_frame(ws: &mut Ws) -> Frame {
    let text = match ws.next().await {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(frame))) => {
            return Frame::Ended(format!("websocket closed: {frame:?}"))
        }
        Some(Ok(_)) => return Frame::Handled,
        Some(Err(e)) => return Frame::Ended(format!("websocket error: {e}")),
        None => return Frame::Ended("connection ended".into()),
    };
    let text = text.as_str();
    if let Some(event) = text.strip_prefix("42") {
        Frame::Event(event.to_string())
    } else if text == "2" {
        match ws.send(Message::text("3")).await {
            Ok(()) => Frame::Handled,
            Err(e) => Frame::Ended(format!("cannot answer a ping: {e}")),
        }
    } else if text.starts_with("41") || text == "1" {
        Frame::Ended(format!("server disconnected the client ({text})"))
    } else {
        Frame::Event(text.to_string())
    }
}

#[derive(Default)]
struct ChurnResult {
    connects: u64,
    messages: u64,
}

/// Connects, stays a random 1-20 s, leaves, and again, while `churn` says so.
async fn churn_client(
    url: String,
    rune: String,
    seed: u64,
    shared: Arc<Shared>,
    mut churn: watch::Receiver<bool>,
    stop: CancellationToken,
) -> ChurnResult {
    let mut result = ChurnResult::default();
    let mut rng = Rng::new(seed);
    let auth = json!({ "rune": rune });
    // Spread the first connections over the first seconds.
    let first = rng.duration(Duration::ZERO, CHURN_STAY_MIN * 2);
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = stop.cancelled() => return result,
    }
    loop {
        // Wait until churn is allowed.
        tokio::select! {
            allowed = churn.wait_for(|on| *on) => if allowed.is_err() { return result },
            _ = stop.cancelled() => return result,
        }
        let mut ws = tokio::select! {
            connected = connect(&url, &auth) => match connected {
                Ok(ws) => ws,
                Err(e) => {
                    shared.error(Source::SocketIo, format!("churning client: {e}"));
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => continue,
                        _ = stop.cancelled() => return result,
                    }
                }
            },
            _ = stop.cancelled() => return result,
        };
        result.connects += 1;
        shared.count(&shared.churn_connects);
        shared.churn_connected.fetch_add(1, Ordering::SeqCst);
        let stay = tokio::time::sleep(rng.duration(CHURN_STAY_MIN, CHURN_STAY_MAX));
        tokio::pin!(stay);
        let mut ended = None;
        loop {
            let frame = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = churn.wait_for(|on| !*on) => break,
                _ = &mut stay => break,
                frame = read_frame(&mut ws) => frame,
            };
            match frame {
                Frame::Event(event) if event.starts_with("[\"message\"") => result.messages += 1,
                Frame::Event(event) => {
                    shared.error(
                        Source::SocketIo,
                        format!(
                            "churning client got an unexpected frame: {}",
                            excerpt(&event)
                        ),
                    );
                }
                Frame::Handled => {}
                Frame::Ended(reason) => {
                    ended = Some(reason);
                    break;
                }
            }
        }
        match ended {
            Some(reason) => shared.error(
                Source::SocketIo,
                format!("churning client lost its connection before leaving: {reason}"),
            ),
            None => leave(ws).await,
        }
        shared.churn_connected.fetch_sub(1, Ordering::SeqCst);
        let away = rng.duration(Duration::ZERO, CHURN_AWAY_MAX);
        tokio::select! {
            _ = tokio::time::sleep(away) => {}
            _ = stop.cancelled() => return result,
        }
    }
}

/// One steady client's record of what it received.
#[derive(Default)]
struct SteadyResult {
    /// Pushed notifications received, by `soak_n`.
    seen: Vec<bool>,
    distinct: u64,
    duplicates: u64,
    /// Received after a higher `soak_n`.
    out_of_order: u64,
    max_n: Option<u64>,
    /// The first `soak_n` not received yet (everything below it was).
    contiguous: u64,
    last_seq: u64,
    /// Sequence numbers skipped, and sequence numbers not above the previous one.
    seq_skipped: u64,
    seq_backwards: u64,
    /// Notifications not pushed by the harness, by topic.
    others: BTreeMap<String, u64>,
    gap_events: Vec<String>,
    /// Connections the server ended, or that broke, and failed reconnects.
    disconnects: Vec<String>,
}

impl SteadyResult {
    /// Records one `notification` event (the text after `42`); `false` if it has no `seq`.
    fn record(&mut self, event: &str) -> bool {
        let Some(seq) = number_after(event, "\"seq\":") else {
            return false;
        };
        if seq <= self.last_seq {
            self.seq_backwards += 1;
        } else {
            self.seq_skipped += seq - self.last_seq - 1;
            self.last_seq = seq;
        }
        let Some(n) = number_after(event, "\"soak_n\":") else {
            let topic = string_after(event, "\"topic\":\"").unwrap_or("?");
            *self.others.entry(topic.to_string()).or_default() += 1;
            return true;
        };
        let index = n as usize;
        if self.seen.len() <= index {
            self.seen.resize(index + 1, false);
        }
        if self.seen[index] {
            self.duplicates += 1;
            return true;
        }
        self.seen[index] = true;
        self.distinct += 1;
        if self.max_n.is_some_and(|max| n < max) {
            self.out_of_order += 1;
        }
        self.max_n = self.max_n.max(Some(n));
        while self.seen.get(self.contiguous as usize) == Some(&true) {
            self.contiguous += 1;
        }
        true
    }
}

/// Connected for the whole run with `seq: true`; checks sequence numbers and `soak_n`.
async fn steady_client(
    index: usize,
    url: String,
    rune: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> SteadyResult {
    let mut result = SteadyResult::default();
    let mut first = true;
    while !stop.is_cancelled() {
        // Resume after the last notification seen (0 the first time: everything).
        let auth = json!({ "rune": rune, "seq": true, "since": result.last_seq });
        let mut ws = tokio::select! {
            connected = connect(&url, &auth) => match connected {
                Ok(ws) => ws,
                Err(e) => {
                    let what = format!("steady client {index}: cannot connect: {e}");
                    shared.error(Source::SocketIo, what.clone());
                    result.disconnects.push(what);
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => continue,
                        _ = stop.cancelled() => break,
                    }
                }
            },
            _ = stop.cancelled() => break,
        };
        if first {
            shared.steady_connected.fetch_add(1, Ordering::SeqCst);
            first = false;
        }
        let ended = loop {
            let frame = tokio::select! {
                biased;
                _ = stop.cancelled() => break None,
                frame = read_frame(&mut ws) => frame,
            };
            match frame {
                Frame::Event(event) if event.starts_with("[\"notification\"") => {
                    if !result.record(&event) {
                        shared.error(
                            Source::SocketIo,
                            format!(
                                "steady client {index} got a notification without seq: {}",
                                excerpt(&event)
                            ),
                        );
                    }
                    shared.steady_contiguous[index].store(result.contiguous, Ordering::SeqCst);
                }
                Frame::Event(event) if event.starts_with("[\"gap\"") => {
                    shared.error(
                        Source::SocketIo,
                        format!("steady client {index} got a gap: {}", excerpt(&event)),
                    );
                    result.gap_events.push(event);
                }
                Frame::Event(event) => {
                    shared.error(
                        Source::SocketIo,
                        format!(
                            "steady client {index} got an unexpected frame: {}",
                            excerpt(&event)
                        ),
                    );
                }
                Frame::Handled => {}
                Frame::Ended(reason) => break Some(reason),
            }
        };
        match ended {
            Some(reason) => {
                let what = format!(
                    "steady client {index} lost its connection after seq {}: {reason}",
                    result.last_seq
                );
                shared.error(Source::SocketIo, what.clone());
                result.disconnects.push(what);
            }
            None => {
                leave(ws).await;
                break;
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------------------
// Pushing notifications.

#[derive(Clone, Copy)]
enum PushKind {
    Burst,
    Trickle,
    Final,
}

/// Pushes the next numbered `invoice_creation`; `Err` (counted as an unintended error) if
/// the mock could not write it (the plugin is gone or stopped reading its stdin): the run
/// cannot go on.
async fn push(node: &MockLightningd, shared: &Shared, kind: PushKind) -> Result<(), String> {
    let n = shared.next_n.load(Ordering::SeqCst);
    let kind = match kind {
        PushKind::Burst => "burst",
        PushKind::Trickle => "trickle",
        PushKind::Final => "final",
    };
    let payload = json!({
        "soak_n": n,
        "kind": kind,
        "msat": 10000,
        "preimage": PREIMAGE,
        "label": format!("soak-notification-{n}"),
    });
    let error =
        match tokio::time::timeout(PUSH_TIMEOUT, node.notify("invoice_creation", payload)).await {
            Ok(true) => {
                shared.next_n.fetch_add(1, Ordering::SeqCst);
                shared.count(&shared.pushed);
                return Ok(());
            }
            Ok(false) => {
                format!("notification {n} ({kind}) could not be written to the plugin's stdin")
            }
            Err(_) => format!(
                "notification {n} ({kind}): the plugin did not read its stdin for {PUSH_TIMEOUT:?}"
            ),
        };
    shared.error(Source::Push, error.clone());
    Err(error)
}

// ---------------------------------------------------------------------------------------
// The run.

/// RSS, fds and threads at the same point of a minute, churning clients away.
#[derive(Clone, Copy)]
struct Checkpoint {
    minute: usize,
    sample: Sample,
    /// Churning clients still connected when it was read (0 unless they were slow to go).
    churn_connected: usize,
    /// Pushed notifications the slowest steady client did not have yet.
    steady_lag: u64,
}

impl Checkpoint {
    fn take(minute: usize, pid: u32, shared: &Shared) -> Checkpoint {
        let sample = sample(pid, shared);
        let pushed = shared.next_n.load(Ordering::SeqCst);
        Checkpoint {
            minute,
            sample,
            churn_connected: sample.churn_connected,
            steady_lag: pushed.saturating_sub(shared.steady_min_contiguous()),
        }
    }
}

/// What happened minute by minute.
#[derive(Default)]
struct Timeline {
    checkpoints: Vec<Checkpoint>,
    /// Per minute: the burst's push time.
    burst_secs: Vec<f64>,
    /// CPU counters at the start of every minute and at the end of the last.
    minute_cpu: Vec<Cpu>,
}

struct Run {
    /// The counters every task shared.
    shared: Arc<Shared>,
    pid: u32,
    source: String,
    load_start: String,
    load_end: String,
    idle: Sample,
    samples: Vec<Sample>,
    timeline: Timeline,
    rest: Vec<RestResult>,
    churn: Vec<ChurnResult>,
    steady: Vec<SteadyResult>,
    /// Why the run stopped early, if it did.
    fatal: Option<String>,
    /// Whether every steady client had every pushed notification at the end, and how long
    /// that took after the last push.
    drained: bool,
    drain_secs: f64,
    /// After REST and churn stopped, once drained.
    after: Sample,
    violations: Vec<String>,
    stderr_tail: Vec<String>,
    elapsed_secs: f64,
}

fn sample(pid: u32, shared: &Shared) -> Sample {
    let plugin = procfs::status(&pid.to_string());
    Sample {
        at_secs: shared.elapsed_secs(),
        rss_kib: plugin.rss_kib,
        fds: open_fds(pid),
        threads: plugin.threads,
        bench_rss_kib: procfs::status("self").rss_kib,
        churn_connected: shared.churn_connected.load(Ordering::SeqCst),
    }
}

/// Waits for tasks told to stop, at most [`JOIN_TIMEOUT`] in all.
async fn join_all<T>(handles: Vec<JoinHandle<T>>, what: &str) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(e)) => eprintln!("soak: a {what} task failed: {e}"),
            Err(_) => eprintln!("soak: a {what} task did not stop within {JOIN_TIMEOUT:?}"),
        }
    }
    results
}

/// Waits until every steady client has every pushed notification, progress stalls for
/// [`DRAIN_STALL`], or [`DRAIN_CAP`] passes; returns whether they all had everything.
async fn drain(shared: &Shared, pid: u32) -> (bool, Duration) {
    let start = Instant::now();
    let target = shared.next_n.load(Ordering::SeqCst);
    let progress = || -> u64 {
        shared
            .steady_contiguous
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum()
    };
    let mut last = progress();
    let mut last_progress = Instant::now();
    loop {
        if shared.steady_min_contiguous() >= target {
            return (true, start.elapsed());
        }
        if start.elapsed() >= DRAIN_CAP || last_progress.elapsed() >= DRAIN_STALL || !alive(pid) {
            return (false, start.elapsed());
        }
        tokio::time::sleep(POLL).await;
        let now = progress();
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
    }
}

/// Bursts, trickle and checkpoints, minute by minute; `Err` stops the run (plugin gone).
async fn drive(
    args: &Args,
    node: &MockLightningd,
    pid: u32,
    shared: &Shared,
    churn: &watch::Sender<bool>,
    timeline: &mut Timeline,
) -> Result<(), String> {
    let start = tokio::time::Instant::from_std(*shared.start.get_or_init(Instant::now));
    let trickle_every = 1_000_000_000u64
        .checked_div(args.trickle)
        .map(Duration::from_nanos);
    for minute in 0..args.minutes as usize {
        let minute_start = start + MINUTE * minute as u32;
        let last = minute + 1 == args.minutes as usize;
        timeline.minute_cpu.push(Cpu::now(pid));
        let mut next_trickle = tokio::time::Instant::now();
        let mut burst_done = false;
        let mut checkpoint: Option<Checkpoint> = None;
        loop {
            let now = tokio::time::Instant::now();
            if now >= minute_start + MINUTE {
                break;
            }
            if !alive(pid) {
                return Err(format!(
                    "the plugin process exited (minute {}, {:.1} s)",
                    minute + 1,
                    shared.elapsed_secs()
                ));
            }
            let into = now - minute_start;
            if !burst_done && into >= BURST_AT {
                timeline
                    .burst_secs
                    .push(burst(args, node, pid, shared).await?);
                eprintln!(
                    "soak: minute {}: burst of {} pushed in {:.2} s",
                    minute + 1,
                    thousands(args.burst),
                    timeline.burst_secs.last().copied().unwrap_or_default()
                );
                burst_done = true;
                continue;
            }
            if let Some(every) = trickle_every {
                if now >= next_trickle {
                    push(node, shared, PushKind::Trickle).await?;
                    next_trickle += every;
                    // After a stall, do not catch up with a burst of trickle.
                    next_trickle = next_trickle.max(tokio::time::Instant::now() - every);
                }
            }
            if into >= CHURN_PAUSE_AT && into < CHURN_RESUME_AT {
                churn.send_if_modified(|on| std::mem::replace(on, false));
            }
            let churn_away = shared.churn_connected.load(Ordering::SeqCst) == 0;
            if checkpoint.is_none()
                && (into >= CHECKPOINT_AT && churn_away || into >= CHECKPOINT_LATEST)
            {
                let taken = Checkpoint::take(minute, pid, shared);
                let sample = taken.sample;
                eprintln!(
                    "soak: minute {} checkpoint: RSS {} MiB, {} fds, {} threads; REST {} requests, errors {} REST / {} Socket.IO",
                    minute + 1,
                    mib(sample.rss_kib),
                    sample.fds,
                    sample.threads,
                    thousands(shared.rest_requests[minute].load(Ordering::Relaxed)),
                    shared.rest_errors[minute].load(Ordering::Relaxed),
                    shared.socketio_errors[minute].load(Ordering::Relaxed),
                );
                checkpoint = Some(taken);
            }
            if into >= CHURN_RESUME_AT && !last {
                churn.send_if_modified(|on| !std::mem::replace(on, true));
            }
            let mut wake = (minute_start + MINUTE).min(now + TICK);
            if !burst_done {
                wake = wake.min(minute_start + BURST_AT);
            }
            if trickle_every.is_some() {
                wake = wake.min(next_trickle.max(now));
            }
            tokio::time::sleep_until(wake.max(now + Duration::from_millis(1))).await;
        }
        // A minute whose burst outlasted it still gets a checkpoint, at its end.
        timeline
            .checkpoints
            .push(checkpoint.unwrap_or_else(|| Checkpoint::take(minute, pid, shared)));
    }
    timeline.minute_cpu.push(Cpu::now(pid));
    Ok(())
}

/// Pushes a burst back to back; returns how long it took.
async fn burst(
    args: &Args,
    node: &MockLightningd,
    pid: u32,
    shared: &Shared,
) -> Result<f64, String> {
    let started = Instant::now();
    for i in 0..args.burst {
        push(node, shared, PushKind::Burst).await?;
        if i % 1000 == 999 && !alive(pid) {
            return Err("the plugin process exited during a burst".into());
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn orchestrate(args: &Args) -> Run {
    let load_start = load_average();
    let source = source_state();
    // The plugin over plain HTTP on a free port with an unrestricted rune, as the integration
    // tests start it (the Gateway's own HTTP client goes unused).
    let Gateway {
        node,
        port,
        base,
        rune,
        ..
    } = Gateway::start().await;
    // A long run's calls and log lines are never read: keep the mock's memory flat.
    node.record_calls(false);
    node.record_logs(false);
    let pid = node.pid().expect("the mock started the plugin");
    let runes = Arc::new(Runes {
        full: rune,
        restricted: node.create_rune(json!([[format!("method={RESTRICTED_TO}")]])),
    });
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let shared = Arc::new(Shared::new(args.minutes as usize, args.steady_clients));
    let idle = sample(pid, &shared);
    let mut seeds = Rng::new(args.seed);
    let mut fatal = None;

    // Steady clients first, so that they see every notification from the first one on.
    let steady_stop = CancellationToken::new();
    let steady_handles: Vec<JoinHandle<SteadyResult>> = (0..args.steady_clients)
        .map(|index| {
            tokio::spawn(steady_client(
                index,
                url.clone(),
                runes.full.clone(),
                shared.clone(),
                steady_stop.clone(),
            ))
        })
        .collect();
    let setup = Instant::now();
    while shared.steady_connected.load(Ordering::SeqCst) < args.steady_clients
        && setup.elapsed() < STEADY_CONNECT_DEADLINE
    {
        tokio::time::sleep(POLL).await;
    }
    let steady_connected = shared.steady_connected.load(Ordering::SeqCst);
    if steady_connected < args.steady_clients {
        fatal = Some(format!(
            "only {steady_connected} of {} steady clients connected within {STEADY_CONNECT_DEADLINE:?}",
            args.steady_clients
        ));
    }

    // The load, for `--minutes`.
    let stop = CancellationToken::new();
    let (churn, churn_allowed) = watch::channel(true);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut timeline = Timeline::default();
    let mut rest_handles = Vec::new();
    let mut churn_handles = Vec::new();
    let mut sampler = None;
    if fatal.is_none() {
        let _ = shared.start.set(Instant::now());
        eprintln!(
            "soak: plugin pid {pid} on port {port}; {} minute(s), seed {}",
            args.minutes, args.seed
        );
        sampler = Some(tokio::spawn({
            let (shared, samples, stop) = (shared.clone(), samples.clone(), stop.clone());
            async move {
                let mut every = tokio::time::interval(SAMPLE_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = every.tick() => {}
                        _ = stop.cancelled() => break,
                    }
                    let taken = sample(pid, &shared);
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(taken);
                }
            }
        }));
        for id in 0..args.concurrency {
            rest_handles.push(tokio::spawn(rest_worker(
                id,
                base.clone(),
                runes.clone(),
                seeds.next_u64(),
                shared.clone(),
                stop.clone(),
            )));
        }
        for _ in 0..args.churn_clients {
            churn_handles.push(tokio::spawn(churn_client(
                url.clone(),
                runes.full.clone(),
                seeds.next_u64(),
                shared.clone(),
                churn_allowed.clone(),
                stop.clone(),
            )));
        }
        let driven = drive(args, &node, pid, &shared, &churn, &mut timeline).await;
        if let Err(e) = driven {
            eprintln!("soak: stopping early: {e}");
            fatal = Some(e);
        }
    }

    // Wind down: REST and churn stop, one last notification, the steady clients drain.
    churn.send_replace(false);
    stop.cancel();
    let rest = join_all(rest_handles, "REST").await;
    let churn_results = join_all(churn_handles, "churning client").await;
    if let Some(sampler) = sampler {
        let _ = tokio::time::timeout(JOIN_TIMEOUT, sampler).await;
    }
    let (mut drained, mut drain_time) = (false, Duration::ZERO);
    if fatal.is_none() {
        match push(&node, &shared, PushKind::Final).await {
            Ok(()) => (drained, drain_time) = drain(&shared, pid).await,
            Err(e) => fatal = Some(e),
        }
    }
    let after = sample(pid, &shared);
    steady_stop.cancel();
    let steady = join_all(steady_handles, "steady client").await;
    if fatal.is_none() && !alive(pid) {
        fatal = Some("the plugin process exited at the end of the run".to_string());
    }
    let violations = node.violations();
    let stderr = node.plugin_stderr();
    let stderr_tail = stderr[stderr.len().saturating_sub(20)..].to_vec();
    let elapsed_secs = shared.elapsed_secs();
    node.kill().await;
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    Run {
        shared,
        pid,
        source,
        load_start,
        load_end: load_average(),
        idle,
        samples,
        timeline,
        rest,
        churn: churn_results,
        steady,
        fatal,
        drained,
        drain_secs: drain_time.as_secs_f64(),
        after,
        violations,
        stderr_tail,
        elapsed_secs,
    }
}

// ---------------------------------------------------------------------------------------
// The report.

/// One verdict line, and whether it fails the exit status.
struct Verdict {
    pass: bool,
    fails_exit: bool,
    text: String,
}

fn verdicts(args: &Args, run: &Run) -> Vec<Verdict> {
    let shared = &run.shared;
    let mut out = Vec::new();
    let rest_errors = Shared::total(&shared.rest_errors);
    let socketio_errors = Shared::total(&shared.socketio_errors);
    let push_errors = Shared::total(&shared.push_errors);
    let errors = rest_errors + socketio_errors + push_errors;
    out.push(Verdict {
        pass: errors == 0,
        fails_exit: true,
        text: format!(
            "unintended errors = 0: {} ({} REST, {} Socket.IO, {} push)",
            thousands(errors),
            thousands(rest_errors),
            thousands(socketio_errors),
            push_errors
        ),
    });

    let pushed = shared.next_n.load(Ordering::SeqCst);
    let lost: u64 = run
        .steady
        .iter()
        .map(|s| pushed.saturating_sub(s.distinct) + s.seq_skipped)
        .sum();
    let disordered: u64 = run
        .steady
        .iter()
        .map(|s| s.out_of_order + s.seq_backwards + s.duplicates)
        .sum();
    let gaps: usize = run.steady.iter().map(|s| s.gap_events.len()).sum();
    let complete = run.steady.len() == args.steady_clients && run.drained;
    out.push(Verdict {
        pass: lost == 0 && disordered == 0 && gaps == 0 && complete,
        fails_exit: true,
        text: format!(
            "notifications lost or out of order for the {} steady clients = 0: {} lost (pushed ones missing + sequence numbers skipped), {} out of order or twice, {} gap event(s); {}",
            args.steady_clients,
            thousands(lost),
            thousands(disordered),
            gaps,
            if run.drained {
                format!("all {} pushed received {:.2} s after the last push", thousands(pushed), run.drain_secs)
            } else {
                format!("not all received after {:.1} s of drain", run.drain_secs)
            }
        ),
    });

    match (
        run.timeline.checkpoints.first(),
        run.timeline.checkpoints.last(),
    ) {
        (Some(first), Some(last)) => {
            let note = if run.timeline.checkpoints.len() == 1 {
                " (one minute only: the first checkpoint is the last, nothing to compare)"
            } else {
                ""
            };
            let stragglers = if first.churn_connected + last.churn_connected > 0 {
                format!(
                    "; churning clients still connected at the checkpoints: {} and {}",
                    first.churn_connected, last.churn_connected
                )
            } else {
                String::new()
            };
            out.push(Verdict {
                pass: last.sample.fds <= first.sample.fds + FD_SLACK,
                fails_exit: true,
                text: format!(
                    "fds at the end <= fds after the first minute + {FD_SLACK}: {} at minute {}'s checkpoint, {} at minute 1's{note}{stragglers}",
                    last.sample.fds,
                    last.minute + 1,
                    first.sample.fds
                ),
            });
            let growth = last.sample.rss_kib as i64 - first.sample.rss_kib as i64;
            out.push(Verdict {
                pass: growth < RSS_GROWTH_LIMIT_KIB as i64,
                fails_exit: args.strict_memory,
                text: format!(
                    "RSS growth after the first minute < 1 MiB: {} ({} MiB at minute {}'s checkpoint, {} MiB at minute 1's){note}{}",
                    signed_kib(growth),
                    mib(last.sample.rss_kib),
                    last.minute + 1,
                    mib(first.sample.rss_kib),
                    if args.strict_memory { "" } else { " (fails the exit status only with --strict-memory)" }
                ),
            });
        }
        _ => out.push(Verdict {
            pass: false,
            fails_exit: true,
            text: "fds and RSS: no checkpoint was taken (the run stopped in its first minute)"
                .to_string(),
        }),
    }

    out.push(Verdict {
        pass: run.fatal.is_none() && run.violations.is_empty(),
        fails_exit: true,
        text: format!(
            "the plugin ran the whole time without breaking lightningd's protocol: {}",
            match (&run.fatal, run.violations.len()) {
                (None, 0) => "yes".to_string(),
                (Some(fatal), n) => format!("no: {fatal}; {n} protocol violation(s)"),
                (None, n) => format!("{n} protocol violation(s)"),
            }
        ),
    });
    out
}

fn report(args: &Args, run: &Run, verdicts: &[Verdict]) -> String {
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
    for verdict in verdicts {
        let _ = writeln!(
            out,
            "- {} {}",
            if verdict.pass { "PASS" } else { "FAIL" },
            verdict.text
        );
    }
    out
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
        .thread_name("soak")
        .enable_all()
        .build()
        .expect("the runtime builds");
    let run = runtime.block_on(orchestrate(&args));
    let verdicts = verdicts(&args, &run);
    println!("{}", report(&args, &run, &verdicts));
    runtime.shutdown_timeout(Duration::from_secs(2));
    let failed = verdicts.iter().any(|v| !v.pass && v.fails_exit);
    if failed {
        eprintln!("soak: FAILED (see the verdicts)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
