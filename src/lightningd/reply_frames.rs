//! lightningd's RPC stream cut into answers.
//!
//! lightningd ends each answer with `"\n\n"`, but it forwards a plugin's reply to a method as
//! the plugin wrote it, so a pretty-printed reply can hold `"\n\n"` inside one value: answers
//! are split where a complete top-level value ends ([`FrameScanner`]). [`ReplyBuffer`] is
//! what the connection's reader reads into and takes whole answers from.

use bytes::{Buf, Bytes, BytesMut};
use std::ops::Range;

/// How much room a read gets.
const READ_CHUNK: usize = 64 * 1024;
/// Read buffer capacity kept between answers; a larger one is released once empty.
const KEEP_CAPACITY: usize = 1024 * 1024;
/// Answers up to this size are copied out of the read buffer; larger ones are split off it.
const COPY_FRAMES_UP_TO: usize = 16 * 1024;

/// The stream cannot be cut into JSON values any more: something that can never start or
/// close one (a top-level scalar, a byte that is not JSON, a closing bracket first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("lightningd sent an unreadable answer: not a JSON object")]
pub struct Unframeable;

/// The bytes read from one connection and not yet handed out as answers.
pub struct ReplyBuffer {
    buffer: BytesMut,
    scanner: FrameScanner,
}

impl Default for ReplyBuffer {
    fn default() -> Self {
        ReplyBuffer {
            buffer: BytesMut::with_capacity(READ_CHUNK),
            scanner: FrameScanner::default(),
        }
    }
}

impl ReplyBuffer {
    /// The next whole answer in what was read so far, or `None` when more must be read.
    pub fn next_answer(&mut self) -> Result<Option<Bytes>, Unframeable> {
        match self.scanner.scan(&self.buffer) {
            Frame::Complete(range) => Ok(Some(if range.end <= COPY_FRAMES_UP_TO {
                // A small answer is copied out, so the buffer stays ours and is reused for the
                // next read instead of being pinned by this answer until it is sent.
                let answer = Bytes::copy_from_slice(&self.buffer[range.clone()]);
                self.buffer.advance(range.end);
                answer
            } else {
                let mut answer = self.buffer.split_to(range.end);
                answer.advance(range.start);
                answer.freeze()
            })),
            Frame::Incomplete => {
                if !self.scanner.in_value() {
                    // Only the whitespace between answers (their "\n\n") so far.
                    self.buffer.clear();
                    self.scanner.reset();
                }
                Ok(None)
            }
            Frame::Invalid => Err(Unframeable),
        }
    }

    /// Where the next read goes, with room for [`READ_CHUNK`] bytes; memory a large answer
    /// grew is given back first, so it is not kept for the connection's lifetime.
    pub fn read_target(&mut self) -> &mut BytesMut {
        if self.buffer.is_empty() && self.buffer.capacity() > KEEP_CAPACITY {
            self.buffer = BytesMut::with_capacity(READ_CHUNK);
        }
        if self.buffer.capacity() - self.buffer.len() < READ_CHUNK {
            self.buffer.reserve(READ_CHUNK.max(self.buffer.len()));
        }
        &mut self.buffer
    }
}

/// The answers in `stream` read `cut` bytes at a time, as the reader does, and whether the
/// stream could be framed to its end (for the tests and the fuzz target).
pub fn answers_in(stream: &[u8], cut: usize) -> (Vec<Bytes>, Result<(), Unframeable>) {
    let mut replies = ReplyBuffer::default();
    let mut answers = Vec::new();
    for piece in stream.chunks(cut.max(1)) {
        replies.read_target().extend_from_slice(piece);
        loop {
            match replies.next_answer() {
                Ok(Some(answer)) => answers.push(answer),
                Ok(None) => break,
                Err(e) => return (answers, Err(e)),
            }
        }
    }
    (answers, Ok(()))
}

