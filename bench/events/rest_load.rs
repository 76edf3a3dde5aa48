//! REST load: `--concurrency` connections, each sending `POST /v1/getinfo` with the rune
//! back to back over HTTP/1.1 keep-alive (canned request bytes, as bench/rest's minimal
//! client), for a fixed time. Anything but a complete `201` answer is an error.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request taking longer than this is an error (and ends its connection's loop).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default)]
pub struct RestFigures {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
}

impl RestFigures {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Runs the load for `duration` on `concurrency` connections to `port`.
pub async fn run(port: u16, rune: String, concurrency: usize, duration: Duration) -> RestFigures {
    let request = format!(
        "POST /v1/getinfo HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nrune: {rune}\r\n\
         content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
    )
    .into_bytes();
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(port, request.clone(), deadline)))
        .collect();
    let mut figures = RestFigures::default();
    for worker in workers {
        let (requests, errors) = worker.await.unwrap_or((0, 1));
        figures.requests += requests;
        figures.errors += errors;
    }
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

/// (complete 201 answers, errors) of one connection.
async fn worker(port: u16, request: Vec<u8>, deadline: Instant) -> (u64, u64) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, 1);
    };
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(16 * 1024);
    let mut done = 0;
    while Instant::now() < deadline {
        let exchange = async {
            stream.write_all(&request).await.map_err(|_| ())?;
            read_answer(&mut stream, &mut buffer).await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(201)) => done += 1,
            Ok(Ok(_)) => return (done, 1),
            Ok(Err(())) | Err(_) => return (done, 1),
        }
    }
    (done, 0)
}

/// Reads one whole answer (headers and `content-length` bytes of body); its status.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<u16, ()> {
    buffer.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).map_err(|_| ())?;
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or(())?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or(())?;
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.map_err(|_| ())?;
                if n == 0 {
                    return Err(());
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
