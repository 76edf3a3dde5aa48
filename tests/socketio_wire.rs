//! What a Socket.IO client that opens a websocket directly
//! (`GET /socket.io/?EIO=4&transport=websocket`, no `sid`) sees on the wire: the exact
//! engine.io and Socket.IO packets, in order, and when the server closes the connection.
//!
//! These were written against socketioxide 0.18 (which served these clients until our own
//! endpoint, `src/stream/socketio_websocket.rs`, took them over) and pin what it sent, so
//! that the endpoint behaves the same. Where the endpoint is stricter, the test says so
//! (a message over 1 MiB, a client that sends and never reads). The client is hand-made on a
//! raw TCP socket: it answers nothing by itself (no automatic close reply or pong), so every
//! frame and the end of the connection are the server's doing.

use mock_lightningd::fixtures::load_fixture;
use mock_lightningd::gateway::{json_of, Gateway};
use mock_lightningd::runes::Rune;
use mock_lightningd::{raw_http, websocket_frames};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a frame the test waits for may take.
const WAIT: Duration = Duration::from_secs(10);

/// How long a client that must get nothing more is watched, after a witness got what was
/// pushed (a bound on a negative, not a pause to let something happen).
const QUIET: Duration = Duration::from_millis(300);

/// The server pings right after the open packet: well within this.
const FIRST_PING: Duration = Duration::from_secs(2);

const WS_TEXT: u8 = 0x1;
const WS_BINARY: u8 = 0x2;
const WS_CLOSE: u8 = 0x8;
const WS_PING: u8 = 0x9;
const WS_PONG: u8 = 0xa;

/// One thing a client read.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame and its payload (status code and reason).
    Close(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// Any other opcode, or a fragment (FIN bit not set).
    Other {
        opcode: u8,
        fin: bool,
    },
    /// The server ended the TCP connection (EOF or reset).
    End,
}

/// A websocket client on a raw TCP socket: a task reads frames into a channel.
struct Ws {
    write: OwnedWriteHalf,
    frames: mpsc::UnboundedReceiver<Frame>,
}

/// Reads frames from `read` into `frames` until the connection ends.
async fn read_frames(
    mut read: tokio::net::tcp::OwnedReadHalf,
    frames: mpsc::UnboundedSender<Frame>,
) {
    loop {
        let Ok(websocket_frames::Frame {
            fin,
            opcode,
            masked,
            payload,
        }) = websocket_frames::read(&mut read).await
        else {
            let _ = frames.send(Frame::End);
            return;
        };
        assert!(!masked, "the server masked a frame");
        let frame = match (fin, opcode) {
            (true, WS_TEXT) => Frame::Text(String::from_utf8(payload).expect("UTF-8 text frame")),
            (true, WS_BINARY) => Frame::Binary(payload),
            (true, WS_CLOSE) => Frame::Close(payload),
            (true, WS_PING) => Frame::Ping(payload),
            (true, WS_PONG) => Frame::Pong(payload),
            (fin, opcode) => Frame::Other { opcode, fin },
        };
        if frames.send(frame).is_err() {
            return;
        }
    }
}

