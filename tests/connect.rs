//! `clnrest-connect` (docs/api.md, "Connection strings for wallets"): called as lightning-cli
//! calls it (a JSON-RPC call on the mock's `lightning-rpc`, forwarded to the plugin), its URL
//! is `clnrest+<protocol>://<host>:<port>?rune=<rune>[&certs=<base64url>]`, the certs decode to
//! `client-key.pem`, `client.pem` and `ca.pem` byte for byte, the rune and the certificates in
//! it work against the plugin, and the QR code text decodes back to the URL. REST refuses it.

use base64::Engine;
use mock_lightningd::gateway::{json_of, Gateway};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const INVALID_PARAMS: i64 = -32602;

/// `clnrest-connect` with `params`, through lightningd's socket; its `result`.
async fn connect(gateway: &Gateway, params: Value) -> Value {
    let answer = gateway.lightningd_call("clnrest-connect", params).await;
    assert!(answer.get("error").is_none(), "{answer}");
    answer["result"].clone()
}

/// The error of a refused `clnrest-connect` call.
async fn connect_error(gateway: &Gateway, params: Value) -> Value {
    let answer = gateway.lightningd_call("clnrest-connect", params).await;
    answer
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("accepted: {answer}"))
}

/// The URL split into its part before `?` and its query parameters, in order.
fn split_url(url: &str) -> (&str, Vec<(&str, &str)>) {
    let (base, query) = url.split_once('?').expect("a query");
    let params = query
        .split('&')
        .map(|pair| pair.split_once('=').expect("name=value"))
        .collect();
    (base, params)
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The QR code's text (dark modules blank, light ones `█`, `▀`, `▄`) read back as an image
/// and decoded.
fn decode_qr(text: &str) -> String {
    const SCALE: usize = 4;
    let rows: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let width = rows.iter().map(Vec::len).max().expect("some rows");
    assert!(rows.iter().all(|r| r.len() == width), "ragged QR text");
    // One char cell is one module wide and two tall; `true` is light.
    let mut modules = vec![vec![true; width]; rows.len() * 2];
    for (y, row) in rows.iter().enumerate() {
        for (x, cell) in row.iter().enumerate() {
            let (top, bottom) = match cell {
                '█' => (true, true),
                ' ' => (false, false),
                '▀' => (true, false),
                '▄' => (false, true),
                other => panic!("unexpected {other:?} in the QR text"),
            };
            modules[2 * y][x] = top;
            modules[2 * y + 1][x] = bottom;
        }
    }
    let (w, h) = (width * SCALE, modules.len() * SCALE);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        if modules[y / SCALE][x / SCALE] {
            255
        } else {
            0
        }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the text");
    grids[0].decode().expect("the QR code decodes").1
}

#[tokio::test]
async fn https_url_carries_the_certificates_and_a_restricted_rune() {
    let gateway = Gateway::start_with(json!({
        "clnrest-protocol": "https",
        "clnrest-tls-extra-name": ["node.example.com", "10.1.2.3"],
        "clnrest-tls-client-auth": "required",
    }))
    .await;
    let port = gateway.port;
    let dir = gateway.node.lightning_dir().to_path_buf();

    let result = connect(&gateway, json!({"restrictions": "readonly"})).await;
    let url = result["url"].as_str().expect("a url").to_string();
    let (base, params) = split_url(&url);
    // Default host: the first extra name.
    assert_eq!(base, format!("clnrest+https://node.example.com:{port}"));
    let names: Vec<&str> = params.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["rune", "certs"], "{url}");
    let rune = params[0].1;
    let certs = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(params[1].1)
        .expect("certs is unpadded base64url");
    let (key, cert, ca) = (
        read(&dir, "client-key.pem"),
        read(&dir, "client.pem"),
        read(&dir, "ca.pem"),
    );
    assert_eq!(
        certs,
        [key.clone(), cert.clone(), ca.clone()].concat(),
        "certs is client-key.pem, client.pem and ca.pem, concatenated"
    );
    assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));

    // The rune and the certificates from the URL work (client certificates are required).
    let mut identity = key.clone();
    identity.extend_from_slice(&cert);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .resolve("node.example.com", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let post = |method: &str| {
        client
            .post(format!("https://node.example.com:{port}/v1/{method}"))
            .header("Rune", rune)
            .json(&json!({}))
            .send()
    };
    let (status, body) = json_of(post("getinfo").await.expect("an answer")).await;
    assert_eq!(status, 201, "{body}");
    // The rune is the readonly one asked for.
    let (status, body) = json_of(post("invoice").await.expect("an answer")).await;
    assert_eq!(status, 401, "{body}");

    let qr = result["qr"].as_str().expect("a qr string");
    assert!(!qr.trim().is_empty());
    assert_eq!(decode_qr(qr), url, "the QR code holds the URL");

    // A host (and port) given by position; an existing rune by name.
    let result = connect(&gateway, json!(["10.1.2.3:8443"])).await;
    let url = result["url"].as_str().unwrap();
    assert!(
        url.starts_with("clnrest+https://10.1.2.3:8443?rune="),
        "{url}"
    );
    let result = connect(&gateway, json!({"host": "::1", "rune": gateway.rune})).await;
    let url = result["url"].as_str().unwrap();
    let (base, params) = split_url(url);
    assert_eq!(base, format!("clnrest+https://[::1]:{port}"));
    assert_eq!(params[0], ("rune", gateway.rune.as_str()));
}

#[tokio::test]
async fn http_url_has_no_certs_and_rest_refuses_the_method() {
    let gateway = Gateway::start().await;
    let port = gateway.port;
    let result = connect(&gateway, json!({})).await;
    let url = result["url"].as_str().unwrap();
    let prefix = format!("clnrest+http://127.0.0.1:{port}?rune=");
    let rune = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} does not start with {prefix}"));
    assert!(!rune.contains('&'), "no certs with http: {url}");
    assert_eq!(decode_qr(result["qr"].as_str().unwrap()), url);
    // A new unrestricted rune, which works.
    let (status, body) = json_of(
        gateway
            .post("getinfo")
            .header("Rune", rune)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Refused params.
    for params in [
        json!({"rune": gateway.rune, "restrictions": "readonly"}),
        json!({"host": "http://evil?x"}),
        json!({"host": "node:0"}),
        json!({"hots": "node"}),
        json!(["a", "readonly", "rune", "extra"]),
    ] {
        let error = connect_error(&gateway, params.clone()).await;
        assert_eq!(error["code"], json!(INVALID_PARAMS), "{params}: {error}");
    }

    // Through REST, whatever the rune: nothing reaches lightningd.
    gateway.node.record_calls(false);
    gateway.node.record_calls(true);
    let (status, body) = json_of(gateway.call("clnrest-connect", json!({})).await).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"code": -32600, "message": "clnrest-connect is for lightning-cli, not REST clients"})
    );
    assert!(
        gateway.node.calls_of("createrune").is_empty()
            && gateway.node.calls_of("checkrune").is_empty(),
        "{:?}",
        gateway.node.calls()
    );
}
