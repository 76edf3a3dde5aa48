//! AMQP publishing (docs/broker.md) against a real RabbitMQ server, read by an independent
//! client (Python `pika`, tests/broker/consumer.py).
//!
//! Each test starts its own server from Debian's `rabbitmq-server` package as a child
//! process, with its node name, ports, data and logs under a temporary directory (and its
//! own epmd port), so it clashes neither with a system broker nor with the other tests
//! (`mock_lightningd::rabbitmq`, shared with bench/events). Those tests are ignored by
//! default: `.ci/run` installs `rabbitmq-server` and `pika` and runs them with `--ignored`. The option checks at the end need nothing outside the repository.

use mock_lightningd::gateway::{self, Gateway};
use mock_lightningd::rabbitmq::RabbitMq;
use mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long the messages may take to arrive.
const DELIVERY: Duration = Duration::from_secs(180);
/// How many notifications the main tests publish.
const COUNT: usize = 10_000;
/// The journal's retention (src/stream/journal.rs, `RETAINED_COUNT`).
const RETAINED: usize = 10_000;
/// Topics the notifications take turns with: the routing keys to check.
const TOPICS: [&str; 3] = ["invoice_creation", "connect", "custom_event"];

/// What the pika consumer printed, line by line.
struct Consumer {
    lines: Arc<Mutex<Vec<Value>>>,
    child: tokio::process::Child,
}