impl Ws {
    /// Opens a websocket to `/socket.io/?{query}` with extra request headers; panics unless
    /// the plugin answers 101.
    async fn open(gateway: &Gateway, query: &str, headers: &[(&str, &str)]) -> Ws {
        let mut stream = TcpStream::connect(("127.0.0.1", gateway.port))
            .await
            .expect("the plugin accepts TCP connections");
        let request = raw_http::websocket_upgrade(gateway.port, query, headers);
        stream
            .write_all(request.as_bytes())
            .await
            .expect("the upgrade request is written");
        let head = raw_http::read_head(&mut stream, WAIT).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let (read, write) = stream.into_split();
        let (sender, frames) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(read, sender));
        Ws { write, frames }
    }

    /// `GET /socket.io/?EIO=4&transport=websocket`; reads the open packet and the ping
    /// the server sends right after it (engine.io's first heartbeat, not after
    /// `pingInterval`) and returns the open packet's JSON.
    async fn open_v4(gateway: &Gateway, headers: &[(&str, &str)]) -> (Ws, Value) {
        let mut ws = Ws::open(gateway, "EIO=4&transport=websocket", headers).await;
        let open = ws.text().await;
        let json = open
            .strip_prefix('0')
            .and_then(|json| serde_json::from_str::<Value>(json).ok())
            .unwrap_or_else(|| panic!("not an engine.io open packet: {open}"));
        let ping = tokio::time::timeout(FIRST_PING, ws.frames.recv()).await;
        assert_eq!(
            ping,
            Ok(Some(Frame::Text("2".into()))),
            "the ping right after the open packet"
        );
        (ws, json)
    }

    /// The next frame (panics if none comes within [`WAIT`]).
    async fn next(&mut self) -> Frame {
        match tokio::time::timeout(WAIT, self.frames.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => Frame::End,
            Err(_) => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next frame, which must be a text frame.
    async fn text(&mut self) -> String {
        match self.next().await {
            Frame::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame if one comes within `within`.
    async fn maybe_next(&mut self, within: Duration) -> Option<Frame> {
        match tokio::time::timeout(within, self.frames.recv()).await {
            Ok(Some(frame)) => Some(frame),
            Ok(None) => Some(Frame::End),
            Err(_) => None,
        }
    }

    /// Asserts nothing arrives within [`QUIET`].
    async fn assert_quiet(&mut self, who: &str) {
        if let Some(frame) = self.maybe_next(QUIET).await {
            panic!("{who} got {frame:?}");
        }
    }

    /// Every frame until the server ends the connection (which must happen within
    /// `within`), without `Frame::End`.
    async fn until_end(&mut self, within: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(Frame::End)) | Ok(None) => return frames,
                Ok(Some(frame)) => frames.push(frame),
                Err(_) => panic!(
                    "the server did not end the connection within {within:?}; frames: {frames:?}"
                ),
            }
        }
    }

    /// Writes one masked frame; returns whether the write went through.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> bool {
        let frame = websocket_frames::masked(opcode, payload);
        self.write.write_all(&frame).await.is_ok()
    }

    /// Writes one text frame (panics if the connection is gone).
    async fn send(&mut self, text: &str) {
        assert!(
            self.send_frame(WS_TEXT, text.as_bytes()).await,
            "could not write {text:?}"
        );
    }

    /// Sends `40{auth}` (or `40` for `None`) and returns the server's answer.
    async fn connect_ns(&mut self, auth: Option<Value>) -> String {
        match auth {
            Some(auth) => self.send(&format!("40{auth}")).await,
            None => self.send("40").await,
        }
        self.text().await
    }

    /// Sends `40/<name>,` and waits for its `44/<name>,{"message":"Invalid namespace"}`:
    /// packets are handled in order, so whatever the server answers to packets before it
    /// has been answered by then.
    async fn barrier(&mut self, name: &str) {
        self.send(&format!("40/{name},")).await;
        assert_eq!(
            self.text().await,
            format!("44/{name},{{\"message\":\"Invalid namespace\"}}")
        );
    }
}

/// The namespace sid of a `40{"sid":"..."}` answer; panics on anything else.
fn connected_sid(answer: &str) -> String {
    let json: Value = answer
        .strip_prefix("40")
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("not a Socket.IO connect answer: {answer}"));
    let sid = json["sid"]
        .as_str()
        .unwrap_or_else(|| panic!("no sid: {answer}"))
        .to_string();
    assert_eq!(answer, format!("40{{\"sid\":\"{sid}\"}}"));
    sid
}

/// A direct websocket client connected to namespace `/` with `auth`.
async fn connected(gateway: &Gateway, auth: Value) -> Ws {
    let (mut ws, _) = Ws::open_v4(gateway, &[]).await;
    let answer = ws.connect_ns(Some(auth)).await;
    connected_sid(&answer);
    ws
}

/// The `params` of fixtures/notifications/<topic>.json (`{"<topic>": {...}}`).
fn fixture_params(topic: &str) -> Value {
    load_fixture(&format!("notifications/{topic}.json"))["params"].clone()
}

/// Sends a notification through the mock (the plugin subscribes to `"*"`).
async fn push(gateway: &Gateway, topic: &str, payload: Value) {
    assert!(
        gateway.node.notify(topic, payload).await,
        "the mock did not send {topic}"
    );
}

/// Sends the payload of fixtures/notifications/<topic>.json; returns its `params`.
async fn push_fixture(gateway: &Gateway, topic: &str) -> Value {
    let params = fixture_params(topic);
    push(gateway, topic, params[topic].clone()).await;
    params
}

