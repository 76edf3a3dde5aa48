//! Runes made by the real `createrune`, on every rune-checked route: each answer is exactly
//! what lightningd's `checkrune` decides for that rune, method and params, with lightningd's
//! own error object on refusal, and a refused call leaves no trace on the node.

use crate::node::RealNode;
use crate::support::{block_on, client, json_of};
use crate::Test;
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    (
        "runes::each_route_answers_what_checkrune_decides",
        each_route_answers_what_checkrune_decides,
    ),
    (
        "runes::a_rate_limited_rune_is_refused_past_its_rate",
        a_rate_limited_rune_is_refused_past_its_rate,
    ),
    (
        "runes::missing_and_foreign_runes_are_refused",
        missing_and_foreign_runes_are_refused,
    ),
];

/// The runes of the test: a name and the restrictions given to `createrune`.
fn rune_kinds() -> Vec<(&'static str, Value)> {
    vec![
        ("unrestricted", Value::Null),
        ("readonly", json!("readonly")),
        ("method-invoice", json!([["method=invoice"]])),
        ("amount-below-1000", json!([["pnameamount_msat<1000"]])),
    ]
}

/// Whether `checkrune` accepts `rune` for `method` with `params` (`None`: no params given).
fn checkrune(
    node: &RealNode,
    rune: &str,
    method: &str,
    params: Option<&Value>,
) -> Result<(), Value> {
    let mut request = json!({"rune": rune, "method": method});
    if let Some(params) = params {
        request["params"] = params.clone();
    }
    node.rpc("checkrune", request).map(|result| {
        assert_eq!(result, json!({"valid": true}));
    })
}

/// The invoices with this label (0 or 1).
fn invoices_labelled(node: &RealNode, label: &str) -> usize {
    node.call("listinvoices", json!({"label": label}))["invoices"]
        .as_array()
        .map_or(0, Vec::len)
}

fn each_route_answers_what_checkrune_decides() {
    let node = RealNode::start_http();
    let mut runes: Vec<(String, String)> = rune_kinds()
        .into_iter()
        .map(|(name, restrictions)| (name.to_string(), node.create_rune(restrictions)))
        .collect();
    // A rune that was good, then blacklisted.
    let blacklisted = node.call("createrune", json!({}));
    let unique_id = blacklisted["unique_id"]
        .as_str()
        .expect("a unique_id")
        .to_string();
    node.call(
        "blacklistrune",
        json!({"start": unique_id.parse::<u64>().expect("a number")}),
    );
    runes.push((
        "blacklisted".into(),
        blacklisted["rune"].as_str().expect("a rune").into(),
    ));

    let http = client();
    let (mut accepted, mut refused) = (0, 0);
    block_on(async {
        for (name, rune) in &runes {
            let calls = [
                ("getinfo", json!({})),
                ("listinvoices", json!({})),
                (
                    "invoice",
                    json!({"amount_msat": 500, "label": format!("{name}-small"), "description": "d"}),
                ),
                (
                    "invoice",
                    json!({"amount_msat": 5000, "label": format!("{name}-large"), "description": "d"}),
                ),
            ];
            for (method, params) in calls {
                let decision = checkrune(&node, rune, method, Some(&params));
                let response = http
                    .post(node.url(&format!("/v1/{method}")))
                    .header("Rune", rune)
                    .json(&params)
                    .send()
                    .await
                    .expect("the plugin answers");
                let (status, body) = json_of(response).await;
                let what = format!("rune {name}, {method} {params}");
                match decision {
                    Ok(()) => {
                        accepted += 1;
                        assert_eq!(status, 201, "{what}: {body}");
                        if method == "invoice" {
                            assert!(body["bolt11"].is_string(), "{what}: {body}");
                        }
                    }
                    Err(error) => {
                        refused += 1;
                        assert_eq!(status, 401, "{what}: {body}");
                        assert_eq!(body, error, "{what}: not lightningd's error object");
                        if method == "invoice" {
                            let label = params["label"].as_str().expect("a label");
                            assert_eq!(
                                invoices_labelled(&node, label),
                                0,
                                "{what}: a refused call created an invoice"
                            );
                        }
                    }
                }
            }

            // The notification stream is checked for `listclnrest-notifications`.
            let decision = checkrune(&node, rune, "listclnrest-notifications", None);
            let response = http
                .get(node.url("/v1/notifications"))
                .header("Rune", rune)
                .send()
                .await
                .expect("the plugin answers");
            let status = response.status().as_u16();
            match decision {
                Ok(()) => assert_eq!(status, 200, "rune {name}: SSE refused"),
                Err(error) => {
                    let (status, body) = json_of(response).await;
                    assert_eq!(status, 401, "rune {name}: SSE {body}");
                    assert_eq!(body, error, "rune {name}: SSE not lightningd's error");
                }
            }
        }
    });
    // The cases cover both answers, for each restriction kind.
    assert!(
        accepted >= 8 && refused >= 8,
        "{accepted} accepted, {refused} refused"
    );
}

fn a_rate_limited_rune_is_refused_past_its_rate() {
    let node = RealNode::start_http();
    let rune = node.create_rune(json!([["rate=1"]]));
    block_on(async {
        let http = client();
        let call = || {
            http.post(node.url("/v1/getinfo"))
                .header("Rune", &rune)
                .send()
        };
        let (status, body) = json_of(call().await.expect("an answer")).await;
        assert_eq!(status, 201, "first call within the rate: {body}");
        let (status, body) = json_of(call().await.expect("an answer")).await;
        assert_eq!(status, 401, "second call within a minute: {body}");
        // lightningd's own answer for the same rune now.
        let error = checkrune(&node, &rune, "getinfo", Some(&json!({})))
            .expect_err("checkrune refuses it too");
        assert_eq!(body, error);
        assert!(
            body["message"].as_str().unwrap_or("") == "Not permitted: too soon",
            "{body}"
        );
    });
}

fn missing_and_foreign_runes_are_refused() {
    let node = RealNode::start_http();
    let foreign: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rpc/checkrune-c-foreign-rune.json"
        ))
        .expect("the fixture"),
    )
    .expect("JSON");
    let foreign_rune = foreign["request"]["params"]["rune"]
        .as_str()
        .expect("a rune")
        .to_string();
    block_on(async {
        let http = client();
        let (status, body) = json_of(
            http.post(node.url("/v1/getinfo"))
                .send()
                .await
                .expect("an answer"),
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(
            body,
            json!({"code": 1501, "message": "Not authorized: Missing rune"})
        );
        for rune in [foreign_rune.as_str(), "garbage", ""] {
            let error = checkrune(&node, rune, "getinfo", Some(&json!({})))
                .expect_err("checkrune refuses it");
            let (status, body) = json_of(
                http.post(node.url("/v1/getinfo"))
                    .header("Rune", rune)
                    .send()
                    .await
                    .expect("an answer"),
            )
            .await;
            // An empty header is a rune too, and lightningd refuses it.
            assert_eq!((status, &body), (401, &error), "rune {rune:?}");
        }
    });
}
