//! What the benchmark harnesses (`bench/rest/`, `bench/fanout/`, `bench/soak/`) share:
//! reading their command lines, reading the plugin's and the machine's figures from /proc,
//! formatting numbers for the reports, the verdict lines, waiting bounded for deliveries,
//! the pieces of a minimal Socket.IO client written by hand, and plugins under test inside a
//! real lightningd (`real_node`).
//!
//! Each bench includes this with `#[path = "../support/mod.rs"] mod support;`.

// Each bench is its own crate and uses only a subset of these helpers; what one of them does
// not use would otherwise be reported as dead code in that crate.
#![allow(dead_code)]

pub mod args;
pub mod format;
pub mod notification;
pub mod procfs;
pub mod real_node;
pub mod socketio_client;
pub mod verdict;
pub mod wait;
