//! The Socket.IO server (socketioxide, namespace `/`, protocol v4 and v5 clients): rune
//! check at connect, then one delivery task per client that replays and relays the journal.
//!
//! Events a client receives:
//! - `message`: `{"<topic>": {...}}`, lightningd's `params`, the shape existing clients expect;
//! - `notification`: `{"seq": n, "topic": "...", "payload": {...}}`, instead of `message` for
//!   clients that sent `"seq": true`;
//! - `gap`: `{"since": N, "oldest": M}` first, when the client resumed from further back than
//!   the journal reaches;
//! - `disconnect_reason`: `{"reason": "..."}` just before the server disconnects the client
//!   (rune revoked), when it can still be sent.

use crate::journal::{Next, Sequenced, Subscription, SUBSCRIBER_QUEUE};
use crate::state::AppState;
use crate::subscribers::{Registration, StreamOptions};
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long we keep trying to disconnect a client whose send buffer is full.
const DISCONNECT_RETRY: Duration = Duration::from_millis(100);
const DISCONNECT_ATTEMPTS: u32 = 600;

/// The tower layer that serves `/socket.io/` next to the REST routes.
pub fn layer(state: AppState) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SUBSCRIBER_QUEUE)
        .build_layer();
    let check_state = state.clone();
    let authorize = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let state = check_state.clone();
        async move { authorize(&state, &socket, &auth.unwrap_or(Value::Null)).await }
    };
    let connect = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let state = state.clone();
        async move { on_connect(state, socket, auth.unwrap_or(Value::Null)) }
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
async fn authorize(state: &AppState, socket: &SocketRef, auth: &Value) -> Result<(), String> {
    StreamOptions::from_auth(auth)?;
    let rune = rune_of(socket, auth).ok_or("Not authorized: Missing rune")?;
    crate::subscribers::authorize(state.rpc(), &rune)
        .await
        .map_err(|e| match e {
            crate::error::ApiError::RuneRefused(error) => error.message(),
            other => other.to_string(),
        })
}

fn on_connect(state: AppState, socket: SocketRef, auth: Value) {
    let options = StreamOptions::from_auth(&auth).unwrap_or_default();
    let rune = rune_of(&socket, &auth).unwrap_or_default();
    let subscription = state.journal().subscribe(options.since);
    let registration = state.subscribers().register(&rune);
    let closed = CancellationToken::new();
    let on_close = closed.clone();
    socket.on_disconnect(move |_: DisconnectReason| {
        on_close.cancel();
        async {}
    });
    tracing::debug!(
        "Socket.IO client {} connected with {}",
        socket.id,
        crate::rune::log_name(&rune)
    );
    tokio::spawn(deliver(socket, subscription, options, registration, closed));
}

/// Relays the journal to one client until it disconnects, falls behind or is revoked.
async fn deliver(
    socket: SocketRef,
    mut subscription: Subscription,
    options: StreamOptions,
    mut registration: Registration,
    closed: CancellationToken,
) {
    if let Some(gap) = subscription.take_gap() {
        if socket.emit("gap", &gap).is_err() {
            return;
        }
    }
    loop {
        let next = tokio::select! {
            next = subscription.next() => next,
            reason = &mut registration.revoked => {
                let reason = format!("rune revoked: {}", reason.unwrap_or_default());
                let _ = socket.emit("disconnect_reason", &json!({ "reason": reason }));
                disconnect(socket, &reason);
                return;
            }
            _ = closed.cancelled() => return,
        };
        let notification = match next {
            Next::Notification(notification) => notification,
            Next::Lagged => return disconnect(socket, "slow consumer"),
            Next::Closed => return,
        };
        if !options.wants(&notification.topic) {
            continue;
        }
        let sent = if options.seq {
            socket.emit("notification", &Sequenced::from(&*notification))
        } else {
            socket.emit("message", &notification.params())
        };
        match sent {
            Ok(()) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                return disconnect(socket, "slow consumer")
            }
            Err(_) => return,
        }
    }
}

/// Disconnects a client. Its send buffer may be full, which makes socketioxide refuse the
/// disconnect packet: retry in the background until there is room or the transport closes.
fn disconnect(socket: SocketRef, reason: &str) {
    tracing::info!("disconnecting Socket.IO client {}: {reason}", socket.id);
    tokio::spawn(async move {
        for _ in 0..DISCONNECT_ATTEMPTS {
            if !socket.connected() || socket.clone().disconnect().is_ok() {
                return;
            }
            tokio::time::sleep(DISCONNECT_RETRY).await;
        }
    });
}
