//! Pieces of a Socket.IO client (engine.io v4 / Socket.IO v5 over a websocket, by hand).

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The number right after `key` (e.g. `"n":`) in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// The next text frame; other data frames are skipped, a close or an error is an error.
pub async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_string()),
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

/// What [`handshake`] does with a frame before the connect ack that is neither a ping, the
/// ack nor a refusal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BeforeAck {
    /// Skip it and keep waiting.
    Skip,
    /// Fail the handshake.
    Fail,
}

/// Websocket, engine.io open, Socket.IO connect to `/` with `auth` (`40{auth}`), answering
/// pings; returns after the server's connect ack. Not bounded in time.
pub async fn handshake(url: &str, auth: &Value, other: BeforeAck) -> Result<Ws, String> {
    // tungstenite zero-fills its whole read buffer before every read; the default 128 KiB
    // made that memset most of a bench client's CPU. Frames here are small.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected an engine.io open packet, got {open}"));
    }
    ws.send(Message::text(format!("40{auth}")))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let text = next_text(&mut ws).await?;
        if text == "2" {
            ws.send(Message::text("3"))
                .await
                .map_err(|e| e.to_string())?;
        } else if text.starts_with("40") {
            return Ok(ws);
        } else if text.starts_with("44") {
            return Err(format!("connect refused: {text}"));
        } else if other == BeforeAck::Fail {
            return Err(format!("unexpected frame before the connect ack: {text}"));
        }
    }
}
