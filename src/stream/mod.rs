//! Notifications on their way out to clients: the numbered, retained `journal` they are
//! written to, the `listeners` and their runes, and the two ways out, Socket.IO (`socketio`,
//! with `socketio_relay` doing the writes, `send_window` keeping each client's queue short
//! and `socketio_sessions` following engine.io sessions across connections) and Server-Sent
//! Events (`sse`).

pub(crate) mod journal;
pub(crate) mod listeners;
pub(crate) mod send_window;
pub(crate) mod socketio;
pub(crate) mod socketio_relay;
pub(crate) mod socketio_sessions;
pub(crate) mod sse;
