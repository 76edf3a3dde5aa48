//! Our own engine.io endpoint for the commonest listener: a Socket.IO v5 client (engine.io
//! v4) that opens a websocket directly (`GET /socket.io/?EIO=4&transport=websocket`, no
//! `sid`). Long-polling, upgrades from it and protocol v4 clients stay with socketioxide.
//!
//! Why: with socketioxide every client has a session, a send queue of its own packets,
//! encoded for it alone, a writer task woken per message and a heartbeat task (~16 KB of
//! memory per idle client, and most of a delivery's CPU: docs/performance.md, issue 17).
//! Here one task per connection does everything: it answers the handshake, reads the
//! client's packets, pings it, and writes what the relay put in its [`WebsocketClient`]
//! outbox, every packet of which is shared text the relay built once for every client.
//!
//! What a client sees is what socketioxide sends (tests/socketio_wire.rs pins it): the open
//! packet, `40{"sid":...}` or `44{"message":...}` for its connect, `44/ns,{"message":"Invalid
//! namespace"}` for any namespace but `/`, the events, a ping (`2`) every [`PING_INTERVAL`]
//! (no pong within [`PING_TIMEOUT`] closes it), and `41` when the server disconnects it
//! (the client then has [`DISCONNECT_GRACE`] to close the connection before the server
//! aborts it, whether it read the `41` or not). Events and acks, binary ones and their
//! attachments included, are ignored (the server listens to none); what socketioxide takes
//! for an error (a packet that does not parse, an unannounced binary frame, a packet before
//! the client joined) ends the connection as socketioxide's does; so does a message over
//! [`MAX_MESSAGE`] (1 MiB; socketioxide's limit was 64).
//!
//! A client that sends and does not read cannot make answers pile up: while more than
//! [`OWN_BACKLOG`] bytes of the connection's own answers wait to be written, its packets are
//! not read (its writes stall in TCP; the heartbeat still runs).

use crate::http::connection_limit::Connection;
use crate::state::AppState;
use crate::stream::socketio::{self, Listener, SUBSCRIBER_QUEUE};
use crate::stream::socketio_client::{Client, Undelivered};
use crate::stream::socketio_relay::Relay;
use crate::stream::socketio_sessions::{self, DISCONNECT_GRACE};
use axum::extract::Request;
use axum::response::Response;
use futures::task::AtomicWaker;
use futures::{Sink, Stream, StreamExt};
use http::{header, HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use socketioxide::socket::Sid;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// How often each client is pinged (engine.io's `pingInterval`; socketio.rs sets the same
/// for socketioxide's clients).
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
/// How long a client has to answer a ping (engine.io's `pingTimeout`).
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a client may stay connected without joining the namespace (socketioxide's
/// connect timeout); checked at each ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// engine.io's `maxPayload` as announced (socketioxide's default; like socketioxide, it is
/// not enforced on a websocket, where [`MAX_MESSAGE`] is).
const MAX_PAYLOAD: usize = 100_000;
/// The longest message (and frame) a client may send. Clients send only small packets (a
/// connect with its auth payload, pongs); socketioxide allowed 16 MiB frames and 64 MiB
/// messages, which any client could make the plugin hold.
const MAX_MESSAGE: usize = 1 << 20;
/// The bytes each websocket reads into at once (clients send only small packets).
const READ_BUFFER: usize = 512;
/// What the websocket gathers before writing it out. Its buffer keeps the largest size it
/// ever reached, for as long as the connection lives: tungstenite's default (128 KiB) would
/// leave up to that much with every client after a burst.
const WRITE_BUFFER: usize = 16 * 1024;

/// Serves `/socket.io/` websockets opened directly: the state the connect handler needs and
/// the relay that feeds connected clients.
#[derive(Clone)]
pub struct WebsocketEndpoint {
    state: AppState,
    relay: Relay,
}

impl WebsocketEndpoint {
    pub fn new(state: AppState, relay: Relay) -> WebsocketEndpoint {
        WebsocketEndpoint { state, relay }
    }

    /// Answers the websocket handshake of a v5 client that opens a websocket directly
    /// (`socketio_sessions::EngineRequest::Websocket`) and serves the connection once
    /// upgraded; `None` for a request this endpoint cannot take, left as it was (socketioxide
    /// answers it).
    pub fn accept(&self, request: &mut Request) -> Option<Response> {
        if !asks_for_websocket(request.headers()) {
            return None;
        }
        let key = request.headers().get(header::SEC_WEBSOCKET_KEY)?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()?;
        let connection = request.extensions().get::<Connection>()?.clone();
        let rune = socketio::rune_header(request.headers());
        let upgrade = hyper::upgrade::on(request);
        let endpoint = self.clone();
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let config = WebSocketConfig::default()
                        .read_buffer_size(READ_BUFFER)
                        .write_buffer_size(WRITE_BUFFER)
                        .max_message_size(Some(MAX_MESSAGE))
                        .max_frame_size(Some(MAX_MESSAGE));
                    let io = TokioIo::new(upgraded);
                    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    Session::new(endpoint, ws, rune, connection).run().await;
                }
                Err(error) => tracing::debug!("websocket upgrade failed: {error}"),
            }
        });
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        Some(response)
    }
}

