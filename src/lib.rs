//! clnrest: a Core Lightning plugin that serves lightningd's JSON-RPC over REST (HTTPS or
//! HTTP) and relays its notifications to Socket.IO and Server-Sent Events clients.
//!
//! # Layout
//!
//! - `main.rs` only wires the pieces below together.
//! - [`config`]: the `clnrest-*` options, validated once at `init`.
//! - [`http`]: the server, the route handlers, routes other plugins register, OpenAPI and
//!   Swagger UI, connection guards. A request goes `http::server` → `http::handlers` →
//!   [`lightningd::rune`] (checkrune) → [`lightningd::rpc`] (the method) →
//!   [`format`](mod@format) (the answer in the format asked for); every failure becomes a
//!   status in [`error`].
//! - [`format`](mod@format): request bodies in and responses out (JSON, YAML, XML, form).
//! - [`lightningd`]: the RPC client, rune checks, the plugin's own RPC methods, incoming
//!   notifications, the plugin's stdout and logs.
//! - [`stream`]: a notification goes `lightningd::notifications` → [`stream::journal`]
//!   (numbered, retained) → each listener's subscription → `stream::socketio` /
//!   `stream::sse`.
//! - [`tls`]: the certificate directory (load, generate, write atomically) and rustls.
//! - [`state`]: what the handlers, the plugin methods and the notification handler share.
//! - [`memory`]: keeping the heap small on glibc.
//! - `metrics`: what `GET /metrics` reports (Prometheus text format), recorded cheaply as
//!   requests and calls happen.
//! - [`webhooks`]: signed deliveries of notifications to HTTP endpoints, read from the
//!   journal like any other listener.
//! - [`broker`]: notifications published to an AMQP broker (RabbitMQ), read from the
//!   journal the same way.
//!
//! `docs/ARCHITECTURE.md` draws the same with the path of a request and of a notification.
//!
//! Public are only the modules `main.rs`, the tests, the benches and the fuzz targets use; the
//! handlers, the error mapping, the streams and the webhook internals are `pub(crate)`. The
//! module docs link to those too: read them with `cargo doc --document-private-items`.

#![allow(rustdoc::private_intra_doc_links)]

pub mod broker;
pub mod config;
pub(crate) mod error;
pub mod format;
pub mod http;
pub mod lightningd;
pub mod memory;
pub(crate) mod metrics;
pub mod state;
pub mod stream;
pub mod tls;
pub mod webhooks;
