//! The plugin's stdout and its logs.
//!
//! lightningd reads plugin messages from stdout as JSON objects separated by `"\n\n"`. Both
//! cln-plugin (replies to lightningd's calls) and our tracing layer (log notifications) write
//! there. [`PluginStdout`] cuts cln-plugin's output into whole frames, and every frame, theirs
//! or a log line, is written whole by whoever produced it ([`FrameSender`]), under one lock, so
//! two frames never interleave.
//!
//! When stdout is a pipe (as lightningd gives it) it is switched to non-blocking: a frame is
//! written in place if the pipe takes it, with no task or thread in between; what the pipe does
//! not take waits in a backlog, in order, which a task writes out (in one write per wake-up) as
//! lightningd reads, and later frames queue behind it. Anything else (a terminal, a file) is
//! written with ordinary blocking writes.
//!
//! Every log message is capped at [`MAX_LOG_LINE`] bytes. This is a safety rule: lightningd
//! v26.06 crashes when a plugin sends it a log message of ~8 MiB, so nothing a client sends may
//! reach the log unbounded.

use bytes::{Buf, Bytes, BytesMut};
use std::cell::RefCell;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The longest log message we ever send to lightningd, in bytes.
pub const MAX_LOG_LINE: usize = 4096;

/// Environment variable overriding the log filter (tracing `Targets` syntax, e.g.
/// `clnrest=trace,socketioxide=debug`).
pub const LOG_FILTER_ENV: &str = "CLNREST_LOG";

/// Log lines are dropped (and counted) rather than queued once this many bytes wait for
/// lightningd to read our stdout: a lightningd that stopped reading must not make the plugin
/// grow without bound. cln-plugin's own frames (replies to lightningd) are always queued.
pub const MAX_LOG_BACKLOG: usize = 16 * 1024 * 1024;

const DEFAULT_FILTER: &str = "warn,clnrest=debug";
const TRUNCATION_MARK: &str = "... [truncated]";

/// Where frames go.
enum Sink {
    /// A non-blocking pipe: written in place when it has room, else by the backlog task.
    Pipe(pipe::Sender),
    /// Anything else: blocking writes in place.
    Blocking(Mutex<Box<dyn Write + Send>>),
}

struct Output {
    sink: Sink,
    /// Bytes accepted but not yet written (pipe only). Taking this lock is the right to
    /// write, and nothing is written while it is not empty except by the backlog task.
    state: Mutex<Backlog>,
    /// Wakes the backlog task.
    pending: Notify,
    /// Tells flushers the backlog emptied.
    drained: Notify,
}

#[derive(Default)]
struct Backlog {
    bytes: BytesMut,
    /// Log lines dropped because [`MAX_LOG_BACKLOG`] bytes were waiting.
    dropped_log_lines: u64,
    /// lightningd is gone: frames are dropped from now on.
    broken: bool,
}

/// Writes whole frames to the plugin's stdout; cheap to clone.
#[derive(Clone)]
pub struct FrameSender(Arc<Output>);