/// An `invoice_creation` payload labelled `n-<i>`.
fn numbered(i: u64) -> Value {
    let mut payload = fixture_params("invoice_creation")["invoice_creation"].clone();
    payload["label"] = json!(format!("n-{i}"));
    payload
}

/// Pushes `invoice_creation` `n-<i>` and returns the exact `message` event text a client
/// gets for it.
async fn push_numbered(gateway: &Gateway, i: u64) -> String {
    push(gateway, "invoice_creation", numbered(i)).await;
    message_text(&json!({ "invoice_creation": numbered(i) }))
}

/// The exact text of a `message` event carrying `params`.
fn message_text(params: &Value) -> String {
    format!("42[\"message\",{params}]")
}

/// A rune made by another node (fixtures/rpc/checkrune-c-foreign-rune.json).
fn foreign_rune() -> String {
    load_fixture("rpc/checkrune-c-foreign-rune.json")["request"]["params"]["rune"]
        .as_str()
        .expect("the fixture has a rune")
        .to_string()
}

/// Blacklists `rune` through the REST API (asserting it answered 201).
async fn blacklist(gateway: &Gateway, rune: &str) {
    let id: u64 = Rune::decode(rune)
        .and_then(|r| r.unique_id().and_then(|id| id.parse().ok()))
        .unwrap_or_else(|| panic!("rune without a numeric unique id: {rune}"));
    let (status, body) = json_of(gateway.call("blacklistrune", json!({"start": id})).await).await;
    assert_eq!(status, 201, "{body}");
}

// ---------------------------------------------------------------------------------------
// engine.io open, namespace connect.
// ---------------------------------------------------------------------------------------

/// The first frame is engine.io's open packet with exactly these fields (`upgrades` empty on
/// a websocket); a ping `2` follows at once, not after `pingInterval` (see [`Ws::open_v4`]).
#[tokio::test]
async fn open_packet_is_the_first_frame_with_exactly_these_fields() {
    let gateway = Gateway::start().await;
    let (_ws, open) = Ws::open_v4(&gateway, &[]).await;
    let sid = open["sid"].as_str().expect("a string sid").to_string();
    // 16 characters of URL-safe base64.
    assert!(
        sid.len() == 16
            && sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{sid}"
    );
    assert_eq!(
        open,
        json!({
            "sid": sid,
            "upgrades": [],
            "pingInterval": 25000,
            "pingTimeout": 20000,
            "maxPayload": 100000,
        })
    );
    // Every connection gets a session of its own.
    let (_other, other) = Ws::open_v4(&gateway, &[]).await;
    assert_ne!(other["sid"], open["sid"]);
}

#[tokio::test]
async fn rune_in_auth_payload_connects_and_gets_messages() {
    let gateway = Gateway::start().await;
    let (mut ws, open) = Ws::open_v4(&gateway, &[]).await;
    let answer = ws.connect_ns(Some(json!({"rune": gateway.rune}))).await;
    // The namespace's sid is the engine.io session's.
    let sid = connected_sid(&answer);
    assert_eq!(Some(sid.as_str()), open["sid"].as_str());
    // Subscribed before the answer: a push right after it arrives.
    let params = push_fixture(&gateway, "invoice_creation").await;
    assert_eq!(ws.text().await, message_text(&params));
}

#[tokio::test]
async fn rune_in_header_connects_with_a_bare_40_or_with_other_auth() {
    let gateway = Gateway::start().await;
    let (mut bare, _) = Ws::open_v4(&gateway, &[("Rune", &gateway.rune)]).await;
    connected_sid(&bare.connect_ns(None).await);
    let (mut with_auth, _) = Ws::open_v4(&gateway, &[("rune", &gateway.rune)]).await;
    connected_sid(&with_auth.connect_ns(Some(json!({"seq": false}))).await);
    let params = push_fixture(&gateway, "invoice_payment").await;
    assert_eq!(bare.text().await, message_text(&params));
    assert_eq!(with_auth.text().await, message_text(&params));
}

#[tokio::test]
async fn rune_header_wins_over_the_auth_payload() {
    let gateway = Gateway::start().await;
    let (mut ws, _) = Ws::open_v4(&gateway, &[("Rune", &foreign_rune())]).await;
    let answer = ws.connect_ns(Some(json!({"rune": gateway.rune}))).await;
    assert_eq!(
        answer,
        r#"44{"message":"Not authorized: Not derived from master"}"#
    );
}

