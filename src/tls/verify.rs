//! Reading certificates and checking them: every file parses, every key belongs to its
//! certificate, the CA can sign, the server and client certificates verify against `ca.pem`,
//! have time left and (the server's) carry the configured names; then the rustls
//! configuration the HTTPS server uses.

use super::*;
use rustls::crypto::hash::HashAlgorithm;
use rustls::server::ServerSessionMemoryCache;
use rustls::SupportedCipherSuite;
use std::collections::BTreeSet;
use std::time::SystemTime;

pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Whether `path` is a non-empty regular file. Missing or empty: `false`. A directory, a
/// dangling symbolic link or unreadable metadata is an error (nothing is ever written over
/// those).
pub(super) fn present(path: &Path) -> Result<bool, TlsError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(meta.len() > 0),
        Ok(_) => Err(TlsError::NotAFile {
            path: path.to_path_buf(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(TlsError::DanglingSymlink {
                    path: path.to_path_buf(),
                });
            }
            Ok(false)
        }
        Err(error) => Err(TlsError::Access {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// `<file> is missing` or `<file> is empty`.
fn missing_reason(path: &Path) -> String {
    if path.exists() {
        format!("{} is empty", path.display())
    } else {
        format!("{} is missing", path.display())
    }
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

pub(super) fn parse_certs(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let parse_error = |reason| TlsError::Parse {
        path: path.to_path_buf(),
        what: "PEM certificate",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(bytes)
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

#[cfg(test)]
pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(path, &read_file(path)?)
}

pub(super) fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|error| TlsError::Parse {
        path: path.to_path_buf(),
        what: "PEM private key",
        reason: pem_reason(error, "PRIVATE KEY"),
    })
}

#[cfg(test)]
pub(super) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_key(path, &read_file(path)?)
}

/// A certificate chain and its key, both parsed, the key checked against the first
/// certificate: what rustls serves.
pub(super) struct Pair {
    pub(super) certs: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
    pub(super) certified: CertifiedKey,
}

/// Parses a certificate chain and a private key (from the bytes of the files at these
/// paths) and checks that the key belongs to the first certificate.
pub(super) fn parse_pair(
    cert_path: &Path,
    cert_bytes: &[u8],
    key_path: &Path,
    key_bytes: &[u8],
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    let certs = parse_certs(cert_path, cert_bytes)?;
    let key = parse_key(key_path, key_bytes)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| TlsError::Parse {
            path: key_path.to_path_buf(),
            what: "private key",
            reason: error.to_string(),
        })?;
    let certified = CertifiedKey::new(certs.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: cert_path.to_path_buf(),
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
                path: cert_path.to_path_buf(),
                what: "certificate",
                reason,
            });
        }
    }
    Ok(Pair {
        certs,
        key,
        certified,
    })
}

/// Reads a certificate file and its key file and checks that the key belongs to the first
/// certificate.
pub(super) fn read_pair_at(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    let cert_bytes = read_file(cert_path)?;
    let key_bytes = read_file(key_path)?;
    parse_pair(cert_path, &cert_bytes, key_path, &key_bytes, provider)
}

pub(super) fn read_pair(
    dir: &Path,
    cert_name: &str,
    key_name: &str,
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    read_pair_at(&dir.join(cert_name), &dir.join(key_name), provider)
}

/// The trust store of the CA certificates in `ca` (read from `ca_path`).
pub(super) fn roots(
    ca_path: &Path,
    ca: &[CertificateDer<'static>],
) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert.clone()).map_err(|error| TlsError::Parse {
            path: ca_path.to_path_buf(),
            what: "CA certificate",
            reason: error.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

/// Whether a chain error is one we accept: a wrong name (checked separately) or a
/// certificate not valid yet (a clock that is behind must not cost a certificate).
fn tolerated(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// Checks that a server certificate chains to `roots`, is in its validity period and may
/// authenticate a server.
pub(super) fn verify_server_chain(
    roots: &Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|error| error.to_string())?;
    // Any name will do to check the chain: names are compared separately.
    let name = ServerName::DnsName(
        rustls::pki_types::DnsName::try_from("localhost").map_err(|e| e.to_string())?,
    );
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("no certificate".to_string());
    };
    match verifier.verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now()) {
        Ok(_) => Ok(()),
        Err(error) if tolerated(&error) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Checks that a client certificate chains to `roots`, is in its validity period and may
/// authenticate a client.
pub(super) fn verify_client_chain(
    roots: &Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|error| error.to_string())?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("no certificate".to_string());
    };
    match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
        Ok(_) => Ok(()),
        Err(error) if tolerated(&error) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Seconds since the epoch, now.
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// When a certificate expires: seconds since the epoch, and as text for logs.
pub(super) fn not_after(der: &[u8]) -> Result<(i64, String), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after;
    Ok((not_after.timestamp(), not_after.to_string()))
}

/// A CA on disk that can issue certificates.
pub(super) struct UsableCa {
    pub(super) certs: Vec<CertificateDer<'static>>,
    pub(super) issuer: Issuer<'static, KeyPair>,
}

