//! Calls to lightningd over its `lightning-rpc` unix socket.
//!
//! lightningd answers many requests on one connection concurrently and out of order, matched
//! by `id`, each answer being a JSON object followed by `"\n\n"` (which may also occur inside
//! one: answers are split by parsing, see [`ReplyBuffer`]). [`LightningRpc`] keeps a few
//! long-lived connections and multiplexes every call over them; a connection that breaks fails
//! its pending calls at once and is replaced on the next call.
//!
//! A caller writes its own request, whole, straight to the socket; only what a full socket does
//! not take is queued, in order, for a task to finish, so no request is ever cut or interleaved,
//! even if its caller is cancelled. One reader task per connection routes the answers.
//!
//! Results are not re-serialized: an [`RpcResult`] is a view into the bytes lightningd sent,
//! so a JSON response body is lightningd's own `result` text.

use super::reply_frames::ReplyBuffer;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

/// An error object returned by lightningd, kept exactly as it arrived.
#[derive(Debug, Clone)]
pub struct RpcErrorObject {
    /// The `code` member, needed to choose the HTTP status.
    pub code: i64,
    /// The whole `error` object as lightningd serialized it.
    pub raw: Box<RawValue>,
}

impl RpcErrorObject {
    /// Builds an error object from its parts (used by tests and by errors we raise in
    /// lightningd's own shape).
    pub fn new(code: i64, message: &str) -> Self {
        let raw = serde_json::to_string(&serde_json::json!({"code": code, "message": message}))
            .and_then(RawValue::from_string)
            .expect("a json! object always serializes");
        RpcErrorObject { code, raw }
    }

    /// The `message` member, for logs.
    pub fn message(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Message {
            message: Option<String>,
        }
        serde_json::from_str::<Message>(self.raw.get())
            .ok()
            .and_then(|m| m.message)
            .unwrap_or_default()
    }
}

/// How many connections calls are spread over.
pub const POOL_SIZE: usize = 4;

/// lightningd commands that change the state of the connection they arrive on (which
/// notifications it is sent, whether deprecated APIs apply to it, how its database writes are
/// batched). Our connections are shared by every caller, so these are never sent on behalf
/// of a client.
pub const CONNECTION_SCOPED: &[&str] = &["notifications", "deprecations", "batching"];

/// Why a call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// lightningd answered with an error object.
    #[error("lightningd error {}: {}", .0.code, .0.message())]
    Lightningd(RpcErrorObject),
    /// The socket could not be reached, broke, or carried something that is not JSON-RPC.
    #[error("lightningd is unreachable: {0}")]
    Unreachable(String),
}

/// A successful call's `result`, kept as the bytes lightningd sent.
#[derive(Debug, Clone)]
pub struct RpcResult {
    frame: Bytes,
    range: Range<usize>,
}

impl RpcResult {
    /// The `result` member's JSON text, without copying it.
    pub fn bytes(&self) -> Bytes {
        self.frame.slice(self.range.clone())
    }

    /// The `result` member as a raw JSON value.
    pub fn raw(&self) -> Result<&RawValue, serde_json::Error> {
        serde_json::from_slice(&self.frame[self.range.clone()])
    }

    /// The `result` member decoded into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.frame[self.range.clone()])
    }
}

/// One entry of lightningd's `help`: the usage string (`invoice amount_msat label ...`).
#[derive(Debug, Deserialize)]
pub struct HelpEntry {
    pub command: String,
    pub description: Option<String>,
}

/// A pool of multiplexed connections to lightningd.
pub struct LightningRpc {
    path: PathBuf,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Connection>>>>,
    next_slot: AtomicUsize,
    /// The usage strings of the last successful `help`, in its order.
    help_commands: Mutex<Option<Arc<[String]>>>,
    /// Told about every call and `help` (the metrics); set once.
    observer: std::sync::OnceLock<Arc<dyn CallObserver>>,
}

/// How a call to lightningd ended, for a [`CallObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// lightningd answered with an error object.
    LightningdError,
    /// No answer: the socket could not be reached or broke.
    Unreachable,
}

/// Watches the calls a [`LightningRpc`] makes (the metrics implement it). Called on the
/// caller's task: it must be quick and never block.
pub trait CallObserver: Send + Sync {
    /// A call to `method` ended after `elapsed` (a caller that went away first is not told).
    fn call_finished(&self, method: &str, elapsed: std::time::Duration, outcome: CallOutcome);
    /// lightningd's `help` listed these usage strings.
    fn commands_known(&self, usage: &[String]);
}

