//! Smoke: a plugin registers a route through lightningd's socket, and it is served.

use mock_lightningd::gateway::{json_of, Gateway};
use serde_json::{json, Value};

async fn rpc(gateway: &Gateway, method: &str, params: Value) -> Value {
    gateway.lightningd_call(method, params).await
}

#[tokio::test]
async fn registered_route_calls_its_method_with_captures() {
    let gateway = Gateway::start().await;
    let reply = rpc(
        &gateway,
        "clnrest-register-path",
        json!({"path": "/v1/store/{key}", "rpc_method": "listdatastore", "http_method": "GET"}),
    )
    .await;
    assert_eq!(reply["result"], json!({}), "{reply}");
    let reply = rpc(&gateway, "clnrest-register-path", json!({"path": "v1/x", "rpc_method": "getinfo", "http_method": "GET", "rune_required": false, "bogus": 1})).await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown parameter"),
        "{reply}"
    );
    let response = gateway
        .http
        .get(gateway.url("/v1/store/project"))
        .header("rune", &gateway.rune)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201, "{body}");
    // Leaving out the plugin's own, at startup (the webhooks it stored).
    let calls: Vec<_> = gateway
        .node
        .calls_of("listdatastore")
        .into_iter()
        .filter(|c| c.params != json!({"key": ["clnrest", "webhooks"]}))
        .collect();
    assert_eq!(calls[0].params, json!({"key": "project"}));
    let response = gateway
        .http
        .post(gateway.url("/v1/store/project"))
        .header("rune", &gateway.rune)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 405);
    assert_eq!(
        body,
        json!({"code": -32601, "message": "Dynamic path: v1/store/{key} has no http_method:POST registered"})
    );
    let list = rpc(&gateway, "clnrest-list-paths", json!({})).await;
    assert_eq!(list["result"]["paths"][0]["path"], "v1/store/{key}");
    // The document is rebuilt from lightningd's help in the background after start.
    let mut doc = Value::Null;
    for _ in 0..100 {
        doc = gateway
            .http
            .get(gateway.url("/swagger.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if doc["paths"]["/v1/invoice"]["post"].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(doc["paths"]["/v1/store/{key}"]["get"].is_object());
    assert!(
        doc["paths"]["/v1/invoice"]["post"].is_object(),
        "help-based paths present: {:?}",
        gateway.node.logs()
    );
}