impl FrameSender {
    fn new(sink: Sink) -> FrameSender {
        FrameSender(Arc::new(Output {
            sink,
            state: Mutex::new(Backlog::default()),
            pending: Notify::new(),
            drained: Notify::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        // Poisoning cannot leave half a frame queued: bytes are appended whole, and removed
        // only as the pipe took them.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Like [`FrameSender::send`] for a log line, which is dropped instead when
    /// [`MAX_LOG_BACKLOG`] bytes already wait for lightningd.
    fn send_log(&self, frame: &[u8]) {
        self.write(frame, true);
    }

    /// How many log lines were dropped because lightningd did not read our stdout.
    pub fn dropped_log_lines(&self) -> u64 {
        self.lock().dropped_log_lines
    }

    /// Writes one whole frame (or queues it behind earlier ones). Never waits for lightningd.
    fn send(&self, frame: &[u8]) {
        self.write(frame, false);
    }

    /// Writes or queues `frame`, under one lock; a log line (`droppable`) is dropped instead
    /// of queued past [`MAX_LOG_BACKLOG`].
    fn write(&self, frame: &[u8], droppable: bool) {
        let mut backlog = self.lock();
        if backlog.broken {
            // lightningd is gone; a lost log line then is harmless.
            return;
        }
        if droppable && backlog.bytes.len() >= MAX_LOG_BACKLOG {
            backlog.dropped_log_lines += 1;
            return;
        }
        if !backlog.bytes.is_empty() {
            backlog.bytes.extend_from_slice(frame);
            return;
        }
        match &self.0.sink {
            Sink::Pipe(pipe) => match write_now(pipe, frame) {
                Ok(written) if written == frame.len() => {}
                Ok(written) => {
                    backlog.bytes.extend_from_slice(&frame[written..]);
                    self.0.pending.notify_one();
                }
                Err(_) => backlog.broken = true,
            },
            Sink::Blocking(out) => {
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                backlog.broken = out.write_all(frame).and_then(|()| out.flush()).is_err();
            }
        }
    }

    /// Waits until everything sent so far has been written to stdout (bounded by `timeout`).
    pub async fn flush(&self, timeout: Duration) {
        let drained = async {
            loop {
                let notified = self.0.drained.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.lock().bytes.is_empty() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, drained).await;
    }

    /// Writes the backlog out as the pipe drains.
    async fn write_backlog(self) {
        let Sink::Pipe(pipe) = &self.0.sink else {
            return;
        };
        loop {
            self.0.pending.notified().await;
            loop {
                let ready = pipe.writable().await;
                let mut backlog = self.lock();
                match ready.and_then(|()| write_now(pipe, &backlog.bytes)) {
                    Ok(written) => backlog.bytes.advance(written),
                    Err(_) => {
                        backlog.broken = true;
                        backlog.bytes = BytesMut::new();
                    }
                }
                if backlog.bytes.is_empty() {
                    if backlog.bytes.capacity() > 64 * 1024 {
                        backlog.bytes = BytesMut::new();
                    }
                    drop(backlog);
                    self.0.drained.notify_waiters();
                    break;
                }
            }
        }
    }
}

/// Writes as much of `bytes` as the pipe takes without waiting.
fn write_now(pipe: &pipe::Sender, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match pipe.try_write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Takes over the real stdout and returns the handles that write to it. Must run inside the
/// tokio runtime (a pipe is registered with it, and its backlog task spawned).
pub fn start_stdout_writer() -> (PluginStdout, FrameSender) {
    let pipe = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd);
    let sender = match pipe {
        Ok(pipe) => {
            let sender = FrameSender::new(Sink::Pipe(pipe));
            tokio::spawn(sender.clone().write_backlog());
            sender
        }
        Err(_) => FrameSender::new(Sink::Blocking(Mutex::new(Box::new(io::stdout())))),
    };
    (PluginStdout::new(sender.clone()), sender)
}

/// The `AsyncWrite` handed to cln-plugin: it writes each complete `"\n\n"`-terminated frame
/// as soon as it has it.
pub struct PluginStdout {
    pending: BytesMut,
    frames: FrameSender,
}

impl PluginStdout {
    fn new(frames: FrameSender) -> PluginStdout {
        PluginStdout {
            pending: BytesMut::new(),
            frames,
        }
    }
}

impl AsyncWrite for PluginStdout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let search_from = this.pending.len().saturating_sub(1);
        this.pending.extend_from_slice(buf);
        let mut start = search_from;
        let mut sent = 0;
        while let Some(pos) = find_separator(&this.pending[sent + start..]) {
            let end = sent + start + pos + 2;
            this.frames.send(&this.pending[sent..end]);
            sent = end;
            start = 0;
        }
        this.pending.advance(sent);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn find_separator(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, b"\n\n")
}

/// Installs the global tracing subscriber that sends log notifications to lightningd.
pub fn init_tracing(frames: FrameSender) {
    let filter = std::env::var(LOG_FILTER_ENV)
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| DEFAULT_FILTER.parse().unwrap_or_default());
    let _ = tracing_subscriber::registry()
        .with(LightningdLogLayer { frames })
        .with(filter)
        .try_init();
}

/// Library errors' backtraces are not captured unless the operator asks for them with
/// `RUST_LIB_BACKTRACE` (then an error that ends the plugin, printed on stderr by `main`,
/// shows one). Log lines never show them, and cln-plugin builds an `anyhow` error even for
/// each option it then finds (`ok_or(anyhow!(..))`): under a `RUST_BACKTRACE=1` inherited
/// from lightningd's environment, each would walk the stack, costing CPU and making ~0.7 MiB
/// of unwind tables resident at start-up. (Panics are logged as their message alone, by
/// [`log_panics`].) Call first thing in `main`, before any other thread exists.
pub fn skip_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Sound here: no other thread exists yet to read the environment concurrently.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// Sends panic messages to lightningd's log (capped like every line) instead of stderr.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
    }));
}

