//! The plugin's stdin/stdout as lightningd drives them.
//!
//! Everything written to stdin is compact JSON followed by `"\n\n"`
//! (plugin-stdin-framing.json). stdout is read as `"\n\n"`-separated frames, each of which
//! must be JSON: replies to the mock's requests are routed by id, `log` notifications are
//! recorded, other notifications must have been declared in the manifest. Anything lightningd
//! would not accept is recorded as a violation, and so is any log message longer than
//! [`MAX_LOG_MESSAGE_LEN`]: lightningd v26.06 segfaults on a ~8 MiB one (shared/README.md).

use super::jsonrpc::{RpcError, PLUGIN_TERMINATED};
use super::manifest::Manifest;
use super::node::lock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{oneshot, watch};

/// Longest log message a plugin may send without it counting as a violation.
pub const MAX_LOG_MESSAGE_LEN: usize = 4096;

/// Log levels lightningd accepts in a plugin's `log` notification.
const LOG_LEVELS: [&str; 8] = [
    "io", "trace", "debug", "info", "unusual", "warn", "broken", "error",
];

/// Notifications lightningd takes from any plugin without a declaration.
const BUILTIN_PLUGIN_NOTIFICATIONS: [&str; 3] = ["log", "message", "progress"];

/// Number after `#` of the first request after init (init is `#44`).
const FIRST_REQUEST_NUMBER: u64 = 45;

/// One `log` notification from the plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// The mock's side of the plugin's stdio.
pub struct PluginLink {
    /// The plugin's file name, as in lightningd's log source `plugin-<name>`.
    name: String,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next_request_number: AtomicU64,
    manifest: OnceLock<Manifest>,
    running: AtomicBool,
    logs: Mutex<Vec<LogLine>>,
    /// Off: log lines are still checked (level, size) and counted, but not kept.
    keep_logs: AtomicBool,
    log_count: watch::Sender<usize>,
    max_log_len: AtomicUsize,
    violations: Mutex<Vec<String>>,
    notifications: Mutex<Vec<Value>>,
    sent: Mutex<Vec<String>>,
    stderr_lines: Mutex<Vec<String>>,
}

impl PluginLink {
    pub fn new(name: String, stdin: ChildStdin) -> Arc<PluginLink> {
        Arc::new(PluginLink {
            name,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending: Mutex::default(),
            next_request_number: AtomicU64::new(FIRST_REQUEST_NUMBER),
            manifest: OnceLock::new(),
            running: AtomicBool::new(true),
            logs: Mutex::default(),
            keep_logs: AtomicBool::new(true),
            log_count: watch::channel(0).0,
            max_log_len: AtomicUsize::new(0),
            violations: Mutex::default(),
            notifications: Mutex::default(),
            sent: Mutex::default(),
            stderr_lines: Mutex::default(),
        })
    }

    /// Reads stdout frames until EOF (in a task).
    pub fn spawn_stdout_reader(self: &Arc<Self>, stdout: ChildStdout) {
        let link = Arc::clone(self);
        tokio::spawn(async move { link.read_stdout(stdout).await });
    }

