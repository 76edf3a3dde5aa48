//! Routes other plugins publish with `clnrest-register-path` (docs/api.md, "Routes registered
//! by plugins"): the registration params and their refusals, and how requests to registered
//! paths are served, rune-checked and removed when their plugin stops.
//!
//! Registrations go the way a plugin's do: a JSON-RPC call on the mock's `lightning-rpc`
//! socket, which the mock forwards to our plugin's stdin (as lightningd does).

mod harness;
mod mock_lightningd;

use harness::{json_of, Gateway};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// lightningd's (and our) code for refused params.
const INVALID_PARAMS: i64 = -32602;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON-RPC client on the mock's `lightning-rpc`, as another plugin (or lightning-cli) has:
/// one connection, requests written one at a time, `"\n\n"`-terminated answers.
struct RpcClient {
    stream: UnixStream,
    buffer: Vec<u8>,
    prefix: String,
    next_id: u64,
}

impl RpcClient {
    async fn connect(gateway: &Gateway, prefix: &str) -> RpcClient {
        let path = gateway.node.rpc_path();
        let stream = UnixStream::connect(&path)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", path.display()));
        RpcClient {
            stream,
            buffer: Vec::new(),
            prefix: prefix.to_string(),
            next_id: 0,
        }
    }

    /// Sends one request and returns the whole response object.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = format!("{}#{}", self.prefix, self.next_id);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.stream
            .write_all(request.to_string().as_bytes())
            .await
            .expect("write to lightning-rpc");
        let response = tokio::time::timeout(READ_TIMEOUT, self.read_frame())
            .await
            .unwrap_or_else(|_| panic!("no answer to {request} within {READ_TIMEOUT:?}"));
        assert_eq!(response["id"], json!(id), "answer to another request");
        response
    }

    async fn read_frame(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return serde_json::from_slice(&frame[..end]).unwrap_or_else(|e| {
                    panic!("not JSON ({e}): {}", String::from_utf8_lossy(&frame))
                });
            }
            let mut chunk = [0u8; 8192];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .expect("read lightning-rpc");
            assert!(n > 0, "lightning-rpc closed the connection");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One call on a fresh connection.
async fn rpc(gateway: &Gateway, method: &str, params: Value) -> Value {
    RpcClient::connect(gateway, "test")
        .await
        .call(method, params)
        .await
}

/// Registers a route and asserts it was accepted with `{}`.
async fn register(gateway: &Gateway, params: Value) {
    let reply = rpc(gateway, "clnrest-register-path", params.clone()).await;
    assert_eq!(
        reply.get("result"),
        Some(&json!({})),
        "registering {params} was refused: {reply}"
    );
}

/// Registers a route and returns the JSON-RPC error it was refused with.
async fn register_error(gateway: &Gateway, params: Value) -> Value {
    let reply = rpc(gateway, "clnrest-register-path", params.clone()).await;
    assert!(
        reply.get("result").is_none(),
        "registering {params} was accepted: {reply}"
    );
    reply["error"].clone()
}

/// Asserts a refusal with code -32602 and exactly `message`.
async fn assert_refused(gateway: &Gateway, params: Value, message: &str) {
    let error = register_error(gateway, params.clone()).await;
    assert_eq!(error["code"], json!(INVALID_PARAMS), "{params}: {error}");
    assert_eq!(error["message"], json!(message), "{params}: {error}");
}

/// `clnrest-list-paths`'s `paths`.
async fn list_paths(gateway: &Gateway) -> Vec<Value> {
    let reply = rpc(gateway, "clnrest-list-paths", json!({})).await;
    reply["result"]["paths"]
        .as_array()
        .unwrap_or_else(|| panic!("clnrest-list-paths: {reply}"))
        .clone()
}

/// The listed route for `path` and `http_method`, if any.
async fn listed(gateway: &Gateway, path: &str, http_method: &str) -> Option<Value> {
    list_paths(gateway)
        .await
        .into_iter()
        .find(|r| r["path"] == json!(path) && r["http_method"] == json!(http_method))
}

/// An HTTP request with an optional rune and JSON body; the status and the body as JSON.
async fn request(
    gateway: &Gateway,
    method: Method,
    path: &str,
    rune: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut builder = gateway.http.request(method.clone(), gateway.url(path));
    if let Some(rune) = rune {
        builder = builder.header("Rune", rune);
    }
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
    json_of(response).await
}