/// Formats tracing events as lightningd `log` notifications.
struct LightningdLogLayer {
    frames: FrameSender,
}

/// Buffers for formatting a log line, kept per thread so a log line costs no allocation.
#[derive(Default)]
struct Scratch {
    line: LineBuilder,
    frame: Vec<u8>,
}

/// Scratch buffers grown past this (a long line) are not kept.
const KEEP_SCRATCH: usize = 32 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl<S: Subscriber> Layer<S> for LightningdLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let level = level_name(*event.metadata().level());
        let format_and_send = |scratch: &mut Scratch| {
            scratch.line.message.clear();
            scratch.line.fields.clear();
            event.record(&mut scratch.line);
            scratch.frame.clear();
            encode_log_frame(&mut scratch.frame, level, scratch.line.finish_capped());
            self.frames.send_log(&scratch.frame);
            if scratch.frame.capacity() > KEEP_SCRATCH {
                *scratch = Scratch::default();
            }
        };
        // A fresh buffer if this thread's is in use (an event logged while formatting one)
        // or already gone (thread exit).
        let done = SCRATCH
            .try_with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut scratch) => {
                    format_and_send(&mut scratch);
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !done {
            format_and_send(&mut Scratch::default());
        }
    }
}

/// lightningd's names for log levels (it has no `trace`).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG | Level::TRACE => "debug",
    }
}

/// Appends one `log` notification, framed for stdout: compact JSON (newlines in the message
/// are escaped, so the frame holds no `"\n\n"`) and the separator.
fn encode_log_frame(out: &mut Vec<u8>, level: &str, message: &str) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"log","params":{"level":"#);
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, level);
    out.extend_from_slice(br#","message":"#);
    let _ = serde_json::to_writer(&mut *out, message);
    out.extend_from_slice(b"}}\n\n");
}

/// One `log` notification, framed for stdout.
pub fn log_frame(level: &str, message: &str) -> Bytes {
    let mut out = Vec::with_capacity(64 + message.len());
    encode_log_frame(&mut out, level, message);
    Bytes::from(out)
}

/// Cuts a message to at most [`MAX_LOG_LINE`] bytes, on a character boundary, marking the cut.
pub fn cap_log_line(mut message: String) -> String {
    cap_in_place(&mut message);
    message
}

fn cap_in_place(message: &mut String) {
    if message.len() <= MAX_LOG_LINE {
        return;
    }
    let mut cut = MAX_LOG_LINE - TRUNCATION_MARK.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(TRUNCATION_MARK);
}

/// Collects an event's message and fields into one line, refusing to grow far past the cap.
#[derive(Default)]
struct LineBuilder {
    message: String,
    fields: String,
}

impl LineBuilder {
    /// The line: the message, then `[fields]` if any, capped at [`MAX_LOG_LINE`].
    fn finish_capped(&mut self) -> &str {
        if !self.fields.is_empty() {
            self.message.push_str(" [");
            self.message.push_str(&self.fields);
            self.message.push(']');
        }
        cap_in_place(&mut self.message);
        &self.message
    }
}

impl Visit for LineBuilder {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let budget = (MAX_LOG_LINE + 1).saturating_sub(self.message.len() + self.fields.len());
        if budget == 0 {
            return;
        }
        // Formatting stops as soon as the budget is spent: a field may hold a whole request.
        if field.name() == "message" {
            let _ = write!(Bounded::new(&mut self.message, budget), "{value:?}");
        } else if !field.name().starts_with("log.") {
            let mut out = Bounded::new(&mut self.fields, budget);
            let separator = if out.buf.is_empty() { "" } else { ", " };
            let _ = write!(out, "{separator}{}={:?}", field.name(), value);
        }
    }
}

/// A `fmt::Write` that accepts at most `budget` more bytes, then fails to stop formatting.
struct Bounded<'a> {
    buf: &'a mut String,
    budget: usize,
}

impl<'a> Bounded<'a> {
    fn new(buf: &'a mut String, budget: usize) -> Self {
        Bounded { buf, budget }
    }
}

