//! Scheduler figures per thread name, from /proc/<pid>/task.

use crate::support::format::thousands;
use std::collections::BTreeMap;

/// Scheduler figures of a group of threads: nanoseconds running, nanoseconds runnable but
/// waiting for a CPU (/proc/<pid>/task/<tid>/schedstat), and context switches (voluntary and
/// not, from .../status).
#[derive(Clone, Copy, Default)]
pub struct ThreadTimes {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub switches: u64,
}

/// Per thread name, summed over the threads of that name.
pub type Sched = BTreeMap<String, ThreadTimes>;

pub fn sched(pid: &str) -> Sched {
    let mut out = Sched::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        let mut numbers = stat
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (run, wait) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let switches: u64 = status
            .lines()
            .filter(|line| line.contains("ctxt_switches:"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        let entry = out.entry(name.trim().to_string()).or_default();
        entry.run_ns += run;
        entry.wait_ns += wait;
        entry.switches += switches;
    }
    out
}

/// What `after` adds to `before` (threads gone since are not counted).
pub fn sched_delta(before: &Sched, after: &Sched) -> Sched {
    after
        .iter()
        .map(|(name, now)| {
            let then = before.get(name).copied().unwrap_or_default();
            let delta = ThreadTimes {
                run_ns: now.run_ns.saturating_sub(then.run_ns),
                wait_ns: now.wait_ns.saturating_sub(then.wait_ns),
                switches: now.switches.saturating_sub(then.switches),
            };
            (name.clone(), delta)
        })
        .collect()
}

pub fn sched_total(sched: &Sched) -> ThreadTimes {
    sched
        .values()
        .fold(ThreadTimes::default(), |sum, t| ThreadTimes {
            run_ns: sum.run_ns + t.run_ns,
            wait_ns: sum.wait_ns + t.wait_ns,
            switches: sum.switches + t.switches,
        })
}

pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `ran 1.23 s, waited 0.45 s for a CPU, 1,234 context switches (tokio-rt-worker ...)`.
pub fn sched_summary(sched: &Sched) -> String {
    let total = sched_total(sched);
    let mut busy: Vec<(&String, &ThreadTimes)> = sched
        .iter()
        .filter(|(_, t)| t.run_ns + t.wait_ns >= 10_000_000)
        .collect();
    busy.sort_by_key(|(_, t)| std::cmp::Reverse(t.run_ns));
    let parts: Vec<String> = busy
        .iter()
        .map(|(name, t)| {
            format!(
                "{name} {:.2}/{:.2}/{}",
                secs(t.run_ns),
                secs(t.wait_ns),
                thousands(t.switches)
            )
        })
        .collect();
    format!(
        "ran {:.2} s, waited {:.2} s for a CPU, {} context switches (by thread name, ran s/waited s/switches: {})",
        secs(total.run_ns),
        secs(total.wait_ns),
        thousands(total.switches),
        parts.join(", ")
    )
}
