//! Certificates inside a real lightningd (issue 15): the CA is kept across restarts while
//! missing leaves are re-issued and extra names change; bad TLS options are refused in
//! lightningd's log; client certificates (`required`) are checked at the handshake; the
//! operator's own certificate is served and re-read when it changes.

use crate::node::{free_port, NodeConfig, RealNode};
use crate::support::{block_on, json_of};
use crate::Test;
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TESTS: &[Test] = &[
    (
        "tls::the_ca_is_kept_while_leaves_and_names_change",
        the_ca_is_kept_while_leaves_and_names_change,
    ),
    (
        "tls::bad_tls_options_are_refused_in_the_log",
        bad_tls_options_are_refused_in_the_log,
    ),
    (
        "tls::client_certificates_required",
        client_certificates_required,
    ),
    (
        "tls::an_own_certificate_is_served_and_reloaded",
        an_own_certificate_is_served_and_reloaded,
    ),
];

const ONION: &str = "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion";

/// Whether a TLS handshake with 127.0.0.1:`port`, trusting `ca_pem` and verifying the
/// certificate for `name`, succeeds.
fn valid_for(ca_pem: &[u8], port: u16, name: &str) -> bool {
    let config = mock_lightningd::client_tls::trusting(ca_pem);
    let name = ServerName::try_from(name.to_string()).expect("a server name");
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while connection.is_handshaking() {
        if connection.complete_io(&mut socket).is_err() {
            return false;
        }
    }
    true
}

/// Waits until the plugin has logged that it runs `times` times in this node's log: the port
/// is bound before the certificates are prepared, so a connection alone does not say the
/// files are written.
fn wait_running(node: &RealNode, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.log().matches("REST server running at").count() < times {
        assert!(Instant::now() < deadline, "{}", node.log_tail(30));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn the_ca_is_kept_while_leaves_and_names_change() {
    let home = tempfile::tempdir().expect("a temporary directory");
    let port = free_port().to_string();
    let start = |names: &[&str]| {
        let mut config = NodeConfig::with_options(&[("clnrest-port", &port)]);
        config.directory = Some(home.path().to_path_buf());
        // A multi option: one `--clnrest-tls-extra-name=` per name.
        for name in names {
            config
                .options
                .push(("clnrest-tls-extra-name".into(), name.to_string()));
        }
        RealNode::start(config)
    };
    let mut node = start(&["192.168.7.7", "node.example.com", ONION]);
    wait_running(&node, 1);
    let dir = node.network_dir.clone();
    let port: u16 = port.parse().unwrap();
    let ca = read(&dir.join("ca.pem"));
    let ca_key = read(&dir.join("ca-key.pem"));
    for name in [
        "192.168.7.7",
        "node.example.com",
        ONION,
        "127.0.0.1",
        "localhost",
    ] {
        assert!(valid_for(&ca, port, name), "{name} refused");
    }
    assert!(!valid_for(&ca, port, "10.0.0.9"));
    node.stop();

    // Lose the client certificate's key, and change the names: the CA stays.
    std::fs::remove_file(dir.join("client-key.pem")).unwrap();
    let server_before = read(&dir.join("server.pem"));
    let client_before = read(&dir.join("client.pem"));
    let node = start(&["10.0.0.9"]);
    // The log file is shared with the first run.
    wait_running(&node, 2);
    assert_eq!(read(&dir.join("ca.pem")), ca, "ca.pem was replaced");
    assert_eq!(
        read(&dir.join("ca-key.pem")),
        ca_key,
        "ca-key.pem was replaced"
    );
    let tail = node.log_tail(30);
    assert!(
        read(&dir.join("server.pem")) != server_before,
        "server.pem kept:\n{tail}"
    );
    assert!(
        read(&dir.join("client.pem")) != client_before,
        "client.pem kept:\n{tail}"
    );
    assert!(dir.join("client-key.pem").exists());
    assert!(
        valid_for(&ca, port, "10.0.0.9"),
        "the old CA vouches for the new name"
    );
    assert!(!valid_for(&ca, port, "node.example.com"));
    let log = node.log();
    for needle in [
        "server.pem names",
        "re-issuing server.pem from",
        "client-key.pem is missing: re-issuing client.pem from",
    ] {
        assert!(
            log.contains(needle),
            "no `{needle}` in the log:\n{}",
            node.log_tail(30)
        );
    }
    // And REST answers a client that trusts the old CA.
    let rune = node.create_rune(Value::Null);
    let url = node.url("/v1/getinfo");
    block_on(async {
        let response = crate::support::client_trusting(&dir.join("ca.pem"))
            .post(&url)
            .header("Rune", &rune)
            .send()
            .await
            .expect("HTTPS answers");
        assert_eq!(response.status().as_u16(), 201);
    });
}

fn bad_tls_options_are_refused_in_the_log() {
    let port = free_port().to_string();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("clnrest-tls-extra-name", "*.example.com")],
            "`clnrest-tls-extra-name` *.example.com is not an IP address or a DNS name",
        ),
        (
            &[("clnrest-tls-cert", "/nonexistent/fullchain.pem")],
            "`clnrest-tls-cert` is set but `clnrest-tls-key` is not: give both or neither",
        ),
        (
            &[("clnrest-tls-client-auth", "sometimes")],
            "`clnrest-tls-client-auth` can be none, optional or required.",
        ),
    ];
    for (options, reason) in cases {
        let mut all = vec![("clnrest-port", port.as_str())];
        all.extend_from_slice(options);
        let node = RealNode::start(NodeConfig::exactly(&all));
        let line = format!("plugin-clnrest: not starting: {reason}");
        assert!(
            node.wait_log(&line, Duration::from_secs(15)),
            "{options:?}: no `{line}` in the log:\n{}",
            node.log_tail(30)
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", node.rest_port().unwrap())).is_err());
    }
}

