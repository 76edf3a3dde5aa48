//! The live-notification stream: lightningd's notifications relayed to Socket.IO clients
//! (namespace `/` on the REST port) and to the SSE stream `GET /v1/notifications`.
//!
//! Every test runs the real plugin behind the mock lightningd (fresh process, free port,
//! temp lightning-dir), pushes notifications with the mock's `notify`/`notify_raw`, and
//! listens with real third-party clients: `rust_socketio` for Socket.IO and `reqwest` for SSE.
//! The only hand-made client is the deliberately stalled one of the slow-consumer test.
//!
//! Submodules: `notifications/clients.rs` (the Socket.IO listener, the SSE reader and the
//! stalled raw websocket client).

#[path = "notifications/clients.rs"]
mod clients;

use clients::{
    connect_listener, listen, push, push_fixture, push_wildcard_fixture, read_sse_to_end,
    stalled_client, stalled_polling_client, stalled_sse, stalled_upgraded_client, wait_subscribed,
    Got, Listener, SseEvent, SseReader, WAIT,
};
use mock_lightningd::fixtures::load_fixture;
use mock_lightningd::gateway::{json_of, Gateway};
use mock_lightningd::runes::Rune;
use rust_socketio::TransportType;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A rune made by another node (fixtures/rpc/checkrune-c-foreign-rune.json).
fn foreign_rune() -> String {
    load_fixture("rpc/checkrune-c-foreign-rune.json")["request"]["params"]["rune"]
        .as_str()
        .expect("the fixture has a rune")
        .to_string()
}

/// The `params` object of fixtures/notifications/<topic>.json, e.g.
/// `{"invoice_creation": {...}}`.
fn fixture_params(topic: &str) -> Value {
    load_fixture(&format!("notifications/{topic}.json"))["params"].clone()
}

/// The topic's inner object of fixtures/notifications/<topic>.json.
fn fixture_payload(topic: &str) -> Value {
    fixture_params(topic)[topic].clone()
}

/// An `invoice_creation` payload shaped like the fixture, numbered by its label.
fn numbered_invoice(i: u64) -> Value {
    let mut payload = fixture_payload("invoice_creation");
    payload["label"] = json!(format!("n-{i}"));
    payload
}

/// The number in an `n-<i>` label of a `message` event's `invoice_creation` data.
fn label_number(message: &Value) -> u64 {
    message["invoice_creation"]["label"]
        .as_str()
        .and_then(|label| label.strip_prefix("n-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered invoice_creation message: {message}"))
}

/// Pushes `invoice_creation` notifications `n-<from>` ..= `n-<to>`.
async fn push_numbered(gateway: &Gateway, from: u64, to: u64) {
    for i in from..=to {
        push(gateway, "invoice_creation", numbered_invoice(i)).await;
    }
}

/// The unique id of a rune the mock made (`=<id>` restriction).
fn unique_id(rune: &str) -> u64 {
    Rune::decode(rune)
        .and_then(|r| r.unique_id().and_then(|id| id.parse().ok()))
        .unwrap_or_else(|| panic!("rune without a numeric unique id: {rune}"))
}

/// Asserts `seqs` is exactly `from..=to`, pointing at the first difference.
fn assert_exact_sequence(who: &str, seqs: &[u64], from: u64, to: u64) {
    let expected: Vec<u64> = (from..=to).collect();
    if seqs != expected.as_slice() {
        let first_bad = seqs
            .iter()
            .zip(&expected)
            .position(|(got, want)| got != want)
            .unwrap_or(seqs.len().min(expected.len()));
        panic!(
            "{who}: expected exactly {from}..={to} in order ({} items), got {} items; first \
             difference at index {first_bad}: got {:?}, expected {:?}",
            expected.len(),
            seqs.len(),
            seqs.get(first_bad..(first_bad + 5).min(seqs.len())),
            expected.get(first_bad..(first_bad + 5).min(expected.len())),
        );
    }
}

/// The plugin's log lines about disconnecting clients or closing streams.
fn disconnect_logs(gateway: &Gateway) -> Vec<String> {
    gateway
        .node
        .logs()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.contains("disconnecting") || m.contains("closing"))
        .collect()
}

/// Waits until `who` received `count` events `name`; fails at once, with the plugin's
/// reason, if the server disconnects it first.
async fn receive_all(
    gateway: &Gateway,
    who: &str,
    listener: &Listener,
    name: &str,
    count: usize,
) -> Vec<Value> {
    let outcome = listener
        .wait_for(&format!("{count} `{name}` events for {who}"), |state| {
            if state.count(name) >= count {
                Some(Ok(()))
            } else if state.lifecycle.contains(&Got::Closed) {
                Some(Err(state.count(name)))
            } else {
                None
            }
        })
        .await;
    if let Err(received) = outcome {
        panic!(
            "{who} was disconnected by the plugin after {received} of {count} `{name}` events; \
             plugin log: {:?}",
            disconnect_logs(gateway)
        );
    }
    listener.events_named(name)
}

/// The `seq` of every `notification` event.
fn seqs(notifications: &[Value]) -> Vec<u64> {
    notifications
        .iter()
        .map(|n| {
            n["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("notification without a numeric seq: {n}"))
        })
        .collect()
}

/// Waits until `listener` has `count` `notification` events, returns their `seq`s.
async fn seqs_of(listener: &Listener, count: usize) -> Vec<u64> {
    listener.wait_events("notification", count).await;
    seqs(&listener.events_named("notification"))
}

/// The epoch and sequence number of an SSE event's `id: <epoch>-<seq>` (the epoch: 16 hex
/// digits).
fn id_parts(event: &SseEvent) -> (String, u64) {
    let id = event
        .id
        .as_deref()
        .unwrap_or_else(|| panic!("no id: {event:?}"));
    let (epoch, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("id is not <epoch>-<seq>: {id}"));
    assert!(
        epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit()),
        "epoch of {id}"
    );
    (epoch.to_string(), seq.parse().expect("a numeric seq"))
}

/// The sequence number of an SSE event's id.
fn id_seq(event: &SseEvent) -> u64 {
    id_parts(event).1
}

