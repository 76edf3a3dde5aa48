//! engine.io sessions as the connections under them see them: the middleware in front of
//! Socket.IO that sends websockets opened directly by v5 clients to our own endpoint
//! (`socketio_websocket.rs`), gives a long-polling session a `clnrest-max-connections` slot
//! for its lifetime, and follows it to the connection it upgrades to (see `send_window.rs`).
//!
//! A long-polling handshake (`GET /socket.io/?transport=polling` without `sid`) takes a slot
//! that the session keeps while it lives (its request's extensions stay with the session);
//! with none left it gets the 503 a connection beyond the cap gets. Its response names the
//! session (`0{"sid":"...",...}`, after a length prefix for engine.io v3), which is
//! remembered: the bodies of the session's polls (`transport=polling&sid=...`) are added up,
//! and its upgrade (`transport=websocket&sid=...`) on another connection tells the session's
//! send window which connection to count from then on.
//!
//! engine.io keeps a session's first request (its head: URI, headers, extensions) for as
//! long as the session lives, so the middleware first gives each request that opens a
//! session or a websocket a head of its own ([`detached`]) instead of slices of the 16 KiB
//! buffer hyper read it into (the polls of an open session are left as they are).
//!
//! When the server disconnects a client from its namespace (slow consumer, revoked rune),
//! socketioxide leaves the engine.io session open; a well-behaved client closes it on the
//! disconnect packet, a stalled one never reads it. [`close_after_disconnect`] closes the
//! websocket's connection after [`DISCONNECT_GRACE`], so a client that was cut off holds
//! nothing in the plugin beyond that (a session still polling is closed by engine.io once it
//! stops polling).

use crate::http::connection_limit::Connection;
use crate::stream::send_window::{websocket_connection, PollingSession, PollingSessions};
use crate::stream::socketio_websocket::WebsocketEndpoint;
use axum::body::{Body, HttpBody};
use axum::extract::{OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Uri};
use serde::Deserialize;
use socketioxide::extract::SocketRef;
use std::time::Duration;

/// The most of a handshake's response read to find its session id.
const HANDSHAKE_RESPONSE_LIMIT: usize = 64 * 1024;

/// What the middleware needs: the polling sessions it follows and our endpoint for
/// websockets opened directly.
#[derive(Clone)]
pub struct SocketIoFront {
    sessions: PollingSessions,
    websockets: WebsocketEndpoint,
}

impl SocketIoFront {
    pub fn new(sessions: PollingSessions, websockets: WebsocketEndpoint) -> SocketIoFront {
        SocketIoFront {
            sessions,
            websockets,
        }
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn track_sessions(
    State(front): State<SocketIoFront>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/socket.io") {
        return next.run(request).await;
    }
    let engine = EngineRequest::of(&request);
    if engine == EngineRequest::Websocket {
        if let Some(response) = front.websockets.accept(&mut request) {
            return response;
        }
    }
    let sessions = &front.sessions;
    request = if engine.keeps_head() {
        detached(request)
    } else {
        request
    };
    let connection = request.extensions().get::<Connection>().cloned();
    match (engine, connection) {
        (EngineRequest::PollingHandshake, Some(connection)) => {
            let Some(slot) = connection.session_slot() else {
                return crate::http::connection_limit::refusal();
            };
            let session = PollingSession::default();
            request.extensions_mut().insert(slot);
            request.extensions_mut().insert(session.clone());
            let response = next.run(request).await;
            remember_session(response, sessions, &session).await
        }
        (EngineRequest::Poll(sid), _) => {
            let response = next.run(request).await;
            let size = response.body().size_hint();
            sessions.polled(&sid, size.exact().unwrap_or(size.lower()));
            response
        }
        (EngineRequest::Upgrade(sid), Some(connection)) => {
            let response = next.run(request).await;
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                sessions.upgraded(&sid, &connection);
            }
            response
        }
        _ => next.run(request).await,
    }
}

/// How long a client disconnected by the server has to close its websocket itself.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

