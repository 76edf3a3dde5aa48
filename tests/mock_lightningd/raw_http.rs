//! HTTP/1.1 by hand for the tests' raw clients: a websocket upgrade request, and reading a
//! response head byte by byte (so nothing after it is consumed).

use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The websocket upgrade request for `/socket.io/?{query}` on `port`, with extra headers.
pub fn websocket_upgrade(port: u16, query: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!(
        "GET /socket.io/?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// A response head up to its blank line, read within `within` (panics otherwise).
pub async fn read_head(stream: &mut TcpStream, within: Duration) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(within, stream.read_exact(&mut byte))
            .await
            .expect("a response head in time")
            .expect("a response head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}
