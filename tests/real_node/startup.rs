//! Start, refusal and stop inside a real lightningd: every disable reason reaches lightningd's
//! log and nothing listens; a busy port is reported; HTTPS certificates are generated in the
//! network directory, verified with the generated CA and reused after a restart; the plugin
//! exits within 1 s of `stop` and by itself when lightningd is killed.

use crate::node::{free_port, process_alive, NodeConfig, RealNode};
use crate::support::{block_on, client, client_trusting, json_of};
use crate::Test;
use serde_json::{json, Value};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

pub const TESTS: &[Test] = &[
    (
        "startup::each_refusal_is_logged_and_nothing_listens",
        each_refusal_is_logged_and_nothing_listens,
    ),
    (
        "startup::a_port_in_use_is_reported",
        a_port_in_use_is_reported,
    ),
    (
        "startup::unusable_certificates_are_reported",
        unusable_certificates_are_reported,
    ),
    (
        "startup::https_certificates_are_generated_verified_and_reused",
        https_certificates_are_generated_verified_and_reused,
    ),
    (
        "startup::the_plugin_exits_within_1s_of_stop",
        the_plugin_exits_within_1s_of_stop,
    ),
    (
        "startup::the_plugin_exits_when_lightningd_is_killed",
        the_plugin_exits_when_lightningd_is_killed,
    ),
];

/// How long lightningd may take to log a refusal.
const LOG_WAIT: Duration = Duration::from_secs(15);

fn each_refusal_is_logged_and_nothing_listens() {
    let port = free_port().to_string();
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (vec![], "`clnrest-port` option is not configured".into()),
        (
            vec![("clnrest-port", "80")],
            "`clnrest-port` 80, should be a valid available port between 1024 and 65535.".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-protocol", "ftp")],
            "`clnrest-protocol` can either be http or https.".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-host", "my-node")],
            "`clnrest-host` should be a valid IP.".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-swagger-root", "docs")],
            "`clnrest-swagger-root` must start with `/`".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-swagger-root", "/v1")],
            "`clnrest-swagger-root` /v1 would hide the REST API's own /v1".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-swagger-root", "/docs$")],
            "`clnrest-swagger-root` /docs$ may only contain letters, digits and -._~/".into(),
        ),
        (
            vec![
                ("clnrest-port", &port),
                ("clnrest-cors-origins", "https://a\u{1}b"),
            ],
            // lightningd's log writes the control character as \u0001.
            "`clnrest-cors-origins` https://a\\u0001b is not a valid origin".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-csp", "default-src\u{1}")],
            "`clnrest-csp` is not a valid header value".into(),
        ),
        (
            vec![("clnrest-port", &port), ("clnrest-max-connections", "0")],
            "`clnrest-max-connections` 0, should be at least 1".into(),
        ),
    ];
    for (options, reason) in cases {
        let node = RealNode::start(NodeConfig::exactly(&options));
        let line = format!("disabled itself at init: {reason}");
        assert!(
            node.wait_log(&line, LOG_WAIT),
            "options {options:?}: no `{line}` in the log:\n{}",
            node.log_tail(30)
        );
        // lightningd logs that line at debug level only; the plugin says it at info (not
        // configured at all, as on any node that does not use it) or warn (configured wrongly).
        let level = if options.is_empty() {
            "INFO"
        } else {
            "UNUSUAL"
        };
        let own_line = format!("plugin-clnrest: not starting: {reason}");
        let log = node.log();
        assert!(
            log.lines()
                .any(|line| line.contains(level) && line.contains(&own_line)),
            "options {options:?}: no {level} `{own_line}` in the log:\n{}",
            node.log_tail(30)
        );
        if let Some(port) = node.rest_port() {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "options {options:?}: something listens on {port}"
            );
        }
        // lightningd carries on without the plugin.
        assert!(node.rpc("getinfo", json!({})).is_ok());
    }
}

