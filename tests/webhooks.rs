//! Signed webhooks (docs/webhooks.md): `clnrest-webhook-add`/`-list`/`-remove` through the
//! mock lightningd's socket, deliveries to small axum receivers on 127.0.0.1 that fail,
//! stall or go away, and the plugin killed and restarted with deliveries pending.
//!
//! Retry delays are shortened with the test-only environment variables
//! (`CLNREST_WEBHOOK_BACKOFF_MS` and friends, `src/webhooks/mod.rs`).
//!
//! `signatures_verify_with_the_standardwebhooks_python_package` needs the `standardwebhooks`
//! Python package (`python3 -m pip install standardwebhooks`), so it is ignored by default.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use mock_lightningd::gateway::{self, Gateway};
use mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for deliveries.
const WAIT: Duration = Duration::from_secs(20);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Attempt {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Bytes,
    accepted: bool,
}

impl Attempt {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What the receiver does: fail the first `fail_first` requests, fail all while `failing`,
/// take `delay_ms` to answer (`first_delay_ms` for the first request).
#[derive(Default)]
struct Behaviour {
    attempts: Mutex<Vec<Attempt>>,
    /// The `webhook-id` of every request, as it arrives (an attempt is recorded when it is
    /// answered).
    arrived: Mutex<Vec<String>>,
    fail_first: AtomicUsize,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    first_delay_ms: AtomicU64,
    seen: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Receiver {
    url: String,
    behaviour: Arc<Behaviour>,
}

impl Receiver {
    async fn start() -> Receiver {
        let behaviour = Arc::new(Behaviour::default());
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(behaviour.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{address}/hook"),
            behaviour,
        }
    }

    /// The same receiver over HTTPS with this certificate chain and key (PEM).
    async fn start_tls(cert_pem: &str, key_pem: &str) -> Receiver {
        let behaviour = Arc::new(Behaviour::default());
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(behaviour.clone());
        let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
            .unwrap();
        let key = <rustls::pki_types::PrivateKeyDer as rustls::pki_types::pem::PemObject>::from_pem_slice(
            key_pem.as_bytes(),
        )
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        Receiver {
            url: format!("https://{address}/hook"),
            behaviour,
        }
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.behaviour.attempts.lock().unwrap().clone()
    }

    /// The accepted bodies, each event once (the first time it was accepted), in order.
    fn delivered(&self) -> Vec<Attempt> {
        let mut seen = std::collections::HashSet::new();
        self.attempts()
            .into_iter()
            .filter(|a| a.accepted && seen.insert(a.id.clone()))
            .collect()
    }