/// The plugin's epoch, as a `seq: true` client sees it on a notification.
fn epoch_of(notification: &Value) -> String {
    notification["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("notification without an epoch: {notification}"))
        .to_string()
}

/// A `seq: true` listener with the gateway's rune resuming after `since`.
async fn listen_since(gateway: &Gateway, since: u64) -> Listener {
    listen(
        gateway,
        json!({"rune": gateway.rune, "since": since, "seq": true}),
    )
    .await
}

/// Connects a client that must be refused; returns the connect error text.
async fn expect_refused(listener: &Listener) -> String {
    listener
        .wait_for("a connect error", |state| {
            state.lifecycle.iter().find_map(|got| match got {
                Got::ConnectError(text) => Some(text.clone()),
                _ => None,
            })
        })
        .await
}

/// Connects a websocket client with `auth` and a `Rune` header (if any) that must be
/// refused with a connect error containing `reason`; returns it for further checks.
async fn connect_refused(
    gateway: &Gateway,
    auth: Option<Value>,
    header_rune: Option<&str>,
    reason: &str,
) -> Listener {
    let listener = connect_listener(gateway, auth, header_rune, TransportType::Websocket).await;
    let error = expect_refused(&listener).await;
    assert!(
        error.contains(reason),
        "not refused with {reason:?}: {error}"
    );
    listener
}

/// Waits until the server has disconnected `listener`.
async fn wait_disconnected(listener: &Listener) {
    listener
        .wait_for("the disconnect", |state| {
            state.lifecycle.contains(&Got::Closed).then_some(())
        })
        .await;
}

/// Blacklists `rune` through the REST API (asserting it answered 201).
async fn blacklist(gateway: &Gateway, rune: &str) {
    let params = json!({"start": unique_id(rune)});
    let (status, body) = json_of(gateway.call("blacklistrune", params).await).await;
    assert_eq!(status, 201, "{body}");
}

fn assert_no_disconnects(gateway: &Gateway) {
    let logs = disconnect_logs(gateway);
    assert!(logs.is_empty(), "{logs:?}");
}

/// Checks that a refused client gets no notification: a witness with a good rune receives
/// a few notifications pushed after the refusal, then the refused one must have none.
async fn assert_never_receives(gateway: &Gateway, refused: &Listener) {
    let witness = listen(gateway, json!({"rune": gateway.rune, "seq": true})).await;
    push_numbered(gateway, 1, 3).await;
    witness.wait_events("notification", 3).await;
    let state = refused.snapshot();
    assert!(
        state.events.is_empty(),
        "a refused client received events: {:?}",
        state.events
    );
    assert!(
        !state.lifecycle.contains(&Got::Connected),
        "a refused client was connected: {:?}",
        state.lifecycle
    );
}

// ---------------------------------------------------------------------------------------
// Socket.IO: authorization at connect.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn socketio_rune_in_auth_payload_is_accepted() {
    let gateway = Gateway::start().await;
    let listener = listen(&gateway, json!({"rune": gateway.rune})).await;
    push_fixture(&gateway, "invoice_creation").await;
    let messages = listener.wait_events("message", 1).await;
    assert_eq!(messages[0], fixture_params("invoice_creation"));
    let checks = gateway.node.calls_of("checkrune");
    assert!(
        checks
            .iter()
            .any(|c| c.params["method"] == "listclnrest-notifications"
                && c.params.get("params").is_none_or(Value::is_null)),
        "expected checkrune for listclnrest-notifications without params: {checks:?}"
    );
    gateway.node.assert_no_violations();
}

#[tokio::test]
async fn socketio_rune_in_request_header_is_accepted() {
    let gateway = Gateway::start().await;
    let listener = connect_listener(
        &gateway,
        None,
        Some(&gateway.rune),
        TransportType::Websocket,
    )
    .await;
    wait_subscribed(&gateway, &listener, 1).await;
    push_fixture(&gateway, "invoice_payment").await;
    let messages = listener.wait_events("message", 1).await;
    assert_eq!(messages[0], fixture_params("invoice_payment"));
}

#[tokio::test]
async fn socketio_rune_header_wins_over_auth_payload() {
    let gateway = Gateway::start().await;
    // A good header with a foreign rune in the payload: the header is used.
    let header_good = connect_listener(
        &gateway,
        Some(json!({"rune": foreign_rune()})),
        Some(&gateway.rune),
        TransportType::Websocket,
    )
    .await;
    wait_subscribed(&gateway, &header_good, 1).await;
    // A foreign rune in the header with a good one in the payload: refused.
    let payload = Some(json!({"rune": gateway.rune}));
    let header = Some(foreign_rune());
    let reason = "Not derived from master";
    let header_bad = connect_refused(&gateway, payload, header.as_deref(), reason).await;
    push_fixture(&gateway, "connect").await;
    let messages = header_good.wait_events("message", 1).await;
    assert_eq!(messages[0], fixture_params("connect"));
    assert!(header_bad.snapshot().events.is_empty());
}

#[tokio::test]
async fn socketio_without_rune_is_refused_with_missing_rune() {
    let gateway = Gateway::start().await;
    let refused = connect_refused(&gateway, None, None, "Missing rune").await;
    // An auth payload without `rune` is no better.
    let without_rune = Some(json!({"seq": true}));
    let refused_too = connect_refused(&gateway, without_rune, None, "Missing rune").await;
    assert_never_receives(&gateway, &refused).await;
    assert!(refused_too.snapshot().events.is_empty());
}

#[tokio::test]
async fn socketio_foreign_rune_is_refused_not_derived_from_master() {
    let gateway = Gateway::start().await;
    let auth = Some(json!({"rune": foreign_rune()}));
    let refused = connect_refused(&gateway, auth, None, "Not derived from master").await;
    assert_never_receives(&gateway, &refused).await;
}

#[tokio::test]
async fn socketio_rune_forbidding_the_method_is_refused_with_lightningds_reason() {
    let gateway = Gateway::start().await;
    let rune = gateway
        .node
        .create_rune(json!("method/listclnrest-notifications"));
    let reason = "Not permitted: method is equal to listclnrest-notifications";
    let refused = connect_refused(&gateway, Some(json!({"rune": rune})), None, reason).await;
    assert_never_receives(&gateway, &refused).await;
    // The operator sees who was refused and why: the rune by its unique id, never itself.
    let unique_id = unique_id(&rune);
    let logs = gateway.node.logs();
    let expected = format!("refused rune #{unique_id} for listclnrest-notifications: {reason}");
    assert!(
        logs.iter()
            .any(|l| l.level == "info" && l.message == expected),
        "no info line {expected:?} in {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.message.starts_with("Socket.IO client ")
                && l.message.ends_with(&format!("refused: {reason}"))),
        "{logs:?}"
    );
    assert!(
        logs.iter().all(|l| !l.message.contains(&rune)),
        "a log line has the rune"
    );
}