/// The params of the mock's recorded calls of `method`.
fn params_of(gateway: &Gateway, method: &str) -> Vec<Value> {
    gateway
        .node
        .calls_of(method)
        .into_iter()
        .map(|c| c.params)
        .collect()
}

/// Polls `condition` for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node_id() -> String {
    mock_lightningd::fixtures::fixtures().getinfo_result["id"]
        .as_str()
        .expect("getinfo.json has an id")
        .to_string()
}

#[tokio::test]
async fn params_by_name_with_defaults() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/named/{key}", "rpc_method": "listdatastore"}),
    )
    .await;
    // Defaults: POST, rune required, no restrictions.
    assert_eq!(
        listed(&gateway, "v1/named/{key}", "POST").await,
        Some(json!({
            "path": "v1/named/{key}", "http_method": "POST", "rpc_method": "listdatastore",
            "rune_required": true, "rune_restrictions": {}
        }))
    );
    let (status, body) = request(&gateway, Method::POST, "/v1/named/k", None, None).await;
    assert_eq!(
        (status, &body),
        (
            403,
            &json!({"code": 1501, "message": "Not authorized: Missing rune"})
        )
    );
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/named/k",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(params_of(&gateway, "listdatastore"), [json!({"key": "k"})]);

    // Every param by name.
    register(
        &gateway,
        json!({
            "path": "v1/named-all", "rpc_method": "getinfo", "http_method": "GET",
            "rune_required": false, "rune_restrictions": {"method": "getinfo"}
        }),
    )
    .await;
    assert_eq!(
        listed(&gateway, "v1/named-all", "GET").await,
        Some(json!({
            "path": "v1/named-all", "http_method": "GET", "rpc_method": "getinfo",
            "rune_required": false, "rune_restrictions": {"method": "getinfo"}
        }))
    );
    let (status, body) = request(&gateway, Method::GET, "/v1/named-all", None, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["alias"], "ORANGETRAWL");
}

#[tokio::test]
async fn params_by_position_in_documented_order() {
    let gateway = Gateway::start().await;
    register(&gateway, json!(["v1/pos/two", "getinfo"])).await;
    register(&gateway, json!(["v1/pos/three", "getinfo", "put"])).await;
    register(&gateway, json!(["v1/pos/four", "getinfo", "get", false])).await;
    register(
        &gateway,
        json!(["v1/pos/five", "listinvoices", "patch", true, {"nodeid": node_id(), "method": "getinfo", "params": {"x": "y"}}]),
    )
    .await;
    let expected = [
        json!({"path": "v1/pos/two", "http_method": "POST", "rpc_method": "getinfo", "rune_required": true, "rune_restrictions": {}}),
        json!({"path": "v1/pos/three", "http_method": "PUT", "rpc_method": "getinfo", "rune_required": true, "rune_restrictions": {}}),
        json!({"path": "v1/pos/four", "http_method": "GET", "rpc_method": "getinfo", "rune_required": false, "rune_restrictions": {}}),
        json!({"path": "v1/pos/five", "http_method": "PATCH", "rpc_method": "listinvoices", "rune_required": true,
               "rune_restrictions": {"nodeid": node_id(), "method": "getinfo", "params": {"x": "y"}}}),
    ];
    assert_eq!(list_paths(&gateway).await, expected);

    // The positional routes are served as registered.
    let (status, body) = request(&gateway, Method::GET, "/v1/pos/four", None, None).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/pos/three",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(
        &gateway,
        Method::PATCH,
        "/v1/pos/five",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["invoices"].is_array(), "{body}");
    // Positional `rune_required` false is refused for non-GET like the named one.
    assert_refused(
        &gateway,
        json!(["v1/pos/six", "getinfo", "POST", false]),
        "rune_required must be true for anything but GET requests",
    )
    .await;
}

