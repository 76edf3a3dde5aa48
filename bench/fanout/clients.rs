//! The fan-out benchmark's clients: minimal Socket.IO v5 / engine.io v4 websocket clients,
//! many per thread, each thread one `epoll` loop (mio) over blocking-free sockets driven by
//! the synchronous `tungstenite`.
//!
//! The clients share the machine with the plugin they measure, so the less CPU they use per
//! received message the less they take from it. The tokio version (a task per client,
//! tokio-tungstenite) used ~9.5 µs per message, as much as the plugin spent sending it; a
//! third of that was tungstenite zero-filling its default 128 KiB read buffer before every
//! read. With a 4 KiB buffer and one event loop per thread, reading every ready socket in
//! turn with no task to wake, it is ~8 µs, three quarters of it the kernel's receive path
//! (user time 5.9 → 2.1 µs). A client on another host would cost the plugin's machine none.
//!
//! A client connects with blocking I/O (websocket upgrade with the rune in a `Rune` header,
//! as CLN's own clnrest reads it; engine.io open; `40{"rune":...}`, the auth payload ours also
//! reads; pings answered; connect ack), then its socket turns non-blocking and joins its
//! thread's poll. Every `42["message",{...}]` is recorded by the three numbers its `label`
//! carries (`phase=`, ` n=`, `sent_ns=`: the push time), so a real `invoice`'s
//! `invoice_creation` is measured like the mock's; pings `2` are answered with `3`.

use crate::record::{ClientResult, Shared, PHASES};
use crate::support::socketio_client::{self, number_after, BeforeAck, Handshake};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

/// The keys of the numbers in a notification's `label` (see [`label`]).
const LABEL_PHASE: &str = "phase=";
const LABEL_N: &str = " n=";
const LABEL_SENT_NS: &str = "sent_ns=";

/// The `label` of notification `n` of `phase`, pushed at `sent_ns` (nanoseconds since
/// [`Shared::epoch`]): what the clients read back.
pub fn label(phase: usize, n: u64, sent_ns: u64) -> String {
    format!("fanout {LABEL_PHASE}{phase}{LABEL_N}{n} {LABEL_SENT_NS}{sent_ns}")
}

/// How often a thread looks at the stop flag when no socket is ready.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// What every client thread needs to connect.
#[derive(Clone)]
pub struct Target {
    /// `ws://127.0.0.1:<port>/socket.io/?EIO=4&transport=websocket`.
    pub url: String,
    pub rune: String,
    /// Notifications expected per phase.
    pub expected: [u64; PHASES],
    /// One client's websocket + Socket.IO handshake.
    pub connect_timeout: Duration,
}

struct Client {
    ws: WebSocket<TcpStream>,
    result: ClientResult,
    open: bool,
}

