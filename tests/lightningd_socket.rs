//! Talking to lightningd over `lightning-rpc` when it is slow, gone, or broken: answers out
//! of order, 503 when the socket is unreachable or breaks (quickly, and recovering on the
//! next request), and HTTP clients that hang up mid-call.

use mock_lightningd::fixtures::fixtures;
use mock_lightningd::gateway::{json_of, Gateway};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// How long a request may take when lightningd is unreachable ("quickly, no hang").
const QUICK: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn wait_until(gateway: &Gateway, what: &str, done: impl Fn(&Gateway) -> bool) {
    let start = Instant::now();
    while !done(gateway) {
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}; calls: {:?}",
            gateway.node.calls()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn expected_getinfo(gateway: &Gateway) -> Value {
    let mut result = fixtures().getinfo_result.clone();
    result["lightning-dir"] = json!(gateway.node.lightning_dir().to_string_lossy());
    result["blockheight"] = json!(0);
    result
}

/// A request builder for `POST /v1/<method>` with the rune and JSON params, to be sent
/// from a spawned task.
fn request(gateway: &Gateway, method: &str, params: Value) -> reqwest::RequestBuilder {
    gateway
        .post(method)
        .header("Rune", &gateway.rune)
        .json(&params)
}

/// getinfo through the plugin must work: 201 and the result.
async fn assert_getinfo_works(gateway: &Gateway, context: &str) {
    let (status, body) = json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201, "{context}: {body}");
    assert_eq!(body, expected_getinfo(gateway), "{context}");
}

/// Asserts a 503 answer whose JSON body says lightningd is unreachable.
async fn assert_unreachable(response: reqwest::Response, context: &str) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    assert_eq!(status, 503, "{context}: {text}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{context}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}"));
    assert_eq!(body["code"], -32603, "{context}: {text}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("lightningd is unreachable"),
        "{context}: message {message:?}"
    );
}

/// Timed `POST /v1/getinfo`.
async fn timed_getinfo(gateway: &Gateway) -> (reqwest::Response, Duration) {
    let start = Instant::now();
    let response = request(gateway, "getinfo", json!({}))
        .send()
        .await
        .expect("the plugin answers");
    (response, start.elapsed())
}

/// The plugin is still running, broke no protocol rule, and never panicked.
async fn assert_plugin_healthy(gateway: &Gateway) {
    assert!(
        gateway
            .node
            .wait_exit(Duration::from_millis(20))
            .await
            .is_none(),
        "the plugin exited; stderr:\n{}",
        gateway.node.plugin_stderr().join("\n")
    );
    gateway.node.assert_no_violations();
    let stderr = gateway.node.plugin_stderr();
    assert!(
        !stderr.iter().any(|l| l.contains("panicked")),
        "the plugin panicked:\n{}",
        stderr.join("\n")
    );
    let panics: Vec<_> = gateway
        .node
        .logs()
        .into_iter()
        .filter(|l| l.message.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "panic logged: {panics:?}");
}

