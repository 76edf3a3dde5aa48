//! Notifications on their way out to clients: the numbered, retained `journal` they are
//! written to, the `listeners` and their runes, and the two ways out, Socket.IO (`socketio`,
//! with `socketio_relay` doing the writes) and Server-Sent Events (`sse`).

pub(crate) mod journal;
pub(crate) mod listeners;
pub(crate) mod socketio;
pub(crate) mod socketio_relay;
pub(crate) mod sse;