/// A client connected to the namespace over our endpoint, as the relay and its delivery
/// task see it: an outbox of packets its connection's task writes.
pub struct WebsocketClient {
    sid: Sid,
    connection: Connection,
    outbox: Mutex<Outbox>,
    /// Wakes the connection's task when the outbox gets something.
    waker: AtomicWaker,
}

struct Outbox {
    packets: VecDeque<Utf8Bytes>,
    state: OutboxState,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum OutboxState {
    Open,
    /// The server disconnected the client: `41` is the last packet.
    Disconnecting,
    /// The client left the namespace or its connection ended.
    Closed,
}

impl WebsocketClient {
    fn new(sid: Sid, connection: Connection) -> WebsocketClient {
        WebsocketClient {
            sid,
            connection,
            outbox: Mutex::new(Outbox {
                packets: VecDeque::new(),
                state: OutboxState::Open,
            }),
            waker: AtomicWaker::new(),
        }
    }

    pub fn id(&self) -> Sid {
        self.sid
    }

    /// The connection the client's websocket is on.
    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding this lock leaves a queue of whole packets: still usable.
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts a packet in the outbox; a full one (more than [`SUBSCRIBER_QUEUE`] packets) is a
    /// slow consumer's. Never waits.
    pub fn send(&self, packet: Utf8Bytes) -> Result<(), Undelivered> {
        let mut outbox = self.outbox();
        if outbox.state != OutboxState::Open {
            return Err(Undelivered::Closed);
        }
        if outbox.packets.len() >= SUBSCRIBER_QUEUE {
            return Err(Undelivered::SlowConsumer);
        }
        let was_empty = outbox.packets.is_empty();
        outbox.packets.push_back(packet);
        drop(outbox);
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    /// Disconnects the client from the server's side: `41` after what is queued; the client
    /// then has [`DISCONNECT_GRACE`] to close the connection before the server does (a
    /// client that stopped reading never takes the `41`).
    pub fn disconnect(&self) {
        let mut outbox = self.outbox();
        if outbox.state != OutboxState::Open {
            return;
        }
        outbox.packets.push_back(Utf8Bytes::from_static("41"));
        outbox.state = OutboxState::Disconnecting;
        drop(outbox);
        self.waker.wake();
        socketio_sessions::abort_after_grace(self.connection.clone());
    }

    fn close(&self) {
        let mut outbox = self.outbox();
        outbox.state = OutboxState::Closed;
        outbox.packets = VecDeque::new();
    }
}

type Websocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// What woke the connection's task.
enum Event {
    /// A message from the client, or the end of its stream.
    Received(Option<Result<Message, WsError>>),
    /// Writing failed: the connection is gone.
    WriteFailed,
    /// The ping timer fired.
    PingDue,
    /// `41` went out to a client the server disconnected.
    Disconnected,
}

/// How a connection ends.
enum Ending {
    /// Closed under the client (it is gone).
    Drop,
    /// When the client closes it (it was told `41` by the server).
    AwaitClose,
    /// After writing what is pending (the echo of the client's close frame).
    Flush,
    /// With a close frame.
    CloseFrame,
    /// With engine.io's close packet `1`, then a close frame.
    ParseError,
}

/// How long the end of a connection may take to write.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The most of the connection's own packets (connect answers, pings) waiting to be written
/// before the client's packets are no longer read.
const OWN_BACKLOG: usize = 64 * 1024;

/// One websocket connection: its engine.io session and, once the client joined the
/// namespace, its Socket.IO client.
struct Session {
    endpoint: WebsocketEndpoint,
    ws: Websocket,
    /// The `rune` header of the handshake request.
    rune: Option<String>,
    connection: Connection,
    /// The engine.io session id.
    engine_sid: Sid,
    /// Packets of the connection itself (open, pings, connect answers), written before
    /// the client's outbox.
    own: VecDeque<Utf8Bytes>,
    client: Option<Joined>,
    /// Whether written packets wait for a flush.
    unflushed: bool,
    /// When the next ping is due, or when the client's pong is overdue.
    ping: Pin<Box<Sleep>>,
    last_ping: Instant,
    awaiting_pong: bool,
    opened: Instant,
    /// Bytes of `own` not written yet: past [`OWN_BACKLOG`] the client's packets are not read
    /// (a client that sends and never reads cannot make the answers pile up).
    own_bytes: usize,
    /// Binary frames announced by a binary event or ack (`45`, `46`) still to come.
    attachments: usize,
    /// Whether the client joined the namespace once (the connect timeout no longer applies).
    joined_once: bool,
    /// Whether `41` went to the websocket for a client the server disconnected.
    disconnect_written: bool,
}

/// A client in the namespace and what ends its delivery task; dropping it (the client left,
/// or the connection ended, however) ends its delivery and takes it from the relay.
struct Joined {
    client: Arc<WebsocketClient>,
    closed: CancellationToken,
    relay: Relay,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.closed.cancel();
        self.client.close();
        self.relay.leave(self.client.id());
    }
}

impl Session {
    fn new(
        endpoint: WebsocketEndpoint,
        ws: Websocket,
        rune: Option<String>,
        connection: Connection,
    ) -> Session {
        Session {
            endpoint,
            ws,
            rune,
            connection,
            engine_sid: Sid::new(),
            own: VecDeque::new(),
            client: None,
            unflushed: false,
            ping: Box::pin(tokio::time::sleep(PING_INTERVAL)),
            last_ping: Instant::now(),
            awaiting_pong: false,
            opened: Instant::now(),
            own_bytes: 0,
            attachments: 0,
            joined_once: false,
            disconnect_written: false,
        }
    }

