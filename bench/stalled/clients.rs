//! The bench's clients: stalled ones (connected, then never read again, with a small
//! receive buffer so the kernel takes little off the plugin's hands) and one steady client
//! that reads everything and checks the order.

use crate::support::socketio_client::{answer_open, before_ack, next_text, websocket_config};
use crate::support::socketio_client::{BeforeAck, Handshake, Ws};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

/// The receive buffer of a stalled client's socket.
const STALLED_RECEIVE_BUFFER: u32 = 4096;

/// How a stalled client connects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transport {
    /// A websocket from the start.
    Websocket,
    /// Long-polling, then an upgrade to a websocket (socket.io-client's and python-socketio's
    /// default).
    Upgrade,
    /// Long-polling only.
    Polling,
}

impl Transport {
    pub fn parse(name: &str) -> Option<Transport> {
        match name {
            "websocket" => Some(Transport::Websocket),
            "upgrade" => Some(Transport::Upgrade),
            "polling" => Some(Transport::Polling),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Upgrade => "upgrade",
            Transport::Polling => "polling",
        }
    }
}

/// A stalled client: its websocket (none on long-polling), connected to namespace `/`, never
/// read (or polled) again.
pub struct Stalled(#[allow(dead_code)] Option<Ws>);

/// Connects a client by `transport` and does the Socket.IO handshake; the caller then stops
/// reading it.
pub async fn stalled(port: u16, rune: &str, transport: Transport) -> Result<Stalled, String> {
    let auth = json!({ "rune": rune });
    let query = match transport {
        Transport::Websocket => "EIO=4&transport=websocket".to_string(),
        Transport::Upgrade | Transport::Polling => {
            let sid = polling_session(port, &auth).await?;
            if transport == Transport::Polling {
                return Ok(Stalled(None));
            }
            format!("EIO=4&transport=websocket&sid={sid}")
        }
    };
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(STALLED_RECEIVE_BUFFER)
        .map_err(|e| e.to_string())?;
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let url = format!("ws://127.0.0.1:{port}/socket.io/?{query}");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        url,
        MaybeTlsStream::Plain(stream),
        Some(websocket_config()),
    )
    .await
    .map_err(|e| format!("websocket: {e}"))?;
    if transport == Transport::Websocket {
        connect_namespace(&mut ws, &auth).await?;
    } else {
        // The upgrade: probe, then switch.
        ws.send(Message::text("2probe"))
            .await
            .map_err(|e| e.to_string())?;
        let probe = next_text(&mut ws).await?;
        if probe != "3probe" {
            return Err(format!("expected 3probe, got {probe}"));
        }
        ws.send(Message::text("5"))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Stalled(Some(ws)))
}

/// Opens an engine.io long-polling session and connects it to namespace `/` with `auth`;
/// returns its session id.
async fn polling_session(port: u16, auth: &Value) -> Result<String, String> {
    let http = reqwest::Client::new();
    let polling = format!("http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling");
    let text = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status() != 200 {
            return Err(format!("polling: status {}", response.status()));
        }
        response.text().await.map_err(|e| e.to_string())
    };
    let open = text(http.get(&polling)).await?;
    let sid = open
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str::<Value>(json).ok())
        .and_then(|open| open["sid"].as_str().map(str::to_string))
        .ok_or_else(|| format!("engine.io open: {open}"))?;
    let session = format!("{polling}&sid={sid}");
    text(http.post(&session).body(format!("40{auth}"))).await?;
    loop {
        let polled = text(http.get(&session)).await?;
        let packets: Vec<&str> = polled.split('\x1e').collect();
        if packets.contains(&"2") {
            text(http.post(&session).body("3")).await?;
        }
        if let Some(refused) = packets.iter().find(|p| p.starts_with("44")) {
            return Err(format!("refused: {refused}"));
        }
        if packets.iter().any(|p| p.starts_with("40")) {
            return Ok(sid);
        }
    }
}

/// engine.io open, Socket.IO connect with `auth`, until the connect ack.
async fn connect_namespace(ws: &mut Ws, auth: &Value) -> Result<(), String> {
    let connect = answer_open(&next_text(ws).await?, auth)?;
    ws.send(Message::text(connect))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match before_ack(&next_text(ws).await?, BeforeAck::Skip)? {
            Handshake::Pong => ws
                .send(Message::text("3"))
                .await
                .map_err(|e| e.to_string())?,
            Handshake::Connected => return Ok(()),
            Handshake::Wait => {}
        }
    }
}

/// What the steady client saw.
#[derive(Debug, Default)]
pub struct Steady {
    /// `notification` events received.
    pub received: u64,
    /// Events whose `seq` was not the one after the previous one.
    pub out_of_order: u64,
    pub last_seq: u64,
    /// Why it stopped early, if it did.
    pub ended: Option<String>,
}

/// Connects the steady client (`seq: true`).
pub async fn steady(port: u16, rune: &str) -> Result<Ws, String> {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(websocket_config()), true)
            .await
            .map_err(|e| format!("websocket: {e}"))?;
    connect_namespace(&mut ws, &json!({ "rune": rune, "seq": true })).await?;
    Ok(ws)
}

/// Reads `notification` events (answering pings) until `expected` arrived or nothing
/// arrives for `idle`; sequence numbers should be 1, 2, 3, ...
pub async fn read_all(mut ws: Ws, expected: u64, idle: Duration) -> Steady {
    let mut seen = Steady::default();
    while seen.received < expected {
        let frame = match tokio::time::timeout(idle, ws.next()).await {
            Err(_) => {
                seen.ended = Some(format!("nothing for {idle:?}"));
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            Ok(other) => {
                seen.ended = Some(format!("closed: {other:?}"));
                break;
            }
        };
        let text = frame.as_str();
        if text == "2" {
            let _ = ws.send(Message::text("3")).await;
            continue;
        }
        let Some(data) = text.strip_prefix("42") else {
            continue;
        };
        let Ok(Value::Array(event)) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if event.first().and_then(Value::as_str) != Some("notification") {
            continue;
        }
        let seq = event
            .get(1)
            .and_then(|n| n["seq"].as_u64())
            .unwrap_or_default();
        if seq != seen.last_seq + 1 {
            seen.out_of_order += 1;
        }
        seen.last_seq = seq;
        seen.received += 1;
    }
    seen
}
