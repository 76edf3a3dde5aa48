//! Notifications from a real lightningd: `invoice_creation` and `invoice_payment` (the node
//! pays its own invoice with `xpay`) reach Socket.IO clients (rune in the header, and in the
//! auth payload) and an SSE client, in order, with numbers as JSON integers; a rune
//! blacklisted while its clients listen cuts them off.

use crate::node::RealNode;
use crate::support::{block_on, client, json_of};
use crate::Test;
use futures::future::FutureExt;
use futures::StreamExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub const TESTS: &[Test] = &[
    (
        "notifications::invoices_reach_socketio_and_sse_in_order",
        invoices_reach_socketio_and_sse_in_order,
    ),
    (
        "notifications::a_blacklisted_rune_is_cut_off",
        a_blacklisted_rune_is_cut_off,
    ),
    (
        "notifications::rechecking_a_rate_limited_rune_neither_spends_nor_trips_it",
        rechecking_a_rate_limited_rune_neither_spends_nor_trips_it,
    ),
    (
        "notifications::an_sse_id_from_before_a_plugin_restart_gets_gap_then_the_new_ones",
        an_sse_id_from_before_a_plugin_restart_gets_gap_then_the_new_ones,
    ),
];

/// How long one wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// The plugin's debug line once a Socket.IO client's subscription exists.
const SUBSCRIBED: &str = "Socket.IO client ";

/// A Socket.IO client that forwards every event (name, first argument) to a channel.
struct Listener {
    client: Client,
    events: mpsc::UnboundedReceiver<(String, Value)>,
}

async fn listen(node: &RealNode, rune_header: Option<&str>, auth: Option<Value>) -> Listener {
    listen_on(node, TransportType::Any, rune_header, auth).await
}

/// [`listen`] on a given transport: `Any` (long-polling, then the upgrade: socketioxide's)
/// or `Websocket` (opened directly: the plugin's own websocket endpoint).
async fn listen_on(
    node: &RealNode,
    transport: TransportType,
    rune_header: Option<&str>,
    auth: Option<Value>,
) -> Listener {
    let (sender, events) = mpsc::unbounded_channel();
    let sender = Arc::new(Mutex::new(sender));
    let on_event = sender.clone();
    let mut builder = ClientBuilder::new(node.base_url())
        .transport_type(transport)
        .reconnect(false)
        .on_any(move |event, payload, _| {
            let value = match payload {
                Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
                _ => Value::Null,
            };
            if let Ok(sender) = on_event.lock() {
                let _ = sender.send((event.as_str().to_string(), value));
            }
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            if let Ok(sender) = sender.lock() {
                let _ = sender.send(("(closed)".into(), Value::Null));
            }
            async {}.boxed()
        });
    if let Some(rune) = rune_header {
        builder = builder.opening_header("rune", rune);
    }
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    let client = builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("Socket.IO connect failed: {e}"));
    Listener { client, events }
}

impl Listener {
    /// The next event, with its name.
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no Socket.IO event within {WAIT:?}"))
            .expect("the listener is gone")
    }
}

/// Reads `GET /v1/notifications` event by event (`(id, event, data)`).
struct SseReader {
    events: mpsc::UnboundedReceiver<(Option<String>, String, String)>,
}

impl SseReader {
    async fn open(node: &RealNode, rune: &str) -> SseReader {
        SseReader::open_from(node, rune, None).await
    }

    /// Opens the stream with `Last-Event-ID: last_event_id`, if given.
    async fn open_from(node: &RealNode, rune: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = reqwest::Client::new()
            .get(node.url("/v1/notifications"))
            .header("Rune", rune);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("GET /v1/notifications answers");
        assert_eq!(response.status().as_u16(), 200);
        let (sender, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (None, String::new(), String::new());
                    for line in block.lines() {
                        match line.split_once(": ") {
                            Some(("id", value)) => id = Some(value.to_string()),
                            Some(("event", value)) => event = value.to_string(),
                            Some(("data", value)) => data = value.to_string(),
                            _ => {}
                        }
                    }
                    if !event.is_empty() && sender.send((id, event, data)).is_err() {
                        return;
                    }
                }
            }
            let _ = sender.send((None, "(end)".into(), String::new()));
        });
        SseReader { events }
    }

    async fn next(&mut self) -> (Option<String>, String, Value) {
        let (id, event, data) = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no SSE event within {WAIT:?}"))
            .expect("the reader is gone");
        let data = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&data).unwrap_or_else(|e| panic!("SSE data {data}: {e}"))
        };
        (id, event, data)
    }
}