#[tokio::test]
async fn http_methods_are_case_insensitive_and_limited_to_five() {
    let gateway = Gateway::start().await;
    for (given, stored) in [
        ("get", "GET"),
        ("Post", "POST"),
        ("pUt", "PUT"),
        ("PATCH", "PATCH"),
        ("delete", "DELETE"),
    ] {
        register(
            &gateway,
            json!({"path": "v1/case/{label}", "rpc_method": "listinvoices", "http_method": given}),
        )
        .await;
        assert!(
            listed(&gateway, "v1/case/{label}", stored).await.is_some(),
            "{given} not listed as {stored}: {:?}",
            list_paths(&gateway).await
        );
        let method = Method::from_bytes(stored.as_bytes()).unwrap();
        let (status, body) =
            request(&gateway, method, "/v1/case/lbl", Some(&gateway.rune), None).await;
        assert_eq!(status, 201, "{stored}: {body}");
    }
    assert_eq!(
        params_of(&gateway, "listinvoices"),
        vec![json!({"label": "lbl"}); 5]
    );
    for method in ["TRACE", "HEAD", "OPTIONS", "CONNECT", "FETCH"] {
        assert_refused(
            &gateway,
            json!({"path": "v1/bad-method", "rpc_method": "getinfo", "http_method": method}),
            &format!("{method} is not a supported http method!"),
        )
        .await;
    }
    assert_eq!(list_paths(&gateway).await.len(), 5);
}

#[tokio::test]
async fn registration_refusals_are_exact_json_rpc_errors() {
    let gateway = Gateway::start().await;
    assert_refused(
        &gateway,
        json!({"path": "/", "rpc_method": "getinfo"}),
        "Path must not be root",
    )
    .await;
    assert_refused(
        &gateway,
        json!({"path": "", "rpc_method": "getinfo"}),
        "Path must not be empty",
    )
    .await;
    assert_refused(
        &gateway,
        json!({"path": "v1/files/{*rest}", "rpc_method": "getinfo"}),
        "Wildcards not supported",
    )
    .await;
    assert_refused(
        &gateway,
        json!({"path": "v1/open", "rpc_method": "getinfo", "rune_required": false}),
        "rune_required must be true for anything but GET requests",
    )
    .await;
    for method in ["POST", "put", "Patch", "DELETE"] {
        assert_refused(
            &gateway,
            json!({"path": "v1/open", "rpc_method": "getinfo", "http_method": method, "rune_required": false}),
            "rune_required must be true for anything but GET requests",
        )
        .await;
    }
    assert_refused(
        &gateway,
        json!({"path": "v1/open", "rpc_method": "getinfo", "http_method": "TRACE"}),
        "TRACE is not a supported http method!",
    )
    .await;
    // Nothing refused was stored, and nothing refused is served.
    assert_eq!(list_paths(&gateway).await, Vec::<Value>::new());
    let (status, body) = request(&gateway, Method::GET, "/v1/open", None, None).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(
        body,
        json!({"code": -32601, "message": "Path invalid, http_method must be POST for CLN methods"})
    );
}

#[tokio::test]
async fn conflicting_paths_are_refused_per_http_method() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v{version}/{capture}/go", "rpc_method": "getinfo"}),
    )
    .await;
    assert_refused(
        &gateway,
        json!({"path": "v1/{capture}/go", "rpc_method": "listinvoices"}),
        "Conflicting path 'v{version}/{capture}/go' already exists with http_method: POST",
    )
    .await;
    // Slashes around the new path do not hide a conflict.
    assert_refused(
        &gateway,
        json!({"path": "/v2/x/go/", "rpc_method": "listinvoices", "http_method": "post"}),
        "Conflicting path 'v{version}/{capture}/go' already exists with http_method: POST",
    )
    .await;
    // The same path with another method is no conflict.
    register(
        &gateway,
        json!({"path": "v1/{capture}/go", "rpc_method": "listinvoices", "http_method": "GET"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v{version}/{capture}/go", "rpc_method": "listinvoices", "http_method": "DELETE"}),
    )
    .await;

    register(
        &gateway,
        json!({"path": "v1/{a}", "rpc_method": "getinfo", "http_method": "PUT"}),
    )
    .await;
    assert_refused(
        &gateway,
        json!({"path": "v1/{b}", "rpc_method": "getinfo", "http_method": "PUT"}),
        "Conflicting path 'v1/{a}' already exists with http_method: PUT",
    )
    .await;
    assert_refused(
        &gateway,
        json!({"path": "v1/{a}", "rpc_method": "getinfo", "http_method": "put"}),
        "Conflicting path 'v1/{a}' already exists with http_method: PUT",
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/{b}", "rpc_method": "getinfo", "http_method": "PATCH"}),
    )
    .await;
    // No URL matches both: other literal text, another number of segments.
    register(
        &gateway,
        json!({"path": "w1/{capture}/go", "rpc_method": "getinfo"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/{capture}/stop", "rpc_method": "getinfo"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/{a}/go/on", "rpc_method": "getinfo"}),
    )
    .await;

    let mut listed: Vec<(String, String)> = list_paths(&gateway)
        .await
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["http_method"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, String)> = [
        ("v{version}/{capture}/go", "POST"),
        ("v1/{capture}/go", "GET"),
        ("v{version}/{capture}/go", "DELETE"),
        ("v1/{a}", "PUT"),
        ("v1/{b}", "PATCH"),
        ("w1/{capture}/go", "POST"),
        ("v1/{capture}/stop", "POST"),
        ("v1/{a}/go/on", "POST"),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), m.to_string()))
    .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn paths_are_stored_without_leading_or_trailing_slashes() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "/v1/trim/{label}/", "rpc_method": "listinvoices", "http_method": "GET"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "//v1/more//", "rpc_method": "getinfo"}),
    )
    .await;
    let paths: Vec<Value> = list_paths(&gateway)
        .await
        .iter()
        .map(|r| r["path"].clone())
        .collect();
    assert_eq!(paths, [json!("v1/trim/{label}"), json!("v1/more")]);
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/trim/abc",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The 405 names the stored path.
    let (status, body) = request(&gateway, Method::POST, "/v1/trim/abc", None, None).await;
    assert_eq!(
        (status, body),
        (
            405,
            json!({"code": -32601, "message": "Dynamic path: v1/trim/{label} has no http_method:POST registered"})
        )
    );
}

