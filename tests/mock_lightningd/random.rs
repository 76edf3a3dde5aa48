//! Pseudo-random bytes for rune authcodes, payment hashes, secrets and bolt11 strings.
//!
//! No cryptography: a splitmix64 sequence seeded per mock from the clock, so two mocks
//! running in parallel make different runes and one mock never repeats itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A shared splitmix64 generator.
pub struct Random {
    state: AtomicU64,
}

impl Random {
    /// A generator seeded from the clock, the process id and a per-process counter.
    pub fn new() -> Random {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let seed =
            nanos ^ (u64::from(std::process::id()) << 32) ^ instance.wrapping_mul(GOLDEN_GAMMA);
        Random {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `N` pseudo-random bytes.
    pub fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    /// 32 pseudo-random bytes as 64 lowercase hex digits.
    pub fn hex32(&self) -> String {
        to_hex(&self.bytes::<32>())
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
