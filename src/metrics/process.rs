//! The process's own resources, read from `/proc/self` when scraped: resident memory
//! (`statm`), open file descriptors (the entries of `fd/`) and their limit (`RLIMIT_NOFILE`).
//! Anything that cannot be read is left out of the scrape rather than reported as 0.

/// What a scrape reports of the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessReading {
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Reads the process's figures now.
pub fn read() -> ProcessReading {
    ProcessReading {
        resident_bytes: resident_bytes(),
        open_fds: open_fds(),
        max_fds: max_fds(),
    }
}

/// `/proc/self/statm`'s second field (resident pages) times the page size.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page_size).ok()?))
}

/// The entries of `/proc/self/fd` (the one listing them included, as Prometheus's own
/// process collector counts).
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count() as u64)
}

/// The soft `RLIMIT_NOFILE`.
fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (result == 0).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_files() {
        let reading = read();
        assert!(reading.resident_bytes.is_some_and(|rss| rss > 1024 * 1024));
        let open = reading.open_fds.expect("open fds");
        assert!(reading.max_fds.is_some_and(|max| max >= open));
        // Other tests open and close files meanwhile: a wide margin.
        let files: Vec<_> = (0..64)
            .map(|_| std::fs::File::open("/proc/self/statm").expect("open statm"))
            .collect();
        assert!(open_fds().expect("open fds") >= open + 32);
        drop(files);
    }
}
