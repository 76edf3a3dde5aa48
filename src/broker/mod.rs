//! Publishing notifications to an AMQP 0.9.1 broker (RabbitMQ), for systems that read their
//! events from a broker rather than hold a connection to the node (docs/broker.md).
//!
//! Off unless `clnrest-amqp-url` is set. Then one task ([`publisher`]) reads the journal like
//! any other listener and publishes every notification to the exchange
//! (`clnrest-amqp-exchange`): persistent, routing key = topic, message id = its journal
//! position `<epoch>-<seq>`, the body the webhooks' JSON, with publisher confirms, in order,
//! at least once, resuming from the last confirmed position after a broker outage.
//!
//! - [`url`]: the `amqp://` / `amqps://` URL.
//! - [`publisher`]: the connection, the channel, the confirms, the reconnection backoff.
//! - [`stats`]: counters for monitoring, read through `AppState::broker()`.

pub(crate) mod publisher;
pub mod stats;
pub mod url;

use crate::state::AppState;
use std::time::Duration;
use url::AmqpUrl;

/// The exchange notifications go to when `clnrest-amqp-exchange` is not set.
pub const DEFAULT_EXCHANGE: &str = "clnrest";
/// The first wait before reconnecting (then doubled, with jitter, up to [`MAX_BACKOFF`]).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The validated broker options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    pub url: AmqpUrl,
    pub exchange: String,
}

/// An exchange name AMQP accepts: 1 to 255 letters, digits, `-`, `_`, `.`, `:`.
pub fn is_exchange_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Reconnection timings. The environment variables are for tests only (they shorten what
/// takes seconds); operators have no reason to set them.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `CLNREST_AMQP_BACKOFF_MS`.
    pub first_backoff: Duration,
    /// `CLNREST_AMQP_MAX_BACKOFF_MS`.
    pub max_backoff: Duration,
}

impl Timings {
    pub fn from_env() -> Timings {
        let millis = |name, default: Duration| {
            std::env::var(name)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map_or(default, |ms| Duration::from_millis(ms.max(1)))
        };
        Timings {
            first_backoff: millis("CLNREST_AMQP_BACKOFF_MS", FIRST_BACKOFF),
            max_backoff: millis("CLNREST_AMQP_MAX_BACKOFF_MS", MAX_BACKOFF),
        }
    }

    /// The wait after the `failures`-th failure in a row: the first backoff doubled each
    /// time, at most the longest, then between half of that and all of it ("equal jitter").
    pub fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .first_backoff
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let delay = doubled.min(self.max_backoff);
        let mut random = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let fraction = 0.5 + 0.5 * (f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX));
        delay.mul_f64(fraction).max(Duration::from_millis(1))
    }
}

/// Starts publishing (called once, after `init`, when `clnrest-amqp-url` is set). Returns at
/// once: the connection is made in the background, and a broker that is away delays nothing
/// else.
pub fn start(state: AppState, settings: AmqpSettings) {
    tokio::spawn(publisher::run(state, settings, Timings::from_env()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_names() {
        for good in ["clnrest", "amq.topic", "ln:events-1_x", &"e".repeat(255)] {
            assert!(is_exchange_name(good), "{good}");
        }
        for bad in ["", "with space", "é", "a/b", &"e".repeat(256)] {
            assert!(!is_exchange_name(bad), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let timings = Timings {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        for failures in 1..=6 {
            let full = Duration::from_secs(1 << (failures - 1));
            let delay = timings.backoff(failures);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
        for failures in [7, 40, u32::MAX] {
            let delay = timings.backoff(failures);
            assert!(delay >= Duration::from_secs(30) && delay <= Duration::from_secs(60));
        }
    }
}