// ---------------------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------------------

/// Connects a direct websocket client with `auth` (and headers) and returns the answer.
async fn answer_to(gateway: &Gateway, headers: &[(&str, &str)], auth: Option<Value>) -> String {
    let (mut ws, _) = Ws::open_v4(gateway, headers).await;
    ws.connect_ns(auth).await
}

#[tokio::test]
async fn refusals_are_44_with_the_reason() {
    let gateway = Gateway::start().await;
    let forbidding = gateway
        .node
        .create_rune(json!("method/listclnrest-notifications"));
    let since_error = "`since` must be a position: \\\"<epoch>-<seq>\\\", {\\\"epoch\\\": \
                       \\\"<epoch>\\\", \\\"seq\\\": <seq>}, or a bare sequence number (a \
                       non-negative integer)";
    let rune = gateway.rune.as_str();
    let cases: Vec<(Option<Value>, String)> = vec![
        (None, "Not authorized: Missing rune".into()),
        (Some(json!({})), "Not authorized: Missing rune".into()),
        (
            Some(json!({"seq": true})),
            "Not authorized: Missing rune".into(),
        ),
        (
            Some(json!({"rune": 42})),
            "Not authorized: Missing rune".into(),
        ),
        (
            Some(json!({"rune": foreign_rune()})),
            "Not authorized: Not derived from master".into(),
        ),
        (
            Some(json!({"rune": forbidding})),
            "Not permitted: method is equal to listclnrest-notifications".into(),
        ),
        (
            Some(json!({"rune": rune, "seq": "yes"})),
            "`seq` must be true or false".into(),
        ),
        (
            Some(json!({"rune": rune, "topics": "warning"})),
            "`topics` must be a list of topic names".into(),
        ),
        (
            Some(json!({"rune": rune, "topics": [1]})),
            "`topics` must be a list of topic names".into(),
        ),
        (Some(json!({"rune": rune, "since": -1})), since_error.into()),
        (
            Some(json!({"rune": rune, "since": "yesterday"})),
            since_error.into(),
        ),
        // The options are checked before the rune.
        (
            Some(json!({"seq": "yes"})),
            "`seq` must be true or false".into(),
        ),
    ];
    for (auth, reason) in cases {
        let answer = answer_to(&gateway, &[], auth.clone()).await;
        assert_eq!(
            answer,
            format!("44{{\"message\":\"{reason}\"}}"),
            "auth {auth:?}"
        );
    }
}

/// After a refusal the websocket stays open and the engine.io session alive: the same
/// client may try again on it, and a good rune then connects it.
#[tokio::test]
async fn after_a_refusal_the_websocket_stays_and_a_later_40_may_connect() {
    let gateway = Gateway::start().await;
    let (mut ws, _) = Ws::open_v4(&gateway, &[]).await;
    assert_eq!(
        ws.connect_ns(None).await,
        r#"44{"message":"Not authorized: Missing rune"}"#
    );
    assert_eq!(
        ws.connect_ns(Some(json!({"rune": foreign_rune()}))).await,
        r#"44{"message":"Not authorized: Not derived from master"}"#
    );
    connected_sid(&ws.connect_ns(Some(json!({"rune": gateway.rune}))).await);
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(ws.text().await, expected);
}

#[tokio::test]
async fn unknown_namespace_is_44_invalid_namespace() {
    let gateway = Gateway::start().await;
    let (mut ws, _) = Ws::open_v4(&gateway, &[]).await;
    let auth = json!({"rune": gateway.rune});
    ws.send(&format!("40/other,{auth}")).await;
    assert_eq!(
        ws.text().await,
        r#"44/other,{"message":"Invalid namespace"}"#
    );
    ws.send("40/other,").await;
    assert_eq!(
        ws.text().await,
        r#"44/other,{"message":"Invalid namespace"}"#
    );
    // The session stays: namespace `/` still connects on it.
    connected_sid(&ws.connect_ns(Some(auth)).await);
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(ws.text().await, expected);
}

