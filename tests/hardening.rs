//! Hardening (issue 14), against the mock lightningd: methods no REST request may call
//! (ours that change routing, lightningd's connection-scoped ones), lightningd's id-less
//! notifications on the RPC connection, `list-methods` without a `help` per request, a 503
//! that names no path, and SSE with a topic it cannot carry.

use mock_lightningd::gateway::{json_of, Gateway};
use mock_lightningd::hostile_bodies::{AttackShape, BodyAttack};
use mock_lightningd::RecordedCall;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a test waits for something the plugin should do at once.
const WAIT: Duration = Duration::from_secs(5);

const REGISTER_FOR_PLUGINS: &str =
    r#"{"code":-32600,"message":"clnrest-register-path is for plugins, not REST clients"}"#;
const UNREACHABLE: &str = r#"{"code":-32603,"message":"lightningd is unreachable"}"#;

fn connection_scoped(method: &str) -> String {
    json!({
        "code": -32600,
        "message": format!(
            "{method} is not available through REST: it changes the state of the lightningd \
             connection, which clnrest shares between all clients"
        ),
    })
    .to_string()
}

/// Status and body text.
async fn text_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.expect("a response body"))
}

/// `POST <path>` with the unrestricted rune and a JSON body.
async fn post(gateway: &Gateway, path: &str, body: &Value) -> (u16, String) {
    let response = gateway
        .http
        .post(gateway.url(path))
        .header("Rune", &gateway.rune)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    text_of(response).await
}

async fn registered_paths(gateway: &Gateway) -> Value {
    gateway
        .lightningd_call("clnrest-list-paths", json!({}))
        .await["result"]["paths"]
        .clone()
}

// ---------------------------------------------------------------------------------------
// Item 1: our registration method is for plugins.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn register_path_through_rest_is_refused_and_reaches_nothing() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    // What an attacker with a rune allowing only this method would register.
    let takeover = json!({
        "path": "v1/free-withdraw", "rpc_method": "withdraw",
        "http_method": "GET", "rune_required": false,
    });
    for path in ["/v1/clnrest-register-path", "/v1/clnrest%2Dregister%2Dpath"] {
        let (status, body) = post(&gateway, path, &takeover).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body, REGISTER_FOR_PLUGINS, "{path}");
    }
    // Refused before the rune is even looked at.
    let response = gateway
        .post("clnrest-register-path")
        .json(&takeover)
        .send()
        .await
        .unwrap();
    assert_eq!(text_of(response).await, (403, REGISTER_FOR_PLUGINS.into()));
    let calls = gateway.calls_since(mark);
    assert!(calls.is_empty(), "reached lightningd: {calls:?}");

    assert_eq!(registered_paths(&gateway).await, json!([]));
    let response = gateway
        .http
        .get(gateway.url("/v1/free-withdraw"))
        .send()
        .await
        .unwrap();
    // Not a registered route: GET on /v1/<method>.
    assert_eq!(response.status(), 405);
    gateway.node.assert_no_violations();
}

#[tokio::test]
async fn a_registered_route_calling_register_path_is_refused() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    // Another plugin (through lightningd) registers a route whose method is ours.
    let answer = gateway
        .lightningd_call(
            "clnrest-register-path",
            json!({"path": "v1/relay/{path}", "rpc_method": "clnrest-register-path"}),
        )
        .await;
    assert_eq!(answer["result"], json!({}), "{answer}");
    let before = registered_paths(&gateway).await;
    let mark = gateway.node.calls().len();

    let (status, body) = post(
        &gateway,
        "/v1/relay/v1x",
        &json!({"rpc_method": "withdraw", "http_method": "GET", "rune_required": false}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body, REGISTER_FOR_PLUGINS);
    let calls = gateway.calls_since(mark);
    assert!(calls.is_empty(), "reached lightningd: {calls:?}");
    assert_eq!(registered_paths(&gateway).await, before);
}

