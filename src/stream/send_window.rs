//! How far ahead of its connection a Socket.IO client's send queue may be filled: the
//! [`Window`] of bytes queued for a client and not yet taken by its client, and the
//! [`PollingSessions`] that say what a long-polling session has taken and which connection it
//! moved to when it upgraded to a websocket.
//!
//! A websocket client's window is known from its first request, the upgrade on its own
//! connection (`http::connection_limit` counts the bytes written to each connection). Most
//! clients (socket.io-client's and python-socketio's default) start with long-polling and
//! upgrade a moment later, on another connection; some stay on long-polling. The handshake's
//! response names the engine.io session (`sid`) and every later request names it again, so
//! the middleware in `socketio_sessions.rs` adds up the bodies of the session's poll
//! responses and records the connection its upgrade arrives on: the window of the session's
//! client counts what it polled, then what its websocket's connection takes. Only a session
//! the middleware did not see open (none today) has no window; it is bounded by its send
//! queue's length alone.

use crate::http::connection_limit::Connection;
use socketioxide::extract::SocketRef;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// How far the relay fills a websocket client's send queue ahead of what its connection has
/// taken, in bytes.
pub const WINDOW_BYTES: u64 = 128 * 1024;

/// What a client has not yet taken from its send queue, as far as the relay can tell: the
/// bytes put in the queue minus the bytes its carrier took since.
pub struct Window {
    carrier: Carrier,
    /// What the carrier had taken when last looked at.
    written_seen: u64,
    /// Bytes put in the queue and not written yet (an estimate from above: the framing
    /// around each message, pings and other packets also count as written).
    in_flight: u64,
}

/// What takes a client's messages, as far as it is known.
enum Carrier {
    Websocket(Connection),
    /// A long-polling session: its poll responses, until it upgrades.
    Polling(PollingSession),
    /// A session the middleware did not see open.
    Unknown,
}

impl Window {
    /// The window of a client: known when the session was opened as a websocket (its
    /// request is the upgrade on its own connection), followed when it began with
    /// long-polling.
    pub fn of(socket: &SocketRef) -> Window {
        let parts = socket.req_parts();
        let websocket = parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "transport=websocket"));
        let carrier = match parts.extensions.get::<Connection>() {
            Some(connection) if websocket => Carrier::Websocket(connection.clone()),
            _ => match parts.extensions.get::<PollingSession>() {
                Some(session) => Carrier::Polling(session.clone()),
                None => Carrier::Unknown,
            },
        };
        let mut window = Window {
            carrier,
            written_seen: 0,
            in_flight: 0,
        };
        window.written_seen = window.taken().unwrap_or(0);
        window
    }

    /// What the client's carrier has taken so far: the bytes written to its websocket's
    /// connection, or the bodies of its poll responses until it upgrades. An upgrade starts
    /// the count afresh from that connection's; what was queued and not polled then goes out
    /// on the websocket and still counts as in flight.
    fn taken(&mut self) -> Option<u64> {
        match &self.carrier {
            Carrier::Websocket(connection) => Some(connection.written()),
            Carrier::Polling(session) => match session.0.upgraded.get() {
                Some(connection) => {
                    let connection = connection.clone();
                    self.written_seen = connection.written();
                    self.carrier = Carrier::Websocket(connection);
                    Some(self.written_seen)
                }
                None => Some(session.0.polled.load(Ordering::Relaxed)),
            },
            Carrier::Unknown => None,
        }
    }

    /// The window of a client whose websocket is on `connection` from its first request
    /// (our own endpoint's clients).
    pub fn on_connection(connection: Connection) -> Window {
        let written_seen = connection.written();
        Window {
            carrier: Carrier::Websocket(connection),
            written_seen,
            in_flight: 0,
        }
    }

    /// Whether the relay may put more in the queue now.
    pub fn has_room(&mut self) -> bool {
        let Some(taken) = self.taken() else {
            return true;
        };
        self.in_flight = self
            .in_flight
            .saturating_sub(taken.wrapping_sub(self.written_seen));
        self.written_seen = taken;
        self.in_flight < WINDOW_BYTES
    }

    /// `bytes` were put in the queue.
    pub fn sent(&mut self, bytes: usize) {
        if !matches!(self.carrier, Carrier::Unknown) {
            self.in_flight += bytes as u64;
        }
    }

    /// What was put in the queue and not written yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }
}

/// The connection carrying `socket`'s websocket: its own, or the one its long-polling
/// session upgraded to; `None` while it polls.
pub fn websocket_connection(socket: &SocketRef) -> Option<Connection> {
    match Window::of(socket).carrier {
        Carrier::Websocket(connection) => Some(connection),
        Carrier::Polling(_) | Carrier::Unknown => None,
    }
}

/// A long-polling session as the middleware sees it: the bytes of its poll responses and the
/// connection it upgraded to (an extension of the session's handshake request, which
/// engine.io keeps with the session).
#[derive(Clone, Default)]
pub struct PollingSession(Arc<SessionTraffic>);

#[derive(Default)]
struct SessionTraffic {
    polled: AtomicU64,
    upgraded: OnceLock<Connection>,
}

/// Long-polling sessions by engine.io session id.
#[derive(Clone, Default)]
pub struct PollingSessions(Arc<Mutex<Sessions>>);

#[derive(Default)]
struct Sessions {
    by_sid: HashMap<String, Weak<SessionTraffic>>,
    /// Ended sessions are swept out when the map reaches this size.
    sweep_at: usize,
}

/// Sessions are swept no more often than every this many new ones.
const SWEEP_MIN: usize = 1024;

impl PollingSessions {
    /// Remembers a new polling session under its engine.io `sid`.
    pub fn opened(&self, sid: String, session: &PollingSession) {
        let Ok(mut sessions) = self.0.lock() else {
            return;
        };
        if sessions.by_sid.len() >= sessions.sweep_at {
            sessions
                .by_sid
                .retain(|_, traffic| traffic.strong_count() > 0);
            sessions.sweep_at = (sessions.by_sid.len() * 2).max(SWEEP_MIN);
        }
        sessions.by_sid.insert(sid, Arc::downgrade(&session.0));
    }

    /// The session `sid` took `bytes` in a poll response.
    pub fn polled(&self, sid: &str, bytes: u64) {
        if let Some(traffic) = self.find(sid) {
            traffic.polled.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The session `sid` upgraded to a websocket on `connection`.
    pub fn upgraded(&self, sid: &str, connection: &Connection) {
        if let Some(traffic) = self.find(sid) {
            let _ = traffic.upgraded.set(connection.clone());
        }
    }

    fn find(&self, sid: &str) -> Option<Arc<SessionTraffic>> {
        self.0.lock().ok()?.by_sid.get(sid)?.upgrade()
    }

    /// How many sessions are remembered (ended ones included until the next sweep).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|s| s.by_sid.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_sessions_are_swept() {
        let sessions = PollingSessions::default();
        let live = PollingSession::default();
        sessions.opened("live".into(), &live);
        for i in 0..3 * SWEEP_MIN {
            sessions.opened(format!("gone{i}"), &PollingSession::default());
        }
        assert!(sessions.len() <= SWEEP_MIN + 1, "{}", sessions.len());
        sessions.polled("live", 10);
        sessions.polled("gone1", 10);
        assert_eq!(live.0.polled.load(Ordering::Relaxed), 10);
    }
}
