//! The clients of the notification tests: a recording `rust_socketio` listener, an SSE
//! reader on `reqwest`, and a hand-made websocket client that completes the Socket.IO
//! handshake and then never reads.

use futures::future::FutureExt;
use futures::StreamExt;
use mock_lightningd::fixtures::load_fixture;
use mock_lightningd::gateway::Gateway;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The debug line the plugin logs once a Socket.IO client's journal subscription exists
/// (`socketio::on_connect`). The client sees the connect packet before that handler runs,
/// so tests that count every notification wait for this line.
const SUBSCRIBED_LOG: (&str, &str) = ("Socket.IO client ", " connected with ");

/// What happened to a Socket.IO client, apart from the events it received.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    /// The server accepted the namespace connect.
    Connected,
    /// `connect_error`, with the text rust_socketio reports
    /// (`Received an ConnectError frame: {"message":"..."}`).
    ConnectError(String),
    /// Any other error rust_socketio reported.
    Error(String),
    /// The server sent a Socket.IO disconnect.
    Closed,
}

/// Everything a listener recorded.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub lifecycle: Vec<Got>,
    /// Events in arrival order: name and first argument.
    pub events: Vec<(String, Value)>,
    counts: HashMap<String, usize>,
}

/// A Socket.IO client (rust_socketio) that records what it receives.
pub struct Listener {
    /// Kept so the connection lives as long as the listener.
    _client: Client,
    state: Arc<Mutex<State>>,
    changes: watch::Receiver<u64>,
}

impl State {
    /// How many events `name` arrived.
    pub fn count(&self, name: &str) -> usize {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first argument of an event, or the text of an error.
fn first_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        Payload::Text(_) => Value::Null,
        Payload::Binary(bytes) => json!({ "binary": bytes.len() }),
        #[allow(deprecated)]
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

impl Listener {
    /// A copy of what was recorded so far.
    pub fn snapshot(&self) -> State {
        lock(&self.state).clone()
    }

    /// The data of every event `name` received so far.
    pub fn events_named(&self, name: &str) -> Vec<Value> {
        lock(&self.state)
            .events
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, data)| data.clone())
            .collect()
    }

    /// Waits (up to [`WAIT`]) until `check` returns something.
    pub async fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&State) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut changes = self.changes.clone();
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(&lock(&self.state)) {
                return found;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let state = lock(&self.state);
                let tail: Vec<_> = state.events.iter().rev().take(3).rev().collect();
                panic!(
                    "timed out after {WAIT:?} waiting for {what}; lifecycle: {:?}; event counts: \
                     {:?}; last events: {tail:?}",
                    state.lifecycle, state.counts
                );
            }
        }
    }

    /// Waits until at least `count` events `name` arrived; returns all of them.
    pub async fn wait_events(&self, name: &str, count: usize) -> Vec<Value> {
        self.wait_for(&format!("{count} `{name}` event(s)"), |state| {
            (state.count(name) >= count).then_some(())
        })
        .await;
        self.events_named(name)
    }

    /// Waits for the server's connect packet; panics with the connect error if refused.
    pub async fn wait_connected(&self) {
        let outcome = self
            .wait_for("the namespace connect", |state| {
                state.lifecycle.iter().find_map(|got| match got {
                    Got::Connected => Some(Ok(())),
                    Got::ConnectError(text) => Some(Err(text.clone())),
                    _ => None,
                })
            })
            .await;
        if let Err(error) = outcome {
            panic!("the client was refused: {error}");
        }
    }
}

