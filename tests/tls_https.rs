//! HTTPS: the certificate directory (created, reused, regenerated, shared by plugins starting
//! together), what clients that trust `ca.pem` see, TLS 1.2 and 1.3, and plain HTTP touching
//! no certificate at all, and a Socket.IO websocket over HTTPS.

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
    handshake_as(ca_pem, port, version, "localhost")
}

/// [`handshake`] verifying the server certificate for `name` (an IP address or a DNS name),
/// whatever address the TCP connection goes to.
fn handshake_as(
    ca_pem: &[u8],
    port: u16,
    version: &'static rustls::SupportedProtocolVersion,
    name: &str,
) -> Result<rustls::ProtocolVersion, String> {
    let config = mock_lightningd::client_tls::trusting_with(ca_pem, &[version]);
    let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
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
async fn an_empty_ca_file_makes_a_new_set_and_an_empty_leaf_file_only_its_pair() {
    // The rule of issue 15: the CA is kept whenever it is usable; one empty file no longer
    // regenerates all six (it did before).
    let temp = tempfile::tempdir().unwrap();
    let certs = temp.path().join("certs");
    let options = json!({ "clnrest-certs": certs.to_str().unwrap() });

    let (first, _) = start_https(options.clone(), None).await;
    let mut before = read_set(&certs);
    stop(&first).await;
    drop(first);

    for (index, emptied) in CERT_FILES.iter().enumerate() {
        std::fs::write(certs.join(emptied), b"").unwrap();
        let (node, port) = start_https(options.clone(), None).await;
        let after = read_set(&certs);
        // Which pair the emptied file belongs to (0: CA, 1: server, 2: client).
        let pair = index / 2;
        for (i, (name, (old, new))) in CERT_FILES.iter().zip(before.iter().zip(&after)).enumerate()
        {
            let replaced = pair == 0 || i / 2 == pair;
            assert_eq!(
                old != new,
                replaced,
                "{name} {} after {emptied} was emptied",
                if replaced { "kept" } else { "rewritten" }
            );
        }
        for name in CERT_FILES.iter().filter(|n| n.ends_with("-key.pem")) {
            let mode = std::fs::metadata(certs.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: mode {mode:o}");
        }
        // Consistent: the current ca.pem vouches for what is served; the old one does only
        // when it was kept.
        assert_serves_set_of(&certs, &node, port).await;
        let rune = node.create_rune(Value::Null);
        let old_ca_trusted = getinfo(&client_trusting(&before[0]), "localhost", port, &rune)
            .await
            .is_ok();
        assert_eq!(old_ca_trusted, pair != 0, "after {emptied} was emptied");
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
        let response = mock_lightningd::gateway::client()
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
    let response = mock_lightningd::gateway::client()
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

// ---------------------------------------------------------------------------------------
// Issue 15: extra names, the operator's certificate, client certificates.

const ONION: &str = "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion";

/// The init refusal reason for `options` (with a free port).
async fn refusal(options: Value) -> String {
    let port = MockLightningd::free_port();
    let mut all = json!({ "clnrest-port": port });
    all.as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    let node = MockLightningd::start(all).await;
    let reason = node.init_result()["disable"]
        .as_str()
        .unwrap_or_else(|| panic!("expected init to disable, got {}", node.init_result()))
        .to_string();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    reason
}

/// Whether a TLS 1.3 handshake verifying the certificate for `name` succeeds.
async fn valid_for(ca: &[u8], port: u16, name: &str) -> bool {
    let (ca, name) = (ca.to_vec(), name.to_string());
    tokio::task::spawn_blocking(move || handshake_as(&ca, port, &rustls::version::TLS13, &name))
        .await
        .unwrap()
        .is_ok()
}

fn has_log(node: &MockLightningd, level: &str, needle: &str) -> bool {
    node.logs()
        .iter()
        .any(|line| line.level == level && line.message.contains(needle))
}

#[tokio::test]
async fn the_new_options_are_registered() {
    let node = MockLightningd::start(json!({})).await;
    let manifest = node.manifest().expect("a manifest").clone();
    let options = manifest["options"].as_array().unwrap();
    let find = |name: &str| {
        options
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not registered: {manifest}"))
            .clone()
    };
    let extra = find("clnrest-tls-extra-name");
    assert_eq!(extra["type"], "string");
    assert_eq!(extra["multi"], true);
    for name in ["clnrest-tls-cert", "clnrest-tls-key"] {
        let option = find(name);
        assert_eq!(option["type"], "string", "{option}");
        assert!(option.get("default").is_none_or(Value::is_null), "{option}");
    }
    let auth = find("clnrest-tls-client-auth");
    assert_eq!(auth["type"], "string");
    assert_eq!(auth["default"], "none");
}

#[tokio::test]
async fn bad_tls_options_disable_the_plugin_with_a_clear_reason() {
    for (options, reason) in [
        (
            json!({ "clnrest-tls-extra-name": ["node.example.com", "*.example.com"] }),
            "`clnrest-tls-extra-name` *.example.com is not an IP address or a DNS name",
        ),
        (
            json!({ "clnrest-tls-extra-name": ["https://node.example.com"] }),
            "`clnrest-tls-extra-name` https://node.example.com is not an IP address or a DNS name",
        ),
        (
            json!({ "clnrest-tls-cert": "/etc/fullchain.pem" }),
            "`clnrest-tls-cert` is set but `clnrest-tls-key` is not: give both or neither",
        ),
        (
            json!({ "clnrest-tls-key": "/etc/privkey.pem" }),
            "`clnrest-tls-key` is set but `clnrest-tls-cert` is not: give both or neither",
        ),
        (
            json!({ "clnrest-tls-client-auth": "always" }),
            "`clnrest-tls-client-auth` can be none, optional or required.",
        ),
        (
            json!({ "clnrest-tls-client-auth": "required", "clnrest-protocol": "http" }),
            "`clnrest-tls-client-auth` required needs `clnrest-protocol` https",
        ),
    ] {
        assert_eq!(refusal(options.clone()).await, reason, "{options}");
    }
    // Files that do not exist: the reason names the file.
    let temp = tempfile::tempdir().unwrap();
    let cert = temp.path().join("fullchain.pem");
    let reason = refusal(json!({
        "clnrest-tls-cert": cert.to_str().unwrap(),
        "clnrest-tls-key": temp.path().join("privkey.pem").to_str().unwrap(),
    }))
    .await;
    assert!(
        reason.starts_with(&format!(
            "cannot set up TLS certificates: cannot read {}",
            cert.display()
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn extra_names_are_in_the_certificate_and_a_change_keeps_the_ca() {
    let temp = tempfile::tempdir().unwrap();
    let certs = temp.path().join("certs");
    let with_names = |names: Value| json!({ "clnrest-certs": certs.to_str().unwrap(), "clnrest-tls-extra-name": names });

    let (node, port) = start_https(
        with_names(json!([
            "192.168.1.20",
            "Node.Example.com",
            ONION,
            "[fd00::7]"
        ])),
        None,
    )
    .await;
    let before = read_set(&certs);
    for name in [
        "192.168.1.20",
        "node.example.com",
        ONION,
        "fd00::7",
        "127.0.0.1",
        "localhost",
    ] {
        assert!(valid_for(&before[0], port, name).await, "{name} refused");
    }
    assert!(!valid_for(&before[0], port, "10.0.0.9").await);
    // reqwest reaching the node by its domain name (resolved to loopback) verifies it.
    let rune = node.create_rune(Value::Null);
    let by_domain = builder_trusting(&before[0])
        .resolve("node.example.com", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    getinfo_201(&by_domain, "node.example.com", port, &rune).await;
    stop(&node).await;
    drop(node);

    // Same names in another order and case: nothing rewritten.
    let (node, _) = start_https(
        with_names(json!([
            ONION,
            "fd00::7",
            "NODE.example.com",
            "192.168.1.20"
        ])),
        None,
    )
    .await;
    assert!(
        read_set(&certs) == before,
        "a file was rewritten for the same names"
    );
    assert!(!has_log(&node, "info", "re-issuing"));
    stop(&node).await;
    drop(node);

    // Other names: server.pem (and its key) re-issued from the same CA, logged.
    let (node, port) = start_https(with_names(json!(["10.0.0.9"])), None).await;
    let after = read_set(&certs);
    for (i, name) in CERT_FILES.iter().enumerate() {
        let server_pair = *name == "server.pem" || *name == "server-key.pem";
        assert_eq!(before[i] != after[i], server_pair, "{name}");
    }
    assert!(
        valid_for(&before[0], port, "10.0.0.9").await,
        "the old CA vouches"
    );
    assert!(!valid_for(&before[0], port, "node.example.com").await);
    assert!(
        has_log(&node, "info", "server.pem names")
            && has_log(&node, "info", "re-issuing server.pem from"),
        "{:?}",
        node.logs()
    );
    assert_serves_set_of(&certs, &node, port).await;
}

#[tokio::test]
async fn an_expired_server_certificate_is_reissued_from_the_kept_ca() {
    let temp = tempfile::tempdir().unwrap();
    let certs = temp.path().join("certs");
    let options = json!({ "clnrest-certs": certs.to_str().unwrap() });
    let (node, _) = start_https(options.clone(), None).await;
    stop(&node).await;
    drop(node);
    let before = read_set(&certs);

    // A server certificate of our CA that expired yesterday.
    let ca_key = rcgen::KeyPair::from_pem(std::str::from_utf8(&before[1]).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(std::str::from_utf8(&before[0]).unwrap(), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.not_after = (std::time::SystemTime::now() - Duration::from_secs(86400)).into();
    let expired = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(certs.join("server.pem"), expired.pem()).unwrap();
    std::fs::write(certs.join("server-key.pem"), key.serialize_pem()).unwrap();

    let (node, port) = start_https(options, None).await;
    let after = read_set(&certs);
    assert!(
        after[0] == before[0] && after[1] == before[1],
        "the CA was replaced"
    );
    assert!(
        after[2] != expired.pem().into_bytes(),
        "the expired one is still there"
    );
    assert!(
        has_log(&node, "warn", "re-issuing server.pem"),
        "{:?}",
        node.logs()
    );
    assert_serves_set_of(&certs, &node, port).await;
}

/// A client trusting `ca_pem` that presents `dir`'s client certificate.
fn client_with_identity(ca_pem: &[u8], dir: &Path) -> reqwest::Client {
    let mut pem = std::fs::read(dir.join("client-key.pem")).unwrap();
    pem.extend(std::fs::read(dir.join("client.pem")).unwrap());
    builder_trusting(ca_pem)
        .identity(reqwest::Identity::from_pem(&pem).expect("a PEM identity"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn client_certificates_required_and_optional() {
    // A foreign set: a client certificate of another CA.
    let foreign = tempfile::tempdir().unwrap();
    let (other, _) = start_https(json!({}), Some(foreign.path())).await;
    stop(&other).await;
    drop(other);

    for mode in ["required", "optional"] {
        let (node, port) = start_https(json!({ "clnrest-tls-client-auth": mode }), None).await;
        let dir = node.lightning_dir().to_path_buf();
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        let rune = node.create_rune(Value::Null);

        // client.pem passes the handshake; the rune is still checked.
        let ours = client_with_identity(&ca, &dir);
        getinfo_201(&ours, "localhost", port, &rune).await;
        let no_rune = ours
            .post(format!("https://localhost:{port}/v1/getinfo"))
            .json(&json!({}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(no_rune.status().as_u16(), 403, "{mode}");

        // A certificate of another CA never passes.
        let theirs = client_with_identity(&ca, foreign.path());
        assert!(
            getinfo(&theirs, "localhost", port, &rune).await.is_err(),
            "{mode}: a foreign client certificate was accepted"
        );

        // No certificate: refused when required, served when optional.
        let without = getinfo(&client_trusting(&ca), "localhost", port, &rune).await;
        match mode {
            "required" => assert!(without.is_err(), "required: served without a certificate"),
            _ => assert_eq!(without.expect("optional").status().as_u16(), 201),
        }
    }
}

/// Writes a CA-signed chain and key valid for `localhost` into `cert`/`key` (as certbot's
/// fullchain.pem and privkey.pem), returning the CA certificate to trust and the leaf, DER.
fn write_own_cert(cert: &Path, key: &Path) -> (Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(cert, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(key, leaf_key.serialize_pem()).unwrap();
    (ca_cert.pem().into_bytes(), leaf.der().to_vec())
}

#[tokio::test]
async fn an_own_certificate_is_served_and_reloaded_when_it_changes() {
    let temp = tempfile::tempdir().unwrap();
    let cert = temp.path().join("fullchain.pem");
    let key = temp.path().join("privkey.pem");
    let (first_ca, first_leaf) = write_own_cert(&cert, &key);
    let port = MockLightningd::free_port();
    let plugin_binary = mock_lightningd::plugin_binary();
    // The plugin with a reload interval of 0.2 s.
    let node = MockLightningd::builder()
        .options(json!({
            "clnrest-port": port,
            "clnrest-tls-cert": cert.to_str().unwrap(),
            "clnrest-tls-key": key.to_str().unwrap(),
        }))
        .plugin_path("/usr/bin/env")
        .plugin_args([
            "CLNREST_TLS_RELOAD_SECS=0.2",
            plugin_binary.to_str().expect("a UTF-8 path"),
        ])
        .start()
        .await;
    assert_eq!(node.init_result(), &json!({}), "{}", node.init_result());
    let rune = node.create_rune(Value::Null);
    let presented = getinfo_201(&client_trusting(&first_ca), "localhost", port, &rune).await;
    assert!(
        presented == first_leaf,
        "the operator's certificate is not served"
    );
    // The generated set is there all the same (CA for client certificates, client.pem).
    assert_eq!(present_files(node.lightning_dir()), CERT_FILES.to_vec());

    // A bad file: the old certificate stays, and a warning says why.
    std::fs::write(&key, b"not a key\n").unwrap();
    node.wait_for_log(
        |line| {
            line.level == "warn"
                && line
                    .message
                    .contains("still serving the previous certificate")
        },
        Duration::from_secs(10),
    )
    .await
    .expect("a warning about the bad key");
    let presented = getinfo_201(&client_trusting(&first_ca), "localhost", port, &rune).await;
    assert!(presented == first_leaf);

    // A renewed pair is served without a restart.
    let (second_ca, second_leaf) = write_own_cert(&cert, &key);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let client = client_trusting(&second_ca);
        if let Ok(response) = getinfo(&client, "localhost", port, &rune).await {
            let presented = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate())
                .unwrap()
                .to_vec();
            assert!(presented == second_leaf);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(has_log(&node, "info", "serving the new certificate"));
    assert!(
        getinfo(&client_trusting(&first_ca), "localhost", port, &rune)
            .await
            .is_err()
    );
}

/// A Socket.IO client opening a websocket directly over HTTPS (`wss://`, served by our own
/// websocket endpoint) connects with its rune and receives notifications.
#[tokio::test]
async fn socketio_websocket_over_https_receives_notifications() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let (node, port) = start_https(json!({}), None).await;
    let ca_pem = std::fs::read(node.lightning_dir().join("ca.pem")).expect("ca.pem is there");
    let config = mock_lightningd::client_tls::trusting(&ca_pem);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the plugin accepts TCP connections");
    let name = ServerName::try_from("localhost").expect("a server name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake");
    let url = format!("wss://localhost:{port}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, response) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("the websocket handshake");
    assert_eq!(response.status(), 101);
    assert!(next_text(&mut ws).await.starts_with("0{\"sid\":"));
    assert_eq!(next_text(&mut ws).await, "2");
    let rune = node.create_rune(Value::Null);
    let connect = format!("40{}", json!({ "rune": rune }));
    ws.send(Message::text(connect)).await.expect("40 is sent");
    assert!(next_text(&mut ws).await.starts_with("40{\"sid\":"));
    let payload = json!({ "label": "over-tls" });
    assert!(node.notify("invoice_creation", payload.clone()).await);
    let expected = format!("42{}", json!(["message", { "invoice_creation": payload }]));
    assert_eq!(next_text(&mut ws).await, expected);
    stop(&node).await;
}

/// The next text frame from a websocket (panics if none comes within 10 s).
async fn next_text<S>(ws: &mut S) -> String
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tungstenite::Error>>
        + Unpin,
{
    use futures::StreamExt;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        match frame {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) => {
                return text.to_string()
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no text frame: {other:?}"),
        }
    }
}
