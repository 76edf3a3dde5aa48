//! Reading the set back and checking it: every file parses, every key belongs to its
//! certificate, the server and client certificates verify against `ca.pem`; then the rustls
//! configuration the HTTPS server uses.

use super::*;

pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// A human reason for a PEM parse failure (the library's own shows raw byte arrays).
pub(super) fn pem_reason(error: pem::Error, section: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("no \"{section}\" PEM block found"),
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a PEM block has no \"-----END {}-----\" line",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed PEM line {:?}", String::from_utf8_lossy(&line))
        }
        pem::Error::Base64Decode(error) => format!("bad base64 in the PEM block: {error}"),
        other => other.to_string(),
    }
}

pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    let parse_error = |reason| TlsError::Parse {
        path: path.to_path_buf(),
        what: "PEM certificate",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| parse_error(pem_reason(error, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(parse_error(pem_reason(
            pem::Error::NoItemsFound,
            "CERTIFICATE",
        )));
    }
    Ok(certs)
}

pub(super) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| TlsError::Parse {
        path: path.to_path_buf(),
        what: "PEM private key",
        reason: pem_reason(error, "PRIVATE KEY"),
    })
}

/// Reads a certificate file and its key file and checks that the key belongs to the first
/// certificate.
pub(super) fn read_pair(
    dir: &Path,
    cert_name: &str,
    key_name: &str,
    provider: &CryptoProvider,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_path = dir.join(cert_name);
    let key_path = dir.join(key_name);
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| TlsError::Parse {
            path: key_path.clone(),
            what: "private key",
            reason: error.to_string(),
        })?;
    match CertifiedKey::new(certs.clone(), signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            })
        }
        Err(error) => {
            let reason = match error {
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
                    "its PEM block does not hold an X.509 certificate".to_string()
                }
                other => other.to_string(),
            };
            return Err(TlsError::Parse {
                path: cert_path,
                what: "certificate",
                reason,
            });
        }
    }
    Ok((certs, key))
}

/// Checks that the server and client certificates chain to the CA certificates; returns the
/// first failure as (file, reason).
pub(super) fn check_chains(
    dir: &Path,
    ca: &[CertificateDer<'static>],
    server: &[CertificateDer<'static>],
    client: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<Result<(), (PathBuf, String)>, TlsError> {
    let ca_path = dir.join(CA_CERT);
    let ca_error = |reason: String| TlsError::Parse {
        path: ca_path.clone(),
        what: "CA certificate",
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots
            .add(cert.clone())
            .map_err(|error| ca_error(error.to_string()))?;
    }
    let roots = Arc::new(roots);
    let now = UnixTime::now();

    // Any name will do to check the chain: a name mismatch is reported separately from
    // chain failures. Our certificates always carry `localhost`.
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|error| ca_error(error.to_string()))?;
    let name = ServerName::DnsName(
        rustls::pki_types::DnsName::try_from("localhost")
            .map_err(|error| ca_error(error.to_string()))?,
    );
    if let Some((leaf, intermediates)) = server.split_first() {
        match server_verifier.verify_server_cert(leaf, intermediates, &name, &[], now) {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(error) => return Ok(Err((dir.join(SERVER_CERT), error.to_string()))),
        }
    }

    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|error| ca_error(error.to_string()))?;
    if let Some((leaf, intermediates)) = client.split_first() {
        if let Err(error) = client_verifier.verify_client_cert(leaf, intermediates, now) {
            return Ok(Err((dir.join(CLIENT_CERT), error.to_string())));
        }
    }
    Ok(Ok(()))
}

/// Reads and checks the six files and builds the server configuration. `generated` says
/// whether we just wrote them, in which case certificates that do not verify against the CA
/// mean someone else wrote in between (an error); otherwise they are only warned about.
pub(super) fn load_set(dir: &Path, generated: bool) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (ca, _) = read_pair(dir, CA_CERT, CA_KEY, &provider)?;
    let (server, server_key) = read_pair(dir, SERVER_CERT, SERVER_KEY, &provider)?;
    let (client, _) = read_pair(dir, CLIENT_CERT, CLIENT_KEY, &provider)?;

    if let Err((path, reason)) = check_chains(dir, &ca, &server, &client, &provider)? {
        if generated {
            return Err(TlsError::Inconsistent {
                path,
                ca: dir.join(CA_CERT),
                reason,
            });
        }
        tracing::warn!(
            "{} does not verify against {}: {reason}; clients that trust {} will refuse it",
            path.display(),
            dir.join(CA_CERT).display(),
            CA_CERT
        );
    }

    let server_path = dir.join(SERVER_CERT);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Config {
            path: server_path.clone(),
            error,
        })?
        .with_no_client_auth()
        .with_single_cert(server, server_key)
        .map_err(|error| TlsError::Config {
            path: server_path,
            error,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