impl std::fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if s.len() <= self.budget {
            self.buf.push_str(s);
            self.budget -= s.len();
            return Ok(());
        }
        let mut cut = self.budget;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.buf.push_str(&s[..cut]);
        self.budget = 0;
        Err(std::fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_capped_on_a_char_boundary() {
        let message = "é".repeat(10_000);
        let capped = cap_log_line(message);
        assert!(capped.len() <= MAX_LOG_LINE);
        assert!(capped.ends_with(TRUNCATION_MARK));
        assert_eq!(cap_log_line("short".into()), "short");
    }

    #[test]
    fn log_frames_are_compact_json_ending_with_a_blank_line() {
        let frame = log_frame("info", "hello\n\nworld");
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.ends_with("\n\n"));
        assert_eq!(
            text.matches("\n\n").count(),
            1,
            "newlines in messages are escaped"
        );
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["params"]["message"], "hello\n\nworld");
        assert_eq!(value["method"], "log");
    }

    #[test]
    fn huge_fields_are_not_formatted_whole() {
        let mut line = LineBuilder::default();
        let big = "x".repeat(1 << 20);
        let mut out = Bounded::new(&mut line.fields, 100);
        use std::fmt::Write;
        assert!(write!(out, "{big}").is_err());
        assert_eq!(line.fields.len(), 100);
    }

    /// A `Write` that records each call, to see frames arrive whole.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn plugin_stdout_splits_frames_written_in_pieces() {
        use tokio::io::AsyncWriteExt;
        let recorder = Recorder::default();
        let sender = FrameSender::new(Sink::Blocking(Mutex::new(Box::new(recorder.clone()))));
        let mut out = PluginStdout::new(sender);
        out.write_all(b"{\"a\":1}\n").await.unwrap();
        out.write_all(b"\n{\"b\":2}\n\n{\"c\"").await.unwrap();
        let frames = recorder.0.lock().unwrap().clone();
        assert_eq!(frames, vec![&b"{\"a\":1}\n\n"[..], &b"{\"b\":2}\n\n"[..]]);
    }

    #[tokio::test]
    async fn a_full_pipe_queues_whole_frames_in_order() {
        let (sender, mut receiver) = pipe::pipe().unwrap();
        let frames = FrameSender::new(Sink::Pipe(sender));
        tokio::spawn(frames.clone().write_backlog());
        // Far more than a pipe holds (64 KiB), from cln-plugin and the log, interleaved.
        let (mut plugin, logs) = (PluginStdout::new(frames.clone()), frames.clone());
        let mut expected = Vec::new();
        for i in 0..2000 {
            let reply = format!("{{\"id\":{i},\"result\":\"{}\"}}\n\n", "r".repeat(i % 300));
            use tokio::io::AsyncWriteExt;
            plugin.write_all(reply.as_bytes()).await.unwrap();
            expected.extend_from_slice(reply.as_bytes());
            let line = log_frame("debug", &format!("line {i} {}", "l".repeat(i % 500)));
            logs.send(&line);
            expected.extend_from_slice(&line);
        }
        let reading = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while got.len() < expected.len() {
                let n = receiver.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(got, expected);
        });
        frames.flush(Duration::from_secs(10)).await;
        assert!(frames.lock().bytes.is_empty());
        reading.await.unwrap();
    }

    #[tokio::test]
    async fn log_lines_are_dropped_past_the_backlog_cap_but_plugin_frames_never_are() {
        // Nobody reads this pipe: like a lightningd that stopped reading our stdout.
        let (sender, _receiver) = pipe::pipe().unwrap();
        let frames = FrameSender::new(Sink::Pipe(sender));
        let line = log_frame("debug", &"l".repeat(4000));
        let lines = 2 * MAX_LOG_BACKLOG / line.len();
        for _ in 0..lines {
            frames.send_log(&line);
        }
        let queued = frames.lock().bytes.len();
        assert!(
            queued < MAX_LOG_BACKLOG + line.len(),
            "{queued} bytes queued"
        );
        assert!(frames.dropped_log_lines() > 0);
        let reply = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        frames.send(reply);
        let backlog = frames.lock();
        assert_eq!(backlog.bytes.len(), queued + reply.len());
        assert!(backlog.bytes.ends_with(reply));
    }

    #[test]
    fn fields_follow_the_message_and_the_whole_line_is_capped() {
        let mut line = LineBuilder::default();
        line.message.push_str("hello");
        line.fields.push_str("a=1");
        assert_eq!(line.finish_capped(), "hello [a=1]");
        let mut line = LineBuilder {
            message: "m".repeat(MAX_LOG_LINE),
            fields: "f=1".into(),
        };
        let capped = line.finish_capped();
        assert!(capped.len() <= MAX_LOG_LINE && capped.ends_with(TRUNCATION_MARK));
    }
}
