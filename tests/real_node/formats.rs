//! The four body formats (JSON, YAML, XML, form) and the four `Accept` formats on `invoice`,
//! `listinvoices` and `datastore`, against a real lightningd: what a body says is what the node
//! stores, and every response format carries the node's answer.

use crate::node::RealNode;
use crate::support::{block_on, client, json_of};
use crate::Test;
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    (
        "formats::each_body_format_reaches_lightningd",
        each_body_format_reaches_lightningd,
    ),
    (
        "formats::each_accept_format_carries_the_answer",
        each_accept_format_carries_the_answer,
    ),
];

/// `(Content-Type, invoice body, datastore body)` in one format; labels and keys name it.
fn bodies(format: &str) -> (&'static str, String, String) {
    match format {
        "json" => (
            "application/json",
            r#"{"amount_msat": 1000, "label": "json", "description": "coffee"}"#.into(),
            r#"{"key": ["fmt", "json"], "string": "v-json"}"#.into(),
        ),
        "yaml" => (
            "application/yaml",
            "amount_msat: 1000\nlabel: yaml\ndescription: coffee\n".into(),
            "key:\n  - fmt\n  - yaml\nstring: v-yaml\n".into(),
        ),
        "xml" => (
            "application/xml",
            "<invoice><amount_msat>1000</amount_msat><label>xml</label>\
             <description>coffee</description></invoice>"
                .into(),
            "<datastore><key>fmt</key><key>xml</key><string>v-xml</string></datastore>".into(),
        ),
        "form" => (
            "application/x-www-form-urlencoded",
            "amount_msat=1000&label=form&description=coffee".into(),
            "key%5B0%5D=fmt&key%5B1%5D=form&string=v-form".into(),
        ),
        other => panic!("no format {other}"),
    }
}

const FORMATS: [&str; 4] = ["json", "yaml", "xml", "form"];

fn each_body_format_reaches_lightningd() {
    let node = RealNode::start_http();
    let rune = node.create_rune(Value::Null);
    block_on(async {
        let http = client();
        for format in FORMATS {
            let (content_type, invoice, datastore) = bodies(format);
            for (method, body) in [("invoice", invoice), ("datastore", datastore)] {
                let response = http
                    .post(node.url(&format!("/v1/{method}")))
                    .header("Rune", &rune)
                    .header("Content-Type", content_type)
                    .body(body)
                    .send()
                    .await
                    .expect("an answer");
                let (status, answer) = json_of(response).await;
                assert_eq!(status, 201, "{method} in {format}: {answer}");
            }
        }
    });
    for format in FORMATS {
        let invoices = node.call("listinvoices", json!({"label": format}))["invoices"].clone();
        assert_eq!(
            invoices[0]["amount_msat"],
            json!(1000),
            "{format}: {invoices}"
        );
        assert_eq!(invoices[0]["description"], json!("coffee"), "{format}");
        let stored = node.call("listdatastore", json!({"key": ["fmt", format]}));
        assert_eq!(
            stored["datastore"][0]["string"],
            json!(format!("v-{format}")),
            "{format}: {stored}"
        );
    }
}

fn each_accept_format_carries_the_answer() {
    let node = RealNode::start_http();
    let rune = node.create_rune(Value::Null);
    for label in ["first", "second"] {
        node.call(
            "invoice",
            json!({"amount_msat": 2000, "label": label, "description": "tea"}),
        );
    }
    let expected = node.call("listinvoices", json!({}));
    block_on(async {
        let http = client();
        let fetch = |accept: &'static str| {
            http.post(node.url("/v1/listinvoices"))
                .header("Rune", &rune)
                .header("Accept", accept)
                .send()
        };

        let response = fetch("application/json").await.expect("an answer");
        let (status, json_answer) = json_of(response).await;
        assert_eq!(status, 201);
        assert_eq!(json_answer, expected, "JSON is lightningd's result");

        let response = fetch("application/yaml").await.expect("an answer");
        assert_eq!(response.status().as_u16(), 201);
        assert_content_type(&response, "application/yaml");
        let text = response.text().await.expect("a body");
        let yaml: Value = serde_norway::from_str(&text).expect("the body is YAML");
        assert_eq!(yaml, expected, "YAML carries lightningd's result");

        let response = fetch("application/xml").await.expect("an answer");
        assert_eq!(response.status().as_u16(), 201);
        assert_content_type(&response, "application/xml");
        let text = response.text().await.expect("a body");
        assert!(text.contains("<listinvoices>"), "{text}");
        for label in ["first", "second"] {
            assert!(text.contains(&format!("<label>{label}</label>")), "{text}");
        }
        assert!(text.contains("<amount_msat>2000</amount_msat>"), "{text}");

        let response = fetch("application/x-www-form-urlencoded")
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 201);
        assert_content_type(&response, "application/x-www-form-urlencoded");
        let text = response.text().await.expect("a body");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
            .into_owned()
            .collect();
        let labels: Vec<&str> = pairs
            .iter()
            .filter(|(key, _)| key.starts_with("invoices[") && key.ends_with("][label]"))
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(labels, ["first", "second"], "{text}");

        // No acceptable format: 406, before anything reaches lightningd.
        let response = http
            .post(node.url("/v1/invoice"))
            .header("Rune", &rune)
            .header("Accept", "image/png")
            .json(&json!({"amount_msat": 1, "label": "never", "description": "x"}))
            .send()
            .await
            .expect("an answer");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 406, "{body}");
    });
    let never = node.call("listinvoices", json!({"label": "never"}));
    assert_eq!(never["invoices"], json!([]), "a 406 created an invoice");
}

fn assert_content_type(response: &reqwest::Response, expected: &str) {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with(expected),
        "content-type {content_type}, expected {expected}"
    );
}
