//! How far ahead of its connection a Socket.IO client's send queue may be filled: the
//! [`Window`] of bytes queued for a client and not yet written to its TCP connection, and
//! the [`Upgrades`] that tell a session begun with long-polling which connection it moved
//! to when it upgraded to a websocket.
//!
//! A websocket client's window is known from its first request, the upgrade on its own
//! connection (`http::connection_limit` counts the bytes written to each connection). Most
//! clients (socket.io-client's and python-socketio's default) start with long-polling and
//! upgrade a moment later, on another connection: the handshake's response names the
//! engine.io session (`sid`), the upgrade request names it again, so the middleware in
//! `socketio_sessions.rs` records the upgrade's connection under that `sid` and the window of
//! the session's client picks it up. Until then (and for a client that keeps polling) the
//! window is unknown and always has room; such a client is bounded by its send queue's
//! length alone.

use crate::http::connection_limit::Connection;
use socketioxide::extract::SocketRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// How far the relay fills a websocket client's send queue ahead of what its connection has
/// taken, in bytes.
pub const WINDOW_BYTES: u64 = 128 * 1024;

/// What a client's connection has taken from its send queue, as far as the relay can tell:
/// the bytes put in the queue minus the bytes written to its connection since.
pub struct Window {
    connection: Carrier,
    /// `connection.written()` when last looked at.
    written_seen: u64,
    /// Bytes put in the queue and not written yet (an estimate from above: the framing
    /// around each message, pings and other packets also count as written).
    in_flight: u64,
}

/// The connection that carries a client's websocket, as far as it is known.
enum Carrier {
    Websocket(Connection),
    /// A long-polling session: the connection it upgrades to, once it does.
    Polling(UpgradedTo),
    /// A long-polling session that cannot be followed (no handshake seen by the middleware).
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
        let connection = match parts.extensions.get::<Connection>() {
            Some(connection) if websocket => Carrier::Websocket(connection.clone()),
            _ => match parts.extensions.get::<UpgradedTo>() {
                Some(upgrade) => Carrier::Polling(upgrade.clone()),
                None => Carrier::Unknown,
            },
        };
        let mut window = Window {
            connection,
            written_seen: 0,
            in_flight: 0,
        };
        window.follow_upgrade();
        window
    }

    /// Starts counting on the websocket's connection once a polling session upgraded. What
    /// was queued before (sent at once, as to a polling client) is not counted.
    fn follow_upgrade(&mut self) {
        if let Carrier::Polling(upgrade) = &self.connection {
            if let Some(connection) = upgrade.0.get() {
                self.written_seen = connection.written();
                self.connection = Carrier::Websocket(connection.clone());
            }
        }
    }

    /// Whether the relay may put more in the queue now.
    pub fn has_room(&mut self) -> bool {
        self.follow_upgrade();
        let Carrier::Websocket(connection) = &self.connection else {
            return true;
        };
        let written = connection.written();
        self.in_flight = self
            .in_flight
            .saturating_sub(written.wrapping_sub(self.written_seen));
        self.written_seen = written;
        self.in_flight < WINDOW_BYTES
    }

    /// `bytes` were put in the queue.
    pub fn sent(&mut self, bytes: usize) {
        if let Carrier::Websocket(_) = self.connection {
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
    match Window::of(socket).connection {
        Carrier::Websocket(connection) => Some(connection),
        Carrier::Polling(_) | Carrier::Unknown => None,
    }
}

/// The connection a long-polling session upgraded to, set by its upgrade request (an
/// extension of the session's handshake request, which engine.io keeps with the session).
#[derive(Clone, Default)]
pub struct UpgradedTo(Arc<OnceLock<Connection>>);

/// Long-polling sessions that may still upgrade, by engine.io session id.
#[derive(Clone, Default)]
pub struct Upgrades(Arc<Mutex<Sessions>>);

#[derive(Default)]
struct Sessions {
    by_sid: HashMap<String, Weak<OnceLock<Connection>>>,
    /// Ended sessions are swept out when the map reaches this size.
    sweep_at: usize,
}

/// Sessions are swept no more often than every this many new ones.
const SWEEP_MIN: usize = 1024;

impl Upgrades {
    /// Remembers a new polling session under its engine.io `sid`.
    pub fn opened(&self, sid: String, upgrade: &UpgradedTo) {
        let Ok(mut sessions) = self.0.lock() else {
            return;
        };
        if sessions.by_sid.len() >= sessions.sweep_at {
            sessions.by_sid.retain(|_, cell| cell.strong_count() > 0);
            sessions.sweep_at = (sessions.by_sid.len() * 2).max(SWEEP_MIN);
        }
        sessions.by_sid.insert(sid, Arc::downgrade(&upgrade.0));
    }

    /// The session `sid` upgraded to a websocket on `connection`.
    pub fn upgraded(&self, sid: &str, connection: &Connection) {
        let cell = self
            .0
            .lock()
            .ok()
            .and_then(|mut sessions| sessions.by_sid.remove(sid))
            .and_then(|cell| cell.upgrade());
        if let Some(cell) = cell {
            let _ = cell.set(connection.clone());
        }
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
        let upgrades = Upgrades::default();
        let live = UpgradedTo::default();
        upgrades.opened("live".into(), &live);
        for i in 0..3 * SWEEP_MIN {
            upgrades.opened(format!("gone{i}"), &UpgradedTo::default());
        }
        assert!(upgrades.len() <= SWEEP_MIN + 1, "{}", upgrades.len());
        assert!(upgrades
            .0
            .lock()
            .expect("not poisoned")
            .by_sid
            .contains_key("live"));
    }
}