    /// Forwards stderr lines to the test's stderr and keeps them (in a task).
    pub fn spawn_stderr_reader(self: &Arc<Self>, stderr: ChildStderr) {
        let link = Arc::clone(self);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{} stderr] {line}", link.name);
                lock(&link.stderr_lines).push(line);
            }
        });
    }

    async fn read_stdout(self: Arc<Self>, mut stdout: ChildStdout) {
        let mut buffer: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let search_from = buffer.len().saturating_sub(1);
            buffer.extend_from_slice(&chunk[..read]);
            let mut frame_start = 0;
            let mut at = search_from;
            while let Some(offset) = buffer[at..].windows(2).position(|w| w == b"\n\n") {
                let end = at + offset;
                self.handle_frame(&buffer[frame_start..end]);
                frame_start = end + 2;
                at = frame_start;
            }
            buffer.drain(..frame_start);
        }
        if !buffer.iter().all(u8::is_ascii_whitespace) {
            self.violation(format!(
                "stdout ended inside a message not followed by \"\\n\\n\": {}",
                excerpt(&buffer)
            ));
        }
        self.running.store(false, Ordering::SeqCst);
        // Dropping the senders fails every call still waiting for the plugin.
        lock(&self.pending).clear();
    }

    fn handle_frame(self: &Arc<Self>, frame: &[u8]) {
        if frame.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let message: Value = match serde_json::from_slice(frame) {
            Ok(message) => message,
            Err(e) => {
                return self.violation(format!(
                    "stdout frame is not JSON ({e}): {}",
                    excerpt(frame)
                ))
            }
        };
        match (message.get("method"), message.get("id")) {
            (Some(Value::String(method)), None) => self.handle_notification(method, &message),
            (None, Some(id)) => self.handle_reply(id, message.clone()),
            (Some(_), Some(_)) => self.violation(format!(
                "plugin sent a request on stdout (lightningd only reads replies and notifications there): {}",
                excerpt(frame)
            )),
            _ => self.violation(format!("stdout message is neither reply nor notification: {}", excerpt(frame))),
        }
    }

    fn handle_reply(&self, id: &Value, reply: Value) {
        let waiter = id.as_str().and_then(|id| lock(&self.pending).remove(id));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => self.violation(format!("reply to an id the mock never sent: {reply}")),
        }
    }

    fn handle_notification(self: &Arc<Self>, method: &str, message: &Value) {
        if method == "log" {
            return self.handle_log(&message["params"]);
        }
        let declared = self
            .manifest
            .get()
            .is_some_and(|m| m.notifications.iter().any(|n| n == method));
        if !declared && !BUILTIN_PLUGIN_NOTIFICATIONS.contains(&method) {
            self.violation(format!(
                "notification `{method}` was not declared in the manifest's `notifications`"
            ));
        }
        lock(&self.notifications).push(message.clone());
    }

    fn handle_log(self: &Arc<Self>, params: &Value) {
        let (Some(level), Some(message)) = (
            params.get("level").and_then(Value::as_str),
            params.get("message").and_then(Value::as_str),
        ) else {
            return self.violation(format!(
                "log notification without string level/message: {params}"
            ));
        };
        if !LOG_LEVELS.contains(&level) {
            self.violation(format!("log level `{level}` is not one lightningd knows"));
        }
        self.max_log_len.fetch_max(message.len(), Ordering::SeqCst);
        if message.len() > MAX_LOG_MESSAGE_LEN {
            self.violation(format!(
                "log message of {} bytes (limit {MAX_LOG_MESSAGE_LEN}; lightningd v26.06 crashes on ~8 MiB): {}",
                message.len(),
                excerpt(message.as_bytes())
            ));
        }
        if self.keep_logs.load(Ordering::Relaxed) {
            lock(&self.logs).push(LogLine {
                level: level.to_string(),
                message: message.to_string(),
            });
        }
        self.log_count.send_modify(|count| *count += 1);
        // lightningd raises `warning` for every UNUSUAL/BROKEN log line
        // (notifications/warning.json, level "warn"; "error" for BROKEN).
        let warning_level = match level {
            "warn" | "unusual" => "warn",
            "error" | "broken" => "error",
            _ => return,
        };
        let (time, timestamp) = log_times();
        let payload = json!({
            "level": warning_level,
            "time": time,
            "timestamp": timestamp,
            "source": format!("plugin-{}", self.name),
            "log": message,
        });
        let link = Arc::clone(self);
        tokio::spawn(async move { link.notify("warning", payload).await });
    }

    /// Records something lightningd would not accept from the plugin.
    pub fn violation(&self, what: String) {
        eprintln!("[mock lightningd] plugin protocol violation: {what}");
        lock(&self.violations).push(what);
    }

    /// Writes `text` + `"\n\n"` to the plugin's stdin.
    pub async fn write_frame(&self, text: &str) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        let Some(stdin) = stdin.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stdin was closed",
            ));
        };
        let mut frame = Vec::with_capacity(text.len() + 2);
        frame.extend_from_slice(text.as_bytes());
        frame.extend_from_slice(b"\n\n");
        stdin.write_all(&frame).await?;
        stdin.flush().await?;
        lock(&self.sent).push(text.to_string());
        Ok(())
    }

    /// Sends a request (`text` must carry `id`) and waits for the reply; `None` if the
    /// plugin's stdout closed (or stdin is gone) first.
    pub async fn request(&self, id: &str, text: &str) -> Option<Value> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.pending).insert(id.to_string(), sender);
        if self.write_frame(text).await.is_err() {
            lock(&self.pending).remove(id);
            return None;
        }
        receiver.await.ok()
    }

    /// Forwards a client's call of a plugin method (rpcmethod-call.json): id
    /// `"<client id>/cln:<method>#<n>"`, params passed through unchanged, and relays the
    /// plugin's `result` or `error`.
    pub async fn forward(
        &self,
        client_id: &Value,
        method: &str,
        raw_params: Option<&str>,
    ) -> Result<Value, RpcError> {
        let prefix = match client_id {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let number = self.next_request_number.fetch_add(1, Ordering::SeqCst);
        let id = format!("{prefix}/cln:{method}#{number}");
        // lightningd always passes params; absent ones are sent as `{}`.
        let text = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":{},\"params\":{}}}",
            Value::from(id.as_str()),
            Value::from(method),
            raw_params.unwrap_or("{}")
        );
        let Some(reply) = self.request(&id, &text).await else {
            // Not captured in the fixtures.
            return Err(RpcError::new(
                PLUGIN_TERMINATED,
                "Plugin terminated before replying to RPC call.",
            ));
        };
        if let Some(error) = reply.get("error") {
            return Err(RpcError::from_object(error.clone()));
        }
        match reply.get("result") {
            Some(result) => Ok(result.clone()),
            None => {
                self.violation(format!("reply without result or error: {reply}"));
                // Mock-specific text (no lightningd counterpart).
                Err(RpcError::new(
                    PLUGIN_TERMINATED,
                    "mock lightningd: plugin reply had neither result nor error",
                ))
            }
        }
    }

    /// Sends `{"jsonrpc":"2.0","method":topic,"params":{topic: payload}}` if the plugin
    /// subscribed to `topic` (by name, or `"*"` for anything but `log`).
    pub async fn notify(&self, topic: &str, payload: Value) -> bool {
        if !self.manifest.get().is_some_and(|m| m.subscribes_to(topic)) {
            return false;
        }
        let text = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":{},\"params\":{{{}:{}}}}}",
            Value::from(topic),
            Value::from(topic),
            payload
        );
        self.write_frame(&text).await.is_ok()
    }

    /// Drops the plugin's stdin (the plugin sees EOF).
    pub async fn close_stdin(&self) {
        self.stdin.lock().await.take();
    }

    pub fn set_manifest(&self, manifest: Manifest) {
        let _ = self.manifest.set(manifest);
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.get()
    }

    /// Whether the plugin is up and registered `method`.
    pub fn serves(&self, method: &str) -> bool {
        self.running.load(Ordering::SeqCst)
            && self
                .manifest
                .get()
                .is_some_and(|m| m.rpcmethods.iter().any(|r| r.name == method))
    }

    /// Marks the plugin gone: its methods are no longer served.
    pub fn mark_stopped(&self) {
        self.running.store(false, Ordering::SeqCst);
    }

    pub fn logs(&self) -> Vec<LogLine> {
        lock(&self.logs).clone()
    }

    /// Keeps the log lines received from now on (the default) or not; off also forgets
    /// the ones kept so far.
    pub fn keep_logs(&self, on: bool) {
        self.keep_logs.store(on, Ordering::Relaxed);
        if !on {
            lock(&self.logs).clear();
        }
    }

    /// Waits until a log line matching `predicate` was received.
    pub async fn wait_for_log(
        &self,
        mut predicate: impl FnMut(&LogLine) -> bool,
        timeout: std::time::Duration,
    ) -> Option<LogLine> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.log_count.subscribe();
        loop {
            if let Some(line) = lock(&self.logs).iter().find(|l| predicate(l)) {
                return Some(line.clone());
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    pub fn max_log_len(&self) -> usize {
        self.max_log_len.load(Ordering::SeqCst)
    }

    pub fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }

    pub fn notifications(&self) -> Vec<Value> {
        lock(&self.notifications).clone()
    }

    pub fn sent(&self) -> Vec<String> {
        lock(&self.sent).clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        lock(&self.stderr_lines).clone()
    }
}

/// `time` ("secs.nanos") and `timestamp` (ISO 8601, ms) as in notifications/warning.json.
fn log_times() -> (String, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let timestamp = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    );
    (format!("{secs}.{:09}", now.subsec_nanos()), timestamp)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The first 200 bytes of `bytes`, for messages.
fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.len().min(200);
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if bytes.len() > cut {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}
