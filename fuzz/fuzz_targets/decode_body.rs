//! Request bodies in every format: any bytes give params or a 4xx, never a panic.
#![no_main]

use clnrest::format::{decode_params, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => Format::Json,
        1 => Format::Yaml,
        2 => Format::Xml,
        _ => Format::Form,
    };
    if let Err(error) = decode_params(format, "listdatastore", body) {
        assert!(error.status().is_client_error(), "{format:?}: {error}");
    }
});
