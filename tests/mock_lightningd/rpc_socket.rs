//! The `lightning-rpc` unix socket server and its framing (fixtures/rpc/framing.json).
//!
//! - Many connections; on each, requests are a stream of JSON objects needing no terminator:
//!   back to back, separated by whitespace or `"\n\n"`, or split across writes (answered once
//!   complete).
//! - Every request runs concurrently and is answered as soon as it is done, so answers can
//!   come out of order. A request that completes at once is answered before the next one is
//!   read, so quick pipelined requests come back in request order, as lightningd's did.
//! - Responses are compact JSON + `"\n\n"`, with the request's `id` echoed as sent.
//! - No `jsonrpc` -> `-32600` "JSON-RPC message does not contain \"jsonrpc\" field: '<request>'";
//!   no `id` -> `-32600` "No id"; invalid JSON -> `-32600` "Failed to parse RPC JSON response
//!   '<buffer>'", the buffer is discarded and the connection stays open. All with `"id":null`.

use super::faults::{pretty_with_blank_lines, GARBAGE_REPLY, RPC_NOTIFICATIONS};
use super::jsonrpc::{malformed_request_frame, response_frame, RpcError, INVALID_REQUEST};
use super::methods::{self, writes_database, Call};
use super::node::{lock, Node, RecordedCall};
use super::params::RawParams;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

const READ_CHUNK: usize = 64 * 1024;

/// What a connection's writer is asked to write.
enum Outgoing {
    Frame(Vec<u8>),
    /// Write the first half, then close the connection (`close_mid_response` fault).
    HalfThenClose(Vec<u8>),
}

struct ConnectionTasks {
    reader: AbortHandle,
    writer: AbortHandle,
}

/// The socket server: its listener and open connections.
pub struct SocketControl {
    path: PathBuf,
    node: Arc<Node>,
    listener: Mutex<Option<JoinHandle<()>>>,
    connections: Mutex<HashMap<u64, ConnectionTasks>>,
    accepted: AtomicU64,
}

impl SocketControl {
    pub fn new(path: PathBuf, node: Arc<Node>) -> Arc<SocketControl> {
        Arc::new(SocketControl {
            path,
            node,
            listener: Mutex::default(),
            connections: Mutex::default(),
            accepted: AtomicU64::new(0),
        })
    }

    /// Binds the socket path (replacing a stale file) and accepts connections in a task.
    pub fn listen(self: &Arc<Self>) -> std::io::Result<()> {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path)?;
        let control = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => control.serve(stream),
                    Err(e) => {
                        eprintln!("[mock lightningd] accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        if let Some(old) = lock(&self.listener).replace(task) {
            old.abort();
        }
        Ok(())
    }

    /// Removes the socket file and stops accepting; connecting fails from now on.
    pub fn stop_listening(&self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(task) = lock(&self.listener).take() {
            task.abort();
        }
    }

    /// Closes every open connection now, also mid-response.
    pub fn drop_connections(&self) {
        for (_, tasks) in lock(&self.connections).drain() {
            tasks.reader.abort();
            tasks.writer.abort();
        }
    }

    /// Stops listening and closes every connection.
    pub fn shutdown(&self) {
        self.stop_listening();
        self.drop_connections();
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    fn serve(self: &Arc<Self>, stream: UnixStream) {
        let connection_id = self.accepted.fetch_add(1, Ordering::SeqCst);
        let (read, write) = stream.into_split();
        let (sender, receiver) = mpsc::unbounded_channel();
        // Registered under the lock so the writer cannot unregister before registration.
        let mut connections = lock(&self.connections);
        let writer = tokio::spawn(write_responses(
            write,
            receiver,
            Arc::clone(self),
            connection_id,
        ));
        let reader = tokio::spawn(read_requests(
            read,
            sender,
            Arc::clone(&self.node),
            connection_id,
        ));
        connections.insert(
            connection_id,
            ConnectionTasks {
                reader: reader.abort_handle(),
                writer: writer.abort_handle(),
            },
        );
    }
}

async fn write_responses(
    mut write: OwnedWriteHalf,
    mut receiver: mpsc::UnboundedReceiver<Outgoing>,
    control: Arc<SocketControl>,
    connection_id: u64,
) {
    while let Some(outgoing) = receiver.recv().await {
        match outgoing {
            Outgoing::Frame(bytes) => {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Outgoing::HalfThenClose(bytes) => {
                let _ = write.write_all(&bytes[..bytes.len() / 2]).await;
                let _ = write.flush().await;
                break;
            }
        }
    }
    // Closing: the reader goes too, so the socket is closed once `write` drops here.
    if let Some(tasks) = lock(&control.connections).remove(&connection_id) {
        tasks.reader.abort();
    }
}

async fn read_requests(
    mut read: OwnedReadHalf,
    sender: mpsc::UnboundedSender<Outgoing>,
    node: Arc<Node>,
    connection_id: u64,
) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let read_len = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..read_len]);
        // A request can only have ended in this read if it brought a closing bracket: do not
        // re-parse a large, still incomplete request from its start after every chunk.
        if !chunk[..read_len].iter().any(|b| matches!(b, b'}' | b']')) {
            continue;
        }
        let mut consumed = 0;
        loop {
            match next_request(&buffer[consumed..]) {
                Parsed::NeedMore => break,
                Parsed::Request {
                    skipped,
                    len,
                    value,
                } => {
                    let start = consumed + skipped;
                    let raw = buffer[start..start + len].to_vec();
                    consumed = start + len;
                    answer_in_order_or_later(&node, connection_id, raw, value, &sender).await;
                }
                Parsed::Invalid => {
                    let text = String::from_utf8_lossy(&buffer[consumed..]);
                    let message = format!("Failed to parse RPC JSON response '{text}'");
                    let _ = sender.send(Outgoing::Frame(malformed_request_frame(&message)));
                    consumed = buffer.len();
                    break;
                }
            }
        }
        buffer.drain(..consumed);
    }
}

