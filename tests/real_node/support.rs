//! What the real-node tests share on top of `node.rs`: a tokio runtime per test, HTTP clients
//! (plain, or trusting a node's generated CA), and reading answers as JSON.

#![allow(dead_code)]

pub use mock_lightningd::gateway::json_of;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Runs one async test body on a fresh runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// An HTTP client that gives up in 30 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client builds")
}

/// An HTTPS client that trusts only the CA in `ca_pem` (and verifies host names).
pub fn client_trusting(ca_pem: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).unwrap_or_else(|e| panic!("{}: {e}", ca_pem.display()));
    let ca = reqwest::Certificate::from_pem(&pem).expect("ca.pem is a PEM certificate");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client builds")
}
