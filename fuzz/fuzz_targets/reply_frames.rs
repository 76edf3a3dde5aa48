//! The splitter of lightningd's RPC stream into answers: any bytes, cut anywhere, never a
//! panic; every answer it finds is one whole JSON value when it parses, and splitting the
//! same bytes in other reads finds the same answers.
#![no_main]

use clnrest::lightningd::reply_frames::answers_in;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((cut, stream)) = data.split_first() else {
        return;
    };
    let whole = answers_in(stream, stream.len());
    let pieces = answers_in(stream, *cut as usize % 17 + 1);
    assert_eq!(whole, pieces);
    for answer in whole.0 {
        assert!(matches!(answer.first(), Some(b'{' | b'[')));
        assert!(matches!(answer.last(), Some(b'}' | b']')));
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&answer) {
            assert!(value.is_object() || value.is_array());
        }
    }
});