#[tokio::test]
async fn socketio_readonly_rune_is_allowed() {
    let gateway = Gateway::start().await;
    let readonly = gateway.node.create_rune(json!("readonly"));
    let listener = listen(&gateway, json!({"rune": readonly})).await;
    push_fixture(&gateway, "disconnect").await;
    let messages = listener.wait_events("message", 1).await;
    assert_eq!(messages[0], fixture_params("disconnect"));
}

/// A client that saw the server's connect packet is connected: a notification lightningd
/// sends right after that must reach it (no waiting for the plugin's log here), and every
/// one after it, in order, without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_notification_sent_right_after_connect_is_delivered() {
    let gateway = Gateway::start().await;
    let clients = 20;
    let mut listeners = Vec::new();
    for i in 1..=clients {
        let listener = connect_listener(
            &gateway,
            Some(json!({"rune": gateway.rune, "seq": true})),
            None,
            TransportType::Websocket,
        )
        .await;
        listener.wait_connected().await;
        push_numbered(&gateway, i, i).await;
        listeners.push(listener);
    }
    // Once every subscription surely exists, one more for everybody.
    clients::wait_subscriptions(&gateway, clients as usize).await;
    push_numbered(&gateway, clients + 1, clients + 1).await;
    let mut missing = Vec::new();
    for (i, listener) in (1..).zip(&listeners) {
        // In order: once the last one is there, everything before it that will come came.
        listener
            .wait_for("the last notification", |state| {
                state
                    .events
                    .last()
                    .is_some_and(|(_, n)| n["seq"] == json!(clients + 1))
                    .then_some(())
            })
            .await;
        // Notification `i` was pushed once client `i` saw its connect packet; earlier ones
        // may come too (the mock's write returns before the plugin has journaled them).
        let got = seqs(&listener.events_named("notification"));
        let first = got.first().copied().unwrap_or(i).min(i);
        let expected: Vec<u64> = (first..=clients + 1).collect();
        if got != expected {
            missing.push(format!("client {i}: got {got:?}, expected {expected:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "clients missed notifications sent after they saw the connect packet:\n{}",
        missing.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Socket.IO: what is delivered.
// ---------------------------------------------------------------------------------------

/// Topics pushed with the mock's `notify` (payload from fixtures/notifications/<topic>.json).
const NAMED_TOPICS: [&str; 6] = [
    "invoice_creation",
    "invoice_payment",
    "connect",
    "disconnect",
    "warning",
    "sendpay_success",
];

/// Topics pushed verbatim from fixtures/notifications/wildcard/ (with `origin`, and
/// `custommsg` which nobody subscribes to by name).
const WILDCARD_TOPICS: [&str; 3] = ["pay_part_start", "pay_part_end", "custommsg"];

/// Pushes every [`NAMED_TOPICS`] fixture, then every [`WILDCARD_TOPICS`] one; returns the
/// topic and the `params` (`{<topic>: payload}`) of each, in order.
async fn push_every_topic(gateway: &Gateway) -> Vec<(&'static str, Value)> {
    let mut pushed = Vec::new();
    for topic in NAMED_TOPICS {
        push_fixture(gateway, topic).await;
        pushed.push((topic, fixture_params(topic)));
    }
    for topic in WILDCARD_TOPICS {
        let envelope = push_wildcard_fixture(gateway, topic).await;
        pushed.push((topic, envelope["params"].clone()));
    }
    pushed
}

#[tokio::test]
async fn socketio_message_events_carry_lightningds_params_unchanged() {
    let gateway = Gateway::start().await;
    let listener = listen(&gateway, json!({"rune": gateway.rune})).await;
    let pushed = push_every_topic(&gateway).await;
    let expected: Vec<Value> = pushed.into_iter().map(|(_, params)| params).collect();
    let messages = listener.wait_events("message", expected.len()).await;
    assert_eq!(messages, expected);
    // Numbers stay numbers (including a u64 beyond 2^53 and a float).
    assert_eq!(messages[0]["invoice_creation"]["msat"], json!(50000));
    assert!(messages[0]["invoice_creation"]["msat"].is_u64());
    let groupid = &messages[6]["pay_part_start"]["groupid"];
    assert!(groupid.as_u64().is_some_and(|g| g > 1 << 53), "{groupid}");
    assert!(messages[7]["pay_part_end"]["duration"].is_f64());
    assert!(listener.events_named("notification").is_empty());
    gateway.node.assert_no_violations();
}

#[tokio::test]
async fn socketio_polling_transport_gets_the_same_messages() {
    let gateway = Gateway::start().await;
    let listener = connect_listener(
        &gateway,
        Some(json!({"rune": gateway.rune})),
        None,
        TransportType::Polling,
    )
    .await;
    wait_subscribed(&gateway, &listener, 1).await;
    push_fixture(&gateway, "invoice_payment").await;
    push_fixture(&gateway, "sendpay_success").await;
    let messages = listener.wait_events("message", 2).await;
    assert_eq!(
        messages,
        vec![
            fixture_params("invoice_payment"),
            fixture_params("sendpay_success")
        ]
    );
}

#[tokio::test]
async fn socketio_topics_filter_delivers_only_those_topics() {
    let gateway = Gateway::start().await;
    let filtered = listen(
        &gateway,
        json!({"rune": gateway.rune, "topics": ["invoice_payment", "connect"]}),
    )
    .await;
    let everything = listen(&gateway, json!({"rune": gateway.rune})).await;
    for topic in NAMED_TOPICS {
        push_fixture(&gateway, topic).await;
    }
    // A last wanted one: whatever came through the filter before it is in the list.
    push_fixture(&gateway, "invoice_payment").await;
    everything
        .wait_events("message", NAMED_TOPICS.len() + 1)
        .await;
    let messages = filtered.wait_events("message", 3).await;
    assert_eq!(
        messages,
        vec![
            fixture_params("invoice_payment"),
            fixture_params("connect"),
            fixture_params("invoice_payment")
        ]
    );
}

#[tokio::test]
async fn socketio_seq_true_sends_notification_events_numbered_from_one() {
    let gateway = Gateway::start().await;
    let listener = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    push_fixture(&gateway, "invoice_creation").await;
    push_fixture(&gateway, "invoice_payment").await;
    let pay_part_start = push_wildcard_fixture(&gateway, "pay_part_start").await;
    let notifications = listener.wait_events("notification", 3).await;
    // Every notification names the process's numbering (its epoch) next to its number.
    let epoch = epoch_of(&notifications[0]);
    assert_eq!(
        notifications,
        vec![
            json!({"seq": 1, "epoch": epoch, "topic": "invoice_creation", "payload": fixture_payload("invoice_creation")}),
            json!({"seq": 2, "epoch": epoch, "topic": "invoice_payment", "payload": fixture_payload("invoice_payment")}),
            json!({"seq": 3, "epoch": epoch, "topic": "pay_part_start", "payload": pay_part_start["params"]["pay_part_start"]}),
        ]
    );
    assert!(listener.events_named("message").is_empty());
}

#[tokio::test]
async fn socketio_seq_and_topics_combine_and_numbers_count_every_notification() {
    let gateway = Gateway::start().await;
    let listener = listen(
        &gateway,
        json!({"rune": gateway.rune, "seq": true, "topics": ["warning"]}),
    )
    .await;
    for topic in NAMED_TOPICS {
        push_fixture(&gateway, topic).await;
    }
    let notifications = listener.wait_events("notification", 1).await;
    // warning is the 5th notification of the stream: filtered-out ones still count.
    let epoch = epoch_of(&notifications[0]);
    assert_eq!(
        notifications[0],
        json!({"seq": 5, "epoch": epoch, "topic": "warning", "payload": fixture_payload("warning")})
    );
}

#[tokio::test]
async fn socketio_resume_since_replays_retained_then_live() {
    let gateway = Gateway::start().await;
    push_numbered(&gateway, 1, 5).await;
    // A client that was listening makes sure all five are journaled before resuming.
    let witness = listen_since(&gateway, 0).await;
    assert_eq!(seqs_of(&witness, 5).await, vec![1, 2, 3, 4, 5]);

    let resumed = listen_since(&gateway, 2).await;
    let resumed_messages = listen(&gateway, json!({"rune": gateway.rune, "since": 3})).await;
    assert_eq!(seqs_of(&resumed, 3).await, vec![3, 4, 5]);
    push_numbered(&gateway, 6, 7).await;
    assert_eq!(seqs_of(&resumed, 5).await, vec![3, 4, 5, 6, 7]);
    let notifications = resumed.events_named("notification");
    assert_eq!(notifications[0]["payload"], numbered_invoice(3));
    let messages = resumed_messages.wait_events("message", 4).await;
    let labels: Vec<u64> = messages.iter().map(label_number).collect();
    assert_eq!(labels, vec![4, 5, 6, 7]);
    assert!(resumed.events_named("gap").is_empty());
    assert!(resumed_messages.events_named("gap").is_empty());
}

#[tokio::test]
async fn socketio_resume_from_the_last_seq_gets_only_live_ones() {
    let gateway = Gateway::start().await;
    push_numbered(&gateway, 1, 3).await;
    let witness = listen_since(&gateway, 0).await;
    seqs_of(&witness, 3).await;
    let resumed = listen_since(&gateway, 3).await;
    push_numbered(&gateway, 4, 4).await;
    assert_eq!(seqs_of(&resumed, 1).await, vec![4]);
    assert!(resumed.events_named("gap").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_resume_from_before_the_journal_gets_gap_then_everything_retained() {
    let gateway = Gateway::start().await;
    let total = 10_050;
    let witness = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    push_numbered(&gateway, 1, total).await;
    // Everything is journaled once a live client has it all.
    let live = receive_all(&gateway, "live witness", &witness, "notification", 10_050).await;
    assert_exact_sequence("live witness", &seqs(&live), 1, total);

    let resumed = listen_since(&gateway, 10).await;
    receive_all(&gateway, "resumed client", &resumed, "notification", 10_000).await;
    push_numbered(&gateway, total + 1, total + 1).await;
    let got = receive_all(&gateway, "resumed client", &resumed, "notification", 10_001).await;
    let state = resumed.snapshot();
    assert_eq!(
        state
            .events
            .first()
            .map(|(name, data)| (name.as_str(), data)),
        Some(("gap", &json!({"since": 10, "oldest": 51}))),
        "the first event must be the gap"
    );
    assert_eq!(state.count("gap"), 1);
    assert_exact_sequence("resumed client", &seqs(&got), 51, total + 1);
}

#[tokio::test]
async fn socketio_bad_auth_options_are_refused() {
    let gateway = Gateway::start().await;
    let auth = Some(json!({"rune": gateway.rune, "since": -1}));
    connect_refused(&gateway, auth, None, "since").await;
    for since in [json!("yesterday"), json!({"epoch": "abc"})] {
        let auth = Some(json!({"rune": gateway.rune, "since": since}));
        connect_refused(&gateway, auth, None, "`since` must be a position").await;
    }
}

/// An epoch no plugin process has: what a position of an earlier process looks like.
const OTHER_EPOCH: &str = "0123456789abcdef";

/// `notification` events carry the process's epoch; resuming with `"<epoch>-<seq>"` or
/// `{"epoch", "seq"}` of this process replays exactly what came after, without a gap.
#[tokio::test]
async fn socketio_notifications_carry_the_epoch_and_positions_of_it_resume_exactly() {
    let gateway = Gateway::start().await;
    let witness = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    push_numbered(&gateway, 1, 5).await;
    let got = witness.wait_events("notification", 5).await;
    let epoch = epoch_of(&got[0]);
    assert!(
        epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit()),
        "{epoch}"
    );
    assert!(got.iter().all(|n| epoch_of(n) == epoch), "{got:?}");

    let auth = |since: Value| json!({"rune": gateway.rune, "seq": true, "since": since});
    let as_string = listen(&gateway, auth(json!(format!("{epoch}-2")))).await;
    let as_object = listen(&gateway, auth(json!({"epoch": epoch, "seq": 3}))).await;
    assert_eq!(seqs_of(&as_string, 3).await, vec![3, 4, 5]);
    assert_eq!(seqs_of(&as_object, 2).await, vec![4, 5]);
    push_numbered(&gateway, 6, 6).await;
    assert_eq!(seqs_of(&as_string, 4).await, vec![3, 4, 5, 6]);
    assert_eq!(seqs_of(&as_object, 3).await, vec![4, 5, 6]);
    for listener in [&as_string, &as_object] {
        assert!(listener.events_named("gap").is_empty());
        let notifications = listener.events_named("notification");
        assert!(notifications.iter().all(|n| epoch_of(n) == epoch));
    }
}

/// A position of an earlier plugin process: another epoch, and a number (2) this process has
/// handed out too. Taken as one of ours it would skip 1 and 2 silently; instead the client
/// gets `gap` first, then every retained notification.
#[tokio::test]
async fn socketio_position_of_another_epoch_gets_gap_then_everything_retained() {
    let gateway = Gateway::start().await;
    let witness = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    push_numbered(&gateway, 1, 5).await;
    let epoch = epoch_of(&witness.wait_events("notification", 5).await[0]);
    for since in [
        json!(format!("{OTHER_EPOCH}-2")),
        json!({"epoch": OTHER_EPOCH, "seq": 2}),
    ] {
        let resumed = listen(
            &gateway,
            json!({"rune": gateway.rune, "seq": true, "since": since}),
        )
        .await;
        assert_eq!(seqs_of(&resumed, 5).await, vec![1, 2, 3, 4, 5], "{since}");
        let state = resumed.snapshot();
        assert_eq!(
            state
                .events
                .first()
                .map(|(name, data)| (name.as_str(), data)),
            Some((
                "gap",
                &json!({"since": format!("{OTHER_EPOCH}-2"), "oldest": 1, "epoch": epoch})
            )),
            "the first event must be the gap ({since})"
        );
        assert_eq!(state.count("gap"), 1);
    }
}

// ---------------------------------------------------------------------------------------
// Socket.IO: revocation.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn socketio_blacklisted_rune_is_disconnected_promptly_and_others_stay() {
    let gateway = Gateway::start().await;
    let doomed_rune = gateway.node.create_rune(Value::Null);
    let doomed = listen(&gateway, json!({"rune": doomed_rune, "seq": true})).await;
    let doomed_too = listen(&gateway, json!({"rune": doomed_rune})).await;
    let survivor = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    push_numbered(&gateway, 1, 1).await;
    seqs_of(&doomed, 1).await;

    let started = Instant::now();
    blacklist(&gateway, &doomed_rune).await;
    let reasons = doomed.wait_events("disconnect_reason", 1).await;
    let reason = reasons[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.starts_with("rune revoked: "), "{}", reasons[0]);
    assert!(reason.contains("Blacklisted"), "{reason}");
    wait_disconnected(&doomed).await;
    // Every listener of that rune goes.
    doomed_too.wait_events("disconnect_reason", 1).await;
    wait_disconnected(&doomed_too).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "revocation took {elapsed:?}"
    );
    // disconnect_reason comes before the disconnect, and nothing after it.
    push_numbered(&gateway, 2, 3).await;
    assert_eq!(seqs_of(&survivor, 3).await, vec![1, 2, 3]);
    assert_eq!(seqs_of(&doomed, 1).await, vec![1]);
    assert!(!survivor.snapshot().lifecycle.contains(&Got::Closed));

    // The revoked rune cannot come back.
    let auth = Some(json!({"rune": doomed_rune}));
    connect_refused(&gateway, auth, None, "Blacklisted").await;
}

// ---------------------------------------------------------------------------------------
// Bursts and slow consumers.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_10000_reaches_three_clients_complete_and_in_order() {
    let gateway = Gateway::start().await;
    let total = 10_000;
    let messages = listen(&gateway, json!({"rune": gateway.rune})).await;
    let numbered = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    let by_header = connect_listener(
        &gateway,
        Some(json!({"seq": true})),
        Some(&gateway.rune),
        TransportType::Websocket,
    )
    .await;
    wait_subscribed(&gateway, &by_header, 3).await;

    push_numbered(&gateway, 1, total).await;

    let got = receive_all(&gateway, "message client", &messages, "message", 10_000).await;
    let labels: Vec<u64> = got.iter().map(label_number).collect();
    assert_exact_sequence("message client", &labels, 1, total);
    for (who, listener) in [("seq client", &numbered), ("header client", &by_header)] {
        let got = receive_all(&gateway, who, listener, "notification", 10_000).await;
        assert_exact_sequence(who, &seqs(&got), 1, total);
    }
    assert_no_disconnects(&gateway);
    gateway.node.assert_no_violations();
}

/// Clients that connect while notifications stream in (live ones, and ones resuming from 0)
/// each get an unbroken run of sequence numbers up to the last one: joining the live
/// fan-out mid-stream neither skips nor repeats a notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_joining_mid_stream_get_an_unbroken_sequence() {
    let gateway = std::sync::Arc::new(Gateway::start().await);
    let total: u64 = 3_000;
    let pusher = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            for i in 1..=total {
                push(&gateway, "invoice_creation", numbered_invoice(i)).await;
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let mut clients = Vec::new();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let auth = if round % 2 == 0 {
            json!({"rune": gateway.rune, "seq": true})
        } else {
            json!({"rune": gateway.rune, "seq": true, "since": 0})
        };
        let resumes = round % 2 == 1;
        clients.push((
            resumes,
            connect_listener(&gateway, Some(auth), None, TransportType::Websocket).await,
        ));
    }
    pusher.await.expect("the pusher finished");
    for (n, (resumes, listener)) in clients.iter().enumerate() {
        let who = format!("client {n} (resumes from 0: {resumes})");
        let got = listener
            .wait_for(&format!("seq {total} for {who}"), |state| {
                let last = state
                    .events
                    .last()
                    .filter(|(name, _)| name == "notification")?;
                (last.1["seq"].as_u64() == Some(total)).then_some(())
            })
            .await;
        let _: () = got;
        let seqs = seqs(&listener.events_named("notification"));
        let first = if *resumes {
            1
        } else {
            seqs.first().copied().unwrap_or(1)
        };
        assert_exact_sequence(&who, &seqs, first, total);
    }
    assert_no_disconnects(&gateway);
}

/// An `invoice_creation` payload numbered by its label, with `description_bytes` of
/// description.
fn padded_invoice(i: u64, description_bytes: usize) -> Value {
    let mut payload = numbered_invoice(i);
    payload["description"] = json!("x".repeat(description_bytes));
    payload
}

/// About 1 KiB a notification: 20,000 of them are far more than the kernel's socket buffers
/// hold.
const KIB_DESCRIPTION: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_is_cut_off_as_slow_consumer_and_fast_client_gets_everything() {
    let gateway = Gateway::start().await;
    let total = 20_000;
    let _stalled = stalled_client(&gateway, &gateway.rune).await;
    let fast = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    let started = Instant::now();
    for i in 1..=total {
        push(
            &gateway,
            "invoice_creation",
            padded_invoice(i, KIB_DESCRIPTION),
        )
        .await;
    }
    let pushed = started.elapsed();

    let got = receive_all(&gateway, "fast client", &fast, "notification", 20_000).await;
    assert_exact_sequence("fast client", &seqs(&got), 1, total);
    let delivered = started.elapsed();
    let cut = gateway
        .node
        .wait_for_log(|l| l.message.contains("slow consumer"), WAIT)
        .await;
    assert!(
        cut.is_some(),
        "the stalled client was not cut off as a slow consumer (pushed in {pushed:?}, \
         delivered in {delivered:?}); plugin log: {:?}",
        disconnect_logs(&gateway)
    );
    assert_eq!(
        disconnect_logs(&gateway).len(),
        1,
        "only the stalled client is cut off: {:?}",
        disconnect_logs(&gateway)
    );
    assert!(!fast.snapshot().lifecycle.contains(&Got::Closed));
}

/// 256 KiB a notification: 16 of them are 4 MiB, far fewer messages than a client may have
/// queued.
const LARGE_DESCRIPTION: usize = 256 * 1024;

/// A stalled client is cut off once it is owed 4 MiB, long before it is owed 10,000
/// messages: what it costs is bounded in bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_owed_4_mib_is_cut_off_and_fast_client_gets_everything() {
    let gateway = Gateway::start().await;
    let stalled = stalled_client(&gateway, &gateway.rune).await;
    assert_stalled_cut_off_at_4_mib(&gateway).await;
    assert_closed_by_the_plugin(stalled).await;
}

