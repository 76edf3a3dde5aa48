//! Generating load: the workers (the plugin over HTTP by reqwest or by a minimal HTTP/1.1
//! client, the ceiling straight on the lightning-rpc socket) and a measured cell of them.

use crate::plugin::Gateway;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Most requests one cell sends, over all its workers (a bound besides the duration).
const MAX_REQUESTS_PER_CELL: usize = 2_000_000;
/// Most warm-up requests per worker.
const MAX_WARMUP_REQUESTS: usize = 200;
/// One request (or one checkrune + getinfo pair) that takes longer than this is an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame the socket client accepts.
pub const MAX_FRAME: usize = 512 * 1024 * 1024;

/// One client connection's request loop body.
pub enum Worker {
    /// `POST /v1/getinfo` with the rune, `{}` as the JSON body.
    Rest {
        client: reqwest::Client,
        url: String,
        rune: String,
    },
    /// The same request by a minimal HTTP/1.1 keep-alive client (for the breakdown).
    RawHttp {
        stream: tokio::net::TcpStream,
        buffer: Vec<u8>,
        request: Vec<u8>,
    },
    /// `checkrune` then `getinfo` on its own socket connection: the ceiling. Both requests are
    /// canned bytes (fixed ids: one request at a time per connection), so the client only
    /// writes them and splits the answers.
    Socket {
        stream: UnixStream,
        buffer: Vec<u8>,
        checkrune: Vec<u8>,
        getinfo: Vec<u8>,
    },
}

impl Worker {
    pub fn rest(gateway: &Gateway, keep_alive: bool) -> Result<Worker, String> {
        Ok(Worker::Rest {
            client: gateway.client(keep_alive, REQUEST_TIMEOUT)?,
            url: gateway.url("/v1/getinfo"),
            rune: gateway.rune.clone(),
        })
    }

    pub fn rest_to(client: reqwest::Client, url: String, rune: &str) -> Worker {
        Worker::Rest {
            client,
            url,
            rune: rune.to_string(),
        }
    }

    pub async fn raw_http(port: u16, rune: &str) -> Result<Worker, String> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let request = format!(
            "POST /v1/getinfo HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nrune: {rune}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
        );
        Ok(Worker::RawHttp {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
            request: request.into_bytes(),
        })
    }

    pub async fn socket(path: &Path, rune: &str) -> Result<Worker, String> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
        // What the plugin sends for POST /v1/getinfo with an empty JSON object.
        let checkrune = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "checkrune",
            "params": {"rune": rune, "method": "getinfo", "params": {}},
        });
        let getinfo = json!({"jsonrpc": "2.0", "id": 2, "method": "getinfo", "params": {}});
        Ok(Worker::Socket {
            stream,
            buffer: Vec::with_capacity(64 * 1024),
            checkrune: checkrune.to_string().into_bytes(),
            getinfo: getinfo.to_string().into_bytes(),
        })
    }

    /// One request (or pair); `Err` describes a failure.
    pub async fn once(&mut self) -> Result<(), String> {
        match self {
            Worker::Rest { client, url, rune } => {
                let response = client
                    .post(url.as_str())
                    .header("Rune", rune.as_str())
                    .header("Content-Type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                let status = response.status();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| format!("reading the body failed: {e}"))?;
                if status.as_u16() != 201 {
                    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
                    return Err(format!("status {status}: {text}"));
                }
                Ok(())
            }
            Worker::RawHttp {
                stream,
                buffer,
                request,
            } => {
                let exchange = async {
                    stream
                        .write_all(request)
                        .await
                        .map_err(|e| format!("write failed: {e}"))?;
                    read_http_response(stream, buffer).await
                };
                let status = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                    .await
                    .map_err(|_| "raw HTTP request timed out".to_string())??;
                if status != 201 {
                    return Err(format!("status {status}"));
                }
                Ok(())
            }
            Worker::Socket {
                stream,
                buffer,
                checkrune,
                getinfo,
            } => {
                let pair = async {
                    for (method, request) in [("checkrune", &*checkrune), ("getinfo", &*getinfo)] {
                        stream
                            .write_all(request)
                            .await
                            .map_err(|e| format!("socket write failed: {e}"))?;
                        let frame = read_frame(stream, buffer).await?;
                        check_result_frame(&frame, method)?;
                    }
                    Ok(())
                };
                tokio::time::timeout(REQUEST_TIMEOUT, pair)
                    .await
                    .map_err(|_| "socket pair timed out".to_string())?
            }
        }
    }
}

