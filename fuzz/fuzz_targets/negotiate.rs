//! Content-Type and Accept headers: any text gives a format or a 4xx, never a panic.
#![no_main]

use clnrest::format::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(error) = Format::from_content_type(Some(text)) {
        assert!(error.status().is_client_error());
    }
    if let Err(error) = Format::negotiate(Some(text)) {
        assert!(error.status().is_client_error());
    }
});