enum Parsed {
    NeedMore,
    Invalid,
    /// A complete JSON value after `skipped` whitespace bytes, `len` bytes long.
    Request {
        skipped: usize,
        len: usize,
        value: Value,
    },
}

fn next_request(bytes: &[u8]) -> Parsed {
    let skipped = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let rest = &bytes[skipped..];
    if rest.is_empty() {
        return Parsed::NeedMore;
    }
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => Parsed::Request {
            skipped,
            len: stream.byte_offset(),
            value,
        },
        Some(Err(e)) if e.is_eof() => Parsed::NeedMore,
        Some(Err(_)) => Parsed::Invalid,
        None => Parsed::NeedMore,
    }
}

/// Answers at once if the request completes without waiting, else in its own task.
async fn answer_in_order_or_later(
    node: &Arc<Node>,
    connection_id: u64,
    raw: Vec<u8>,
    request: Value,
    sender: &mpsc::UnboundedSender<Outgoing>,
) {
    let mut answering = Box::pin(answer(Arc::clone(node), connection_id, raw, request));
    let first_poll = std::future::poll_fn(|cx| Poll::Ready(answering.as_mut().poll(cx))).await;
    match first_poll {
        Poll::Ready(outgoing) => {
            let _ = sender.send(outgoing);
        }
        Poll::Pending => {
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = sender.send(answering.await);
            });
        }
    }
}

/// The members of a request kept as raw text.
#[derive(Deserialize)]
struct RawEnvelope {
    id: Option<Box<RawValue>>,
    params: Option<Box<RawValue>>,
}

async fn answer(node: Arc<Node>, connection_id: u64, raw: Vec<u8>, request: Value) -> Outgoing {
    let mut frame = match respond(&node, connection_id, &raw, &request).await {
        Ok(frame) => frame,
        Err(frame) => frame,
    };
    if node.faults.pretty_replies() {
        frame = pretty_with_blank_lines(&frame);
    }
    if node.faults.notifications_before_replies() {
        frame.splice(0..0, RPC_NOTIFICATIONS.iter().copied());
    }
    if node.faults.garbage_replies() {
        Outgoing::Frame(GARBAGE_REPLY.to_vec())
    } else if node.faults.close_mid_response() {
        Outgoing::HalfThenClose(frame)
    } else {
        Outgoing::Frame(frame)
    }
}

/// The response frame to one request (`Err` for requests refused before any method runs).
async fn respond(
    node: &Node,
    connection_id: u64,
    raw: &[u8],
    request: &Value,
) -> Result<Vec<u8>, Vec<u8>> {
    let Value::Object(members) = request else {
        // Not captured in the fixtures.
        return Err(malformed_request_frame("Expected {} for json command"));
    };
    if members.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        // framing.json `request_without_jsonrpc_field` (a wrong value: not captured).
        let text = String::from_utf8_lossy(raw);
        return Err(malformed_request_frame(&format!(
            "JSON-RPC message does not contain \"jsonrpc\" field: '{text}'"
        )));
    }
    let Some(id) = members.get("id") else {
        // framing.json `request_without_id`.
        return Err(malformed_request_frame("No id"));
    };
    if id.is_object() || id.is_array() {
        // Not captured in the fixtures.
        return Err(malformed_request_frame("Expected string/primitive for id"));
    }
    let envelope: RawEnvelope = serde_json::from_slice(raw).map_err(|e| {
        malformed_request_frame(&format!("mock lightningd: cannot re-read request: {e}"))
    })?;
    let raw_id = envelope.id.as_ref().map_or("null", |id| id.get());
    let method = match members.get("method") {
        Some(Value::String(method)) => method,
        // Not captured in the fixtures.
        Some(_) => return Ok(error_frame(raw_id, "Expected string for method")),
        None => return Ok(error_frame(raw_id, "No method")),
    };
    let params = match RawParams::parse(envelope.params.as_deref()) {
        Ok(params) => params,
        Err(e) => {
            return Ok(error_frame(
                raw_id,
                &format!("mock lightningd: cannot read params: {e}"),
            ))
        }
    };
    node.record_call(RecordedCall {
        method: method.clone(),
        params: params.to_value(),
        connection_id,
    });
    let call = Call {
        method,
        id,
        params: &params,
        raw_params: envelope.params.as_deref().map(RawValue::get),
        filter: members.get("filter"),
    };
    let outcome = node
        .faults
        .serve(method, writes_database(method), methods::call(node, call))
        .await;
    Ok(response_frame(raw_id, &outcome))
}

/// Not captured in the fixtures.
fn error_frame(raw_id: &str, message: &str) -> Vec<u8> {
    response_frame(raw_id, &Err(RpcError::new(INVALID_REQUEST, message)))
}
