//! Figures of a process and of the machine, read from /proc.

use std::fmt::Display;

/// A `Key:   123 kB` line (or `Key: 123`) of a /proc file: the number after `key`.
pub fn proc_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The memory and thread figures of `/proc/<pid>/status`, read in one go; zeros for what
/// cannot be read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS since start or the last `clear_refs` reset), KiB.
    pub hwm_kib: u64,
    /// RssAnon (heap, stacks), KiB.
    pub anon_kib: u64,
    /// RssFile (the binary's and libraries' pages touched), KiB.
    pub file_kib: u64,
    pub threads: u64,
}

/// [`Status`] of a process (`pid` may be `self`).
pub fn status(pid: impl Display) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Status {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
        threads: field("Threads:"),
    }
}

/// Open file descriptors of the process (entries of /proc/<pid>/fd); 0 if it cannot be read.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count() as u64)
}

/// The 1, 5 and 15 minute load averages, e.g. `0.52 0.58 0.59`; `fallback` if they cannot be
/// read.
pub fn load_average(fallback: &str) -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| fallback.to_string())
}

/// User and system CPU seconds of a whole process (`pid` may be `self`), from
/// /proc/<pid>/stat (ticks of 1/100 s); zeros if it cannot be read.
pub fn user_system(pid: impl Display) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After `(comm)`, the state is field 3 of proc(5): utime (14) and stime (15) are at 11, 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) as f64 / 100.0, ticks(12) as f64 / 100.0)
}

/// User + system CPU seconds of a whole process (`pid` may be `self`); 0 if it cannot be read.
pub fn cpu_seconds(pid: impl Display) -> f64 {
    let (user, system) = user_system(pid);
    user + system
}

/// Whether the process still runs (not gone, not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
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

/// CPU seconds all cores were busy, and elapsed for all cores together, since boot
/// (/proc/stat, clock ticks of 1/100 s).
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .map(|t| t.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    ((total - idle) as f64 / 100.0, total as f64 / 100.0)
}

/// The machine a report was measured on.
pub struct Machine {
    pub cores: usize,
    /// The CPU's model name.
    pub cpu: String,
    /// Total RAM, e.g. `7.8 GiB`.
    pub memory: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory = proc_kib("/proc/meminfo", "MemTotal:")
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory,
        }
    }
}
