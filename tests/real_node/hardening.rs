//! Hardening (issue 14) against a real lightningd: the methods no REST request may call,
//! `clnrest-register-path` (ours, for plugins) and lightningd's connection-scoped
//! `notifications`, `deprecations` and `batching`, are refused before `checkrune`: with a
//! `rate=1` rune, refusing them spends nothing, and nothing is registered or changed.
//!
//! A plugin's reply that lightningd forwards pretty-printed, with blank lines inside, is one
//! answer, and the calls in flight beside it on the same connections all succeed.

use crate::node::{test_plugin, NodeConfig, RealNode};
use crate::support::{block_on, client, json_of};
use crate::Test;
use serde_json::{json, Value};
use std::time::Duration;

pub const TESTS: &[Test] = &[
    (
        "hardening::methods_rest_never_calls_are_refused_before_checkrune",
        methods_rest_never_calls_are_refused_before_checkrune,
    ),
    (
        "hardening::pretty_printed_plugin_replies_break_no_call_in_flight",
        pretty_printed_plugin_replies_break_no_call_in_flight,
    ),
];

fn methods_rest_never_calls_are_refused_before_checkrune() {
    let node = RealNode::start_http();
    // One successful checkrune a minute: any refused request that reached checkrune would
    // spend it, and the getinfo at the end would be refused "too soon".
    let rune = node.create_rune(json!([["rate=1"]]));
    let connection_scoped = |method: &str| {
        json!({
            "code": -32600,
            "message": format!(
                "{method} is not available through REST: it changes the state of the \
                 lightningd connection, which clnrest shares between all clients"
            ),
        })
    };
    let refusals: Vec<(&str, Value, Value)> = vec![
        (
            "clnrest-register-path",
            json!({
                "path": "v1/free-withdraw", "rpc_method": "withdraw",
                "http_method": "GET", "rune_required": false,
            }),
            json!({
                "code": -32600,
                "message": "clnrest-register-path is for plugins, not REST clients",
            }),
        ),
        (
            "notifications",
            json!({"enable": true}),
            connection_scoped("notifications"),
        ),
        (
            "deprecations",
            json!({"enable": false}),
            connection_scoped("deprecations"),
        ),
        (
            "batching",
            json!({"enable": true}),
            connection_scoped("batching"),
        ),
    ];
    block_on(async {
        let http = client();
        for (method, params, expected) in &refusals {
            let response = http
                .post(node.url(&format!("/v1/{method}")))
                .header("Rune", &rune)
                .json(params)
                .send()
                .await
                .expect("an answer");
            let (status, body) = json_of(response).await;
            assert_eq!(status, 403, "{method}: {body}");
            assert_eq!(&body, expected, "{method}");
        }
        // Nothing was registered.
        assert_eq!(
            node.call("clnrest-list-paths", json!({}))["paths"],
            json!([])
        );
        let response = http
            .get(node.url("/v1/free-withdraw"))
            .send()
            .await
            .expect("an answer");
        assert_ne!(response.status(), 201);
        // The rune's one call a minute is still there.
        let response = http
            .post(node.url("/v1/getinfo"))
            .header("Rune", &rune)
            .send()
            .await
            .expect("an answer");
        let (status, body) = json_of(response).await;
        assert_eq!(
            status, 201,
            "checkrune was spent by a refused request: {body}"
        );
        assert!(body["id"].is_string(), "{body}");
    });
}

/// One call on `lightning-rpc`, the answer's text as lightningd wrote it (read until a
/// complete JSON value has arrived).
fn raw_answer(rpc_path: &std::path::Path, method: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(rpc_path).expect("lightning-rpc");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
    stream.write_all(request.to_string().as_bytes()).unwrap();
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).expect("an answer");
        assert!(n > 0, "lightning-rpc closed");
        text.extend_from_slice(&chunk[..n]);
        let mut values = serde_json::Deserializer::from_slice(&text).into_iter::<Value>();
        if let Some(Ok(_)) = values.next() {
            return String::from_utf8(text).expect("UTF-8");
        }
    }
}

fn pretty_printed_plugin_replies_break_no_call_in_flight() {
    let mut config = NodeConfig::http();
    config.extra_plugins.push(test_plugin("route_plugin.py"));
    let node = RealNode::start(config);
    assert!(
        node.wait_log("registered v1/echo/{name}", Duration::from_secs(15)),
        "the test plugin did not start:\n{}",
        node.log_tail(30)
    );
    // lightningd passes the plugin's text on as it was written: "\n\n" inside the answer.
    let raw = raw_answer(&node.rpc_path, "route-pretty");
    let end = raw.rfind('}').expect("an object");
    assert!(raw[..end].contains("\n\n"), "{raw:?}");
    let rune = node.create_rune(Value::Null);
    block_on(async {
        let http = client();
        // Pretty answers, each late, beside getinfo calls on the plugin's four connections.
        let calls: Vec<_> = (0..24u64)
            .map(|i| {
                let http = http.clone();
                let rune = rune.clone();
                let (method, params) = if i % 2 == 0 {
                    ("route-pretty", json!({"sleep_ms": 50 + i * 5}))
                } else {
                    ("getinfo", json!({}))
                };
                let url = node.url(&format!("/v1/{method}"));
                tokio::spawn(async move {
                    let response = http
                        .post(url)
                        .header("Rune", rune)
                        .json(&params)
                        .send()
                        .await
                        .expect("an answer");
                    (method, params, json_of(response).await)
                })
            })
            .collect();
        for call in calls {
            let (method, params, (status, body)) = call.await.unwrap();
            assert_eq!(status, 201, "{method}: {body}");
            if method == "route-pretty" {
                assert_eq!(
                    body,
                    json!({
                        "pretty": params,
                        "lines": ["one", "two\n\nthree", "}{"],
                        "nested": {"empty": {}, "list": [[], [1, 2]]},
                    })
                );
            } else {
                assert!(body["id"].is_string(), "{body}");
            }
        }
    });
    assert!(
        !node.log().contains("connection lost"),
        "{}",
        node.log_tail(30)
    );
}