#[tokio::test]
async fn captures_become_string_params_merged_with_the_body() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/keys/{key}", "rpc_method": "datastore"}),
    )
    .await;
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/keys/abc",
        Some(&gateway.rune),
        Some(json!({"string": "hello", "mode": "must-create"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["key"], json!(["abc"]), "{body}");
    assert_eq!(
        params_of(&gateway, "datastore"),
        [json!({"string": "hello", "mode": "must-create", "key": "abc"})]
    );

    // Numbers in the path stay strings; a capture with literal text around it; no body.
    register(
        &gateway,
        json!({"path": "v1/store-{key}.txt/{string}", "rpc_method": "datastore", "http_method": "PUT"}),
    )
    .await;
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/store-k9.txt/12345",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        params_of(&gateway, "datastore").last(),
        Some(&json!({"key": "k9", "string": "12345"}))
    );
    // The rune was checked against those same params.
    assert_eq!(
        params_of(&gateway, "checkrune").last().unwrap()["params"],
        json!({"key": "k9", "string": "12345"})
    );
    // Text that does not fit around the capture is no match.
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/store-k9.bin/12345",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (404, json!({"code": -32601, "message": "Path not found"}))
    );
}

#[tokio::test]
async fn a_body_param_named_like_a_capture_is_400_duplicate_key() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/keys/{key}", "rpc_method": "datastore"}),
    )
    .await;
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/keys/abc",
        Some(&gateway.rune),
        Some(json!({"key": "other", "string": "x"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": -32602, "message": "Duplicate key: key"})
        )
    );
    // Refused before anything reached lightningd.
    assert!(gateway.node.calls_of("checkrune").is_empty());
    assert!(gateway.node.calls_of("datastore").is_empty());
}

