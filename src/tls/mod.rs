//! TLS: the certificate directory (a CA plus server and client certificates, shared with
//! cln-grpc) and the rustls configuration the HTTPS server uses.
//!
//! This module decides what to do with the directory ([`load_or_generate`]); the steps live
//! beside it: `generate.rs` (a new set), `files.rs` (atomic writes), `lock.rs` (the lock
//! across processes) and `verify.rs` (reading the set back, checking it, the rustls config).
//!
//! # The directory
//!
//! `dir` holds six PEM files, named and laid out as Core Lightning's cln-grpc plugin does so
//! that both plugins share one CA: `ca.pem`/`ca-key.pem` (self-signed "cln Root CA"),
//! `server.pem`/`server-key.pem` ("cln rest server", signed by the CA, SANs `cln`,
//! `localhost` and the configured host) and `client.pem`/`client-key.pem` ("cln rest
//! client", signed by the CA). Keys are ECDSA P-256 in PKCS#8.
//!
//! * When all six exist and are non-empty they are used as they are and never rewritten.
//!   They are still checked: a file that does not parse, or a key that does not belong to its
//!   certificate, is an error naming the file (we never regenerate over an operator's
//!   certificates). A server or client certificate that does not verify against `ca.pem` is
//!   only logged as a warning, because an operator may deliberately serve a certificate from
//!   another CA.
//! * When any is missing or empty, all six are generated anew. The host only matters then:
//!   changing `host` later does not regenerate anything.
//!
//! # Concurrency
//!
//! Check-and-generate (and the read of the files that follows) runs under an exclusive
//! advisory lock (`flock` through [`File::lock`]) on `<dir>/.clnrest-certs.lock`; the lock
//! file is never deleted. Under the lock the directory is inspected again, so of several
//! clnrest processes (or threads) starting at once exactly one generates and the others load
//! its set. Nobody waits for a fixed time. Each file is written to a temporary file in the same
//! directory (keys created with mode 0600 before any secret byte is written), fsynced, then
//! renamed into place, and finally the directory is fsynced. A file that was missing or empty
//! is renamed last, so a crash part-way through leaves an incomplete set that the next start
//! regenerates instead of a complete but inconsistent one. Temporary files left by a crashed
//! process are removed by the next lock holder. After generating, the set is read back from
//! disk and verified (every key matches its certificate, server and client certificates verify
//! against `ca.pem`), so what we serve is what is on disk.
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
//! happens after we have loaded, we serve a consistent certificate, but cln-grpc or later
//! starts may not. Likewise we may read a file cln-grpc is still writing. The remedy for an
//! operator is to delete the six files and restart. The window is a few milliseconds at the
//! first start only (upstream clnrest sleeps about 5 s to avoid it; we do not).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod files;
mod generate;
mod lock;
mod verify;

use files::*;
use generate::*;
use lock::*;
use verify::*;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
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
/// The client certificate (for clients of cln-grpc; clnrest does not ask for it).
pub const CLIENT_CERT: &str = "client.pem";
/// The client private key.
pub const CLIENT_KEY: &str = "client-key.pem";
/// The advisory lock file, in the certificate directory.
pub const LOCK_FILE: &str = ".clnrest-certs.lock";

/// Common names of the generated certificates.
const CA_CN: &str = "cln Root CA";
const SERVER_CN: &str = "cln rest server";
const CLIENT_CN: &str = "cln rest client";

/// Suffix of our temporary files; only ever present while their writer holds the lock.
const TMP_SUFFIX: &str = ".clnrest-tmp";

/// The six files, in the order they are renamed into place (a missing one goes last).
const ALL_FILES: [&str; 6] = [
    CA_KEY,
    CA_CERT,
    SERVER_KEY,
    SERVER_CERT,
    CLIENT_KEY,
    CLIENT_CERT,
];

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

/// Loads the six certificate files from `dir`, generating a fresh consistent set first when
/// any is missing or empty, and returns the server configuration built from them.
///
/// `host` is the address the server listens on: when the set is generated it becomes an IP
/// subject alternative name of the server certificate if it is an IP address, or a DNS one if
/// it is a host name other than `localhost` (which is always there, as is `cln`).
pub fn load_or_generate(dir: &Path, host: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(|error| TlsError::CreateDir {
            path: dir.to_path_buf(),
            error,
        })?;

    let lock_path = dir.join(LOCK_FILE);
    let lock = match open_lock_file(&lock_path) {
        Ok(file) => Some(file),
        // A read-only directory holding a complete set (certificates provided by the
        // operator) needs no lock: nobody can generate there.
        Err(error)
            if is_read_only_error(&error) && matches!(inspect_set(dir)?, SetState::Complete) =>
        {
            tracing::debug!(
                "cannot create {} ({error}); using the existing certificates without locking",
                lock_path.display()
            );
            None
        }
        Err(error) => {
            return Err(TlsError::Lock {
                path: lock_path,
                error,
            })
        }
    };
    if let Some(file) = &lock {
        lock_exclusive(file).map_err(|error| TlsError::Lock {
            path: lock_path.clone(),
            error,
        })?;
    }

    // Under the lock: look again, generate if needed, and read back what is on disk.
    let generated = match inspect_set(dir)? {
        SetState::Complete => false,
        SetState::Incomplete { first_missing } => {
            remove_stale_temp_files(dir);
            let set = generate_set(host)?;
            write_set(dir, &set, first_missing)?;
            tracing::info!("generated new TLS certificates in {}", dir.display());
            true
        }
    };
    let config = load_set(dir, generated);
    // Dropping the file releases the lock; the lock file itself stays.
    drop(lock);
    config
}