/// The same for a client that connected the way socket.io-client and python-socketio do by
/// default, long-polling first and then upgrading to a websocket on another connection:
/// without its websocket's byte count, all 25 MiB would be queued for it (100 messages are
/// far fewer than the 10,000 a client may have queued) and it would never be cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_that_upgraded_from_polling_is_cut_off_at_4_mib() {
    let gateway = Gateway::start().await;
    let stalled = stalled_upgraded_client(&gateway, &gateway.rune).await;
    assert_stalled_cut_off_at_4_mib(&gateway).await;
    assert_closed_by_the_plugin(stalled).await;
}

/// The same for a client on long-polling only that stops polling: what its polls took is
/// counted, so it too is cut off once owed 4 MiB (before, 25 MiB were queued for it until
/// engine.io's ping timeout closed its session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_polling_client_is_cut_off_at_4_mib() {
    let gateway = Gateway::start().await;
    stalled_polling_client(&gateway, &gateway.rune).await;
    assert_stalled_cut_off_at_4_mib(&gateway).await;
}

/// A stalled client that keeps answering pings (it writes pongs, never reads) is still
/// closed by the plugin a few seconds after it is cut off: engine.io's heartbeat would never
/// close it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_answering_pings_is_closed_soon_after_the_cut_off() {
    use tokio::io::AsyncWriteExt;
    let gateway = Gateway::start().await;
    let (_unread, mut write) = stalled_client(&gateway, &gateway.rune).await.into_split();
    let pong = mock_lightningd::websocket_frames::masked(0x1, b"3");
    let pongs = tokio::spawn(async move {
        while write.write_all(&pong).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Instant::now()
    });
    assert_stalled_cut_off_at_4_mib(&gateway).await;
    let cut_off = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(30), pongs)
        .await
        .expect("the plugin never closed the connection of a client that answers pings")
        .expect("the pong writer");
    let after = closed.saturating_duration_since(cut_off);
    assert!(
        after < Duration::from_secs(12),
        "closed {after:?} after the cut-off"
    );
}

