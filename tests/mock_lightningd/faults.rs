//! Fault switches that tests flip at run time.
//!
//! - Service time: `set_delay(method, d)` makes every call of `method` take `d` before it is
//!   handled (it overrides the global one); `set_global_delay(d)` applies to every other
//!   method. Forwarded plugin methods are delayed too. Durations that are not whole
//!   milliseconds are slept to the microsecond (0.3 ms is ~0.35 ms, not tokio's 1 ms).
//! - `serialize_writes(true)`: calls of methods that write lightningd's database (`checkrune`,
//!   `invoice`, `datastore`, `deldatastore`, `createrune`) run one at a time, each taking its
//!   service time, like lightningd's single database.
//! - `drop_connections()`: closes every open `lightning-rpc` connection now, also one whose
//!   response is being written.
//! - `refuse_connections(true)`: removes the socket and stops listening, so connecting fails;
//!   `false` listens again at the same path. Open connections stay open.
//! - `garbage_replies(true)`: every response is replaced by bytes that are not JSON
//!   (followed by `"\n\n"`).
//! - `close_mid_response(true)`: every response is cut after half its bytes and its
//!   connection closed.
//! - `notifications_before_replies(true)`: every response is preceded, on its connection, by
//!   the id-less notifications lightningd sends on a connection that enabled them
//!   ([`RPC_NOTIFICATIONS`]: a `message` and a `progress`).
//! - `pretty_replies(true)`: every response is pretty-printed with a blank line after each
//!   of its lines ([`pretty_with_blank_lines`]), as lightningd forwards the reply of a plugin
//!   that pretty-prints: `"\n\n"` inside one response.

use super::rpc_socket::SocketControl;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bytes sent instead of a response while `garbage_replies` is on.
pub const GARBAGE_REPLY: &[u8] = b"\xff\xfe not json {]\x00\n\n";

