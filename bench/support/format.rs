//! Numbers for the reports.

use std::time::Duration;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `q` quantile (0..=1) of `values`, which it reorders; `None` if there are none.
pub fn quantile(values: &mut [u32], q: f64) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
    Some(*values.select_nth_unstable(rank).1)
}

/// The middle value of `values` (the upper one of the two middles); the default if there
/// are none.
pub fn median<T: Copy + Default + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Bytes in MiB.
pub fn bytes_to_mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// KiB (as /proc counts) in MiB, with one decimal: `12.3`.
pub fn kib_as_mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Microseconds in milliseconds with two decimals (`1.23`), or `–` for none.
pub fn us_as_ms(us: Option<u32>) -> String {
    match us {
        Some(us) => format!("{:.2}", f64::from(us) / 1000.0),
        None => "–".to_string(),
    }
}