/// Reads one `"\n\n"`-terminated frame (without the terminator); bytes after it stay in
/// `buffer`.
pub async fn read_frame(stream: &mut UnixStream, buffer: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut scanned = 0;
    loop {
        if let Some(at) = memchr::memmem::find(&buffer[scanned..], b"\n\n") {
            let end = scanned + at;
            let frame = buffer[..end].to_vec();
            buffer.drain(..end + 2);
            return Ok(frame);
        }
        scanned = buffer.len().saturating_sub(1);
        if buffer.len() > MAX_FRAME {
            return Err("frame larger than the client accepts".into());
        }
        buffer.reserve(64 * 1024);
        let n = stream
            .read_buf(buffer)
            .await
            .map_err(|e| format!("socket read failed: {e}"))?;
        if n == 0 {
            return Err("lightning-rpc closed the connection".into());
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body; returns its status.
pub async fn read_http_response(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<u16, String> {
    let mut scanned = 0;
    let (head_end, status, length) = loop {
        if let Some(at) = memchr::memmem::find(&buffer[scanned..], b"\r\n\r\n") {
            let head_end = scanned + at + 4;
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or("no status line")?;
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("no content-length")?;
            break (head_end, status, length);
        }
        scanned = buffer.len().saturating_sub(3);
        fill(stream, buffer).await?;
    };
    if length > MAX_FRAME {
        return Err("response larger than the client accepts".into());
    }
    while buffer.len() < head_end + length {
        fill(stream, buffer).await?;
    }
    buffer.drain(..head_end + length);
    Ok(status)
}

pub async fn fill(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
    if buffer.len() > MAX_FRAME {
        return Err("response larger than the client accepts".into());
    }
    buffer.reserve(16 * 1024);
    match stream.read_buf(buffer).await {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read failed: {e}")),
    }
}

/// An answer with a `result` member (the mock writes `{"jsonrpc","id","result"|"error"}`).
pub fn check_result_frame(frame: &[u8], method: &str) -> Result<(), String> {
    let head = &frame[..frame.len().min(64)];
    if memchr::memmem::find(head, b"\"result\":").is_some() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&frame[..frame.len().min(200)]);
        Err(format!("{method} failed: {text}"))
    }
}

/// One cell's measurements.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.ok as f64 / self.elapsed.as_secs_f64()
        }
    }
}

pub struct WorkerRun {
    pub started: Instant,
    pub finished: Instant,
    pub latencies_ns: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Runs `workers` concurrently: a warm-up, then all start together and loop for `duration`.
pub async fn run_cell(workers: Vec<Worker>, warmup: Duration, duration: Duration) -> Measured {
    let count = workers.len().max(1);
    let per_worker_cap = MAX_REQUESTS_PER_CELL / count;
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let warm_until = Instant::now() + warmup;
                for _ in 0..MAX_WARMUP_REQUESTS {
                    if Instant::now() >= warm_until {
                        break;
                    }
                    let _ = worker.once().await;
                }
                barrier.wait().await;
                let started = Instant::now();
                let deadline = started + duration;
                let mut latencies_ns = Vec::with_capacity(per_worker_cap.min(1 << 16));
                let mut errors = 0u64;
                let mut first_error = None;
                while latencies_ns.len() + (errors as usize) < per_worker_cap {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    match worker.once().await {
                        Ok(()) => {
                            let ns = sent.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                            latencies_ns.push(ns);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                            // Do not spin on a dead endpoint.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                WorkerRun {
                    started,
                    finished: Instant::now(),
                    latencies_ns,
                    errors,
                    first_error,
                }
            })
        })
        .collect();
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(run) => runs.push(run),
            Err(e) => eprintln!("a load worker panicked: {e}"),
        }
    }
    summarize(runs)
}

pub fn summarize(runs: Vec<WorkerRun>) -> Measured {
    let (Some(started), Some(finished)) = (
        runs.iter().map(|r| r.started).min(),
        runs.iter().map(|r| r.finished).max(),
    ) else {
        return Measured::default();
    };
    let mut latencies: Vec<u32> =
        Vec::with_capacity(runs.iter().map(|r| r.latencies_ns.len()).sum());
    let mut errors = 0;
    let mut first_error = None;
    for run in runs {
        latencies.extend_from_slice(&run.latencies_ns);
        errors += run.errors;
        if first_error.is_none() {
            first_error = run.first_error;
        }
    }
    latencies.sort_unstable();
    Measured {
        ok: latencies.len() as u64,
        errors,
        first_error,
        elapsed: finished - started,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    }
}

pub fn percentile(sorted_ns: &[u32], p: f64) -> Duration {
    if sorted_ns.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * (sorted_ns.len() - 1) as f64).round() as usize;
    Duration::from_nanos(sorted_ns[rank.min(sorted_ns.len() - 1)] as u64)
}
