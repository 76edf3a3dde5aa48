//! Socket.IO (namespace `/`, protocol v4 and v5 clients): the rune check at connect, then a
//! delivery task per client that replays what it asked to resume and hands it to the relay
//! (`socketio_relay.rs`) for live notifications, and cuts it off when its rune is revoked.
//! Both servers use them: socketioxide's, here (long-polling, upgrades from it, protocol v4),
//! and our endpoint for v5 clients that open a websocket directly (`socketio_websocket.rs`).
//!
//! Events a client receives:
//! - `message`: `{"<topic>": {...}}`, lightningd's `params`, the shape existing clients expect;
//! - `notification`: `{"seq": n, "epoch": "...", "topic": "...", "payload": {...}}`, instead
//!   of `message` for clients that sent `"seq": true`;
//! - `gap`: `{"since": N, "oldest": M}` first (with `"epoch"` when `since` named one), when
//!   the client resumed from further back than the journal reaches or from another plugin
//!   process;
//! - `disconnect_reason`: `{"reason": "..."}` just before the server disconnects the client
//!   (rune revoked), when it can still be sent.
//!
//! A client's send queue is filled only a window ahead of what its connection takes
//! ([`Window`], explained in `socketio_relay.rs`), during its replay as in the relay. The
//! middleware in front of it (`socketio_sessions.rs`) gives long-polling sessions a
//! `clnrest-max-connections` slot and follows them to the connection they upgrade to.
//!
//! Each of socketioxide's websockets is read into a small buffer ([`WS_READ_BUFFER`]): what
//! an idle client costs in memory is mostly engine.io's (docs/performance.md, issue 17).

use crate::state::AppState;
use crate::stream::journal::{Next, Subscription};
use crate::stream::listeners::{Registration, StreamOptions};
use crate::stream::send_window::Window;
use crate::stream::socketio_client::{Client, Undelivered};
use crate::stream::socketio_relay::{Encoded, Member, Relay};
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many messages a client may be owed (in its send queue or still in the journal)
/// before it is cut off as a slow consumer; socketioxide's queue holds at most this many.
/// (The bytes it may be owed: `socketio_relay::QUEUE_BYTES`.)
pub const SUBSCRIBER_QUEUE: usize = 10_000;

/// The bytes each websocket connection reads into at once, allocated for as long as it
/// lives (engineioxide's default is 4 KiB: ~3.5 MiB more with 1,000 idle clients).
const WS_READ_BUFFER: usize = 512;

/// How often engine.io pings each client (a keep-alive well inside 30 s); our websocket
/// endpoint pings as often.
const PING_INTERVAL: Duration = crate::stream::socketio_websocket::PING_INTERVAL;

/// How long a replaying client's send queue may stay full (or its window without room)
/// before it counts as a slow consumer.
const FULL_BUFFER_PATIENCE: Duration = Duration::from_secs(2);
const FULL_BUFFER_RETRY: Duration = Duration::from_millis(5);

/// The tower layer that serves `/socket.io/` next to the REST routes, handing caught-up
/// clients to `relay`. (The middleware in front of it, `socketio_sessions.rs`, copies each
/// request's head out of hyper's read buffer and sends websockets opened directly by v5
/// clients to our own endpoint, `socketio_websocket.rs`.)
pub fn layer(state: AppState, relay: Relay) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SUBSCRIBER_QUEUE)
        // The stream's keep-alive: engine.io pings every 25 s (clients answer with pongs).
        .ping_interval(PING_INTERVAL)
        // Clients send only small packets (connect, pongs); tungstenite still reserves a
        // whole frame's length for a larger one.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .build_layer();
    let authorize = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let state = state.clone();
        async move {
            let header = rune_header(&socket.req_parts().headers);
            match authorize(&state, header.as_deref(), &auth.unwrap_or(Value::Null)).await {
                Ok(listener) => {
                    let prepared = Prepared(Arc::new(Mutex::new(Some(listener))));
                    socket.extensions.insert(prepared);
                    Ok(())
                }
                Err(reason) => {
                    tracing::info!("Socket.IO client {} refused: {reason}", socket.id);
                    Err(reason)
                }
            }
        }
    };
    let connect = move |socket: SocketRef| {
        let relay = relay.clone();
        async move { on_connect(socket, relay) }
    };
    io.ns("/", connect.with(authorize));
    layer
}

/// The `rune` header of a client's first request (both servers).
pub fn rune_header(headers: &http::HeaderMap) -> Option<String> {
    let header = headers.get("rune")?;
    Some(String::from_utf8_lossy(header.as_bytes()).into_owned())
}

/// The rune a client connects with: the `rune` request header, or else the auth payload's.
fn rune_of(header: Option<&str>, auth: &Value) -> Option<String> {
    match header {
        Some(header) => Some(header.to_string()),
        None => auth.get("rune").and_then(Value::as_str).map(str::to_string),
    }
}

/// The connect check of both servers: a refused client gets a connect error carrying
/// lightningd's reason. An accepted client is subscribed here, before it is told it is
/// connected, so a notification sent right after it sees that is not missed.
pub async fn authorize(
    state: &AppState,
    rune_header: Option<&str>,
    auth: &Value,
) -> Result<Listener, String> {
    let options = StreamOptions::from_auth(auth)?;
    let rune = rune_of(rune_header, auth).ok_or("Not authorized: Missing rune")?;
    crate::stream::listeners::authorize(state.rpc(), &rune)
        .await
        .map_err(|e| match e {
            crate::lightningd::rune::RuneError::Refused(error) => error.message(),
            other => other.to_string(),
        })?;
    let listener = Listener {
        subscription: state.journal().subscribe(options.since.clone()),
        epoch: state.journal().epoch().to_string(),
        registration: state
            .listeners()
            .register(&rune, crate::stream::listeners::Transport::SocketIo),
        options,
        rune,
    };
    Ok(listener)
}

