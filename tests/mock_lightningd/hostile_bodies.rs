//! Hostile clients, for the hardening test and the attack bench: 8 MiB bodies of `[[],[],...]`
//! (~2.8 million JSON values each) with a garbage rune, sent back to back over HTTP/1.1
//! connections and HTTP/2 streams until told to stop.
//!
//! The plugin must refuse each before `checkrune` with 413 (too many values to decode), 503
//! with `Retry-After: 1` (the body budget is taken) or 408 (the body did not arrive in time:
//! HTTP/2 streams share their connection's window), or close the connection (an HTTP/1.1
//! client still sending a body it was refused may see the close before the answer: counted as
//! dropped, and the client connects again); any other answer ends that client with an error
//! saying what came back.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// How many clients of each kind attack.
#[derive(Debug, Clone, Copy)]
pub struct AttackShape {
    /// Clients with one HTTP/1.1 connection each.
    pub http1_clients: usize,
    /// HTTP/2 connections ...
    pub http2_connections: usize,
    /// ... each carrying this many clients, one stream at a time each.
    pub streams_per_connection: usize,
}

impl AttackShape {
    /// How many requests are in flight at once.
    pub fn clients(&self) -> usize {
        self.http1_clients + self.http2_connections * self.streams_per_connection
    }
}

/// How the plugin answered the attacking requests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refusals {
    /// 413: too many values to decode.
    pub too_large: u64,
    /// 503 with `Retry-After: 1`: the body budget was taken.
    pub busy: u64,
    /// 408: the body did not arrive within the plugin's deadline.
    pub slow: u64,
    /// HTTP/1.1 requests whose connection closed before an answer came.
    pub dropped: u64,
    /// Why the first dropped one was.
    pub first_drop: Option<String>,
}

impl Refusals {
    /// Requests answered with 413, 503 or 408.
    pub fn total(&self) -> u64 {
        self.too_large + self.busy + self.slow
    }

    fn add(&mut self, other: Refusals) {
        self.too_large += other.too_large;
        self.busy += other.busy;
        self.slow += other.slow;
        self.dropped += other.dropped;
        self.first_drop = self.first_drop.take().or(other.first_drop);
    }

    /// Counts one answer, or says why it is not a refusal the attack expects.
    fn count(&mut self, status: u16, retry_after: Option<&str>, via: &str) -> Result<(), String> {
        match (status, retry_after) {
            (413, _) => self.too_large += 1,
            (503, Some("1")) => self.busy += 1,
            (408, _) => self.slow += 1,
            (status, retry_after) => {
                return Err(format!(
                    "{via}: status {status} (Retry-After {retry_after:?}) to a garbage rune's 8 MiB body"
                ))
            }
        }
        Ok(())
    }
}

/// Attacking clients at work; [`BodyAttack::stop`] ends them.
pub struct BodyAttack {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Result<Refusals, String>>>,
}

/// The attack's body: `[[],[],...,[]]`, 8 MiB.
pub fn empty_arrays_body() -> Bytes {
    let count = (8 * 1024 * 1024 - 4) / 3;
    let mut body = Vec::with_capacity(count * 3 + 2);
    body.push(b'[');
    for _ in 0..count {
        body.extend_from_slice(b"[],");
    }
    body.extend_from_slice(b"[]]");
    Bytes::from(body)
}

impl BodyAttack {
    /// Starts `shape`'s clients against `POST /v1/getinfo` on the plugin at `127.0.0.1:port`.
    pub async fn start(port: u16, shape: AttackShape) -> Result<BodyAttack, String> {
        let body = empty_arrays_body();
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("http://127.0.0.1:{port}/v1/getinfo");
        let mut clients = Vec::new();
        for _ in 0..shape.http1_clients {
            clients.push(tokio::spawn(http1_client(
                url.clone(),
                body.clone(),
                stop.clone(),
            )));
        }
        for _ in 0..shape.http2_connections {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("HTTP/2 connect: {e}"))?;
            let (sender, connection) = h2::client::handshake(tcp)
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(connection);
            for _ in 0..shape.streams_per_connection {
                clients.push(tokio::spawn(http2_client(
                    sender.clone(),
                    url.clone(),
                    body.clone(),
                    stop.clone(),
                )));
            }
        }
        Ok(BodyAttack { stop, clients })
    }

    /// Stops every client after its request in flight; the refusals they got, or the first
    /// client's error.
    pub async fn stop(self) -> Result<Refusals, String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut refusals = Refusals::default();
        for client in self.clients {
            refusals.add(
                client
                    .await
                    .map_err(|e| format!("a client panicked: {e}"))??,
            );
        }
        Ok(refusals)
    }
}

async fn http1_client(url: String, body: Bytes, stop: Arc<AtomicBool>) -> Result<Refusals, String> {
    let http = reqwest::Client::new();
    let mut refusals = Refusals::default();
    while !stop.load(Ordering::SeqCst) {
        let sent = http
            .post(&url)
            .header("Rune", "garbage")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                refusals.dropped += 1;
                refusals.first_drop.get_or_insert_with(|| error_chain(&e));
                continue;
            }
        };
        let retry_after = response.headers().get("retry-after");
        let retry_after = retry_after.and_then(|v| v.to_str().ok());
        refusals.count(response.status().as_u16(), retry_after, "HTTP/1.1")?;
    }
    Ok(refusals)
}

async fn http2_client(
    mut sender: h2::client::SendRequest<Bytes>,
    url: String,
    body: Bytes,
    stop: Arc<AtomicBool>,
) -> Result<Refusals, String> {
    let mut refusals = Refusals::default();
    while !stop.load(Ordering::SeqCst) {
        let request = http::Request::post(&url)
            .header("rune", "garbage")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(())
            .map_err(|e| format!("HTTP/2 request: {e}"))?;
        sender = sender
            .ready()
            .await
            .map_err(|e| format!("HTTP/2: connection lost: {e}"))?;
        let (response, mut stream) = sender
            .send_request(request, false)
            .map_err(|e| format!("HTTP/2: stream refused: {e}"))?;
        // Queued in the client; the server takes it as its windows allow.
        stream
            .send_data(body.clone(), true)
            .map_err(|e| format!("HTTP/2: body: {e}"))?;
        let response = response
            .await
            .map_err(|e| format!("HTTP/2: no answer: {e}"))?;
        let retry_after = response.headers().get("retry-after");
        let retry_after = retry_after.and_then(|v| v.to_str().ok());
        refusals.count(response.status().as_u16(), retry_after, "HTTP/2")?;
    }
    Ok(refusals)
}

/// An error with its causes, `a: b: c`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
