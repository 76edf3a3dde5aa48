//! Every notification stream sends a keep-alive at least every 30 s: SSE comments, and
//! Socket.IO's engine.io pings (announced in the handshake).

use futures::StreamExt;
use mock_lightningd::gateway::Gateway;
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_idle_sse_stream_gets_a_keep_alive_within_30_seconds() {
    let gateway = Gateway::start().await;
    let response = gateway
        .http
        .get(gateway.url("/v1/notifications"))
        .header("Rune", &gateway.rune)
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    let keep_alive = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(chunk)) = body.next().await {
            seen.extend_from_slice(&chunk);
            // An SSE comment line: ":" ... "\n".
            if seen.starts_with(b":") && seen.contains(&b'\n') {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        keep_alive,
        Ok(true),
        "no keep-alive after {:?}: {:?}",
        started.elapsed(),
        String::from_utf8_lossy(&seen)
    );
}

#[tokio::test]
async fn socketio_announces_pings_at_least_every_30_seconds() {
    let gateway = Gateway::start().await;
    // The engine.io v4 handshake, as every Socket.IO client does it first.
    let text = gateway
        .http
        .get(gateway.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: serde_json::Value = serde_json::from_str(
        text.strip_prefix('0')
            .unwrap_or_else(|| panic!("not an open packet: {text}")),
    )
    .unwrap();
    let interval = open["pingInterval"].as_u64().expect("pingInterval");
    assert!(interval <= 30_000, "pingInterval {interval} ms");
    assert!(open["pingTimeout"].as_u64().is_some());
}
