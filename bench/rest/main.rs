//! REST throughput and latency benchmark (issue: "The benchmark harness").
//!
//! Run: `cargo bench --bench rest` (flags after `--`, see `--help`). It starts the real plugin
//! binary inside the mock lightningd (tests/mock_lightningd) over loopback and drives
//! `POST /v1/getinfo` with a valid rune over HTTP and HTTPS (keep-alive) at concurrency 1, 8
//! and 32. In the same run it measures the ceiling: the same `checkrune` + `getinfo` pair sent
//! straight to the mock's `lightning-rpc` socket at the same concurrency. Then the HTTPS
//! handshake cost (new connection per request vs keep-alive) and the large-result case
//! (`listinvoices` with 100,000 invoices, plain and compressed). It prints Markdown tables and
//! a PASS/FAIL line per target to stdout (progress goes to stderr); docs/performance.md keeps
//! the latest output.
//!
//! With `--lightningd PATH` it runs instead against a real regtest lightningd (`rest_real.rs`):
//! the plugin inside the node, against that node's own ceiling, over HTTP only.
//!
//! Layout: the mock lightningd runs on its own tokio runtime ("mock" threads), the load
//! generator on another ("load" threads), the plugin is a child process. Every loop is bounded
//! by time and by count; everything is on loopback.

#[path = "../tests/mock_lightningd/mod.rs"]
mod mock_lightningd;
#[path = "../tests/real_node/node.rs"]
mod real_node;
#[path = "rest_real.rs"]
mod rest_real;
#[path = "support/mod.rs"]
mod support;

use mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;

use support::args::{ArgError, CommandLine};
use support::procfs::{self, proc_kib};

const MIB: f64 = 1024.0 * 1024.0;
/// Most requests one cell sends, over all its workers (a bound besides the duration).
const MAX_REQUESTS_PER_CELL: usize = 2_000_000;
/// Most warm-up requests per worker.
const MAX_WARMUP_REQUESTS: usize = 200;
/// One request (or one checkrune + getinfo pair) that takes longer than this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// One large-result request that takes longer than this is an error.
const LARGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest frame the socket client accepts.
const MAX_FRAME: usize = 512 * 1024 * 1024;

// Targets (the issue's numbers).
const TARGET_THROUGHPUT_RATIO: f64 = 0.90;
const TARGET_ADDED_P50_MS: f64 = 0.1;
const TARGET_IDLE_RSS_MIB: f64 = 8.0;
const TARGET_AFTER_RSS_MIB: f64 = 16.0;
const TARGET_LARGE_RSS_FACTOR: f64 = 1.5;
const TARGET_LARGE_WALL_FACTOR: f64 = 1.2;
const TARGET_COMPRESSION_RATIO: f64 = 5.0;

const USAGE: &str = "\
cargo bench --bench rest [-- OPTIONS]

  --duration-secs S       measured time per cell (default 5)
  --warmup-ms MS          warm-up per cell, not measured (default 300)
  --concurrency LIST      e.g. 1,8,32 (default)
  --service-time-us LIST  checkrune service time in the mock, with database writes
                          serialized when > 0; e.g. 300, or 0,300 (default: 0,300)
  --protocols LIST        http,https (default)
  --handshake-secs S      per HTTPS/HTTP new-connection cell; 0 skips (default 2)
  --invoices N            large-result case size; 0 skips (default 100000)
  --large-repeats N       plain listinvoices repeats, via the plugin and direct (default 5)
  --no-breakdown          skip the c=1 breakdown cells (minimal HTTP client, a canned
                          in-process server), run at the first service time
  --strict                exit 1 if a target fails

Real node (instead of the mock; HTTP keep-alive only, the mock-only options above except
--duration-secs, --warmup-ms and --concurrency are ignored):
  --lightningd PATH       run the plugin inside a real regtest lightningd (PATH, with the
                          fake Bitcoin backend contrib/regtest/fake_bitcoind.py) and measure
                          POST /v1/getinfo against the same checkrune + getinfo pair sent
                          straight to that node's lightning-rpc
  --compare PATH          also run this plugin binary (e.g. CLN's own clnrest) in a second
                          node, cell by cell interleaved with ours, and print the ratio
  --rounds N              repeat every cell N times, interleaved (default 1, at most 20)
  --node-dir DIR          where the nodes' directories go (default /dev/shm, a tmpfs,
                          else the temp dir): checkrune writes to the node's database
  --client-threads N      load generator threads in this mode (default 1)
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http,
    Https,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }
}

struct Options {
    duration: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    service_times_us: Vec<u64>,
    protocols: Vec<Protocol>,
    handshake: Duration,
    invoices: usize,
    large_repeats: usize,
    breakdown: bool,
    strict: bool,
    /// `--lightningd`: the real-node mode.
    lightningd: Option<PathBuf>,
    /// `--compare`: a second plugin binary, real-node mode only.
    compare: Option<PathBuf>,
    rounds: usize,
    node_dir: Option<PathBuf>,
    client_threads: usize,
}

