//! The REST API as a client sees it (status codes, exact JSON bodies, headers) and as
//! lightningd sees it (the calls that reach `lightning-rpc`, their params, the connections):
//! `POST /v1/<method>`, the `Rune` header and `checkrune`, errors, other paths and methods,
//! `GET /v1/list-methods`, Swagger, CSP and CORS.

use mock_lightningd::fixtures::{fixtures, load_fixture};
use mock_lightningd::gateway::{json_of, Gateway};
use mock_lightningd::RecordedCall;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for something the plugin should do at once.
/// The default `clnrest-csp` (docs/configuration.md).
const DEFAULT_CSP: &str = "default-src 'self'; font-src 'self'; img-src 'self' data:; \
frame-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline';";

const MISSING_RUNE: &str = r#"{"code":1501,"message":"Not authorized: Missing rune"}"#;
const NOT_POST: &str =
    r#"{"code":-32601,"message":"Path invalid, http_method must be POST for CLN methods"}"#;
const PATH_NOT_FOUND: &str = r#"{"code":-32601,"message":"Path not found"}"#;
const BAD_RUNE: &str = r#"{"code":-32602,"message":"rune: should be base64 string: invalid token (see logs for details)"}"#;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn methods_of(calls: &[RecordedCall]) -> Vec<&str> {
    calls.iter().map(|c| c.method.as_str()).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .map(|v| v.to_str().expect("a text header"))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    header(headers, CONTENT_TYPE.as_str())
}

/// Status, headers and body text of a response.
async fn parts(response: reqwest::Response) -> (u16, HeaderMap, String) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a response body");
    (status, headers, text)
}

/// `POST /v1/<method>` with `rune` (if any) and a JSON body.
async fn post_with_rune(
    gateway: &Gateway,
    method: &str,
    rune: Option<&str>,
    body: Value,
) -> (u16, HeaderMap, String) {
    let mut request = gateway.post(method).json(&body);
    if let Some(rune) = rune {
        request = request.header("Rune", rune);
    }
    parts(request.send().await.expect("the request is answered")).await
}

/// Asserts a JSON error response: status, `application/json`, exact body text; `case` names
/// the request in a failure.
fn assert_json_error(case: &str, response: &(u16, HeaderMap, String), status: u16, body: &str) {
    let (got_status, headers, text) = response;
    assert_eq!(
        (*got_status, text.as_str()),
        (status, body),
        "{case}: unexpected answer"
    );
    assert_eq!(
        content_type(headers),
        Some("application/json"),
        "{case}: error bodies are JSON"
    );
}

/// `POST /v1/<method>` with `rune` and `params`, asserting a 201 with a JSON body (the
/// message names the method); the body parsed, and as text.
async fn post_201(gateway: &Gateway, method: &str, rune: &str, params: Value) -> (Value, String) {
    let (status, headers, text) = post_with_rune(gateway, method, Some(rune), params).await;
    assert_eq!(status, 201, "{method}: {text}");
    assert_eq!(content_type(&headers), Some("application/json"), "{method}");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method}: the body is not JSON ({e}): {text}"));
    (body, text)
}

/// lightningd's calls since `mark`, each as its method and params.
fn calls_with_params_since(gateway: &Gateway, mark: usize) -> Vec<(String, Value)> {
    let calls = gateway.calls_since(mark).into_iter();
    calls.map(|c| (c.method, c.params)).collect()
}

/// The `checkrune` call a request with `rune` to `method` with `params` should cause.
fn checkrune_call(rune: &str, method: &str, params: &Value) -> (String, Value) {
    let params = checkrune_params(rune, method, params.clone());
    ("checkrune".to_string(), params)
}

/// Asserts lightningd's calls since `mark` were exactly `checkrune` (for the gateway's rune,
/// `method` and `params`) and then `method` with the same `params`; `case` names the request.
fn assert_checked_and_called(
    gateway: &Gateway,
    mark: usize,
    case: &str,
    method: &str,
    params: &Value,
) {
    let method_call = (method.to_string(), params.clone());
    let expected = [checkrune_call(&gateway.rune, method, params), method_call];
    assert_eq!(calls_with_params_since(gateway, mark), expected, "{case}");
}

