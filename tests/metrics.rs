//! `GET /metrics` (docs/operations.md): who may read it (a rune allowing
//! `listclnrest-metrics`, in the `Rune` header or as `Authorization: Bearer`), and that its
//! series move as the plugin is used: requests by kind, method and status, lightningd calls,
//! listeners, the journal, webhook deliveries.
//!
//! The real plugin behind the mock lightningd, scraped over HTTP like Prometheus does; the
//! output is read with the small parser below (one sample per line), and checked by
//! Prometheus's own `promtool check metrics` in the ignored test (`.ci/run` installs it).

use mock_lightningd::gateway::{json_of, Gateway};
use mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MISSING_RUNE: &str = r#"{"code":1501,"message":"Not authorized: Missing rune"}"#;

/// The Prometheus text format's content type (version 0.0.4).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A rune that may read the metrics and nothing else.
fn metrics_rune(gateway: &Gateway) -> String {
    gateway
        .node
        .create_rune(json!([["method=listclnrest-metrics"]]))
}

/// One scrape's samples: `(name, labels)` → value.
struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    /// Parses the text format's sample lines (`name{a="x",b="y"} value`); label values here
    /// hold no `"`, `,` or `\`.
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                    let labels = inner
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair
                                .split_once('=')
                                .unwrap_or_else(|| panic!("bad label: {line}"));
                            (key.to_string(), value.trim_matches('"').to_string())
                        })
                        .collect();
                    (name, labels)
                }
            };
            let previous = samples.insert((name.to_string(), labels), value);
            assert!(previous.is_none(), "a sample appears twice: {line}");
        }
        Scrape(samples)
    }

    /// The sample with exactly these labels; 0 when absent (a counter not yet created).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether any sample has this name.
    fn has(&self, name: &str) -> bool {
        self.0.keys().any(|(n, _)| n == name)
    }
}

async fn get_metrics(gateway: &Gateway, header: Option<(&str, String)>) -> reqwest::Response {
    let mut request = gateway.http.get(gateway.url("/metrics"));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.expect("GET /metrics")
}

/// A scrape with `rune` in the `Rune` header, asserting it was answered 200.
async fn scrape(gateway: &Gateway, rune: &str) -> Scrape {
    let response = get_metrics(gateway, Some(("Rune", rune.to_string()))).await;
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(status, 200, "{text}");
    Scrape::parse(&text)
}

/// Scrapes until `check` holds (10 s at most).
async fn scrape_until(
    gateway: &Gateway,
    rune: &str,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let start = Instant::now();
    loop {
        let scrape = scrape(gateway, rune).await;
        if check(&scrape) {
            return scrape;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn without_a_rune_403_and_with_a_refused_one_401_like_the_rest_routes() {
    let gateway = Gateway::start().await;
    gateway.settled().await;

    let response = get_metrics(&gateway, None).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.text().await.unwrap(), MISSING_RUNE);
    // An Authorization header that is not a bearer token is no rune either.
    let response = get_metrics(
        &gateway,
        Some(("Authorization", "Basic dXNlcjpwYXNz".into())),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.text().await.unwrap(), MISSING_RUNE);
    let rest = gateway.post("getinfo").send().await.unwrap();
    assert_eq!(rest.status(), 403);
    assert_eq!(rest.text().await.unwrap(), MISSING_RUNE);

    // A rune for another method: checkrune refuses it, and its error comes back as a REST
    // route's refusal does.
    let getinfo_only = gateway.node.create_rune(json!([["method=getinfo"]]));
    for header in [
        ("Rune", getinfo_only.clone()),
        ("Authorization", format!("Bearer {getinfo_only}")),
    ] {
        let (status, body) = json_of(get_metrics(&gateway, Some(header)).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], json!(1502), "{body}");
    }
    let (rest_status, rest_body) = json_of(
        gateway
            .post("invoice")
            .header("Rune", &getinfo_only)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest_status, 401);
    assert_eq!(rest_body["code"], json!(1502), "{rest_body}");
}

#[tokio::test]
async fn the_rune_header_and_a_bearer_token_are_both_accepted() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    let rune = metrics_rune(&gateway);
    for header in [
        ("Rune", rune.clone()),
        ("Authorization", format!("Bearer {rune}")),
    ] {
        let response = get_metrics(&gateway, Some(header)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], TEXT_FORMAT);
        let scrape = Scrape::parse(&response.text().await.unwrap());
        assert!(scrape.has("clnrest_http_requests_in_flight"));
        assert!(scrape.has("process_resident_memory_bytes"));
    }
    // Each scrape asked checkrune for `listclnrest-metrics` with this rune, nothing else.
    let calls: Vec<(String, Value)> = gateway
        .calls_since(mark)
        .into_iter()
        .map(|c| (c.method, c.params))
        .collect();
    let expected = (
        "checkrune".to_string(),
        json!({"rune": rune, "method": "listclnrest-metrics"}),
    );
    assert_eq!(calls, vec![expected.clone(), expected]);
}