/// Starts `threads` threads sharing `clients` clients; each returns its clients' results
/// once `stop` is set.
pub fn spawn(
    clients: usize,
    threads: usize,
    target: Target,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<Vec<ClientResult>>> {
    (0..threads)
        .map(|thread| {
            // Thread `t` takes clients t, t + threads, ...
            let count = (clients + threads - 1 - thread) / threads;
            let (target, shared, stop) = (target.clone(), shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("fanout-client".into())
                .spawn(move || run(count, &target, &shared, &stop))
                .expect("a client thread starts")
        })
        .collect()
}

/// [`spawn`]s the clients and waits until each has connected or failed, at most `deadline`;
/// the threads and how long that took.
pub async fn connect_all(
    clients: usize,
    threads: usize,
    target: Target,
    shared: &Arc<Shared>,
    stop: &Arc<AtomicBool>,
    deadline: Duration,
) -> (Vec<JoinHandle<Vec<ClientResult>>>, Duration) {
    let start = std::time::Instant::now();
    let handles = spawn(clients, threads, target, shared.clone(), stop.clone());
    while shared.connected.load(Ordering::SeqCst) + shared.connect_failed.load(Ordering::SeqCst)
        < clients
        && start.elapsed() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (handles, start.elapsed())
}

fn run(count: usize, target: &Target, shared: &Shared, stop: &AtomicBool) -> Vec<ClientResult> {
    let mut results = Vec::new();
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut result = ClientResult::new(target.expected);
        match connect(target) {
            Ok(ws) => {
                result.connected = true;
                clients.push(Client {
                    ws,
                    result,
                    open: true,
                });
                shared.connected.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                result.connect_error = Some(e);
                results.push(result);
                shared.connect_failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let mut poll = match Poll::new() {
        Ok(poll) => poll,
        Err(e) => panic!("epoll: {e}"),
    };
    for (index, client) in clients.iter_mut().enumerate() {
        let fd = client.ws.get_ref().as_raw_fd();
        if let Err(e) =
            poll.registry()
                .register(&mut SourceFd(&fd), Token(index), Interest::READABLE)
        {
            client.close(format!("cannot poll the socket: {e}"), shared);
        }
        // The handshake may have read frames that will not make the socket ready again.
        client.drain(shared);
    }
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = poll.poll(&mut events, Some(STOP_CHECK)) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("epoll_wait: {e}");
        }
        for event in events.iter() {
            if let Some(client) = clients.get_mut(event.token().0) {
                client.drain(shared);
            }
        }
    }
    results.extend(clients.into_iter().map(|client| client.result));
    results
}

/// Websocket upgrade, engine.io open, Socket.IO connect with the rune; answers pings until
/// the connect ack, then makes the socket non-blocking.
fn connect(target: &Target) -> Result<WebSocket<TcpStream>, String> {
    let address = target
        .url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default();
    let stream = TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(target.connect_timeout))
        .and_then(|()| stream.set_write_timeout(Some(target.connect_timeout)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| format!("socket options: {e}"))?;
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    let rune = HeaderValue::from_str(&target.rune).map_err(|e| format!("rune header: {e}"))?;
    request.headers_mut().insert("rune", rune);
    let (mut ws, _) = tungstenite::client::client_with_config(
        request,
        stream,
        Some(socketio_client::websocket_config()),
    )
    .map_err(|e| format!("websocket: {e}"))?;
    let auth = serde_json::json!({ "rune": target.rune });
    let connect = socketio_client::answer_open(&next_text(&mut ws)?, &auth)?;
    ws.send(Message::text(connect)).map_err(|e| e.to_string())?;
    loop {
        match socketio_client::before_ack(&next_text(&mut ws)?, BeforeAck::Skip)? {
            Handshake::Pong => ws.send(Message::text("3")).map_err(|e| e.to_string())?,
            Handshake::Connected => break,
            Handshake::Wait => {}
        }
    }
    ws.get_ref()
        .set_nonblocking(true)
        .map_err(|e| format!("non-blocking: {e}"))?;
    Ok(ws)
}

/// The next text frame (blocking); other data frames are skipped.
fn next_text(ws: &mut WebSocket<TcpStream>) -> Result<String, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => return Ok(text.as_str().to_string()),
            Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
            Ok(_) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl Client {
    /// Reads and records every frame the socket has, until it would block.
    fn drain(&mut self, shared: &Shared) {
        while self.open {
            let message = match self.ws.read() {
                Ok(message) => message,
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    break
                }
                Err(e) => return self.close(format!("websocket error: {e}"), shared),
            };
            let now = shared.now_ns();
            match message {
                Message::Text(text) => self.handle(text.as_str(), now, shared),
                Message::Close(frame) => self.close(format!("websocket closed: {frame:?}"), shared),
                _ => {}
            }
        }
        // A pong that did not fit in the socket's buffer goes out now.
        if self.open {
            if let Err(e) = self.ws.flush() {
                if !matches!(&e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
                {
                    self.close(format!("cannot answer a ping: {e}"), shared);
                }
            }
        }
    }

    fn handle(&mut self, text: &str, now: u64, shared: &Shared) {
        let result = &mut self.result;
        if let Some(event) = text.strip_prefix("42") {
            if event.starts_with("[\"message\"") {
                match (
                    number_after(event, LABEL_PHASE),
                    number_after(event, LABEL_N),
                    number_after(event, LABEL_SENT_NS),
                ) {
                    (Some(phase), Some(n), Some(sent)) => {
                        result.record(phase as usize, n, now.saturating_sub(sent), shared)
                    }
                    _ => result.unexpected += 1,
                }
            } else if event.starts_with("[\"disconnect_reason\"") {
                result.disconnect_reason = Some(event.to_string());
            } else {
                result.unexpected += 1;
            }
        } else if text == "2" {
            match self.ws.send(Message::text("3")) {
                Ok(()) => {}
                // Queued; `drain` flushes it.
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => self.close(format!("cannot answer a ping: {e}"), shared),
            }
        } else if text.starts_with("41") || text == "1" {
            self.close(format!("server disconnected the client ({text})"), shared);
        } else {
            result.unexpected += 1;
        }
    }

    /// Records why the connection ended before the end of the benchmark.
    fn close(&mut self, why: String, shared: &Shared) {
        if self.open {
            self.open = false;
            self.result.dropped = Some(why);
            shared.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Waits (blocking) for the client threads to stop after `stop` was set, at most 10 s; the
/// results of those that did.
pub fn collect(threads: Vec<JoinHandle<Vec<ClientResult>>>) -> Vec<ClientResult> {
    let mut results = Vec::new();
    let stopping = std::time::Instant::now();
    while threads.iter().any(|thread| !thread.is_finished())
        && stopping.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    for thread in threads {
        if !thread.is_finished() {
            eprintln!("fanout: a client thread did not stop within 10 s");
            continue;
        }
        match thread.join() {
            Ok(mut clients) => results.append(&mut clients),
            Err(_) => eprintln!("fanout: a client thread panicked"),
        }
    }
    results
}
