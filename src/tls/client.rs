//! The TLS client configuration of everything the plugin delivers to: webhook receivers
//! (`https://`, `crate::webhooks::client`) and the AMQP broker (`amqps://`,
//! `crate::broker::url`).
//! Both verify the server against the same roots, the system's CA certificates (on Debian,
//! the `ca-certificates` package's `/etc/ssl/certs/ca-certificates.crt`;
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` if set, as `rustls-native-certs` reads them), with TLS 1.2
//! and 1.3 on the ring provider, as the server uses, and no client certificate.

use std::sync::Arc;

/// The client configuration for `who` (a name for the log: `"webhook"`, `"AMQP broker"`).
/// The system's certificates are read each time: build it once per client.
pub fn config(who: &str) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(system_roots(who))
        .with_no_client_auth())
}

/// The CA certificates of the system; what cannot be read or parsed is logged.
pub fn system_roots(who: &str) -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in found.errors.iter().take(3) {
        tracing::warn!("{who} TLS client: reading the system's CA certificates: {error}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "{who} TLS client: no CA certificate found in the system's store (install \
             ca-certificates, or set SSL_CERT_FILE): TLS connections will fail"
        );
    } else if ignored > 0 {
        tracing::debug!("{who} TLS client: {added} CA certificates, {ignored} unparsable");
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SSL_CERT_FILE` names the system's store in place of the distribution's: its one CA is
    /// then the only root (not the webpki/Mozilla list).
    #[test]
    fn the_roots_are_the_system_store_that_ssl_cert_file_names() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, ca.pem()).unwrap();
        // The only test of this crate that sets them (the lib's tests share the process).
        let before: Vec<_> = ["SSL_CERT_DIR", "SSL_CERT_FILE"]
            .into_iter()
            .map(|name| (name, std::env::var_os(name)))
            .collect();
        std::env::remove_var("SSL_CERT_DIR");
        std::env::set_var("SSL_CERT_FILE", &file);
        let roots = system_roots("test");
        for (name, value) in before {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
        assert_eq!(roots.len(), 1);
        assert!(config("test").is_ok());
    }
}