// ---------------------------------------------------------------------------------------
// Delivery.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn messages_arrive_in_order_as_42_message_with_lightningds_params() {
    let gateway = Gateway::start().await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune})).await;
    let mut expected = Vec::new();
    for topic in ["invoice_creation", "connect", "warning", "invoice_payment"] {
        expected.push(message_text(&push_fixture(&gateway, topic).await));
    }
    for i in 1..=20 {
        expected.push(push_numbered(&gateway, i).await);
    }
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&ws.text().await, want, "frame {i}");
    }
}

/// The `notification` event text for `payload` of `topic` at `seq` in `epoch`.
fn notification_text(seq: u64, epoch: &str, topic: &str, payload: &Value) -> String {
    format!(
        "42[\"notification\",{{\"seq\":{seq},\"epoch\":\"{epoch}\",\"topic\":\"{topic}\",\
         \"payload\":{payload}}}]"
    )
}

/// The epoch of a `notification` event text.
fn epoch_of(text: &str) -> String {
    let event: Value = text
        .strip_prefix("42")
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("not an event: {text}"));
    let epoch = event[1]["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("no epoch: {text}"))
        .to_string();
    assert!(
        epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit()),
        "{epoch}"
    );
    epoch
}

#[tokio::test]
async fn seq_true_gets_42_notification_with_seq_epoch_topic_payload() {
    let gateway = Gateway::start().await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune, "seq": true})).await;
    let first = push_fixture(&gateway, "invoice_creation").await;
    let second = push_fixture(&gateway, "connect").await;
    let text = ws.text().await;
    let epoch = epoch_of(&text);
    assert_eq!(
        text,
        notification_text(1, &epoch, "invoice_creation", &first["invoice_creation"])
    );
    assert_eq!(
        ws.text().await,
        notification_text(2, &epoch, "connect", &second["connect"])
    );
}

#[tokio::test]
async fn topics_filter_lets_only_those_topics_through() {
    let gateway = Gateway::start().await;
    let mut filtered = connected(
        &gateway,
        json!({"rune": gateway.rune, "topics": ["warning", "connect"]}),
    )
    .await;
    let mut numbered_filtered = connected(
        &gateway,
        json!({"rune": gateway.rune, "seq": true, "topics": ["warning"]}),
    )
    .await;
    let mut sent = Vec::new();
    for topic in [
        "invoice_creation",
        "connect",
        "invoice_payment",
        "warning",
        "disconnect",
    ] {
        sent.push((topic, push_fixture(&gateway, topic).await));
    }
    assert_eq!(filtered.text().await, message_text(&sent[1].1));
    assert_eq!(filtered.text().await, message_text(&sent[3].1));
    let text = numbered_filtered.text().await;
    let epoch = epoch_of(&text);
    // Filtered-out notifications still count: warning is the 4th.
    assert_eq!(
        text,
        notification_text(4, &epoch, "warning", &sent[3].1["warning"])
    );
    // A last wanted one: anything else let through would come before it.
    let last = push_fixture(&gateway, "warning").await;
    assert_eq!(filtered.text().await, message_text(&last));
    assert_eq!(
        numbered_filtered.text().await,
        notification_text(6, &epoch, "warning", &last["warning"])
    );
}

// ---------------------------------------------------------------------------------------
// What the client sends.
// ---------------------------------------------------------------------------------------

