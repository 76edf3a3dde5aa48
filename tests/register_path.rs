//! Routes other plugins publish with `clnrest-register-path` (docs/api.md, "Routes registered
//! by plugins"): the registration params and their refusals, and how requests to registered
//! paths are served, rune-checked and removed when their plugin stops.
//!
//! Registrations go the way a plugin's do: a JSON-RPC call on the mock's `lightning-rpc`
//! socket, which the mock forwards to our plugin's stdin (as lightningd does).

use mock_lightningd::gateway::{json_of, Gateway};
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

/// A request builder for `what`, `"METHOD /path"`.
fn build(gateway: &Gateway, what: &str) -> reqwest::RequestBuilder {
    let (method, path) = what
        .split_once(' ')
        .unwrap_or_else(|| panic!("not \"METHOD /path\": {what}"));
    let method = Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
    gateway.http.request(method, gateway.url(path))
}

/// Sends `what` (`"METHOD /path"`) with an optional rune and JSON body; the status and the
/// body as JSON.
async fn request(
    gateway: &Gateway,
    what: &str,
    rune: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut builder = build(gateway, what);
    if let Some(rune) = rune {
        builder = builder.header("Rune", rune);
    }
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what} failed: {e}"));
    json_of(response).await
}

/// [`request`], asserting the answer's status (the message names the request); returns the
/// body for the checks the caller makes on it.
async fn expect(
    gateway: &Gateway,
    what: &str,
    rune: Option<&str>,
    body: Option<Value>,
    status: u16,
) -> Value {
    let (got, answer) = request(gateway, what, rune, body).await;
    assert_eq!(got, status, "{what}: {answer}");
    answer
}

/// `GET path` with the gateway's rune and `Accept: accept`.
async fn get_accepting(gateway: &Gateway, path: &str, accept: &str) -> reqwest::Response {
    gateway
        .http
        .get(gateway.url(path))
        .header("Rune", &gateway.rune)
        .header("Accept", accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} accepting {accept} failed: {e}"))
}

/// An error body: `{"code": code, "message": message}`.
fn error(code: i64, message: &str) -> Value {
    json!({"code": code, "message": message})
}

fn missing_rune() -> Value {
    error(1501, "Not authorized: Missing rune")
}

fn path_not_found() -> Value {
    error(-32601, "Path not found")
}

