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