// ---------------------------------------------------------------------------------------
// Item 5: connection-scoped commands, and lightningd's notifications on the connection.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_scoped_commands_are_refused_and_reach_nothing() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    for (method, params) in [
        ("notifications", json!({"enable": true})),
        ("deprecations", json!({"enable": false})),
        ("batching", json!({"enable": true})),
    ] {
        let (status, body) = post(&gateway, &format!("/v1/{method}"), &params).await;
        assert_eq!(status, 403, "{method}: {body}");
        assert_eq!(body, connection_scoped(method), "{method}");
    }
    let calls = gateway.calls_since(mark);
    assert!(calls.is_empty(), "reached lightningd: {calls:?}");
    // Other methods still go through.
    let (status, body) = json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn idless_notifications_on_the_rpc_connection_break_no_call_in_flight() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    // Every connection of the pool (4) opened: calls go round-robin over them.
    for _ in 0..4 {
        let (status, _) = json_of(gateway.call("getinfo", json!({})).await).await;
        assert_eq!(status, 201);
    }
    let connections = gateway.node.connections_accepted();

    // Calls overlap, and each answer comes after a `message` and a `progress` frame.
    gateway
        .node
        .faults()
        .set_delay("getinfo", Duration::from_millis(100));
    gateway.node.faults().notifications_before_replies(true);
    for (i, (status, body)) in staggered_getinfo(&gateway, 24, 7)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, 201, "call {i}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["id"].is_string(), "call {i}: {body}");
    }
    assert_connections_kept(&gateway, connections);
}

// ---------------------------------------------------------------------------------------
// Item 9: list-methods from the cached help.
// ---------------------------------------------------------------------------------------

/// The page list-methods serves for these usage strings.
fn list_methods_page(commands: &[&str]) -> String {
    let separator = "-".repeat(80);
    commands
        .iter()
        .map(|c| {
            let escaped = c
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;");
            format!("Command: {escaped}\n{separator}\n")
        })
        .collect()
}

async fn list_methods(gateway: &Gateway) -> String {
    let response = gateway
        .http
        .get(gateway.url("/v1/list-methods"))
        .send()
        .await
        .unwrap();
    let (status, page) = text_of(response).await;
    assert_eq!(status, 200, "{page}");
    page
}

async fn wait_for_helps(gateway: &Gateway, count: usize) {
    let start = Instant::now();
    while gateway.node.calls_of("help").len() < count {
        assert!(start.elapsed() < WAIT, "help was not called again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn list_methods_calls_no_help_per_request() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let help = gateway.lightningd_call("help", json!({})).await;
    let commands: Vec<&str> = help["result"]["help"]
        .as_array()
        .expect("help lists commands")
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    let expected = list_methods_page(&commands);
    // The mock records the plugin's startup `help` when it receives it, a moment before the
    // plugin has the answer: a request in that moment calls `help` itself (on a busy machine
    // it happened). After one request the plugin has it either way.
    assert_eq!(list_methods(&gateway).await, expected, "first request");
    let helps = gateway.node.calls_of("help").len();

    for i in 0..5 {
        assert_eq!(list_methods(&gateway).await, expected, "request {i}");
    }
    assert_eq!(
        gateway.node.calls_of("help").len(),
        helps,
        "help per request"
    );

    // A plugin started: help is read again once, for the API document and list-methods.
    let started = mock_lightningd::fixtures::load_fixture("notifications/plugin_started.json")
        ["params"]["plugin_started"]
        .clone();
    assert!(gateway.node.notify("plugin_started", started).await);
    wait_for_helps(&gateway, helps + 1).await;
    // Let the refresh land before reading.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..3 {
        assert_eq!(list_methods(&gateway).await, expected, "after, request {i}");
    }
    assert_eq!(gateway.node.calls_of("help").len(), helps + 1);
}

// ---------------------------------------------------------------------------------------
// Item 14: the 503 names no path.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_lightningd_answers_without_a_path() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    gateway.node.faults().refuse_connections(true);
    gateway.node.faults().drop_connections();
    let dir = gateway.node.lightning_dir().to_string_lossy().into_owned();

    let (status, body) = post(&gateway, "/v1/getinfo", &json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, UNREACHABLE);
    // Same on the SSE stream's rune check.
    let response = gateway
        .http
        .get(gateway.url("/v1/notifications"))
        .header("Rune", &gateway.rune)
        .send()
        .await
        .unwrap();
    assert_eq!(text_of(response).await, (503, UNREACHABLE.into()));
    assert!(!body.contains(&dir) && !body.contains("lightning-rpc"));

    // The operator still learns where: the reason, with the path, is in the debug log.
    let logged = gateway
        .node
        .wait_for_log(
            |l| l.message.contains(&format!("{dir}/lightning-rpc")),
            WAIT,
        )
        .await;
    assert!(logged.is_some(), "{:?}", gateway.node.logs());
}

// ---------------------------------------------------------------------------------------
// Item 11: a topic SSE cannot carry.
// ---------------------------------------------------------------------------------------