fn error_logs(gateway: &Gateway) -> Vec<String> {
    gateway
        .node
        .logs()
        .into_iter()
        .filter(|l| l.level == "error" || l.level == "broken")
        .map(|l| format!("[{}] {}", l.level, l.message))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Out-of-order answers
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_call_in_flight_does_not_delay_other_calls() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    // The mock's lone node never reaches block 1000: this call takes its full timeout.
    let slow = tokio::spawn(
        request(
            &gateway,
            "waitblockheight",
            json!({"blockheight": 1000, "timeout": 4}),
        )
        .send(),
    );
    let started = Instant::now();
    wait_until(&gateway, "waitblockheight to reach lightningd", |g| {
        !g.node.calls_of("waitblockheight").is_empty()
    })
    .await;
    let slow_connection = gateway.node.calls_of("waitblockheight")[0].connection_id;
    let mark = gateway.node.calls().len();

    // Enough requests to use every pooled connection, the slow call's one included.
    for i in 0..8 {
        let (response, took) = timed_getinfo(&gateway).await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "getinfo {i}: {body}");
        assert!(
            took < Duration::from_millis(1000),
            "getinfo {i} took {took:?} while waitblockheight was in flight"
        );
    }
    assert!(!slow.is_finished(), "the slow call is still in flight");
    let later = gateway.node.calls().split_off(mark);
    assert!(
        later.iter().any(|c| c.connection_id == slow_connection),
        "some call shared the slow call's connection (answers out of order): {later:?}"
    );

    let response = slow.await.unwrap().expect("the slow call is answered");
    assert!(started.elapsed() >= Duration::from_millis(3900));
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, body),
        (500, json!({"code": 2000, "message": "Timed out."}))
    );
    assert_plugin_healthy(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delayed_method_does_not_delay_other_methods() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    gateway
        .node
        .faults()
        .set_delay("listinvoices", Duration::from_secs(2));
    let slow = tokio::spawn(request(&gateway, "listinvoices", json!({})).send());
    let started = Instant::now();
    wait_until(&gateway, "listinvoices to reach lightningd", |g| {
        !g.node.calls_of("listinvoices").is_empty()
    })
    .await;
    let concurrent = (0..8).map(|_| async {
        let (response, took) = timed_getinfo(&gateway).await;
        (response.status().as_u16(), took)
    });
    for (status, took) in futures::future::join_all(concurrent).await {
        assert_eq!(status, 201);
        assert!(
            took < Duration::from_millis(1000),
            "getinfo took {took:?} behind a slow listinvoices"
        );
    }
    assert!(!slow.is_finished());
    let (status, body) = json_of(slow.await.unwrap().unwrap()).await;
    assert_eq!((status, body), (201, json!({"invoices": []})));
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

// ---------------------------------------------------------------------------------------
// The socket is gone
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_lightningd_is_503_quickly_then_the_next_request_reconnects() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    assert_getinfo_works(&gateway, "before the fault").await;

    gateway.node.faults().refuse_connections(true);
    gateway.node.faults().drop_connections();
    for i in 0..6 {
        let (response, took) = timed_getinfo(&gateway).await;
        assert!(took < QUICK, "request {i} took {took:?}");
        assert_unreachable(response, &format!("request {i} while the socket is gone")).await;
    }
    // list-methods is served from the `help` read at startup: it needs no lightningd.
    let response = gateway
        .http
        .get(gateway.url("/v1/list-methods"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "list-methods while the socket is gone"
    );
    let accepted = gateway.node.connections_accepted();

    gateway.node.faults().refuse_connections(false);
    assert_getinfo_works(&gateway, "the first request after the socket is back").await;
    assert!(gateway.node.connections_accepted() > accepted);
    for i in 0..8 {
        assert_getinfo_works(&gateway, &format!("request {i} after the socket is back")).await;
    }
    assert_plugin_healthy(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_when_the_socket_closes_are_503_at_once() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    gateway
        .node
        .faults()
        .set_delay("getinfo", Duration::from_secs(8));
    let in_flight = tokio::spawn(spawnable_getinfo(&gateway));
    wait_until(&gateway, "getinfo to reach lightningd", |g| {
        !g.node.calls_of("getinfo").is_empty()
    })
    .await;
    let dropped_at = Instant::now();
    gateway.node.faults().drop_connections();
    let response = in_flight.await.unwrap();
    assert!(
        dropped_at.elapsed() < QUICK,
        "the call waited {:?} after its connection closed",
        dropped_at.elapsed()
    );
    assert_unreachable(response, "the call whose connection closed").await;

    gateway.node.faults().set_delay("getinfo", Duration::ZERO);
    assert_getinfo_works(&gateway, "after the connections were dropped").await;
    assert_plugin_healthy(&gateway).await;
}

fn spawnable_getinfo(
    gateway: &Gateway,
) -> impl std::future::Future<Output = reqwest::Response> + Send + 'static {
    let request = request(gateway, "getinfo", json!({}));
    async move { request.send().await.expect("the plugin answers") }
}

// ---------------------------------------------------------------------------------------
// The socket breaks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_response_cut_in_the_middle_is_503_then_requests_work_again() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    assert_getinfo_works(&gateway, "before the fault").await;

    gateway.node.faults().close_mid_response(true);
    for i in 0..5 {
        let (response, took) = timed_getinfo(&gateway).await;
        assert!(took < QUICK, "request {i} took {took:?}");
        assert_unreachable(response, &format!("request {i} with responses cut")).await;
    }
    gateway.node.faults().close_mid_response(false);
    for i in 0..8 {
        assert_getinfo_works(&gateway, &format!("request {i} after the fault")).await;
    }
    assert_plugin_healthy(&gateway).await;
}