impl Consumer {
    /// Starts tests/broker/consumer.py and waits until its queue is declared and bound.
    async fn start(broker: &RabbitMq, extra: &[&str]) -> Consumer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/broker/consumer.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .args(["--port", &broker.port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("consumer printed {line:?}: {e}"));
                sink.lock().unwrap().push(value);
            }
        });
        let consumer = Consumer { lines, child };
        consumer
            .wait_for(|lines| lines.iter().any(|l| l["ready"] == true), "ready")
            .await;
        consumer
    }

    async fn wait_for(&self, mut done: impl FnMut(&[Value]) -> bool, what: &str) {
        let deadline = Instant::now() + DELIVERY;
        loop {
            if done(&self.lines.lock().unwrap()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "consumer: not {what} within {DELIVERY:?}; last lines: {:?}",
                self.lines
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message received (repeats included), in arrival order.
    fn messages(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.get("id").is_some())
            .cloned()
            .collect()
    }

    /// Waits for `count` distinct messages of the test's own (`warning`s aside).
    async fn wait_distinct(&self, count: usize) {
        let deadline = Instant::now() + DELIVERY;
        while count_ours(&self.messages()) < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} distinct messages within {DELIVERY:?}",
                count_ours(&self.messages())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The messages with their first occurrence only (at least once: a message may come
    /// again after a reconnection), in arrival order.
    fn deduplicated(&self) -> Vec<Value> {
        let mut seen = HashSet::new();
        self.messages()
            .into_iter()
            .filter(|m| seen.insert(m["id"].to_string()))
            .collect()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The plugin over HTTP behind the mock lightningd, publishing to `broker`; reconnections
/// after ~100 ms, at most 1 s apart.
async fn start_plugin(broker: &RabbitMq) -> Gateway {
    let port = MockLightningd::free_port();
    let node = MockLightningd::builder()
        .options(json!({
            "clnrest-port": port,
            "clnrest-protocol": "http",
            "clnrest-amqp-url": broker.url(),
        }))
        .plugin_env("CLNREST_AMQP_BACKOFF_MS", "100")
        .plugin_env("CLNREST_AMQP_MAX_BACKOFF_MS", "1000")
        .start()
        .await;
    Gateway::around(node, port)
}

/// A consumer on every topic, then the plugin, once it has connected to the broker.
async fn consumer_and_connected_plugin(broker: &RabbitMq) -> (Consumer, Gateway) {
    let consumer = Consumer::start(broker, &[]).await;
    let gateway = start_plugin(broker).await;
    wait_logged(
        &gateway,
        "publishing notifications to AMQP exchange clnrest",
    )
    .await;
    (consumer, gateway)
}

/// Sends notifications `range`, topics taking turns, each with its number as `n`.
async fn notify(gateway: &Gateway, range: std::ops::Range<usize>) {
    for n in range {
        let topic = TOPICS[n % TOPICS.len()];
        assert!(gateway.node.notify(topic, json!({"n": n})).await);
    }
}

/// Plugin log lines (info and above) containing `text`.
fn logged(gateway: &Gateway, text: &str) -> Vec<String> {
    gateway
        .node
        .logs()
        .into_iter()
        .filter(|l| l.level != "debug" && l.message.contains(text))
        .map(|l| format!("[{}] {}", l.level, l.message))
        .collect()
}

async fn wait_logged(gateway: &Gateway, text: &str) {
    let found = gateway
        .node
        .wait_for_log(|l| l.message.contains(text), DELIVERY)
        .await;
    assert!(found.is_some(), "no log line with {text:?}");
}

/// Checks that `messages` (each once) are consecutive journal entries of this plugin process,
/// in order, exactly as published: id `<epoch>-<seq>`, routing key = topic, persistent, JSON;
/// and that the test's notifications among them are `first..first + count`. The others are
/// lightningd's `warning` notifications of the plugin's own warnings (a connection lost),
/// which are published like any other. Returns the first sequence number.
fn assert_in_order(messages: &[Value], first: usize, count: usize) -> u64 {
    let epoch = messages[0]["body"]["epoch"].as_str().unwrap().to_string();
    assert_eq!(epoch.len(), 16, "{}", messages[0]);
    let first_seq = messages[0]["body"]["seq"].as_u64().unwrap();
    let mut ours = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let seq = first_seq + i as u64;
        let body = &message["body"];
        assert_eq!(
            message["id"],
            format!("{epoch}-{seq}"),
            "message {i} out of order or missing: {message}"
        );
        assert_eq!((&body["seq"], &body["epoch"]), (&json!(seq), &json!(epoch)));
        assert_eq!(message["key"], body["topic"], "{message}");
        assert_eq!(message["delivery_mode"], 2, "{message}");
        assert_eq!(message["content_type"], "application/json", "{message}");
        match body["topic"].as_str().unwrap() {
            "warning" => assert_eq!(body["payload"]["source"], "plugin-clnrest", "{message}"),
            topic => {
                let n = body["payload"]["n"].as_u64().unwrap() as usize;
                assert_eq!(topic, TOPICS[n % TOPICS.len()], "{message}");
                assert_eq!(body["payload"], json!({"n": n}));
                ours.push(n);
            }
        }
    }
    assert_eq!(ours, (first..first + count).collect::<Vec<_>>());
    first_seq
}

/// The test's own notifications among `messages` (not lightningd's `warning`s).
fn count_ours(messages: &[Value]) -> usize {
    messages
        .iter()
        .filter(|m| m["key"] != "warning")
        .map(|m| m["id"].to_string())
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test]
#[ignore = "needs rabbitmq-server and pika"]
async fn ten_thousand_notifications_arrive_complete_and_in_order() {
    let t = Instant::now();
    let mut broker = RabbitMq::new();
    broker.start().await;
    eprintln!("{:?} broker started", t.elapsed());
    let (consumer, gateway) = consumer_and_connected_plugin(&broker).await;

    eprintln!("{:?} plugin connected", t.elapsed());
    notify(&gateway, 0..COUNT).await;
    eprintln!("{:?} notified", t.elapsed());
    consumer.wait_distinct(COUNT).await;
    eprintln!("{:?} received", t.elapsed());

    let messages = consumer.messages();
    assert_eq!(messages.len(), COUNT, "no repeats without a reconnection");
    assert_in_order(&messages, 0, COUNT);
    assert!(messages.iter().all(|m| m["redelivered"] == false));
    assert!(logged(&gateway, "connection lost").is_empty());

    // GET /metrics reports the confirms, and nothing left to deliver.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = broker_series(&gateway).await;
        let delivered = scrape
            .iter()
            .find(|(name, _)| name == "clnrest_delivery_delivered_total")
            .map(|(_, value)| *value);
        let backlog = scrape
            .iter()
            .find(|(name, _)| name == "clnrest_delivery_backlog_events")
            .map(|(_, value)| *value);
        if delivered == Some(COUNT as f64) && backlog == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{scrape:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `{sink="broker",target="clnrest"}` samples of `GET /metrics`: (name, value).
async fn broker_series(gateway: &Gateway) -> Vec<(String, f64)> {
    let response = gateway
        .http
        .get(gateway.url("/metrics"))
        .header("Rune", &gateway.rune)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| line.contains(r#"sink="broker",target="clnrest""#))
        .filter_map(|line| {
            let (name, rest) = line.split_once('{')?;
            let value = rest.rsplit_once(' ')?.1.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs rabbitmq-server and pika"]
async fn a_broker_restart_mid_stream_loses_nothing_confirmed() {
    let mut broker = RabbitMq::new();
    broker.start().await;
    let (consumer, gateway) = consumer_and_connected_plugin(&broker).await;

    // The notifications come at ~1,000/s; the broker stops once the consumer has 2,000
    // and starts again a while later, while they still come.
    let gateway = Arc::new(gateway);
    let sender = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            for start in (0..COUNT).step_by(100) {
                notify(&gateway, start..start + 100).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    consumer
        .wait_for(
            |lines| lines.iter().filter(|l| l.get("id").is_some()).count() >= 2000,
            "2000 received",
        )
        .await;
    broker.stop();
    wait_logged(&gateway, "connection lost").await;
    let started = Instant::now();
    let (status, _) = gateway::json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201, "REST is served while the broker is away");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!sender.is_finished(), "the broker stopped mid-stream");
    let during = broker_series(&gateway).await;
    assert!(
        during.contains(&("clnrest_delivery_failing".to_string(), 1.0)),
        "{during:?}"
    );

    broker.start().await;
    wait_logged(&gateway, "reachable again").await;
    sender.await.unwrap();
    consumer.wait_distinct(COUNT).await;

    let messages = consumer.deduplicated();
    assert_in_order(&messages, 0, COUNT);
    assert_eq!(
        logged(&gateway, "connection lost").len(),
        1,
        "{:?}",
        gateway.node.logs()
    );
    assert_eq!(logged(&gateway, "reachable again").len(), 1);
    let repeats = consumer.messages().len() - COUNT;
    eprintln!("{repeats} message(s) received twice (at least once)");
}

#[tokio::test]
#[ignore = "needs rabbitmq-server and pika"]
async fn a_broker_away_for_longer_than_the_journal_retains_gets_what_is_left_and_the_gap_is_logged()
{
    // The queue exists before the plugin starts, then the broker is away.
    let mut broker = RabbitMq::new();
    broker.start().await;
    Consumer::start(&broker, &["--setup-only"]).await;
    broker.stop();

    let gateway = start_plugin(&broker).await;
    wait_logged(&gateway, "cannot connect").await;
    let overflow = 50;
    notify(&gateway, 0..RETAINED + overflow).await;
    let (status, _) = gateway::json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201, "REST is served while the broker is away");

    broker.start().await;
    let consumer = Consumer::start(&broker, &[]).await;
    let total = RETAINED + overflow;
    consumer
        .wait_for(
            |lines| lines.iter().any(|l| l["body"]["payload"]["n"] == total - 1),
            "the last notification received",
        )
        .await;
    let messages = consumer.deduplicated();
    let first_n = messages
        .iter()
        .find_map(|m| m["body"]["payload"]["n"].as_u64())
        .unwrap() as usize;
    let first_seq = assert_in_order(&messages, first_n, total - first_n);
    // What the journal dropped: at least the overflow (more if warnings took places in it).
    let lost = first_seq - 1;
    assert!(
        lost >= overflow as u64 && first_n >= overflow,
        "{lost} {first_n}"
    );
    let gap = logged(&gateway, "were dropped from the journal");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert!(
        gap[0].starts_with(&format!(
            "[warn] AMQP broker: {lost} notification(s) (1..={lost}) were dropped"
        )),
        "{gap:?}"
    );
    assert_eq!(logged(&gateway, "cannot connect").len(), 1);
}

// ---------------------------------------------------------------------------------------
// Options (no broker needed)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_amqp_url_or_exchange_disables_the_plugin_with_the_exact_reason() {
    let cases = [
        (
            json!({"clnrest-amqp-url": "http://guest:secret@127.0.0.1:5672/"}),
            "`clnrest-amqp-url` should be amqp[s]://[user[:password]@]host[:port][/vhost]: \
             its scheme is http, not amqp or amqps",
        ),
        (
            json!({"clnrest-amqp-url": "amqp://guest:secret@/"}),
            "`clnrest-amqp-url` should be amqp[s]://[user[:password]@]host[:port][/vhost]: \
             it names no host",
        ),
        (
            json!({"clnrest-amqp-url": "amqp://127.0.0.1", "clnrest-amqp-exchange": "a b"}),
            "`clnrest-amqp-exchange` a b should be 1 to 255 letters, digits and -_.:",
        ),
    ];
    for (options, reason) in cases {
        let mut all =
            json!({"clnrest-port": MockLightningd::free_port(), "clnrest-protocol": "http"});
        all.as_object_mut()
            .unwrap()
            .extend(options.as_object().unwrap().clone());
        let node = MockLightningd::start(all).await;
        assert_eq!(node.init_result(), &json!({"disable": reason}), "{options}");
        assert!(
            !node.init_result().to_string().contains("secret"),
            "the password is never repeated"
        );
    }
}

#[tokio::test]
async fn an_unreachable_broker_delays_nothing_and_is_logged_once() {
    // Nothing listens on this port: the plugin starts and serves at once all the same.
    let port = MockLightningd::free_port();
    let gateway = Gateway::start_with(json!({
        "clnrest-amqp-url": format!("amqp://127.0.0.1:{port}"),
    }))
    .await;
    gateway
        .node
        .wait_for_log(
            |l| l.message.contains("cannot connect"),
            Duration::from_secs(10),
        )
        .await
        .expect("the failure is logged");
    notify(&gateway, 0..10).await;
    let (status, _) = gateway::json_of(gateway.call("getinfo", json!({})).await).await;
    assert_eq!(status, 201);
    // Default backoff: a retry after ~1 s, then ~2 s: retries are not logged again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures = logged(&gateway, "cannot connect");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(&format!(
            "[warn] AMQP broker amqp://guest@127.0.0.1:{port}/%2F: cannot connect ("
        )),
        "{failures:?}"
    );
}