/// A client trusting `ca`, presenting the client certificate of `dir` if given.
fn mtls_client(ca: &Path, identity_dir: Option<&Path>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&read(ca)).unwrap();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30));
    if let Some(dir) = identity_dir {
        let mut pem = read(&dir.join("client-key.pem"));
        pem.extend(read(&dir.join("client.pem")));
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn client_certificates_required() {
    // Another node's directory provides a foreign client certificate.
    let foreign = RealNode::start(NodeConfig::with_options(&[]));
    wait_running(&foreign, 1);
    let node = RealNode::start(NodeConfig::with_options(&[(
        "clnrest-tls-client-auth",
        "required",
    )]));
    let ca = node.network_dir.join("ca.pem");
    let rune = node.create_rune(Value::Null);
    let url = node.url("/v1/getinfo");
    block_on(async {
        let ours = mtls_client(&ca, Some(&node.network_dir));
        let response = ours.post(&url).header("Rune", &rune).send().await;
        let (status, body) = json_of(response.expect("client.pem is accepted")).await;
        assert_eq!(status, 201, "{body}");
        // Runes are still checked.
        let response = ours.post(&url).send().await.expect("an answer");
        assert_eq!(response.status().as_u16(), 403);

        let theirs = mtls_client(&ca, Some(&foreign.network_dir));
        assert!(
            theirs
                .post(&url)
                .header("Rune", &rune)
                .send()
                .await
                .is_err(),
            "a foreign client certificate was accepted"
        );
        let none = mtls_client(&ca, None);
        assert!(
            none.post(&url).header("Rune", &rune).send().await.is_err(),
            "a client without a certificate was served"
        );
    });
}

/// Writes a chain (leaf for `localhost` and `127.0.0.1`, then its CA) and key; returns the CA
/// certificate PEM.
fn write_own_cert(cert: &Path, key: &Path) -> Vec<u8> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(cert, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(key, leaf_key.serialize_pem()).unwrap();
    ca_cert.pem().into_bytes()
}

fn an_own_certificate_is_served_and_reloaded() {
    let files = tempfile::tempdir().unwrap();
    let cert = files.path().join("fullchain.pem");
    let key = files.path().join("privkey.pem");
    let first_ca = write_own_cert(&cert, &key);
    // lightningd passes its environment to plugins: a wrapper named `clnrest` sets a short
    // reload interval for this node only.
    let wrapper = files.path().join("clnrest");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nCLNREST_TLS_RELOAD_SECS=0.3 exec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_clnrest")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = NodeConfig::with_options(&[
        ("clnrest-tls-cert", cert.to_str().unwrap()),
        ("clnrest-tls-key", key.to_str().unwrap()),
    ]);
    config.plugin = Some(wrapper);
    let node = RealNode::start(config);
    wait_running(&node, 1);
    let port = node.rest_port().unwrap();
    assert!(valid_for(&first_ca, port, "127.0.0.1"), "not served");
    assert!(!valid_for(
        &read(&node.network_dir.join("ca.pem")),
        port,
        "localhost"
    ));

    // A key that does not match yet: the old certificate stays, with a warning.
    let scratch = tempfile::tempdir().unwrap();
    let second_ca = write_own_cert(&scratch.path().join("c.pem"), &scratch.path().join("k.pem"));
    std::fs::copy(scratch.path().join("c.pem"), &cert).unwrap();
    assert!(
        node.wait_log(
            "still serving the previous certificate",
            Duration::from_secs(10)
        ),
        "{}",
        node.log_tail(20)
    );
    assert!(valid_for(&first_ca, port, "127.0.0.1"));

    // The matching key arrives: the new certificate is served, without a restart.
    std::fs::copy(scratch.path().join("k.pem"), &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !valid_for(&second_ca, port, "127.0.0.1") {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served:\n{}",
            node.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!valid_for(&first_ca, port, "127.0.0.1"));
    assert!(node.log().contains("serving the new certificate"));
}
