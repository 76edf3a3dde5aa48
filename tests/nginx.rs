//! `contrib/nginx/clnrest.conf` in front of the plugin (docs/deployment.md, "Behind nginx"):
//! nginx terminates TLS and proxies to the plugin on plain HTTP on 127.0.0.1. Through it:
//! REST, Socket.IO over websocket, SSE whose first event arrives at once (not when a buffer
//! fills), and 413 for a body over 8 MiB.
//!
//! Ignored by default (it needs nginx): `apt-get install -y nginx`, then
//! `cargo test --test nginx -- --ignored`. nginx runs as a child process with everything it
//! writes (logs, pid, temporary files) inside a temporary directory.

use futures::{FutureExt, StreamExt};
use mock_lightningd::gateway::Gateway;
use mock_lightningd::MockLightningd;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Payload, TransportType};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const TEMPLATE: &str = include_str!("../contrib/nginx/clnrest.conf");
const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1024 * 1024;

/// nginx in the foreground, killed when dropped.
struct Nginx {
    child: Child,
    port: u16,
    ca: Vec<u8>,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `template` with `from` replaced by `to`, which must occur exactly once.
fn replace_once(template: &str, from: &str, to: &str) -> String {
    assert_eq!(
        template.matches(from).count(),
        1,
        "{from:?} in the template"
    );
    template.replace(from, to)
}

impl Nginx {
    /// Starts nginx with the contrib file in front of 127.0.0.1:`upstream`, on a free port,
    /// serving a certificate for `localhost` issued by the plugin's own CA code.
    fn start(dir: &Path, upstream: u16) -> Nginx {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        clnrest::tls::load_or_generate(&certs, "127.0.0.1").expect("certificates");
        let port = MockLightningd::free_port();
        let site = [
            ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
            (
                "server_name node.example.com;",
                "server_name localhost;".into(),
            ),
            (
                "/etc/letsencrypt/live/node.example.com/fullchain.pem",
                certs.join("server.pem").display().to_string(),
            ),
            (
                "/etc/letsencrypt/live/node.example.com/privkey.pem",
                certs.join("server-key.pem").display().to_string(),
            ),
            (
                "server 127.0.0.1:3010;",
                format!("server 127.0.0.1:{upstream};"),
            ),
        ]
        .iter()
        .fold(TEMPLATE.to_string(), |text, (from, to)| {
            replace_once(&text, from, to)
        });
        let d = dir.display();
        // `user` only applies when nginx starts as root: its workers then stay root, so they
        // can use the temporary directory.
        let running_as_root = unsafe { libc::geteuid() } == 0;
        let user = if running_as_root { "user root;" } else { "" };
        let conf = format!(
            "{user}\nworker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/client_body;\n \
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n \
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts (apt-get install -y nginx)");
        let mut nginx = Nginx {
            child,
            port,
            ca: std::fs::read(certs.join("ca.pem")).unwrap(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx does not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// An HTTPS client trusting only the plugin's CA.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca).unwrap())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }
}

fn nginx_binary() -> PathBuf {
    std::env::var_os("NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn rest_socketio_sse_and_body_limit_through_nginx() {
    let gateway = Gateway::start().await;
    let temp = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(temp.path(), gateway.port);
    let client = nginx.client();

    // REST.
    let response = client
        .post(nginx.url("/v1/getinfo"))
        .header("Rune", &gateway.rune)
        .send()
        .await
        .expect("getinfo through nginx");
    assert_eq!(response.status(), 201, "{}", nginx.error_log());
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].is_string(), "{body}");

    // Bodies: over nginx's default 1 MiB passes; over 8 MiB is 413.
    let mut big = b"{}".to_vec();
    big.resize(2 * MIB, b' ');
    let response = client
        .post(nginx.url("/v1/getinfo"))
        .header("Rune", &gateway.rune)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "a 2 MiB body is passed on");
    let mut too_big = b"{}".to_vec();
    too_big.resize(8 * MIB + 1, b' ');
    let response = client
        .post(nginx.url("/v1/getinfo"))
        .header("Rune", &gateway.rune)
        .header("Content-Type", "application/json")
        .body(too_big)
        .send()
        .await;
    // nginx answers 413 as soon as it has read the headers; it may close the connection
    // before the whole body is sent.
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    } else {
        let log = nginx.error_log();
        assert!(
            log.contains("client intended to send too large body"),
            "{log}"
        );
    }

    // SSE: the first event arrives within a second of being pushed.
    let response = client
        .get(nginx.url("/v1/notifications"))
        .header("Rune", &gateway.rune)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let pushed = Instant::now();
    assert!(
        gateway
            .node
            .notify("invoice_creation", json!({"label": "via-nginx-sse"}))
            .await
    );
    let mut text = String::new();
    while !text.contains("via-nginx-sse") {
        let chunk = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an SSE chunk")
            .expect("the stream goes on")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let took = pushed.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the SSE event took {took:?} through nginx"
    );
    drop(stream);

    // Socket.IO over websocket.
    let (sender, mut received) = mpsc::unbounded_channel::<Value>();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&nginx.ca).unwrap())
        .build()
        .unwrap();
    let socket = ClientBuilder::new(nginx.url("/"))
        .tls_config(connector)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .auth(json!({"rune": gateway.rune}))
        .on("message", move |payload, _| {
            if let Payload::Text(values) = payload {
                for value in values {
                    let _ = sender.send(value);
                }
            }
            async {}.boxed()
        })
        .connect()
        .await
        .expect("Socket.IO connects through nginx");
    // Push until the (asynchronously subscribed) client receives one.
    let deadline = Instant::now() + WAIT;
    let message = loop {
        assert!(
            gateway
                .node
                .notify("invoice_creation", json!({"label": "via-nginx-ws"}))
                .await
        );
        match tokio::time::timeout(Duration::from_millis(300), received.recv()).await {
            Ok(Some(message)) => break message,
            _ => assert!(Instant::now() < deadline, "{}", nginx.error_log()),
        }
    };
    assert_eq!(
        message,
        json!({"invoice_creation": {"label": "via-nginx-ws"}})
    );
    socket.disconnect().await.unwrap();
    // nginx logs the websocket request when it ends.
    let upgraded =
        |access: &str| access.contains("transport=websocket") && access.contains("\" 101 ");
    let deadline = Instant::now() + WAIT;
    let mut access = String::new();
    while !upgraded(&access) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        access = std::fs::read_to_string(nginx.dir.join("access.log")).unwrap();
    }
    assert!(
        upgraded(&access),
        "the Socket.IO client upgraded to a websocket through nginx:\n{access}"
    );
}
