//! TLS: the certificate directory (a CA plus server and client certificates, shared with
//! cln-grpc) and the rustls configuration the HTTPS server uses.

use std::path::Path;
use std::sync::Arc;

/// Why certificates could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Todo(String),
}

/// Loads the six certificate files from `dir`, generating a fresh consistent set first when
/// any is missing or empty, and returns the server configuration built from them.
pub fn load_or_generate(_dir: &Path, _host: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    todo!()
}