    async fn wait_delivered(&self, count: usize) -> Vec<Attempt> {
        let deadline = Instant::now() + WAIT;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} delivered within {WAIT:?}; attempts: {:?}",
                delivered.len(),
                self.attempts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(
    State(behaviour): State<Arc<Behaviour>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // Counted down when the handler ends, also when it is dropped (the client went away).
    struct InFlight<'a>(&'a AtomicUsize);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let in_flight = behaviour.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(&behaviour.in_flight);
    behaviour
        .max_in_flight
        .fetch_max(in_flight, Ordering::SeqCst);
    let index = behaviour.seen.fetch_add(1, Ordering::SeqCst);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    behaviour.arrived.lock().unwrap().push(id.to_string());
    let delay = if index == 0 {
        behaviour.first_delay_ms.load(Ordering::SeqCst)
    } else {
        behaviour.delay_ms.load(Ordering::SeqCst)
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let accepted = !behaviour.failing.load(Ordering::SeqCst)
        && index >= behaviour.fail_first.load(Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    behaviour.attempts.lock().unwrap().push(Attempt {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body,
        accepted,
    });
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The plugin behind the mock, over HTTP, with these test-only environment variables.
async fn start_gateway(env: &[(&str, &str)]) -> Gateway {
    let port = MockLightningd::free_port();
    let mut builder = MockLightningd::builder()
        .options(json!({"clnrest-port": port, "clnrest-protocol": "http"}));
    for (name, value) in env {
        builder = builder.plugin_env(name, value);
    }
    Gateway::around(builder.start().await, port)
}

/// Retries after ~20 ms, doubling.
const FAST: &[(&str, &str)] = &[("CLNREST_WEBHOOK_BACKOFF_MS", "20")];

/// A plugin method through lightningd's socket: its `result`, or panics with the error.
async fn call(gateway: &Gateway, method: &str, params: Value) -> Value {
    let answer = gateway.lightningd_call(method, params).await;
    answer
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {answer}"))
}

async fn add(gateway: &Gateway, params: Value) -> Value {
    call(gateway, "clnrest-webhook-add", params).await
}

async fn list(gateway: &Gateway) -> Vec<Value> {
    call(gateway, "clnrest-webhook-list", json!({})).await["webhooks"]
        .as_array()
        .cloned()
        .unwrap()
}

async fn notify_invoices(gateway: &Gateway, labels: impl IntoIterator<Item = String>) {
    for label in labels {
        assert!(
            gateway
                .node
                .notify("invoice_creation", json!({"label": label, "msat": 1000}))
                .await
        );
    }
}

fn labels(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

fn delivered_labels(delivered: &[Attempt]) -> Vec<String> {
    delivered
        .iter()
        .map(|a| a.json()["payload"]["label"].as_str().unwrap().to_string())
        .collect()
}

/// Checks a signature with the HMAC of the secret's decoded bytes.
fn signature_is_valid(secret: &str, attempt: &Attempt) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = [
        attempt.id.as_bytes(),
        b".",
        attempt.timestamp.as_bytes(),
        b".",
        &attempt.body,
    ]
    .concat();
    let Some(signature) = attempt.signature.strip_prefix("v1,") else {
        return false;
    };
    let Ok(signature) = STANDARD.decode(signature) else {
        return false;
    };
    ring::hmac::verify(&key, &signed, &signature).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_remove_with_secrets_shown_once_and_refused_through_rest() {
    let gateway = start_gateway(FAST).await;
    let added = add(
        &gateway,
        json!({"url": "https://example.com/hook", "topics": ["invoice_payment"]}),
    )
    .await;
    let id = added["id"].as_str().unwrap().to_string();
    let secret = added["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{added}");
    assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 32);
    assert_eq!(added["topics"], json!(["invoice_payment"]));

    // Positional params, as `lightning-cli clnrest-webhook-add <url> null true` sends them.
    let second = add(&gateway, json!(["http://127.0.0.1:9/x", null, true])).await;
    assert_eq!(second["topics"], Value::Null);
    assert_ne!(second["secret"], added["secret"]);

    let listed = list(&gateway).await;
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|w| w.get("secret").is_none()),
        "{listed:?}"
    );
    let first = listed.iter().find(|w| w["id"] == id.as_str()).unwrap();
    assert_eq!(first["url"], "https://example.com/hook");
    assert_eq!(first["status"], "ok");

    // Stored in the datastore.
    let stored = gateway
        .lightningd_call("listdatastore", json!({"key": ["clnrest", "webhooks"]}))
        .await;
    assert_eq!(stored["result"]["datastore"].as_array().unwrap().len(), 2);

    for (params, why) in [
        (
            json!({"url": "http://127.0.0.1:8080/x"}),
            "http without allow_http",
        ),
        (
            json!({"url": "http://example.com/x", "allow_http": true}),
            "http to a public name",
        ),
        (json!({"url": "ftp://example.com/x"}), "not http"),
        (
            json!({"url": "https://example.com", "topics": []}),
            "no topics",
        ),
        (
            json!({"url": "https://example.com", "colour": 1}),
            "unknown param",
        ),
        (json!({}), "no url"),
    ] {
        let answer = gateway.lightningd_call("clnrest-webhook-add", params).await;
        assert_eq!(answer["error"]["code"], -32602, "{why}: {answer}");
    }

    // Never through REST, whatever the rune.
    for method in [
        "clnrest-webhook-add",
        "clnrest-webhook-list",
        "clnrest-webhook-remove",
    ] {
        let response = gateway
            .call(method, json!({"url": "https://example.com/x"}))
            .await;
        let (status, body) = gateway::json_of(response).await;
        assert_eq!(status, 403, "{method}");
        assert_eq!(
            body["message"],
            format!("{method} is for lightning-cli, not REST clients")
        );
    }

    let removed = call(&gateway, "clnrest-webhook-remove", json!({ "id": id })).await;
    assert_eq!(removed["id"], id.as_str());
    assert_eq!(list(&gateway).await.len(), 1);
    let again = gateway
        .lightningd_call("clnrest-webhook-remove", json!({ "id": id }))
        .await;
    assert_eq!(again["error"]["code"], -32602, "{again}");
    let stored = gateway
        .lightningd_call("listdatastore", json!({"key": ["clnrest", "webhooks"]}))
        .await;
    assert_eq!(stored["result"]["datastore"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_at_first_gets_every_event_in_order_signed() {
    let gateway = start_gateway(FAST).await;
    let receiver = Receiver::start().await;
    receiver.behaviour.fail_first.store(3, Ordering::SeqCst);
    let added = add(
        &gateway,
        json!({"url": receiver.url, "allow_http": true, "topics": ["invoice_creation"]}),
    )
    .await;
    let secret = added["secret"].as_str().unwrap().to_string();

    let sent = labels("inv", 0..30);
    for (i, label) in sent.iter().enumerate() {
        notify_invoices(&gateway, [label.clone()]).await;
        if i % 10 == 0 {
            // Another topic, not asked for.
            gateway.node.notify("connect", json!({"id": "02ab"})).await;
        }
    }
    let delivered = receiver.wait_delivered(sent.len()).await;
    assert_eq!(delivered_labels(&delivered), sent);

    let attempts = receiver.attempts();
    // The first event was tried 4 times under one id, and nothing overtook it.
    assert!(
        attempts[..4].iter().all(|a| a.id == attempts[0].id),
        "{attempts:?}"
    );
    assert_eq!(attempts.iter().filter(|a| a.accepted).count(), sent.len());
    // Bodies: {"seq","epoch","topic","payload"}, the id their position.
    let mut last_seq = 0;
    for attempt in &delivered {
        let body = attempt.json();
        assert_eq!(body["topic"], "invoice_creation");
        let seq = body["seq"].as_u64().unwrap();
        assert!(seq > last_seq);
        last_seq = seq;
        assert_eq!(
            attempt.id,
            format!("{}-{seq}", body["epoch"].as_str().unwrap())
        );
        assert_eq!(attempt.content_type, "application/json");
        assert!(signature_is_valid(&secret, attempt), "{attempt:?}");
    }
    assert!(attempts.iter().all(|a| signature_is_valid(&secret, a)));
    assert!(!signature_is_valid(
        &secret,
        &Attempt {
            body: Bytes::from_static(b"{}"),
            ..delivered[0].clone()
        }
    ));

    let listed = list(&gateway).await;
    assert_eq!(listed[0]["status"], "ok");
    assert_eq!(listed[0]["pending"], 0);
    assert_eq!(
        listed[0]["last_acked"],
        delivered.last().unwrap().id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_gets_one_delivery_at_a_time_and_a_timeout_is_retried() {
    let gateway = start_gateway(&[
        ("CLNREST_WEBHOOK_BACKOFF_MS", "20"),
        ("CLNREST_WEBHOOK_TIMEOUT_MS", "400"),
    ])
    .await;
    let receiver = Receiver::start().await;
    // The first answer comes after the timeout; the others take 100 ms.
    receiver
        .behaviour
        .first_delay_ms
        .store(1500, Ordering::SeqCst);
    receiver.behaviour.delay_ms.store(100, Ordering::SeqCst);
    add(&gateway, json!({"url": receiver.url, "allow_http": true})).await;

    let sent = labels("slow", 0..8);
    notify_invoices(&gateway, sent.clone()).await;
    let delivered = receiver.wait_delivered(sent.len()).await;
    assert_eq!(delivered_labels(&delivered), sent);
    // The event that timed out was sent again under the same id, before the next one.
    let arrived = receiver.behaviour.arrived.lock().unwrap().clone();
    assert_eq!(arrived[0], delivered[0].id);
    assert_eq!(arrived[1], delivered[0].id, "{arrived:?}");
    // Once the receiver is done with the timed-out request (dropped when the plugin gave up
    // on it), never two at once.
    let deadline = Instant::now() + WAIT;
    while receiver.behaviour.in_flight.load(Ordering::SeqCst) > 0 {
        assert!(Instant::now() < deadline, "a request never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.behaviour.max_in_flight.store(0, Ordering::SeqCst);
    let more = labels("more", 0..5);
    notify_invoices(&gateway, more.clone()).await;
    let delivered = receiver.wait_delivered(sent.len() + more.len()).await;
    assert_eq!(delivered_labels(&delivered[sent.len()..]), more);
    assert_eq!(receiver.behaviour.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_the_plugin_being_killed_and_restarted() {
    let mut gateway = start_gateway(FAST).await;
    let receiver = Receiver::start().await;
    receiver.behaviour.failing.store(true, Ordering::SeqCst);
    let added = add(&gateway, json!({"url": receiver.url, "allow_http": true})).await;
    let id = added["id"].as_str().unwrap().to_string();
    let secret = added["secret"].as_str().unwrap().to_string();

    let before = labels("before", 0..5);
    notify_invoices(&gateway, before.clone()).await;
    let deadline = Instant::now() + WAIT;
    while list(&gateway).await[0]["pending"] != 5 || receiver.attempts().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", list(&gateway).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(list(&gateway).await[0]["status"], "retrying");
    let pending_file = gateway
        .node
        .lightning_dir()
        .join(format!("clnrest-webhooks/{id}.jsonl"));
    assert!(pending_file.exists());

    gateway.node.restart_plugin().await;
    assert_eq!(gateway.node.init_result(), &json!({}));
    let after = labels("after", 0..3);
    notify_invoices(&gateway, after.clone()).await;
    let listed = list(&gateway).await;
    assert_eq!(listed.len(), 1, "loaded from the datastore: {listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());

    receiver.behaviour.failing.store(false, Ordering::SeqCst);
    let delivered = receiver.wait_delivered(before.len() + after.len()).await;
    let expected: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert_eq!(delivered_labels(&delivered), expected);
    // Two processes, two epochs: the ids stay unique.
    let epochs: Vec<String> = delivered
        .iter()
        .map(|a| a.json()["epoch"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(epochs[0], epochs[before.len()]);
    assert!(delivered.iter().all(|a| signature_is_valid(&secret, a)));
    // Acknowledgements are recorded in the pending file at most every 100 ms (the last of a
    // burst 100 ms after it): once that has passed, nothing acknowledged is delivered again
    // across a restart either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.node.restart_plugin().await;
    notify_invoices(&gateway, ["last".to_string()]).await;
    let delivered = receiver.wait_delivered(expected.len() + 1).await;
    assert_eq!(delivered_labels(&delivered).last().unwrap(), "last");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.attempts().iter().filter(|a| a.accepted).count(),
        expected.len() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_past_the_retry_window_is_marked_and_its_backlog_bounded() {
    let gateway = start_gateway(&[
        ("CLNREST_WEBHOOK_BACKOFF_MS", "20"),
        ("CLNREST_WEBHOOK_RETRY_WINDOW_MS", "300"),
        ("CLNREST_WEBHOOK_BACKLOG_BYTES", "4000"),
    ])
    .await;
    let receiver = Receiver::start().await;
    receiver.behaviour.failing.store(true, Ordering::SeqCst);
    add(
        &gateway,
        json!({"url": receiver.url, "allow_http": true, "topics": ["invoice_creation"]}),
    )
    .await;
    notify_invoices(&gateway, labels("x", 0..100)).await;

    let deadline = Instant::now() + WAIT;
    let listed = loop {
        let listed = list(&gateway).await;
        if listed[0]["status"] == "failing" {
            break listed;
        }
        assert!(Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let webhook = &listed[0];
    assert!(
        webhook["pending_bytes"].as_u64().unwrap() <= 4000,
        "{webhook}"
    );
    assert!(webhook["dropped"].as_u64().unwrap() > 0, "{webhook}");
    assert_eq!(
        webhook["pending"].as_u64().unwrap() + webhook["dropped"].as_u64().unwrap(),
        100
    );
    assert_eq!(webhook["last_error"], "HTTP 503");
    assert!(gateway
        .node
        .wait_for_log(|l| l.message.contains("marked failing"), WAIT)
        .await
        .is_some());
}

/// Every delivery verifies with the `standardwebhooks` Python package (the specification's
/// reference library), and a tampered one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the standardwebhooks Python package"]
async fn signatures_verify_with_the_standardwebhooks_python_package() {
    let gateway = start_gateway(FAST).await;
    let receiver = Receiver::start().await;
    let added = add(&gateway, json!({"url": receiver.url, "allow_http": true})).await;
    let secret = added["secret"].as_str().unwrap().to_string();
    gateway
        .node
        .notify(
            "invoice_creation",
            json!({"label": "caf\u{e9} \u{26a1} \"q\" \\ </>", "msat": 1, "nested": [1.5, null, {"a": true}]}),
        )
        .await;
    notify_invoices(&gateway, labels("v", 0..5)).await;
    let delivered = receiver.wait_delivered(6).await;

    let cases: Vec<Value> = delivered
        .iter()
        .map(|a| {
            json!({
                "headers": {
                    "webhook-id": a.id,
                    "webhook-timestamp": a.timestamp,
                    "webhook-signature": a.signature,
                },
                "body": STANDARD.encode(&a.body),
            })
        })
        .collect();
    let script = r#"
import base64, json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
case = json.load(sys.stdin)
hook = Webhook(case["secret"])
for c in case["cases"]:
    body = base64.b64decode(c["body"])
    hook.verify(body, c["headers"])
    try:
        hook.verify(body + b" ", c["headers"])
        sys.exit("a tampered body verified")
    except WebhookVerificationError:
        pass
print("verified", len(case["cases"]))
"#;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!({"secret": secret, "cases": cases}).to_string();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "python verification failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "verified 6");
}

/// An https URL goes through the TLS client (rustls, the system's roots): a server that does not
/// speak TLS is a failure like any other, retried, and the plugin keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_that_fails_the_handshake_is_retried() {
    let gateway = start_gateway(FAST).await;
    let receiver = Receiver::start().await;
    let url = receiver.url.replace("http://", "https://");
    add(&gateway, json!({ "url": url })).await;
    notify_invoices(&gateway, ["tls".to_string()]).await;
    let deadline = Instant::now() + WAIT;
    let webhook = loop {
        let listed = list(&gateway).await;
        if listed[0]["attempts"].as_u64().unwrap_or(0) >= 2 {
            break listed[0].clone();
        }
        assert!(Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(webhook["status"], "retrying");
    assert_eq!(webhook["pending"], 1);
    assert!(webhook["last_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    assert!(receiver.delivered().is_empty());
    let (status, _) = gateway::json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201);
}

/// `https://` receivers are verified against the system's CA certificates (here
/// `SSL_CERT_FILE`, as an operator's own CA installed with `update-ca-certificates` would be):
/// with a store that lacks the receiver's CA nothing reaches it and the error names the
/// certificate; with one that has it, every event arrives, in order and signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_with_a_certificate_from_a_trusted_ca_gets_deliveries() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let ca_file = store.path().join("ca-certificates.crt");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let receiver = Receiver::start_tls(&leaf.pem(), &leaf_key.serialize_pem()).await;

    // With a store that lacks that CA, the certificate is refused and nothing is delivered.
    let other_ca = rcgen::CertificateParams::default()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let other_file = store.path().join("other.crt");
    std::fs::write(&other_file, other_ca.pem()).unwrap();
    let mut env = FAST.to_vec();
    env.push(("SSL_CERT_FILE", other_file.to_str().unwrap()));
    let untrusting = start_gateway(&env).await;
    add(&untrusting, json!({ "url": receiver.url })).await;
    notify_invoices(&untrusting, ["refused".to_string()]).await;
    let deadline = Instant::now() + WAIT;
    let webhook = loop {
        let listed = list(&untrusting).await;
        if listed[0]["attempts"].as_u64().unwrap_or(0) >= 2 {
            break listed[0].clone();
        }
        assert!(Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        webhook["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate")),
        "{webhook}"
    );
    assert!(receiver.attempts().is_empty());
    drop(untrusting);

    let ca_path = ca_file.to_str().unwrap();
    let mut env = FAST.to_vec();
    env.push(("SSL_CERT_FILE", ca_path));
    let gateway = start_gateway(&env).await;
    let added = add(&gateway, json!({ "url": receiver.url })).await;
    notify_invoices(&gateway, labels("tls", 0..3)).await;
    let delivered = receiver.wait_delivered(3).await;
    assert_eq!(delivered_labels(&delivered), labels("tls", 0..3));
    let secret = added["secret"].as_str().unwrap();
    assert!(delivered.iter().all(|a| signature_is_valid(secret, a)));
}

/// A bare HTTP/1.1 receiver that answers `204` to every request, counts the connections it
/// accepts, and, with `close_after_answer`, closes each connection right after its answer
/// (without `Connection: close`: what a receiver whose keep-alive timer fires does).
struct RawReceiver {
    url: String,
    connections: Arc<AtomicUsize>,
    /// `webhook-id`s in arrival order.
    ids: Arc<Mutex<Vec<String>>>,
}

impl RawReceiver {
    async fn start(close_after_answer: bool) -> RawReceiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let (counted, recorded) = (connections.clone(), ids.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        // The head, then as many body bytes as Content-Length says.
                        let head_end = loop {
                            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                        let field = |name: &str| {
                            head.lines()
                                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                                .unwrap_or_default()
                        };
                        let length: usize = field("content-length:").parse().unwrap_or(0);
                        while buffer.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        recorded.lock().unwrap().push(field("webhook-id:"));
                        buffer.drain(..head_end + length);
                        let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
                        if stream.write_all(answer).await.is_err() || close_after_answer {
                            return;
                        }
                    }
                });
            }
        });
        RawReceiver {
            url: format!("http://{address}/hook"),
            connections,
            ids,
        }
    }

    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let ids = self.ids.lock().unwrap().clone();
            if ids.len() >= count {
                return ids;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count}: {ids:?}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Deliveries to an endpoint go over one kept connection, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_an_endpoint_reuse_one_connection() {
    let gateway = start_gateway(FAST).await;
    let receiver = RawReceiver::start(false).await;
    add(&gateway, json!({"url": receiver.url, "allow_http": true})).await;
    notify_invoices(&gateway, labels("kept", 0..20)).await;
    let ids = receiver.wait_for(20).await;
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 20, "{ids:?}");
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 1);
}

/// A receiver that closes each connection after answering costs no failed attempt and no
/// delay: the next delivery goes over a new connection, each event arrives once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_closing_its_connections_gets_each_event_once() {
    let gateway = start_gateway(&[("CLNREST_WEBHOOK_BACKOFF_MS", "60000")]).await;
    let receiver = RawReceiver::start(true).await;
    add(&gateway, json!({"url": receiver.url, "allow_http": true})).await;
    for label in labels("closing", 0..20) {
        notify_invoices(&gateway, [label]).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ids = receiver.wait_for(20).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids_now = receiver.ids.lock().unwrap().clone();
    assert_eq!(ids_now.len(), 20, "none twice: {ids_now:?}");
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.rsplit('-').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(ids, sorted, "in order");
    let listed = list(&gateway).await;
    assert_eq!(listed[0]["pending"], 0, "{listed:?}");
    assert!(listed[0]["last_error"].is_null(), "{listed:?}");
    assert!(receiver.connections.load(Ordering::SeqCst) >= 20);
}

/// Killed right after deliveries were acknowledged (before the acknowledgements were
/// recorded), the plugin may deliver some of them again after the restart: at least once.
/// De-duplicated on `webhook-id`, every event arrived, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_killed_right_after_acknowledgements_delivers_at_least_once_in_order() {
    let mut gateway = start_gateway(FAST).await;
    let receiver = Receiver::start().await;
    add(&gateway, json!({"url": receiver.url, "allow_http": true})).await;
    let first = labels("first", 0..10);
    notify_invoices(&gateway, first.clone()).await;
    receiver.wait_delivered(first.len()).await;
    gateway.node.restart_plugin().await;
    let second = labels("second", 0..3);
    notify_invoices(&gateway, second.clone()).await;
    let delivered = receiver.wait_delivered(first.len() + second.len()).await;
    let expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(delivered_labels(&delivered), expected);
    let accepted = receiver.attempts().iter().filter(|a| a.accepted).count();
    assert!(accepted <= expected.len() + first.len(), "{accepted}");
}