/// Asserts lightningd's only call since `mark` was `checkrune` (for `rune`, `method` and
/// `params`): the method itself was not called. `case` names the request.
fn assert_checked_only(
    gateway: &Gateway,
    mark: usize,
    case: &str,
    rune: &str,
    method: &str,
    params: &Value,
) {
    let expected = [checkrune_call(rune, method, params)];
    let calls = calls_with_params_since(gateway, mark);
    assert_eq!(
        calls, expected,
        "{case}: only checkrune, the method is not called"
    );
}

/// `POST /v1/<method>` with a rune lightningd refuses: 401 with exactly lightningd's
/// `error`, and `checkrune` the only call that reached lightningd.
async fn assert_rune_refused(
    gateway: &Gateway,
    rune: &str,
    method: &str,
    params: Value,
    error: &str,
) {
    let case = format!("{method} with rune {rune:?}");
    let mark = gateway.settled().await;
    let response = post_with_rune(gateway, method, Some(rune), params.clone()).await;
    assert_json_error(&case, &response, 401, error);
    assert_checked_only(gateway, mark, &case, rune, method, &params);
}

/// getinfo's result as the mock sends it.
fn expected_getinfo(gateway: &Gateway) -> Value {
    let mut result = fixtures().getinfo_result.clone();
    result["lightning-dir"] = json!(gateway.node.lightning_dir().to_string_lossy());
    result["blockheight"] = json!(0);
    result
}

/// The checkrune call a request should cause: exactly `rune`, `method` and `params`.
fn checkrune_params(rune: &str, method: &str, params: Value) -> Value {
    json!({"rune": rune, "method": method, "params": params})
}

/// Sends one raw HTTP/1.1 request (exact header spelling) with `Connection: close` and
/// returns the status, the header lines (names lowercased) and the body.
async fn raw_http(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the plugin");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write the request");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the plugin answers and closes within 10 s")
        .expect("read the response");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in: {text}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {status_line}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// A reqwest client that does not follow redirects.
fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client builds")
}

