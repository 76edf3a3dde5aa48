//! Keeping the plugin's heap small on glibc: fewer malloc arenas, and freed memory handed
//! back to the system after bursts.
//!
//! glibc gives every thread that allocates concurrently its own arena (up to 8 per core) and
//! keeps freed pages in them. A notification burst fills many clients' send queues at once;
//! once they drain, the freed pages stay in whichever arenas held them, so RSS rises in steps
//! that never come back (the soak, `cargo bench --bench soak`, showed +1.9 MiB over ten
//! minutes with the default arenas). With two arenas and a periodic `malloc_trim` the heap
//! follows what is really in use. On other targets both are no-ops.

use std::time::Duration;

/// How often freed heap is handed back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// At most this many malloc arenas: the runtime has few threads, and a shared arena costs
/// little contention at this size.
const MAX_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas; call first thing in `main`, before other threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator settings; called before other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS);
    }
}

/// Returns unused pages of glibc's heap to the system.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of glibc's heap to the system; it takes
    // glibc's own locks and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands freed heap back every [`TRIM_INTERVAL`], forever (spawn it).
pub async fn trim_periodically() {
    let mut ticks = tokio::time::interval(TRIM_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        release_freed_memory();
    }
}