    async fn run(mut self) {
        let open = format!(
            r#"0{{"sid":"{}","upgrades":[],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.engine_sid,
            PING_INTERVAL.as_millis(),
            PING_TIMEOUT.as_millis(),
            MAX_PAYLOAD
        );
        self.queue_own(Utf8Bytes::from(open));
        // The first ping goes at once, as socketioxide's does.
        self.ping();
        let ending = loop {
            match poll_fn(|cx| self.poll_event(cx)).await {
                Event::Received(Some(Ok(message))) => match self.received(message).await {
                    Ok(()) => {}
                    Err(ending) => break ending,
                },
                Event::Received(Some(Err(error))) => {
                    tracing::debug!("Socket.IO websocket {}: {error}", self.engine_sid);
                    break Ending::CloseFrame;
                }
                Event::Received(None) | Event::WriteFailed => break Ending::Drop,
                Event::Disconnected => break Ending::AwaitClose,
                Event::PingDue => {
                    if self.awaiting_pong {
                        tracing::debug!("Socket.IO websocket {}: ping timeout", self.engine_sid);
                        break Ending::CloseFrame;
                    }
                    if !self.joined_once && self.opened.elapsed() > CONNECT_TIMEOUT {
                        tracing::debug!("Socket.IO websocket {}: no connect", self.engine_sid);
                        break Ending::CloseFrame;
                    }
                    self.ping();
                }
            }
        };
        self.leave();
        self.end(ending).await;
    }

    /// Queues a packet of the connection's own, written before the client's outbox.
    fn queue_own(&mut self, packet: Utf8Bytes) {
        self.own_bytes += packet.len();
        self.own.push_back(packet);
    }

    /// Queues a ping; the client has [`PING_TIMEOUT`] to answer.
    fn ping(&mut self) {
        self.queue_own(Utf8Bytes::from_static("2"));
        self.awaiting_pong = true;
        self.last_ping = Instant::now();
        self.ping.as_mut().reset(self.last_ping + PING_TIMEOUT);
    }

    /// Ends the connection as `ending` says, within [`CLOSE_TIMEOUT`] (a client told `41`
    /// has [`DISCONNECT_GRACE`], after which its connection is aborted anyway).
    async fn end(&mut self, ending: Ending) {
        let limit = match ending {
            Ending::AwaitClose => DISCONNECT_GRACE,
            _ => CLOSE_TIMEOUT,
        };
        let closing = async {
            match ending {
                Ending::Drop => return Ok(()),
                Ending::AwaitClose => return self.await_close().await,
                Ending::Flush => {}
                Ending::CloseFrame => self.ws.close(None).await?,
                Ending::ParseError => {
                    self.queue_own(Utf8Bytes::from_static("1"));
                    poll_fn(|cx| self.poll_written(cx)).await?;
                    self.ws.close(None).await?;
                }
            }
            poll_fn(|cx| self.poll_written(cx)).await
        };
        let _ = tokio::time::timeout(limit, closing).await;
    }

