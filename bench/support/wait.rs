//! Waiting for deliveries after the last push, bounded.

use std::time::{Duration, Instant};

/// How long to wait: give up after `stall` without progress, or after `cap` in all; look
/// every `poll`.
#[derive(Clone, Copy)]
pub struct Patience {
    pub stall: Duration,
    pub cap: Duration,
    pub poll: Duration,
}

/// Waits until `done()`; gives up when `progress()` (any counter that grows while deliveries
/// go on) has not changed for `patience.stall`, after `patience.cap`, or when `give_up()`.
/// Returns whether it was done, and how long it waited.
pub async fn until_done(
    done: impl Fn() -> bool,
    progress: impl Fn() -> u64,
    give_up: impl Fn() -> bool,
    patience: Patience,
) -> (bool, Duration) {
    let start = Instant::now();
    let mut last = progress();
    let mut last_progress = Instant::now();
    loop {
        if done() {
            return (true, start.elapsed());
        }
        if start.elapsed() >= patience.cap || last_progress.elapsed() >= patience.stall || give_up()
        {
            return (false, start.elapsed());
        }
        tokio::time::sleep(patience.poll).await;
        let now = progress();
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
    }
}
