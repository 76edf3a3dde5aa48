//! The real-node tier: the plugin inside a real regtest `lightningd`, driven over HTTP(S),
//! Socket.IO and SSE exactly as users do.
//!
//! Run with `LIGHTNINGD=/path/to/lightningd cargo test --test real_node` (plain `cargo test`
//! runs it too). Without `LIGHTNINGD` every test is reported as ignored ("needs LIGHTNINGD"),
//! never as passed: this target has its own harness (libtest-mimic) so it can decide at run
//! time.
//!
//! Each test starts its own node(s) in a temporary directory with free ports (`node.rs`), with
//! the project's fake Bitcoin backend in place of bitcoind. Modules, one area each:
//! `startup` (refusals, port in use, HTTPS certificates, shutdown), `runes` (what checkrune
//! decides, per route), `formats` (body and `Accept` formats), `notifications` (Socket.IO and
//! SSE), `register_path` (routes of another plugin), `fidelity` (the mock against the real
//! node, request by request).

mod node;
mod support;

mod connect;
mod fidelity;
mod formats;
mod hardening;
mod metrics;
mod notifications;
mod register_path;
mod runes;
mod startup;
mod tls;
mod webhooks;

use libtest_mimic::{Arguments, Completion, Trial};

/// A test: its name and its body (which panics to fail).
pub type Test = (&'static str, fn());

fn main() {
    let arguments = Arguments::from_args();
    let have_lightningd = node::lightningd_binary().is_some();
    let tests: Vec<Test> = [
        startup::TESTS,
        runes::TESTS,
        formats::TESTS,
        notifications::TESTS,
        register_path::TESTS,
        fidelity::TESTS,
        tls::TESTS,
        hardening::TESTS,
        metrics::TESTS,
        connect::TESTS,
        webhooks::TESTS,
    ]
    .concat();
    let trials = tests
        .into_iter()
        .map(|(name, body)| {
            Trial::ignorable_test(name, move || {
                if !have_lightningd {
                    return Ok(Completion::ignored_with(format!(
                        "needs {}",
                        node::LIGHTNINGD_VAR
                    )));
                }
                body();
                Ok(Completion::Completed)
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit();
}