/// Whether the six files are all there.
enum SetState {
    Complete,
    /// At least one file is missing or empty; the first such, in [`ALL_FILES`] order.
    Incomplete {
        first_missing: &'static str,
    },
}

/// Looks at the six files: missing or empty ones make the set incomplete; anything odd
/// (a directory, a dangling symlink, unreadable metadata) is an error.
fn inspect_set(dir: &Path) -> Result<SetState, TlsError> {
    let mut first_missing = None;
    for name in ALL_FILES {
        let path = dir.join(name);
        let present = match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => meta.len() > 0,
            Ok(_) => return Err(TlsError::NotAFile { path }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(&path).is_ok() {
                    return Err(TlsError::DanglingSymlink { path });
                }
                false
            }
            Err(error) => return Err(TlsError::Access { path, error }),
        };
        if !present && first_missing.is_none() {
            first_missing = Some(name);
        }
    }
    Ok(match first_missing {
        None => SetState::Complete,
        Some(first_missing) => SetState::Incomplete { first_missing },
    })
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

        // Another host does not matter once the set exists.
        let config = load_or_generate(dir, "10.1.2.3").unwrap();
        assert_eq!(read_all(dir), before);
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

    #[test]
    fn one_empty_or_missing_file_regenerates_all_six() {
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
                let after = read_all(dir);
                for ((file, old), new) in ALL_FILES.iter().zip(&before).zip(&after) {
                    assert!(
                        !new.is_empty(),
                        "{file} empty after regenerating for {name}"
                    );
                    assert_ne!(old, new, "{file} not regenerated when {name} was missing");
                }
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
    fn a_corrupt_server_pem_is_an_error_naming_it_and_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        fs::write(dir.join(SERVER_CERT), b"this is not a certificate\n").unwrap();
        let before = read_all(dir);

        let err = load_or_generate(dir, HOST).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TlsError::Parse { .. }), "{err:?}");
        assert!(
            message.contains(&dir.join(SERVER_CERT).display().to_string()),
            "{message}"
        );
        assert!(message.contains("CERTIFICATE"), "{message}");
        assert_eq!(read_all(dir), before, "files were rewritten");
    }

    /// A certificate and a key whose PEM block is well formed but holds garbage.
    #[test]
    fn a_valid_pem_block_holding_garbage_is_an_error_naming_the_file() {
        for (file, label) in [(CA_CERT, "CERTIFICATE"), (SERVER_KEY, "PRIVATE KEY")] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            load_or_generate(dir, HOST).unwrap();
            fs::write(
                dir.join(file),
                format!("-----BEGIN {label}-----\nAAECAwQF\n-----END {label}-----\n"),
            )
            .unwrap();
            let message = load_or_generate(dir, HOST).unwrap_err().to_string();
            assert!(
                message.contains(&dir.join(file).display().to_string()),
                "{file}: {message}"
            );
        }
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_an_error_naming_both() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        load_or_generate(dir, HOST).unwrap();
        fs::copy(dir.join(CLIENT_KEY), dir.join(SERVER_KEY)).unwrap();
        let err = load_or_generate(dir, HOST).unwrap_err();
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
    fn an_operator_server_certificate_from_another_ca_is_used_as_is() {
        let tmp = tempfile::tempdir().unwrap();
        let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
        load_or_generate(&ours, HOST).unwrap();
        load_or_generate(&theirs, "10.9.8.7").unwrap();
        for name in [SERVER_CERT, SERVER_KEY] {
            fs::copy(theirs.join(name), ours.join(name)).unwrap();
        }
        let before = read_all(&ours);
        // Only a warning: the server serves the operator's certificate.
        let config = load_or_generate(&ours, HOST).unwrap();
        assert_eq!(read_all(&ours), before);
        handshake(&config, default_client(&theirs), "10.9.8.7").unwrap();
        assert!(handshake(&config, default_client(&ours), "localhost").is_err());
        // Had we just generated this set, the mix would mean someone else wrote meanwhile.
        let err = load_set(&ours, true).unwrap_err();
        assert!(matches!(err, TlsError::Inconsistent { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!(
            "{} does not verify against {}",
            ours.join(SERVER_CERT).display(),
            ours.join(CA_CERT).display()
        )));
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
}