#[tokio::test]
async fn checkrune_gets_rpc_method_and_call_params_by_default() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/ds/{key}", "rpc_method": "datastore", "http_method": "PUT"}),
    )
    .await;
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/ds/k1",
        Some(&gateway.rune),
        Some(json!({"string": "s"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        params_of(&gateway, "checkrune"),
        [
            json!({"rune": gateway.rune, "method": "datastore", "params": {"string": "s", "key": "k1"}})
        ]
    );
    assert_eq!(
        params_of(&gateway, "datastore"),
        [json!({"string": "s", "key": "k1"})]
    );

    // So a rune limited to another method, or to other params, is refused with lightningd's
    // error (401), and the method is not called.
    let invoice_only = gateway.node.create_rune(json!([["method=invoice"]]));
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/ds/k2",
        Some(&invoice_only),
        Some(json!({"string": "s"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"code": 1502, "message": "Not permitted: method is not equal to invoice"})
        )
    );
    let key_k1_only = gateway.node.create_rune(json!([["pnamekey=k1"]]));
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/ds/k3",
        Some(&key_k1_only),
        Some(json!({"string": "s", "mode": "create-or-replace"})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], 1502, "{body}");
    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/ds/k1",
        Some(&key_k1_only),
        Some(json!({"string": "t", "mode": "create-or-replace"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(gateway.node.calls_of("datastore").len(), 2);
}

#[tokio::test]
async fn rune_restrictions_replace_what_checkrune_is_asked() {
    let gateway = Gateway::start().await;
    let nodeid = node_id();
    // Only `method` given: params default to the call's params, no nodeid.
    register(
        &gateway,
        json!({"path": "v1/r/method/{label}", "rpc_method": "listinvoices", "http_method": "GET",
               "rune_restrictions": {"method": "invoice"}}),
    )
    .await;
    // Only `params` given: method defaults to rpc_method.
    register(
        &gateway,
        json!({"path": "v1/r/params/{label}", "rpc_method": "listinvoices", "http_method": "GET",
               "rune_restrictions": {"params": {"label": "fixed"}}}),
    )
    .await;
    // All three.
    register(
        &gateway,
        json!({"path": "v1/r/all", "rpc_method": "getinfo",
               "rune_restrictions": {"nodeid": nodeid, "method": "invoice", "params": ["a", 1]}}),
    )
    .await;

    let invoice_only = gateway.node.create_rune(json!([["method=invoice"]]));
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/r/method/x",
        Some(&invoice_only),
        None,
    )
    .await;
    assert_eq!(
        status, 201,
        "a rune for invoice calls listinvoices here: {body}"
    );
    assert!(body["invoices"].is_array(), "{body}");
    let label_fixed = gateway.node.create_rune(json!([["pnamelabel=fixed"]]));
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/r/params/other",
        Some(&label_fixed),
        None,
    )
    .await;
    assert_eq!(status, 201, "checkrune saw the fixed params: {body}");
    let other_node = format!("03{}", "ab".repeat(32));
    let for_other_node = gateway
        .node
        .create_rune(json!([[format!("id={other_node}")]]));
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/r/all",
        Some(&for_other_node),
        None,
    )
    .await;
    assert_eq!(
        status, 401,
        "checkrune was given the route's nodeid: {body}"
    );
    let for_this_node = gateway.node.create_rune(json!([[format!("id={nodeid}")]]));
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/r/all",
        Some(&for_this_node),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    assert_eq!(
        params_of(&gateway, "checkrune"),
        [
            json!({"rune": invoice_only, "method": "invoice", "params": {"label": "x"}}),
            json!({"rune": label_fixed, "method": "listinvoices", "params": {"label": "fixed"}}),
            json!({"rune": for_other_node, "nodeid": nodeid, "method": "invoice", "params": ["a", 1]}),
            json!({"rune": for_this_node, "nodeid": nodeid, "method": "invoice", "params": ["a", 1]}),
        ]
    );
    // The methods themselves got the request's params.
    assert_eq!(
        params_of(&gateway, "listinvoices"),
        [json!({"label": "x"}), json!({"label": "other"})]
    );
    assert_eq!(params_of(&gateway, "getinfo"), [json!({})]);
}

#[tokio::test]
async fn get_routes_without_rune_required_never_call_checkrune() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/public/{label}", "rpc_method": "listinvoices", "http_method": "get", "rune_required": false}),
    )
    .await;
    let (status, body) = request(&gateway, Method::GET, "/v1/public/a", None, None).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["invoices"].is_array(), "{body}");
    // A rune sent anyway is not checked either (even one lightningd would refuse).
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/public/b",
        Some("not-a-rune"),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(gateway.node.calls_of("checkrune").is_empty());
    assert_eq!(
        params_of(&gateway, "listinvoices"),
        [json!({"label": "a"}), json!({"label": "b"})]
    );
}