/// Client pongs nobody asked for, client pings, events the server has no handler for and
/// websocket pings do not disturb delivery.
#[tokio::test]
async fn unprompted_pong_ping_and_unknown_events_do_not_break_delivery() {
    let gateway = Gateway::start().await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune})).await;
    ws.send("3").await;
    ws.send("2").await;
    ws.send(r#"42["x"]"#).await;
    ws.send(r#"42["message",{"a":1}]"#).await;
    ws.send(r#"421["x",1]"#).await;
    // No answer to any of them (a `3` for the `2`, an ack for `421`): the barrier's
    // answer is the next frame.
    ws.barrier("barrier").await;
    // A websocket ping is answered with a pong carrying its payload.
    assert!(ws.send_frame(WS_PING, b"hi").await);
    assert_eq!(ws.next().await, Frame::Pong(b"hi".to_vec()));
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(ws.text().await, expected);
}

/// Sends `what` on `victim` and returns every frame until the server ended its connection;
/// `witness` keeps receiving.
async fn ends_only_that_connection(
    gateway: &Gateway,
    what: impl AsyncFnOnce(&mut Ws),
) -> Vec<Frame> {
    let mut victim = connected(gateway, json!({"rune": gateway.rune})).await;
    let mut witness = connected(gateway, json!({"rune": gateway.rune})).await;
    what(&mut victim).await;
    let frames = victim.until_end(WAIT).await;
    let expected = push_numbered(gateway, 1).await;
    assert_eq!(witness.text().await, expected);
    frames
}

/// Text that is no engine.io packet a client may send on a websocket (garbage, or an
/// upgrade `5` / noop `6` outside an upgrade) ends the session: the server sends a close
/// frame and ends the connection, without engine.io's `1` or a Socket.IO `41`.
#[tokio::test]
async fn garbage_text_closes_only_that_connection() {
    let gateway = Gateway::start().await;
    for garbage in ["hello", "5", "6"] {
        let frames =
            ends_only_that_connection(&gateway, async |ws: &mut Ws| ws.send(garbage).await).await;
        assert_eq!(frames, vec![Frame::Close(vec![])], "after {garbage:?}");
    }
}

/// A Socket.IO packet that does not parse ends the session too, but socketioxide first
/// sends engine.io's close packet `1`, then the websocket close frame.
#[tokio::test]
async fn unparsable_socketio_packet_gets_1_and_closes_only_that_connection() {
    let gateway = Gateway::start().await;
    for packet in ["42{not json", "4x", "49"] {
        let frames =
            ends_only_that_connection(&gateway, async |ws: &mut Ws| ws.send(packet).await).await;
        assert_eq!(
            frames,
            vec![Frame::Text("1".into()), Frame::Close(vec![])],
            "after {packet:?}"
        );
    }
}

/// The client's engine.io close packet: the server closes the websocket.
#[tokio::test]
async fn engineio_close_packet_closes_only_that_connection() {
    let gateway = Gateway::start().await;
    let frames = ends_only_that_connection(&gateway, async |ws: &mut Ws| ws.send("1").await).await;
    assert_eq!(frames, vec![Frame::Close(vec![])]);
}

/// A binary frame (no binary attachment is expected) is a Socket.IO parse error: `1`, then
/// the close frame.
#[tokio::test]
async fn binary_frame_gets_1_and_closes_only_that_connection() {
    let gateway = Gateway::start().await;
    let frames = ends_only_that_connection(&gateway, async |ws: &mut Ws| {
        assert!(ws.send_frame(WS_BINARY, b"\x01\x02\x03").await);
    })
    .await;
    assert_eq!(frames, vec![Frame::Text("1".into()), Frame::Close(vec![])]);
}

/// engine.io's `maxPayload` (100,000) is not enforced on a websocket: a 200 KB text frame
/// is read (and, an event without handler, ignored), and delivery goes on.
#[tokio::test]
async fn text_frame_over_max_payload_is_accepted() {
    let gateway = Gateway::start().await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune})).await;
    let big = format!("42[\"x\",\"{}\"]", "y".repeat(200_000));
    ws.send(&big).await;
    ws.barrier("after-big").await;
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(ws.text().await, expected);
}

/// What is enforced is the websocket's message size (1 MiB; socketioxide's were 16 MiB a
/// frame and 64 MiB a message): a larger frame ends the connection.
#[tokio::test]
async fn text_frame_over_1_mib_closes_only_that_connection() {
    let gateway = Gateway::start().await;
    let frames = ends_only_that_connection(&gateway, async |ws: &mut Ws| {
        let big = format!("42[\"x\",\"{}\"]", "y".repeat(1 << 20));
        // The server may stop reading before all of it is written.
        let _ = ws.send_frame(WS_TEXT, big.as_bytes()).await;
    })
    .await;
    assert_eq!(frames, vec![Frame::Close(vec![])]);
}

/// A client's `41`: it gets nothing more, and the server leaves its websocket open (the
/// engine.io session lives on: it may connect again on it).
#[tokio::test]
async fn client_41_stops_delivery_and_the_websocket_stays() {
    let gateway = Gateway::start().await;
    let mut leaving = connected(&gateway, json!({"rune": gateway.rune})).await;
    let mut witness = connected(&gateway, json!({"rune": gateway.rune})).await;
    leaving.send("41").await;
    leaving.barrier("after-41").await;
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(witness.text().await, expected);
    leaving.assert_quiet("a client that sent 41").await;
    // Still open: it connects again on the same websocket.
    connected_sid(
        &leaving
            .connect_ns(Some(json!({"rune": gateway.rune})))
            .await,
    );
    let expected = push_numbered(&gateway, 2).await;
    assert_eq!(leaving.text().await, expected);
    assert_eq!(witness.text().await, expected);
}