/// What the CA files hold.
pub(super) enum CaCheck {
    /// Neither `ca.pem` nor `ca-key.pem` (or both empty).
    Missing,
    /// Present but unusable, for this reason (it names the file).
    Unusable(String),
    Usable(Box<UsableCa>),
}

/// Checks `ca.pem` and `ca-key.pem`: both present, parsing, the key that of the certificate,
/// a CA certificate (basic constraints) not expired, and a key rcgen can sign with. A CA
/// expiring within [`RENEW_BEFORE`] is usable, with a warning.
pub(super) fn check_ca(dir: &Path, provider: &CryptoProvider) -> Result<CaCheck, TlsError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    match (present(&cert_path)?, present(&key_path)?) {
        (false, false) => return Ok(CaCheck::Missing),
        (false, true) => return Ok(CaCheck::Unusable(missing_reason(&cert_path))),
        (true, false) => return Ok(CaCheck::Unusable(missing_reason(&key_path))),
        (true, true) => {}
    }
    let pair = match read_pair_at(&cert_path, &key_path, provider) {
        Ok(pair) => pair,
        Err(error @ (TlsError::Read { .. } | TlsError::Access { .. })) => return Err(error),
        Err(error) => return Ok(CaCheck::Unusable(error.to_string())),
    };
    let unusable = |reason: String| CaCheck::Unusable(format!("{} {reason}", cert_path.display()));
    let (_, x509) = match x509_parser::parse_x509_certificate(&pair.certs[0]) {
        Ok(parsed) => parsed,
        Err(error) => return Ok(unusable(format!("does not parse: {error}"))),
    };
    let is_ca = matches!(x509.basic_constraints(), Ok(Some(ext)) if ext.value.ca);
    if !is_ca {
        return Ok(unusable("is not a CA certificate".to_string()));
    }
    let expiry = x509.validity().not_after;
    let now = unix_now();
    if expiry.timestamp() <= now {
        return Ok(unusable(format!("expired on {expiry}")));
    }
    if expiry.timestamp() <= now + RENEW_BEFORE.as_secs() as i64 {
        tracing::warn!(
            "{} expires on {expiry}; it is kept because clients trust it: delete {CA_CERT} and \
             {CA_KEY} to have a new CA made at the next start",
            cert_path.display()
        );
    }
    let key = match KeyPair::try_from(&pair.key) {
        Ok(key) => key,
        Err(error) => {
            return Ok(CaCheck::Unusable(format!(
                "{} cannot sign certificates: {error}",
                key_path.display()
            )))
        }
    };
    match Issuer::from_ca_cert_der(&pair.certs[0], key) {
        Ok(issuer) => Ok(CaCheck::Usable(Box::new(UsableCa {
            certs: pair.certs,
            issuer,
        }))),
        Err(error) => Ok(unusable(format!("cannot issue certificates: {error}"))),
    }
}

/// Why a leaf certificate is re-issued: `routine` reasons (missing, names changed, expiring)
/// are logged at info level, the others (invalid, another CA, expired) as warnings.
pub(super) struct Reissue {
    pub(super) reason: String,
    pub(super) routine: bool,
}

