//! The splitter of lightningd's RPC stream into answers: any bytes, cut anywhere, never a
//! panic; every frame it finds is one whole JSON value when it parses, and splitting the
//! same bytes in other reads finds the same frames.
#![no_main]

use clnrest::lightningd::rpc::{Frame, FrameScanner};
use libfuzzer_sys::fuzz_target;

/// The frames of `stream` read `cut` bytes at a time, as the RPC reader does, and whether
/// the stream could be framed to its end.
fn frames(stream: &[u8], cut: usize) -> (Vec<Vec<u8>>, bool) {
    let mut scanner = FrameScanner::default();
    let mut buffer = Vec::new();
    let mut found = Vec::new();
    for piece in stream.chunks(cut.max(1)) {
        buffer.extend_from_slice(piece);
        loop {
            match scanner.scan(&buffer) {
                Frame::Complete(range) => {
                    assert!(range.start < range.end && range.end <= buffer.len());
                    assert!(buffer[..range.start].iter().all(u8::is_ascii_whitespace));
                    found.push(buffer[range.clone()].to_vec());
                    buffer.drain(..range.end);
                }
                Frame::Incomplete => {
                    if !scanner.in_value() {
                        buffer.clear();
                        scanner.reset();
                    }
                    break;
                }
                Frame::Invalid => return (found, false),
            }
        }
    }
    (found, true)
}

fuzz_target!(|data: &[u8]| {
    let Some((cut, stream)) = data.split_first() else {
        return;
    };
    let (whole, whole_ok) = frames(stream, stream.len());
    let (pieces, pieces_ok) = frames(stream, *cut as usize % 17 + 1);
    assert_eq!(whole, pieces);
    assert_eq!(whole_ok, pieces_ok);
    for frame in whole {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&frame) {
            assert!(value.is_object() || value.is_array());
        }
    }
});