/// Sends 100 notifications of 256 KiB: a reading client gets all of them, and the stalled
/// client (which never reads) is the only client cut off as a slow consumer.
async fn assert_stalled_cut_off_at_4_mib(gateway: &Gateway) {
    // 25 MiB: 4 MiB owed plus whatever the kernel's socket buffers take, several times over.
    let total = 100;
    let fast = listen(gateway, json!({"rune": gateway.rune, "seq": true})).await;
    for i in 1..=total {
        push(
            gateway,
            "invoice_creation",
            padded_invoice(i, LARGE_DESCRIPTION),
        )
        .await;
    }
    let got = receive_all(gateway, "fast client", &fast, "notification", 100).await;
    assert_exact_sequence("fast client", &seqs(&got), 1, total);
    let cut = gateway
        .node
        .wait_for_log(|l| l.message.contains("slow consumer"), WAIT)
        .await;
    assert!(
        cut.is_some(),
        "the stalled client was not cut off after {total} notifications of 256 KiB; plugin \
         log: {:?}",
        disconnect_logs(gateway)
    );
    assert_eq!(
        disconnect_logs(gateway).len(),
        1,
        "only the stalled client is cut off: {:?}",
        disconnect_logs(gateway)
    );
    assert!(!fast.snapshot().lifecycle.contains(&Got::Closed));
}