/// `GET path` with the gateway's client, which follows redirects.
async fn get(gateway: &Gateway, path: &str) -> reqwest::Response {
    gateway
        .http
        .get(gateway.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
}

/// `GET path` without following a redirect.
async fn get_unfollowed(gateway: &Gateway, path: &str) -> reqwest::Response {
    no_redirect_client()
        .get(gateway.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
}

/// Asks the mock directly on its socket (not through the plugin).
async fn direct_rpc(gateway: &Gateway, method: &str, params: Value) -> Value {
    gateway.lightningd_call(method, params).await["result"].clone()
}

// ---------------------------------------------------------------------------------------
// POST /v1/<method>: results
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn post_method_answers_201_with_lightningds_result_as_json() {
    let gateway = Gateway::start().await;
    let (body, text) = post_201(&gateway, "getinfo", &gateway.rune, json!({})).await;
    assert_eq!(body, expected_getinfo(&gateway));
    // Numbers stay numbers.
    assert!(body["fees_collected_msat"].is_u64(), "{text}");
    assert!(text.contains(r#""fees_collected_msat":0"#), "{text}");
    assert!(body["num_peers"].is_u64(), "{text}");
    assert!(body["binding"][0]["port"].is_u64(), "{text}");

    let params = json!({"amount_msat": 50000, "label": "numbers", "description": "d"});
    let (body, text) = post_201(&gateway, "invoice", &gateway.rune, params).await;
    assert_eq!(body["created_index"], json!(1), "{text}");
    assert!(body["created_index"].is_u64(), "{text}");
    assert!(body["expires_at"].is_u64(), "{text}");
    assert!(body["bolt11"].is_string(), "{text}");
    assert!(text.contains(r#""created_index":1"#), "{text}");
    gateway.node.assert_no_violations();
}

#[tokio::test]
async fn msat_amounts_above_2_pow_53_stay_exact_integers() {
    // 2^53 + 1 has no exact f64: a client would see 9007199254740992 if anything on the way
    // went through a float.
    const BIG: u64 = 9_007_199_254_740_993;
    let gateway = Gateway::start().await;
    let params = json!({"amount_msat": BIG, "label": "big", "description": "big"});
    post_201(&gateway, "invoice", &gateway.rune, params).await;
    assert_eq!(
        gateway.node.calls_of("invoice")[0].params["amount_msat"].as_u64(),
        Some(BIG),
        "lightningd got the exact amount"
    );
    let label = json!({"label": "big"});
    let (body, text) = post_201(&gateway, "listinvoices", &gateway.rune, label).await;
    assert!(
        text.contains(&format!(r#""amount_msat":{BIG}"#)),
        "the amount is an exact integer: {text}"
    );
    assert_eq!(body["invoices"][0]["amount_msat"].as_u64(), Some(BIG));
}

// ---------------------------------------------------------------------------------------
// The Rune header and checkrune
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rune_header_name_is_case_insensitive() {
    let gateway = Gateway::start().await;
    for name in ["rune", "RUNE", "rUnE", "Rune"] {
        let mark = gateway.settled().await;
        let request = format!(
            "POST /v1/getinfo HTTP/1.1\r\nHost: 127.0.0.1\r\n{name}: {}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            gateway.rune
        );
        let (status, _, body) = raw_http(gateway.port, &request).await;
        assert_eq!(status, 201, "header `{name}`: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            expected_getinfo(&gateway),
            "header `{name}`"
        );
        let case = format!("header `{name}`");
        assert_checked_and_called(&gateway, mark, &case, "getinfo", &json!({}));
    }
}

#[tokio::test]
async fn missing_rune_is_403_and_nothing_reaches_lightningd() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    let invoice = json!({"amount_msat": 1000, "label": "no-rune", "description": "d"});
    for (case, request) in [
        ("getinfo", gateway.post("getinfo").json(&json!({}))),
        ("invoice", gateway.post("invoice").json(&invoice)),
        // No body at all, no Content-Type.
        ("getinfo without a body", gateway.post("getinfo")),
    ] {
        let response = parts(request.send().await.unwrap()).await;
        assert_json_error(case, &response, 403, MISSING_RUNE);
    }
    assert_eq!(gateway.calls_since(mark), [], "lightningd saw no call");
}

#[tokio::test]
async fn checkrune_and_the_method_get_the_same_object_or_array_params() {
    let gateway = Gateway::start().await;
    for (case, params) in [
        (
            "object",
            json!({"amount_msat": 1000, "label": "obj", "description": "named", "expiry": 60}),
        ),
        // An array stays an array.
        ("array", json!([1000, "arr", "positional"])),
    ] {
        let mark = gateway.settled().await;
        let (status, _, text) =
            post_with_rune(&gateway, "invoice", Some(&gateway.rune), params.clone()).await;
        assert_eq!(status, 201, "{case}: {text}");
        assert_checked_and_called(&gateway, mark, case, "invoice", &params);
    }
}

#[tokio::test]
async fn an_empty_body_is_empty_object_params_for_checkrune_and_the_method() {
    let gateway = Gateway::start().await;
    // Without any body, with an empty JSON body, and with whitespace only.
    for (case, body) in [
        ("no body", None),
        ("empty JSON body", Some("")),
        ("whitespace only", Some("  \n")),
    ] {
        let mut request = gateway.post("getinfo").header("Rune", &gateway.rune);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let mark = gateway.settled().await;
        let (status, _, text) = parts(request.send().await.unwrap()).await;
        assert_eq!(status, 201, "{case}: {text}");
        assert_checked_and_called(&gateway, mark, case, "getinfo", &json!({}));
    }
}

#[tokio::test]
async fn foreign_rune_is_401_with_lightningds_error_unchanged() {
    let fixture = load_fixture("rpc/checkrune-c-foreign-rune.json");
    let foreign = fixture["request"]["params"]["rune"]
        .as_str()
        .expect("the fixture has a rune");
    let gateway = Gateway::start().await;
    let error = r#"{"code":1501,"message":"Not authorized: Not derived from master"}"#;
    assert_rune_refused(&gateway, foreign, "getinfo", json!({}), error).await;
}

#[tokio::test]
async fn rune_restricted_to_invoice_cannot_call_getinfo() {
    let gateway = Gateway::start().await;
    let rune = gateway.node.create_rune(json!([["method=invoice"]]));
    let error = r#"{"code":1502,"message":"Not permitted: method is not equal to invoice"}"#;
    assert_rune_refused(&gateway, &rune, "getinfo", json!({}), error).await;
    // The same rune may call invoice.
    let params = json!({"amount_msat": 1000, "label": "allowed", "description": "d"});
    post_201(&gateway, "invoice", &rune, params).await;
}

#[tokio::test]
async fn garbage_and_empty_runes_are_401_with_lightningds_error() {
    let gateway = Gateway::start().await;
    for rune in ["this-is-not-a-rune!", ""] {
        assert_rune_refused(&gateway, rune, "getinfo", json!({}), BAD_RUNE).await;
    }
}

#[tokio::test]
async fn readonly_rune_may_list_but_not_create_invoices() {
    let fixture = load_fixture("rpc/checkrune-f-readonly-vs-invoice.json");
    let refusal = fixture["response"]["error"].to_string();
    let gateway = Gateway::start().await;
    let rune = gateway.node.create_rune(json!("readonly"));
    let params = json!({"amount_msat": 1000, "label": "ro", "description": "d"});
    assert_rune_refused(&gateway, &rune, "invoice", params, &refusal).await;

    let (body, _) = post_201(&gateway, "listinvoices", &rune, json!({})).await;
    assert_eq!(body, json!({"invoices": []}));
}

#[tokio::test]
async fn named_param_restriction_cannot_be_dodged_with_positional_params() {
    let gateway = Gateway::start().await;
    let rune = gateway.node.create_rune(json!([["pnamelabel=foo"]]));
    let mark = gateway.settled().await;
    let positional = json!([1000, "foo", "d"]);
    let (status, _, text) =
        post_with_rune(&gateway, "invoice", Some(&rune), positional.clone()).await;
    assert_eq!(status, 401, "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON body");
    assert_eq!(body["code"], 1502, "{text}");
    // No invoice was created.
    assert_checked_only(&gateway, mark, "positional", &rune, "invoice", &positional);
    // Named, the same call is allowed; with another label it is not.
    let named = |label: &str| json!({"amount_msat": 1000, "label": label, "description": "d"});
    post_201(&gateway, "invoice", &rune, named("foo")).await;
    let (status, _, text) = post_with_rune(&gateway, "invoice", Some(&rune), named("bar")).await;
    assert_eq!(status, 401, "{text}");
}

#[tokio::test]
async fn nodeid_header_is_accepted_and_ignored() {
    let gateway = Gateway::start().await;
    let node_id = fixtures().getinfo_result["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mark = gateway.settled().await;
    let (plain_status, _, plain) =
        post_with_rune(&gateway, "getinfo", Some(&gateway.rune), json!({})).await;
    let plain_calls = gateway.calls_since(mark);
    let mark = gateway.node.calls().len();
    let response = gateway
        .post("getinfo")
        .header("Rune", &gateway.rune)
        .header("Nodeid", &node_id)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, _, text) = parts(response).await;
    assert_eq!((status, &text), (plain_status, &plain));
    assert_eq!(status, 201);
    let calls = gateway.calls_since(mark);
    assert_eq!(
        calls.iter().map(|c| &c.params).collect::<Vec<_>>(),
        plain_calls.iter().map(|c| &c.params).collect::<Vec<_>>(),
        "the node id is passed nowhere"
    );
    assert_eq!(
        calls[0].params,
        checkrune_params(&gateway.rune, "getinfo", json!({}))
    );
}

// ---------------------------------------------------------------------------------------
// Errors from the method
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn method_errors_are_500_with_lightningds_error_unchanged() {
    let gateway = Gateway::start().await;
    let params = json!({"amount_msat": 50000, "label": "dup", "description": "d"});
    post_201(&gateway, "invoice", &gateway.rune, params.clone()).await;
    let response = post_with_rune(&gateway, "invoice", Some(&gateway.rune), params).await;
    assert_json_error(
        "a duplicate label",
        &response,
        500,
        r#"{"code":900,"message":"Duplicate label 'dup'"}"#,
    );

    let missing = load_fixture("rpc/invoice-missing-params.json");
    let params = missing["request"]["params"].clone();
    let response = post_with_rune(&gateway, "invoice", Some(&gateway.rune), params).await;
    let case = "a missing param";
    assert_json_error(
        case,
        &response,
        500,
        &missing["response"]["error"].to_string(),
    );
    assert_json_error(
        case,
        &response,
        500,
        r#"{"code":-32602,"message":"missing required parameter: label"}"#,
    );
}

#[tokio::test]
async fn unknown_command_is_404_with_lightningds_error() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    let response = post_with_rune(&gateway, "no-such-method", Some(&gateway.rune), json!({})).await;
    assert_json_error(
        "no-such-method",
        &response,
        404,
        r#"{"code":-32601,"message":"Unknown command 'no-such-method'"}"#,
    );
    assert_eq!(
        methods_of(&gateway.calls_since(mark)),
        ["checkrune", "no-such-method"]
    );
}

// ---------------------------------------------------------------------------------------
// What reaches lightningd, and over which connections
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn each_request_makes_exactly_checkrune_then_the_method() {
    let gateway = Gateway::start().await;
    let cases = [
        ("getinfo", json!({})),
        (
            "invoice",
            json!({"amount_msat": 1000, "label": "two", "description": "d"}),
        ),
        ("listinvoices", json!({"label": "two"})),
        (
            "invoice",
            json!({"amount_msat": 1000, "label": "two", "description": "d"}),
        ), // 500
        ("no-such-method", json!({})), // 404
    ];
    for (method, params) in cases {
        let mark = gateway.settled().await;
        let (status, _, text) =
            post_with_rune(&gateway, method, Some(&gateway.rune), params.clone()).await;
        assert!(
            [201, 404, 500].contains(&status),
            "{method}: {status} {text}"
        );
        assert_checked_and_called(&gateway, mark, method, method, &params);
    }
    assert!(gateway.node.calls_of("showrunes").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_to_lightningd_are_reused() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    for i in 0..50 {
        let (status, _, text) =
            post_with_rune(&gateway, "getinfo", Some(&gateway.rune), json!({})).await;
        assert_eq!(status, 201, "sequential request {i}: {text}");
    }
    let sequential = gateway.calls_since(mark);
    assert_eq!(sequential.len(), 100);
    for pair in sequential.chunks(2) {
        assert_eq!(methods_of(pair), ["checkrune", "getinfo"]);
    }
    assert!(
        gateway.node.connections_accepted() <= 4,
        "{} connections for 50 sequential requests",
        gateway.node.connections_accepted()
    );

    // Concurrent requests, each with its own params so its two calls can be told apart.
    let concurrent = (0..50).map(|i| {
        let request = gateway
            .post("listinvoices")
            .header("Rune", &gateway.rune)
            .json(&json!({"label": format!("c{i}")}));
        async move {
            let response = request.send().await.expect("answered");
            json_of(response).await
        }
    });
    for (status, body) in futures::future::join_all(concurrent).await {
        assert_eq!((status, body), (201, json!({"invoices": []})));
    }
    let all = gateway.calls_since(mark);
    assert_eq!(all.len(), 200, "{:?}", methods_of(&all));
    let concurrent_calls = &all[100..];
    for i in 0..50 {
        let params = json!({"label": format!("c{i}")});
        let positions: Vec<(usize, &str)> = concurrent_calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.params == params || c.params.get("params") == Some(&params))
            .map(|(n, c)| (n, c.method.as_str()))
            .collect();
        assert_eq!(
            positions.iter().map(|p| p.1).collect::<Vec<_>>(),
            ["checkrune", "listinvoices"],
            "request c{i}: checkrune, then the method, nothing else"
        );
        assert_eq!(
            concurrent_calls[positions[0].0].params,
            checkrune_params(&gateway.rune, "listinvoices", params)
        );
    }
    assert!(gateway.node.calls_of("showrunes").is_empty());
    let connections = gateway.node.connections_accepted();
    assert!(
        (1..=4).contains(&connections),
        "{connections} connections to lightningd for 100 requests (the pool has 4)"
    );
    let used: std::collections::BTreeSet<u64> = all.iter().map(|c| c.connection_id).collect();
    assert!(used.len() <= 4, "calls came on connections {used:?}");
    gateway.node.assert_no_violations();
}

// ---------------------------------------------------------------------------------------
// Other methods and paths
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn other_http_methods_on_a_cln_method_are_405() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        for rune in [true, false] {
            let mut request = gateway
                .http
                .request(method.clone(), gateway.url("/v1/getinfo"));
            if rune {
                request = request.header("Rune", &gateway.rune);
            }
            let response = parts(request.send().await.unwrap()).await;
            let case = format!("{method} /v1/getinfo, with a rune: {rune}");
            assert_json_error(&case, &response, 405, NOT_POST);
        }
    }
    assert_eq!(gateway.calls_since(mark), []);
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    for path in ["/v2/getinfo", "/v1", "/v1/getinfo/extra", "/nope"] {
        for method in [Method::GET, Method::POST] {
            let response = gateway
                .http
                .request(method.clone(), gateway.url(path))
                .header("Rune", &gateway.rune)
                .send()
                .await
                .unwrap();
            let response = parts(response).await;
            assert_json_error(&format!("{method} {path}"), &response, 404, PATH_NOT_FOUND);
        }
    }
    assert_eq!(gateway.calls_since(mark), []);
}

// ---------------------------------------------------------------------------------------
// GET /v1/list-methods
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn list_methods_needs_no_rune_and_lists_every_help_command() {
    let gateway = Gateway::start().await;
    let (status, headers, page) = parts(get(&gateway, "/v1/list-methods").await).await;
    assert_eq!(status, 200, "{page}");
    let media = content_type(&headers).unwrap_or_default();
    assert!(media.starts_with("text/html"), "Content-Type {media}");

    // What the mock's help says (the fixture's 213 commands and the plugin's own).
    let help = direct_rpc(&gateway, "help", json!({})).await;
    let commands: Vec<&str> = help["help"]
        .as_array()
        .expect("help lists commands")
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    let fixture_commands: Vec<&str> = fixtures().help_result["help"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert_eq!(fixture_commands.len(), 213);

    let lines: Vec<&str> = page.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        2 * commands.len(),
        "one `Command:` line and one separator per command:\n{page}"
    );
    let separator = lines[1];
    assert!(
        !separator.is_empty() && separator.chars().all(|c| c == '-'),
        "separator line {separator:?}"
    );
    let listed: Vec<&str> = lines
        .chunks(2)
        .map(|block| {
            assert_eq!(block[1], separator, "block {block:?}");
            block[0]
                .strip_prefix("Command: ")
                .unwrap_or_else(|| panic!("not a `Command:` line: {:?}", block[0]))
        })
        .collect();
    assert_eq!(listed, commands);
    for command in fixture_commands {
        assert!(listed.contains(&command), "{command} is missing");
    }
}

// ---------------------------------------------------------------------------------------
// Swagger
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn root_redirects_permanently_to_swagger_ui() {
    let gateway = Gateway::start().await;
    let response = get_unfollowed(&gateway, "/").await;
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(header(response.headers(), "location"), Some("/swagger-ui"));
}

/// Asserts `GET path` is Swagger UI's page: 200, HTML, naming swagger-ui.
async fn assert_swagger_ui_at(gateway: &Gateway, path: &str) {
    let (status, headers, html) = parts(get(gateway, path).await).await;
    assert_eq!(status, 200, "{path}: {html}");
    assert!(
        content_type(&headers)
            .unwrap_or_default()
            .starts_with("text/html"),
        "{path}: {headers:?}"
    );
    assert!(html.contains("swagger-ui"), "{path}: {html}");
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let gateway = Gateway::start().await;
    assert_swagger_ui_at(&gateway, "/swagger-ui/").await;
    // Following `/` ends there too.
    let response = get(&gateway, "/").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.url().path().starts_with("/swagger-ui"));
    // Its script comes from the binary, not a CDN.
    let response = get(&gateway, "/swagger-ui/swagger-ui-bundle.js").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.bytes().await.unwrap().len() > 10_000);
}

#[tokio::test]
async fn swagger_json_is_an_openapi_document_of_the_api() {
    let gateway = Gateway::start().await;
    let (status, headers, text) = parts(get(&gateway, "/swagger.json").await).await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type(&headers)
        .unwrap_or_default()
        .starts_with("application/json"));
    let document: Value = serde_json::from_str(&text).expect("the document is JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi {version:?}");
    assert!(document["info"]["title"].is_string());
    assert!(
        document["paths"]["/v1/{rpc_method}"]["post"].is_object(),
        "{}",
        document["paths"]["/v1/{rpc_method}"]
    );
    assert!(document["paths"]["/v1/list-methods"]["get"].is_object());
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert!(
        schemes.values().any(|s| s["type"] == "apiKey"
            && s["in"] == "header"
            && s["name"].as_str().map(str::to_ascii_lowercase) == Some("rune".into())),
        "{schemes:?}"
    );
}

#[tokio::test]
async fn swagger_root_option_moves_swagger_ui() {
    let gateway = Gateway::start_with(json!({"clnrest-swagger-root": "/docs"})).await;
    assert_swagger_ui_at(&gateway, "/docs/").await;

    let response = parts(get_unfollowed(&gateway, "/").await).await;
    assert_json_error("/", &response, 404, PATH_NOT_FOUND);
    let response = get_unfollowed(&gateway, "/swagger-ui/").await;
    assert_eq!(response.status().as_u16(), 404);
    // The document stays where it was.
    let response = get(&gateway, "/swagger.json").await;
    assert_eq!(response.status().as_u16(), 200);
}

// ---------------------------------------------------------------------------------------
// Content-Security-Policy
// ---------------------------------------------------------------------------------------

/// Requests of every kind; returns (what, status, CSP header).
async fn csp_of_every_kind(gateway: &Gateway) -> Vec<(String, u16, Option<String>)> {
    let client = no_redirect_client();
    let foreign = load_fixture("rpc/checkrune-c-foreign-rune.json")["request"]["params"]["rune"]
        .as_str()
        .unwrap()
        .to_string();
    let requests = vec![
        (
            "201",
            client
                .post(gateway.url("/v1/getinfo"))
                .header("Rune", &gateway.rune),
        ),
        ("403", client.post(gateway.url("/v1/getinfo"))),
        (
            "401",
            client
                .post(gateway.url("/v1/getinfo"))
                .header("Rune", &foreign),
        ),
        (
            "500",
            client
                .post(gateway.url("/v1/invoice"))
                .header("Rune", &gateway.rune)
                .json(&json!({"amount_msat": 1000})),
        ),
        (
            "404 unknown command",
            client
                .post(gateway.url("/v1/no-such-method"))
                .header("Rune", &gateway.rune),
        ),
        (
            "406",
            client
                .post(gateway.url("/v1/getinfo"))
                .header("Rune", &gateway.rune)
                .header("Accept", "image/png"),
        ),
        (
            "415",
            client
                .post(gateway.url("/v1/getinfo"))
                .header("Rune", &gateway.rune)
                .header("Content-Type", "text/plain")
                .body("x"),
        ),
        ("405", client.get(gateway.url("/v1/getinfo"))),
        ("404 path", client.get(gateway.url("/nope"))),
        ("list-methods", client.get(gateway.url("/v1/list-methods"))),
        ("redirect", client.get(gateway.url("/"))),
        ("swagger ui", client.get(gateway.url("/swagger-ui/"))),
        ("swagger json", client.get(gateway.url("/swagger.json"))),
        (
            "preflight",
            client
                .request(Method::OPTIONS, gateway.url("/v1/getinfo"))
                .header("Origin", "https://a.example")
                .header("Access-Control-Request-Method", "POST"),
        ),
    ];
    let mut seen = Vec::new();
    for (what, request) in requests {
        let response = request.send().await.unwrap();
        let csp = header(response.headers(), "content-security-policy").map(str::to_string);
        seen.push((what.to_string(), response.status().as_u16(), csp));
    }
    seen
}

#[tokio::test]
async fn every_response_carries_the_default_csp() {
    let gateway = Gateway::start().await;
    for (what, status, csp) in csp_of_every_kind(&gateway).await {
        assert_eq!(csp.as_deref(), Some(DEFAULT_CSP), "{what} ({status})");
    }
}

#[tokio::test]
async fn every_response_carries_a_custom_csp() {
    let custom = "default-src 'none'; img-src 'self'";
    let gateway = Gateway::start_with(json!({"clnrest-csp": custom})).await;
    let seen = csp_of_every_kind(&gateway).await;
    let statuses: Vec<u16> = seen.iter().map(|s| s.1).collect();
    assert_eq!(
        statuses,
        [201, 403, 401, 500, 404, 406, 415, 405, 404, 200, 308, 200, 200, 200]
    );
    for (what, status, csp) in seen {
        assert_eq!(csp.as_deref(), Some(custom), "{what} ({status})");
    }
}

// ---------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------

/// Sends `POST /v1/getinfo` from `origin`, with the rune or without, and asserts the status
/// and the `Access-Control-Allow-Origin` of the answer.
async fn assert_allow_origin(
    gateway: &Gateway,
    origin: &str,
    with_rune: bool,
    status: u16,
    allowed: Option<&str>,
) {
    let mut request = gateway.post("getinfo").header("Origin", origin);
    if with_rune {
        request = request.header("Rune", &gateway.rune);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status, "from {origin}");
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        allowed,
        "from {origin}"
    );
}

