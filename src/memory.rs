//! Keeping the plugin's heap small on glibc: fewer malloc arenas, and freed memory handed
//! back to the system after bursts.
//!
//! glibc gives every thread that allocates concurrently its own arena (up to 8 per core) and
//! keeps freed pages in them. A notification burst fills many clients' send queues at once;
//! once they drain, the freed pages stay in whichever arenas held them, so RSS rises in steps
//! that never come back (the soak, `cargo bench --bench soak`, showed +1.9 MiB over ten
//! minutes with the default arenas). With a capped arena count and a periodic `malloc_trim`
//! the heap follows what is really in use: it settles at its working size within the first
//! two bursts and then stays flat. One arena rather than two made that step smaller in the
//! soak (+0.55 MiB over 3 minutes and +1.1 over 10, against +1.6 and +2.1 with two) at the
//! same REST throughput: the runtime has two worker threads on every machine (`main.rs`
//! sets the count, since lightningd, not the plugin, limits throughput). On other targets
//! both are no-ops.

use std::time::Duration;

/// How often freed heap is handed back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// One malloc arena for every thread: the runtime has few threads, and sharing the arena
/// costs no measurable throughput at this size while keeping the heap compact.
const MAX_ARENAS: i32 = 1;

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
