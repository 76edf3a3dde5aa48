//! The run: pushing notifications, the minutes with their bursts, trickle and checkpoints,
//! and the wind-down.

use crate::process::{sample, source_state, Cpu, Sample};
use crate::rest_load::{rest_worker, RestResult, Runes, RESTRICTED_TO};
use crate::shared::{Rng, Shared, Source};
use crate::socketio::{churn_client, steady_client, ChurnResult, SteadyResult};
use crate::support::format::{kib_as_mib as mib, thousands};
use crate::support::notification::PREIMAGE;
use crate::support::procfs::{alive, load_average};
use crate::support::wait::{until_done, Patience};
use crate::Args;
use mock_lightningd::gateway::Gateway;
use mock_lightningd::MockLightningd;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const MINUTE: Duration = Duration::from_secs(60);
/// Offsets into each minute: the burst (once the churning clients of the first minute are
/// connected, so that every minute's burst meets the same load), churn stops, the checkpoint is read (at the latest at
/// `CHECKPOINT_LATEST`, even if a churning client is still connected), churn resumes.
pub const BURST_AT: Duration = Duration::from_secs(5);
pub const CHURN_PAUSE_AT: Duration = Duration::from_secs(48);
pub const CHECKPOINT_AT: Duration = Duration::from_secs(55);
pub const CHECKPOINT_LATEST: Duration = Duration::from_millis(57_500);
pub const CHURN_RESUME_AT: Duration = Duration::from_secs(58);
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How often the main loop looks at the clock and at the plugin when there is no trickle.
pub const TICK: Duration = Duration::from_millis(200);
/// One write to the plugin's stdin.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Steady clients connected before the first notification.
pub const STEADY_CONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// After the last push: give up after this long without progress, or after the cap.
pub const DRAIN_STALL: Duration = Duration::from_secs(15);
pub const DRAIN_CAP: Duration = Duration::from_secs(120);
/// Tasks told to stop get this long to return their results.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
pub const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
pub enum PushKind {
    Burst,
    Trickle,
    Final,
}

/// Pushes the next numbered `invoice_creation`; `Err` (counted as an unintended error) if
/// the mock could not write it (the plugin is gone or stopped reading its stdin): the run
/// cannot go on.
pub async fn push(node: &MockLightningd, shared: &Shared, kind: PushKind) -> Result<(), String> {
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

/// RSS, fds and threads at the same point of a minute, churning clients away.
#[derive(Clone, Copy)]
pub struct Checkpoint {
    pub minute: usize,
    pub sample: Sample,
    /// Churning clients still connected when it was read (0 unless they were slow to go).
    pub churn_connected: usize,
    /// Pushed notifications the slowest steady client did not have yet.
    pub steady_lag: u64,
}

impl Checkpoint {
    pub fn take(minute: usize, pid: u32, shared: &Shared) -> Checkpoint {
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
pub struct Timeline {
    pub checkpoints: Vec<Checkpoint>,
    /// Per minute: the burst's push time.
    pub burst_secs: Vec<f64>,
    /// CPU counters at the start of every minute and at the end of the last.
    pub minute_cpu: Vec<Cpu>,
}

pub struct Run {
    /// The counters every task shared.
    pub shared: Arc<Shared>,
    pub pid: u32,
    pub source: String,
    pub load_start: String,
    pub load_end: String,
    pub idle: Sample,
    pub samples: Vec<Sample>,
    pub timeline: Timeline,
    pub rest: Vec<RestResult>,
    pub churn: Vec<ChurnResult>,
    pub steady: Vec<SteadyResult>,
    /// Why the run stopped early, if it did.
    pub fatal: Option<String>,
    /// Whether every steady client had every pushed notification at the end, and how long
    /// that took after the last push.
    pub drained: bool,
    pub drain_secs: f64,
    /// After REST and churn stopped, once drained.
    pub after: Sample,
    pub violations: Vec<String>,
    pub stderr_tail: Vec<String>,
    pub elapsed_secs: f64,
}

/// Waits for tasks told to stop, at most [`JOIN_TIMEOUT`] in all.
pub async fn join_all<T>(handles: Vec<JoinHandle<T>>, what: &str) -> Vec<T> {
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
pub async fn drain(shared: &Shared, pid: u32) -> (bool, Duration) {
    let target = shared.next_n.load(Ordering::SeqCst);
    until_done(
        || shared.steady_min_contiguous() >= target,
        || {
            shared
                .steady_contiguous
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .sum()
        },
        || !alive(pid),
        Patience {
            stall: DRAIN_STALL,
            cap: DRAIN_CAP,
            poll: POLL,
        },
    )
    .await
}

/// Bursts, trickle and checkpoints, minute by minute; `Err` stops the run (plugin gone).
pub async fn drive(
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
pub async fn burst(
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

pub async fn orchestrate(args: &Args) -> Run {
    let load_start = load_average("");
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
        load_end: load_average(""),
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