/// Connects a rust_socketio client to namespace `/` with an optional auth payload and an
/// optional `rune` header, without waiting for the server's answer.
pub async fn connect_listener(
    gateway: &Gateway,
    auth: Option<Value>,
    rune_header: Option<&str>,
    transport: TransportType,
) -> Listener {
    let state = Arc::new(Mutex::new(State::default()));
    let (changed, changes) = watch::channel(0u64);
    let changed = Arc::new(changed);
    let recorder = |state: &Arc<Mutex<State>>, changed: &Arc<watch::Sender<u64>>| {
        let (state, changed) = (state.clone(), changed.clone());
        move |record: Box<dyn FnOnce(&mut State) + Send>| {
            record(&mut lock(&state));
            changed.send_modify(|n| *n += 1);
        }
    };
    let on_connect = recorder(&state, &changed);
    let on_close = recorder(&state, &changed);
    let on_error = recorder(&state, &changed);
    let on_event = recorder(&state, &changed);

    let mut builder = ClientBuilder::new(gateway.base.clone())
        .transport_type(transport)
        .reconnect(false)
        .on(Event::Connect, move |_, _| {
            on_connect(Box::new(|s| s.lifecycle.push(Got::Connected)));
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            on_close(Box::new(|s| s.lifecycle.push(Got::Closed)));
            async {}.boxed()
        })
        .on(Event::Error, move |payload, _| {
            let text = match first_value(payload) {
                Value::String(text) => text,
                other => other.to_string(),
            };
            on_error(Box::new(move |s| {
                s.lifecycle.push(if text.contains("ConnectError") {
                    Got::ConnectError(text)
                } else {
                    Got::Error(text)
                })
            }));
            async {}.boxed()
        })
        .on_any(move |event, payload, _| {
            let name = event.as_str().to_string();
            let data = first_value(payload);
            on_event(Box::new(move |s| {
                *s.counts.entry(name.clone()).or_default() += 1;
                s.events.push((name, data));
            }));
            async {}.boxed()
        });
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    if let Some(rune) = rune_header {
        builder = builder.opening_header("rune", rune);
    }
    let client = builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("rust_socketio could not connect: {e}"));
    Listener {
        _client: client,
        state,
        changes,
    }
}

/// How many Socket.IO clients the plugin has subscribed so far (from its log).
pub fn subscriptions(gateway: &Gateway) -> usize {
    gateway
        .node
        .logs()
        .iter()
        .filter(|l| l.message.contains(SUBSCRIBED_LOG.0) && l.message.contains(SUBSCRIBED_LOG.1))
        .count()
}

