//! `clnrest-connect` inside a real lightningd (issue 15): called with `lightning-cli` (when it
//! sits next to `lightningd`; otherwise on `lightning-rpc` as lightning-cli does), its URL's
//! rune is a new rune of the node with the restrictions asked for, and the rune and the
//! certificates in the URL (client certificate required) work against the plugin.

use crate::node::{lightningd_binary, NodeConfig, RealNode};
use crate::support::{block_on, json_of};
use crate::Test;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

pub const TESTS: &[Test] = &[(
    "connect::the_url_from_lightning_cli_works",
    the_url_from_lightning_cli_works,
)];

/// `lightning-cli <args>` for `node` (JSON output), if lightning-cli is next to lightningd.
fn lightning_cli(node: &RealNode, args: &[&str]) -> Option<Value> {
    let cli = lightningd_binary()?.with_file_name("lightning-cli");
    if !cli.exists() {
        return None;
    }
    let output = Command::new(&cli)
        .arg(format!("--lightning-dir={}", node.lightning_dir.display()))
        .arg("--network=regtest")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cli.display()));
    assert!(
        output.status.success(),
        "lightning-cli {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    Some(serde_json::from_slice(&output.stdout).expect("lightning-cli prints JSON"))
}

fn the_url_from_lightning_cli_works() {
    let config = NodeConfig::with_options(&[
        ("clnrest-tls-extra-name", "node.example.com"),
        ("clnrest-tls-client-auth", "required"),
    ]);
    let node = RealNode::start(config);
    let port = node.rest_port().expect("a port");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !node.log().contains("REST server running at") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            node.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let result = lightning_cli(&node, &["-k", "clnrest-connect", "restrictions=readonly"])
        .unwrap_or_else(|| node.call("clnrest-connect", json!({"restrictions": "readonly"})));
    let url = result["url"].as_str().expect("a url");
    let prefix = format!("clnrest+https://node.example.com:{port}?rune=");
    let query = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} does not start with {prefix}"));
    let (rune, certs) = query.split_once("&certs=").expect("rune and certs");
    assert!(!result["qr"].as_str().unwrap_or_default().is_empty());

    // A rune of this node, with the restrictions asked for.
    let english = |rune: &str| {
        let shown = node.call("showrunes", json!({ "rune": rune }));
        shown["runes"][0]["restrictions_as_english"].clone()
    };
    let readonly = node.create_rune(json!("readonly"));
    assert_eq!(english(rune), english(&readonly));
    assert!(english(rune).as_str().is_some_and(|e| e.contains("list")));

    // The certificates: client-key.pem, client.pem, ca.pem, byte for byte.
    let certs = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(certs)
        .expect("base64url");
    let read = |file: &str| std::fs::read(node.network_dir.join(file)).unwrap();
    let (key, cert, ca) = (read("client-key.pem"), read("client.pem"), read("ca.pem"));
    assert_eq!(certs, [key.clone(), cert.clone(), ca.clone()].concat());
    assert_eq!(CertificateDer::pem_slice_iter(&certs).count(), 2);

    block_on(async {
        let identity = [key, cert].concat();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .identity(reqwest::Identity::from_pem(&identity).unwrap())
            .resolve("node.example.com", addr)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let post = |method: &str| {
            client
                .post(format!("https://node.example.com:{port}/v1/{method}"))
                .header("Rune", rune)
                .send()
        };
        let (status, body) = json_of(post("getinfo").await.expect("an answer")).await;
        assert_eq!(status, 201, "{body}");
        assert!(body["id"].is_string(), "{body}");
        let (status, body) = json_of(post("newaddr").await.expect("an answer")).await;
        assert_eq!(status, 401, "the rune is readonly: {body}");
        // Not through REST, even with an unrestricted rune.
        let admin = node.create_rune(Value::Null);
        let response = client
            .post(format!(
                "https://node.example.com:{port}/v1/clnrest-connect"
            ))
            .header("Rune", &admin)
            .send()
            .await
            .expect("an answer");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            body["message"],
            json!("clnrest-connect is for lightning-cli, not REST clients")
        );
    });
}
