//! Hardening (issue 14) against a real lightningd: the methods no REST request may call,
//! `clnrest-register-path` (ours, for plugins) and lightningd's connection-scoped
//! `notifications`, `deprecations` and `batching`, are refused before `checkrune`: with a
//! `rate=1` rune, refusing them spends nothing, and nothing is registered or changed.

use crate::node::RealNode;
use crate::support::{block_on, client, json_of};
use crate::Test;
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[(
    "hardening::methods_rest_never_calls_are_refused_before_checkrune",
    methods_rest_never_calls_are_refused_before_checkrune,
)];

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
