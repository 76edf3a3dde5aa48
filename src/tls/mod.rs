//! TLS: the certificate directory (a CA plus server and client certificates, shared with
//! cln-grpc), the operator's own certificate if configured, and the rustls configuration the
//! HTTPS server uses; and, in `client.rs`, the one our own clients (webhooks, the AMQP
//! broker) use.
//!
//! This module decides what to do with the directory ([`prepare`]); the steps live beside
//! it: `names.rs` (the server certificate's names), `generate.rs` (a CA, certificates issued
//! by it), `files.rs` (atomic writes), `lock.rs` (the lock across processes), `verify.rs`
//! (reading and checking certificates, the rustls config) and `reload.rs` (the operator's
//! certificate, re-read when it changes).
//!
//! # The directory
//!
//! `dir` holds six PEM files, named and laid out as Core Lightning's cln-grpc plugin does so
//! that both plugins share one CA: `ca.pem`/`ca-key.pem` (self-signed "cln Root CA"),
//! `server.pem`/`server-key.pem` ("cln rest server", signed by the CA) and
//! `client.pem`/`client-key.pem` ("cln rest client", name `cln`, signed by the CA). Keys we
//! make are ECDSA P-256 in PKCS#8. At every start, under the lock, each pair is checked and
//! only what is not usable is replaced; clients trusting `ca.pem` keep working as long as the
//! CA is kept, whatever happens to the other four files.
//!
//! * **The CA is kept** when `ca.pem` and `ca-key.pem` both parse, the key is the
//!   certificate's, the certificate is a CA (basic constraints) that has not expired, and rcgen
//!   can sign with the key. Such a CA is never rewritten; one expiring within [`RENEW_BEFORE`]
//!   is kept with a warning (replacing it would cut off every client that trusts it; deleting
//!   the two files makes a new one at the next start).
//! * **A new CA** is made when both CA files are missing or empty (logged at info level, with
//!   the server and client certificates: a first start), or when the CA is unusable: one of
//!   the two files missing or empty, a file that does not parse, a key of another certificate,
//!   not a CA, expired. That is logged as a warning with the reason, and the server and client
//!   certificates are then re-issued from the new CA whatever their state (even a valid
//!   `server.pem`: it was signed by the old CA, so it would not verify against the new
//!   `ca.pem`). Clients have to trust the new `ca.pem`.
//! * **A leaf** (`server.pem`, `client.pem`, each with its key) is re-issued from the CA, and
//!   its two files replaced, when either file is missing or empty, does not parse, the key is
//!   not the certificate's, the certificate does not verify against `ca.pem` (another CA, a
//!   wrong key usage, expired), or it expires within [`RENEW_BEFORE`]; and the server
//!   certificate also when the set of its names (IP and DNS subject alternative names) differs
//!   from the configured set, [`server_names`]: `cln`, `localhost`, `clnrest-host` and every
//!   `clnrest-tls-extra-name` (DNS names compared case-insensitively; order and repeats do
//!   not matter). Each re-issue is logged with its reason: at info level when a file was
//!   missing, the names changed or the certificate was expiring; as a warning when it was
//!   invalid. A certificate that is not valid yet is not replaced for that (a clock that is
//!   behind must not cost certificates). An operator who wants to serve a certificate of
//!   another CA configures `clnrest-tls-cert`/`clnrest-tls-key` rather than writing over
//!   `server.pem`, which would be replaced.
//! * A certificate path that is a directory, a dangling symbolic link, or a file whose
//!   metadata or contents cannot be read (permissions) is an error naming it: nothing is
//!   written over those.
//! * A read-only directory (the lock file cannot be created) is used as it is, never written:
//!   all six files must exist and parse and every key match its certificate, or it is an
//!   error naming the file; certificates that do not verify against `ca.pem` or whose names
//!   differ from the configuration are only warned about.
//!
//! # Concurrency
//!
//! Check-and-write (and the read of the files that follows) runs under an exclusive advisory
//! lock (`flock` through [`File::lock`]) on `<dir>/.clnrest-certs.lock`; the lock file is never
//! deleted. Under the lock the directory is inspected, so of several clnrest processes (or
//! threads) starting at once exactly one writes and the others find its files usable. Nobody
//! waits for a fixed time. Only files that change are written: each to a temporary file in the
//! same directory (keys created with mode 0600 before any secret byte is written), fsynced,
//! then renamed into place (each key before its certificate), and finally the directory is
//! fsynced. A crash part-way leaves at worst a key that does not match its certificate, which
//! the next start finds unusable and replaces. Temporary files left by a crashed process are
//! removed by the next lock holder. After writing, the set is read back from disk and verified
//! (every key matches its certificate, server and client certificates verify against
//! `ca.pem`), so what we serve is what is on disk.
//!
//! # What cannot be guaranteed against cln-grpc
//!
//! cln-grpc does not take our lock: it checks each file on its own and writes missing ones in
//! place (truncate, then write). What we do guarantee: it never reads a half-written file of
//! ours (renames are atomic), and a set we just wrote is verified before we use it. What we
//! cannot: if cln-grpc decides a file is missing before our renames and writes it after them,
//! its file replaces ours and the directory can end with a mix of the two generations (for
//! instance a `server.pem` signed by a CA key that is no longer in `ca-key.pem`). If that
//! happens while we hold the lock, our read-back check fails with an error that says so; if it
//! happens after we have loaded, we serve a consistent certificate, and the next start
//! re-issues what no longer verifies. Likewise we may read a file cln-grpc is still writing
//! (and, finding it unusable, replace it). When we re-issue a leaf, cln-grpc starting at that
//! moment may read the new key with the old certificate. The window is a few milliseconds at
//! a start that writes (upstream clnrest sleeps about 5 s to avoid it; we do not).
//!
//! # The operator's certificate
//!
//! With `clnrest-tls-cert` and `clnrest-tls-key` ([`OwnCert`]: a PEM chain, leaf first, and
//! its key, e.g. certbot's `fullchain.pem` and `privkey.pem`) that certificate is served
//! instead of `server.pem`. It must parse and match its key at start, or the plugin does not
//! start. The directory is still prepared as above: its CA verifies client certificates, and
//! `client.pem` is what wallets present. The two files are read again every
//! [`OWN_CERT_RELOAD_INTERVAL`] ([`RELOAD_INTERVAL_VAR`] shortens it, for tests); when their
//! contents changed and they parse and match, new handshakes get the new certificate; when
//! they do not, the certificate in use stays and a warning says why (once per change).
//!
//! # Client certificates
//!
//! [`ClientAuth`] (`clnrest-tls-client-auth`): `none` asks for none; `optional` asks, and a
//! client may send none, but one it sends must verify against `ca.pem`; `required` refuses the
//! handshake of a client without a certificate signed by `ca.pem` (`client.pem` is one). Runes
//! are checked on every request all the same.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) mod client;
mod files;
mod generate;
mod lock;
mod names;
mod reload;
mod verify;

