//! The Socket.IO server (socketioxide, namespace `/`, protocol v4 and v5 clients): rune
//! check at connect, then a delivery task per client that replays what it asked to resume
//! and hands it to the relay (`socketio_relay.rs`) for live notifications, and cuts it off
//! when its rune is revoked.
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
//! Each websocket is read into a small buffer ([`WS_READ_BUFFER`]): what an idle client
//! costs in memory is mostly engine.io's and hyper's (docs/performance.md, issue 17).

use crate::state::AppState;
use crate::stream::journal::{Next, Subscription};
use crate::stream::listeners::{Registration, StreamOptions};
use crate::stream::send_window::Window;
use crate::stream::socketio_relay::{Encoded, Member, Relay, Undelivered};
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo};
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

/// How often engine.io pings each client (a keep-alive well inside 30 s).
const PING_INTERVAL: Duration = Duration::from_secs(25);

/// How long a replaying client's send queue may stay full (or its window without room)
/// before it counts as a slow consumer.
const FULL_BUFFER_PATIENCE: Duration = Duration::from_secs(2);
const FULL_BUFFER_RETRY: Duration = Duration::from_millis(5);

/// The tower layer that serves `/socket.io/` next to the REST routes; starts the relay task
/// that feeds caught-up clients. (The middleware in front of it, `socketio_sessions.rs`,
/// copies each request's head out of hyper's read buffer.)
pub fn layer(state: AppState) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SUBSCRIBER_QUEUE)
        // The stream's keep-alive: engine.io pings every 25 s (clients answer with pongs).
        .ping_interval(PING_INTERVAL)
        // Clients send only small packets (connect, pongs); tungstenite still reserves a
        // whole frame's length for a larger one.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .build_layer();
    let relay = Relay::start(state.clone());
    let authorize = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let state = state.clone();
        async move {
            let refusal = authorize(&state, &socket, &auth.unwrap_or(Value::Null)).await;
            if let Err(reason) = &refusal {
                tracing::info!("Socket.IO client {} refused: {reason}", socket.id);
            }
            refusal
        }
    };
    let connect = move |socket: SocketRef| {
        let relay = relay.clone();
        async move { on_connect(socket, relay) }
    };
    io.ns("/", connect.with(authorize));
    layer
}

/// The rune: the `rune` request header, or else the auth payload's `rune`.
fn rune_of(socket: &SocketRef, auth: &Value) -> Option<String> {
    let header = socket.req_parts().headers.get("rune");
    match header {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => auth.get("rune").and_then(Value::as_str).map(str::to_string),
    }
}

/// Connect middleware: refused clients get a connect error carrying lightningd's reason.
/// An accepted client is subscribed here, before socketioxide confirms the connection, so a
/// notification sent right after the client sees that confirmation is not missed.
async fn authorize(state: &AppState, socket: &SocketRef, auth: &Value) -> Result<(), String> {
    let options = StreamOptions::from_auth(auth)?;
    let rune = rune_of(socket, auth).ok_or("Not authorized: Missing rune")?;
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
    socket
        .extensions
        .insert(Prepared(Arc::new(Mutex::new(Some(listener)))));
    Ok(())
}

/// What the middleware prepared for the connect handler.
struct Listener {
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
    tracing::debug!(
        "Socket.IO client {} connected with {}",
        socket.id,
        crate::lightningd::rune::log_name(&listener.rune)
    );
    tokio::spawn(deliver(socket, listener, relay, closed));
}

/// One client's delivery task: replays what the client asked to resume (and what arrives
/// meanwhile) at the client's pace, hands the client to the relay once caught up, then
/// waits for the client to go or for its rune to be revoked.
async fn deliver(socket: SocketRef, listener: Listener, relay: Relay, closed: CancellationToken) {
    let Listener {
        mut subscription,
        mut registration,
        options,
        epoch,
        ..
    } = listener;
    let mut window = Window::of(&socket);
    if let Some(gap) = subscription.take_gap() {
        let gap = emit_patiently(&socket, &mut window, |s| s.emit("gap", &gap).map(|()| 0));
        if gap.await.is_err() {
            return;
        }
    }
    let caught_up = tokio::select! {
        caught_up = catch_up(&socket, &mut window, &mut subscription, &options, &epoch) => caught_up,
        _ = closed.cancelled() => return,
    };
    if let Err(undelivered) = caught_up {
        return undelivered.end(socket);
    }
    relay.join(Member {
        socket: socket.clone(),
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
            let _ = socket.emit("disconnect_reason", &json!({ "reason": reason }));
            crate::stream::socketio_relay::disconnect(socket, &reason);
        }
        _ = closed.cancelled() => {}
    }
}

/// Emits everything the subscription has ready, waiting for room in the client's send
/// queue as needed, until nothing more is ready.
async fn catch_up(
    socket: &SocketRef,
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
        emit_patiently(socket, window, |s| encoded.emit(s, options)).await?;
    }
    Ok(())
}

/// Emits one event (`emit` returns the bytes it queued), waiting (up to
/// [`FULL_BUFFER_PATIENCE`]) for room in the client's window and send queue: a client
/// replaying a long backlog fills them in a burst but drains them quickly.
async fn emit_patiently(
    socket: &SocketRef,
    window: &mut Window,
    mut emit: impl FnMut(&SocketRef) -> Result<usize, SendError>,
) -> Result<(), Undelivered> {
    let started = tokio::time::Instant::now();
    loop {
        if window.has_room() {
            match emit(socket) {
                Ok(bytes) => {
                    window.sent(bytes);
                    return Ok(());
                }
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {}
                Err(_) => return Err(Undelivered::Closed),
            }
        }
        if started.elapsed() > FULL_BUFFER_PATIENCE {
            return Err(Undelivered::SlowConsumer);
        }
        tokio::time::sleep(FULL_BUFFER_RETRY).await;
    }
}
