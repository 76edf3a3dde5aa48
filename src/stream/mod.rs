//! Notifications on their way out to clients: the numbered, retained `journal` they are
//! written to, the `listeners` and their runes, and the two ways out, Socket.IO and Server-Sent
//! Events (`sse`). Socket.IO: `socketio` (socketioxide's server, the connect check and each
//! client's delivery task), `socketio_websocket` (our own endpoint for websockets opened
//! directly), `socketio_client` (a client of either), `socketio_relay` doing the writes,
//! `send_window` keeping each client's queue short and `socketio_sessions`, the middleware in
//! front, following engine.io sessions across connections.

pub(crate) mod journal;
pub(crate) mod listeners;
pub(crate) mod send_window;
pub(crate) mod socketio;
pub(crate) mod socketio_client;
pub(crate) mod socketio_relay;
pub(crate) mod socketio_sessions;
pub(crate) mod socketio_websocket;
pub(crate) mod sse;
