//! The plugin's stdout and its logs.
//!
//! lightningd reads plugin messages from stdout as JSON objects separated by `"\n\n"`. Both
//! cln-plugin (replies to lightningd's calls) and our tracing layer (log notifications) write
//! there, so [`PluginStdout`] collects whole frames from cln-plugin and a single writer task
//! interleaves them with log frames, never mid-frame.
//!
//! Every log message is capped at [`MAX_LOG_LINE`] bytes. This is a safety rule: lightningd
//! v26.06 crashes when a plugin sends it a log message of ~8 MiB, so nothing a client sends may
//! reach the log unbounded.

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
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

const DEFAULT_FILTER: &str = "warn,clnrest=debug";
const TRUNCATION_MARK: &str = "... [truncated]";

enum Output {
    Frame(Bytes),
    Flush(oneshot::Sender<()>),
}

/// Sends whole frames to the stdout writer task.
#[derive(Clone)]
pub struct FrameSender(mpsc::UnboundedSender<Output>);

impl FrameSender {
    fn send(&self, frame: Bytes) {
        // The writer only goes away at exit; a lost log line then is harmless.
        let _ = self.0.send(Output::Frame(frame));
    }

    /// Waits until everything sent so far has been written to stdout (bounded by `timeout`).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.0.send(Output::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }
}

/// Starts the task that owns the real stdout and returns the handles that write to it.
pub fn start_stdout_writer() -> (PluginStdout, FrameSender) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Output>();
    tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        let mut broken = false;
        while let Some(item) = rx.recv().await {
            match item {
                Output::Frame(frame) if !broken => {
                    broken = stdout.write_all(&frame).await.is_err();
                    if !broken && rx.is_empty() {
                        broken = stdout.flush().await.is_err();
                    }
                }
                // lightningd is gone: keep draining so senders never accumulate memory.
                Output::Frame(_) => {}
                Output::Flush(done) => {
                    let _ = stdout.flush().await;
                    let _ = done.send(());
                }
            }
        }
    });
    let sender = FrameSender(tx);
    (
        PluginStdout {
            pending: BytesMut::new(),
            frames: sender.clone(),
        },
        sender,
    )
}

/// The `AsyncWrite` handed to cln-plugin: it forwards each complete `"\n\n"`-terminated
/// frame to the writer task.
pub struct PluginStdout {
    pending: BytesMut,
    frames: FrameSender,
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
        while let Some(pos) = find_separator(&this.pending[start..]) {
            let frame = this.pending.split_to(start + pos + 2).freeze();
            this.frames.send(frame);
            start = 0;
        }
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
    bytes.windows(2).position(|w| w == b"\n\n")
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

impl<S: Subscriber> Layer<S> for LightningdLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let mut line = LineBuilder::default();
        event.record(&mut line);
        let message = cap_log_line(line.finish());
        self.frames
            .send(log_frame(level_name(*event.metadata().level()), &message));
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

#[derive(Serialize)]
struct LogParams<'a> {
    level: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct LogNotification<'a> {
    jsonrpc: &'static str,
    method: &'static str,
    params: LogParams<'a>,
}

/// One `log` notification, framed for stdout.
pub fn log_frame(level: &str, message: &str) -> Bytes {
    let notification = LogNotification {
        jsonrpc: "2.0",
        method: "log",
        params: LogParams { level, message },
    };
    let mut out = serde_json::to_vec(&notification).unwrap_or_default();
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Cuts a message to at most [`MAX_LOG_LINE`] bytes, on a character boundary, marking the cut.
pub fn cap_log_line(mut message: String) -> String {
    if message.len() <= MAX_LOG_LINE {
        return message;
    }
    let mut cut = MAX_LOG_LINE - TRUNCATION_MARK.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(TRUNCATION_MARK);
    message
}

/// Collects an event's message and fields into one line, refusing to grow far past the cap.
#[derive(Default)]
struct LineBuilder {
    message: String,
    fields: String,
}

impl LineBuilder {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{} [{}]", self.message, self.fields)
        }
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

    #[tokio::test]
    async fn plugin_stdout_splits_frames_written_in_pieces() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut out = PluginStdout {
            pending: BytesMut::new(),
            frames: FrameSender(tx),
        };
        out.write_all(b"{\"a\":1}\n").await.unwrap();
        out.write_all(b"\n{\"b\":2}\n\n{\"c\"").await.unwrap();
        let mut frames = vec![];
        while let Ok(Output::Frame(f)) = rx.try_recv() {
            frames.push(f);
        }
        assert_eq!(frames, vec![&b"{\"a\":1}\n\n"[..], &b"{\"b\":2}\n\n"[..]]);
    }
}
