//! Notifications at a steady rate: `invoice_creation` #n is due at `start + n / rate` and
//! carries its number (`bench_n`) and the time it was handed to the mock (`sent_ns`, Unix
//! nanoseconds). When the pusher falls behind (a timer tick is 1 ms), it catches up at once,
//! so the rate over the phase is the one asked for.

use crate::arrivals::unix_ns;
use crate::support::notification::PREIMAGE;
use mock_lightningd::MockLightningd;
use serde_json::json;
use std::time::{Duration, Instant};

/// One notification the mock cannot write within this is an error (the plugin stopped
/// reading its stdin).
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Pushed {
    pub count: u64,
    pub seconds: f64,
}

/// Pushes notifications `first..` at `rate` per second for `duration`.
pub async fn push_at_rate(
    node: &MockLightningd,
    first: u64,
    rate: u64,
    duration: Duration,
) -> Result<Pushed, String> {
    let total = rate * duration.as_secs();
    let started = Instant::now();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let n = first + i;
        let payload = json!({
            "bench_n": n,
            "sent_ns": unix_ns(),
            "label": format!("events-{n}"),
            "msat": 10000,
            "preimage": PREIMAGE,
        });
        match tokio::time::timeout(PUSH_TIMEOUT, node.notify("invoice_creation", payload)).await {
            Ok(true) => {}
            Ok(false) => return Err(format!("notification {n}: the plugin's stdin is closed")),
            Err(_) => {
                return Err(format!(
                    "notification {n}: not written within {PUSH_TIMEOUT:?}"
                ))
            }
        }
    }
    Ok(Pushed {
        count: total,
        seconds: started.elapsed().as_secs_f64(),
    })
}
