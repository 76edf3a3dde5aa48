//! HTTPS: the certificate directory (created, reused, regenerated, shared by plugins starting
//! together), what clients that trust `ca.pem` see, TLS 1.2 and 1.3, and plain HTTP touching
//! no certificate at all.

mod harness;
mod mock_lightningd;

use mock_lightningd::MockLightningd;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The six files of a certificate set.
const CERT_FILES: [&str; 6] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "client.pem",
    "client-key.pem",
];

/// Starts the plugin with `options` in `lightning_dir` (or a fresh temp dir) and checks that
/// it started.
async fn start(options: Value, lightning_dir: Option<&Path>) -> MockLightningd {
    let mut builder = MockLightningd::builder().options(options);
    if let Some(dir) = lightning_dir {
        builder = builder.lightning_dir(dir);
    }
    let node = builder.start().await;
    assert_eq!(
        node.init_result(),
        &json!({}),
        "the plugin refused to start: {}",
        node.init_result()
    );
    node
}

/// Starts the plugin over HTTPS (the default protocol) on a free port.
async fn start_https(extra: Value, lightning_dir: Option<&Path>) -> (MockLightningd, u16) {
    let port = MockLightningd::free_port();
    let mut options = json!({ "clnrest-port": port });
    if let (Some(options), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
        options.extend(extra.clone());
    }
    (start(options, lightning_dir).await, port)
}

/// Stops the plugin as lightningd does (`shutdown`), killing it if it lingers (how it exits
/// is tests/lifecycle.rs's business), and waits until it is gone.
async fn stop(node: &MockLightningd) {
    node.shutdown().await;
    if node.wait_exit(Duration::from_secs(2)).await.is_none() {
        node.kill().await;
        assert!(
            node.wait_exit(Duration::from_secs(5)).await.is_some(),
            "the plugin did not exit"
        );
    }
}

/// The bytes of the six files in `dir`, in [`CERT_FILES`] order; each must exist and be
/// non-empty.
fn read_set(dir: &Path) -> Vec<Vec<u8>> {
    CERT_FILES
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            assert!(!bytes.is_empty(), "{} is empty", path.display());
            bytes
        })
        .collect()
}

/// Which of the six files exist in `dir`.
fn present_files(dir: &Path) -> Vec<&'static str> {
    CERT_FILES
        .iter()
        .copied()
        .filter(|name| dir.join(name).exists())
        .collect()
}

/// The first certificate of a PEM file, DER encoded.
fn first_cert_der(pem: &[u8]) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem)
        .next()
        .expect("a PEM certificate")
        .expect("a valid PEM certificate")
        .to_vec()
}

fn builder_trusting(ca_pem: &[u8]) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem).expect("ca.pem parses");
    // rustls explicitly: feature unification may also give reqwest native-tls, its default.
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
}

/// An HTTPS client trusting only `ca_pem`.
fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    builder_trusting(ca_pem).build().expect("a client builds")
}

/// `POST https://<host>:<port>/v1/getinfo` with `rune`.
async fn getinfo(
    client: &reqwest::Client,
    host: &str,
    port: u16,
    rune: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    client
        .post(format!("https://{host}:{port}/v1/getinfo"))
        .header("Rune", rune)
        .json(&json!({}))
        .send()
        .await
}

/// Like [`getinfo`], requiring a 201 and returning the certificate the server presented.
async fn getinfo_201(client: &reqwest::Client, host: &str, port: u16, rune: &str) -> Vec<u8> {
    let response = getinfo(client, host, port, rune).await.unwrap_or_else(|e| {
        panic!("https://{host}:{port} refused a client trusting ca.pem: {e:?}")
    });
    assert_eq!(response.status().as_u16(), 201, "https://{host}:{port}");
    let presented = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the TLS peer certificate")
        .to_vec();
    let body: Value = response.json().await.expect("a JSON body");
    assert!(body["id"].is_string(), "getinfo result: {body}");
    presented
}

/// Checks that the server on `port` serves `dir`'s `server.pem` to a client trusting only
/// `dir`'s `ca.pem`, on `localhost` and `127.0.0.1`.
async fn assert_serves_set_of(dir: &Path, node: &MockLightningd, port: u16) {
    let set = read_set(dir);
    let client = client_trusting(&set[0]);
    let rune = node.create_rune(Value::Null);
    let server_der = first_cert_der(&set[2]);
    for host in ["localhost", "127.0.0.1"] {
        let presented = getinfo_201(&client, host, port, &rune).await;
        assert!(
            presented == server_der,
            "https://{host}:{port} presents a certificate other than {}",
            dir.join("server.pem").display()
        );
    }
}