impl Options {
    fn parse() -> Result<Options, ArgError> {
        let mut options = Options {
            duration: Duration::from_secs(5),
            warmup: Duration::from_millis(300),
            concurrency: vec![1, 8, 32],
            service_times_us: vec![0, 300],
            protocols: vec![Protocol::Http, Protocol::Https],
            handshake: Duration::from_secs(2),
            invoices: 100_000,
            large_repeats: 5,
            breakdown: true,
            strict: false,
            lightningd: None,
            compare: None,
            rounds: 1,
            node_dir: None,
            client_threads: 1,
        };
        let mut line = CommandLine::from_env();
        while let Some(flag) = line.next_option()? {
            match flag.as_str() {
                "--strict" => options.strict = true,
                "--no-breakdown" => options.breakdown = false,
                "--duration-secs" => options.duration = seconds(&line.value()?)?,
                "--warmup-ms" => options.warmup = Duration::from_millis(number(&line.value()?)?),
                "--handshake-secs" => options.handshake = seconds(&line.value()?)?,
                "--invoices" => options.invoices = number(&line.value()?)? as usize,
                "--large-repeats" => {
                    options.large_repeats = (number(&line.value()?)? as usize).max(1)
                }
                "--concurrency" => {
                    options.concurrency = list(&line.value()?)?
                        .into_iter()
                        .map(|n| n as usize)
                        .collect();
                    if options.concurrency.contains(&0) || options.concurrency.is_empty() {
                        return Err("--concurrency needs numbers above 0".into());
                    }
                }
                "--lightningd" => options.lightningd = Some(PathBuf::from(line.value()?)),
                "--compare" | "--plugin-binary" => {
                    options.compare = Some(PathBuf::from(line.value()?))
                }
                "--node-dir" => options.node_dir = Some(PathBuf::from(line.value()?)),
                "--rounds" => {
                    options.rounds = number(&line.value()?)? as usize;
                    if !(1..=20).contains(&options.rounds) {
                        return Err("--rounds is between 1 and 20".into());
                    }
                }
                "--client-threads" => {
                    options.client_threads = number(&line.value()?)? as usize;
                    if !(1..=64).contains(&options.client_threads) {
                        return Err("--client-threads is between 1 and 64".into());
                    }
                }
                "--service-time-us" => options.service_times_us = list(&line.value()?)?,
                "--protocols" => {
                    options.protocols = line
                        .value()?
                        .split(',')
                        .map(|p| match p.trim().to_ascii_lowercase().as_str() {
                            "http" => Ok(Protocol::Http),
                            "https" => Ok(Protocol::Https),
                            other => Err(format!("unknown protocol {other:?}")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => return Err(format!("unknown argument {other:?}").into()),
            }
        }
        if options.duration > Duration::from_secs(600) {
            return Err("--duration-secs is at most 600".into());
        }
        if options.compare.is_some() && options.lightningd.is_none() {
            return Err("--compare needs --lightningd".into());
        }
        Ok(options)
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {text:?}"))?;
    if !(0.0..=600.0).contains(&secs) {
        return Err(format!("seconds out of range: {text}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn list(text: &str) -> Result<Vec<u64>, String> {
    text.split(',').map(number).collect()
}

// ---------------------------------------------------------------------------------------
// The machine and the plugin process (from /proc).

struct Machine {
    cores: usize,
    cpu: String,
    memory: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory = proc_kib("/proc/meminfo", "MemTotal:")
            .map(|kib| format!("{:.1} GiB", kib as f64 / MIB))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory,
        }
    }
}

fn load_average() -> String {
    procfs::load_average().unwrap_or_else(|| "unknown".into())
}

#[derive(Clone, Copy, Debug, Default)]
struct Rss {
    /// VmRSS, bytes.
    now: u64,
    /// VmHWM (peak since start or the last reset), bytes.
    peak: u64,
    /// RssAnon (heap, stacks), bytes.
    anon: u64,
    /// RssFile (the binary's and libraries' pages touched), bytes.
    file: u64,
    threads: u64,
}

fn rss(pid: u32) -> Rss {
    let status = procfs::status(&pid.to_string());
    Rss {
        now: status.rss_kib * 1024,
        peak: status.hwm_kib * 1024,
        anon: status.anon_kib * 1024,
        file: status.file_kib * 1024,
        threads: status.threads,
    }
}

/// Resets VmHWM to the current RSS (`echo 5 > clear_refs`); false if not permitted.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

// ---------------------------------------------------------------------------------------
// The plugin behind a mock lightningd.

struct Gateway {
    node: MockLightningd,
    protocol: Protocol,
    port: u16,
    pid: u32,
    rune: String,
    ca_pem: Option<Vec<u8>>,
}

impl Gateway {
    /// Starts the plugin; must run on the mock's runtime (its tasks stay there).
    async fn start(protocol: Protocol) -> Result<Gateway, String> {
        Gateway::start_in(protocol, None).await
    }

    /// Starts the plugin in `lightning_dir` (certificates already there are reused), or in a
    /// fresh temporary one.
    async fn start_in(protocol: Protocol, lightning_dir: Option<&Path>) -> Result<Gateway, String> {
        let port = MockLightningd::free_port();
        let protocol_option = match protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
        };
        let mut builder = MockLightningd::builder().options(json!({
            "clnrest-port": port,
            "clnrest-protocol": protocol_option,
        }));
        if let Some(dir) = lightning_dir {
            builder = builder.lightning_dir(dir);
        }
        let node = builder.start().await;
        if node.init_result() != &json!({}) {
            return Err(format!(
                "the plugin refused to start: {}",
                node.init_result()
            ));
        }
        let pid = node
            .pid()
            .ok_or_else(|| "the mock started no plugin process".to_string())?;
        let ca_pem = match protocol {
            Protocol::Http => None,
            Protocol::Https => {
                let path = node.lightning_dir().join("ca.pem");
                Some(
                    std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                )
            }
        };
        let rune = node.create_rune(Value::Null);
        Ok(Gateway {
            node,
            protocol,
            port,
            pid,
            rune,
            ca_pem,
        })
    }

    fn url(&self, path: &str) -> String {
        // The server certificate names 127.0.0.1 (clnrest-host) as well as localhost.
        match self.protocol {
            Protocol::Http => format!("http://127.0.0.1:{}{path}", self.port),
            Protocol::Https => format!("https://127.0.0.1:{}{path}", self.port),
        }
    }

    /// An HTTP/1.1 client; `keep_alive: false` opens a new connection for every request.
    fn client(&self, keep_alive: bool, timeout: Duration) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .no_proxy();
        if let Some(pem) = &self.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem).map_err(|e| format!("ca.pem: {e}"))?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        builder.build().map_err(|e| format!("reqwest client: {e}"))
    }

    fn set_service_time(&self, service_time_us: u64) {
        let faults = self.node.faults();
        faults.set_delay("checkrune", Duration::from_micros(service_time_us));
        faults.serialize_writes(service_time_us > 0);
    }
}

// ---------------------------------------------------------------------------------------
// Load generation.

/// One client connection's request loop body.
enum Worker {
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
    fn rest(gateway: &Gateway, keep_alive: bool) -> Result<Worker, String> {
        Ok(Worker::Rest {
            client: gateway.client(keep_alive, REQUEST_TIMEOUT)?,
            url: gateway.url("/v1/getinfo"),
            rune: gateway.rune.clone(),
        })
    }

    fn rest_to(client: reqwest::Client, url: String, rune: &str) -> Worker {
        Worker::Rest {
            client,
            url,
            rune: rune.to_string(),
        }
    }

    async fn raw_http(port: u16, rune: &str) -> Result<Worker, String> {
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

    async fn socket(path: &Path, rune: &str) -> Result<Worker, String> {
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
    async fn once(&mut self) -> Result<(), String> {
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
async fn read_frame(stream: &mut UnixStream, buffer: &mut Vec<u8>) -> Result<Vec<u8>, String> {
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
async fn read_http_response(
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

async fn fill(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
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

/// A stand-in for the plugin with nothing behind it: `POST /v1/getinfo` answers 201 with a
/// fixed body at once, served by axum in this process. The distance between it and the
/// ceiling is what the HTTP client, loopback TCP and the HTTP server cost.
async fn start_floor(body: bytes::Bytes) -> Result<u16, String> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the floor server: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("floor server address: {e}"))?
        .port();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().route(
        "/v1/getinfo",
        axum::routing::post(move || {
            let body = body.clone();
            async move {
                (
                    axum::http::StatusCode::CREATED,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// An answer with a `result` member (the mock writes `{"jsonrpc","id","result"|"error"}`).
fn check_result_frame(frame: &[u8], method: &str) -> Result<(), String> {
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
struct Measured {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Measured {
    fn per_second(&self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.ok as f64 / self.elapsed.as_secs_f64()
        }
    }
}

struct WorkerRun {
    started: Instant,
    finished: Instant,
    latencies_ns: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `workers` concurrently: a warm-up, then all start together and loop for `duration`.
async fn run_cell(workers: Vec<Worker>, warmup: Duration, duration: Duration) -> Measured {
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

fn summarize(runs: Vec<WorkerRun>) -> Measured {
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

fn percentile(sorted_ns: &[u32], p: f64) -> Duration {
    if sorted_ns.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * (sorted_ns.len() - 1) as f64).round() as usize;
    Duration::from_nanos(sorted_ns[rank.min(sorted_ns.len() - 1)] as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------
// The large-result case.

/// Sends one request straight to the socket and reads its answer without keeping it (as the
/// HTTP client does with the plugin's): (wall time, frame bytes).
async fn direct_call(path: &Path, request: &str) -> Result<(Duration, usize), String> {
    let call = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut head: Vec<u8> = Vec::with_capacity(64);
        let mut total = 0usize;
        let mut last = 0u8;
        let sent = Instant::now();
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("socket write failed: {e}"))?;
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("socket read failed: {e}"))?;
            if n == 0 {
                return Err("lightning-rpc closed the connection".into());
            }
            let bytes = &chunk[..n];
            if head.len() < 64 {
                let take = (64 - head.len()).min(n);
                head.extend_from_slice(&bytes[..take]);
            }
            let end = if last == b'\n' && bytes[0] == b'\n' {
                Some(0)
            } else {
                memchr::memmem::find(bytes, b"\n\n").map(|at| at + 1)
            };
            if let Some(end) = end {
                total += end + 1;
                break;
            }
            total += n;
            last = bytes[n - 1];
            if total > MAX_FRAME {
                return Err("frame larger than the client accepts".into());
            }
        }
        let wall = sent.elapsed();
        check_result_frame(&head, "listinvoices")?;
        Ok((wall, total - 2))
    };
    tokio::time::timeout(LARGE_TIMEOUT, call)
        .await
        .map_err(|_| "direct listinvoices timed out".to_string())?
}

#[derive(Clone, Debug)]
struct LargeRun {
    wall: Duration,
    /// Body bytes as sent (compressed if asked).
    body: usize,
    content_encoding: String,
    rss_before: u64,
    /// Peak RSS during the request (VmHWM after a reset, or sampled).
    rss_peak: u64,
    rss_after: u64,
}

/// Peak RSS of `pid` while `work` runs: VmHWM after a reset if allowed, else sampled.
struct PeakWatch {
    pid: u32,
    hwm_reset: bool,
    stop: Arc<AtomicBool>,
    sampled: Arc<AtomicU64>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakWatch {
    fn start(pid: u32, can_reset: bool) -> PeakWatch {
        let hwm_reset = can_reset && reset_peak(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let sampled = Arc::new(AtomicU64::new(rss(pid).now));
        let sampler = (!hwm_reset).then(|| {
            let (stop, sampled) = (Arc::clone(&stop), Arc::clone(&sampled));
            std::thread::spawn(move || {
                // Bounded: stops when told, or after LARGE_TIMEOUT.
                let until = Instant::now() + LARGE_TIMEOUT;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    sampled.fetch_max(rss(pid).now, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        PeakWatch {
            pid,
            hwm_reset,
            stop,
            sampled,
            sampler,
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        let now = rss(self.pid);
        if self.hwm_reset {
            now.peak
        } else {
            self.sampled.load(Ordering::Relaxed).max(now.now)
        }
    }
}

async fn rest_large(
    gateway: &Gateway,
    client: &reqwest::Client,
    encoding: Option<&str>,
    can_reset: bool,
) -> Result<LargeRun, String> {
    let rss_before = rss(gateway.pid).now;
    let watch = PeakWatch::start(gateway.pid, can_reset);
    let sent = Instant::now();
    let mut request = client
        .post(gateway.url("/v1/listinvoices"))
        .header("Rune", gateway.rune.as_str())
        .header("Content-Type", "application/json")
        .body("{}");
    if let Some(encoding) = encoding {
        request = request.header("Accept-Encoding", encoding);
    }
    let outcome = async {
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let content_encoding = response
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .to_string();
        let mut body = 0usize;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
        {
            body += chunk.len();
        }
        if status != 201 {
            return Err(format!("status {status}"));
        }
        Ok((body, content_encoding))
    }
    .await;
    let wall = sent.elapsed();
    let rss_peak = watch.finish();
    let (body, content_encoding) = outcome?;
    Ok(LargeRun {
        wall,
        body,
        content_encoding,
        rss_before,
        rss_peak,
        rss_after: rss(gateway.pid).now,
    })
}

struct LargeResult {
    invoices: usize,
    direct: Vec<(Duration, usize)>,
    plain: Vec<LargeRun>,
    compressed: Vec<(&'static str, Result<LargeRun, String>)>,
    hwm_reset: bool,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The run.

#[derive(Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Ceiling,
    /// Judged against the targets.
    Plugin,
    /// Where the time goes; not judged.
    Breakdown,
}

struct CellRow {
    kind: RowKind,
    service_time_us: u64,
    concurrency: usize,
    client: String,
    measured: Measured,
    ceiling: Option<Measured>,
}

struct PluginMemory {
    service_time_us: u64,
    protocol: Protocol,
    /// Whether this start found the certificates of an earlier one (the usual restart).
    certificates_reused: bool,
    /// Right after init was answered.
    at_init: Rss,
    /// Half a second later (start-up work, such as reading `help` for the method list, done).
    idle: Rss,
    after_top: Option<(usize, Rss)>,
}

impl PluginMemory {
    /// `gateway`'s memory now that it has idled, with `at_init` read right after its start.
    fn idle(
        gateway: &Gateway,
        service_time_us: u64,
        certificates_reused: bool,
        at_init: Rss,
    ) -> Self {
        PluginMemory {
            service_time_us,
            protocol: gateway.protocol,
            certificates_reused,
            at_init,
            idle: rss(gateway.pid),
            after_top: None,
        }
    }
}

struct HandshakeRow {
    protocol: Protocol,
    concurrency: usize,
    new_connection: Measured,
    keep_alive: Option<Measured>,
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(ArgError::Help) => {
            eprint!("{USAGE}");
            std::process::exit(0);
        }
        Err(ArgError::Invalid(message)) => {
            eprintln!("{message}\n");
            eprint!("{USAGE}");
            std::process::exit(2);
        }
    };
    let outcome = match &options.lightningd {
        Some(lightningd) => rest_real::run(&options, lightningd).map(|()| true),
        None => run(&options),
    };
    match outcome {
        Ok(all_passed) => {
            if options.strict && !all_passed {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("rest bench failed: {e}");
            std::process::exit(2);
        }
    }
}

fn runtime(name: &str, threads: usize) -> Result<Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the {name} runtime: {e}"))
}

/// An HTTPS plugin's memory when it starts in a lightning-dir where an earlier start left its
/// certificates, as on every start of a node's plugin but the first.
fn restarted_https_memory(mock_rt: &Runtime) -> Result<PluginMemory, String> {
    let temp = tempfile::Builder::new()
        .prefix("rest-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let lightning_dir = temp.path().join("regtest");
    let first = mock_rt.block_on(Gateway::start_in(Protocol::Https, Some(&lightning_dir)))?;
    {
        let _runtime = mock_rt.enter();
        drop(first);
    }
    let gateway = mock_rt.block_on(Gateway::start_in(Protocol::Https, Some(&lightning_dir)))?;
    let at_init = rss(gateway.pid);
    std::thread::sleep(Duration::from_millis(500));
    let memory = PluginMemory::idle(&gateway, 0, true, at_init);
    let _runtime = mock_rt.enter();
    drop(gateway);
    Ok(memory)
}

fn run(options: &Options) -> Result<bool, String> {
    let machine = Machine::read();
    let load_before = load_average();
    let began = Instant::now();
    let threads = machine.cores.max(1);
    let mock_rt = runtime("mock", threads)?;
    let load_rt = runtime("load", threads)?;

    let mut rows: Vec<CellRow> = Vec::new();
    let mut memory: Vec<PluginMemory> = Vec::new();
    let mut handshakes: Vec<HandshakeRow> = Vec::new();
    let mut handshake_service_time = None;
    let top = options.concurrency.iter().copied().max().unwrap_or(1);

    if options.protocols.contains(&Protocol::Https) {
        eprintln!("starting the plugin twice in one lightning-dir (HTTPS, certificates reused)");
        memory.push(restarted_https_memory(&mock_rt)?);
    }

    for &service_time_us in &options.service_times_us {
        let mut gateways = Vec::new();
        let mut at_init = Vec::new();
        for &protocol in &options.protocols {
            eprintln!(
                "starting the plugin ({}, service time {service_time_us} us)",
                protocol.name()
            );
            let gateway = mock_rt.block_on(Gateway::start(protocol))?;
            at_init.push(rss(gateway.pid));
            gateway.set_service_time(service_time_us);
            gateways.push(gateway);
        }
        // Let start-up work (certificates, first log lines) settle before "idle".
        std::thread::sleep(Duration::from_millis(500));
        let mut memories: Vec<PluginMemory> = gateways
            .iter()
            .zip(at_init)
            .map(|(g, at_init)| PluginMemory::idle(g, service_time_us, false, at_init))
            .collect();
        let rpc_path = gateways
            .first()
            .map(|g| g.node.rpc_path())
            .ok_or("no protocol to run")?;
        let ceiling_rune = gateways[0].rune.clone();

        for &concurrency in &options.concurrency {
            eprintln!("  c={concurrency}: ceiling");
            let workers = load_rt.block_on(async {
                let mut workers = Vec::new();
                for _ in 0..concurrency {
                    workers.push(Worker::socket(&rpc_path, &ceiling_rune).await?);
                }
                Ok::<_, String>(workers)
            })?;
            let ceiling = load_rt.block_on(run_cell(workers, options.warmup, options.duration));
            rows.push(CellRow {
                kind: RowKind::Ceiling,
                service_time_us,
                concurrency,
                client: "ceiling (socket)".into(),
                measured: ceiling.clone(),
                ceiling: None,
            });
            for (gateway, memory) in gateways.iter().zip(memories.iter_mut()) {
                eprintln!("  c={concurrency}: {}", gateway.protocol.name());
                let workers = {
                    let _guard = load_rt.enter();
                    (0..concurrency)
                        .map(|_| Worker::rest(gateway, true))
                        .collect::<Result<Vec<_>, _>>()?
                };
                let measured =
                    load_rt.block_on(run_cell(workers, options.warmup, options.duration));
                if concurrency == top {
                    memory.after_top = Some((concurrency, rss(gateway.pid)));
                }
                rows.push(CellRow {
                    kind: RowKind::Plugin,
                    service_time_us,
                    concurrency,
                    client: format!("{} keep-alive", gateway.protocol.name()),
                    measured,
                    ceiling: Some(ceiling.clone()),
                });
            }
        }
        memory.extend(memories);

        // Where the added latency goes, at c=1 over HTTP, once.
        let http_gateway = gateways.iter().find(|g| g.protocol == Protocol::Http);
        if let (true, false, Some(gateway)) = (
            options.breakdown,
            rows.iter().any(|r| r.kind == RowKind::Breakdown),
            http_gateway,
        ) {
            run_breakdown(
                options,
                gateway,
                service_time_us,
                &mock_rt,
                &load_rt,
                &mut rows,
            )?;
        }

        // The handshake cost, once, on the first service time's plugins.
        if handshake_service_time.is_none() && !options.handshake.is_zero() {
            handshake_service_time = Some(service_time_us);
            for gateway in &gateways {
                for concurrency in [1usize, 8] {
                    eprintln!(
                        "  handshake: {} new connection per request, c={concurrency}",
                        gateway.protocol.name()
                    );
                    let workers = {
                        let _guard = load_rt.enter();
                        (0..concurrency)
                            .map(|_| Worker::rest(gateway, false))
                            .collect::<Result<Vec<_>, _>>()?
                    };
                    let new_connection = load_rt.block_on(run_cell(
                        workers,
                        options.warmup.min(Duration::from_millis(100)),
                        options.handshake,
                    ));
                    let label = format!("{} keep-alive", gateway.protocol.name());
                    let keep_alive = rows
                        .iter()
                        .find(|r| {
                            r.service_time_us == service_time_us
                                && r.concurrency == concurrency
                                && r.client == label
                        })
                        .map(|r| r.measured.clone());
                    handshakes.push(HandshakeRow {
                        protocol: gateway.protocol,
                        concurrency,
                        new_connection,
                        keep_alive,
                    });
                }
            }
        }

        let _guard = mock_rt.enter();
        drop(gateways);
    }

    let large = if options.invoices > 0 {
        Some(run_large(options, &mock_rt, &load_rt)?)
    } else {
        None
    };

    let report = Report {
        options,
        machine: &machine,
        load_before,
        load_after: load_average(),
        total: began.elapsed(),
        rows: &rows,
        memory: &memory,
        handshakes: &handshakes,
        handshake_service_time,
        large: large.as_ref(),
    };
    let (text, all_passed) = report.render();
    print!("{text}");
    {
        let _guard = mock_rt.enter();
        drop(large);
    }
    // The runtimes may hold the mocks' socket tasks; do not wait for them.
    mock_rt.shutdown_background();
    load_rt.shutdown_background();
    Ok(all_passed)
}

fn run_breakdown(
    options: &Options,
    gateway: &Gateway,
    service_time_us: u64,
    mock_rt: &Runtime,
    load_rt: &Runtime,
    rows: &mut Vec<CellRow>,
) -> Result<(), String> {
    let ceiling = rows
        .iter()
        .find(|r| {
            r.kind == RowKind::Ceiling && r.service_time_us == service_time_us && r.concurrency == 1
        })
        .map(|r| r.measured.clone());
    // The exact body the plugin serves, for the canned server.
    let body = load_rt.block_on(async {
        let client = gateway.client(true, REQUEST_TIMEOUT)?;
        let response = client
            .post(gateway.url("/v1/getinfo"))
            .header("Rune", gateway.rune.as_str())
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .map_err(|e| format!("getinfo for the canned body: {e}"))?;
        response
            .bytes()
            .await
            .map_err(|e| format!("getinfo for the canned body: {e}"))
    })?;
    let floor_port = mock_rt.block_on(start_floor(body))?;
    let floor_url = format!("http://127.0.0.1:{floor_port}/v1/getinfo");
    type Make<'a> = Box<dyn Fn() -> Result<Worker, String> + 'a>;
    let cells: Vec<(&str, Make)> = vec![
        (
            "breakdown: reqwest -> canned in-process axum (no plugin, no lightningd)",
            Box::new(|| {
                let _guard = load_rt.enter();
                Ok(Worker::rest_to(
                    gateway.client(true, REQUEST_TIMEOUT)?,
                    floor_url.clone(),
                    &gateway.rune,
                ))
            }),
        ),
        (
            "breakdown: minimal HTTP/1.1 client -> canned in-process axum",
            Box::new(|| load_rt.block_on(Worker::raw_http(floor_port, &gateway.rune))),
        ),
        (
            "breakdown: minimal HTTP/1.1 client -> plugin",
            Box::new(|| load_rt.block_on(Worker::raw_http(gateway.port, &gateway.rune))),
        ),
    ];
    for (label, make) in cells {
        eprintln!("  c=1: {label}");
        let worker = make()?;
        let measured = load_rt.block_on(run_cell(vec![worker], options.warmup, options.duration));
        rows.push(CellRow {
            kind: RowKind::Breakdown,
            service_time_us,
            concurrency: 1,
            client: label.to_string(),
            measured,
            ceiling: ceiling.clone(),
        });
    }
    Ok(())
}

fn run_large(
    options: &Options,
    mock_rt: &Runtime,
    load_rt: &Runtime,
) -> Result<LargeResult, String> {
    eprintln!(
        "large result: starting the plugin (HTTP), {} invoices",
        options.invoices
    );
    let gateway = mock_rt.block_on(Gateway::start(Protocol::Http))?;
    gateway.node.add_invoices(options.invoices);
    std::thread::sleep(Duration::from_millis(300));
    let can_reset = reset_peak(gateway.pid);
    let client = {
        let _guard = load_rt.enter();
        gateway.client(true, LARGE_TIMEOUT)?
    };
    let rpc_path = gateway.node.rpc_path();
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"listinvoices","params":{}}"#;
    let mut direct = Vec::new();
    let mut plain = Vec::new();
    let mut compressed = Vec::new();
    load_rt.block_on(async {
        // Warm both paths once (first-touch of the mock's and the plugin's allocations).
        let _ = direct_call(&rpc_path, request).await;
        for repeat in 0..options.large_repeats {
            eprintln!("  listinvoices repeat {}", repeat + 1);
            direct.push(direct_call(&rpc_path, request).await?);
            plain.push(rest_large(&gateway, &client, None, can_reset).await?);
        }
        for encoding in ["gzip", "br", "zstd"] {
            eprintln!("  listinvoices Accept-Encoding: {encoding}");
            compressed.push((
                encoding,
                rest_large(&gateway, &client, Some(encoding), can_reset).await,
            ));
        }
        Ok::<_, String>(())
    })?;
    let _guard = mock_rt.enter();
    drop(gateway);
    Ok(LargeResult {
        invoices: options.invoices,
        direct,
        plain,
        compressed,
        hwm_reset: can_reset,
    })
}

// ---------------------------------------------------------------------------------------
// The report.

struct Report<'a> {
    options: &'a Options,
    machine: &'a Machine,
    load_before: String,
    load_after: String,
    total: Duration,
    rows: &'a [CellRow],
    memory: &'a [PluginMemory],
    handshakes: &'a [HandshakeRow],
    handshake_service_time: Option<u64>,
    large: Option<&'a LargeResult>,
}

struct Verdicts {
    lines: Vec<String>,
    all_passed: bool,
}

impl Verdicts {
    fn add(&mut self, pass: bool, text: String) {
        self.all_passed &= pass;
        self.lines
            .push(format!("- {} {text}", if pass { "PASS" } else { "FAIL" }));
    }
}

impl Report<'_> {
    fn render(&self) -> (String, bool) {
        let mut out = String::new();
        let o = self.options;
        let _ = writeln!(out, "### REST throughput and latency: latest run\n");
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        let _ = writeln!(
            out,
            "Command: `cargo bench --bench rest{}`\n",
            if args.is_empty() {
                String::new()
            } else {
                format!(" -- {}", args.join(" "))
            }
        );
        let _ = writeln!(
            out,
            "Machine: {} cores ({}), {} RAM. Load average before: {}, after: {}. Total run time {:.0} s.",
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory,
            self.load_before,
            self.load_after,
            self.total.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "Per cell: {:.1} s measured after {} ms warm-up; service times (checkrune, writes serialized when > 0): {:?} us.\n",
            o.duration.as_secs_f64(),
            o.warmup.as_millis(),
            o.service_times_us
        );

        let _ = writeln!(
            out,
            "| service time | concurrency | client | req/s | p50 ms | p99 ms | errors | vs ceiling | p50 added ms |"
        );
        let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        for row in self.rows {
            let m = &row.measured;
            let (ratio, added) = match &row.ceiling {
                Some(c) if c.per_second() > 0.0 => (
                    format!("{:.0}%", 100.0 * m.per_second() / c.per_second()),
                    format!("{:+.3}", ms(m.p50) - ms(c.p50)),
                ),
                _ => ("".into(), "".into()),
            };
            let _ = writeln!(
                out,
                "| {} us | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} |",
                row.service_time_us,
                row.concurrency,
                row.client,
                m.per_second(),
                ms(m.p50),
                ms(m.p99),
                m.errors,
                ratio,
                added
            );
        }
        for row in self.rows {
            if let Some(e) = &row.measured.first_error {
                let _ = writeln!(
                    out,
                    "\nFirst error ({} us, c={}, {}): `{}`",
                    row.service_time_us, row.concurrency, row.client, e
                );
            }
        }

        // What the mock's service time really costs: tokio's timer rounds sleeps up to
        // whole milliseconds.
        let ceiling_c1 = |service_time_us: u64| {
            self.rows
                .iter()
                .find(|r| {
                    r.service_time_us == service_time_us
                        && r.concurrency == 1
                        && r.kind == RowKind::Ceiling
                })
                .map(|r| r.measured.p50)
        };
        for &service_time_us in o.service_times_us.iter().filter(|&&t| t > 0) {
            if let (Some(with), Some(without)) = (ceiling_c1(service_time_us), ceiling_c1(0)) {
                let _ = writeln!(
                    out,
                    "\nService time asked {service_time_us} us; measured at c=1 (ceiling p50 with it minus without): {:.3} ms.",
                    ms(with) - ms(without)
                );
            }
        }

        let _ = writeln!(out, "\nPlugin memory (from /proc/<pid>/status):\n");
        let _ = writeln!(
            out,
            "| service time | plugin | VmRSS at init MiB | idle VmRSS MiB (anon + file), 0.5 s later | threads | VmRSS after top concurrency MiB (anon + file) | VmHWM MiB |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|");
        for m in self.memory {
            let (after, peak) = match m.after_top {
                Some((c, r)) => (
                    format!(
                        "{:.1} ({:.1} + {:.1}) (c={c})",
                        mib(r.now),
                        mib(r.anon),
                        mib(r.file)
                    ),
                    format!("{:.1}", mib(r.peak)),
                ),
                None => ("".into(), "".into()),
            };
            let _ = writeln!(
                out,
                "| {} us | {} | {:.1} | {:.1} ({:.1} + {:.1}) | {} | {} | {} |",
                m.service_time_us,
                if m.certificates_reused {
                    format!("{} (restart, certificates reused)", m.protocol.name())
                } else {
                    m.protocol.name().to_string()
                },
                mib(m.at_init.now),
                mib(m.idle.now),
                mib(m.idle.anon),
                mib(m.idle.file),
                m.idle.threads,
                after,
                peak
            );
        }

        if !self.handshakes.is_empty() {
            let _ = writeln!(
                out,
                "\nConnection cost (service time {} us): a new connection per request vs keep-alive:\n",
                self.handshake_service_time.unwrap_or(0)
            );
            let _ = writeln!(
                out,
                "| protocol | concurrency | new conn req/s | new conn p50 ms | new conn p99 ms | errors | keep-alive req/s | keep-alive p50 ms | cost per connection (p50) ms |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for h in self.handshakes {
                let n = &h.new_connection;
                let (ka_rps, ka_p50, cost) = match &h.keep_alive {
                    Some(k) => (
                        format!("{:.0}", k.per_second()),
                        format!("{:.3}", ms(k.p50)),
                        format!("{:.3}", ms(n.p50) - ms(k.p50)),
                    ),
                    None => ("".into(), "".into(), "".into()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} |",
                    h.protocol.name(),
                    h.concurrency,
                    n.per_second(),
                    ms(n.p50),
                    ms(n.p99),
                    n.errors,
                    ka_rps,
                    ka_p50,
                    cost
                );
            }
            for h in self.handshakes {
                if let Some(e) = &h.new_connection.first_error {
                    let _ = writeln!(
                        out,
                        "\nFirst error ({} new connection, c={}): `{e}`",
                        h.protocol.name(),
                        h.concurrency
                    );
                }
            }
        }

        let mut verdicts = Verdicts {
            lines: Vec::new(),
            all_passed: true,
        };
        self.judge_cells(&mut verdicts);
        if let Some(large) = self.large {
            self.render_large(&mut out, large, &mut verdicts);
        }
        let _ = writeln!(out, "\nTargets:\n");
        for line in &verdicts.lines {
            let _ = writeln!(out, "{line}");
        }
        (out, verdicts.all_passed)
    }

    fn judge_cells(&self, verdicts: &mut Verdicts) {
        // Throughput per (service time, protocol): every concurrency at >= 90%.
        let mut groups: Vec<(u64, String)> = Vec::new();
        for row in self.rows.iter().filter(|r| r.kind == RowKind::Plugin) {
            let key = (row.service_time_us, row.client.clone());
            if !groups.contains(&key) {
                groups.push(key);
            }
        }
        for (service_time_us, client) in &groups {
            let mut pass = true;
            let mut parts = Vec::new();
            for row in self.rows.iter().filter(|r| {
                r.kind == RowKind::Plugin
                    && r.service_time_us == *service_time_us
                    && &r.client == client
            }) {
                let ceiling = row.ceiling.as_ref().map_or(0.0, |c| c.per_second());
                let ratio = if ceiling > 0.0 {
                    row.measured.per_second() / ceiling
                } else {
                    0.0
                };
                pass &= ratio >= TARGET_THROUGHPUT_RATIO && row.measured.errors == 0;
                parts.push(format!(
                    "c={} {:.0}%{}",
                    row.concurrency,
                    100.0 * ratio,
                    if row.measured.errors > 0 {
                        format!(" ({} errors)", row.measured.errors)
                    } else {
                        String::new()
                    }
                ));
            }
            verdicts.add(
                pass,
                format!(
                    "throughput >= 90% of the ceiling, {client}, service time {service_time_us} us: {}",
                    parts.join(", ")
                ),
            );
        }
        // Added latency at concurrency 1 over HTTP.
        for row in self.rows.iter().filter(|r| {
            r.kind == RowKind::Plugin && r.concurrency == 1 && r.client == "HTTP keep-alive"
        }) {
            if let Some(ceiling) = &row.ceiling {
                let added = ms(row.measured.p50) - ms(ceiling.p50);
                verdicts.add(
                    added <= TARGET_ADDED_P50_MS,
                    format!(
                        "added p50 latency at c=1 over HTTP <= 0.1 ms, service time {} us: {:.3} ms (plugin {:.3} - ceiling {:.3})",
                        row.service_time_us,
                        added,
                        ms(row.measured.p50),
                        ms(ceiling.p50)
                    ),
                );
            }
        }
        if let Some(worst) = self.memory.iter().map(|m| m.idle.now).max() {
            verdicts.add(
                mib(worst) <= TARGET_IDLE_RSS_MIB,
                format!(
                    "idle RSS <= 8 MiB: {:.1} MiB (largest of {} plugin starts)",
                    mib(worst),
                    self.memory.len()
                ),
            );
        }
        let afters: Vec<(usize, Rss)> = self.memory.iter().filter_map(|m| m.after_top).collect();
        if let Some(&(c, worst)) = afters.iter().max_by_key(|(_, r)| r.now) {
            let peak = afters.iter().map(|(_, r)| r.peak).max().unwrap_or(0);
            verdicts.add(
                mib(worst.now) <= TARGET_AFTER_RSS_MIB,
                format!(
                    "RSS <= 16 MiB after the c={c} run: {:.1} MiB (peak VmHWM {:.1} MiB)",
                    mib(worst.now),
                    mib(peak)
                ),
            );
        }
    }

    fn render_large(&self, out: &mut String, large: &LargeResult, verdicts: &mut Verdicts) {
        let direct_wall = median(large.direct.iter().map(|d| d.0).collect());
        let frame = large.direct.first().map_or(0, |d| d.1);
        let plugin_wall = median(large.plain.iter().map(|r| r.wall).collect());
        let size = large.plain.first().map_or(0, |r| r.body);
        let _ = writeln!(
            out,
            "\nLarge result: `listinvoices` with {} invoices, {:.1} MB of JSON (peak RSS from {}):\n",
            large.invoices,
            size as f64 / 1e6,
            if large.hwm_reset {
                "VmHWM reset before each request"
            } else {
                "VmRSS sampled every 2 ms"
            }
        );
        let _ = writeln!(
            out,
            "| path | Accept-Encoding | body MB | wall ms | ratio | RSS before MiB | peak RSS growth MiB | growth / response | RSS after MiB |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (wall, bytes) in &large.direct {
            let _ = writeln!(
                out,
                "| socket (direct) | | {:.1} | {:.0} | | | | | |",
                *bytes as f64 / 1e6,
                ms(*wall)
            );
        }
        let row = |out: &mut String, encoding: &str, r: &LargeRun| {
            let growth = r.rss_peak.saturating_sub(r.rss_before);
            let ratio = if r.body > 0 {
                format!("{:.1}x smaller", size as f64 / r.body as f64)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| plugin (HTTP) | {} | {:.2} | {:.0} | {} | {:.1} | {:.1} | {:.2} | {:.1} |",
                encoding,
                r.body as f64 / 1e6,
                ms(r.wall),
                if encoding == "identity" {
                    String::new()
                } else {
                    ratio
                },
                mib(r.rss_before),
                mib(growth),
                growth as f64 / size.max(1) as f64,
                mib(r.rss_after)
            );
        };
        for r in &large.plain {
            row(out, "identity", r);
        }
        for (encoding, outcome) in &large.compressed {
            match outcome {
                Ok(r) => row(out, &format!("{encoding} (got {})", r.content_encoding), r),
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "| plugin (HTTP) | {encoding} | failed: {e} | | | | | | |"
                    );
                }
            }
        }
        let worst_growth = large
            .plain
            .iter()
            .map(|r| r.rss_peak.saturating_sub(r.rss_before))
            .max()
            .unwrap_or(0);
        verdicts.add(
            size > 0 && (worst_growth as f64) <= TARGET_LARGE_RSS_FACTOR * size as f64,
            format!(
                "large result peak RSS growth <= 1.5x the response: {:.1} MiB for {:.1} MiB ({:.2}x, worst of {})",
                mib(worst_growth),
                mib(size as u64),
                worst_growth as f64 / size.max(1) as f64,
                large.plain.len()
            ),
        );
        // Each plugin request ran right after a direct one: the median of the pairs' ratios
        // cancels slow drifts in what else the machine is doing.
        let mut ratios: Vec<f64> = large
            .direct
            .iter()
            .zip(&large.plain)
            .map(|(d, p)| ms(p.wall) / ms(d.0).max(1e-9))
            .collect();
        let first = ratios.first().copied().unwrap_or(f64::INFINITY);
        ratios.sort_by(|a, b| a.total_cmp(b));
        let wall_ratio = ratios
            .get(ratios.len() / 2)
            .copied()
            .unwrap_or(f64::INFINITY);
        verdicts.add(
            wall_ratio <= TARGET_LARGE_WALL_FACTOR,
            format!(
                "large result wall time <= 1.2x the socket's: {wall_ratio:.2}x (median of {} interleaved pairs, the first {first:.2}x; medians {:.0} ms vs {:.0} ms; direct frame {:.1} MB)",
                ratios.len(),
                ms(plugin_wall),
                ms(direct_wall),
                frame as f64 / 1e6
            ),
        );
        for (encoding, outcome) in &large.compressed {
            match outcome {
                Ok(r) => {
                    let ratio = size as f64 / r.body.max(1) as f64;
                    verdicts.add(
                        r.content_encoding == *encoding && ratio >= TARGET_COMPRESSION_RATIO,
                        format!(
                            "large result with Accept-Encoding: {encoding} shrinks >= 5x: {ratio:.1}x ({:.2} MB, Content-Encoding {}, {:.0} ms)",
                            r.body as f64 / 1e6,
                            r.content_encoding,
                            ms(r.wall)
                        ),
                    );
                }
                Err(e) => verdicts.add(false, format!("large result with {encoding}: {e}")),
            }
        }
    }
}
