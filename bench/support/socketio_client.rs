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

/// Websocket settings for bench clients. tungstenite zero-fills its whole read buffer before
/// every read: at the default 128 KiB that memset was a third of a client's CPU, for frames
/// of ~200 bytes.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Checks engine.io's open packet (`0{...}`), the first frame; returns the Socket.IO connect
/// packet to send next, `40{auth}`.
pub fn answer_open(open: &str, auth: &Value) -> Result<String, String> {
    if !open.starts_with('0') {
        return Err(format!("expected an engine.io open packet, got {open}"));
    }
    Ok(format!("40{auth}"))
}

/// What to do with a frame received while waiting for the connect ack.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// A ping: answer `3`.
    Pong,
    /// The connect ack: connected.
    Connected,
    /// Anything else that [`BeforeAck::Skip`] allows: keep waiting.
    Wait,
}

/// [`Handshake`] for `text`; a refused connect (`44...`) or, with [`BeforeAck::Fail`], any
/// other frame is an error.
pub fn before_ack(text: &str, other: BeforeAck) -> Result<Handshake, String> {
    if text == "2" {
        Ok(Handshake::Pong)
    } else if text.starts_with("40") {
        Ok(Handshake::Connected)
    } else if text.starts_with("44") {
        Err(format!("connect refused: {text}"))
    } else if other == BeforeAck::Fail {
        Err(format!("unexpected frame before the connect ack: {text}"))
    } else {
        Ok(Handshake::Wait)
    }
}

/// Websocket, engine.io open, Socket.IO connect to `/` with `auth` (`40{auth}`), answering
/// pings; returns after the server's connect ack. Not bounded in time.
pub async fn handshake(url: &str, auth: &Value, other: BeforeAck) -> Result<Ws, String> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(websocket_config()), true)
            .await
            .map_err(|e| format!("websocket: {e}"))?;
    let connect = answer_open(&next_text(&mut ws).await?, auth)?;
    ws.send(Message::text(connect))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match before_ack(&next_text(&mut ws).await?, other)? {
            Handshake::Pong => ws
                .send(Message::text("3"))
                .await
                .map_err(|e| e.to_string())?,
            Handshake::Connected => return Ok(ws),
            Handshake::Wait => {}
        }
    }
}
