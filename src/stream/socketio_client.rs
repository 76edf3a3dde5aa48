//! A Socket.IO client as the delivery code (`socketio.rs`, `socketio_relay.rs`) sees it,
//! whichever server holds its connection: socketioxide's (long-polling, clients that
//! upgraded from it, protocol v4) or ours (`socketio_websocket.rs`: v5 clients that open a
//! websocket directly). Both take an event as JSON text; ours takes the frame text the relay
//! built once for every such client.

use crate::stream::send_window::Window;
use crate::stream::socketio_websocket::WebsocketClient;
use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A connected Socket.IO client.
#[derive(Clone)]
pub enum Client {
    /// Served by socketioxide.
    Engine(SocketRef),
    /// Served by our websocket endpoint.
    Websocket(Arc<WebsocketClient>),
}

/// Why a client could not be given an event.
#[derive(Debug)]
pub enum Undelivered {
    /// It is owed too much, or its send queue is full.
    SlowConsumer,
    /// It is gone.
    Closed,
}

impl From<SendError> for Undelivered {
    fn from(error: SendError) -> Undelivered {
        match error {
            SendError::Socket(SocketError::InternalChannelFull) => Undelivered::SlowConsumer,
            _ => Undelivered::Closed,
        }
    }
}

impl Undelivered {
    /// What follows for the client: a slow consumer is disconnected, a gone one forgotten.
    pub fn end(self, client: Client) {
        match self {
            Undelivered::SlowConsumer => disconnect(client, "slow consumer"),
            Undelivered::Closed => {}
        }
    }
}

/// The text of a Socket.IO event packet on the root namespace: `42["<event>",<data>]`.
pub fn event_packet(event: &str, data: &str) -> Utf8Bytes {
    let mut text = String::with_capacity(event_packet_len(event, data));
    text.push_str("42[\"");
    text.push_str(event);
    text.push_str("\",");
    text.push_str(data);
    text.push(']');
    Utf8Bytes::from(text)
}

/// The length of [`event_packet`]'s text: `42["`, `",` and `]` around the event and its data.
fn event_packet_len(event: &str, data: &str) -> usize {
    event.len() + data.len() + 7
}

impl Client {
    /// The client's Socket.IO session id.
    pub fn id(&self) -> Sid {
        match self {
            Client::Engine(socket) => socket.id,
            Client::Websocket(client) => client.id(),
        }
    }

    /// How far ahead of its connection the client's queue may be filled.
    pub fn window(&self) -> Window {
        match self {
            Client::Engine(socket) => Window::of(socket),
            Client::Websocket(client) => Window::on_connection(client.connection()),
        }
    }

    /// Queues the event `event` carrying `data` (JSON text); `packet` makes its whole
    /// packet text for our websocket clients (the relay builds it once for all of them).
    /// Never waits. Returns the bytes queued (the packet's length).
    pub fn emit(
        &self,
        event: &str,
        data: &RawValue,
        packet: impl FnOnce() -> Utf8Bytes,
    ) -> Result<usize, Undelivered> {
        match self {
            Client::Engine(socket) => socket.emit(event, data)?,
            Client::Websocket(client) => client.send(packet())?,
        }
        Ok(event_packet_len(event, data.get()))
    }

    /// Queues the event `event` carrying `data`, encoded for this client alone. Returns the
    /// bytes queued.
    pub fn emit_value<T: Serialize>(&self, event: &str, data: &T) -> Result<usize, Undelivered> {
        let data = serde_json::value::to_raw_value(data).map_err(|_| Undelivered::Closed)?;
        let packet = || event_packet(event, data.get());
        self.emit(event, &data, packet)
    }
}

/// How long we keep trying to disconnect a socketioxide client whose send buffer is full.
const DISCONNECT_RETRY: Duration = Duration::from_millis(100);
const DISCONNECT_ATTEMPTS: u32 = 600;

/// Disconnects a client from the server's side. A socketioxide client's send buffer may be
/// full, which makes socketioxide refuse the disconnect packet: that is retried in the
/// background until there is room or the transport closes. Ours always takes it.
pub fn disconnect(client: Client, reason: &str) {
    tracing::info!("disconnecting Socket.IO client {}: {reason}", client.id());
    match client {
        Client::Websocket(client) => client.disconnect(),
        Client::Engine(socket) => {
            tokio::spawn(async move {
                for _ in 0..DISCONNECT_ATTEMPTS {
                    if !socket.connected() || socket.clone().disconnect().is_ok() {
                        return;
                    }
                    tokio::time::sleep(DISCONNECT_RETRY).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_packets_are_socketio_events_on_the_root_namespace() {
        let data = r#"{"invoice_payment":{"label":"a"}}"#;
        let packet = event_packet("message", data);
        assert_eq!(
            packet.as_str(),
            r#"42["message",{"invoice_payment":{"label":"a"}}]"#
        );
        assert_eq!(packet.len(), event_packet_len("message", data));
    }
}