/// Waits until the plugin logged at least `count` Socket.IO subscriptions.
pub async fn wait_subscriptions(gateway: &Gateway, count: usize) {
    let deadline = Instant::now() + WAIT;
    while subscriptions(gateway) < count {
        assert!(
            Instant::now() < deadline,
            "the plugin subscribed {} Socket.IO client(s), expected {count}",
            subscriptions(gateway)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `listener` is connected and the plugin subscribed `count` clients in all.
pub async fn wait_subscribed(gateway: &Gateway, listener: &Listener, count: usize) {
    listener.wait_connected().await;
    wait_subscriptions(gateway, count).await;
}

/// A websocket client with `auth`, connected and subscribed (so it misses nothing pushed
/// afterwards). Connect clients one at a time with it.
pub async fn listen(gateway: &Gateway, auth: Value) -> Listener {
    let before = subscriptions(gateway);
    let listener = connect_listener(gateway, Some(auth), None, TransportType::Websocket).await;
    wait_subscribed(gateway, &listener, before + 1).await;
    listener
}

/// Sends a notification through the mock (the plugin subscribes to `"*"`).
pub async fn push(gateway: &Gateway, topic: &str, payload: Value) {
    assert!(
        gateway.node.notify(topic, payload).await,
        "the mock did not send {topic}: the plugin did not subscribe to it"
    );
}

/// Sends the payload of fixtures/notifications/<topic>.json.
pub async fn push_fixture(gateway: &Gateway, topic: &str) {
    let payload = load_fixture(&format!("notifications/{topic}.json"))["params"][topic].clone();
    push(gateway, topic, payload).await;
}

/// Writes fixtures/notifications/wildcard/<topic>.json to the plugin as is; returns it.
pub async fn push_wildcard_fixture(gateway: &Gateway, topic: &str) -> Value {
    let envelope = load_fixture(&format!("notifications/wildcard/{topic}.json"));
    gateway.node.notify_raw(envelope.clone()).await;
    envelope
}

// ---------------------------------------------------------------------------------------
// SSE.
// ---------------------------------------------------------------------------------------

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads `GET /v1/notifications` in a background task, event by event.
pub struct SseReader {
    events: mpsc::UnboundedReceiver<Result<SseEvent, String>>,
}

/// Parses one event block (lines without the blank line); `None` for comments only.
fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut has_data = false;
    for line in block.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    (has_data || event.event.is_some() || event.id.is_some()).then_some(event)
}

impl SseReader {
    /// `GET /v1/notifications<query>` with an optional `Rune` and `Last-Event-ID`, on a
    /// client without a total timeout (the stream is long-lived).
    pub async fn request(
        gateway: &Gateway,
        rune: Option<&str>,
        last_event_id: Option<&str>,
        query: &str,
    ) -> reqwest::Response {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a reqwest client builds");
        let mut request = client.get(gateway.url(&format!("/v1/notifications{query}")));
        if let Some(rune) = rune {
            request = request.header("Rune", rune);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        tokio::time::timeout(WAIT, request.send())
            .await
            .expect("GET /v1/notifications answers")
            .unwrap_or_else(|e| panic!("GET /v1/notifications failed: {e}"))
    }

    /// Opens the stream (asserting 200 and `text/event-stream`) and starts reading it. The
    /// plugin subscribes before it answers, so nothing pushed afterwards is missed.
    pub async fn open(
        gateway: &Gateway,
        rune: &str,
        last_event_id: Option<&str>,
        query: &str,
    ) -> SseReader {
        let response = SseReader::request(gateway, Some(rune), last_event_id, query).await;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("GET /v1/notifications: {status} {body}");
        }
        assert!(
            content_type.starts_with("text/event-stream"),
            "content-type {content_type}"
        );
        let (sender, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let _ = sender.send(Err(format!("stream error: {e}")));
                        return;
                    }
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_event(&block) {
                        if sender.send(Ok(event)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        SseReader { events }
    }

    /// The next event; panics on timeout, on a stream error or at the end of the stream.
    pub async fn next(&mut self) -> SseEvent {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(error))) => panic!("SSE {error}"),
            Ok(None) => panic!("the SSE stream ended"),
            Err(_) => panic!("no SSE event within {WAIT:?}"),
        }
    }

    /// Waits for the end of the stream; panics if an event comes first.
    pub async fn wait_end(&mut self) {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(None) | Ok(Some(Err(_))) => {}
            Ok(Some(Ok(event))) => panic!("expected the end of the stream, got {event:?}"),
            Err(_) => panic!("the SSE stream did not end within {WAIT:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A stalled websocket client.
// ---------------------------------------------------------------------------------------

/// Reads one websocket frame from the server (unmasked); returns opcode and payload.
async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let frame = mock_lightningd::websocket_frames::read(stream)
        .await
        .expect("a whole frame");
    (frame.opcode, frame.payload)
}

/// Writes one masked text frame.
async fn write_text_frame(stream: &mut TcpStream, text: &str) {
    let frame = mock_lightningd::websocket_frames::masked(0x1, text.as_bytes());
    stream
        .write_all(&frame)
        .await
        .expect("the frame is written");
}

/// Opens a websocket to `/socket.io/?{query}` over a raw TCP socket with a tiny receive
/// buffer and returns it once the plugin answered 101.
async fn raw_websocket(gateway: &Gateway, query: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF can be set");
    let mut stream = socket
        .connect(([127, 0, 0, 1], gateway.port).into())
        .await
        .expect("the plugin accepts TCP connections");
    let request = mock_lightningd::raw_http::websocket_upgrade(gateway.port, query, &[]);
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = mock_lightningd::raw_http::read_head(&mut stream, WAIT).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// Opens a websocket to `/socket.io/?EIO=4&transport=websocket` with a tiny receive buffer,
/// connects to namespace `/` with `{"rune": rune}`, waits until the plugin subscribed it,
/// and returns the socket, which the caller then never reads.
pub async fn stalled_client(gateway: &Gateway, rune: &str) -> TcpStream {
    let before = subscriptions(gateway);
    let mut stream = raw_websocket(gateway, "EIO=4&transport=websocket").await;
    let (_, open) = read_frame(&mut stream).await;
    assert!(
        open.starts_with(b"0{"),
        "engine.io open: {}",
        String::from_utf8_lossy(&open)
    );
    write_text_frame(&mut stream, &format!("40{}", json!({ "rune": rune }))).await;
    loop {
        let (opcode, payload) = read_frame(&mut stream).await;
        let text = String::from_utf8_lossy(&payload);
        if opcode == 1 && text.starts_with("40") {
            break;
        }
        assert!(
            !text.starts_with("44"),
            "the stalled client was refused: {text}"
        );
    }
    wait_subscriptions(gateway, before + 1).await;
    stream
}

/// A client on engine.io long-polling that connects to namespace `/` with `{"rune": rune}`
/// and then never polls again; returns its session id once the plugin subscribed it.
pub async fn stalled_polling_client(gateway: &Gateway, rune: &str) -> String {
    let before = subscriptions(gateway);
    let http = reqwest::Client::new();
    let polling = format!(
        "http://127.0.0.1:{}/socket.io/?EIO=4&transport=polling",
        gateway.port
    );
    let text = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200, "an engine.io polling request");
        response.text().await.expect("a polling response body")
    };
    let open = text(http.get(&polling).send().await.expect("a handshake")).await;
    let sid = open
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str::<Value>(json).ok())
        .and_then(|open| open["sid"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("engine.io open: {open}"));
    let session = format!("{polling}&sid={sid}");
    let connect = http
        .post(&session)
        .body(format!("40{}", json!({ "rune": rune })))
        .send()
        .await
        .expect("a namespace connect");
    assert_eq!(text(connect).await, "ok");
    // Polls until the namespace connect is answered, answering engine.io's pings.
    loop {
        let polled = text(http.get(&session).send().await.expect("a poll")).await;
        let packets: Vec<&str> = polled.split('\x1e').collect();
        if packets.contains(&"2") {
            let pong = http.post(&session).body("3").send().await.expect("a pong");
            assert_eq!(text(pong).await, "ok");
        }
        if let Some(refused) = packets.iter().find(|p| p.starts_with("44")) {
            panic!("the stalled client was refused: {refused}");
        }
        if packets.iter().any(|p| p.starts_with("40")) {
            break;
        }
    }
    wait_subscriptions(gateway, before + 1).await;
    sid
}

/// Like [`stalled_client`], but the way socket.io-client and python-socketio connect by
/// default: an engine.io long-polling session connects to namespace `/`, then upgrades to a
/// websocket on another connection (`2probe`, `3probe`, `5`); that websocket is returned and
/// never read.
pub async fn stalled_upgraded_client(gateway: &Gateway, rune: &str) -> TcpStream {
    let sid = stalled_polling_client(gateway, rune).await;
    let mut stream = raw_websocket(gateway, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    write_text_frame(&mut stream, "2probe").await;
    let (_, probe) = read_frame(&mut stream).await;
    assert_eq!(String::from_utf8_lossy(&probe), "3probe");
    write_text_frame(&mut stream, "5").await;
    stream
}

// ---------------------------------------------------------------------------------------
// A stalled SSE client.
// ---------------------------------------------------------------------------------------

/// Opens `GET /v1/notifications` over a raw TCP socket with a tiny receive buffer, reads the
/// response head (asserting 200), and returns the socket, which the caller then does not read
/// until [`read_sse_to_end`].
pub async fn stalled_sse(gateway: &Gateway, rune: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF can be set");
    let mut stream = socket
        .connect(([127, 0, 0, 1], gateway.port).into())
        .await
        .expect("the plugin accepts TCP connections");
    let request = format!(
        "GET /v1/notifications HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nRune: {rune}\r\n\
         Accept: text/event-stream\r\n\r\n",
        gateway.port
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = mock_lightningd::raw_http::read_head(&mut stream, WAIT)
        .await
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    stream
}

/// Reads a chunked SSE body until its end (the last chunk, or the connection closing) and
/// returns its events in order.
pub async fn read_sse_to_end(stream: &mut TcpStream) -> Vec<SseEvent> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        loop {
            let mut buffer = vec![0u8; 64 * 1024];
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buffer[..n]),
            }
            if raw.ends_with(b"\r\n0\r\n\r\n") || raw.starts_with(b"0\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the SSE stream did not end within {WAIT:?}");
    // De-chunk: `<hex size>\r\n<data>\r\n` ... `0\r\n\r\n`.
    let mut body = Vec::new();
    let mut rest = raw.as_slice();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or_else(|| panic!("bad chunk size line: {:?}", &rest[..line_end]));
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            // The last chunk; or one cut short by the connection closing.
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    let text = String::from_utf8_lossy(&body).replace("\r\n", "\n");
    text.split("\n\n").filter_map(parse_event).collect()
}