#[tokio::test]
async fn cors_allows_any_origin_by_default() {
    let gateway = Gateway::start().await;
    assert_allow_origin(&gateway, "https://a.example", true, 201, Some("*")).await;
    // Errors too.
    assert_allow_origin(&gateway, "https://z.example", false, 403, Some("*")).await;
}

#[tokio::test]
async fn cors_origin_list_allows_only_listed_origins() {
    let gateway = Gateway::start_with(json!({
        "clnrest-cors-origins": ["https://a.example", "https://b.example"]
    }))
    .await;
    for origin in ["https://a.example", "https://b.example"] {
        assert_allow_origin(&gateway, origin, true, 201, Some(origin)).await;
    }
    // A foreign origin is not allowed.
    assert_allow_origin(&gateway, "https://evil.example", true, 201, None).await;
}

/// Sends a preflight and checks it allows POST with `rune` and `content-type`.
async fn assert_preflight_allows(gateway: &Gateway, origin: &str, expected_origin: &str) {
    let mark = gateway.node.calls().len();
    let response = gateway
        .http
        .request(Method::OPTIONS, gateway.url("/v1/getinfo"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "rune,content-type")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!((200..300).contains(&status), "preflight answered {status}");
    let headers = response.headers().clone();
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(expected_origin)
    );
    let methods = header(&headers, "access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(
        methods == "*" || methods.split(',').any(|m| m.trim() == "POST"),
        "allow-methods {methods:?}"
    );
    let allowed = header(&headers, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
    for wanted in ["rune", "content-type"] {
        assert!(
            allowed.contains(&"*") || allowed.contains(&wanted),
            "allow-headers {allowed:?} lacks {wanted}"
        );
    }
    assert_eq!(gateway.calls_since(mark), [], "a preflight reaches nothing");
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    assert_preflight_allows(&gateway, "https://a.example", "*").await;

    let listed = Gateway::start_with(json!({
        "clnrest-cors-origins": ["https://a.example", "https://b.example"]
    }))
    .await;
    listed.settled().await;
    assert_preflight_allows(&listed, "https://b.example", "https://b.example").await;
}