/// Closes the connection of `socket`'s websocket, if it has one, [`DISCONNECT_GRACE`] from
/// now: for a client the server disconnected from its namespace.
pub fn close_after_disconnect(socket: &SocketRef) {
    if let Some(connection) = websocket_connection(socket) {
        abort_after_grace(connection);
    }
}

/// Aborts `connection` [`DISCONNECT_GRACE`] from now, whatever its client does meanwhile:
/// a client the server disconnected has that long to close it itself (both servers' clients).
pub fn abort_after_grace(connection: Connection) {
    tokio::spawn(async move {
        tokio::time::sleep(DISCONNECT_GRACE).await;
        connection.abort();
    });
}

/// A Socket.IO request whose URI, original URI and header values no longer point into the
/// buffer hyper read the request into. hyper hands them out as slices of that buffer (16 KiB
/// once it has grown), and engine.io keeps the request's head for as long as the session
/// lives: without the copies every connected client keeps its whole read buffer.
fn detached(mut request: Request) -> Request {
    if let Some(uri) = copied(request.uri()) {
        *request.uri_mut() = uri;
    }
    if let Some(OriginalUri(original)) = request.extensions_mut().get_mut::<OriginalUri>() {
        if let Some(uri) = copied(original) {
            *original = uri;
        }
    }
    let shared = std::mem::take(request.headers_mut());
    let headers = request.headers_mut();
    headers.reserve(shared.len());
    let mut name = None;
    for (next_name, value) in shared {
        // Further values of a header come with `None` for their name.
        if next_name.is_some() {
            name = next_name;
        }
        let Some(name) = &name else {
            continue;
        };
        let value = match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(mut copied) => {
                copied.set_sensitive(value.is_sensitive());
                copied
            }
            Err(_) => value,
        };
        headers.append(name, value);
    }
    request
}

/// `uri` in memory of its own.
fn copied(uri: &Uri) -> Option<Uri> {
    Uri::try_from(uri.to_string()).ok()
}
/// What an engine.io request is, as far as sessions go.
#[derive(Debug, PartialEq)]
enum EngineRequest {
    /// `GET /socket.io/` with `transport=polling` and no `sid`: opens a session.
    PollingHandshake,
    /// `GET /socket.io/` with `transport=polling` and a `sid`: a poll of that session.
    Poll(String),
    /// Another request of a polling session (a `POST` of the client's packets).
    ToSession,
    /// `GET /socket.io/` with `transport=websocket` and the `sid` of a polling session.
    Upgrade(String),
    /// `GET /socket.io/?EIO=4` with `transport=websocket` and no `sid`: a v5 client opening a
    /// websocket directly, for our own endpoint.
    Websocket,
    Other,
}

impl EngineRequest {
    fn of(request: &Request) -> EngineRequest {
        let uri = request.uri();
        if !uri.path().starts_with("/socket.io") {
            return EngineRequest::Other;
        }
        let get = request.method() == http::Method::GET;
        let (mut transport, mut sid, mut eio4) = (None, None, false);
        for pair in uri.query().unwrap_or_default().split('&') {
            if let Some(value) = pair.strip_prefix("transport=") {
                transport = Some(value);
            } else if let Some(value) = pair.strip_prefix("sid=") {
                sid = Some(value);
            } else if let Some(value) = pair.strip_prefix("EIO=") {
                eio4 = value == "4";
            }
        }
        match (get, transport, sid) {
            (true, Some("websocket"), None) if eio4 => EngineRequest::Websocket,
            (true, Some("polling"), None) => EngineRequest::PollingHandshake,
            (true, Some("polling"), Some(sid)) => EngineRequest::Poll(sid.to_string()),
            (false, Some("polling"), Some(_)) => EngineRequest::ToSession,
            (true, Some("websocket"), Some(sid)) => EngineRequest::Upgrade(sid.to_string()),
            _ => EngineRequest::Other,
        }
    }

    /// Whether engine.io may keep the request's head for the session's lifetime (a request
    /// that opens a session or a websocket); the many requests of a polling session that is
    /// open already are not [`detached`].
    fn keeps_head(&self) -> bool {
        !matches!(self, EngineRequest::Poll(_) | EngineRequest::ToSession)
    }
}