/// What `notifications_before_replies` writes before each response: lightningd's `message`
/// and `progress` notifications (jsonrpc.c `json_notify_start`), which carry no `id`.
pub const RPC_NOTIFICATIONS: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"message\",\"params\":\
{\"id\":\"mock:1\",\"level\":\"info\",\"message\":\"mock lightningd is working\"}}\n\n\
{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":{\"id\":\"mock:1\",\"num\":0,\"total\":2}}\n\n";

/// The switch states, read by the socket server for every request.
#[derive(Default)]
pub struct FaultSwitches {
    method_delays: Mutex<HashMap<String, Duration>>,
    global_delay: Mutex<Duration>,
    serialize_writes: AtomicBool,
    garbage_replies: AtomicBool,
    close_mid_response: AtomicBool,
    notifications_before_replies: AtomicBool,
    pretty_replies: AtomicBool,
    database: tokio::sync::Mutex<()>,
}

impl FaultSwitches {
    /// The service time of `method`.
    pub fn service_time(&self, method: &str) -> Duration {
        let delays = self.method_delays.lock().unwrap_or_else(|e| e.into_inner());
        match delays.get(method) {
            Some(delay) => *delay,
            None => *self.global_delay.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Runs `work` for `method` with its service time, one at a time for database writes
    /// when `serialize_writes` is on.
    pub async fn serve<F: Future>(
        &self,
        method: &str,
        writes_database: bool,
        work: F,
    ) -> F::Output {
        let service_time = self.service_time(method);
        let _database = if writes_database && self.serialize_writes.load(Ordering::SeqCst) {
            Some(self.database.lock().await)
        } else {
            None
        };
        sleep_precisely(service_time).await;
        work.await
    }

    /// Whether responses are replaced by garbage.
    pub fn garbage_replies(&self) -> bool {
        self.garbage_replies.load(Ordering::SeqCst)
    }

    /// Whether responses are cut in half and their connection closed.
    pub fn close_mid_response(&self) -> bool {
        self.close_mid_response.load(Ordering::SeqCst)
    }

    /// Whether responses are preceded by [`RPC_NOTIFICATIONS`].
    pub fn notifications_before_replies(&self) -> bool {
        self.notifications_before_replies.load(Ordering::SeqCst)
    }

    /// Whether responses are pretty-printed with blank lines inside.
    pub fn pretty_replies(&self) -> bool {
        self.pretty_replies.load(Ordering::SeqCst)
    }
}

/// `frame` (one JSON value, maybe followed by `"\n\n"`) pretty-printed with a blank line after
/// every line, then `"\n\n"`: a frame with `"\n\n"` inside. Frames that are not JSON are
/// returned unchanged.
pub fn pretty_with_blank_lines(frame: &[u8]) -> Vec<u8> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(frame) else {
        return frame.to_vec();
    };
    let pretty = serde_json::to_string_pretty(&value).expect("a Value always serializes");
    // Newlines inside strings are escaped: every newline here is between tokens.
    let mut text = pretty.replace('\n', "\n\n");
    text.push_str("\n\n");
    text.into_bytes()
}

/// Sleeps `duration` with microsecond precision: tokio's timer rounds up to whole
/// milliseconds, so sub-millisecond service times (0.3 ms for `checkrune`) sleep on a
/// blocking thread instead, whose `nanosleep` overshoots by tens of microseconds only.
async fn sleep_precisely(duration: Duration) {
    if duration.is_zero() {
        return;
    }
    if duration.subsec_micros().is_multiple_of(1000) {
        tokio::time::sleep(duration).await;
        return;
    }
    if tokio::task::spawn_blocking(move || std::thread::sleep(duration))
        .await
        .is_err()
    {
        tokio::time::sleep(duration).await;
    }
}

/// The handle tests use to flip the switches (see the module docs).
#[derive(Clone)]
pub struct Faults {
    switches: Arc<FaultSwitches>,
    socket: Arc<SocketControl>,
}

impl Faults {
    pub(crate) fn new(switches: Arc<FaultSwitches>, socket: Arc<SocketControl>) -> Faults {
        Faults { switches, socket }
    }

    /// Every call of `method` takes `delay` (zero removes it).
    pub fn set_delay(&self, method: &str, delay: Duration) {
        let mut delays = self
            .switches
            .method_delays
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if delay.is_zero() {
            delays.remove(method);
        } else {
            delays.insert(method.to_string(), delay);
        }
    }

    /// Every call of a method without its own delay takes `delay`.
    pub fn set_global_delay(&self, delay: Duration) {
        *self
            .switches
            .global_delay
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Database-writing calls run one at a time.
    pub fn serialize_writes(&self, on: bool) {
        self.switches.serialize_writes.store(on, Ordering::SeqCst);
    }

    /// Closes every open connection now.
    pub fn drop_connections(&self) {
        self.socket.drop_connections();
    }

    /// Stops (`true`) or restarts (`false`) accepting connections. Must be called inside a
    /// tokio runtime.
    pub fn refuse_connections(&self, refuse: bool) {
        if refuse {
            self.socket.stop_listening();
        } else if let Err(e) = self.socket.listen() {
            panic!("mock lightningd: cannot listen again on lightning-rpc: {e}");
        }
    }

    /// Responses become bytes that are not JSON.
    pub fn garbage_replies(&self, on: bool) {
        self.switches.garbage_replies.store(on, Ordering::SeqCst);
    }

    /// Responses are cut after half their bytes and the connection closed.
    pub fn close_mid_response(&self, on: bool) {
        self.switches.close_mid_response.store(on, Ordering::SeqCst);
    }

    /// Each response is preceded by id-less `message` and `progress` notifications.
    pub fn notifications_before_replies(&self, on: bool) {
        self.switches
            .notifications_before_replies
            .store(on, Ordering::SeqCst);
    }

    /// Each response is pretty-printed with blank lines inside.
    pub fn pretty_replies(&self, on: bool) {
        self.switches.pretty_replies.store(on, Ordering::SeqCst);
    }
}