/// One event's fields, from an SSE block.
fn parse_event(block: &str) -> Option<(Option<String>, Option<String>, String)> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        match field {
            "id" => id = Some(value),
            "event" => event = Some(value),
            "data" => data.push(value),
            _ => {}
        }
    }
    (id.is_some() || event.is_some() || !data.is_empty()).then(|| (id, event, data.join("\n")))
}

#[tokio::test]
async fn sse_skips_a_topic_it_cannot_carry_and_goes_on() {
    let gateway = Gateway::start().await;
    let response = gateway
        .http
        .get(gateway.url("/v1/notifications"))
        .header("Rune", &gateway.rune)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response;

    for topic in ["bad\r\ntopic", "bad\ntopic", "bad\rtopic"] {
        gateway
            .node
            .notify_raw(json!({"jsonrpc": "2.0", "method": topic, "params": {topic: {"x": 1}}}))
            .await;
    }
    let payload = json!({"msat": 1000, "label": "after", "preimage": "00"});
    assert!(
        gateway
            .node
            .notify("invoice_creation", payload.clone())
            .await,
        "the plugin subscribes to invoice_creation"
    );

    let mut text = String::new();
    let deadline = Instant::now() + WAIT;
    let event = loop {
        if let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if let Some(event) = parse_event(&block) {
                break event;
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(other) => panic!("the stream ended: {other:?}; so far {text:?}"),
            Err(_) => panic!("no event within {WAIT:?}; so far {text:?}"),
        }
    };
    let (id, name, data) = event;
    // `<epoch>-<seq>`: the three before it were skipped.
    let seq = id
        .as_deref()
        .and_then(|id| id.rsplit_once('-'))
        .map(|(_, seq)| seq);
    assert_eq!(seq, Some("4"), "the three before it were skipped: {id:?}");
    assert_eq!(name.as_deref(), Some("invoice_creation"));
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap(), payload);
    let skipped = gateway
        .node
        .wait_for_log(|l| l.message.contains("skipping notification 1"), WAIT)
        .await;
    assert!(skipped.is_some(), "{:?}", gateway.node.logs());
    let panics: Vec<_> = gateway
        .node
        .logs()
        .into_iter()
        .filter(|l| l.message.contains("panic"))
        .collect();
    assert!(panics.is_empty(), "{panics:?}");
    gateway.node.assert_no_violations();
}

// ---------------------------------------------------------------------------------------
// Item 13: a reply with blank lines inside.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn pretty_printed_replies_with_blank_lines_break_no_call_in_flight() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    for _ in 0..4 {
        let (status, _) = json_of(gateway.call("getinfo", json!({})).await).await;
        assert_eq!(status, 201);
    }
    let connections = gateway.node.connections_accepted();
    let (_, expected) = json_of(gateway.call("getinfo", json!({})).await).await;

    // Every answer is pretty-printed with a blank line after each line, as lightningd forwards
    // a pretty-printing plugin's reply; calls overlap on each of the pool's connections.
    gateway
        .node
        .faults()
        .set_delay("getinfo", Duration::from_millis(60));
    gateway.node.faults().pretty_replies(true);
    for (i, (status, body)) in staggered_getinfo(&gateway, 32, 3)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, 201, "call {i}: {body}");
        assert!(body.contains("\n\n"), "lightningd's result bytes, as sent");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, expected, "call {i}");
    }
    assert_connections_kept(&gateway, connections);
}

// ---------------------------------------------------------------------------------------
// Item 3: a route without a rune takes its path captures and nothing else.
// ---------------------------------------------------------------------------------------

const OPEN_ROUTE_PARAMS: &str = "{\"code\":-32602,\"message\":\"Route v1/open/{key} needs no \
rune, so it takes nothing but its path captures: send no request body and no query \
parameters\"}";