fn unusable_certificates_are_reported() {
    // The certificate directory is a regular file: nothing can be read or written there.
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    let path = file.path().to_str().expect("a UTF-8 path").to_string();
    let port = free_port().to_string();
    let node = RealNode::start(NodeConfig::exactly(&[
        ("clnrest-port", &port),
        ("clnrest-certs", &path),
    ]));
    let line = "disabled itself at init: cannot set up TLS certificates: ";
    assert!(
        node.wait_log(line, LOG_WAIT),
        "no `{line}` in the log:\n{}",
        node.log_tail(30)
    );
    let port: u16 = port.parse().expect("a port");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

fn a_port_in_use_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let node = RealNode::start(NodeConfig::exactly(&[
        ("clnrest-port", &port),
        ("clnrest-protocol", "http"),
    ]));
    let line = format!(
        "disabled itself at init: cannot listen on 127.0.0.1:{port}: Address already in use"
    );
    assert!(
        node.wait_log(&line, LOG_WAIT),
        "no `{line}` in the log:\n{}",
        node.log_tail(30)
    );
    assert!(
        node.log().lines().any(|l| l.contains("UNUSUAL")
            && l.contains("plugin-clnrest: not starting: cannot listen on")),
        "{}",
        node.log_tail(30)
    );
}

const CERT_FILES: [&str; 6] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "client.pem",
    "client-key.pem",
];

fn https_certificates_are_generated_verified_and_reused() {
    let home = tempfile::tempdir().expect("a temporary directory");
    let mut config = NodeConfig::with_options(&[]);
    config.directory = Some(home.path().to_path_buf());
    let mut node = RealNode::start(config.clone());
    let certificates: Vec<Vec<u8>> = CERT_FILES
        .iter()
        .map(|file| {
            let path = node.network_dir.join(file);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect();
    let rune = node.create_rune(Value::Null);
    let ca = node.network_dir.join("ca.pem");
    let url = node.url("/v1/getinfo");
    let node_id = node.call("getinfo", json!({}))["id"].clone();
    block_on(async {
        // The generated CA verifies the server, by IP and by name.
        for url in [url.clone(), url.replace("127.0.0.1", "localhost")] {
            let response = client_trusting(&ca)
                .post(&url)
                .header("Rune", &rune)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let (status, body) = json_of(response).await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["id"], node_id);
        }
        // A client that does not trust the CA is refused at the handshake.
        let untrusting = reqwest::Client::builder()
            .tls_built_in_root_certs(true)
            .build()
            .expect("a client");
        assert!(untrusting.post(&url).send().await.is_err());
        // Plain HTTP on the HTTPS port gets no REST answer.
        let plain = client().post(url.replacen("https", "http", 1)).send().await;
        assert!(plain.map(|r| r.status() != 201).unwrap_or(true));
    });
    node.stop();

    // Restarted on the same directory: the same files, still trusted.
    let node = RealNode::start(config);
    for (file, before) in CERT_FILES.iter().zip(&certificates) {
        let after = std::fs::read(node.network_dir.join(file)).expect("still there");
        assert_eq!(&after, before, "{file} changed across a restart");
    }
    block_on(async {
        let response = client_trusting(&ca)
            .post(&url)
            .header("Rune", &rune)
            .send()
            .await
            .expect("the restarted plugin answers over HTTPS");
        assert_eq!(response.status().as_u16(), 201);
    });
}

/// The plugin's process id, waiting for lightningd to have started it.
fn plugin_pid(node: &RealNode) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = node.plugin_pid("clnrest") {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no clnrest process under lightningd"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a process is gone; how long it took, or `None` after `limit`.
fn wait_gone(pid: u32, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !process_alive(pid) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn the_plugin_exits_within_1s_of_stop() {
    let mut node = RealNode::start_http();
    let pid = plugin_pid(&node);
    let rpc_path = node.rpc_path.clone();
    let stopping = std::thread::spawn(move || crate::node::rpc_call(&rpc_path, "stop", &json!({})));
    let took = wait_gone(pid, Duration::from_secs(5));
    let _ = stopping.join();
    let took = took.unwrap_or_else(|| panic!("the plugin still runs 5 s after `stop`"));
    assert!(
        took < Duration::from_secs(1),
        "the plugin took {took:?} to exit after `stop`"
    );
    assert!(
        node.log()
            .contains("lightningd is shutting down: stopping the REST server"),
        "{}",
        node.log_tail(20)
    );
    assert!(
        node.wait_exit(Duration::from_secs(10)),
        "lightningd did not stop"
    );
}

fn the_plugin_exits_when_lightningd_is_killed() {
    let mut node = RealNode::start_http();
    let pid = plugin_pid(&node);
    let port = node.rest_port().expect("a port");
    node.kill();
    let took = wait_gone(pid, Duration::from_secs(5));
    assert!(
        took.is_some(),
        "the plugin still runs 5 s after lightningd was killed"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on the REST port"
    );
}