#[tokio::test]
async fn another_http_method_on_a_registered_path_is_405() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/thing/{label}", "rpc_method": "listinvoices", "http_method": "GET"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/thing/{label}", "rpc_method": "listinvoices", "http_method": "PUT"}),
    )
    .await;
    for method in [Method::POST, Method::PATCH, Method::DELETE] {
        let (status, body) = request(
            &gateway,
            method.clone(),
            "/v1/thing/7",
            Some(&gateway.rune),
            None,
        )
        .await;
        assert_eq!(status, 405, "{method}: {body}");
        assert_eq!(
            body,
            json!({"code": -32601, "message": format!("Dynamic path: v1/thing/{{label}} has no http_method:{method} registered")})
        );
    }
    for method in [Method::GET, Method::PUT] {
        let (status, body) = request(
            &gateway,
            method.clone(),
            "/v1/thing/7",
            Some(&gateway.rune),
            None,
        )
        .await;
        assert_eq!(status, 201, "{method}: {body}");
    }
    assert!(gateway.node.calls_of("checkrune").len() == 2);
}

#[tokio::test]
async fn registered_paths_take_precedence_over_v1_methods() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/getinfo", "rpc_method": "listinvoices"}),
    )
    .await;
    let (status, body) = json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["invoices"].is_array(), "listinvoices' result: {body}");
    assert!(gateway.node.calls_of("getinfo").is_empty());
    assert_eq!(params_of(&gateway, "listinvoices"), [json!({})]);
    assert_eq!(
        params_of(&gateway, "checkrune"),
        [json!({"rune": gateway.rune, "method": "listinvoices", "params": {}})]
    );
    // Other methods on /v1/ are untouched.
    let (status, body) = json_of(gateway.call("listdatastore", json!({})).await).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn responses_follow_the_rules_of_v1_methods() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/shop/invoice", "rpc_method": "invoice"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/shop/invoices", "rpc_method": "listinvoices", "http_method": "GET"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/shop/missing", "rpc_method": "nosuchmethod"}),
    )
    .await;
    let new_invoice = json!({"amount_msat": 1000, "label": "shop-1", "description": "d"});

    // 201 with lightningd's result.
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/shop/invoice",
        Some(&gateway.rune),
        Some(new_invoice.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["bolt11"].is_string(), "{body}");

    // A lightningd error is a 500 with lightningd's error object unchanged.
    let direct = rpc(&gateway, "invoice", new_invoice.clone()).await;
    assert_eq!(direct["error"]["code"], 900, "{direct}");
    let response = gateway
        .http
        .post(gateway.url("/v1/shop/invoice"))
        .header("Rune", &gateway.rune)
        .json(&new_invoice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "error bodies are JSON"
    );
    let text = response.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        direct["error"],
        "{text}"
    );
    // An unknown method is lightningd's 404.
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/shop/missing",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": -32601, "message": "Unknown command 'nosuchmethod'"})
        )
    );
    // No rune: 403.
    let (status, body) = request(&gateway, Method::GET, "/v1/shop/invoices", None, None).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"code": 1501, "message": "Not authorized: Missing rune"})
        )
    );

    // Content negotiation: YAML.
    let response = gateway
        .http
        .get(gateway.url("/v1/shop/invoices"))
        .header("Rune", &gateway.rune)
        .header("Accept", "application/yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/yaml"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let yaml: Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("not YAML ({e}): {text}"));
    assert_eq!(yaml["invoices"][0]["label"], "shop-1", "{text}");
    // A YAML request body works too.
    let response = gateway
        .http
        .post(gateway.url("/v1/shop/invoice"))
        .header("Rune", &gateway.rune)
        .header("Content-Type", "application/yaml")
        .body("amount_msat: 2000\nlabel: shop-2\ndescription: yaml\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    // Nothing acceptable: 406, before lightningd is asked anything.
    let calls_before = gateway.node.calls().len();
    let response = gateway
        .http
        .get(gateway.url("/v1/shop/invoices"))
        .header("Rune", &gateway.rune)
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["code"], -32600, "{body}");
    assert_eq!(gateway.node.calls().len(), calls_before);
}