/// Writes `request` on a new connection and reads until the server closes it.
async fn raw_http(gateway: &Gateway, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// `GET <path>` without a rune, then the calls lightningd saw for it.
async fn get_open(
    gateway: &Gateway,
    path: &str,
    body: Option<&str>,
) -> ((u16, String), Vec<RecordedCall>) {
    let mark = gateway.node.calls().len();
    let mut request = gateway.http.get(gateway.url(path));
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let answer = text_of(request.send().await.unwrap()).await;
    (answer, gateway.calls_since(mark))
}

#[tokio::test]
async fn a_route_without_a_rune_takes_no_body_and_no_query() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let answer = gateway
        .lightningd_call(
            "clnrest-register-path",
            json!({
                "path": "v1/open/{key}", "rpc_method": "listdatastore",
                "http_method": "GET", "rune_required": false,
            }),
        )
        .await;
    assert_eq!(answer["result"], json!({}), "{answer}");

    let ((status, body), calls) = get_open(&gateway, "/v1/open/project", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "listdatastore");
    assert_eq!(calls[0].params, json!({"key": "project"}));
    // An empty body (Content-Length: 0) and a bare `?` carry nothing.
    let ((status, body), _) = get_open(&gateway, "/v1/open/project?", Some("")).await;
    assert_eq!(status, 201, "{body}");

    for (path, body) in [
        ("/v1/open/project?key=other", None),
        ("/v1/open/project?mode=must-replace", None),
        ("/v1/open/project", Some(r#"{"key": ["other"]}"#)),
        ("/v1/open/project", Some(r#"{"anything": 1}"#)),
        ("/v1/open/project", Some("[]")),
        ("/v1/open/project?x", Some("{}")),
    ] {
        let ((status, text), calls) = get_open(&gateway, path, body).await;
        assert_eq!(status, 400, "{path} {body:?}: {text}");
        assert_eq!(text, OPEN_ROUTE_PARAMS, "{path} {body:?}");
        assert!(
            calls.is_empty(),
            "{path} {body:?} reached lightningd: {calls:?}"
        );
    }
    // The same refusal over a chunked body (no Content-Length).
    let mark = gateway.node.calls().len();
    let answer = raw_http(
        &gateway,
        "GET /v1/open/project HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n7\r\n{\"x\":1}\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with(OPEN_ROUTE_PARAMS), "{answer}");
    assert!(gateway.calls_since(mark).is_empty());
    // Routes with a rune keep taking a body.
    let (status, body) = post(&gateway, "/v1/listdatastore", &json!({"key": "k"})).await;
    assert_eq!(status, 201, "{body}");
}

// ---------------------------------------------------------------------------------------
// Item 4: percent-encoded paths are decoded once, before matching.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn encoded_paths_reach_the_route_their_decoded_path_names() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let getinfo_rune = gateway.node.create_rune(json!([["method=getinfo"]]));

    // The built-in route: the method is decoded once, and checkrune sees it decoded.
    let mark = gateway.node.calls().len();
    let response = gateway
        .http
        .post(gateway.url("/v1/get%69nfo"))
        .header("Rune", &getinfo_rune)
        .send()
        .await
        .unwrap();
    let (status, body) = text_of(response).await;
    assert_eq!(status, 201, "{body}");
    let calls = gateway.calls_since(mark);
    let methods: Vec<_> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["checkrune", "getinfo"]);
    assert_eq!(calls[0].params["method"], "getinfo");
    // Decoded once only: %2569 is "%69", not "i".
    let (status, body) = post(&gateway, "/v1/get%2569nfo", &json!({})).await;
    assert_eq!(status, 404, "{body}");
    // Built-in GET routes too.
    let response = gateway
        .http
        .get(gateway.url("/v1/list%2Dmethods"))
        .send()
        .await
        .unwrap();
    let (status, page) = text_of(response).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.starts_with("Command: "), "{page}");

    // A registered literal cannot be dodged by encoding it.
    for registration in [
        json!({"path": "v1/getinfo", "rpc_method": "listdatastore"}),
        json!({
            "path": "v1/store/{key}", "rpc_method": "listdatastore",
            "http_method": "GET", "rune_required": false,
        }),
    ] {
        let answer = gateway
            .lightningd_call("clnrest-register-path", registration)
            .await;
        assert_eq!(answer["result"], json!({}), "{answer}");
    }
    for path in [
        "/v1/getinfo",
        "/v1/get%69nfo",
        "/%76%31/GET%69nfo/../getinfo",
    ] {
        let mark = gateway.node.calls().len();
        let (status, body) = post(&gateway, path, &json!({})).await;
        let methods: Vec<_> = gateway
            .calls_since(mark)
            .into_iter()
            .map(|c| c.method)
            .collect();
        assert_eq!(status, 201, "{path}: {body}");
        assert_eq!(methods, ["checkrune", "listdatastore"], "{path}");
    }

    // An encoded slash stays inside its segment: part of a capture, never a new segment.
    for (path, expected) in [
        ("/v1/store/a%2Fb", Some("a/b")),
        ("/v1/st%6Fre/a%2fb%20c", Some("a/b c")),
        ("/v1/store/%2569", Some("%69")),
        ("/v1/store%2Fa", None),
    ] {
        let mark = gateway.node.calls().len();
        let response = gateway.http.get(gateway.url(path)).send().await.unwrap();
        let (status, body) = text_of(response).await;
        let calls = gateway.calls_since(mark);
        match expected {
            Some(key) => {
                assert_eq!(status, 201, "{path}: {body}");
                assert_eq!(calls.len(), 1, "{path}: {calls:?}");
                assert_eq!(calls[0].params, json!({"key": key}), "{path}");
            }
            None => {
                assert_eq!(status, 405, "{path}: GET on /v1/<method>: {body}");
                assert!(calls.is_empty(), "{path}: {calls:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Item 7: bodies before authorization cost bounded memory and time.
// ---------------------------------------------------------------------------------------

const BODY_TIMEOUT: &str = "{\"code\":-32600,\"message\":\"Request timeout: the request body \
must arrive at 16 KiB/s or faster after the first 5 s, and whole within 30 s\"}";

#[tokio::test]
async fn a_stalled_body_gets_408_after_the_grace_period() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/getinfo HTTP/1.1\r\nHost: x\r\nRune: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"a\": 1,",
        gateway.rune
    );
    let start = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).ends_with('}') {
        let n = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut chunk))
            .await
            .expect("an answer within 15 s")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&chunk[..n]);
    }
    let elapsed = start.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.ends_with(BODY_TIMEOUT), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(4900) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
    let calls = gateway.calls_since(mark);
    assert!(calls.is_empty(), "reached lightningd: {calls:?}");
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_with_a_garbage_rune_keep_the_plugin_small_and_serving() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let pid = gateway.node.pid().expect("the plugin's pid");
    // HTTP/1.1: each client its own connection; HTTP/2: two connections, four streams each.
    let shape = AttackShape {
        http1_clients: 8,
        http2_connections: 2,
        streams_per_connection: 4,
    };
    let attack = BodyAttack::start(gateway.port, shape)
        .await
        .expect("the attack starts");
    // Meanwhile a normal client keeps being served.
    let start = Instant::now();
    let (mut served, mut slowest) = (0, Duration::ZERO);
    while start.elapsed() < Duration::from_secs(6) {
        let asked = Instant::now();
        let response = tokio::time::timeout(WAIT, gateway.call("getinfo", json!({})))
            .await
            .expect("getinfo answered within 5 s during the attack");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "{body}");
        slowest = slowest.max(asked.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refusals = attack
        .stop()
        .await
        .expect("every attacking request refused");
    assert_eq!(
        refusals.dropped, 0,
        "answers lost: {:?}",
        refusals.first_drop
    );
    let attacks = refusals.total();
    let peak_mib = peak_rss_kib(pid) / 1024;
    eprintln!(
        "{attacks} attacking requests, {served} getinfo served (slowest {slowest:?}), \
         plugin peak RSS {peak_mib} MiB"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a getinfo took {slowest:?}"
    );
    assert!(
        attacks >= 16,
        "only {attacks} attacking requests were answered"
    );
    assert!(peak_mib < 256, "plugin peak RSS {peak_mib} MiB");
    let checkruns: Vec<_> = gateway
        .node
        .calls_of("checkrune")
        .into_iter()
        .filter(|c| c.params["rune"] == "garbage")
        .collect();
    assert!(
        checkruns.is_empty(),
        "refused before checkrune: {}",
        checkruns.len()
    );
}

/// `count` `POST /v1/getinfo` calls, the i-th started `i * spacing_ms` ms after the first, so
/// that some are in flight while others are answered; their statuses and bodies in order.
async fn staggered_getinfo(gateway: &Gateway, count: u64, spacing_ms: u64) -> Vec<(u16, String)> {
    let calls: Vec<_> = (0..count)
        .map(|i| {
            let http = gateway.http.clone();
            let url = gateway.url("/v1/getinfo");
            let rune = gateway.rune.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i * spacing_ms)).await;
                let response = http.post(url).header("Rune", rune).send().await.unwrap();
                text_of(response).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

/// Asserts the plugin still uses the `connections` lightningd accepted before: none was
/// given up (and logged as lost) and reopened.
fn assert_connections_kept(gateway: &Gateway, connections: u64) {
    assert_eq!(
        gateway.node.connections_accepted(),
        connections,
        "a connection was given up and reopened"
    );
    let lost: Vec<_> = gateway
        .node
        .logs()
        .into_iter()
        .filter(|l| l.message.contains("connection lost"))
        .collect();
    assert!(lost.is_empty(), "{lost:?}");
}