use files::*;
use generate::*;
use lock::*;
use names::*;
use verify::*;

pub use names::{server_names, TlsName};
use reload::{load_own_cert, OwnCertResolver};
pub use reload::{OwnCert, OwnCertReloader, OWN_CERT_RELOAD_INTERVAL, RELOAD_INTERVAL_VAR};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, InconsistentKeys, RootCertStore};

/// The CA certificate.
pub const CA_CERT: &str = "ca.pem";
/// The CA private key.
pub const CA_KEY: &str = "ca-key.pem";
/// The server certificate, the one the HTTPS server presents.
pub const SERVER_CERT: &str = "server.pem";
/// The server private key.
pub const SERVER_KEY: &str = "server-key.pem";
/// The client certificate (for clients of cln-grpc, and of clnrest with client
/// certificates).
pub const CLIENT_CERT: &str = "client.pem";
/// The client private key.
pub const CLIENT_KEY: &str = "client-key.pem";
/// The advisory lock file, in the certificate directory.
pub const LOCK_FILE: &str = ".clnrest-certs.lock";

/// A server or client certificate expiring within this is re-issued at start.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Common names of the generated certificates.
const CA_CN: &str = "cln Root CA";
const SERVER_CN: &str = "cln rest server";
const CLIENT_CN: &str = "cln rest client";

/// Suffix of our temporary files; only ever present while their writer holds the lock.
const TMP_SUFFIX: &str = ".clnrest-tmp";

/// The six files.
const ALL_FILES: [&str; 6] = [
    CA_KEY,
    CA_CERT,
    SERVER_KEY,
    SERVER_CERT,
    CLIENT_KEY,
    CLIENT_CERT,
];

/// Whether (and how) the server asks TLS clients for a certificate signed by `ca.pem`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    #[default]
    None,
    /// Asked for; a client may send none, but one it sends must verify.
    Optional,
    /// A client without a certificate signed by the CA cannot complete the handshake.
    Required,
}

impl ClientAuth {
    /// `none`, `optional` or `required`, case-insensitive.
    pub fn parse(value: &str) -> Option<ClientAuth> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "optional" => Some(ClientAuth::Optional),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        })
    }
}

/// What the HTTPS server needs to know about certificates.
#[derive(Clone, Copy, Debug)]
pub struct TlsSettings<'a> {
    /// The certificate directory.
    pub dir: &'a Path,
    /// `clnrest-host`, one of the server certificate's names.
    pub host: &'a str,
    /// `clnrest-tls-extra-name`s, more names for the server certificate.
    pub extra_names: &'a [TlsName],
    /// `clnrest-tls-cert` and `clnrest-tls-key`, served instead of `server.pem`.
    pub own_cert: Option<&'a OwnCert>,
    pub client_auth: ClientAuth,
}

/// The server's TLS: the rustls configuration, and the task that re-reads the operator's
/// certificate when there is one (to be spawned once the runtime serves).
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub reloader: Option<OwnCertReloader>,
}

