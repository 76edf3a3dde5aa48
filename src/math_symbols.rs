//! The two C math functions the binary calls, defined here so that it does not need libm.
//!
//! Of all of libm, the code we link calls only `pow` (tokio's scheduler statistics, a moving
//! average of task poll times) and `log2f` (brotli's encoder, for its cost estimates). Defined
//! in the binary, with the pure-Rust `libm` crate (a port of musl's), they are resolved at link
//! time and the linker (`--as-needed`) drops `libm.so.6`. The loader then no longer maps and
//! relocates a whole library for two functions: an idle plugin is ~0.5 MiB smaller
//! (docs/performance.md). Should a dependency start calling another libm function, the
//! binary simply needs libm again; nothing breaks.
//!
//! These are the binary's own definitions: nothing outside it calls them, and libc does not
//! use libm.

/// `pow(3)`: `x` raised to the power `y`.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// `log2f(3)`: the base-2 logarithm of `x`.
#[no_mangle]
pub extern "C" fn log2f(x: f32) -> f32 {
    libm::log2f(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known values, not `f64::powf`/`f32::log2`: in this binary those call the functions above.
    #[test]
    fn compute_the_c_functions() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(1.5, 0.0), 1.0);
        assert_eq!(pow(9.0, 0.5), 3.0);
        assert!((pow(10.0, -3.0) - 0.001).abs() < 1e-18);
        assert!((pow(0.9, 3.3) - 0.706_318_011_512_805).abs() < 1e-15);
        assert!(pow(-1.0, 0.5).is_nan());
        assert_eq!(log2f(1024.0), 10.0);
        assert_eq!(log2f(1.0), 0.0);
        assert!((log2f(0.1) + std::f32::consts::LOG2_10).abs() < 1e-6);
        assert_eq!(log2f(0.0), f32::NEG_INFINITY);
        assert!(log2f(-1.0).is_nan());
    }
}