impl LightningRpc {
    /// A pool for the socket at `path`; connections are opened on first use.
    pub fn new(path: impl Into<PathBuf>) -> LightningRpc {
        LightningRpc {
            path: path.into(),
            slots: (0..POOL_SIZE)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next_slot: AtomicUsize::new(0),
            help_commands: Mutex::new(None),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Has `observer` told about every call from now on (once; later ones are ignored).
    pub fn set_observer(&self, observer: Arc<dyn CallObserver>) {
        let _ = self.observer.set(observer);
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// lightningd's `help`: every command it (and its plugins) serves. The usage strings
    /// are kept for [`LightningRpc::help_commands`].
    pub async fn help(&self) -> Result<Vec<HelpEntry>, RpcError> {
        #[derive(Deserialize)]
        struct Help {
            help: Vec<HelpEntry>,
        }
        let result = self.call("help", &serde_json::Map::new()).await?;
        let help = result
            .decode::<Help>()
            .map(|h| h.help)
            .map_err(|e| RpcError::Unreachable(format!("unexpected help result: {e}")))?;
        let commands: Arc<[String]> = help.iter().map(|h| h.command.clone()).collect();
        if let Some(observer) = self.observer.get() {
            observer.commands_known(&commands);
        }
        *self.help_commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(commands);
        Ok(help)
    }

    /// The usage strings of the last successful [`LightningRpc::help`] (read at startup and
    /// whenever a plugin starts or stops, for the API document); `help` is called now only
    /// if it never succeeded yet.
    pub async fn help_commands(&self) -> Result<Arc<[String]>, RpcError> {
        let cached = self
            .help_commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(commands) = cached {
            return Ok(commands);
        }
        let help = self.help().await?;
        Ok(help.into_iter().map(|h| h.command).collect())
    }

    /// Calls `method` with `params` (an object, an array, or `{}` for none).
    pub async fn call<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<RpcResult, RpcError> {
        let Some(observer) = self.observer.get() else {
            return self.connection().await?.call(method, params).await;
        };
        let started = std::time::Instant::now();
        let result = match self.connection().await {
            Ok(connection) => connection.call(method, params).await,
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(RpcError::Lightningd(_)) => CallOutcome::LightningdError,
            Err(RpcError::Unreachable(_)) => CallOutcome::Unreachable,
        };
        observer.call_finished(method, started.elapsed(), outcome);
        result
    }

    async fn connection(&self) -> Result<Arc<Connection>, RpcError> {
        let index = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[index].lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(connection.clone());
        }
        // The path goes to the log only: the reason may reach clients.
        let stream = UnixStream::connect(&self.path).await.map_err(|e| {
            tracing::debug!("cannot connect to {}: {e}", self.path.display());
            RpcError::Unreachable(format!("cannot connect to lightningd's RPC socket: {e}"))
        })?;
        let connection = Connection::start(stream);
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

type Waiter = oneshot::Sender<Result<Reply, String>>;

enum Reply {
    Result(RpcResult),
    Error(RpcErrorObject),
}

#[derive(Default)]
struct Pending {
    /// Keyed by our own sequential call ids, which nobody else chooses: FxHash (one
    /// multiplication) instead of SipHash.
    waiting: HashMap<u64, Waiter, rustc_hash::FxBuildHasher>,
    closed: Option<String>,
}

/// One socket connection: its write half, a reader task and the calls waiting for answers.
struct Connection {
    writer: OwnedWriteHalf,
    /// Request bytes accepted but not yet written; taking this lock is the right to write.
    backlog: Mutex<Vec<u8>>,
    pending: Mutex<Pending>,
    open: AtomicBool,
    next_id: AtomicU64,
}

impl Connection {
    fn start(stream: UnixStream) -> Arc<Connection> {
        let (reader, writer) = stream.into_split();
        let connection = Arc::new(Connection {
            writer,
            backlog: Mutex::new(Vec::new()),
            pending: Mutex::new(Pending::default()),
            open: AtomicBool::new(true),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(read_replies(connection.clone(), reader));
        connection
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    async fn call<P: Serialize + ?Sized>(
        self: &Arc<Self>,
        method: &str,
        params: &P,
    ) -> Result<RpcResult, RpcError> {
        #[derive(Serialize)]
        struct Request<'a, P: ?Sized> {
            jsonrpc: &'static str,
            id: u64,
            method: &'a str,
            params: &'a P,
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Room for a typical request (checkrune with a rune) without growing.
        let mut request = Vec::with_capacity(256);
        serde_json::to_writer(
            &mut request,
            &Request {
                jsonrpc: "2.0",
                id,
                method,
                params,
            },
        )
        .map_err(|e| RpcError::Unreachable(format!("cannot encode the request: {e}")))?;

        let (waiter, answer) = oneshot::channel();
        self.register(id, waiter)?;
        // If the caller goes away (its HTTP client hung up), forget the call; a late answer
        // is then dropped silently.
        let mut waiting = ForgetOnDrop {
            connection: self,
            id,
            answered: false,
        };
        // Synchronous: a cancelled caller cannot stop it half-way. A failure closes the
        // connection, which answers our waiter too.
        self.send(&request);
        let outcome = answer.await;
        // Answered or failed: the waiter is already gone from the map.
        waiting.answered = true;
        match outcome {
            Ok(Ok(Reply::Result(result))) => Ok(result),
            Ok(Ok(Reply::Error(error))) => Err(RpcError::Lightningd(error)),
            Ok(Err(reason)) => Err(RpcError::Unreachable(reason)),
            Err(_) => Err(RpcError::Unreachable("connection closed".into())),
        }
    }

    /// Writes a whole request now if the socket takes it; what it does not take goes to the
    /// backlog, which a task writes out, in order, as the socket drains. Requests are never
    /// interleaved: whoever holds the backlog lock writes, and only when nothing is queued
    /// before them.
    fn send(self: &Arc<Self>, request: &[u8]) {
        let mut backlog = self.lock_backlog();
        if !backlog.is_empty() {
            backlog.extend_from_slice(request);
            return;
        }
        match write_now(&self.writer, request) {
            Ok(written) if written == request.len() => {}
            Ok(written) => {
                backlog.extend_from_slice(&request[written..]);
                tokio::spawn(write_backlog(self.clone()));
            }
            Err(e) => {
                drop(backlog);
                self.close(format!("writing to lightningd failed: {e}"));
            }
        }
    }

    fn lock_backlog(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Poisoning cannot leave half a request: bytes are appended whole or drained as the
        // socket took them.
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, id: u64, waiter: Waiter) -> Result<(), RpcError> {
        let mut pending = self.lock_pending();
        if let Some(reason) = &pending.closed {
            return Err(RpcError::Unreachable(reason.clone()));
        }
        pending.waiting.insert(id, waiter);
        Ok(())
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // still consistent (every operation on it is a single insert/remove).
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer(&self, id: u64, reply: Reply) {
        if let Some(waiter) = self.lock_pending().waiting.remove(&id) {
            let _ = waiter.send(Ok(reply));
        }
    }

    /// Marks the connection dead and fails every call still waiting on it.
    fn close(&self, reason: String) {
        self.open.store(false, Ordering::Release);
        let waiting = {
            let mut pending = self.lock_pending();
            pending.closed.get_or_insert_with(|| reason.clone());
            std::mem::take(&mut pending.waiting)
        };
        if !waiting.is_empty() {
            tracing::warn!(
                "lightningd connection lost ({reason}); failing {} pending call(s)",
                waiting.len()
            );
        }
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(reason.clone()));
        }
    }
}

/// Removes a call's waiter from the pending map if the call ends before its answer came
/// (the caller's future was dropped).
struct ForgetOnDrop<'a> {
    connection: &'a Connection,
    id: u64,
    /// Set once the answer (or the connection's failure) arrived: nothing left to remove.
    answered: bool,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.connection.lock_pending().waiting.remove(&self.id);
        }
    }
}

/// Writes as much of `bytes` as the socket takes without waiting.
fn write_now(writer: &OwnedWriteHalf, bytes: &[u8]) -> std::io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match writer.try_write(&bytes[written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Writes the backlog out as the socket drains; started when a request did not fit, ends
/// when the backlog is empty (new requests meanwhile join the backlog, in order).
async fn write_backlog(connection: Arc<Connection>) {
    loop {
        let ready = connection.writer.writable().await;
        let mut backlog = connection.lock_backlog();
        let result = ready.and_then(|()| write_now(&connection.writer, &backlog));
        match result {
            Ok(written) => {
                backlog.drain(..written);
                if backlog.is_empty() {
                    // Do not keep a large request's memory for the connection's lifetime.
                    backlog.shrink_to(0);
                    return;
                }
            }
            Err(e) => {
                // Nothing more can be written; later requests are answered by the close.
                *backlog = Vec::new();
                drop(backlog);
                connection.close(format!("writing to lightningd failed: {e}"));
                return;
            }
        }
    }
}

/// Reads answers (whole top-level JSON values, see [`ReplyBuffer`]) and hands each to the
/// call waiting for its `id`.
async fn read_replies(connection: Arc<Connection>, mut reader: OwnedReadHalf) {
    let mut replies = ReplyBuffer::default();
    let reason = loop {
        loop {
            match replies.next_answer() {
                Ok(Some(answer)) => {
                    if dispatch(&connection, answer).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(unframeable) => {
                    connection.close(unframeable.to_string());
                    return;
                }
            }
        }
        if connection.lock_pending().closed.is_some() {
            return;
        }
        match reader.read_buf(replies.read_target()).await {
            Ok(0) => break "lightningd closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("reading from lightningd failed: {e}"),
        }
    };
    connection.close(reason);
}

#[derive(Deserialize)]
struct Envelope<'a> {
    id: Option<u64>,
    /// Set on lightningd's own notifications (`message`, `progress`), which carry no `id`.
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ErrorCode {
    code: i64,
}

/// Routes one answer to its caller; an answer we cannot read breaks the connection, since
/// its caller can no longer be found. A notification lightningd sends on the connection
/// (a frame with a `method` and neither `result` nor `error`, such as `message` or
/// `progress`) answers nobody and is skipped.
fn dispatch(connection: &Connection, frame: Bytes) -> Result<(), ()> {
    let unreadable = |why: &str| {
        connection.close(format!("lightningd sent an unreadable answer: {why}"));
    };
    let envelope: Envelope = match serde_json::from_slice(&frame) {
        Ok(envelope) => envelope,
        Err(e) => {
            unreadable(&e.to_string());
            return Err(());
        }
    };
    if let (Some(method), None, None) = (envelope.method, envelope.result, envelope.error) {
        tracing::debug!(
            "skipping a {} notification lightningd sent on the RPC connection",
            method.get()
        );
        return Ok(());
    }
    let Some(id) = envelope.id else {
        unreadable("no id");
        return Err(());
    };
    let reply = match (envelope.result, envelope.error) {
        (Some(result), _) => {
            let start = result.get().as_ptr() as usize - frame.as_ptr() as usize;
            Reply::Result(RpcResult {
                frame: frame.clone(),
                range: start..start + result.get().len(),
            })
        }
        (None, Some(error)) => match serde_json::from_str::<ErrorCode>(error.get()) {
            Ok(ErrorCode { code }) => Reply::Error(RpcErrorObject {
                code,
                raw: error.to_owned(),
            }),
            Err(e) => {
                unreadable(&format!("error without a code: {e}"));
                return Err(());
            }
        },
        (None, None) => {
            unreadable("neither result nor error");
            return Err(());
        }
    };
    connection.answer(id, reply);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// lightningd's side of the socket: reads `count` requests, each of which must be a whole
    /// JSON object, and returns them.
    async fn read_requests(stream: &mut UnixStream, count: usize) -> Vec<Value> {
        let mut buffer = Vec::new();
        let mut requests = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        while requests.len() < count {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the plugin closed the socket");
            buffer.extend_from_slice(&chunk[..n]);
            let mut values = serde_json::Deserializer::from_slice(&buffer).into_iter::<Value>();
            let mut consumed = 0;
            while let Some(value) = values.next() {
                match value {
                    Ok(value) => {
                        requests.push(value);
                        consumed = values.byte_offset();
                    }
                    Err(e) if e.is_eof() => break,
                    Err(e) => panic!("a request was cut or interleaved: {e}"),
                }
            }
            buffer.drain(..consumed);
        }
        requests
    }

    async fn answer(stream: &mut UnixStream, id: &Value, result: &Value) {
        let frame = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}\n\n");
        stream.write_all(frame.as_bytes()).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_larger_than_the_socket_arrive_whole_and_answers_match_by_id() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let connection = Connection::start(ours);
        let calls: Vec<_> = (0..48u64)
            .map(|i| {
                let connection = connection.clone();
                tokio::spawn(async move {
                    let pad = "x".repeat(50_000 + i as usize);
                    let result = connection.call("echo", &json!({"i": i, "pad": pad})).await;
                    assert_eq!(result.unwrap().decode::<u64>().unwrap(), i);
                })
            })
            .collect();
        let requests = read_requests(&mut theirs, calls.len()).await;
        // Answered out of order.
        for request in requests.iter().rev() {
            answer(&mut theirs, &request["id"], &request["params"]["i"]).await;
        }
        for call in calls {
            call.await.unwrap();
        }
        assert!(connection.lock_backlog().is_empty());
    }

    #[tokio::test]
    async fn notifications_without_an_id_are_skipped_between_answers() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let connection = Connection::start(ours);
        let calls: Vec<_> = (0..4u64)
            .map(|i| {
                let connection = connection.clone();
                tokio::spawn(async move { connection.call("echo", &json!({"i": i})).await })
            })
            .collect();
        let requests = read_requests(&mut theirs, calls.len()).await;
        for request in &requests {
            let notifications = concat!(
                r#"{"jsonrpc":"2.0","method":"message","params":{"id":"cli:x#1","#,
                r#""level":"info","message":"working"}}"#,
                "\n\n",
                r#"{"jsonrpc":"2.0","method":"progress","params":{"num":0,"total":2}}"#,
                "\n\n"
            );
            theirs.write_all(notifications.as_bytes()).await.unwrap();
            answer(&mut theirs, &request["id"], &request["params"]["i"]).await;
        }
        for (i, call) in calls.into_iter().enumerate() {
            let result = call
                .await
                .unwrap()
                .expect("answered despite the notifications");
            assert_eq!(result.decode::<u64>().unwrap(), i as u64);
        }
        assert!(connection.is_open());
    }

    #[tokio::test]
    async fn a_cancelled_caller_still_leaves_a_whole_request() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let connection = Connection::start(ours);
        let pad = "y".repeat(1 << 20);
        // The first poll writes what the socket takes and queues the rest; then it is dropped.
        let cancelled = tokio::time::timeout(
            Duration::ZERO,
            connection.call("echo", &json!({"i": 0, "pad": pad})),
        )
        .await;
        assert!(cancelled.is_err());
        assert!(
            !connection.lock_backlog().is_empty(),
            "the socket took 1 MiB at once"
        );
        let next = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.call("echo", &json!({"i": 1})).await })
        };
        let requests = read_requests(&mut theirs, 2).await;
        assert_eq!(
            requests[0]["params"]["pad"].as_str().map(str::len),
            Some(1 << 20)
        );
        for request in &requests {
            answer(&mut theirs, &request["id"], &request["params"]["i"]).await;
        }
        let result = next.await.unwrap().unwrap();
        assert_eq!(result.decode::<u64>().unwrap(), 1);
    }