/// Why certificates could not be loaded or created. Every message names the file or
/// directory concerned, for lightningd's log.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate directory (or a parent) could not be created.
    #[error("cannot create directory {}: {error}", path.display())]
    CreateDir { path: PathBuf, error: io::Error },
    /// A file's metadata could not be read.
    #[error("cannot access {}: {error}", path.display())]
    Access { path: PathBuf, error: io::Error },
    /// A certificate path exists but is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    /// A certificate path is a symbolic link to nothing.
    #[error("{} is a symbolic link to a file that does not exist", path.display())]
    DanglingSymlink { path: PathBuf },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {error}", path.display())]
    Lock { path: PathBuf, error: io::Error },
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// A file could not be written (or renamed into place, or synced).
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
    /// A file does not hold what it should, or not in a usable form.
    #[error("{} does not contain a valid {what}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// A private key does not belong to its certificate.
    #[error("{} is not the private key of the certificate in {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    /// rcgen failed to generate a key or certificate.
    #[error("cannot generate the TLS certificates: {0}")]
    Generate(rcgen::Error),
    /// rustls refused the server certificate and key.
    #[error("cannot build the TLS configuration from {}: {error}", path.display())]
    Config { path: PathBuf, error: rustls::Error },
    /// A set we had just written was changed on disk by someone else before we read it back.
    #[error(
        "{} does not verify against {} right after generating them ({reason}); another program \
         (probably cln-grpc) wrote to the certificate directory at the same time: delete the six \
         certificate files and restart",
        path.display(),
        ca.display()
    )]
    Inconsistent {
        path: PathBuf,
        ca: PathBuf,
        reason: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Prepares the certificate directory (see the module documentation: the CA is kept, what is
/// unusable or stale is re-issued), loads the operator's certificate if configured, and builds
/// the server configuration.
pub fn prepare(settings: &TlsSettings<'_>) -> Result<ServerTls, TlsError> {
    let names = server_names(settings.host, settings.extra_names);
    let set = prepare_dir(settings.dir, &names)?;
    let (own, reloader) = match settings.own_cert {
        Some(files) => {
            let (resolver, reloader) = load_own_cert(files)?;
            (Some(resolver), Some(reloader))
        }
        None => (None, None),
    };
    let config = build_config(settings.dir, set, own, settings.client_auth)?;
    Ok(ServerTls { config, reloader })
}

/// [`prepare`] with no extra name, the directory's server certificate and no client
/// certificates.
pub fn load_or_generate(dir: &Path, host: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    prepare(&TlsSettings {
        dir,
        host,
        extra_names: &[],
        own_cert: None,
        client_auth: ClientAuth::None,
    })
    .map(|tls| tls.config)
}

/// Creates the directory, takes the lock, keeps or replaces each pair, and reads the result
/// back.
fn prepare_dir(dir: &Path, names: &[TlsName]) -> Result<LoadedSet, TlsError> {
    DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(|error| TlsError::CreateDir {
            path: dir.to_path_buf(),
            error,
        })?;

    let lock_path = dir.join(LOCK_FILE);
    let lock = match open_lock_file(&lock_path) {
        Ok(file) => file,
        // A read-only directory holding a complete set (certificates provided by the
        // operator) needs no lock: nobody can write there.
        Err(error) if is_read_only_error(&error) && all_present(dir)? => {
            tracing::debug!(
                "cannot create {} ({error}); using the existing certificates as they are",
                lock_path.display()
            );
            let set = load_set_checked(dir, false)?;
            warn_if_names_differ(dir, &set, names);
            return Ok(set);
        }
        Err(error) => {
            return Err(TlsError::Lock {
                path: lock_path,
                error,
            })
        }
    };
    lock_exclusive(&lock).map_err(|error| TlsError::Lock {
        path: lock_path.clone(),
        error,
    })?;

    // Under the lock: look, write what must change, and read back what is on disk.
    let result = (|| {
        // Odd paths are errors before anything is written.
        all_present(dir)?;
        remove_stale_temp_files(dir);
        let writes = renew(dir, names)?;
        if !writes.is_empty() {
            write_files(dir, &writes)?;
        }
        load_set_checked(dir, !writes.is_empty())
    })();
    // Dropping the file releases the lock; the lock file itself stays.
    drop(lock);
    result
}

/// Whether all six files are there and non-empty (odd paths are errors).
fn all_present(dir: &Path) -> Result<bool, TlsError> {
    let mut all = true;
    for name in ALL_FILES {
        all &= present(&dir.join(name))?;
    }
    Ok(all)
}

/// Decides, file by file, what to write: a new CA if there is none or it is unusable, and
/// the leaves that are missing, invalid, expiring or (the server's) naming other names.
/// Returns the files to write, each key before its certificate.
fn renew(dir: &Path, names: &[TlsName]) -> Result<Vec<(&'static str, String)>, TlsError> {
    let provider = provider();
    let mut writes = Vec::new();
    let ca = match check_ca(dir, &provider)? {
        CaCheck::Usable(ca) => Some(ca),
        CaCheck::Missing => {
            tracing::info!(
                "no CA in {}: generating a new CA, server and client certificate",
                dir.display()
            );
            None
        }
        CaCheck::Unusable(reason) => {
            tracing::warn!(
                "{reason}: generating a new CA in {}, and re-issuing {SERVER_CERT} and \
                 {CLIENT_CERT} from it; clients must trust the new {CA_CERT}",
                dir.display()
            );
            None
        }
    };
    let (issuer, roots) = match ca {
        Some(ca) => {
            let UsableCa { certs, issuer } = *ca;
            (issuer, Some(roots(&dir.join(CA_CERT), &certs)?))
        }
        None => {
            let (issuer, files) = new_ca()?;
            writes.push((CA_KEY, files.key_pem));
            writes.push((CA_CERT, files.cert_pem));
            (issuer, None)
        }
    };
    let wanted = names.iter().cloned().collect();
    for leaf in [Leaf::Server, Leaf::Client] {
        if let Some(roots) = &roots {
            let Some(reissue) = check_leaf(dir, leaf, roots, &wanted, &provider)? else {
                continue;
            };
            let message = format!(
                "{}: re-issuing {} from {}",
                reissue.reason,
                leaf.cert_file(),
                dir.join(CA_CERT).display()
            );
            if reissue.routine {
                tracing::info!("{message}");
            } else {
                tracing::warn!("{message}");
            }
        }
        let files = issue_leaf(&issuer, leaf, names)?;
        writes.push((leaf.key_file(), files.key_pem));
        writes.push((leaf.cert_file(), files.cert_pem));
    }
    Ok(writes)
}

/// In a directory we cannot write: says when the server certificate's names are not the
/// configured ones.
fn warn_if_names_differ(dir: &Path, set: &LoadedSet, names: &[TlsName]) {
    let wanted: std::collections::BTreeSet<TlsName> = names.iter().cloned().collect();
    if let Ok(found) = names_in_cert(&set.server[0]) {
        if found != wanted {
            tracing::warn!(
                "{} names {}, the configuration {}; the directory is read-only, so it is served \
                 as it is",
                dir.join(SERVER_CERT).display(),
                list(&found),
                list(&wanted)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConnection};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    const HOST: &str = "127.0.0.1";

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A client trusting the `ca.pem` currently in `dir`, offering `versions` and h2/http1.1.
    fn client_config(
        dir: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca = fs::read(dir.join(CA_CERT)).unwrap();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    fn default_client(dir: &Path) -> Arc<ClientConfig> {
        client_config(dir, rustls::ALL_VERSIONS)
    }

    /// Moves whatever `from` has to send into `to`, processing it there.
    fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).unwrap();
        }
        let mut rest = &buf[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets()?;
        }
        Ok(())
    }

    /// A complete in-memory handshake; returns the client side once both sides are done,
    /// or the first error either side raised.
    fn handshake_conn(
        server: Arc<rustls::ServerConfig>,
        client: ClientConnection,
    ) -> Result<Connection, rustls::Error> {
        let mut client = Connection::from(client);
        let mut server = Connection::from(ServerConnection::new(server)?);
        for _ in 0..10 {
            transfer(&mut client, &mut server)?;
            transfer(&mut server, &mut client)?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(client);
            }
        }
        panic!("handshake did not finish")
    }

    fn handshake(
        server: &Arc<rustls::ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> Result<Connection, rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        handshake_conn(server.clone(), ClientConnection::new(client, name)?)
    }

    fn read_all(dir: &Path) -> Vec<Vec<u8>> {
        ALL_FILES
            .iter()
            .map(|name| fs::read(dir.join(name)).unwrap())
            .collect()
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".pem.") || name.ends_with(TMP_SUFFIX))
            .collect()
    }

    /// The set on disk is one consistent set: the server cert (with its key) is accepted by
    /// a client trusting ca.pem, the client cert (with its key) is accepted in a mutual-TLS
    /// handshake by a server trusting ca.pem (what cln-grpc does), and each key matches.
    fn assert_consistent(dir: &Path) {
        let config = load_set(dir, true).expect("the set on disk is consistent");
        handshake(&config, default_client(dir), "localhost").expect("server cert verifies");

        let mut roots = RootCertStore::empty();
        for cert in read_certs(&dir.join(CA_CERT)).unwrap() {
            roots.add(cert).unwrap();
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        let mtls_server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                read_certs(&dir.join(SERVER_CERT)).unwrap(),
                read_key(&dir.join(SERVER_KEY)).unwrap(),
            )
            .unwrap();
        let mut ca_roots = RootCertStore::empty();
        for cert in read_certs(&dir.join(CA_CERT)).unwrap() {
            ca_roots.add(cert).unwrap();
        }
        let mtls_client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(ca_roots)
            .with_client_auth_cert(
                read_certs(&dir.join(CLIENT_CERT)).unwrap(),
                read_key(&dir.join(CLIENT_KEY)).unwrap(),
            )
            .expect("client key matches client cert");
        handshake(&Arc::new(mtls_server), Arc::new(mtls_client), "cln")
            .expect("client cert verifies against ca.pem");
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// A handshake with `client`, then what the server sends after it (session tickets)
    /// delivered to the client; returns the client side.
    fn connect_and_take_tickets(
        server: &Arc<rustls::ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Connection {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = Connection::from(ClientConnection::new(client, name).unwrap());
        let mut server = Connection::from(ServerConnection::new(server.clone()).unwrap());
        for _ in 0..10 {
            transfer(&mut client, &mut server).unwrap();
            transfer(&mut server, &mut client).unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                transfer(&mut server, &mut client).unwrap();
                return client;
            }
        }
        panic!("handshake did not finish")
    }

    #[test]
    fn the_server_picks_a_sha256_suite_when_the_client_lists_sha384_first() {
        let tmp = tempfile::tempdir().unwrap();
        let server = load_or_generate(tmp.path(), HOST).unwrap();
        // rustls's (and OpenSSL's) clients list AES-256-GCM-SHA384 first.
        for (versions, expected) in [
            (
                &[&rustls::version::TLS13][..],
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            ),
            (
                &[&rustls::version::TLS12][..],
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ),
        ] {
            let client = client_config(tmp.path(), versions);
            let first = client.crypto_provider().cipher_suites[0].suite();
            assert!(format!("{first:?}").contains("SHA384"), "{first:?}");
            let connection = handshake(&server, client, "localhost").unwrap();
            let suite = connection.negotiated_cipher_suite().unwrap().suite();
            assert_eq!(suite, expected);
        }
    }

    #[test]
    fn a_client_resumes_its_session_on_a_new_connection_in_tls13_and_tls12() {
        let tmp = tempfile::tempdir().unwrap();
        let server = load_or_generate(tmp.path(), HOST).unwrap();
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12]] {
            // One client configuration: its session store is shared by its connections.
            let client = client_config(tmp.path(), versions);
            let first = connect_and_take_tickets(&server, client.clone());
            assert_eq!(first.handshake_kind(), Some(rustls::HandshakeKind::Full));
            for _ in 0..3 {
                let next = connect_and_take_tickets(&server, client.clone());
                assert_eq!(
                    next.handshake_kind(),
                    Some(rustls::HandshakeKind::Resumed),
                    "{versions:?}"
                );
            }
        }
    }

    #[test]
    fn generates_six_files_in_a_new_nested_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/certs");
        load_or_generate(&dir, HOST).unwrap();

        for name in ALL_FILES {
            let meta = fs::metadata(dir.join(name)).unwrap();
            assert!(meta.is_file() && meta.len() > 0, "{name} is empty");
            let mode = meta.permissions().mode() & 0o777;
            if name.ends_with("-key.pem") {
                assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
            } else {
                assert_eq!(mode & 0o077 & !0o044, 0, "{name} has mode {mode:o}");
            }
        }
        let ca = fs::read(dir.join(CA_CERT)).unwrap();
        let ca_der = CertificateDer::from_pem_slice(&ca).unwrap();
        assert!(contains(&ca_der, CA_CN.as_bytes()));
        let server = CertificateDer::from_pem_slice(&fs::read(dir.join(SERVER_CERT)).unwrap());
        assert!(contains(&server.unwrap(), SERVER_CN.as_bytes()));
        let client = CertificateDer::from_pem_slice(&fs::read(dir.join(CLIENT_CERT)).unwrap());
        assert!(contains(&client.unwrap(), CLIENT_CN.as_bytes()));
        for name in [CA_KEY, SERVER_KEY, CLIENT_KEY] {
            let pem = fs::read_to_string(dir.join(name)).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{name}");
        }
        assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
        assert_consistent(&dir);
    }

    #[test]
    fn server_certificate_names_include_cln_localhost_and_the_host_ip() {
        let tmp = tempfile::tempdir().unwrap();
        let config = load_or_generate(tmp.path(), HOST).unwrap();
        for name in ["localhost", "cln", "127.0.0.1"] {
            handshake(&config, default_client(tmp.path()), name)
                .unwrap_or_else(|e| panic!("{name} refused: {e}"));
        }
        for name in ["example.com", "127.0.0.2", "::1"] {
            match handshake(&config, default_client(tmp.path()), name) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                other => panic!("{name}: expected a name mismatch, got {:?}", other.err()),
            }
        }
    }

    #[test]
    fn server_certificate_names_for_ipv6_and_dns_hosts() {
        for (host, name) in [
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("node.example.org", "node.example.org"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let config = load_or_generate(tmp.path(), host).unwrap();
            for name in [name, "localhost", "cln"] {
                handshake(&config, default_client(tmp.path()), name)
                    .unwrap_or_else(|e| panic!("host {host}: {name} refused: {e}"));
            }
            assert!(handshake(&config, default_client(tmp.path()), "other.example.org").is_err());
        }
        // localhost is not added twice, and an empty host just means no extra name.
        for host in ["localhost", "LOCALHOST", "cln", ""] {
            let tmp = tempfile::tempdir().unwrap();
            let config = load_or_generate(tmp.path(), host).unwrap();
            handshake(&config, default_client(tmp.path()), "localhost").unwrap();
        }
    }

    #[test]
    fn an_existing_complete_set_is_reused_and_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        let before = read_all(dir);
        let stamps: Vec<_> = ALL_FILES
            .iter()
            .map(|name| {
                let meta = fs::metadata(dir.join(name)).unwrap();
                (meta.ino(), meta.modified().unwrap())
            })
            .collect();

        // `[127.0.0.1]` is the same name as `127.0.0.1`.
        let config = load_or_generate(dir, "[127.0.0.1]").unwrap();
        assert!(
            changed(dir, &before).is_empty(),
            "{:?}",
            changed(dir, &before)
        );
        for (name, stamp) in ALL_FILES.iter().zip(&stamps) {
            let meta = fs::metadata(dir.join(name)).unwrap();
            assert_eq!(
                (meta.ino(), meta.modified().unwrap()),
                *stamp,
                "{name} was rewritten"
            );
        }
        handshake(&config, default_client(dir), "127.0.0.1").unwrap();
    }

    /// Files that differ between `before` and now.
    fn changed(dir: &Path, before: &[Vec<u8>]) -> Vec<&'static str> {
        ALL_FILES
            .iter()
            .zip(before)
            .filter(|(name, old)| fs::read(dir.join(name)).unwrap() != **old)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Sorted, for comparing sets of file names.
    fn sorted(mut names: Vec<&'static str>) -> Vec<&'static str> {
        names.sort();
        names
    }

    #[test]
    fn another_host_reissues_only_the_server_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        let before = read_all(dir);
        let config = load_or_generate(dir, "10.1.2.3").unwrap();
        assert_eq!(
            sorted(changed(dir, &before)),
            sorted(vec![SERVER_CERT, SERVER_KEY])
        );
        // The old ca.pem (unchanged) vouches for the new name.
        handshake(&config, default_client(dir), "10.1.2.3").unwrap();
        assert!(handshake(&config, default_client(dir), "127.0.0.1").is_err());
        assert_consistent(dir);
    }

    #[test]
    fn a_missing_or_empty_ca_file_makes_a_new_ca_and_a_leaf_file_reissues_its_pair() {
        for name in ALL_FILES {
            for remove in [false, true] {
                let tmp = tempfile::tempdir().unwrap();
                let dir = tmp.path();
                load_or_generate(dir, HOST).unwrap();
                let before = read_all(dir);
                if remove {
                    fs::remove_file(dir.join(name)).unwrap();
                } else {
                    File::create(dir.join(name)).unwrap();
                }
                let config = load_or_generate(dir, HOST).unwrap();
                let expected = match name {
                    CA_CERT | CA_KEY => ALL_FILES.to_vec(),
                    SERVER_CERT | SERVER_KEY => vec![SERVER_CERT, SERVER_KEY],
                    _ => vec![CLIENT_CERT, CLIENT_KEY],
                };
                assert_eq!(
                    sorted(changed(dir, &before)),
                    sorted(expected),
                    "{name} {}",
                    if remove { "removed" } else { "emptied" }
                );
                for key in [CA_KEY, SERVER_KEY, CLIENT_KEY] {
                    let mode = fs::metadata(dir.join(key)).unwrap().permissions().mode();
                    assert_eq!(mode & 0o777, 0o600, "{key}");
                }
                assert_consistent(dir);
                handshake(&config, default_client(dir), "localhost").unwrap();
                assert!(temp_files(dir).is_empty());
            }
        }
    }

    #[test]
    fn eight_threads_racing_on_an_empty_dir_agree_on_one_set() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    load_or_generate(&dir, HOST)
                })
            })
            .collect();
        let configs: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap().expect("every racer succeeds"))
            .collect();
        let client = default_client(&dir);
        for config in &configs {
            handshake(config, client.clone(), "localhost").expect("serves the final set");
        }
        assert_consistent(&dir);
        assert!(temp_files(&dir).is_empty());
    }

    const RACE_DIR: &str = "CLNREST_TLS_TEST_RACE_DIR";
    const RACE_GO: &str = "CLNREST_TLS_TEST_RACE_GO";
    const RACE_OUT: &str = "CLNREST_TLS_TEST_RACE_OUT";

    /// Not a test on its own: the body of each child process of
    /// `two_processes_racing_agree_on_one_set`, which re-executes this test binary. Without
    /// its environment variables it does nothing.
    #[test]
    fn race_child_process() {
        let (Some(dir), Some(go), Some(out)) = (
            std::env::var_os(RACE_DIR),
            std::env::var_os(RACE_GO),
            std::env::var_os(RACE_OUT),
        ) else {
            return;
        };
        let dir = PathBuf::from(dir);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&go).exists() {
            assert!(Instant::now() < deadline, "never told to go");
            std::thread::sleep(Duration::from_millis(1));
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_generate(&dir, HOST))
            })
            .collect();
        let configs: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap().expect("every racer succeeds"))
            .collect();
        // Once a set is complete nobody replaces it, so what is on disk now is final.
        let client = default_client(&dir);
        for config in &configs {
            handshake(config, client.clone(), "localhost").expect("serves the set on disk");
        }
        fs::write(out, fs::read(dir.join(CA_CERT)).unwrap()).unwrap();
    }

    #[test]
    fn two_processes_racing_agree_on_one_set() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let go = tmp.path().join("go");
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..2)
            .map(|i| {
                let out = tmp.path().join(format!("ca-seen-by-{i}"));
                let child = std::process::Command::new(&exe)
                    .args([
                        "tls::tests::race_child_process",
                        "--exact",
                        "--test-threads=1",
                    ])
                    .env(RACE_DIR, &dir)
                    .env(RACE_GO, &go)
                    .env(RACE_OUT, &out)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                (child, out)
            })
            .collect();
        fs::write(&go, b"").unwrap();
        for (mut child, out) in children {
            assert!(child.wait().unwrap().success(), "a racing process failed");
            assert_eq!(
                fs::read(out).unwrap(),
                fs::read(dir.join(CA_CERT)).unwrap(),
                "a process served a set other than the final one"
            );
        }
        assert_consistent(&dir);
        assert!(temp_files(&dir).is_empty());
    }

    #[test]
    fn a_corrupt_server_pem_is_reissued_from_the_kept_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        fs::write(dir.join(SERVER_CERT), b"this is not a certificate\n").unwrap();
        let before = read_all(dir);

        let config = load_or_generate(dir, HOST).unwrap();
        assert_eq!(
            sorted(changed(dir, &before)),
            sorted(vec![SERVER_CERT, SERVER_KEY])
        );
        handshake(&config, default_client(dir), "localhost").unwrap();
        assert_consistent(dir);
    }

    /// A certificate and a key whose PEM block is well formed but holds garbage.
    #[test]
    fn a_valid_pem_block_holding_garbage_is_replaced() {
        for (file, label, replaced) in [
            (CA_CERT, "CERTIFICATE", ALL_FILES.to_vec()),
            (SERVER_KEY, "PRIVATE KEY", vec![SERVER_CERT, SERVER_KEY]),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            load_or_generate(dir, HOST).unwrap();
            fs::write(
                dir.join(file),
                format!("-----BEGIN {label}-----\nAAECAwQF\n-----END {label}-----\n"),
            )
            .unwrap();
            let before = read_all(dir);
            load_or_generate(dir, HOST).unwrap();
            assert_eq!(sorted(changed(dir, &before)), sorted(replaced), "{file}");
            assert_consistent(dir);
        }
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_named_and_the_pair_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        fs::copy(dir.join(CLIENT_KEY), dir.join(SERVER_KEY)).unwrap();
        let err = read_pair(dir, SERVER_CERT, SERVER_KEY, &provider())
            .err()
            .unwrap();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        let message = err.to_string();
        assert_eq!(
            message,
            format!(
                "{} is not the private key of the certificate in {}",
                dir.join(SERVER_KEY).display(),
                dir.join(SERVER_CERT).display()
            )
        );
        let before = read_all(dir);
        load_or_generate(dir, HOST).unwrap();
        assert_eq!(
            sorted(changed(dir, &before)),
            sorted(vec![SERVER_CERT, SERVER_KEY])
        );
        assert_consistent(dir);
    }

    #[test]
    fn tls12_and_tls13_handshakes_succeed_with_alpn() {
        let tmp = tempfile::tempdir().unwrap();
        let config = load_or_generate(tmp.path(), HOST).unwrap();
        for (version, expected) in [
            (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        ] {
            let client = client_config(tmp.path(), &[version]);
            let conn = handshake(&config, client, "localhost").unwrap();
            assert_eq!(conn.protocol_version(), Some(expected));
            assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
        }
        // A client that only speaks HTTP/1.1 gets it.
        let mut client = (*client_config(tmp.path(), rustls::ALL_VERSIONS)).clone();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let conn = handshake(&config, Arc::new(client), "localhost").unwrap();
        assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    }

    /// A ClientHello record offering only `version` (no supported_versions extension, as a
    /// TLS 1.1 client sends) with ECDHE-ECDSA suites.
    fn raw_client_hello(version: [u8; 2]) -> Vec<u8> {
        let mut body = version.to_vec();
        body.extend([7u8; 32]); // random
        body.push(0); // no session id
                      // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        body.extend([0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x09]);
        body.extend([0x01, 0x00]); // null compression
        let extensions = [
            0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17, // supported_groups: secp256r1
            0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats: uncompressed
            0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04,
            0x03, // signature_algorithms: ecdsa_p256_sha256
        ];
        body.extend((extensions.len() as u16).to_be_bytes());
        body.extend(extensions);
        let mut handshake = vec![0x01]; // client_hello
        handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend((handshake.len() as u16).to_be_bytes());
        record.extend(handshake);
        record
    }

    /// Feeds a raw ClientHello to a server connection; returns the processing result and
    /// the bytes the server answers with.
    fn offer(
        config: &Arc<rustls::ServerConfig>,
        hello: &[u8],
    ) -> (Result<(), rustls::Error>, Vec<u8>) {
        let mut server = ServerConnection::new(config.clone()).unwrap();
        server.read_tls(&mut &hello[..]).unwrap();
        let result = server.process_new_packets().map(|_| ());
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).unwrap();
        }
        (result, out)
    }

    #[test]
    fn a_server_certificate_from_another_ca_is_reissued_from_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
        load_or_generate(&ours, HOST).unwrap();
        load_or_generate(&theirs, "10.9.8.7").unwrap();
        for name in [SERVER_CERT, SERVER_KEY] {
            fs::copy(theirs.join(name), ours.join(name)).unwrap();
        }
        // Had we just generated this set, the mix would mean someone else wrote meanwhile.
        let err = load_set(&ours, true).unwrap_err();
        assert!(matches!(err, TlsError::Inconsistent { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!(
            "{} does not verify against {}",
            ours.join(SERVER_CERT).display(),
            ours.join(CA_CERT).display()
        )));
        // At start it is re-issued from our CA (serving another CA's certificate is what
        // `clnrest-tls-cert` is for).
        let before = read_all(&ours);
        let config = load_or_generate(&ours, HOST).unwrap();
        assert_eq!(
            sorted(changed(&ours, &before)),
            sorted(vec![SERVER_CERT, SERVER_KEY])
        );
        handshake(&config, default_client(&ours), "localhost").unwrap();
        assert!(handshake(&config, default_client(&theirs), "localhost").is_err());
    }

    #[test]
    fn a_tls11_client_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let config = load_or_generate(tmp.path(), HOST).unwrap();

        // The same hello claiming TLS 1.2 is answered with a ServerHello: the hello is sound.
        let (result, out) = offer(&config, &raw_client_hello([0x03, 0x03]));
        result.expect("a TLS 1.2 hello is accepted");
        assert_eq!(out.first(), Some(&0x16), "no ServerHello");
        assert_eq!(out.get(5), Some(&0x02), "no ServerHello");

        // TLS 1.1 (and 1.0) get a fatal protocol_version alert.
        for version in [[0x03, 0x02], [0x03, 0x01]] {
            let (result, out) = offer(&config, &raw_client_hello(version));
            assert!(
                matches!(result, Err(rustls::Error::PeerIncompatible(_))),
                "{version:?}: {result:?}"
            );
            assert_eq!(out.first(), Some(&0x15), "{version:?}: no alert");
            assert_eq!(
                out.get(5..7),
                Some(&[2, 70][..]),
                "{version:?}: not protocol_version"
            );
        }
    }

    #[test]
    fn stale_temp_files_are_removed_and_none_are_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let stale = dir.join(format!(".server-key.pem.1-0{TMP_SUFFIX}"));
        fs::write(&stale, b"half").unwrap();
        load_or_generate(dir, HOST).unwrap();
        assert!(!stale.exists());
        assert!(temp_files(dir).is_empty());
        assert!(dir.join(LOCK_FILE).exists());
    }

    #[test]
    fn a_dangling_symlink_is_an_error_not_regenerated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        fs::remove_file(dir.join(SERVER_CERT)).unwrap();
        std::os::unix::fs::symlink(dir.join("gone.pem"), dir.join(SERVER_CERT)).unwrap();
        let message = load_or_generate(dir, HOST).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{} is a symbolic link to a file that does not exist",
                dir.join(SERVER_CERT).display()
            )
        );
    }

    #[test]
    fn a_dir_that_cannot_be_created_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        let dir = file.join("certs");
        let message = load_or_generate(&dir, HOST).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("cannot create directory {}: ", dir.display())),
            "{message}"
        );
        assert!(message.contains("(os error"), "{message}");
    }

    #[test]
    fn a_certificate_path_that_is_a_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join(CA_KEY)).unwrap();
        let message = load_or_generate(tmp.path(), HOST).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{} is not a regular file",
                tmp.path().join(CA_KEY).display()
            )
        );
    }

    /// The issuer of the CA in `dir`.
    fn dir_issuer(dir: &Path) -> Issuer<'static, KeyPair> {
        let key = KeyPair::from_pem(&fs::read_to_string(dir.join(CA_KEY)).unwrap()).unwrap();
        Issuer::from_ca_cert_pem(&fs::read_to_string(dir.join(CA_CERT)).unwrap(), key).unwrap()
    }

    /// Writes a `leaf` pair signed by `dir`'s CA that expires `days` from now (negative:
    /// expired), valid for `localhost`.
    fn write_leaf_expiring(dir: &Path, leaf: Leaf, days: i64) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let now = std::time::SystemTime::now();
        let when = if days >= 0 {
            now + Duration::from_secs(days as u64 * 86400)
        } else {
            now - Duration::from_secs(days.unsigned_abs() * 86400)
        };
        params.not_before = (now - Duration::from_secs(400 * 86400)).into();
        params.not_after = when.into();
        let cert = params.signed_by(&key, &dir_issuer(dir)).unwrap();
        fs::write(dir.join(leaf.cert_file()), cert.pem()).unwrap();
        fs::write(dir.join(leaf.key_file()), key.serialize_pem()).unwrap();
    }

    #[test]
    fn expired_and_expiring_leaves_are_reissued_from_the_kept_ca() {
        for (leaf, days) in [
            (Leaf::Server, -1),
            (Leaf::Server, 10),
            (Leaf::Client, -100),
            (Leaf::Client, 29),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            load_or_generate(dir, HOST).unwrap();
            write_leaf_expiring(dir, leaf, days);
            let before = read_all(dir);
            load_or_generate(dir, HOST).unwrap();
            assert_eq!(
                sorted(changed(dir, &before)),
                sorted(vec![leaf.cert_file(), leaf.key_file()]),
                "{leaf:?} expiring in {days} days"
            );
            assert_consistent(dir);
        }
        // 31 days left is enough: kept (its names are not ours, so try the client).
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        write_leaf_expiring(dir, Leaf::Client, 31);
        let before = read_all(dir);
        load_or_generate(dir, HOST).unwrap();
        assert!(changed(dir, &before).is_empty());
    }

    #[test]
    fn an_unusable_ca_is_replaced_with_every_leaf() {
        type Spoil = fn(&Path);
        let spoilers: [(&str, Spoil); 4] = [
            ("key of another certificate", |dir| {
                fs::copy(dir.join(SERVER_KEY), dir.join(CA_KEY)).unwrap();
            }),
            ("key missing", |dir| {
                fs::remove_file(dir.join(CA_KEY)).unwrap()
            }),
            ("not a CA", |dir| {
                fs::copy(dir.join(SERVER_CERT), dir.join(CA_CERT)).unwrap();
                fs::copy(dir.join(SERVER_KEY), dir.join(CA_KEY)).unwrap();
            }),
            ("expired", |dir| {
                let key = KeyPair::generate().unwrap();
                let mut params = CertificateParams::default();
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.not_after = rcgen::date_time_ymd(2020, 1, 1);
                let cert = params.self_signed(&key).unwrap();
                fs::write(dir.join(CA_CERT), cert.pem()).unwrap();
                fs::write(dir.join(CA_KEY), key.serialize_pem()).unwrap();
            }),
        ];
        for (what, spoil) in spoilers {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            load_or_generate(dir, HOST).unwrap();
            spoil(dir);
            let before = read_all_present(dir);
            load_or_generate(dir, HOST).unwrap();
            let after = read_all(dir);
            for ((name, old), new) in ALL_FILES.iter().zip(&before).zip(&after) {
                assert_ne!(old.as_ref(), Some(new), "{what}: {name} kept");
            }
            assert_consistent(dir);
        }
    }

    fn read_all_present(dir: &Path) -> Vec<Option<Vec<u8>>> {
        ALL_FILES
            .iter()
            .map(|name| fs::read(dir.join(name)).ok())
            .collect()
    }

    fn names(values: &[&str]) -> Vec<TlsName> {
        values.iter().map(|v| TlsName::parse(v).unwrap()).collect()
    }

    fn prepare_in(dir: &Path, extra: &[TlsName], client_auth: ClientAuth) -> ServerTls {
        prepare(&TlsSettings {
            dir,
            host: HOST,
            extra_names: extra,
            own_cert: None,
            client_auth,
        })
        .unwrap()
    }

    #[test]
    fn extra_names_are_served_and_a_change_reissues_the_server_certificate_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let onion = "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion";
        let first = names(&["192.168.1.20", "node.example.com", onion, "fd00::7"]);
        let tls = prepare_in(dir, &first, ClientAuth::None);
        for name in [
            "192.168.1.20",
            "node.example.com",
            onion,
            "fd00::7",
            "127.0.0.1",
        ] {
            handshake(&tls.config, default_client(dir), name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(handshake(&tls.config, default_client(dir), "other.example.com").is_err());

        // Same set, another order and case: nothing rewritten.
        let before = read_all(dir);
        let same = names(&["NODE.example.com", "fd00::7", onion, "192.168.1.20", "cln"]);
        prepare_in(dir, &same, ClientAuth::None);
        assert!(changed(dir, &before).is_empty());

        // One name less, one more: only server.pem and its key, and the CA still vouches.
        let second = names(&["node.example.com", "10.0.0.9"]);
        let tls = prepare_in(dir, &second, ClientAuth::None);
        assert_eq!(
            sorted(changed(dir, &before)),
            sorted(vec![SERVER_CERT, SERVER_KEY])
        );
        handshake(&tls.config, client_config_from(&before[1]), "10.0.0.9").unwrap();
        assert!(handshake(&tls.config, default_client(dir), "192.168.1.20").is_err());
    }

    /// A client trusting the CA certificate `ca_pem`.
    fn client_config_from(ca_pem: &[u8]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A client trusting `dir`'s CA and presenting `cert_dir`'s client certificate.
    fn client_with_cert(dir: &Path, cert_dir: &Path) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(read_certs(&dir.join(CA_CERT)).unwrap().remove(0))
            .unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    read_certs(&cert_dir.join(CLIENT_CERT)).unwrap(),
                    read_key(&cert_dir.join(CLIENT_KEY)).unwrap(),
                )
                .unwrap(),
        )
    }

    #[test]
    fn client_certificates_required_optional_and_none() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, foreign) = (tmp.path().join("ours"), tmp.path().join("foreign"));
        load_or_generate(&foreign, HOST).unwrap();
        for auth in [ClientAuth::None, ClientAuth::Optional, ClientAuth::Required] {
            let tls = prepare_in(&dir, &[], auth);
            let with_ours = handshake(&tls.config, client_with_cert(&dir, &dir), "localhost");
            let with_foreign =
                handshake(&tls.config, client_with_cert(&dir, &foreign), "localhost");
            let without = handshake(&tls.config, default_client(&dir), "localhost");
            assert!(with_ours.is_ok(), "{auth}: {:?}", with_ours.err());
            assert_eq!(
                with_foreign.is_ok(),
                auth == ClientAuth::None,
                "{auth}: a foreign certificate"
            );
            assert_eq!(
                without.is_ok(),
                auth != ClientAuth::Required,
                "{auth}: no certificate"
            );
        }
    }

    #[test]
    fn an_own_certificate_is_served_and_reloaded_when_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        // The operator's certificates come from another CA, valid for node.example.
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        let extra = names(&["node.example"]);
        prepare_in(&one, &extra, ClientAuth::None);
        prepare_in(&two, &extra, ClientAuth::None);
        let own = OwnCert {
            cert: tmp.path().join("fullchain.pem"),
            key: tmp.path().join("privkey.pem"),
        };
        let install = |from: &Path| {
            fs::copy(from.join(SERVER_CERT), &own.cert).unwrap();
            fs::copy(from.join(SERVER_KEY), &own.key).unwrap();
        };
        install(&one);
        let settings = TlsSettings {
            dir: &dir,
            host: HOST,
            extra_names: &[],
            own_cert: Some(&own),
            client_auth: ClientAuth::None,
        };
        let mut tls = prepare(&settings).unwrap();
        assert!(dir.join(CA_CERT).exists(), "the directory is prepared too");
        let mut reloader = tls.reloader.take().unwrap();
        assert_eq!(reloader.interval(), OWN_CERT_RELOAD_INTERVAL);
        let served_by = |ca: &Path| handshake(&tls.config, default_client(ca), "node.example");
        served_by(&one).unwrap();
        assert!(served_by(&dir).is_err());
        assert!(!reloader.check(), "nothing changed");

        // A bad new file keeps the certificate in use, until a good pair arrives.
        fs::write(&own.cert, b"garbage").unwrap();
        assert!(!reloader.check());
        served_by(&one).unwrap();
        fs::copy(two.join(SERVER_CERT), &own.cert).unwrap();
        assert!(
            !reloader.check(),
            "the old key does not match the new certificate"
        );
        served_by(&one).unwrap();
        fs::copy(two.join(SERVER_KEY), &own.key).unwrap();
        assert!(reloader.check());
        served_by(&two).unwrap();
        assert!(served_by(&one).is_err());
        fs::remove_file(&own.key).unwrap();
        assert!(!reloader.check());
        served_by(&two).unwrap();

        // At start a bad file is an error naming it.
        install(&one);
        fs::write(&own.key, b"nothing").unwrap();
        let message = prepare(&settings).err().unwrap().to_string();
        assert!(
            message.starts_with(&format!("{} does not contain", own.key.display())),
            "{message}"
        );
    }
}