#[tokio::test]
async fn garbage_from_lightningd_is_503_then_requests_work_again() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    assert_getinfo_works(&gateway, "before the fault").await;

    gateway.node.faults().garbage_replies(true);
    for i in 0..5 {
        let (response, took) = timed_getinfo(&gateway).await;
        assert!(took < QUICK, "request {i} took {took:?}");
        assert_unreachable(response, &format!("request {i} with garbage replies")).await;
    }
    gateway.node.faults().garbage_replies(false);
    for i in 0..8 {
        assert_getinfo_works(&gateway, &format!("request {i} after the fault")).await;
    }
    assert_plugin_healthy(&gateway).await;
}

#[tokio::test]
async fn garbage_for_the_method_after_checkrune_is_503() {
    // checkrune answered normally, then the method's answer is garbage.
    let gateway = Gateway::start().await;
    gateway.settled().await;
    gateway
        .node
        .faults()
        .set_delay("getinfo", Duration::from_millis(300));
    let pending = tokio::spawn(spawnable_getinfo(&gateway));
    wait_until(&gateway, "getinfo to reach lightningd", |g| {
        !g.node.calls_of("getinfo").is_empty()
    })
    .await;
    gateway.node.faults().garbage_replies(true);
    assert_unreachable(pending.await.unwrap(), "getinfo answered with garbage").await;
    gateway.node.faults().garbage_replies(false);
    gateway.node.faults().set_delay("getinfo", Duration::ZERO);
    for i in 0..8 {
        assert_getinfo_works(&gateway, &format!("request {i} after the fault")).await;
    }
    assert_plugin_healthy(&gateway).await;
}

// ---------------------------------------------------------------------------------------
// HTTP clients that go away
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_hangs_up_during_a_slow_call_breaks_nothing() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let params = json!({"blockheight": 1000, "timeout": 1});
    let started = Instant::now();
    let result = impatient
        .post(gateway.url("/v1/waitblockheight"))
        .header("Rune", &gateway.rune)
        .json(&params)
        .send()
        .await;
    let error = result.expect_err("the client gives up before lightningd answers");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(gateway.node.calls_of("waitblockheight").len(), 1);

    // A patient client makes the same call; by the time it is answered, lightningd has sent
    // the late answer to the call nobody waits for any more.
    let (status, body) = json_of(
        request(&gateway, "waitblockheight", params)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (500, json!({"code": 2000, "message": "Timed out."}))
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    // Meanwhile and afterwards, everything works, over every pooled connection.
    for i in 0..8 {
        assert_getinfo_works(&gateway, &format!("request {i} after the client left")).await;
    }
    let concurrent =
        (0..16).map(|_| async { json_of(gateway.call("getinfo", json!({})).await).await });
    for (status, body) in futures::future::join_all(concurrent).await {
        assert_eq!(status, 201, "{body}");
    }
    assert!(
        gateway.node.connections_accepted() <= 4,
        "{} connections: the pool was rebuilt",
        gateway.node.connections_accepted()
    );
    assert_eq!(
        error_logs(&gateway),
        Vec::<String>::new(),
        "error-level logs"
    );
    assert_plugin_healthy(&gateway).await;
}
