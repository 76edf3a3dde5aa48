//! clnrest: a Core Lightning plugin that serves lightningd's JSON-RPC over REST (HTTPS or
//! HTTP) and relays its notifications to Socket.IO clients.
//!
//! `main.rs` only wires these modules together; `docs/ARCHITECTURE.md` draws how they fit.

pub mod config;
pub mod connection_limit;
mod delegate;
pub mod dynamic_routes;
pub mod error;
pub mod first_bytes_deadline;
pub mod format;
pub mod journal;
pub mod logging;
pub mod memory;
pub mod notifications;
pub mod openapi;
pub mod plugin_methods;
pub mod routes;
pub mod rpc;
pub mod rune;
pub mod server;
pub mod socketio;
pub mod socketio_relay;
pub mod sse;
pub mod state;
pub mod subscribers;
pub mod tls;
