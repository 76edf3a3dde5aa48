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

/// A stalled client: its websocket, connected to namespace `/`, never read again.
pub struct Stalled(#[allow(dead_code)] Ws);

/// Connects a client over a socket with a small receive buffer and does the Socket.IO
/// handshake; the caller then stops reading it.
pub async fn stalled(port: u16, rune: &str) -> Result<Stalled, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(STALLED_RECEIVE_BUFFER)
        .map_err(|e| e.to_string())?;
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        url,
        MaybeTlsStream::Plain(stream),
        Some(websocket_config()),
    )
    .await
    .map_err(|e| format!("websocket: {e}"))?;
    connect_namespace(&mut ws, &json!({ "rune": rune })).await?;
    Ok(Stalled(ws))
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