#[tokio::test]
async fn plugin_stopped_removes_the_routes_to_its_methods() {
    let gateway = Gateway::start().await;
    register(
        &gateway,
        json!({"path": "v1/stopping/{key}", "rpc_method": "listdatastore", "http_method": "GET"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/stopping/{key}/put", "rpc_method": "datastore"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/staying/{label}", "rpc_method": "listinvoices", "http_method": "GET"}),
    )
    .await;
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/stopping/k",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Another plugin starting, or one with other methods stopping, removes nothing.
    let other = json!({"plugin_name": "other.py", "plugin_path": "/plugins/other.py", "methods": ["other-method"]});
    assert!(gateway.node.notify("plugin_started", other.clone()).await);
    assert!(gateway.node.notify("plugin_stopped", other).await);

    let stopped = json!({
        "plugin_name": "store.py", "plugin_path": "/plugins/store.py",
        "methods": ["listdatastore", "datastore"]
    });
    assert!(
        gateway.node.notify("plugin_stopped", stopped).await,
        "the plugin did not subscribe to plugin_stopped"
    );
    eventually("the stopped plugin's routes to go", || async {
        list_paths(&gateway).await.len() == 1
    })
    .await;
    assert_eq!(
        list_paths(&gateway).await,
        [
            json!({"path": "v1/staying/{label}", "http_method": "GET", "rpc_method": "listinvoices", "rune_required": true, "rune_restrictions": {}})
        ]
    );
    let not_found = json!({"code": -32601, "message": "Path not found"});
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/stopping/k",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!((status, &body), (404, &not_found));
    let (status, body) = request(
        &gateway,
        Method::POST,
        "/v1/stopping/k/put",
        Some(&gateway.rune),
        Some(json!({"string": "x"})),
    )
    .await;
    assert_eq!((status, &body), (404, &not_found));
    assert_eq!(gateway.node.calls_of("listdatastore").len(), 1);
    assert!(gateway.node.calls_of("datastore").is_empty());
    // The other plugin's route still works, and the path can be registered again.
    let (status, body) = request(
        &gateway,
        Method::GET,
        "/v1/staying/x",
        Some(&gateway.rune),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    register(
        &gateway,
        json!({"path": "v1/stopping/{key}", "rpc_method": "listdatastore", "http_method": "GET"}),
    )
    .await;
}

#[tokio::test]
async fn list_paths_returns_every_route_with_its_rules() {
    let gateway = Gateway::start().await;
    assert_eq!(
        rpc(&gateway, "clnrest-list-paths", json!({})).await["result"],
        json!({"paths": []})
    );
    let routes = [
        json!({"path": "v1/a", "http_method": "GET", "rpc_method": "getinfo", "rune_required": false, "rune_restrictions": {}}),
        json!({"path": "v1/a", "http_method": "POST", "rpc_method": "getinfo", "rune_required": true, "rune_restrictions": {}}),
        json!({"path": "v1/b/{id}", "http_method": "DELETE", "rpc_method": "datastore", "rune_required": true,
               "rune_restrictions": {"method": "listdatastore", "params": {"key": "k"}}}),
        json!({"path": "v1/c", "http_method": "GET", "rpc_method": "listinvoices", "rune_required": true,
               "rune_restrictions": {"nodeid": node_id()}}),
    ];
    for route in &routes {
        register(&gateway, route.clone()).await;
    }
    assert_eq!(
        rpc(&gateway, "clnrest-list-paths", json!({})).await["result"],
        json!({"paths": routes})
    );
}

/// A second plugin, as another process would be: its own connection to lightningd's
/// socket, registering its routes from its `init`, then serving requests through clnrest.
#[tokio::test]
async fn a_second_plugin_registers_routes_through_lightningd() {
    let gateway = Gateway::start().await;
    let mut plugin = RpcClient::connect(&gateway, "cln:init#7").await;
    let first = plugin
        .call(
            "clnrest-register-path",
            json!({"path": "/v1/vault/{key}", "rpc_method": "datastore", "http_method": "PUT"}),
        )
        .await;
    assert_eq!(first["result"], json!({}), "{first}");
    let second = plugin
        .call(
            "clnrest-register-path",
            json!(["/v1/vault/{key}", "listdatastore", "GET", false]),
        )
        .await;
    assert_eq!(second["result"], json!({}), "{second}");
    let listed = plugin.call("clnrest-list-paths", json!([])).await;
    assert_eq!(listed["result"]["paths"].as_array().unwrap().len(), 2);

    let (status, body) = request(
        &gateway,
        Method::PUT,
        "/v1/vault/coin",
        Some(&gateway.rune),
        Some(json!({"string": "gold"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["string"], "gold", "{body}");
    let (status, body) = request(&gateway, Method::GET, "/v1/vault/coin", None, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"datastore": [{"key": ["coin"], "generation": 0, "hex": "676f6c64", "string": "gold"}]})
    );
    assert_eq!(
        params_of(&gateway, "listdatastore"),
        [json!({"key": "coin"})]
    );
    gateway.node.assert_no_violations();
}