    /// lightningd forwards a plugin's pretty-printed reply as written: blank lines inside one
    /// answer, between answers to other calls on the same connection.
    #[tokio::test]
    async fn an_answer_with_blank_lines_inside_is_one_answer() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let connection = Connection::start(ours);
        let calls: Vec<_> = (0..6u64)
            .map(|i| {
                let connection = connection.clone();
                tokio::spawn(async move { connection.call("echo", &json!({"i": i})).await })
            })
            .collect();
        let requests = read_requests(&mut theirs, calls.len()).await;
        for request in &requests {
            let id = &request["id"];
            let i = request["params"]["i"].as_u64().unwrap();
            if i % 2 == 0 {
                let pretty = format!(
                    "{{\n\n  \"jsonrpc\": \"2.0\",\n\n  \"id\": {id},\n\n  \"result\": {{\n\n    \
                     \"i\": {i},\n\n    \"text\": \"}}\\\"\\n\\n{{ [\",\n\n    \"list\": [\n\n\
                     {{}},\n\n[]\n\n]\n\n  }}\n\n}}\n\n"
                );
                // Cut into small writes, so answers arrive in pieces.
                for piece in pretty.as_bytes().chunks(7) {
                    theirs.write_all(piece).await.unwrap();
                    theirs.flush().await.unwrap();
                }
            } else {
                answer(&mut theirs, id, &json!({"i": i})).await;
            }
        }
        for (i, call) in calls.into_iter().enumerate() {
            let result = call.await.unwrap().expect("answered");
            let value: Value = result.decode().unwrap();
            assert_eq!(value["i"], json!(i), "{value}");
            if i % 2 == 0 {
                assert_eq!(value["text"], json!("}\"\n\n{ ["));
                assert_eq!(value["list"], json!([{}, []]));
            }
        }
        assert!(connection.is_open());
    }

    #[tokio::test]
    async fn bytes_that_cannot_start_an_answer_close_the_connection() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let connection = Connection::start(ours);
        let call = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.call("echo", &json!({})).await })
        };
        read_requests(&mut theirs, 1).await;
        theirs.write_all(b"\n\n\"a string\"\n\n").await.unwrap();
        assert!(matches!(
            call.await.unwrap(),
            Err(RpcError::Unreachable(reason)) if reason.contains("unreadable")
        ));
        assert!(!connection.is_open());
    }
}
