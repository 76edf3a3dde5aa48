//! Webhooks in a real node: `clnrest-webhook-add` through lightningd, invoices' real
//! `invoice_creation` notifications delivered to a receiver on 127.0.0.1, and deliveries
//! still pending when the node stops delivered after it starts again (the endpoint from
//! lightningd's datastore, the events from the plugin's pending file).

use crate::node::{NodeConfig, RealNode};
use crate::Test;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TESTS: &[Test] = &[(
    "webhooks::deliveries_pending_when_the_node_stops_arrive_after_it_restarts",
    deliveries_pending_when_the_node_stops_arrive_after_it_restarts,
)];

/// What the receiver got: `(webhook-id, body)` of each request it accepted; while `hang`
/// is set it answers nothing.
#[derive(Default)]
struct Received {
    accepted: Mutex<Vec<(String, Value)>>,
    hang: AtomicBool,
}

async fn hook(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if received.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.accepted.lock().unwrap().push((id, body));
    StatusCode::OK
}

fn invoice(node: &RealNode, label: &str) {
    node.call(
        "invoice",
        json!({"amount_msat": 1000, "label": label, "description": "webhook test"}),
    );
}

fn deliveries_pending_when_the_node_stops_arrive_after_it_restarts() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let received = Arc::new(Received::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(received.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    let directory = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::http();
    config.directory = Some(directory.path().to_path_buf());
    let mut node = RealNode::start(config.clone());
    let added = node.call(
        "clnrest-webhook-add",
        json!({"url": url, "topics": ["invoice_creation"], "allow_http": true}),
    );
    let id = added["id"].as_str().expect("an id").to_string();
    assert!(
        added["secret"].as_str().unwrap().starts_with("whsec_"),
        "{added}"
    );

    // Delivered while everything is up.
    invoice(&node, "first");
    wait_for(&received, 1);

    // The receiver stops answering: the next delivery hangs, the others wait behind it.
    received.hang.store(true, Ordering::SeqCst);
    for label in ["pending-1", "pending-2", "pending-3"] {
        invoice(&node, label);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.call("clnrest-webhook-list", json!({}))["webhooks"][0]["pending"] != 3 {
        assert!(Instant::now() < deadline, "the invoices never got pending");
        std::thread::sleep(Duration::from_millis(50));
    }
    node.stop();
    drop(node);

    received.hang.store(false, Ordering::SeqCst);
    let node = RealNode::start(config);
    let listed = node.call("clnrest-webhook-list", json!({}));
    assert_eq!(listed["webhooks"][0]["id"], id.as_str(), "{listed}");
    invoice(&node, "after");
    let accepted = wait_for(&received, 5);
    let labels: Vec<&str> = accepted
        .iter()
        .map(|(_, body)| body["payload"]["label"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        labels,
        ["first", "pending-1", "pending-2", "pending-3", "after"],
        "{accepted:?}"
    );
    for (webhook_id, body) in &accepted {
        assert_eq!(body["topic"], "invoice_creation");
        assert_eq!(
            *webhook_id,
            format!("{}-{}", body["epoch"].as_str().unwrap(), body["seq"]),
        );
    }
    assert_ne!(
        accepted[3].1["epoch"], accepted[4].1["epoch"],
        "two processes, two epochs"
    );
    drop(runtime);
}

/// Waits up to 30 s for `count` accepted deliveries, each event once; returns them.
fn wait_for(received: &Received, count: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = std::collections::HashSet::new();
        let accepted: Vec<_> = received
            .accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| seen.insert(id.clone()))
            .cloned()
            .collect();
        if accepted.len() >= count {
            return accepted;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} deliveries: {accepted:?}",
            accepted.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