/// A second `40` on a connected websocket is ignored: no answer, and the client keeps the
/// options of its first connect (one `message` event per notification, not `notification`).
#[tokio::test]
async fn a_second_40_while_connected_is_ignored() {
    let gateway = Gateway::start().await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune})).await;
    ws.send(&format!("40{}", json!({"rune": gateway.rune, "seq": true})))
        .await;
    ws.barrier("after-second-40").await;
    let first = push_numbered(&gateway, 1).await;
    let second = push_numbered(&gateway, 2).await;
    assert_eq!(ws.text().await, first);
    assert_eq!(ws.text().await, second);
    ws.assert_quiet("a client connected twice").await;
}

/// A packet for namespace `/` from a client not connected to it (never connected, or
/// refused) ends the session: `1`, then the close frame.
#[tokio::test]
async fn packets_for_slash_before_connecting_get_1_and_close_the_session() {
    let gateway = Gateway::start().await;
    for packet in ["41", r#"42["x"]"#] {
        let (mut ws, _) = Ws::open_v4(&gateway, &[]).await;
        ws.send(packet).await;
        let frames = ws.until_end(WAIT).await;
        assert_eq!(
            frames,
            vec![Frame::Text("1".into()), Frame::Close(vec![])],
            "after {packet:?}"
        );
    }
    let (mut refused, _) = Ws::open_v4(&gateway, &[]).await;
    assert_eq!(
        refused.connect_ns(None).await,
        r#"44{"message":"Not authorized: Missing rune"}"#
    );
    refused.send(r#"42["x"]"#).await;
    let frames = refused.until_end(WAIT).await;
    assert_eq!(frames, vec![Frame::Text("1".into()), Frame::Close(vec![])]);
}

/// A client's close frame is echoed (same status code) and the server ends the connection.
#[tokio::test]
async fn client_close_frame_is_echoed_and_the_connection_ends() {
    let gateway = Gateway::start().await;
    let mut witness = connected(&gateway, json!({"rune": gateway.rune})).await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune})).await;
    assert!(ws.send_frame(WS_CLOSE, &1000u16.to_be_bytes()).await);
    let frames = ws.until_end(WAIT).await;
    assert_eq!(frames, vec![Frame::Close(1000u16.to_be_bytes().to_vec())]);
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(witness.text().await, expected);
}

// ---------------------------------------------------------------------------------------
// Revocation.
// ---------------------------------------------------------------------------------------

/// A client whose rune is revoked gets `disconnect_reason` (with lightningd's reason), then
/// `41`, and though it answers nothing the server ends its TCP connection (today after a
/// 5 s grace, without a close frame) well before engine.io's ping timeout would.
#[tokio::test]
async fn revoked_rune_gets_disconnect_reason_then_41_then_the_connection_ends() {
    let gateway = Gateway::start().await;
    let doomed_rune = gateway.node.create_rune(Value::Null);
    let mut doomed = connected(&gateway, json!({"rune": doomed_rune})).await;
    let mut survivor = connected(&gateway, json!({"rune": gateway.rune})).await;
    let started = Instant::now();
    blacklist(&gateway, &doomed_rune).await;
    assert_eq!(
        doomed.text().await,
        r#"42["disconnect_reason",{"reason":"rune revoked: Not authorized: Blacklisted rune"}]"#
    );
    assert_eq!(doomed.text().await, "41");
    let rest = doomed.until_end(Duration::from_secs(10)).await;
    let ended = started.elapsed();
    assert_eq!(rest, vec![], "after 41");
    assert!(ended < Duration::from_secs(10), "{ended:?}");
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(survivor.text().await, expected);
}

// ---------------------------------------------------------------------------------------
// Clients that never connect to a namespace.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_that_never_sends_40_gets_nothing_and_stays_open() {
    let gateway = Gateway::start().await;
    let (mut idle, _) = Ws::open_v4(&gateway, &[]).await;
    let mut witness = connected(&gateway, json!({"rune": gateway.rune})).await;
    for i in 1..=3 {
        let expected = push_numbered(&gateway, i).await;
        assert_eq!(witness.text().await, expected);
    }
    idle.assert_quiet("a client without a namespace").await;
    // Its session is alive: it answers the barrier.
    idle.barrier("idle").await;
}

