//! Hardening (issue 14), against the mock lightningd: methods no REST request may call
//! (ours that change routing, lightningd's connection-scoped ones), lightningd's id-less
//! notifications on the RPC connection, `list-methods` without a `help` per request, a 503
//! that names no path, and SSE with a topic it cannot carry.

use mock_lightningd::gateway::{json_of, Gateway};
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

/// Waits for the plugin's startup `help` call, then returns the number of calls lightningd
/// has seen: calls after that index are the test's.
async fn settled(gateway: &Gateway) -> usize {
    let start = Instant::now();
    while gateway.node.calls_of("help").is_empty() {
        assert!(start.elapsed() < WAIT, "the plugin never called help");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway.node.calls().len()
}

fn calls_since(gateway: &Gateway, mark: usize) -> Vec<RecordedCall> {
    gateway.node.calls().split_off(mark)
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
    let mark = settled(&gateway).await;
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
    let calls = calls_since(&gateway, mark);
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
    settled(&gateway).await;
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
    let calls = calls_since(&gateway, mark);
    assert!(calls.is_empty(), "reached lightningd: {calls:?}");
    assert_eq!(registered_paths(&gateway).await, before);
}

// ---------------------------------------------------------------------------------------
// Item 5: connection-scoped commands, and lightningd's notifications on the connection.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_scoped_commands_are_refused_and_reach_nothing() {
    let gateway = Gateway::start().await;
    let mark = settled(&gateway).await;
    for (method, params) in [
        ("notifications", json!({"enable": true})),
        ("deprecations", json!({"enable": false})),
        ("batching", json!({"enable": true})),
    ] {
        let (status, body) = post(&gateway, &format!("/v1/{method}"), &params).await;
        assert_eq!(status, 403, "{method}: {body}");
        assert_eq!(body, connection_scoped(method), "{method}");
    }
    let calls = calls_since(&gateway, mark);
    assert!(calls.is_empty(), "reached lightningd: {calls:?}");
    // Other methods still go through.
    let (status, body) = json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn idless_notifications_on_the_rpc_connection_break_no_call_in_flight() {
    let gateway = Gateway::start().await;
    settled(&gateway).await;
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
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let http = gateway.http.clone();
            let url = gateway.url("/v1/getinfo");
            let rune = gateway.rune.clone();
            tokio::spawn(async move {
                // Spread over the round: some are in flight while others are answered.
                tokio::time::sleep(Duration::from_millis(i * 7)).await;
                let response = http.post(url).header("Rune", rune).send().await.unwrap();
                text_of(response).await
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 201, "call {i}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["id"].is_string(), "call {i}: {body}");
    }
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
    settled(&gateway).await;
    let helps = gateway.node.calls_of("help").len();
    let help = gateway.lightningd_call("help", json!({})).await;
    let commands: Vec<&str> = help["result"]["help"]
        .as_array()
        .expect("help lists commands")
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    let expected = list_methods_page(&commands);
    let helps = helps + 1;

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
    settled(&gateway).await;
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
    assert_eq!(id.as_deref(), Some("4"), "the three before it were skipped");
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