/// Where the JSON values lightningd sends on a connection begin and end.
///
/// lightningd ends each answer with `"\n\n"`, but it forwards a plugin's reply to a method as
/// the plugin wrote it, so a pretty-printed reply can hold `"\n\n"` inside one value: answers
/// are split where a complete top-level value ends, found by tracking strings, escapes and
/// bracket depth. The state is a few words whatever the nesting (brackets are counted, not
/// matched: the parse of the frame finds a mismatch), and each byte is looked at once however
/// the answer is cut into reads; inside strings the scan jumps from quote to backslash with
/// `memchr`.
#[derive(Debug, Default, Clone)]
struct FrameScanner {
    /// Bytes of the buffer already looked at.
    scanned: usize,
    /// Where the current value starts, once its first bracket was seen.
    start: Option<usize>,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

/// What [`FrameScanner::scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// A whole top-level object or array at this range of the buffer; what precedes it is
    /// whitespace. The caller removes the buffer up to `range.end` and scans on.
    Complete(Range<usize>),
    /// No complete value yet: read more, append it, scan again (nothing is re-scanned).
    Incomplete,
    /// Something that can never start or close a value (a top-level scalar, a byte that is
    /// not JSON, a closing bracket first): the stream cannot be framed any more.
    Invalid,
}

impl FrameScanner {
    /// Scans `buffer` (the same bytes as the last call, maybe with more appended, or a
    /// buffer starting after the last complete frame).
    fn scan(&mut self, buffer: &[u8]) -> Frame {
        let mut at = self.scanned;
        while at < buffer.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    at += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buffer[at..]) {
                    None => at = buffer.len(),
                    Some(found) => {
                        at += found;
                        if buffer[at] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                        }
                        at += 1;
                    }
                }
                continue;
            }
            let byte = buffer[at];
            at += 1;
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'{' | b'[' => {
                    self.start.get_or_insert(at - 1);
                    let Some(depth) = self.depth.checked_add(1) else {
                        return Frame::Invalid;
                    };
                    self.depth = depth;
                }
                _ if self.start.is_none() => return Frame::Invalid,
                b'"' => self.in_string = true,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let start = self.start.unwrap_or(0);
                        *self = FrameScanner::default();
                        return Frame::Complete(start..at);
                    }
                }
                _ => {}
            }
        }
        self.scanned = at;
        Frame::Incomplete
    }

    /// Whether a value has started: if not, everything scanned so far is whitespace, which
    /// the caller may drop (then [`FrameScanner::reset`]).
    fn in_value(&self) -> bool {
        self.start.is_some()
    }

    /// Forgets what was scanned, for a buffer that starts afresh.
    fn reset(&mut self) {
        *self = FrameScanner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The answers' text in `stream` read `cut` bytes at a time, or `Err` if it cannot be framed.
    fn frames_of(stream: &[u8], cut: usize) -> Result<Vec<String>, Unframeable> {
        let (answers, end) = answers_in(stream, cut);
        end.map(|()| {
            answers
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
    }

    #[test]
    fn the_scanner_splits_where_values_end() {
        let stream = b"{\"a\":\"\\\\\"}\n\n{\"b\":[1,{\"c\":\"]}\\\"\"}]}\n\n  [\n\n]{}";
        for cut in [1, 2, 3, 5, 64] {
            assert_eq!(
                frames_of(stream, cut).unwrap(),
                [r#"{"a":"\\"}"#, r#"{"b":[1,{"c":"]}\""}]}"#, "[\n\n]", "{}"],
                "cut {cut}"
            );
        }
        assert_eq!(frames_of(b"{\"a\":1", 1).unwrap(), Vec::<String>::new());
        for garbage in [&b"}"[..], b"1", b"\"s\"", b"\xff{}", b"null", b"{}x"] {
            assert_eq!(frames_of(garbage, 1), Err(Unframeable), "{garbage:?}");
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[\\[\\]{}\"\\\\\n ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any objects, compact or pretty with blank lines between every line, cut anywhere:
        /// the scanner gives back exactly those objects.
        #[test]
        fn the_scanner_finds_every_object_however_cut(
            values in proptest::collection::vec(json_value(), 1..5),
            pretty in proptest::bool::ANY,
            cut in 1usize..40,
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for value in values {
                let object = json!({"jsonrpc": "2.0", "id": 1, "result": value});
                let text = if pretty {
                    serde_json::to_string_pretty(&object).unwrap().replace('\n', "\n\n")
                } else {
                    object.to_string()
                };
                stream.extend_from_slice(text.as_bytes());
                stream.extend_from_slice(b"\n\n");
                expected.push(object);
            }
            let frames = frames_of(&stream, cut).unwrap();
            let found: Vec<Value> =
                frames.iter().map(|f| serde_json::from_str(f).unwrap()).collect();
            proptest::prop_assert_eq!(found, expected);
        }

        #[test]
        fn the_scanner_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), cut in 1usize..16) {
            let _ = frames_of(&bytes, cut);
        }
    }
}