// ---------------------------------------------------------------------------------------
// engine.io v3 (Socket.IO v2 clients).
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn eio3_websocket_is_connected_to_namespace_slash_by_the_server() {
    let gateway = Gateway::start().await;
    let mut ws = Ws::open(
        &gateway,
        "EIO=3&transport=websocket",
        &[("Rune", &gateway.rune)],
    )
    .await;
    let open = ws.text().await;
    let json: Value = open
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("not an open packet: {open}"));
    let sid = json["sid"].as_str().expect("a sid").to_string();
    assert_eq!(
        json,
        json!({"sid": sid, "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 100000})
    );
    assert_eq!(ws.text().await, "40");
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(ws.text().await, expected);
    // engine.io v3: the client pings, the server answers (and never pings itself).
    ws.send("2").await;
    assert_eq!(ws.text().await, "3");
}

#[tokio::test]
async fn eio3_websocket_without_rune_header_is_refused() {
    let gateway = Gateway::start().await;
    let mut ws = Ws::open(&gateway, "EIO=3&transport=websocket", &[]).await;
    let open = ws.text().await;
    assert!(open.starts_with("0{"), "{open}");
    assert_eq!(
        ws.text().await,
        r#"44{"message":"Not authorized: Missing rune"}"#
    );
}

/// engine.io's heartbeat: a client that never answers the ping is closed once the ping
/// timeout (20 s) has passed; one that answered it keeps receiving.
#[tokio::test]
async fn a_client_that_never_answers_the_ping_is_closed_after_the_ping_timeout() {
    let gateway = Gateway::start().await;
    let started = Instant::now();
    let mut silent = connected(&gateway, json!({"rune": gateway.rune})).await;
    let mut answering = connected(&gateway, json!({"rune": gateway.rune})).await;
    answering.send("3").await;
    silent.until_end(Duration::from_secs(30)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(19),
        "closed after {waited:?}, before the ping timeout"
    );
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(answering.text().await, expected);
}

/// A client that sends and never reads cannot make the plugin pile up its answers: once
/// answers wait to be written, the plugin stops reading that client (its writes stall in
/// TCP), and other clients go on receiving. Here 120 MB of `40/<60 KB name>,`, each answered
/// with `44/<name>,...`: before, the plugin read all of it and kept every answer.
#[tokio::test]
async fn a_client_that_sends_but_never_reads_stalls_instead_of_piling_up_answers() {
    let gateway = Gateway::start().await;
    let mut witness = connected(&gateway, json!({"rune": gateway.rune})).await;
    let mut flooder = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .expect("the plugin accepts TCP connections");
    let request = raw_http::websocket_upgrade(gateway.port, "EIO=4&transport=websocket", &[]);
    flooder
        .write_all(request.as_bytes())
        .await
        .expect("the upgrade request is written");
    let frame = websocket_frames::masked(WS_TEXT, format!("40/{},", "n".repeat(60_000)).as_bytes());
    let mut written = 0usize;
    for _ in 0..2_000 {
        let write = tokio::time::timeout(Duration::from_secs(2), flooder.write_all(&frame));
        match write.await {
            Ok(Ok(())) => written += frame.len(),
            Ok(Err(error)) => panic!("the flooder's connection failed: {error}"),
            Err(_) => break,
        }
    }
    assert!(
        written < 40_000_000,
        "the plugin read {written} bytes from a client that never reads its answers"
    );
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(witness.text().await, expected);
}

/// A binary event (`451-[...]` and its attachment in a binary frame), which the server
/// does not listen to, is read and ignored like any other event: delivery goes on.
#[tokio::test]
async fn a_binary_event_and_its_attachment_are_ignored() {
    let gateway = Gateway::start().await;
    let mut ws = connected(&gateway, json!({"rune": gateway.rune})).await;
    ws.send(r#"451-["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    assert!(ws.send_frame(WS_BINARY, b"\x01\x02\x03").await);
    ws.barrier("after-binary").await;
    let expected = push_numbered(&gateway, 1).await;
    assert_eq!(ws.text().await, expected);
}
