//! A first end-to-end check: the plugin starts behind the mock and answers getinfo.

use mock_lightningd::gateway::{json_of, Gateway};
use serde_json::json;

#[tokio::test]
async fn getinfo_answers_201_with_lightningds_result() {
    let gateway = Gateway::start().await;
    let (status, body) = json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201);
    assert_eq!(body["alias"], "ORANGETRAWL");
    assert!(body["fees_collected_msat"].is_u64());
    gateway.node.assert_no_violations();
}