/// An accepted client's subscription and options, for its delivery task.
pub struct Listener {
    subscription: Subscription,
    /// The journal's epoch, for `notification` events.
    epoch: String,
    registration: Registration,
    options: StreamOptions,
    rune: String,
}

/// socketioxide's extensions hold `Clone` values: the listener is taken out once.
#[derive(Clone)]
struct Prepared(Arc<Mutex<Option<Listener>>>);

fn on_connect(socket: SocketRef, relay: Relay) {
    let listener = socket
        .extensions
        .remove::<Prepared>()
        .and_then(|prepared| prepared.0.lock().ok()?.take());
    let Some(listener) = listener else {
        // The middleware always prepares one; without it there is nothing to deliver.
        let _ = socket.disconnect();
        return;
    };
    let closed = CancellationToken::new();
    let on_close = closed.clone();
    let leave = relay.clone();
    socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
        // Cancelled before the relay hears of it: a join still on its way is then ignored.
        on_close.cancel();
        leave.leave(socket.id);
        if reason == DisconnectReason::ServerNSDisconnect {
            crate::stream::socketio_sessions::close_after_disconnect(&socket);
        }
        async {}
    });
    // socketioxide runs this handler in a task of its own: a session that closed in the
    // meantime (a client gone right after its connect packet) has already been disconnected
    // without the handler above, and nothing would end its delivery task, which keeps the
    // session (and its connection slot) alive. `close` marks the socket disconnected before
    // it takes the handler, so one of the two always sees the other.
    if !socket.connected() {
        return;
    }
    start_delivery(Client::Engine(socket), listener, relay, closed);
}

/// Starts a connected client's delivery task; `closed` is cancelled when the client goes.
pub fn start_delivery(client: Client, listener: Listener, relay: Relay, closed: CancellationToken) {
    tracing::debug!(
        "Socket.IO client {} connected with {}",
        client.id(),
        crate::lightningd::rune::log_name(&listener.rune)
    );
    tokio::spawn(deliver(client, listener, relay, closed));
}

/// One client's delivery task: replays what the client asked to resume (and what arrives
/// meanwhile) at the client's pace, hands the client to the relay once caught up, then
/// waits for the client to go or for its rune to be revoked.
async fn deliver(client: Client, listener: Listener, relay: Relay, closed: CancellationToken) {
    let Listener {
        mut subscription,
        mut registration,
        options,
        epoch,
        ..
    } = listener;
    let mut window = client.window();
    if let Some(gap) = subscription.take_gap() {
        let gap = emit_patiently(&client, &mut window, |c| c.emit_value("gap", &gap));
        if gap.await.is_err() {
            return;
        }
    }
    let caught_up = tokio::select! {
        caught_up = catch_up(&client, &mut window, &mut subscription, &options, &epoch) => caught_up,
        _ = closed.cancelled() => return,
    };
    if let Err(undelivered) = caught_up {
        return undelivered.end(client);
    }
    relay.join(Member {
        client: client.clone(),
        options,
        delivered: subscription.position(),
        closed: closed.clone(),
        window,
    });
    // The relay delivers from here on; this subscription is not read any more.
    drop(subscription);
    tokio::select! {
        reason = &mut registration.revoked => {
            let reason = format!("rune revoked: {}", reason.unwrap_or_default());
            let _ = client.emit_value("disconnect_reason", &json!({ "reason": reason }));
            crate::stream::socketio_client::disconnect(client, &reason);
        }
        _ = closed.cancelled() => {}
    }
}

/// Emits everything the subscription has ready, waiting for room in the client's send
/// queue as needed, until nothing more is ready.
async fn catch_up(
    client: &Client,
    window: &mut Window,
    subscription: &mut Subscription,
    options: &StreamOptions,
    epoch: &str,
) -> Result<(), Undelivered> {
    while let Some(next) = subscription.try_next() {
        let notification = match next {
            Next::Notification(notification) => notification,
            Next::Lagged => return Err(Undelivered::SlowConsumer),
            Next::Closed => return Err(Undelivered::Closed),
        };
        let mut encoded = Encoded::new(&notification, epoch);
        emit_patiently(client, window, |c| encoded.emit(c, options)).await?;
    }
    Ok(())
}

/// Emits one event (`emit` returns the bytes it queued), waiting (up to
/// [`FULL_BUFFER_PATIENCE`]) for room in the client's window and send queue: a client
/// replaying a long backlog fills them in a burst but drains them quickly.
async fn emit_patiently(
    client: &Client,
    window: &mut Window,
    mut emit: impl FnMut(&Client) -> Result<usize, Undelivered>,
) -> Result<(), Undelivered> {
    let started = tokio::time::Instant::now();
    loop {
        if window.has_room() {
            match emit(client) {
                Ok(bytes) => {
                    window.sent(bytes);
                    return Ok(());
                }
                Err(Undelivered::SlowConsumer) => {}
                Err(Undelivered::Closed) => return Err(Undelivered::Closed),
            }
        }
        if started.elapsed() > FULL_BUFFER_PATIENCE {
            return Err(Undelivered::SlowConsumer);
        }
        tokio::time::sleep(FULL_BUFFER_RETRY).await;
    }
}
