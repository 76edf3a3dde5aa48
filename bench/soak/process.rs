//! The plugin process, from /proc, and the source tree it was built from.

use crate::shared::Shared;
use crate::support::procfs::{self, cpu_seconds, machine_cpu, open_fds};
use std::sync::atomic::Ordering;

/// `git describe` of the source tree, and the files of `src/` that differ from it: the
/// plugin binary was built from that tree.
pub fn source_state() -> String {
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

#[derive(Clone, Copy, Default)]
pub struct Sample {
    /// Seconds since the start of the first minute (negative: before it).
    pub at_secs: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    /// This bench process (the mock, its records, the clients).
    pub bench_rss_kib: u64,
    pub churn_connected: usize,
}

/// CPU seconds used so far: by the plugin, by this process, and by the whole machine (busy,
/// and available on all cores), from /proc (clock ticks of 1/100 s).
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub plugin: f64,
    pub bench: f64,
    pub machine_busy: f64,
    pub machine_total: f64,
}

impl Cpu {
    pub fn now(pid: u32) -> Cpu {
        let (machine_busy, machine_total) = machine_cpu();
        Cpu {
            plugin: cpu_seconds(pid),
            bench: cpu_seconds("self"),
            machine_busy,
            machine_total,
        }
    }

    /// What was used from `self` to `later`.
    pub fn until(&self, later: &Cpu) -> Cpu {
        Cpu {
            plugin: later.plugin - self.plugin,
            bench: later.bench - self.bench,
            machine_busy: later.machine_busy - self.machine_busy,
            machine_total: later.machine_total - self.machine_total,
        }
    }
}

pub fn sample(pid: u32, shared: &Shared) -> Sample {
    let plugin = procfs::status(pid);
    Sample {
        at_secs: shared.elapsed_secs(),
        rss_kib: plugin.rss_kib,
        fds: open_fds(pid),
        threads: plugin.threads,
        bench_rss_kib: procfs::status("self").rss_kib,
        churn_connected: shared.churn_connected.load(Ordering::SeqCst),
    }
}