/// Reads `stream` (a websocket the plugin cut off) to its end: the plugin closes it a few
/// seconds after the cut-off, well before engine.io's own timeout (ping interval 25 s plus
/// ping timeout 20 s) would, even though the client never reads the disconnect packet.
async fn assert_closed_by_the_plugin(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(WAIT, async {
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the plugin did not close the cut-off client's connection within {WAIT:?}"
    );
}

/// Two hundred stalled clients do not get a client that reads cut off: each stalled
/// connection takes only a little unsent data into the kernel (not the megabytes Linux grows
/// a send buffer to), so they fall behind and are cut off early, and the plugin's writing goes
/// to the client that reads. (Before: every client, the reading one too, fell 4 MiB behind
/// while the plugin filled the stalled sockets, and all were cut off, the reader after about
/// 1,700 of 5,000.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stalled_clients_do_not_get_a_reading_client_cut_off() {
    let gateway = Gateway::start().await;
    let total = 5_000;
    let mut stalled = Vec::new();
    for _ in 0..200 {
        stalled.push(stalled_client(&gateway, &gateway.rune).await);
    }
    let fast = listen(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    for i in 1..=total {
        push(&gateway, "invoice_creation", padded_invoice(i, 2048)).await;
    }
    let got = receive_all(&gateway, "reading client", &fast, "notification", 5_000).await;
    assert_exact_sequence("reading client", &seqs(&got), 1, total);
    assert!(!fast.snapshot().lifecycle.contains(&Got::Closed));
    drop(stalled);
}

// ---------------------------------------------------------------------------------------
// SSE: GET /v1/notifications.
// ---------------------------------------------------------------------------------------

/// Asserts `GET /v1/notifications` with `rune` (if any) is answered `status` with exactly
/// the error `body`.
async fn assert_sse_refused(gateway: &Gateway, rune: Option<&str>, status: u16, body: Value) {
    let response = SseReader::request(gateway, rune, None, "").await;
    let answer = json_of(response).await;
    assert_eq!(
        answer,
        (status, body),
        "GET /v1/notifications with rune {rune:?}"
    );
}

#[tokio::test]
async fn sse_without_rune_is_403_missing_rune() {
    let gateway = Gateway::start().await;
    let missing = json!({"code": 1501, "message": "Not authorized: Missing rune"});
    assert_sse_refused(&gateway, None, 403, missing).await;
    assert!(gateway.node.calls_of("checkrune").is_empty());
}

#[tokio::test]
async fn sse_refused_runes_are_401_with_lightningds_error() {
    let gateway = Gateway::start().await;
    let forbidding = gateway
        .node
        .create_rune(json!("method/listclnrest-notifications"));
    for (rune, error) in [
        (
            foreign_rune(),
            json!({"code": 1501, "message": "Not authorized: Not derived from master"}),
        ),
        (
            forbidding,
            json!({"code": 1502, "message": "Not permitted: method is equal to listclnrest-notifications"}),
        ),
    ] {
        assert_sse_refused(&gateway, Some(&rune), 401, error).await;
    }
}

#[tokio::test]
async fn sse_readonly_rune_gets_the_event_stream() {
    let gateway = Gateway::start().await;
    let readonly = gateway.node.create_rune(json!("readonly"));
    let mut stream = SseReader::open(&gateway, &readonly, None, "").await;
    push_fixture(&gateway, "invoice_payment").await;
    let event = stream.next().await;
    assert_eq!(event.event.as_deref(), Some("invoice_payment"));
}

#[tokio::test]
async fn sse_events_have_seq_id_topic_event_and_payload_data() {
    let gateway = Gateway::start().await;
    let mut stream = SseReader::open(&gateway, &gateway.rune, None, "").await;
    let mut epochs = std::collections::HashSet::new();
    for (i, (topic, params)) in push_every_topic(&gateway).await.iter().enumerate() {
        let payload = &params[*topic];
        let event = stream.next().await;
        // `id: <epoch>-<seq>`: one epoch for the process, the sequence numbers from 1.
        let (epoch, seq) = id_parts(&event);
        epochs.insert(epoch);
        assert_eq!(seq, i as u64 + 1);
        assert_eq!(event.event.as_deref(), Some(*topic));
        // The data is the payload as lightningd wrote it: same members, same order, same
        // numbers.
        assert_eq!(event.data, payload.to_string(), "event {}", i + 1);
    }
    assert_eq!(epochs.len(), 1, "{epochs:?}");
}

#[tokio::test]
async fn sse_last_event_id_resumes_after_it() {
    let gateway = Gateway::start().await;
    let mut live = SseReader::open(&gateway, &gateway.rune, None, "").await;
    push_numbered(&gateway, 1, 5).await;
    for i in 1..=5 {
        assert_eq!(id_seq(&live.next().await), i);
    }
    // A bare sequence number (an id from before epochs) still resumes in this process.
    let mut resumed = SseReader::open(&gateway, &gateway.rune, Some("3"), "").await;
    push_numbered(&gateway, 6, 6).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let event = resumed.next().await;
        assert_eq!(event.event.as_deref(), Some("invoice_creation"));
        ids.push(id_seq(&event));
    }
    assert_eq!(ids, vec![4, 5, 6]);
    push_numbered(&gateway, 7, 7).await;
    assert_eq!(id_seq(&resumed.next().await), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_last_event_id_before_the_journal_gets_gap_then_everything_retained() {
    let gateway = Gateway::start().await;
    let total = 10_050;
    let mut live = SseReader::open(&gateway, &gateway.rune, None, "").await;
    push_numbered(&gateway, 1, total).await;
    // Everything is journaled once a live stream has it all.
    for i in 1..=total {
        assert_eq!(id_seq(&live.next().await), i);
    }
    let mut resumed = SseReader::open(&gateway, &gateway.rune, Some("10"), "").await;
    let gap = resumed.next().await;
    assert_eq!(gap.event.as_deref(), Some("gap"));
    let data: Value = serde_json::from_str(&gap.data).expect("gap data is JSON");
    assert_eq!(data, json!({"since": 10, "oldest": 51}));
    for i in 51..=total {
        let event = resumed.next().await;
        assert_eq!(id_seq(&event), i, "after the gap");
    }
    push_numbered(&gateway, total + 1, total + 1).await;
    assert_eq!(id_seq(&resumed.next().await), total + 1);
}

#[tokio::test]
async fn sse_topics_query_filters() {
    let gateway = Gateway::start().await;
    let mut filtered =
        SseReader::open(&gateway, &gateway.rune, None, "?topics=connect,warning").await;
    let mut everything = SseReader::open(&gateway, &gateway.rune, None, "").await;
    for topic in NAMED_TOPICS {
        push_fixture(&gateway, topic).await;
    }
    // A last wanted one: anything else let through would come before it.
    push_fixture(&gateway, "connect").await;
    for _ in 0..=NAMED_TOPICS.len() {
        everything.next().await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = filtered.next().await;
        let seq = id_seq(&event);
        got.push((event.event.unwrap_or_default(), seq));
    }
    let expected = [("connect", 3), ("warning", 5), ("connect", 7)];
    let expected: Vec<(String, u64)> = expected.iter().map(|(t, i)| (t.to_string(), *i)).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn sse_blacklisted_rune_ends_the_stream() {
    let gateway = Gateway::start().await;
    let doomed_rune = gateway.node.create_rune(Value::Null);
    let mut doomed = SseReader::open(&gateway, &doomed_rune, None, "").await;
    let mut survivor = SseReader::open(&gateway, &gateway.rune, None, "").await;
    let started = Instant::now();
    blacklist(&gateway, &doomed_rune).await;
    let event = doomed.next().await;
    assert_eq!(event.event.as_deref(), Some("disconnect_reason"));
    let data: Value = serde_json::from_str(&event.data).unwrap();
    let reason = data["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("rune revoked: "), "{data}");
    doomed.wait_end().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    push_numbered(&gateway, 1, 1).await;
    assert_eq!(id_seq(&survivor.next().await), 1);
}

#[tokio::test]
async fn sse_last_event_id_of_this_epoch_resumes_exactly_and_of_another_gets_gap_then_all() {
    let gateway = Gateway::start().await;
    let mut live = SseReader::open(&gateway, &gateway.rune, None, "").await;
    push_numbered(&gateway, 1, 5).await;
    let mut epoch = String::new();
    for i in 1..=5 {
        let (e, seq) = id_parts(&live.next().await);
        assert_eq!(seq, i);
        epoch = e;
    }
    let this_epoch = format!("{epoch}-3");
    let mut resumed = SseReader::open(&gateway, &gateway.rune, Some(&this_epoch), "").await;
    let other_epoch = format!("{OTHER_EPOCH}-3");
    let mut other = SseReader::open(&gateway, &gateway.rune, Some(&other_epoch), "").await;
    push_numbered(&gateway, 6, 6).await;
    for i in 4..=6 {
        let event = resumed.next().await;
        assert_eq!(event.event.as_deref(), Some("invoice_creation"), "no gap");
        assert_eq!(id_parts(&event), (epoch.clone(), i));
    }
    let gap = other.next().await;
    assert_eq!(gap.event.as_deref(), Some("gap"));
    assert_eq!(gap.id, None);
    let data: Value = serde_json::from_str(&gap.data).expect("gap data is JSON");
    assert_eq!(
        data,
        json!({"since": other_epoch, "oldest": 1, "epoch": epoch})
    );
    for i in 1..=6 {
        assert_eq!(id_parts(&other.next().await), (epoch.clone(), i));
    }
}

#[tokio::test]
async fn sse_bad_last_event_id_is_400() {
    let gateway = Gateway::start().await;
    for bad in ["yesterday", "-3", "abc-", "a b-3"] {
        let response = SseReader::request(&gateway, Some(&gateway.rune), Some(bad), "").await;
        assert_eq!(
            json_of(response).await,
            (
                400,
                json!({"code": -32600, "message": "Last-Event-ID must be an event id (<epoch>-<seq>) or a sequence number"})
            ),
            "{bad}"
        );
    }
}

/// The events of a stalled stream read at last: an unbroken run of numbered invoices from 1,
/// then exactly one `disconnect_reason`, the last event; returns its reason and how many
/// invoices came before it.
fn assert_invoices_then_reason(events: &[SseEvent]) -> (String, u64) {
    let (last, invoices) = events.split_last().expect("some events");
    assert_eq!(
        last.event.as_deref(),
        Some("disconnect_reason"),
        "the last of {} events: {last:?}",
        events.len()
    );
    let seqs: Vec<u64> = invoices.iter().map(id_seq).collect();
    assert_exact_sequence("stalled SSE stream", &seqs, 1, seqs.len() as u64);
    let data: Value = serde_json::from_str(&last.data).expect("JSON data");
    let reason = data["reason"].as_str().unwrap_or_default().to_string();
    (reason, seqs.len() as u64)
}

/// A stream that stopped reading, with its queue and the sockets' buffers full, whose rune
/// is then revoked: once it reads again it gets what was already on its way, then
/// `disconnect_reason`, then the end (and not the rest of the journal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stalled_stream_whose_rune_is_revoked_gets_disconnect_reason_last() {
    let gateway = Gateway::start().await;
    let doomed_rune = gateway.node.create_rune(Value::Null);
    let mut stalled = stalled_sse(&gateway, &doomed_rune).await;
    let mut witness = SseReader::open(&gateway, &gateway.rune, None, "").await;
    // ~8 MiB: more than the socket buffers hold, less than the journal retains.
    let total = 8_000;
    for i in 1..=total {
        push(
            &gateway,
            "invoice_creation",
            padded_invoice(i, KIB_DESCRIPTION),
        )
        .await;
    }
    for i in 1..=total {
        assert_eq!(id_seq(&witness.next().await), i);
    }
    blacklist(&gateway, &doomed_rune).await;
    let noticed = gateway
        .node
        .wait_for_log(
            |l| l.message.contains("no longer allows notifications"),
            WAIT,
        )
        .await;
    assert!(noticed.is_some(), "the revocation was not noticed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = read_sse_to_end(&mut stalled).await;
    let (reason, delivered) = assert_invoices_then_reason(&events);
    assert!(reason.starts_with("rune revoked: "), "{reason}");
    assert!(
        delivered < total,
        "the stalled stream got all {total} invoices: it was not cut off while stalled"
    );
}

/// A stream that stopped reading and fell out of the journal is cut off while it is still
/// stalled (its producer does not wait on it forever), and told why when it reads again;
/// a stream that keeps up gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stalled_stream_is_cut_off_as_slow_consumer_and_told_why() {
    let gateway = Gateway::start().await;
    let mut stalled = stalled_sse(&gateway, &gateway.rune).await;
    let mut fast = SseReader::open(&gateway, &gateway.rune, None, "").await;
    let total = 20_000;
    for i in 1..=total {
        push(
            &gateway,
            "invoice_creation",
            padded_invoice(i, KIB_DESCRIPTION),
        )
        .await;
    }
    for i in 1..=total {
        assert_eq!(id_seq(&fast.next().await), i);
    }
    let cut = gateway
        .node
        .wait_for_log(
            |l| l.message.contains("closing an SSE stream: slow consumer"),
            WAIT,
        )
        .await;
    assert!(
        cut.is_some(),
        "the stalled stream was not cut off while stalled; plugin log: {:?}",
        disconnect_logs(&gateway)
    );
    let events = read_sse_to_end(&mut stalled).await;
    let (reason, delivered) = assert_invoices_then_reason(&events);
    assert_eq!(reason, "slow consumer");
    assert!(delivered < total - 10_000, "{delivered} delivered");
}