/// Reads the handshake's response for the session id it opened, remembers it, and passes the
/// response on unchanged.
async fn remember_session(
    response: Response,
    sessions: &PollingSessions,
    session: &PollingSession,
) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, HANDSHAKE_RESPONSE_LIMIT).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::debug!("engine.io handshake response unreadable: {error}");
            return Response::from_parts(parts, Body::empty());
        }
    };
    if let Some(sid) = session_id(&bytes) {
        sessions.opened(sid, session);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The engine.io open packet's payload.
#[derive(Deserialize)]
struct Open {
    sid: String,
}

/// The `sid` of the open packet at the start of a handshake's response: `0{...}` (engine.io
/// v4) or `<length>:0{...}` (v3), possibly followed by more packets.
fn session_id(body: &[u8]) -> Option<String> {
    let start = body.iter().position(|&b| b == b'{')?;
    let open = serde_json::Deserializer::from_slice(&body[start..])
        .into_iter::<Open>()
        .next()?
        .ok()?;
    Some(open.sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request {
        Request::get(uri)
            .body(Body::empty())
            .expect("valid request")
    }

    #[test]
    fn tells_handshakes_and_upgrades_apart() {
        let of = |uri| EngineRequest::of(&request(uri));
        assert_eq!(
            of("/socket.io/?EIO=4&transport=polling&t=x"),
            EngineRequest::PollingHandshake
        );
        assert_eq!(
            of("/socket.io/?EIO=4&transport=polling&sid=abc"),
            EngineRequest::Poll("abc".into())
        );
        assert_eq!(
            of("/socket.io/?EIO=4&transport=websocket&sid=abc"),
            EngineRequest::Upgrade("abc".into())
        );
        assert_eq!(
            of("/socket.io/?EIO=4&transport=websocket"),
            EngineRequest::Websocket
        );
        assert_eq!(
            of("/socket.io/?transport=websocket&t=x&EIO=4"),
            EngineRequest::Websocket
        );
        assert_eq!(
            of("/socket.io/?EIO=3&transport=websocket"),
            EngineRequest::Other
        );
        assert_eq!(of("/v1/getinfo?transport=polling"), EngineRequest::Other);
        let post = Request::post("/socket.io/?EIO=4&transport=polling&sid=abc")
            .body(Body::empty())
            .expect("valid request");
        assert_eq!(EngineRequest::of(&post), EngineRequest::ToSession);
        assert!(!EngineRequest::ToSession.keeps_head());
        assert!(EngineRequest::PollingHandshake.keeps_head());
    }

    #[test]
    fn a_detached_request_keeps_its_uri_and_every_header_value() {
        let uri = "/socket.io/?EIO=4&transport=polling&t=x";
        let request = Request::get(uri)
            .header("rune", "secret")
            .header("x-many", "one")
            .header("x-many", "two")
            .extension(OriginalUri(Uri::from_static(uri)))
            .body(Body::empty())
            .expect("valid request");
        let request = detached(request);
        assert_eq!(request.uri(), uri);
        let original = request.extensions().get::<OriginalUri>();
        assert_eq!(original.map(|o| o.0.to_string()).as_deref(), Some(uri));
        assert_eq!(request.headers()["rune"], "secret");
        let many: Vec<_> = request.headers().get_all("x-many").iter().collect();
        assert_eq!(many, ["one", "two"]);
    }

    #[test]
    fn finds_the_session_id_in_both_protocols() {
        let v4 = br#"0{"sid":"AbC-123","upgrades":["websocket"],"pingInterval":25000}"#;
        assert_eq!(session_id(v4).as_deref(), Some("AbC-123"));
        let v3 = br#"97:0{"sid":"xyz","upgrades":["websocket"],"pingTimeout":20000}2:40"#;
        assert_eq!(session_id(v3).as_deref(), Some("xyz"));
        assert_eq!(session_id(b"0{\"sid\":"), None);
        assert_eq!(session_id(b"garbage"), None);
    }
}
