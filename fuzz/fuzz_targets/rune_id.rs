//! The rune unique-id decoder used for logs: any text, never a panic, never a long id.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(id) = clnrest::lightningd::rune::unique_id(text) {
        assert!(id.len() <= 32);
    }
});