/// A raw rustls handshake offering only `version`, trusting `ca_pem`; returns the version
/// negotiated.
fn handshake(
    ca_pem: &[u8],
    port: u16,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<rustls::ProtocolVersion, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| e.to_string())?).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut socket =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .map_err(|e| e.to_string())?;
    }
    connection
        .protocol_version()
        .ok_or_else(|| "no protocol version after the handshake".to_string())
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn default_https_creates_six_files_in_the_lightning_dir_and_serves_them() {
    let (node, port) = start_https(json!({}), None).await;
    let dir = node.lightning_dir().to_path_buf();
    assert_eq!(present_files(&dir), CERT_FILES.to_vec());
    read_set(&dir);
    for name in CERT_FILES.iter().filter(|n| n.ends_with("-key.pem")) {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }

    assert_serves_set_of(&dir, &node, port).await;

    // Trust matters: a client with only the public roots refuses the server.
    let public_roots_only = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rune = node.create_rune(Value::Null);
    assert!(
        getinfo(&public_roots_only, "localhost", port, &rune)
            .await
            .is_err(),
        "a client that does not trust ca.pem must refuse the certificate"
    );
    node.assert_no_violations();
}

#[tokio::test]
async fn certs_option_puts_the_files_in_that_directory_creating_it() {
    let temp = tempfile::tempdir().unwrap();
    let certs = temp.path().join("nested").join("certs");
    let (node, port) = start_https(json!({ "clnrest-certs": certs.to_str().unwrap() }), None).await;
    assert!(certs.is_dir(), "{} was not created", certs.display());
    assert_eq!(present_files(&certs), CERT_FILES.to_vec());
    assert_eq!(
        present_files(node.lightning_dir()),
        Vec::<&str>::new(),
        "certificates were written to the lightning-dir too"
    );
    assert_serves_set_of(&certs, &node, port).await;
}

#[tokio::test]
async fn an_existing_complete_set_is_reused_as_it_is() {
    let temp = tempfile::tempdir().unwrap();
    let lightning_dir = temp.path().join("regtest");

    let (first, _) = start_https(json!({}), Some(&lightning_dir)).await;
    let before = read_set(&lightning_dir);
    stop(&first).await;
    drop(first);

    let (second, port) = start_https(json!({}), Some(&lightning_dir)).await;
    let after = read_set(&lightning_dir);
    for (name, (old, new)) in CERT_FILES.iter().zip(before.iter().zip(&after)) {
        assert!(
            old == new,
            "{name} was rewritten although the set was complete"
        );
    }
    // A client that trusted the old ca.pem still connects, and sees the old server.pem.
    let rune = second.create_rune(Value::Null);
    let presented = getinfo_201(&client_trusting(&before[0]), "localhost", port, &rune).await;
    assert!(
        presented == first_cert_der(&before[2]),
        "the restarted server presents another certificate"
    );
}

#[tokio::test]
async fn one_empty_file_regenerates_all_six_consistently() {
    let temp = tempfile::tempdir().unwrap();
    let certs = temp.path().join("certs");
    let options = json!({ "clnrest-certs": certs.to_str().unwrap() });

    let (first, _) = start_https(options.clone(), None).await;
    let mut before = read_set(&certs);
    stop(&first).await;
    drop(first);

    for emptied in CERT_FILES {
        std::fs::write(certs.join(emptied), b"").unwrap();
        let (node, port) = start_https(options.clone(), None).await;
        let after = read_set(&certs);
        for (name, (old, new)) in CERT_FILES.iter().zip(before.iter().zip(&after)) {
            assert!(
                old != new,
                "{name} was not regenerated after {emptied} was emptied"
            );
        }
        for name in CERT_FILES.iter().filter(|n| n.ends_with("-key.pem")) {
            let mode = std::fs::metadata(certs.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "regenerated {name}: mode {mode:o}");
        }
        // Consistent: the new ca.pem vouches for what is served; the old one no longer does.
        assert_serves_set_of(&certs, &node, port).await;
        let rune = node.create_rune(Value::Null);
        assert!(
            getinfo(&client_trusting(&before[0]), "localhost", port, &rune)
                .await
                .is_err(),
            "after {emptied} was emptied the server still presents a certificate of the old CA"
        );
        stop(&node).await;
        before = after;
    }
}

