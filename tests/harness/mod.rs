//! What the integration tests share on top of the mock lightningd: the plugin started over
//! plain HTTP on a free port, an HTTP client pointed at it, and a rune the mock accepts.
//!
//! Each test file includes it with `mod mock_lightningd; mod harness;`.

#![allow(dead_code)]

use crate::mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::time::Duration;

/// A plugin serving HTTP behind a mock lightningd.
pub struct Gateway {
    pub node: MockLightningd,
    pub port: u16,
    pub base: String,
    pub http: reqwest::Client,
    /// An unrestricted rune made by the mock.
    pub rune: String,
}

impl Gateway {
    /// Starts the plugin with `clnrest-protocol=http` on a free port.
    pub async fn start() -> Gateway {
        Gateway::start_with(json!({})).await
    }

    /// Like [`Gateway::start`], with more options (they win over the defaults above).
    pub async fn start_with(extra: Value) -> Gateway {
        let port = MockLightningd::free_port();
        let mut options = json!({"clnrest-port": port, "clnrest-protocol": "http"});
        if let (Some(options), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
            options.extend(extra.clone());
        }
        let node = MockLightningd::start(options).await;
        assert_eq!(
            node.init_result(),
            &json!({}),
            "the plugin refused to start: {:?}",
            node.init_result()
        );
        let rune = node.create_rune(Value::Null);
        Gateway {
            node,
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: client(),
            rune,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /v1/<method>` with the unrestricted rune and a JSON body.
    pub async fn call(&self, method: &str, params: Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/{method}")))
            .header("Rune", &self.rune)
            .json(&params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/{method} failed: {e}"))
    }

    /// A request builder for `POST /v1/<method>` with nothing set.
    pub fn post(&self, method: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(&format!("/v1/{method}")))
    }
}

/// An HTTP client that never reuses a stale pool entry across tests and gives up in 10 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client builds")
}

/// The response body as JSON, with the status, panicking with the body if it is not JSON.
pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a response body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
    (status, value)
}
