//! The connection cap (`clnrest-max-connections`): connections beyond it get a polite 503 and
//! are closed, and the cap frees up as connections close.

use mock_lightningd::gateway::Gateway;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw_get(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /v1/list-methods HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("the server answers")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_503_and_the_rest_are_served() {
    let gateway = Gateway::start_with(json!({"clnrest-max-connections": 2})).await;
    let idle_a = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let idle_b = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    // Let the server accept both.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let refused = raw_get(gateway.port).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Too many connections"), "{refused}");

    drop(idle_a);
    drop(idle_b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let served = raw_get(gateway.port).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(gateway
        .node
        .logs()
        .iter()
        .any(|l| l.message.contains("clnrest-max-connections reached")));
}

#[tokio::test]
async fn a_cap_below_one_is_refused_at_init() {
    let port = mock_lightningd::MockLightningd::free_port();
    let node = mock_lightningd::MockLightningd::start(
        json!({"clnrest-port": port, "clnrest-protocol": "http", "clnrest-max-connections": 0}),
    )
    .await;
    assert_eq!(
        node.init_result()["disable"],
        "`clnrest-max-connections` 0, should be at least 1"
    );
}

// ---------------------------------------------------------------------------------------
// Socket.IO long-polling sessions hold a slot while they live.
// ---------------------------------------------------------------------------------------

/// One HTTP/1.1 exchange on a kept-alive connection: the status line and the body (read by
/// `content-length`).
async fn exchange(
    stream: &mut TcpStream,
    method: &str,
    target: &str,
    body: &str,
) -> (String, String) {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain;charset=UTF-8\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), read_response(stream))
        .await
        .expect("the server answers")
}

async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let head = mock_lightningd::raw_http::read_head(stream, Duration::from_secs(5)).await;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("a content-length in {head}"));
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const POLLING_HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";

/// Opens a long-polling session on `stream`; returns its sid.
async fn open_polling_session(stream: &mut TcpStream) -> String {
    let (status, body) = exchange(stream, "GET", POLLING_HANDSHAKE, "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
    let open: serde_json::Value = serde_json::from_str(
        body.strip_prefix('0')
            .unwrap_or_else(|| panic!("an engine.io open packet: {body}")),
    )
    .unwrap();
    open["sid"].as_str().expect("a sid").to_string()
}

/// Whether a new connection is served (a GET answered 200) rather than refused (503).
async fn served(port: u16) -> bool {
    let answer = raw_get(port).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    answer.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn polling_sessions_hold_slots_beyond_the_cap_handshakes_and_connections_get_503() {
    let gateway = Gateway::start_with(json!({"clnrest-max-connections": 2})).await;
    let mut connection = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    // The first session shares its handshake connection's slot; the second takes the other.
    let _first = open_polling_session(&mut connection).await;
    let second = open_polling_session(&mut connection).await;
    // It joins namespace `/` as a client does, and waits for the answer (until it has
    // joined, socketioxide keeps a session for its connect timeout, 45 s, even once closed).
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={second}");
    let connect = format!("40{}", json!({ "rune": gateway.rune }));
    let (status, _) = exchange(&mut connection, "POST", &target, &connect).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut polled = Vec::new();
    while !polled
        .iter()
        .any(|packet: &String| packet.starts_with("40{"))
    {
        assert!(polled.len() < 10, "the session joins `/`: {polled:?}");
        let (status, answer) = exchange(&mut connection, "GET", &target, "").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        polled.extend(answer.split('\x1e').map(str::to_string));
    }

    // Two polling sessions open with a cap of 2: the next handshake and the next
    // connection are refused alike.
    let (status, body) = exchange(&mut connection, "GET", POLLING_HANDSHAKE, "").await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"code": -32603, "message": "Too many connections to clnrest, try again later"})
    );
    assert!(!served(gateway.port).await, "a third connection is refused");

    // Closing the second session (engine.io close packet `1`) frees its slot.
    let (status, _) = exchange(&mut connection, "POST", &target, "1").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut freed = false;
    for _ in 0..50 {
        if served(gateway.port).await {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "closing a polling session frees its slot");

    // The first session keeps the slot it shares after its connection closes: one
    // connection fits beside it, a second does not.
    drop(connection);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _held = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !served(gateway.port).await,
        "the first polling session still holds a slot"
    );
    assert!(gateway.node.logs().iter().any(|l| l
        .message
        .contains("Socket.IO polling session refused: clnrest-max-connections reached")));
}