/// Checks a leaf certificate of the directory against the CA: `None` when it can stay,
/// otherwise why it must be re-issued. `names`: what the server certificate must name.
pub(super) fn check_leaf(
    dir: &Path,
    leaf: Leaf,
    ca_roots: &Arc<RootCertStore>,
    names: &BTreeSet<TlsName>,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Reissue>, TlsError> {
    let cert_path = dir.join(leaf.cert_file());
    let key_path = dir.join(leaf.key_file());
    let routine = |reason| {
        Ok(Some(Reissue {
            reason,
            routine: true,
        }))
    };
    let invalid = |reason| {
        Ok(Some(Reissue {
            reason,
            routine: false,
        }))
    };
    for path in [&cert_path, &key_path] {
        if !present(path)? {
            return routine(missing_reason(path));
        }
    }
    let pair = match read_pair_at(&cert_path, &key_path, provider) {
        Ok(pair) => pair,
        Err(error @ (TlsError::Read { .. } | TlsError::Access { .. })) => return Err(error),
        Err(error) => return invalid(error.to_string()),
    };
    let verified = match leaf {
        Leaf::Server => verify_server_chain(ca_roots, &pair.certs, provider),
        Leaf::Client => verify_client_chain(ca_roots, &pair.certs, provider),
    };
    if let Err(reason) = verified {
        return invalid(format!(
            "{} does not verify against {}: {reason}",
            cert_path.display(),
            dir.join(CA_CERT).display()
        ));
    }
    match not_after(&pair.certs[0]) {
        Err(reason) => return invalid(format!("{} does not parse: {reason}", cert_path.display())),
        Ok((expiry, text)) if expiry <= unix_now() + RENEW_BEFORE.as_secs() as i64 => {
            return routine(format!(
                "{} expires on {text}, within {} days",
                cert_path.display(),
                RENEW_BEFORE.as_secs() / 86400
            ))
        }
        Ok(_) => {}
    }
    if leaf == Leaf::Server {
        let found = names_in_cert(&pair.certs[0])
            .map_err(|reason| format!("{} does not parse: {reason}", cert_path.display()));
        match found {
            Err(reason) => return invalid(reason),
            Ok(found) if found != *names => {
                return routine(format!(
                    "{} names {}, the configuration {}",
                    cert_path.display(),
                    list(&found),
                    list(names)
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(None)
}

/// The directory's certificates as the server uses them.
pub(super) struct LoadedSet {
    pub(super) ca: Vec<CertificateDer<'static>>,
    pub(super) server: Vec<CertificateDer<'static>>,
    pub(super) server_key: PrivateKeyDer<'static>,
}

/// Reads and checks the six files. `generated` says whether we just wrote some of them, in
/// which case certificates that do not verify against the CA mean someone else wrote in
/// between (an error); otherwise (a read-only directory we did not touch) they are only
/// warned about.
pub(super) fn load_set_checked(dir: &Path, generated: bool) -> Result<LoadedSet, TlsError> {
    let provider = provider();
    let ca = read_pair(dir, CA_CERT, CA_KEY, &provider)?.certs;
    let server = read_pair(dir, SERVER_CERT, SERVER_KEY, &provider)?;
    let client = read_pair(dir, CLIENT_CERT, CLIENT_KEY, &provider)?.certs;

    let roots = roots(&dir.join(CA_CERT), &ca)?;
    let failure = verify_server_chain(&roots, &server.certs, &provider)
        .map_err(|reason| (dir.join(SERVER_CERT), reason))
        .and_then(|()| {
            verify_client_chain(&roots, &client, &provider)
                .map_err(|reason| (dir.join(CLIENT_CERT), reason))
        });
    if let Err((path, reason)) = failure {
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
    Ok(LoadedSet {
        ca,
        server: server.certs,
        server_key: server.key,
    })
}

/// Most TLS 1.2 sessions kept for resumption by session id (rustls's default is 256); TLS
/// 1.3 and TLS 1.2 clients that take tickets need no server state.
const SESSION_CACHE: usize = 1024;

/// The crypto provider the server negotiates with: ring's, with the cipher suites hashed with
/// SHA-256 before those hashed with SHA-384. The handshake's transcript hash and key schedule
/// use the suite's hash; SHA-256 has CPU instructions (SHA-NI) on current x86 and ARM, SHA-384
/// does not: on the bench machine SHA-384 was ~6% of the plugin's CPU per new HTTPS
/// connection. AES-128-GCM is what TLS 1.3 mandates every client to support.
fn server_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: otherwise ring's order (AES-GCM, then ChaCha20-Poly1305).
    provider
        .cipher_suites
        .sort_by_key(|suite| suite_hash(suite) == HashAlgorithm::SHA384);
    Arc::new(provider)
}

fn suite_hash(suite: &SupportedCipherSuite) -> HashAlgorithm {
    match suite {
        SupportedCipherSuite::Tls13(suite) => suite.common.hash_provider.algorithm(),
        SupportedCipherSuite::Tls12(suite) => suite.common.hash_provider.algorithm(),
    }
}

/// The rustls server configuration: TLS 1.3 and 1.2, ALPN h2 and http/1.1, the directory's
/// server certificate or `own` (the operator's, swapped on reload), and client certificates
/// verified against the directory's CA as `client_auth` says.
///
/// A new connection's handshake is most of what it costs the plugin (docs/performance.md):
/// our cipher suite order wins over the client's (see [`server_provider`]); key exchange
/// X25519 first (ring's order, the share clients send first); resumption by stateless tickets
/// (ring's `Ticketer`, keys rotated every 6 hours) for TLS 1.3 and 1.2 clients, so any number
/// of clients can resume without the server keeping their sessions, and skip the certificate
/// signature; one TLS 1.3 ticket per handshake (a client that resumes needs one per
/// connection; clients that never resume, like curl's command line, waste less).
pub(super) fn build_config(
    dir: &Path,
    set: LoadedSet,
    own: Option<Arc<OwnCertResolver>>,
    client_auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = server_provider();
    let server_path = dir.join(SERVER_CERT);
    let ca_path = dir.join(CA_CERT);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Config {
            path: server_path.clone(),
            error,
        })?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(roots(&ca_path, &set.ca)?, provider);
            if client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|error| TlsError::Parse {
                path: ca_path.clone(),
                what: "CA certificate",
                reason: error.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = match own {
        Some(resolver) => builder.with_cert_resolver(resolver),
        None => builder
            .with_single_cert(set.server, set.server_key)
            .map_err(|error| TlsError::Config {
                path: server_path,
                error,
            })?,
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|error| TlsError::Config {
        path: dir.join(SERVER_CERT),
        error,
    })?;
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// [`load_set_checked`] then [`build_config`] with the directory's server certificate and
/// no client certificates.
#[cfg(test)]
pub(super) fn load_set(dir: &Path, generated: bool) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    build_config(
        dir,
        load_set_checked(dir, generated)?,
        None,
        ClientAuth::None,
    )
}