    /// Reads (and drops) what the client still sends until it closes the connection:
    /// closing it under a client whose packets are unread would reset it, and the client
    /// could lose the `41`.
    async fn await_close(&mut self) -> Result<(), WsError> {
        while let Some(message) = self.ws.next().await {
            if let Message::Close(_) = message? {
                break;
            }
        }
        poll_fn(|cx| Pin::new(&mut self.ws).poll_flush(cx)).await
    }

    /// Writes and flushes the connection's own packets.
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.write(cx)?;
        if !self.own.is_empty() {
            return Poll::Pending;
        }
        Pin::new(&mut self.ws).poll_flush(cx)
    }

    /// Writes what is queued (the connection's own packets first), flushes, and returns the
    /// next thing to act on.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if self.write(cx).is_err() {
            return Poll::Ready(Event::WriteFailed);
        }
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Poll::Ready(Event::WriteFailed),
                Poll::Pending => {}
            }
        }
        if self.disconnect_written && !self.unflushed {
            return Poll::Ready(Event::Disconnected);
        }
        if self.own_bytes < OWN_BACKLOG {
            if let Poll::Ready(message) = Pin::new(&mut self.ws).poll_next(cx) {
                return Poll::Ready(Event::Received(message));
            }
        }
        if self.ping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::PingDue);
        }
        Poll::Pending
    }

    /// Hands queued packets to the websocket while it takes them.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<(), WsError> {
        while !self.own.is_empty() {
            if Pin::new(&mut self.ws).poll_ready(cx)?.is_pending() {
                return Ok(());
            }
            if let Some(packet) = self.own.pop_front() {
                self.own_bytes -= packet.len();
                Pin::new(&mut self.ws).start_send(Message::Text(packet))?;
                self.unflushed = true;
            }
        }
        let Some(Joined { client, .. }) = &self.client else {
            return Ok(());
        };
        client.waker.register(cx.waker());
        loop {
            if Pin::new(&mut self.ws).poll_ready(cx)?.is_pending() {
                return Ok(());
            }
            let mut outbox = client.outbox();
            let Some(packet) = outbox.packets.pop_front() else {
                return Ok(());
            };
            // `41` is the last packet of a client the server disconnected.
            self.disconnect_written =
                outbox.state == OutboxState::Disconnecting && outbox.packets.is_empty();
            drop(outbox);
            Pin::new(&mut self.ws).start_send(Message::Text(packet))?;
            self.unflushed = true;
        }
    }

    /// Acts on a message from the client; `Err` says how the connection ends. What ends it is
    /// what ends socketioxide's (tests/socketio_wire.rs).
    async fn received(&mut self, message: Message) -> Result<(), Ending> {
        let text = match message {
            Message::Text(text) => text,
            // tungstenite queued the echo of the client's close frame.
            Message::Close(_) => return Err(Ending::Flush),
            // An attachment of a binary event the client announced (ignored), else a Socket.IO
            // parse error.
            Message::Binary(_) if self.attachments > 0 => {
                self.attachments -= 1;
                return Ok(());
            }
            Message::Binary(_) => return Err(Ending::ParseError),
            // Pings tungstenite answers itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
        };
        let text = text.as_str();
        match text.as_bytes().first() {
            // ping (v4 clients do not ping; ignored)
            Some(b'2') => Ok(()),
            // pong
            Some(b'3') => {
                if self.awaiting_pong {
                    self.awaiting_pong = false;
                    self.ping.as_mut().reset(self.last_ping + PING_INTERVAL);
                }
                Ok(())
            }
            // close
            Some(b'1') => Err(Ending::CloseFrame),
            // message: a Socket.IO packet
            Some(b'4') => self.socketio_packet(&text[1..]).await,
            // Anything else (upgrade and noop included) is not for a websocket.
            _ => Err(Ending::CloseFrame),
        }
    }

    /// A Socket.IO packet: its type, then its namespace (`/name,`, none for `/`), an ack id
    /// and its data.
    async fn socketio_packet(&mut self, packet: &str) -> Result<(), Ending> {
        let kind = packet.as_bytes().first().copied();
        let rest = packet.get(1..).unwrap_or_default();
        if kind == Some(b'0') {
            return self.connect(rest).await;
        }
        // A binary event or ack: `<attachments>-`, then the rest as for the others.
        let rest = if matches!(kind, Some(b'5' | b'6')) {
            let (count, after) = rest.split_once('-').ok_or(Ending::ParseError)?;
            let count: usize = count.parse().map_err(|_| Ending::ParseError)?;
            self.attachments = self.attachments.saturating_add(count);
            after
        } else {
            rest
        };
        let (namespace, data) = split_namespace(rest);
        if !matches!(kind, Some(b'1'..=b'6')) {
            return Err(Ending::ParseError);
        }
        if matches!(kind, Some(b'2' | b'3' | b'5' | b'6')) {
            let data = data.trim_start_matches(|c: char| c.is_ascii_digit());
            if serde_json::from_str::<serde::de::IgnoredAny>(data).is_err() {
                return Err(Ending::ParseError);
            }
        }
        if !namespace.is_empty() {
            // Packets for namespaces nobody joined are ignored.
            return Ok(());
        }
        if self.client.is_none() {
            return Err(Ending::ParseError);
        }
        if kind == Some(b'1') {
            self.leave();
        }
        // Events and acks: the server listens to none.
        Ok(())
    }

    /// A Socket.IO connect packet (after `40`): a namespace, then the auth payload.
    async fn connect(&mut self, packet: &str) -> Result<(), Ending> {
        let (namespace, auth) = split_namespace(packet);
        if !namespace.is_empty() {
            let reply = format!(r#"44/{namespace},{{"message":"Invalid namespace"}}"#);
            self.queue_own(Utf8Bytes::from(reply));
            return Ok(());
        }
        if self.client.is_some() {
            return Ok(());
        }
        let auth = match auth {
            "" => Value::Null,
            text => match serde_json::from_str(text) {
                Ok(auth) => auth,
                Err(error) => {
                    tracing::debug!("Socket.IO websocket {}: {error}", self.engine_sid);
                    return Err(Ending::ParseError);
                }
            },
        };
        let client = WebsocketClient::new(self.engine_sid, self.connection.clone());
        let client = Arc::new(client);
        let state = &self.endpoint.state;
        match socketio::authorize(state, self.rune.as_deref(), &auth).await {
            Ok(listener) => self.join(client, listener),
            Err(reason) => {
                tracing::info!("Socket.IO client {} refused: {reason}", client.id());
                let message = serde_json::json!({ "message": reason });
                self.queue_own(Utf8Bytes::from(format!("44{message}")));
            }
        }
        Ok(())
    }

    /// The client joined the namespace: it is told its id, then its delivery task starts.
    fn join(&mut self, client: Arc<WebsocketClient>, listener: Listener) {
        let connected = format!(r#"40{{"sid":"{}"}}"#, client.id());
        self.queue_own(Utf8Bytes::from(connected));
        let closed = CancellationToken::new();
        socketio::start_delivery(
            Client::Websocket(client.clone()),
            listener,
            self.endpoint.relay.clone(),
            closed.clone(),
        );
        self.joined_once = true;
        self.client = Some(Joined {
            client,
            closed,
            relay: self.endpoint.relay.clone(),
        });
    }

    /// The client left the namespace, or its connection ended.
    fn leave(&mut self) {
        self.client = None;
    }
}

/// Whether a request's headers ask to upgrade to a websocket.
fn asks_for_websocket(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// A Socket.IO packet's namespace (`/name,` before the rest; empty for `/`) and the rest.
fn split_namespace(packet: &str) -> (&str, &str) {
    match packet.strip_prefix('/') {
        Some(named) => named.split_once(',').unwrap_or((named, "")),
        None => ("", packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_upgrade_to_websocket_is_taken() {
        let mut headers = http::HeaderMap::new();
        assert!(!asks_for_websocket(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(asks_for_websocket(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!asks_for_websocket(&headers));
    }

    #[test]
    fn namespaces_are_split_off_packets() {
        assert_eq!(split_namespace(r#"{"rune":"r"}"#), ("", r#"{"rune":"r"}"#));
        assert_eq!(split_namespace("/admin,{}"), ("admin", "{}"));
        assert_eq!(split_namespace("/admin"), ("admin", ""));
        assert_eq!(split_namespace(""), ("", ""));
    }
}