/// The params of the mock's recorded calls of `method` (but the plugin's own at startup).
fn params_of(gateway: &Gateway, method: &str) -> Vec<Value> {
    gateway
        .node
        .calls_of(method)
        .into_iter()
        .map(|c| c.params)
        // The plugin's own, at startup: the webhooks it stored.
        .filter(|params| *params != json!({"key": ["clnrest", "webhooks"]}))
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

/// A gateway with `routes` registered in order (each asserted accepted).
async fn gateway_with(routes: impl IntoIterator<Item = Value>) -> Gateway {
    let gateway = Gateway::start().await;
    for route in routes {
        register(&gateway, route).await;
    }
    gateway
}

#[tokio::test]
async fn params_by_name_with_defaults() {
    let gateway =
        gateway_with([json!({"path": "v1/named/{key}", "rpc_method": "listdatastore"})]).await;
    let rune = Some(gateway.rune.as_str());
    // Defaults: POST, rune required, no restrictions.
    assert_eq!(
        listed(&gateway, "v1/named/{key}", "POST").await,
        Some(json!({
            "path": "v1/named/{key}", "http_method": "POST", "rpc_method": "listdatastore",
            "rune_required": true, "rune_restrictions": {}
        }))
    );
    let answer = request(&gateway, "POST /v1/named/k", None, None).await;
    assert_eq!(answer, (403, missing_rune()), "POST /v1/named/k, no rune");
    expect(&gateway, "POST /v1/named/k", rune, None, 201).await;
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
    let body = expect(&gateway, "GET /v1/named-all", None, None, 201).await;
    assert_eq!(body["alias"], "ORANGETRAWL");
}

#[tokio::test]
async fn params_by_position_in_documented_order() {
    let gateway = gateway_with([
        json!(["v1/pos/two", "getinfo"]),
        json!(["v1/pos/three", "getinfo", "put"]),
        json!(["v1/pos/four", "getinfo", "get", false]),
        json!(["v1/pos/five", "listinvoices", "patch", true, {"nodeid": node_id(), "method": "getinfo", "params": {"x": "y"}}]),
    ])
    .await;
    let rune = Some(gateway.rune.as_str());
    let expected = [
        json!({"path": "v1/pos/two", "http_method": "POST", "rpc_method": "getinfo", "rune_required": true, "rune_restrictions": {}}),
        json!({"path": "v1/pos/three", "http_method": "PUT", "rpc_method": "getinfo", "rune_required": true, "rune_restrictions": {}}),
        json!({"path": "v1/pos/four", "http_method": "GET", "rpc_method": "getinfo", "rune_required": false, "rune_restrictions": {}}),
        json!({"path": "v1/pos/five", "http_method": "PATCH", "rpc_method": "listinvoices", "rune_required": true,
               "rune_restrictions": {"nodeid": node_id(), "method": "getinfo", "params": {"x": "y"}}}),
    ];
    assert_eq!(list_paths(&gateway).await, expected);

    // The positional routes are served as registered.
    expect(&gateway, "GET /v1/pos/four", None, None, 201).await;
    expect(&gateway, "PUT /v1/pos/three", rune, None, 201).await;
    let body = expect(&gateway, "PATCH /v1/pos/five", rune, None, 201).await;
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
        let what = format!("{stored} /v1/case/lbl");
        expect(&gateway, &what, Some(&gateway.rune), None, 201).await;
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
    let rune_required = "rune_required must be true for anything but GET requests";
    // Each refused registration (the message names it by its params) and the refusal.
    let mut refused = vec![
        (
            json!({"path": "/", "rpc_method": "getinfo"}),
            "Path must not be root",
        ),
        (
            json!({"path": "", "rpc_method": "getinfo"}),
            "Path must not be empty",
        ),
        (
            json!({"path": "v1/files/{*rest}", "rpc_method": "getinfo"}),
            "Wildcards not supported",
        ),
        (
            json!({"path": "v1/open", "rpc_method": "getinfo", "rune_required": false}),
            rune_required,
        ),
    ];
    for method in ["POST", "put", "Patch", "DELETE"] {
        refused.push((
            json!({"path": "v1/open", "rpc_method": "getinfo", "http_method": method, "rune_required": false}),
            rune_required,
        ));
    }
    refused.push((
        json!({"path": "v1/open", "rpc_method": "getinfo", "http_method": "TRACE"}),
        "TRACE is not a supported http method!",
    ));
    for (params, message) in refused {
        assert_refused(&gateway, params, message).await;
    }
    // Nothing refused was stored, and nothing refused is served.
    assert_eq!(list_paths(&gateway).await, Vec::<Value>::new());
    let not_post = "Path invalid, http_method must be POST for CLN methods";
    let answer = request(&gateway, "GET /v1/open", None, None).await;
    assert_eq!(answer, (405, error(-32601, not_post)), "GET /v1/open");
}

#[tokio::test]
async fn conflicting_paths_are_refused_per_http_method() {
    let gateway = Gateway::start().await;
    let post_conflict =
        "Conflicting path 'v{version}/{capture}/go' already exists with http_method: POST";
    let put_conflict = "Conflicting path 'keys/{a}' already exists with http_method: PUT";
    // Registrations in order, each with the refusal it gets (`None`: it is accepted); the
    // message of a failure names the registration by its params.
    let registrations: Vec<(Value, Option<&str>)> = vec![
        (
            json!({"path": "v{version}/{capture}/go", "rpc_method": "getinfo"}),
            None,
        ),
        (
            json!({"path": "v1/{capture}/go", "rpc_method": "listinvoices"}),
            Some(post_conflict),
        ),
        // Slashes around the new path do not hide a conflict.
        (
            json!({"path": "/v2/x/go/", "rpc_method": "listinvoices", "http_method": "post"}),
            Some(post_conflict),
        ),
        // The same path with another method is no conflict.
        (
            json!({"path": "v1/{capture}/go", "rpc_method": "listinvoices", "http_method": "GET"}),
            None,
        ),
        (
            json!({"path": "v{version}/{capture}/go", "rpc_method": "listinvoices", "http_method": "DELETE"}),
            None,
        ),
        (
            json!({"path": "keys/{a}", "rpc_method": "getinfo", "http_method": "PUT"}),
            None,
        ),
        (
            json!({"path": "keys/{b}", "rpc_method": "getinfo", "http_method": "PUT"}),
            Some(put_conflict),
        ),
        (
            json!({"path": "keys/{a}", "rpc_method": "getinfo", "http_method": "put"}),
            Some(put_conflict),
        ),
        (
            json!({"path": "keys/{b}", "rpc_method": "getinfo", "http_method": "PATCH"}),
            None,
        ),
        // No URL matches both: other literal text, another number of segments.
        (
            json!({"path": "w1/{capture}/go", "rpc_method": "getinfo"}),
            None,
        ),
        (
            json!({"path": "v1/{capture}/stop", "rpc_method": "getinfo"}),
            None,
        ),
        (
            json!({"path": "v1/{a}/go/on", "rpc_method": "getinfo"}),
            None,
        ),
    ];
    for (params, refusal) in registrations {
        match refusal {
            None => register(&gateway, params).await,
            Some(message) => assert_refused(&gateway, params, message).await,
        }
    }

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
        ("keys/{a}", "PUT"),
        ("keys/{b}", "PATCH"),
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
    let gateway = gateway_with([
        json!({"path": "/v1/trim/{label}/", "rpc_method": "listinvoices", "http_method": "GET"}),
        json!({"path": "//v1/more//", "rpc_method": "getinfo"}),
    ])
    .await;
    let paths: Vec<Value> = list_paths(&gateway)
        .await
        .iter()
        .map(|r| r["path"].clone())
        .collect();
    assert_eq!(paths, [json!("v1/trim/{label}"), json!("v1/more")]);
    expect(&gateway, "GET /v1/trim/abc", Some(&gateway.rune), None, 201).await;
    // The 405 names the stored path.
    let no_post = "Dynamic path: v1/trim/{label} has no http_method:POST registered";
    let answer = request(&gateway, "POST /v1/trim/abc", None, None).await;
    assert_eq!(answer, (405, error(-32601, no_post)), "POST /v1/trim/abc");
}

#[tokio::test]
async fn captures_become_string_params_merged_with_the_body() {
    let gateway = gateway_with([json!({"path": "v1/keys/{key}", "rpc_method": "datastore"})]).await;
    let rune = Some(gateway.rune.as_str());
    let sent = json!({"string": "hello", "mode": "must-create"});
    let body = expect(&gateway, "POST /v1/keys/abc", rune, Some(sent), 201).await;
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
    expect(&gateway, "PUT /v1/store-k9.txt/12345", rune, None, 201).await;
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
    let answer = request(&gateway, "PUT /v1/store-k9.bin/12345", rune, None).await;
    assert_eq!(
        answer,
        (404, path_not_found()),
        "PUT /v1/store-k9.bin/12345"
    );
}

#[tokio::test]
async fn a_body_param_named_like_a_capture_is_400_duplicate_key() {
    let gateway = gateway_with([json!({"path": "v1/keys/{key}", "rpc_method": "datastore"})]).await;
    let rune = Some(gateway.rune.as_str());
    let sent = Some(json!({"key": "other", "string": "x"}));
    let answer = request(&gateway, "POST /v1/keys/abc", rune, sent).await;
    let duplicate = error(-32602, "Duplicate key: key");
    assert_eq!(answer, (400, duplicate), "POST /v1/keys/abc");
    // Refused before anything reached lightningd.
    assert!(gateway.node.calls_of("checkrune").is_empty());
    assert!(gateway.node.calls_of("datastore").is_empty());
}

#[tokio::test]
async fn checkrune_gets_rpc_method_and_call_params_by_default() {
    let gateway = gateway_with([
        json!({"path": "v1/ds/{key}", "rpc_method": "datastore", "http_method": "PUT"}),
    ])
    .await;
    let rune = Some(gateway.rune.as_str());
    let string_s = || Some(json!({"string": "s"}));
    expect(&gateway, "PUT /v1/ds/k1", rune, string_s(), 201).await;
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
    let answer = request(&gateway, "PUT /v1/ds/k2", Some(&invoice_only), string_s()).await;
    let not_permitted = error(1502, "Not permitted: method is not equal to invoice");
    assert_eq!(answer, (401, not_permitted), "PUT /v1/ds/k2");
    let key_k1_rune = gateway.node.create_rune(json!([["pnamekey=k1"]]));
    let key_k1_only = Some(key_k1_rune.as_str());
    let replacing = |string: &str| Some(json!({"string": string, "mode": "create-or-replace"}));
    let body = expect(&gateway, "PUT /v1/ds/k3", key_k1_only, replacing("s"), 401).await;
    assert_eq!(body["code"], 1502, "{body}");
    expect(&gateway, "PUT /v1/ds/k1", key_k1_only, replacing("t"), 201).await;
    assert_eq!(gateway.node.calls_of("datastore").len(), 2);
}

#[tokio::test]
async fn rune_restrictions_replace_what_checkrune_is_asked() {
    let nodeid = node_id();
    let gateway = gateway_with([
        // Only `method` given: params default to the call's params, no nodeid.
        json!({"path": "v1/r/method/{label}", "rpc_method": "listinvoices", "http_method": "GET",
               "rune_restrictions": {"method": "invoice"}}),
        // Only `params` given: method defaults to rpc_method.
        json!({"path": "v1/r/params/{label}", "rpc_method": "listinvoices", "http_method": "GET",
               "rune_restrictions": {"params": {"label": "fixed"}}}),
        // All three.
        json!({"path": "v1/r/all", "rpc_method": "getinfo",
               "rune_restrictions": {"nodeid": nodeid, "method": "invoice", "params": ["a", 1]}}),
    ])
    .await;

    let invoice_only = gateway.node.create_rune(json!([["method=invoice"]]));
    let label_fixed = gateway.node.create_rune(json!([["pnamelabel=fixed"]]));
    let other_node = format!("03{}", "ab".repeat(32));
    let for_other_node = gateway
        .node
        .create_rune(json!([[format!("id={other_node}")]]));
    let for_this_node = gateway.node.create_rune(json!([[format!("id={nodeid}")]]));
    for (what, rune, status) in [
        // A rune for invoice calls listinvoices here.
        ("GET /v1/r/method/x", &invoice_only, 201),
        // checkrune saw the fixed params.
        ("GET /v1/r/params/other", &label_fixed, 201),
        // checkrune was given the route's nodeid.
        ("POST /v1/r/all", &for_other_node, 401),
        ("POST /v1/r/all", &for_this_node, 201),
    ] {
        let body = expect(&gateway, what, Some(rune), None, status).await;
        if what.starts_with("GET ") {
            // The GET routes answer with listinvoices' result.
            assert!(body["invoices"].is_array(), "{what}: {body}");
        }
    }

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
    let gateway = gateway_with([
        json!({"path": "v1/public/{label}", "rpc_method": "listinvoices", "http_method": "get", "rune_required": false}),
    ])
    .await;
    let body = expect(&gateway, "GET /v1/public/a", None, None, 201).await;
    assert!(body["invoices"].is_array(), "{body}");
    // A rune sent anyway is not checked either (even one lightningd would refuse).
    expect(&gateway, "GET /v1/public/b", Some("not-a-rune"), None, 201).await;
    assert!(gateway.node.calls_of("checkrune").is_empty());
    assert_eq!(
        params_of(&gateway, "listinvoices"),
        [json!({"label": "a"}), json!({"label": "b"})]
    );
}

#[tokio::test]
async fn another_http_method_on_a_registered_path_is_405() {
    let gateway = gateway_with(["GET", "PUT"].map(|method| {
        json!({"path": "v1/thing/{label}", "rpc_method": "listinvoices", "http_method": method})
    }))
    .await;
    let rune = Some(gateway.rune.as_str());
    for method in ["POST", "PATCH", "DELETE"] {
        let what = format!("{method} /v1/thing/7");
        let body = expect(&gateway, &what, rune, None, 405).await;
        let message =
            format!("Dynamic path: v1/thing/{{label}} has no http_method:{method} registered");
        assert_eq!(body, error(-32601, &message), "{what}");
    }
    for method in ["GET", "PUT"] {
        expect(&gateway, &format!("{method} /v1/thing/7"), rune, None, 201).await;
    }
    assert!(gateway.node.calls_of("checkrune").len() == 2);
}

#[tokio::test]
async fn registered_paths_take_precedence_over_v1_methods() {
    let gateway = gateway_with([json!({"path": "v1/getinfo", "rpc_method": "listinvoices"})]).await;
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
    let gateway = gateway_with([
        json!({"path": "v1/shop/invoice", "rpc_method": "invoice"}),
        json!({"path": "v1/shop/invoices", "rpc_method": "listinvoices", "http_method": "GET"}),
        json!({"path": "v1/shop/missing", "rpc_method": "nosuchmethod"}),
    ])
    .await;
    let rune = Some(gateway.rune.as_str());
    let new_invoice = json!({"amount_msat": 1000, "label": "shop-1", "description": "d"});

    // 201 with lightningd's result.
    let sent = Some(new_invoice.clone());
    let body = expect(&gateway, "POST /v1/shop/invoice", rune, sent, 201).await;
    assert!(body["bolt11"].is_string(), "{body}");

    // A lightningd error is a 500 with lightningd's error object unchanged.
    let direct = rpc(&gateway, "invoice", new_invoice.clone()).await;
    assert_eq!(direct["error"]["code"], 900, "{direct}");
    let response = build(&gateway, "POST /v1/shop/invoice")
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
    let unknown = error(-32601, "Unknown command 'nosuchmethod'");
    let answer = request(&gateway, "POST /v1/shop/missing", rune, None).await;
    assert_eq!(answer, (404, unknown), "POST /v1/shop/missing");
    // No rune: 403.
    let answer = request(&gateway, "GET /v1/shop/invoices", None, None).await;
    assert_eq!(answer, (403, missing_rune()), "GET /v1/shop/invoices");

    // Content negotiation: YAML.
    let response = get_accepting(&gateway, "/v1/shop/invoices", "application/yaml").await;
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
    let response = build(&gateway, "POST /v1/shop/invoice")
        .header("Rune", &gateway.rune)
        .header("Content-Type", "application/yaml")
        .body("amount_msat: 2000\nlabel: shop-2\ndescription: yaml\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    // Nothing acceptable: 406, before lightningd is asked anything.
    let calls_before = gateway.node.calls().len();
    let response = get_accepting(&gateway, "/v1/shop/invoices", "image/png").await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["code"], -32600, "{body}");
    assert_eq!(gateway.node.calls().len(), calls_before);
}

#[tokio::test]
async fn plugin_stopped_removes_the_routes_to_its_methods() {
    let gateway = gateway_with([
        json!({"path": "v1/stopping/{key}", "rpc_method": "listdatastore", "http_method": "GET"}),
        json!({"path": "v1/stopping/{key}/put", "rpc_method": "datastore"}),
        json!({"path": "v1/staying/{label}", "rpc_method": "listinvoices", "http_method": "GET"}),
    ])
    .await;
    let rune = Some(gateway.rune.as_str());
    expect(&gateway, "GET /v1/stopping/k", rune, None, 201).await;

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
    for (what, body) in [
        ("GET /v1/stopping/k", None),
        ("POST /v1/stopping/k/put", Some(json!({"string": "x"}))),
    ] {
        let answer = request(&gateway, what, rune, body).await;
        assert_eq!(answer, (404, path_not_found()), "{what}");
    }
    assert_eq!(params_of(&gateway, "listdatastore").len(), 1);
    assert!(gateway.node.calls_of("datastore").is_empty());
    // The other plugin's route still works, and the path can be registered again.
    expect(&gateway, "GET /v1/staying/x", rune, None, 201).await;
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
    for route in [
        json!({"path": "/v1/vault/{key}", "rpc_method": "datastore", "http_method": "PUT"}),
        json!(["/v1/vault/{key}", "listdatastore", "GET", false]),
    ] {
        let reply = plugin.call("clnrest-register-path", route.clone()).await;
        assert_eq!(reply["result"], json!({}), "{route}: {reply}");
    }
    let listed = plugin.call("clnrest-list-paths", json!([])).await;
    assert_eq!(listed["result"]["paths"].as_array().unwrap().len(), 2);

    let rune = Some(gateway.rune.as_str());
    let gold = Some(json!({"string": "gold"}));
    let body = expect(&gateway, "PUT /v1/vault/coin", rune, gold, 201).await;
    assert_eq!(body["string"], "gold", "{body}");
    let body = expect(&gateway, "GET /v1/vault/coin", None, None, 201).await;
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

/// Registered routes are looked up before ours, so a registration that some URL of ours would
/// reach is refused, naming the built-in route; a literal `v1/<method>` stays allowed.
#[tokio::test]
async fn registrations_never_shadow_builtin_routes() {
    let gateway = Gateway::start().await;
    let every_method = "POST /v1/<method>";
    let refused = [
        (
            json!({"path": "v1/{x}", "rpc_method": "withdraw"}),
            "v1/{x}",
            every_method,
        ),
        (
            json!({"path": "{a}/{b}", "rpc_method": "getinfo", "http_method": "GET", "rune_required": false}),
            "{a}/{b}",
            every_method,
        ),
        (
            json!({"path": "v{n}/{m}", "rpc_method": "getinfo"}),
            "v{n}/{m}",
            every_method,
        ),
        (
            json!({"path": "v1/list-methods", "rpc_method": "getinfo", "http_method": "GET"}),
            "v1/list-methods",
            "GET /v1/list-methods",
        ),
        (
            json!({"path": "v1/notif{x}", "rpc_method": "getinfo", "http_method": "DELETE"}),
            "v1/notif{x}",
            "GET /v1/notifications",
        ),
        (
            json!({"path": "socket.io/{x}", "rpc_method": "getinfo"}),
            "socket.io/{x}",
            "/socket.io/",
        ),
        (
            json!({"path": "swagger.json", "rpc_method": "getinfo"}),
            "swagger.json",
            "GET /swagger.json",
        ),
        (
            json!({"path": "swagger-ui", "rpc_method": "getinfo"}),
            "swagger-ui",
            "Swagger UI at /swagger-ui",
        ),
        (
            json!({"path": "swagger-ui/{file}", "rpc_method": "getinfo", "http_method": "GET"}),
            "swagger-ui/{file}",
            "Swagger UI at /swagger-ui",
        ),
    ];
    for (params, path, builtin) in refused {
        let message = format!("Path '{path}' would shadow the built-in route {builtin}");
        assert_refused(&gateway, params, &message).await;
    }
    assert!(list_paths(&gateway).await.is_empty());
    // A literal method name, or a capture that covers only some methods, stays allowed.
    register(
        &gateway,
        json!({"path": "v1/getinfo", "rpc_method": "listinvoices"}),
    )
    .await;
    register(
        &gateway,
        json!({"path": "v1/cashu-{op}", "rpc_method": "getinfo"}),
    )
    .await;
    // The built-in routes still answer.
    let (status, _) = json_of(gateway.call("listdatastore", json!({})).await).await;
    assert_eq!(status, 201);
    let list = gateway
        .http
        .get(gateway.url("/v1/list-methods"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);
    let document = gateway
        .http
        .get(gateway.url("/swagger.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(document.status().as_u16(), 200);
}

/// With `clnrest-swagger-root`, Swagger UI's own path is the one kept free.
#[tokio::test]
async fn registrations_never_shadow_swagger_ui_at_its_configured_root() {
    let gateway = Gateway::start_with(json!({"clnrest-swagger-root": "/docs"})).await;
    assert_refused(
        &gateway,
        json!({"path": "docs/{page}", "rpc_method": "getinfo", "http_method": "GET"}),
        "Path 'docs/{page}' would shadow the built-in route Swagger UI at /docs",
    )
    .await;
    register(
        &gateway,
        json!({"path": "swagger-ui", "rpc_method": "getinfo"}),
    )
    .await;
}