#[tokio::test]
async fn http_touches_no_certificate_file() {
    // Default location (the lightning-dir) and an explicit clnrest-certs that does not exist.
    let temp = tempfile::tempdir().unwrap();
    let certs = temp.path().join("certs");
    for extra in [
        json!({}),
        json!({ "clnrest-certs": certs.to_str().unwrap() }),
    ] {
        let port = MockLightningd::free_port();
        let mut options = json!({ "clnrest-port": port, "clnrest-protocol": "http" });
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let node = start(options, None).await;
        let gateway_rune = node.create_rune(Value::Null);
        let response = harness::client()
            .post(format!("http://127.0.0.1:{port}/v1/getinfo"))
            .header("Rune", &gateway_rune)
            .send()
            .await
            .expect("plain HTTP is served");
        assert_eq!(response.status().as_u16(), 201);
        assert_eq!(
            present_files(node.lightning_dir()),
            Vec::<&str>::new(),
            "options {extra}"
        );
        assert_eq!(present_files(&certs), Vec::<&str>::new(), "options {extra}");
    }
}

#[tokio::test]
async fn http_does_not_read_certificate_files() {
    // Six files that are not certificates: HTTPS would refuse them, HTTP must not look.
    let temp = tempfile::tempdir().unwrap();
    let lightning_dir = temp.path().join("regtest");
    std::fs::create_dir_all(&lightning_dir).unwrap();
    for name in CERT_FILES {
        std::fs::write(lightning_dir.join(name), b"not a certificate\n").unwrap();
    }
    let port = MockLightningd::free_port();
    let node = start(
        json!({ "clnrest-port": port, "clnrest-protocol": "http" }),
        Some(&lightning_dir),
    )
    .await;
    let response = harness::client()
        .get(format!("http://127.0.0.1:{port}/v1/list-methods"))
        .send()
        .await
        .expect("plain HTTP is served");
    assert_eq!(response.status().as_u16(), 200);
    for name in CERT_FILES {
        assert_eq!(
            std::fs::read(lightning_dir.join(name)).unwrap(),
            b"not a certificate\n",
            "{name} was changed"
        );
    }
    drop(node);
}

#[tokio::test]
async fn tls_1_2_and_1_3_both_negotiate() {
    let (node, port) = start_https(json!({}), None).await;
    let dir = node.lightning_dir().to_path_buf();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let rune = node.create_rune(Value::Null);

    for (version, rustls_version, expected) in [
        (
            reqwest::tls::Version::TLS_1_2,
            &rustls::version::TLS12,
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            reqwest::tls::Version::TLS_1_3,
            &rustls::version::TLS13,
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        // A client that speaks only this version gets its answer.
        let client = builder_trusting(&ca)
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap();
        getinfo_201(&client, "localhost", port, &rune).await;

        // And the handshake really is at this version.
        let ca = ca.clone();
        let negotiated = tokio::task::spawn_blocking(move || handshake(&ca, port, rustls_version))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a {expected:?}-only handshake failed: {e}"));
        assert_eq!(negotiated, expected);
    }
}

#[tokio::test]
async fn two_plugins_starting_together_share_one_consistent_set() {
    // A few rounds, each in a fresh directory neither plugin has seen.
    for round in 0..3 {
        let temp = tempfile::tempdir().unwrap();
        let certs: PathBuf = temp.path().join("shared").join("certs");
        let options = json!({ "clnrest-certs": certs.to_str().unwrap() });
        let ((a, port_a), (b, port_b)) = tokio::join!(
            start_https(options.clone(), None),
            start_https(options.clone(), None)
        );
        assert_eq!(present_files(&certs), CERT_FILES.to_vec(), "round {round}");
        // One set: a client trusting this ca.pem reaches both, and both present this
        // server.pem.
        assert_serves_set_of(&certs, &a, port_a).await;
        assert_serves_set_of(&certs, &b, port_b).await;
    }
}

#[tokio::test]
async fn an_uncreatable_certificate_directory_disables_the_plugin() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("a-file");
    std::fs::write(&file, b"in the way\n").unwrap();
    let certs = file.join("certs");
    let port = MockLightningd::free_port();
    let node = MockLightningd::start(
        json!({ "clnrest-port": port, "clnrest-certs": certs.to_str().unwrap() }),
    )
    .await;
    let reason = node.init_result()["disable"]
        .as_str()
        .unwrap_or_else(|| panic!("expected init to disable, got {}", node.init_result()))
        .to_string();
    assert!(
        reason.to_lowercase().contains("certificate"),
        "the reason must say it is about the certificates: {reason}"
    );
    assert!(
        reason.contains(certs.to_str().unwrap()),
        "the reason must name {}: {reason}",
        certs.display()
    );
    // Nothing listens.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
