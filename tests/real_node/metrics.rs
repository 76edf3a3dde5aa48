//! `GET /metrics` on a real node: runes made by the real `createrune`, and the answer for each
//! is exactly what the real `checkrune` says about `listclnrest-metrics`.
//!
//! A `readonly` rune (`method^list|method^get|...`) is allowed: `listclnrest-metrics` starts
//! with `list`, so lightningd's own read-only restriction grants it, as it grants
//! `listclnrest-notifications`. A rune for another method is refused with lightningd's error.

use crate::node::RealNode;
use crate::support::{block_on, client, json_of};
use crate::Test;
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[(
    "metrics::scrapes_answer_what_checkrune_says",
    scrapes_answer_what_checkrune_says,
)];

/// `checkrune`'s verdict on `rune` for `listclnrest-metrics`: `Ok` or its error object.
fn checkrune(node: &RealNode, rune: &str) -> Result<(), Value> {
    node.rpc(
        "checkrune",
        json!({"rune": rune, "method": "listclnrest-metrics"}),
    )
    .map(|result| assert_eq!(result, json!({"valid": true})))
}

fn scrapes_answer_what_checkrune_says() {
    let node = RealNode::start_http();
    let metrics_only = node.create_rune(json!([["method=listclnrest-metrics"]]));
    let readonly = node.create_rune(json!("readonly"));
    let invoice_only = node.create_rune(json!([["method=invoice"]]));
    let unrestricted = node.create_rune(Value::Null);
    assert_eq!(checkrune(&node, &metrics_only), Ok(()));
    assert_eq!(checkrune(&node, &readonly), Ok(()), "readonly grants list*");
    let refusal = checkrune(&node, &invoice_only).expect_err("invoice-only is refused");

    block_on(async {
        let http = client();
        let metrics = node.url("/metrics");
        // One REST call first, so its series is there.
        let response = http
            .post(node.url("/v1/getinfo"))
            .header("Rune", &unrestricted)
            .send()
            .await
            .expect("POST /v1/getinfo");
        assert_eq!(response.status(), 201);

        for (name, rune) in [("metrics-only", &metrics_only), ("readonly", &readonly)] {
            for bearer in [false, true] {
                let request = if bearer {
                    http.get(&metrics)
                        .header("Authorization", format!("Bearer {rune}"))
                } else {
                    http.get(&metrics).header("Rune", rune)
                };
                let response = request.send().await.expect("GET /metrics");
                assert_eq!(response.status(), 200, "{name}, bearer: {bearer}");
                let text = response.text().await.expect("a body");
                // Real `help` names getinfo: it is its own label, not `other`.
                assert!(
                    text.contains(
                        "clnrest_http_requests_total{kind=\"rest\",method=\"getinfo\",status=\"201\"} 1\n"
                    ),
                    "{text}"
                );
                assert!(
                    text.contains(
                        "clnrest_lightningd_call_duration_seconds_count{method=\"checkrune\"}"
                    ),
                    "{text}"
                );
                let rss = text
                    .lines()
                    .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
                    .and_then(|v| v.parse::<f64>().ok())
                    .expect("process_resident_memory_bytes");
                assert!(rss > 1_000_000.0, "{rss}");
            }
        }

        let (status, body) = json_of(
            http.get(&metrics)
                .header("Rune", &invoice_only)
                .send()
                .await
                .expect("GET /metrics"),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body, refusal, "lightningd's own error object");

        let (status, body) = json_of(http.get(&metrics).send().await.expect("GET /metrics")).await;
        assert_eq!(status, 403);
        assert_eq!(
            body,
            json!({"code": 1501, "message": "Not authorized: Missing rune"})
        );
    });
}
