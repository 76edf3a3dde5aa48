//! TLS for the tests' own clients: a rustls client configuration trusting only the plugin's
//! `ca.pem`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// A rustls client configuration (ring, TLS 1.2 and 1.3) trusting only the certificates in
/// `ca_pem`; panics if it holds none that parse.
pub fn trusting(ca_pem: &[u8]) -> rustls::ClientConfig {
    trusting_with(ca_pem, rustls::DEFAULT_VERSIONS)
}

/// [`trusting`], offering only the TLS `versions` given.
pub fn trusting_with(
    ca_pem: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.expect("ca.pem holds a certificate"))
            .expect("the CA certificate is usable");
    }
    assert!(!roots.is_empty(), "ca.pem holds no certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