/// Waits until the plugin has logged `count` Socket.IO subscriptions.
fn wait_subscribed(node: &RealNode, count: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while node
        .log()
        .lines()
        .filter(|line| line.contains(SUBSCRIBED) && line.contains(" connected with "))
        .count()
        < count
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{count} Socket.IO subscription(s) not logged:\n{}",
            node.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next event of `listener` whose topic is one of ours (skipping e.g. xpay's own).
async fn next_invoice_event(listener: &mut Listener) -> (String, Value) {
    loop {
        let (name, data) = listener.next().await;
        let topic = match name.as_str() {
            "message" => data.as_object().and_then(|o| o.keys().next().cloned()),
            "notification" => data["topic"].as_str().map(str::to_string),
            _ => panic!("unexpected event {name}: {data}"),
        };
        if matches!(
            topic.as_deref(),
            Some("invoice_creation" | "invoice_payment")
        ) {
            return (name, data);
        }
    }
}

fn invoices_reach_socketio_and_sse_in_order() {
    let node = RealNode::start_http();
    let rune = node.create_rune(json!("readonly"));
    block_on(async {
        let mut by_header = listen(&node, Some(&rune), None).await;
        let mut by_auth = listen(&node, None, Some(json!({"rune": rune, "seq": true}))).await;
        let mut on_websocket = listen_on(&node, TransportType::Websocket, Some(&rune), None).await;
        wait_subscribed(&node, 3);
        let mut sse = SseReader::open(&node, &rune).await;

        let invoice = node.call(
            "invoice",
            json!({"amount_msat": 10_000, "label": "coffee-1", "description": "Coffee"}),
        );
        let bolt11 = invoice["bolt11"].as_str().expect("a bolt11");
        node.call("xpay", json!({"invstring": bolt11}));

        // Socket.IO, rune in the header: `message` events `{"<topic>": {...}}`.
        let (_, creation) = next_invoice_event(&mut by_header).await;
        assert_eq!(creation["invoice_creation"]["label"], json!("coffee-1"));
        assert!(creation["invoice_creation"]["msat"].is_u64(), "{creation}");
        let (_, payment) = next_invoice_event(&mut by_header).await;
        assert_eq!(payment["invoice_payment"]["label"], json!("coffee-1"));
        assert_eq!(
            payment["invoice_payment"]["msat"],
            json!(10_000),
            "{payment}"
        );

        // The same on a websocket opened directly (the plugin's own endpoint).
        assert_eq!(next_invoice_event(&mut on_websocket).await.1, creation);
        assert_eq!(next_invoice_event(&mut on_websocket).await.1, payment);

        // Socket.IO, rune in the auth payload with `seq`: numbered, increasing.
        let (name, first) = next_invoice_event(&mut by_auth).await;
        assert_eq!(name, "notification");
        assert_eq!(first["topic"], "invoice_creation");
        let (_, second) = next_invoice_event(&mut by_auth).await;
        assert_eq!(second["topic"], "invoice_payment");
        assert_eq!(second["payload"]["msat"], json!(10_000));
        let (seq1, seq2) = (first["seq"].as_u64(), second["seq"].as_u64());
        assert!(
            matches!((seq1, seq2), (Some(a), Some(b)) if a < b),
            "seq {first} then {second}"
        );

        // SSE: the same two, ids are the same sequence numbers.
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let (id, event, data) = sse.next().await;
            if event == "invoice_creation" || event == "invoice_payment" {
                seen.push((id, event, data));
            }
        }
        assert_eq!(seen[0].1, "invoice_creation");
        assert_eq!(seen[1].1, "invoice_payment");
        assert_eq!(seen[1].2["msat"], json!(10_000), "{:?}", seen[1]);
        // `id: <epoch>-<seq>`, the epoch of the process that numbered it.
        let ids: Vec<Option<u64>> = seen
            .iter()
            .map(|(id, _, _)| {
                let (epoch, seq) = id.as_deref()?.split_once('-')?;
                assert_eq!(Some(epoch), first["epoch"].as_str(), "{id:?}");
                seq.parse().ok()
            })
            .collect();
        assert_eq!(ids, vec![seq1, seq2], "SSE ids are the sequence numbers");
        let _ = by_header.client.disconnect().await;
        let _ = by_auth.client.disconnect().await;
        let _ = on_websocket.client.disconnect().await;
    });
}

fn a_blacklisted_rune_is_cut_off() {
    let node = RealNode::start_http();
    let admin = node.create_rune(Value::Null);
    let listener_rune = node.call("createrune", json!({"restrictions": "readonly"}));
    let rune = listener_rune["rune"].as_str().expect("a rune").to_string();
    let unique_id: u64 = listener_rune["unique_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("a numeric unique_id");
    block_on(async {
        let mut socket = listen(&node, Some(&rune), None).await;
        let mut on_websocket = listen_on(&node, TransportType::Websocket, Some(&rune), None).await;
        wait_subscribed(&node, 2);
        let mut sse = SseReader::open(&node, &rune).await;

        let response = client()
            .post(node.url("/v1/blacklistrune"))
            .header("Rune", &admin)
            .json(&json!({"start": unique_id}))
            .send()
            .await
            .expect("an answer");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "{body}");

        let (name, reason) = socket.next().await;
        assert_eq!(name, "disconnect_reason", "{reason}");
        let text = reason["reason"].as_str().unwrap_or_default();
        assert!(text.starts_with("rune revoked: "), "{reason}");
        assert_eq!(socket.next().await.0, "(closed)");
        // The same on a websocket opened directly (the plugin's own endpoint).
        assert_eq!(on_websocket.next().await, (name.clone(), reason.clone()));
        assert_eq!(on_websocket.next().await.0, "(closed)");

        let (_, event, data) = sse.next().await;
        assert_eq!(event, "disconnect_reason", "{data}");
        assert_eq!(data["reason"], reason["reason"]);
        assert_eq!(sse.next().await.1, "(end)");

        // And it cannot come back.
        let response = client()
            .get(node.url("/v1/notifications"))
            .header("Rune", &rune)
            .send()
            .await
            .expect("an answer");
        let (status, body) = json_of(response).await;
        let refusal = node
            .rpc(
                "checkrune",
                json!({"rune": rune, "method": "listclnrest-notifications"}),
            )
            .expect_err("checkrune refuses a blacklisted rune");
        assert_eq!((status, &body), (401, &refusal));
        assert_eq!(
            text,
            format!(
                "rune revoked: {}",
                refusal["message"].as_str().unwrap_or("")
            )
        );
    });
    assert!(
        node.log()
            .contains(&format!("rune #{unique_id} no longer allows notifications")),
        "{}",
        node.log_tail(20)
    );
    // Its refused return is logged by unique id, with lightningd's reason.
    assert!(
        node.log().contains(&format!(
            "refused rune #{unique_id} for listclnrest-notifications: Not authorized: Blacklisted rune"
        )),
        "{}",
        node.log_tail(20)
    );
}

/// Blacklists a fresh rune through REST (which makes the plugin re-check every listener's
/// rune at once) and waits for that re-check to be done.
async fn trigger_recheck(node: &RealNode, admin: &str) {
    let done = |log: &str| log.matches("re-checked 1 listener rune(s)").count();
    let before = done(&node.log());
    let spare = node.call("createrune", json!({}));
    let unique_id: u64 = spare["unique_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("a numeric unique_id");
    let response = client()
        .post(node.url("/v1/blacklistrune"))
        .header("Rune", admin)
        .json(&json!({"start": unique_id}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 201);
    let deadline = std::time::Instant::now() + WAIT;
    while done(&node.log()) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no re-check of one listener rune logged (was the listener cut off?)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// lightningd counts every accepted `checkrune` of a `rate=N` rune and refuses the next one
/// within 60/N s ("too soon"). Re-checking a listener's rune must not use up what the same
/// rune's REST calls need, and "too soon" must not cut the listener off.
fn rechecking_a_rate_limited_rune_neither_spends_nor_trips_it() {
    let node = RealNode::start_http();
    let admin = node.create_rune(Value::Null);
    // One use a second.
    let rune = node.create_rune(json!([["rate=60"]]));
    block_on(async {
        let mut listener = listen(&node, Some(&rune), None).await;
        wait_subscribed(&node, 1);
        // Within a second of the connect's check: a checkrune now would be "too soon".
        trigger_recheck(&node, &admin).await;
        // Past the second: a checkrune now would be accepted and spend the next second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        trigger_recheck(&node, &admin).await;
        let response = client()
            .post(node.url("/v1/getinfo"))
            .header("Rune", &rune)
            .send()
            .await
            .expect("an answer");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "the re-check spent the rune: {body}");
        // Still listening.
        node.call(
            "invoice",
            json!({"amount_msat": 1000, "label": "after-recheck", "description": "d"}),
        );
        let (name, event) = next_invoice_event(&mut listener).await;
        assert_eq!(name, "message", "{event}");
        assert_eq!(event["invoice_creation"]["label"], json!("after-recheck"));
    });
    assert!(
        !node.log().contains("no longer allows notifications"),
        "{}",
        node.log_tail(20)
    );
}

/// The next SSE event that is a notification of `topic` (skipping others), with its id.
async fn next_of(sse: &mut SseReader, topic: &str) -> (String, Value) {
    loop {
        let (id, event, data) = sse.next().await;
        if event == topic {
            return (id.unwrap_or_else(|| panic!("{topic} without an id")), data);
        }
    }
}

/// `<epoch>-<seq>` split.
fn id_parts(id: &str) -> (String, u64) {
    let (epoch, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("id is not <epoch>-<seq>: {id}"));
    (epoch.to_string(), seq.parse().expect("a numeric seq"))
}

/// The plugin restarts (`plugin stop`, `plugin start`): its sequence numbers start again
/// from one. A client resuming with an id of the old process (as a browser's EventSource does) gets
/// `gap` with the new epoch, then every notification of the new process, the new invoice
/// included: none of them is taken as already seen.
fn an_sse_id_from_before_a_plugin_restart_gets_gap_then_the_new_ones() {
    let node = RealNode::start_http();
    let rune = node.create_rune(json!("readonly"));
    let invoice = |label: &str| {
        node.call(
            "invoice",
            json!({"amount_msat": 1000, "label": label, "description": "d"}),
        );
    };
    let old_id = block_on(async {
        let mut sse = SseReader::open(&node, &rune).await;
        for label in ["before-1", "before-2", "before-3"] {
            invoice(label);
        }
        let mut last = String::new();
        for label in ["before-1", "before-2", "before-3"] {
            let (id, data) = next_of(&mut sse, "invoice_creation").await;
            assert_eq!(data["label"], json!(label));
            last = id;
        }
        last
    });
    let (old_epoch, old_seq) = id_parts(&old_id);
    assert!(old_seq >= 3, "{old_id}");

    let port = node.rest_port().expect("a port").to_string();
    node.call("plugin", json!({"subcommand": "stop", "plugin": "clnrest"}));
    node.call(
        "plugin",
        json!({
            "subcommand": "start",
            "plugin": env!("CARGO_BIN_EXE_clnrest"),
            "clnrest-port": port,
            "clnrest-protocol": "http",
        }),
    );
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", node.rest_port().unwrap_or(0))).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted plugin does not listen:\n{}",
            node.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    invoice("after-restart");
    block_on(async {
        let mut resumed = SseReader::open_from(&node, &rune, Some(&old_id)).await;
        let (id, event, gap) = resumed.next().await;
        assert_eq!(event, "gap", "{gap}");
        assert_eq!(id, None);
        assert_eq!(gap["since"], json!(old_id), "{gap}");
        assert_eq!(gap["oldest"], json!(1), "{gap}");
        let new_epoch = gap["epoch"].as_str().expect("the new epoch").to_string();
        assert_ne!(new_epoch, old_epoch);
        // Everything the new process has, from 1, then the invoice made after the restart.
        let mut seqs = Vec::new();
        loop {
            let (id, event, data) = resumed.next().await;
            let (epoch, seq) = id_parts(&id.unwrap_or_else(|| panic!("{event} without id")));
            assert_eq!(epoch, new_epoch);
            seqs.push(seq);
            if event == "invoice_creation" {
                assert_eq!(data["label"], json!("after-restart"));
                break;
            }
        }
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, expected,
            "every notification of the new process, in order"
        );
        assert!(
            *seqs.last().unwrap_or(&0) <= old_seq,
            "the test should show a number the old id would have skipped: {seqs:?} vs {old_id}"
        );
    });
}
