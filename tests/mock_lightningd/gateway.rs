//! What the integration tests share on top of the mock lightningd: the plugin started over
//! plain HTTP on a free port, an HTTP client pointed at it, and a rune the mock accepts.
//!
//! Tests use it as `mock_lightningd::gateway`.

use crate::{MockLightningd, RecordedCall};
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
        Gateway::around(MockLightningd::start(options).await, port)
    }

    /// A gateway over a plugin already started (with its own options or environment) on
    /// `port` over plain HTTP; panics if the plugin refused to start.
    pub fn around(node: MockLightningd, port: u16) -> Gateway {
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

impl Gateway {
    /// One JSON-RPC call straight on the mock's `lightning-rpc` (not through the plugin), as
    /// another plugin or `lightning-cli` makes it; returns the whole answer.
    pub async fn lightningd_call(&self, method: &str, params: Value) -> Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::UnixStream::connect(self.node.rpc_path())
            .await
            .expect("connect to lightning-rpc");
        let request = json!({"jsonrpc": "2.0", "id": "test", "method": method, "params": params});
        stream
            .write_all(request.to_string().as_bytes())
            .await
            .expect("write to lightning-rpc");
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 65536];
        while !buffer.ends_with(b"\n\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .expect("read lightning-rpc");
            assert!(n > 0, "lightning-rpc closed before answering");
            buffer.extend_from_slice(&chunk[..n]);
        }
        serde_json::from_slice(&buffer).expect("a JSON answer")
    }
}

impl Gateway {
    /// Waits for the plugin's startup calls, `help` (for the OpenAPI document) and
    /// `listdatastore` (the stored webhooks), then returns the number of calls lightningd has
    /// seen: calls after that index are the test's.
    pub async fn settled(&self) -> usize {
        let start = std::time::Instant::now();
        while self.node.calls_of("help").is_empty()
            || self.node.calls_of("listdatastore").is_empty()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the plugin never called help and listdatastore at startup; calls: {:?}",
                self.node.calls()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.node.calls().len()
    }

    /// The calls lightningd has seen since `mark` (from [`Gateway::settled`]).
    pub fn calls_since(&self, mark: usize) -> Vec<RecordedCall> {
        self.node.calls().split_off(mark)
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