#[tokio::test]
async fn request_and_call_counters_move_by_exactly_what_was_done() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let rune = metrics_rune(&gateway);
    let requests = "clnrest_http_requests_total";
    let rest_getinfo =
        |status: &'static str| [("kind", "rest"), ("method", "getinfo"), ("status", status)];
    let before = scrape(&gateway, &rune).await;

    for _ in 0..5 {
        assert_eq!(gateway.call("getinfo", json!({})).await.status(), 201);
    }
    for _ in 0..3 {
        assert_eq!(gateway.post("getinfo").send().await.unwrap().status(), 403);
    }
    // Names lightningd does not know are all `other`: no series per made-up name.
    for name in ["no-such-method", "another-made-up-one"] {
        assert_eq!(gateway.call(name, json!({})).await.status(), 404);
    }
    let after = scrape(&gateway, &rune).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(moved(requests, &rest_getinfo("201")), 5.0);
    assert_eq!(moved(requests, &rest_getinfo("403")), 3.0);
    assert_eq!(
        moved(
            requests,
            &[("kind", "rest"), ("method", "other"), ("status", "404")]
        ),
        2.0
    );
    assert!(!after
        .0
        .keys()
        .any(|(_, labels)| labels.get("method").is_some_and(|m| m.contains("made-up"))));
    // The first scrape is counted once it was answered; this one is still in flight.
    assert_eq!(
        after.value(
            requests,
            &[("kind", "metrics"), ("method", ""), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(after.value("clnrest_http_requests_in_flight", &[]), 1.0);
    assert!(after.value("clnrest_http_connections_open", &[]) >= 1.0);
    assert_eq!(after.value("clnrest_http_connections_max", &[]), 16384.0);
    // The latency histogram saw every getinfo request, refused ones included.
    assert_eq!(
        moved(
            "clnrest_http_request_duration_seconds_count",
            &[("kind", "rest"), ("method", "getinfo")]
        ),
        8.0
    );
    // lightningd: 5 getinfo calls, each after its checkrune; the unknown names got
    // lightningd's error from checkrune's method.
    assert_eq!(
        moved(
            "clnrest_lightningd_call_duration_seconds_count",
            &[("method", "getinfo")]
        ),
        5.0
    );
    assert_eq!(
        moved(
            "clnrest_lightningd_call_errors_total",
            &[("method", "other"), ("error", "lightningd")]
        ),
        2.0
    );
    let bucket_inf = after.value(
        "clnrest_lightningd_call_duration_seconds_bucket",
        &[("method", "getinfo"), ("le", "+Inf")],
    );
    assert_eq!(
        bucket_inf,
        after.value(
            "clnrest_lightningd_call_duration_seconds_count",
            &[("method", "getinfo")]
        )
    );
}

#[tokio::test]
async fn listener_and_journal_gauges_follow_the_streams() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let rune = metrics_rune(&gateway);
    let sse = |s: &Scrape| s.value("clnrest_notification_listeners", &[("transport", "sse")]);
    let before = scrape(&gateway, &rune).await;
    assert_eq!(sse(&before), 0.0);
    assert_eq!(
        before.value(
            "clnrest_notification_listeners",
            &[("transport", "socketio")]
        ),
        0.0
    );

    let stream = gateway
        .http
        .get(gateway.url("/v1/notifications"))
        .header("Rune", &gateway.rune)
        .send()
        .await
        .expect("the SSE stream opens");
    assert_eq!(stream.status(), 200);
    let connected = scrape(&gateway, &rune).await;
    assert_eq!(sse(&connected), 1.0);
    assert_eq!(
        connected.value(
            "clnrest_http_requests_total",
            &[("kind", "notifications"), ("method", ""), ("status", "200")]
        ),
        1.0
    );

    let last_seq = before.value("clnrest_journal_last_sequence", &[]);
    for i in 0..3 {
        assert!(
            gateway
                .node
                .notify(
                    "invoice_creation",
                    json!({"label": format!("m-{i}"), "msat": 1})
                )
                .await
        );
    }
    let notified = scrape_until(&gateway, &rune, "3 more notifications journaled", |s| {
        s.value("clnrest_journal_last_sequence", &[]) == last_seq + 3.0
    })
    .await;
    assert!(notified.value("clnrest_journal_retained_notifications", &[]) >= 3.0);
    assert!(
        notified.value("clnrest_journal_retained_bytes", &[])
            > before.value("clnrest_journal_retained_bytes", &[])
    );

    drop(stream);
    scrape_until(&gateway, &rune, "the SSE listener gone", |s| sse(s) == 0.0).await;
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    MockLightningd::free_port()
}

#[tokio::test]
async fn a_failing_webhook_shows_its_failures_and_backlog() {
    let port = MockLightningd::free_port();
    let node = MockLightningd::builder()
        .options(json!({"clnrest-port": port, "clnrest-protocol": "http"}))
        .plugin_env("CLNREST_WEBHOOK_BACKOFF_MS", "20")
        .start()
        .await;
    assert_eq!(node.init_result(), &json!({}));
    let rune = node.create_rune(Value::Null);
    let gateway = Gateway {
        node,
        port,
        base: format!("http://127.0.0.1:{port}"),
        http: mock_lightningd::gateway::client(),
        rune,
    };
    gateway.settled().await;
    let metrics = metrics_rune(&gateway);
    let added = gateway
        .lightningd_call(
            "clnrest-webhook-add",
            json!({"url": format!("http://127.0.0.1:{}/hook", closed_port()), "allow_http": true}),
        )
        .await;
    let id = added["result"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("clnrest-webhook-add failed: {added}"))
        .to_string();
    assert!(
        gateway
            .node
            .notify("invoice_creation", json!({"label": "w-1", "msat": 1}))
            .await
    );
    let labels = [("sink", "webhook"), ("target", id.as_str())];
    let scrape = scrape_until(&gateway, &metrics, "two failed attempts", |s| {
        s.value("clnrest_delivery_failures_total", &labels) >= 2.0
    })
    .await;
    assert_eq!(
        scrape.value("clnrest_delivery_backlog_events", &labels),
        1.0
    );
    assert!(scrape.value("clnrest_delivery_backlog_bytes", &labels) > 0.0);
    assert!(scrape.value("clnrest_delivery_lag_seconds", &labels) > 0.0);
    assert_eq!(
        scrape.value("clnrest_delivery_delivered_total", &labels),
        0.0
    );
    assert_eq!(scrape.value("clnrest_delivery_failing", &labels), 0.0);
}

#[tokio::test]
#[ignore = "needs promtool (Debian's prometheus package)"]
async fn promtool_accepts_a_real_scrape() {
    let gateway = Gateway::start().await;
    gateway.settled().await;
    let rune = metrics_rune(&gateway);
    // Something in every family: requests of several kinds, a listener, notifications.
    gateway.call("getinfo", json!({})).await;
    gateway.call("no-such-method", json!({})).await;
    gateway
        .http
        .get(gateway.url("/swagger.json"))
        .send()
        .await
        .unwrap();
    gateway
        .http
        .get(gateway.url("/nowhere"))
        .send()
        .await
        .unwrap();
    let _stream = gateway
        .http
        .get(gateway.url("/v1/notifications"))
        .header("Rune", &gateway.rune)
        .send()
        .await
        .unwrap();
    gateway
        .node
        .notify("invoice_creation", json!({"label": "p-1", "msat": 1}))
        .await;
    // A webhook, so the delivery series are there too.
    let added = gateway
        .lightningd_call(
            "clnrest-webhook-add",
            json!({"url": format!("http://127.0.0.1:{}/hook", closed_port()), "allow_http": true}),
        )
        .await;
    assert!(added["result"]["id"].is_string(), "{added}");
    scrape(&gateway, &rune).await;
    let response = get_metrics(&gateway, Some(("Authorization", format!("Bearer {rune}")))).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for family in [
        "clnrest_http_request_duration_seconds_bucket",
        "clnrest_lightningd_call_errors_total",
        "clnrest_notification_listeners",
        "clnrest_delivery_lag_seconds",
        "clnrest_delivery_failures_total",
        "process_open_fds",
    ] {
        assert!(text.contains(family), "{family} is missing:\n{text}");
    }

    use std::io::Write;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    promtool
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write the scrape to promtool");
    let output = promtool.wait_with_output().expect("promtool ends");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool check metrics: {complaints}\n--- the scrape:\n{text}"
    );
}
