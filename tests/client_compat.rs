//! Third-party Socket.IO clients against the real plugin: python-socketio 5.x
//! (`tests/clients/python_client.py`) and socket.io-client 4.x for Node
//! (`tests/clients/node_client.mjs`), each on websocket only, on long-polling then the
//! upgrade to websocket, and on long-polling only. They must get every notification, in
//! order, with lightningd's exact payloads (for JavaScript: up to its number precision), pass
//! the auth payload options through, be refused with lightningd's reason for a bad rune, and
//! get the notifications sent just before `shutdown`. The documented example
//! `contrib/python/notifications.py` must print what it receives and resume after a dropped
//! connection.
//!
//! The clients need python-socketio (with aiohttp) and node with `tests/clients/node_modules`
//! (`npm ci` there), so every test here is `#[ignore]`d: run them with
//! `cargo test --test client_compat -- --ignored` (as `.ci/run` does after installing the
//! clients); then a missing tool fails the test.

use mock_lightningd::fixtures::{fixture_path, load_fixture};
use mock_lightningd::gateway::Gateway;
use serde_json::{json, Map, Number, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Why every test here is ignored by default.
const NEEDS: &str = "needs python-socketio and node with tests/clients/node_modules";
/// How many notifications the ordering tests push.
const PUSHED: usize = 200;
/// How long a client may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to receive everything and print its summary.
const FINISH_TIMEOUT: Duration = Duration::from_secs(90);
/// The clients' own timeout (seconds) for collecting, below [`FINISH_TIMEOUT`].
const CLIENT_TIMEOUT_SECS: &str = "60";

/// Panics, naming what is missing, when a client tool is not installed.
fn require_clients() {
    static MISSING: OnceLock<Vec<String>> = OnceLock::new();
    let missing = MISSING.get_or_init(missing_tools);
    assert!(
        missing.is_empty(),
        "the client tests cannot run ({NEEDS}; .ci/run installs them):\n- {}",
        missing.join("\n- ")
    );
}

fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, socketio, aiohttp; \
             v = m.version('python-socketio'); assert v.startswith('5.'), v; print(v)",
        ])
        .output();
    match python {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing.push(format!(
            "python-socketio 5.x with its asyncio client (python3 -m pip install \
             \"python-socketio[client,asyncio-client]>=5,<6\"): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => missing.push(format!("python3: {e}")),
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing.push(format!("node: exited with {}", out.status)),
        Err(e) => missing.push(format!("node: {e}")),
    }
    let module = clients_dir().join("node_modules/socket.io-client/package.json");
    if !module.is_file() {
        missing.push(format!(
            "{} (run `npm ci` in tests/clients)",
            module.display()
        ));
    }
    missing
}

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn clients_dir() -> PathBuf {
    repo_path("tests/clients")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Python,
    Node,
}

impl Kind {
    fn command(self) -> Command {
        let (program, script) = match self {
            Kind::Python => ("python3", "python_client.py"),
            Kind::Node => ("node", "node_client.mjs"),
        };
        let mut command = Command::new(program);
        command.arg(clients_dir().join(script));
        command
    }
}

/// A client subprocess; its stdout lines arrive on a channel, its stderr is kept.
struct Client {
    name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn spawn(name: impl Into<String>, mut command: Command) -> Client {
        let name = name.into();
        let mut child = command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = kept.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                keep.lock().unwrap().push(line);
            }
        });
        Client {
            name,
            child,
            lines,
            stderr: kept,
        }
    }

    /// A compatibility client: `MODE URL RUNE COUNT TIMEOUT [AUTH_JSON]`.
    fn compat(kind: Kind, mode: &str, url: &str, rune: &str, count: usize, auth: Value) -> Self {
        let mut command = kind.command();
        command.args([mode, url, rune, &count.to_string(), CLIENT_TIMEOUT_SECS]);
        if !auth.is_null() {
            command.arg(auth.to_string());
        }
        Client::spawn(format!("{kind:?} client ({mode})"), command)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The next stdout line within `timeout`; panics (with stderr) on timeout or EOF.
    async fn next_line(&mut self, timeout: Duration) -> String {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                let status = self.child.wait().await;
                panic!(
                    "{}: stdout closed ({status:?}); stderr:\n{}",
                    self.name,
                    self.stderr()
                )
            }
            Err(_) => panic!(
                "{}: no output within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// Waits for the `connected <transport>` line; returns the transport.
    async fn connected(&mut self) -> String {
        let line = self.next_line(CONNECT_TIMEOUT).await;
        match line.strip_prefix("connected ") {
            Some(transport) => transport.to_string(),
            None => panic!(
                "{}: expected `connected <transport>`, got: {line}\nstderr:\n{}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// The JSON summary (the next stdout line), after the process exited with success.
    async fn summary(mut self) -> Value {
        let line = self.next_line(FINISH_TIMEOUT).await;
        let summary: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "{}: summary is not JSON ({e}): {line}\nstderr:\n{}",
                self.name,
                self.stderr()
            )
        });
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{}: did not exit after its summary", self.name))
            .expect("wait for the client");
        assert!(
            status.success(),
            "{}: exited with {status}; summary: {summary}\nstderr:\n{}",
            self.name,
            self.stderr()
        );
        summary
    }
}

/// Socket.IO clients the plugin has accepted so far (its `connected with` debug log, written
/// once the client is subscribed to the journal).
fn accepted_clients(gateway: &Gateway) -> usize {
    gateway
        .node
        .logs()
        .iter()
        .filter(|l| {
            l.message.starts_with("Socket.IO client ") && l.message.contains(" connected with ")
        })
        .count()
}

/// Waits until the plugin has accepted `count` clients; on a timeout the panic shows the
/// clients' stderr and the plugin's log.
async fn wait_accepted(gateway: &Gateway, count: usize, clients: &[&Client]) {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    while accepted_clients(gateway) < count {
        if tokio::time::Instant::now() >= deadline {
            let stderr: Vec<String> = clients
                .iter()
                .map(|client| format!("{}:\n{}", client.name, client.stderr()))
                .collect();
            let log: Vec<String> = gateway.node.logs().into_iter().map(|l| l.message).collect();
            panic!(
                "the plugin logged {} Socket.IO connections, expected {count}\n\
                 clients' stderr:\n{}\nplugin log:\n{}",
                accepted_clients(gateway),
                stderr.join("\n"),
                log.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Real notifications as a `"*"` subscriber gets them (fixtures/notifications/wildcard),
/// except `shutdown`, which would stop the plugin: `(topic, payload)`, sorted by topic.
fn fixture_notifications() -> Vec<(String, Value)> {
    let dir = fixture_path("notifications/wildcard");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json") && name != "shutdown.json")
        .collect();
    names.sort();
    let notifications: Vec<(String, Value)> = names
        .iter()
        .map(|name| {
            let message = load_fixture(&format!("notifications/wildcard/{name}"));
            let topic = message["method"].as_str().expect("a method").to_string();
            let payload = message["params"][&topic].clone();
            assert!(payload.is_object(), "{name}: no params.{topic}");
            (topic, payload)
        })
        .collect();
    assert!(
        notifications.len() >= 5,
        "too few fixtures in {}",
        dir.display()
    );
    notifications
}

/// `count` notifications cycling through the fixtures.
fn notifications_to_push(count: usize) -> Vec<(String, Value)> {
    let fixtures = fixture_notifications();
    (0..count)
        .map(|i| fixtures[i % fixtures.len()].clone())
        .collect()
}

async fn push(gateway: &Gateway, notifications: &[(String, Value)]) {
    for (topic, payload) in notifications {
        assert!(
            gateway.node.notify(topic, payload.clone()).await,
            "the plugin is not subscribed to {topic}"
        );
    }
}

/// The `message` event data for a notification: `{"<topic>": payload}`.
fn message_of(topic: &str, payload: &Value) -> Value {
    json!({ topic: payload })
}

/// Every number as a JavaScript number (an f64): what a JS client can represent. lightningd
/// sends u64 fields such as `groupid` that JSON.parse cannot hold exactly.
fn as_js_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(as_js_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), as_js_numbers(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// `expected` `notification` events with the epoch the plugin gave the first `received` one
/// (16 hex digits; every `notification` carries it next to `seq`).
fn with_epoch(received: &[Value], expected: &[Value]) -> Vec<Value> {
    let epoch = received
        .first()
        .and_then(|n| n["epoch"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        received.is_empty() || (epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit())),
        "no epoch on {:?}",
        received.first()
    );
    expected
        .iter()
        .map(|n| {
            let mut n = n.clone();
            n["epoch"] = json!(epoch);
            n
        })
        .collect()
}

/// Asserts that `received` is `expected`, in order; for Node, up to JS number precision.
fn assert_same_sequence(client: &str, kind: Kind, received: &[Value], expected: &[Value]) {
    let normalize = |v: &Value| match kind {
        Kind::Python => v.clone(),
        Kind::Node => as_js_numbers(v),
    };
    assert_eq!(
        received.len(),
        expected.len(),
        "{client}: received {} events, expected {}",
        received.len(),
        expected.len()
    );
    for (i, (got, want)) in received.iter().zip(expected).enumerate() {
        assert_eq!(
            normalize(got),
            normalize(want),
            "{client}: event #{i} differs (exact payloads, in order)"
        );
    }
}

/// One gateway, three clients of `kind` (websocket only; polling then the upgrade to
/// websocket; polling only), 200 pushed notifications: each client gets all of them, in
/// order, exactly.
async fn every_notification_in_order(kind: Kind) {
    let gateway = Gateway::start().await;
    let url = gateway.base.clone();
    // The runes the docs suggest (a method restriction, and readonly), and an unrestricted one.
    let method_rune = gateway
        .node
        .create_rune(json!([["method=listclnrest-notifications"]]));
    let readonly_rune = gateway.node.create_rune(json!("readonly"));
    // (mode, rune, Engine.IO transport at the handshake, upgraded, transport at the end)
    let modes = [
        (
            "websocket",
            method_rune.as_str(),
            "websocket",
            false,
            "websocket",
        ),
        (
            "polling",
            readonly_rune.as_str(),
            "polling",
            true,
            "websocket",
        ),
        (
            "polling-only",
            gateway.rune.as_str(),
            "polling",
            false,
            "polling",
        ),
    ];
    let mut clients = Vec::new();
    for (mode, rune, ..) in modes {
        clients.push(Client::compat(kind, mode, &url, rune, PUSHED, Value::Null));
    }
    for client in &mut clients {
        client.connected().await;
    }
    let waited: Vec<&Client> = clients.iter().collect();
    wait_accepted(&gateway, clients.len(), &waited).await;

    let pushed = notifications_to_push(PUSHED);
    push(&gateway, &pushed).await;
    let expected: Vec<Value> = pushed.iter().map(|(t, p)| message_of(t, p)).collect();

    for (client, (_, _, opened_with, upgraded, transport)) in clients.into_iter().zip(modes) {
        let name = client.name.clone();
        let summary = client.summary().await;
        println!(
            "{name}: {} messages, opened with {}, upgraded: {}, transport at the end: {}",
            summary["count"], summary["opened_with"], summary["upgraded"], summary["transport"]
        );
        assert_eq!(summary["timed_out"], false, "{name}: {summary}");
        assert_eq!(summary["disconnected"], Value::Null, "{name}: {summary}");
        assert_eq!(summary["opened_with"], opened_with, "{name}");
        assert_eq!(summary["upgraded"], upgraded, "{name}");
        assert_eq!(summary["transport"], transport, "{name}");
        assert_eq!(summary["notifications"], json!([]), "{name}");
        assert_eq!(summary["events"], json!([]), "{name}: unexpected events");
        let received = summary["messages"].as_array().cloned().unwrap_or_default();
        assert_same_sequence(&name, kind, &received, &expected);
    }
    gateway.node.assert_no_violations();
}

/// A refused connection: the client's connect error carries lightningd's reason.
async fn refused(kind: Kind, gateway: &Gateway, rune: &str, mode: &str) -> String {
    let client = Client::compat(kind, "refused", &gateway.base, rune, 1, Value::Null);
    let name = format!("{} with rune {rune:.12}", client.name);
    let summary = client.summary().await;
    assert_eq!(
        summary["refused"], true,
        "{name} was not refused: {summary}"
    );
    let message = summary["message"].as_str().unwrap_or_default().to_string();
    println!("{kind:?} ({mode}): connect error: {message}");
    message
}

async fn refusals(kind: Kind) {
    let gateway = Gateway::start().await;
    let foreign = load_fixture("rpc/checkrune-c-foreign-rune.json")["request"]["params"]["rune"]
        .as_str()
        .expect("the fixture's foreign rune")
        .to_string();
    let message = refused(kind, &gateway, &foreign, "foreign rune").await;
    assert!(
        message.contains("Not derived from master"),
        "{kind:?}, foreign rune: {message}"
    );
    let message = refused(kind, &gateway, "-", "no rune").await;
    assert!(
        message.contains("Missing rune"),
        "{kind:?}, no rune: {message}"
    );
    let invoice_only = gateway.node.create_rune(json!([["method=invoice"]]));
    let message = refused(kind, &gateway, &invoice_only, "method=invoice rune").await;
    assert!(
        message.contains("Not permitted") && message.contains("method is not equal to invoice"),
        "{kind:?}, rune for invoice only: {message}"
    );
    assert_eq!(accepted_clients(&gateway), 0);
}

/// `since`, `seq` and `topics` in the auth payload reach the server from this client: a
/// replay of the retained notifications of two topics, with their sequence numbers.
async fn auth_options(kind: Kind) {
    let gateway = Gateway::start().await;
    let pushed = notifications_to_push(30);
    push(&gateway, &pushed).await;
    let topics = ["invoice_creation", "invoice_payment"];
    let since = 5;
    let expected: Vec<Value> = pushed
        .iter()
        .enumerate()
        .map(|(i, (topic, payload))| (i as u64 + 1, topic, payload))
        .filter(|(seq, topic, _)| *seq > since && topics.contains(&topic.as_str()))
        .map(|(seq, topic, payload)| json!({"seq": seq, "topic": topic, "payload": payload}))
        .collect();
    assert!(expected.len() >= 4);
    let mut client = Client::compat(
        kind,
        "websocket",
        &gateway.base,
        &gateway.rune,
        expected.len(),
        json!({"since": since, "seq": true, "topics": topics}),
    );
    client.connected().await;
    let name = client.name.clone();
    let summary = client.summary().await;
    assert_eq!(summary["timed_out"], false, "{name}: {summary}");
    assert_eq!(summary["messages"], json!([]), "{name}");
    assert_eq!(summary["events"], json!([]), "{name}");
    let received = summary["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let expected = with_epoch(&received, &expected);
    assert_same_sequence(&name, kind, &received, &expected);
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn python_socketio_gets_every_notification_in_order() {
    require_clients();
    every_notification_in_order(Kind::Python).await;
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn node_socketio_client_gets_every_notification_in_order() {
    require_clients();
    every_notification_in_order(Kind::Node).await;
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn python_socketio_is_refused_with_lightningds_reason() {
    require_clients();
    refusals(Kind::Python).await;
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn node_socketio_client_is_refused_with_lightningds_reason() {
    require_clients();
    refusals(Kind::Node).await;
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn python_socketio_auth_options_since_seq_topics() {
    require_clients();
    auth_options(Kind::Python).await;
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn node_socketio_client_auth_options_since_seq_topics() {
    require_clients();
    auth_options(Kind::Node).await;
}

/// The documented example, `contrib/python/notifications.py URL RUNE --seq --count 3`:
/// prints the three notifications as JSON lines and exits 0.
#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn contrib_python_example_prints_notifications() {
    require_clients();
    let gateway = Gateway::start().await;
    let rune = gateway
        .node
        .create_rune(json!([["method=listclnrest-notifications"]]));
    let mut command = Command::new("python3");
    command
        .arg(repo_path("contrib/python/notifications.py"))
        .args([
            gateway.base.as_str(),
            rune.as_str(),
            "--seq",
            "--count",
            "3",
        ]);
    let mut example = Client::spawn("contrib/python/notifications.py", command);
    wait_accepted(&gateway, 1, &[&example]).await;
    let pushed = notifications_to_push(3);
    push(&gateway, &pushed).await;
    for (i, (topic, payload)) in pushed.iter().enumerate() {
        let line = example.next_line(FINISH_TIMEOUT).await;
        let printed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("example printed a line that is not JSON ({e}): {line}"));
        let expected = json!({"seq": i + 1, "topic": topic, "payload": payload});
        let expected = with_epoch(std::slice::from_ref(&printed), &[expected]);
        assert_eq!(printed, expected[0], "example line {i}");
    }
    let status = tokio::time::timeout(Duration::from_secs(15), example.child.wait())
        .await
        .expect("the example exits after --count notifications")
        .expect("wait for the example");
    assert!(
        status.success(),
        "example exited with {status}; stderr:\n{}",
        example.stderr()
    );
    assert!(
        example.stderr().contains("connected"),
        "example stderr: {}",
        example.stderr()
    );
    // Nothing more on stdout.
    assert_eq!(example.lines.recv().await, None);
}

/// A TCP relay in front of the plugin whose connections can be cut, as a network drop would.
struct CuttableRelay {
    port: u16,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableRelay {
    async fn start(target: u16) -> CuttableRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tasks = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        CuttableRelay {
            port,
            connections,
            accept,
        }
    }

    /// Drops every open connection (both sides see them closed); new ones are relayed.
    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CuttableRelay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The documented example after a network drop: it reconnects by itself and, with `--seq`,
/// resumes with `since` = the last sequence number it printed, so the notifications sent
/// while it was away come exactly once, in order.
#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn contrib_python_example_resumes_after_a_dropped_connection() {
    require_clients();
    let gateway = Gateway::start().await;
    let relay = CuttableRelay::start(gateway.port).await;
    let url = format!("http://127.0.0.1:{}", relay.port);
    let total = 10;
    let mut command = Command::new("python3");
    command
        .arg(repo_path("contrib/python/notifications.py"))
        .args([url.as_str(), gateway.rune.as_str(), "--seq", "--count"])
        .arg(total.to_string());
    let mut example = Client::spawn("contrib/python/notifications.py", command);
    wait_accepted(&gateway, 1, &[&example]).await;
    let pushed = notifications_to_push(total);
    let mut printed = Vec::new();
    push(&gateway, &pushed[..4]).await;
    for _ in 0..4 {
        printed.push(example.next_line(FINISH_TIMEOUT).await);
    }
    relay.cut();
    // Sent while the example is away (it waits about a second before reconnecting).
    push(&gateway, &pushed[4..7]).await;
    wait_accepted(&gateway, 2, &[&example]).await;
    push(&gateway, &pushed[7..]).await;
    while printed.len() < total {
        printed.push(example.next_line(FINISH_TIMEOUT).await);
    }
    for (i, (line, (topic, payload))) in printed.iter().zip(&pushed).enumerate() {
        let got: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("example printed a line that is not JSON ({e}): {line}"));
        let expected = json!({"seq": i + 1, "topic": topic, "payload": payload});
        assert_eq!(
            got,
            with_epoch(std::slice::from_ref(&got), &[expected])[0],
            "example line {i}; stderr:\n{}",
            example.stderr()
        );
    }
    let status = tokio::time::timeout(Duration::from_secs(15), example.child.wait())
        .await
        .expect("the example exits after --count notifications")
        .expect("wait for the example");
    assert!(status.success(), "example exited with {status}");
    let stderr = example.stderr();
    let lines_starting = |prefix: &str| stderr.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(lines_starting("connected ("), 2, "{stderr}");
    assert_eq!(lines_starting("disconnected ("), 1, "{stderr}");
    assert!(!stderr.contains("gap"), "{stderr}");
    assert_eq!(accepted_clients(&gateway), 2, "one reconnection expected");
}

/// lightningd sends its last notifications (peers disconnecting, ...) and then `shutdown`
/// in quick succession. Connected clients should get all of them, `shutdown` included,
/// before the plugin exits (docs/ARCHITECTURE.md: "`shutdown` is journaled first (clients
/// get it)").
async fn notifications_just_before_shutdown(clients: &[(Kind, &str)]) {
    let gateway = Gateway::start().await;
    let burst = notifications_to_push(20);
    let mut running = Vec::new();
    for &(kind, mode) in clients {
        let client = Client::compat(
            kind,
            mode,
            &gateway.base,
            &gateway.rune,
            burst.len() + 1,
            Value::Null,
        );
        running.push((kind, client));
    }
    for (_, client) in &mut running {
        client.connected().await;
    }
    let waited: Vec<&Client> = running.iter().map(|(_, client)| client).collect();
    wait_accepted(&gateway, running.len(), &waited).await;
    push(&gateway, &burst).await;
    assert!(gateway.node.shutdown().await);
    let mut expected: Vec<Value> = burst.iter().map(|(t, p)| message_of(t, p)).collect();
    expected.push(json!({"shutdown": {}}));
    let mut failures = Vec::new();
    for (kind, client) in running {
        let name = client.name.clone();
        let summary = client.summary().await;
        let received = summary["messages"].as_array().cloned().unwrap_or_default();
        println!("{name}: got {} of {}", received.len(), expected.len());
        if received.len() != expected.len() {
            failures.push(format!(
                "{name}: got {} of the {} notifications sent before and with `shutdown` \
                 (disconnected: {})",
                received.len(),
                expected.len(),
                summary["disconnected"]
            ));
            continue;
        }
        assert_same_sequence(&name, kind, &received, &expected);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn notifications_just_before_shutdown_reach_websocket_clients() {
    require_clients();
    notifications_just_before_shutdown(&[(Kind::Python, "websocket"), (Kind::Node, "websocket")])
        .await;
}

/// Fails intermittently: a long-polling client needs one more HTTP request to fetch what was
/// queued for it after its previous poll, and the plugin may already have stopped listening.
#[tokio::test]
#[ignore = "needs python-socketio and node (tests/clients)"]
async fn notifications_just_before_shutdown_reach_long_polling_clients() {
    require_clients();
    notifications_just_before_shutdown(&[
        (Kind::Python, "polling-only"),
        (Kind::Node, "polling-only"),
    ])
    .await;
}
