//! Hostile and careless clients against the real plugin, and what everyone else observes:
//!
//! 1. 10,000 idle connections held open at once (half stopped in the middle of their request
//!    headers, half never sent a byte) do not stop a normal client from being served, and
//!    every file descriptor comes back once they close.
//! 2. The 30 s header read timeout: a connection that stops mid-header, one that never sends
//!    a byte, and one that stops in the middle of the HTTP/2 preface are all closed by the
//!    server (no response, just the end of the stream) between 29 s and 40 s later. An
//!    HTTP/2 client that sent the whole preface and then never answers is pinged after 30 s
//!    of silence and closed 10 s later, while one that answers the pings stays connected.
//! 3. A 100 MB header flood (one endless header line, or endless small headers) gets a 431
//!    and a closed connection, the plugin keeps serving, and its peak memory barely moves;
//!    once over plain HTTP and once over HTTPS. The header count limit behind it: 100
//!    headers are served, 101 get the 431.
//!
//! The numbers each test observes are printed (`cargo test --test hostile_connections --
//! --nocapture` shows them). Bounds are generous: the machine running this may be loaded.

use mock_lightningd::gateway::{json_of, Gateway};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use std::future::Future;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------
// What we look at in /proc, and small helpers
// ---------------------------------------------------------------------------------------

/// The plugin's process id.
fn plugin_pid(gateway: &Gateway) -> u32 {
    gateway
        .node
        .pid()
        .expect("the mock started a plugin process")
}

/// How many file descriptors the plugin has open.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd (did the plugin die?): {e}"))
        .count()
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `RssAnon`), in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status (did the plugin die?): {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"))
}

/// Resets the plugin's VmHWM to its current RSS (`clear_refs` 5); false if not allowed.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples the plugin's anonymous resident memory (`RssAnon`: its heap and stacks, without
/// the pages of its binary) every millisecond on its own thread (not slowed by the test's
/// runtime) until stopped; [`RssSampler::stop`] returns the largest value seen, in KiB.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "RssAnon"));
                std::thread::sleep(Duration::from_millis(1));
            }
            peak.max(status_kib(pid, "RssAnon"))
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler panicked")
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns how long it
/// took, or `None` if it never held.
async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if condition() {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// getinfo as lightningd itself answers it, to compare the plugin's body with.
async fn getinfo_from_lightningd(gateway: &Gateway) -> Value {
    let answer = gateway.lightningd_call("getinfo", json!({})).await;
    answer
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("lightningd's getinfo failed: {answer}"))
}

/// A normal client (the harness's reqwest client, with the rune) is served getinfo: 201 with
/// lightningd's result. Returns how long the call took.
async fn assert_getinfo_served(gateway: &Gateway, expected: &Value, when: &str) -> Duration {
    let started = Instant::now();
    let (status, body) = json_of(gateway.call("getinfo", json!({})).await).await;
    let took = started.elapsed();
    assert_eq!(status, 201, "getinfo {when}: {body}");
    assert_eq!(&body, expected, "getinfo {when}: not lightningd's result");
    took
}

/// How a connection ended, seen from the client.
#[derive(Debug)]
enum End {
    /// The server closed it: `read` returned 0.
    Eof,
    /// `read` failed (a reset, typically).
    Error(std::io::ErrorKind),
    /// Still open when we stopped waiting.
    StillOpen,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Eof => write!(f, "closed (read returned 0)"),
            End::Error(kind) => write!(f, "read failed: {kind:?}"),
            End::StillOpen => write!(f, "still open"),
        }
    }
}

/// Reads until the server closes the connection or `timeout` passes: what the server sent,
/// how the stream ended, and when.
async fn read_until_closed(
    reader: &mut (impl AsyncRead + Unpin),
    timeout: Duration,
) -> (Vec<u8>, End, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let end = loop {
        let left = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, reader.read(&mut chunk)).await {
            Err(_) => break End::StillOpen,
            Ok(Ok(0)) => break End::Eof,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => break End::Error(e.kind()),
        }
    };
    (received, end, started.elapsed())
}

// ---------------------------------------------------------------------------------------
// 1. 10,000 idle connections
// ---------------------------------------------------------------------------------------

/// Connections held open at once.
const IDLE_CONNECTIONS: usize = 10_000;
/// Connections opened concurrently before waiting for the plugin to accept them: below the
/// listen backlog (128, Rust's default) so a full accept queue never drops a SYN (which costs
/// the client a 1 s retransmission).
const BATCH: usize = 100;
/// What half of the idle connections send: request headers without their final blank line.
const PARTIAL_REQUEST: &[u8] = b"POST /v1/getinfo HTTP/1.1\r\nHost: x\r\n";
/// File descriptors the plugin may hold beyond the baseline once everything is closed: the
/// harness client keeps its connection for the next request.
const FD_SLACK: usize = 8;

/// Opens one connection, sending [`PARTIAL_REQUEST`] if `partial`.
async fn open_idle(port: u16, partial: bool) -> TcpStream {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(20),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .expect("connect within 20 s")
    .unwrap_or_else(|e| panic!("connect to the plugin: {e}"));
    if partial {
        stream
            .write_all(PARTIAL_REQUEST)
            .await
            .unwrap_or_else(|e| panic!("send a partial request: {e}"));
    }
    stream
}

#[tokio::test]
async fn ten_thousand_idle_connections_do_not_stop_a_normal_client_and_give_back_their_fds() {
    let gateway = Gateway::start().await;
    let pid = plugin_pid(&gateway);
    let expected = getinfo_from_lightningd(&gateway).await;

    // Warm up (the plugin's lightning-rpc connections open on first use), without leaving a
    // pooled client connection behind, then take the baseline.
    let warm_up = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client builds");
    for _ in 0..8 {
        let response = warm_up
            .post(gateway.url("/v1/getinfo"))
            .header("Rune", &gateway.rune)
            .json(&json!({}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("warm-up getinfo: {e}"));
        assert_eq!(response.status(), 201, "warm-up getinfo");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = fd_count(pid);

    // Open them in batches, half sending a partial request, half nothing; after each batch
    // wait until the plugin has accepted (nearly) everything so far.
    let opening = Instant::now();
    let mut connections: Vec<TcpStream> = Vec::with_capacity(IDLE_CONNECTIONS);
    while connections.len() < IDLE_CONNECTIONS {
        let first = connections.len();
        let batch = (first..(first + BATCH).min(IDLE_CONNECTIONS))
            .map(|i| open_idle(gateway.port, i % 2 == 0));
        connections.extend(futures::future::join_all(batch).await);
        let opened = connections.len();
        let accepted = wait_until(Duration::from_secs(30), || {
            fd_count(pid) + BATCH >= baseline + opened
        })
        .await;
        assert!(
            accepted.is_some(),
            "the plugin stopped accepting: {} fds for {opened} connections (baseline {baseline})",
            fd_count(pid)
        );
    }
    let all_accepted = wait_until(Duration::from_secs(30), || {
        fd_count(pid) >= baseline + IDLE_CONNECTIONS
    })
    .await;
    let peak = fd_count(pid);
    let open_time = opening.elapsed();
    eprintln!(
        "idle: baseline {baseline} fds; {IDLE_CONNECTIONS} connections opened and accepted in \
         {open_time:?}: {peak} fds"
    );
    assert!(
        all_accepted.is_some(),
        "the plugin did not accept all {IDLE_CONNECTIONS} connections: {peak} fds, baseline \
         {baseline}, after {open_time:?}"
    );
    // The header timeout (30 s) must not have started closing them yet, or what follows would
    // not be tested with all of them open.
    assert!(
        open_time < Duration::from_secs(25),
        "opening took {open_time:?}, too close to the 30 s header timeout"
    );

    // While they are all open, a normal client is served.
    let took = assert_getinfo_served(&gateway, &expected, "with 10,000 idle connections").await;
    eprintln!("idle: getinfo with {IDLE_CONNECTIONS} idle connections open: 201 in {took:?}");

    // None of them was closed by the server meanwhile: a read would block.
    let mut closed = 0;
    let mut answered = 0;
    let mut buffer = [0u8; 64];
    for stream in &connections {
        match stream.try_read(&mut buffer) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(0) | Err(_) => closed += 1,
            Ok(_) => answered += 1,
        }
    }
    assert_eq!(
        (closed, answered),
        (0, 0),
        "idle connections closed or answered by the server while held"
    );

    // Close them all: the plugin's descriptors return to the baseline.
    let closing = Instant::now();
    drop(connections);
    let returned = wait_until(Duration::from_secs(20), || {
        fd_count(pid) <= baseline + FD_SLACK
    })
    .await;
    eprintln!(
        "idle: all closed; {} fds after {:?} (baseline {baseline})",
        fd_count(pid),
        closing.elapsed()
    );
    assert!(
        returned.is_some(),
        "fds did not return to the baseline {baseline} within 20 s: {}",
        fd_count(pid)
    );
    assert_getinfo_served(&gateway, &expected, "after the idle connections closed").await;
    gateway.node.assert_no_violations();
}

// ---------------------------------------------------------------------------------------
// 2. The header read timeout
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_that_stop_sending_are_closed_after_30_seconds_without_an_answer() {
    let gateway = Gateway::start().await;
    // The startup calls' lightning-rpc connections are part of the baseline.
    gateway.settled().await;
    let pid = plugin_pid(&gateway);
    let connect = || async {
        TcpStream::connect(("127.0.0.1", gateway.port))
            .await
            .unwrap_or_else(|e| panic!("connect to the plugin: {e}"))
    };
    let baseline = fd_count(pid);

    // Times are counted from before the first connect: the server's clocks start later.
    let started = Instant::now();
    let mut partial = connect().await;
    partial
        .write_all(PARTIAL_REQUEST)
        .await
        .expect("send a partial request");
    let mut silent = connect().await;
    // The first 16 bytes of the HTTP/2 preface: the server cannot yet tell HTTP/1 from 2.
    let mut half_preface = connect().await;
    half_preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("send half a preface");
    let accepted = wait_until(Duration::from_secs(5), || fd_count(pid) >= baseline + 3).await;
    assert!(
        accepted.is_some(),
        "the plugin did not accept 3 connections"
    );

    let bound = Duration::from_secs(45);
    let reading = started.elapsed();
    let (partial, silent, half_preface) = tokio::join!(
        read_until_closed(&mut partial, bound),
        read_until_closed(&mut silent, bound),
        read_until_closed(&mut half_preface, bound),
    );
    for (name, (received, end, after)) in [
        ("partial header", &partial),
        ("nothing sent", &silent),
        ("half an HTTP/2 preface", &half_preface),
    ] {
        let after = reading + *after;
        eprintln!(
            "timeout: {name}: {end} after {after:?}, {} byte(s) received: {:?}",
            received.len(),
            String::from_utf8_lossy(received)
        );
        // No answer (no 408): the connection is just closed, by hyper's header timeout for the
        // partial header, by the plugin's deadline for a request's first bytes for the others.
        assert!(
            matches!(end, End::Eof),
            "{name}: expected the server to close the connection, got {end} after {after:?}"
        );
        assert!(
            received.is_empty(),
            "{name}: expected no answer, got {:?}",
            String::from_utf8_lossy(received)
        );
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(40)).contains(&after),
            "{name}: closed after {after:?}, expected 29..40 s"
        );
    }
    let released = wait_until(Duration::from_secs(5), || fd_count(pid) <= baseline).await;
    assert!(
        released.is_some(),
        "the plugin still holds {} fds (baseline {baseline})",
        fd_count(pid)
    );
}

/// The client connection preface of HTTP/2 (RFC 9113 §3.4), then an empty SETTINGS frame.
const HTTP2_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_ACK: u8 = 0x1;

/// One HTTP/2 frame as received: type, flags, payload.
struct Frame {
    kind: u8,
    flags: u8,
    payload: Vec<u8>,
}

/// Splits complete frames off the front of `buffer`.
fn take_frames(buffer: &mut Vec<u8>) -> Vec<Frame> {
    let mut frames = Vec::new();
    while buffer.len() >= 9 {
        let length = u32::from_be_bytes([0, buffer[0], buffer[1], buffer[2]]) as usize;
        if buffer.len() < 9 + length {
            break;
        }
        let frame: Vec<u8> = buffer.drain(..9 + length).collect();
        frames.push(Frame {
            kind: frame[3],
            flags: frame[4],
            payload: frame[9..].to_vec(),
        });
    }
    frames
}

/// What an HTTP/2 client that sent the preface then saw until `bound` passed or the server
/// closed: the frame types received, whether it ended, and when. If `answer` it acknowledges
/// the server's SETTINGS and answers its PINGs, as every live HTTP/2 client does.
async fn http2_client_after_preface(
    port: u16,
    answer: bool,
    bound: Duration,
) -> (Vec<u8>, End, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to the plugin: {e}"));
    stream
        .write_all(HTTP2_PREFACE_AND_SETTINGS)
        .await
        .expect("send the HTTP/2 preface");
    let started = Instant::now();
    let (mut kinds, mut buffer, mut chunk) = (Vec::new(), Vec::new(), vec![0u8; 4096]);
    let end = loop {
        let left = bound.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) => break End::StillOpen,
            Ok(Ok(0)) => break End::Eof,
            Ok(Err(e)) => break End::Error(e.kind()),
            Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
        }
        for frame in take_frames(&mut buffer) {
            kinds.push(frame.kind);
            if !answer || frame.flags & FLAG_ACK != 0 {
                continue;
            }
            let reply = match frame.kind {
                FRAME_SETTINGS => vec![0, 0, 0, FRAME_SETTINGS, FLAG_ACK, 0, 0, 0, 0],
                FRAME_PING => {
                    let mut pong = vec![0, 0, 8, FRAME_PING, FLAG_ACK, 0, 0, 0, 0];
                    pong.extend_from_slice(&frame.payload);
                    pong
                }
                _ => continue,
            };
            stream.write_all(&reply).await.expect("answer the server");
        }
    };
    (kinds, end, started.elapsed())
}

#[tokio::test]
async fn an_http2_client_that_never_answers_is_closed_and_one_that_answers_pings_stays() {
    let gateway = Gateway::start().await;
    // The startup calls' lightning-rpc connections are part of the baseline.
    gateway.settled().await;
    let pid = plugin_pid(&gateway);
    let baseline = fd_count(pid);
    // The live client must outlast the moment the silent one is closed (~40 s).
    let bound = Duration::from_secs(50);
    let (dead, live) = tokio::join!(
        http2_client_after_preface(gateway.port, false, bound),
        http2_client_after_preface(gateway.port, true, bound),
    );
    for (name, (kinds, end, after)) in [("never answers", &dead), ("answers pings", &live)] {
        eprintln!("http2 keep-alive: {name}: {end} after {after:?}, frame types {kinds:?}");
    }

    let (kinds, end, after) = dead;
    assert!(
        matches!(end, End::Eof | End::Error(_)),
        "a silent HTTP/2 client was not closed within {bound:?} ({end})"
    );
    // Pinged after 30 s of silence, closed 10 s later.
    assert!(
        (Duration::from_secs(29)..=Duration::from_secs(48)).contains(&after),
        "the silent HTTP/2 client was closed after {after:?}, expected 29..48 s"
    );
    assert!(
        kinds.contains(&FRAME_PING),
        "the server closed without pinging first: frame types {kinds:?}"
    );

    let (kinds, end, _) = live;
    assert!(
        matches!(end, End::StillOpen),
        "an HTTP/2 client answering pings was disconnected: {end}, frame types {kinds:?}"
    );
    assert!(
        kinds.contains(&FRAME_PING) && !kinds.contains(&FRAME_GOAWAY),
        "expected pings and no GOAWAY for the live client, got frame types {kinds:?}"
    );
    // Both clients have closed their end by now.
    let released = wait_until(Duration::from_secs(5), || fd_count(pid) <= baseline).await;
    assert!(
        released.is_some(),
        "the plugin still holds {} fds (baseline {baseline})",
        fd_count(pid)
    );
}

// ---------------------------------------------------------------------------------------
// 3. Header floods
// ---------------------------------------------------------------------------------------

/// How much a flood sends at most.
const FLOOD_LIMIT: usize = 100 * 1024 * 1024;
/// How much the plugin's peak resident memory may grow during a flood.
const RSS_GROWTH_LIMIT_KIB: u64 = 16 * 1024;
/// The request line every flood starts with.
const FLOOD_REQUEST_LINE: &[u8] = b"GET /v1/list-methods HTTP/1.1\r\n";

/// What a flood keeps sending after the request line.
#[derive(Clone, Copy, Debug)]
enum Flood {
    /// `X-giant: aaaa...` with no end of line, ever.
    OneGiantLine,
    /// `X-a: aaaa...\r\n` again and again.
    ManyHeaders,
}

impl Flood {
    /// What goes first, after the request line.
    fn prefix(self) -> &'static [u8] {
        match self {
            Flood::OneGiantLine => b"X-giant: ",
            Flood::ManyHeaders => b"",
        }
    }

    /// A 64 KiB chunk, sent again and again.
    fn chunk(self) -> Vec<u8> {
        match self {
            Flood::OneGiantLine => vec![b'a'; 64 * 1024],
            Flood::ManyHeaders => {
                // 64-byte lines.
                let line = format!("X-a: {}\r\n", "a".repeat(57));
                line.repeat(1024).into_bytes()
            }
        }
    }
}

/// What the client saw of a flood.
#[derive(Debug)]
struct FloodOutcome {
    /// Bytes the kernel took from us before a write failed or the limit was reached.
    written: usize,
    /// Why writing stopped early, if it did.
    write_error: Option<String>,
    /// What the server sent back.
    received: Vec<u8>,
    /// How the connection ended.
    end: String,
    /// From the first byte sent to the end of the connection.
    took: Duration,
}

impl FloodOutcome {
    /// The status line of the answer, if any.
    fn status_line(&self) -> String {
        String::from_utf8_lossy(&self.received)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

/// Sends `flood` on a plain TCP connection, reading whatever comes back at the same time.
async fn flood_plain(port: u16, flood: Flood) -> FloodOutcome {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to the plugin: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let reading = tokio::spawn(async move {
        let (received, end, _) = read_until_closed(&mut reader, Duration::from_secs(60)).await;
        (received, end)
    });
    let (written, write_error) = write_flood(&mut writer, flood).await;
    let (received, end) = reading.await.expect("the reading task panicked");
    FloodOutcome {
        written,
        write_error,
        received,
        end: end.to_string(),
        took: started.elapsed(),
    }
}

/// Writes the flood until [`FLOOD_LIMIT`] or the first failed (or 10 s stuck) write.
async fn write_flood(
    writer: &mut (impl AsyncWrite + Unpin),
    flood: Flood,
) -> (usize, Option<String>) {
    let chunk = flood.chunk();
    let mut written = 0;
    for piece in [FLOOD_REQUEST_LINE, flood.prefix()] {
        if let Err(e) = writer.write_all(piece).await {
            return (written, Some(e.to_string()));
        }
        written += piece.len();
    }
    while written < FLOOD_LIMIT {
        match tokio::time::timeout(Duration::from_secs(10), writer.write(&chunk)).await {
            Err(_) => return (written, Some("a write was stuck for 10 s".into())),
            Ok(Err(e)) => return (written, Some(e.to_string())),
            Ok(Ok(n)) => written += n,
        }
    }
    (written, None)
}

/// The same over TLS (blocking rustls on a plain socket, in a blocking thread): writes until
/// the limit or a failed write, then reads what the server sent.
fn flood_tls(ca_pem: &[u8], port: u16, flood: Flood) -> FloodOutcome {
    let config = mock_lightningd::client_tls::trusting(ca_pem);
    let name = ServerName::try_from("localhost").expect("a server name");
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).expect("a TLS client connection");
    let socket = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to the plugin: {e}"));
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    socket
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("a write timeout");
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let started = Instant::now();

    let chunk = flood.chunk();
    let mut written = 0;
    let mut write_error = None;
    for piece in [FLOOD_REQUEST_LINE, flood.prefix()] {
        if let Err(e) = tls.write_all(piece) {
            write_error = Some(e.to_string());
            break;
        }
        written += piece.len();
    }
    while write_error.is_none() && written < FLOOD_LIMIT {
        match tls.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => write_error = Some(e.to_string()),
        }
    }

    // Read what came back without `StreamOwned::read`, which would first try to send the TLS
    // records still queued from the flood and fail on the closed connection.
    let mut received = Vec::new();
    let mut plaintext = vec![0u8; 16 * 1024];
    let end = loop {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => break End::Eof.to_string(),
            Err(e) => break format!("{} ({e})", End::Error(e.kind())),
            Ok(_) => {}
        }
        if let Err(e) = tls.conn.process_new_packets() {
            break format!("TLS error: {e}");
        }
        loop {
            match tls.conn.reader().read(&mut plaintext) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&plaintext[..n]),
                Err(_) => break, // WouldBlock: nothing more decrypted yet.
            }
        }
    };
    FloodOutcome {
        written,
        write_error,
        received,
        end,
        took: started.elapsed(),
    }
}

/// Runs `flood` against the plugin of `gateway`, then checks what the flooder got, that the
/// plugin still runs and serves (`still_served`), and that its peak memory did not grow by
/// [`RSS_GROWTH_LIMIT_KIB`] or more.
async fn check_flood<F: Future<Output = FloodOutcome>>(
    gateway: &Gateway,
    label: &str,
    flooding: F,
    still_served: impl AsyncFnOnce(),
) {
    let pid = plugin_pid(gateway);
    // VmHWM is the peak since the process started (its startup may have been the peak):
    // reset it to the current RSS where the kernel lets us. It also counts the binary's pages
    // as they are first used, so the heap (RssAnon) is sampled meanwhile too.
    let reset = reset_peak_rss(pid);
    let anon_before = status_kib(pid, "RssAnon");
    let peak_before = status_kib(pid, "VmHWM");
    let sampler = RssSampler::start(pid);
    let outcome = flooding.await;
    let anon_peak = sampler.stop();
    let peak_after = status_kib(pid, "VmHWM");
    eprintln!(
        "flood {label}: {} bytes written ({}), answer {:?}, then {}, in {:?}; VmHWM \
         {peak_before} -> {peak_after} KiB (reset before: {reset}); RssAnon {anon_before} KiB, \
         peak {anon_peak} KiB",
        outcome.written,
        outcome.write_error.as_deref().unwrap_or("no write error"),
        outcome.status_line(),
        outcome.end,
        outcome.took,
    );
    // hyper stops reading at its header buffer limit (about 400 KiB) or at the 101st header,
    // answers 431 and closes the connection (the answer arrives before the close: on loopback
    // the client reads it even though our unread flood makes the close a reset).
    assert_eq!(
        outcome.status_line(),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "{label}: unexpected answer: {outcome:?}"
    );
    assert!(
        outcome.end != End::StillOpen.to_string(),
        "{label}: the server answered but did not close the connection: {outcome:?}"
    );
    assert!(
        outcome.written < FLOOD_LIMIT,
        "{label}: the server swallowed all {FLOOD_LIMIT} bytes without closing"
    );
    assert!(
        peak_after < peak_before + RSS_GROWTH_LIMIT_KIB,
        "{label}: peak RSS (VmHWM) grew from {peak_before} KiB to {peak_after} KiB"
    );
    assert!(
        anon_peak < anon_before + RSS_GROWTH_LIMIT_KIB,
        "{label}: RssAnon grew from {anon_before} KiB to {anon_peak} KiB"
    );
    still_served().await;
}

#[tokio::test]
async fn a_header_flood_gets_a_431_and_the_plugin_keeps_serving_in_little_memory() {
    let gateway = Gateway::start().await;
    let expected = getinfo_from_lightningd(&gateway).await;
    assert_getinfo_served(&gateway, &expected, "before the floods").await;
    // The route the floods aim at, once for real, so its first use is not counted as theirs.
    let list_methods = gateway
        .http
        .get(gateway.url("/v1/list-methods"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /v1/list-methods: {e}"));
    assert_eq!(list_methods.status(), 200, "GET /v1/list-methods");
    for flood in [Flood::OneGiantLine, Flood::ManyHeaders] {
        let label = format!("http {flood:?}");
        check_flood(
            &gateway,
            &label,
            flood_plain(gateway.port, flood),
            async || {
                assert_getinfo_served(&gateway, &expected, &format!("after the {label} flood"))
                    .await;
            },
        )
        .await;
    }
    gateway.node.assert_no_violations();
}

#[tokio::test]
async fn a_header_flood_over_https_gets_a_431_and_the_plugin_keeps_serving() {
    let gateway = Gateway::start_with(json!({"clnrest-protocol": "https"})).await;
    let ca_pem = std::fs::read(gateway.node.lightning_dir().join("ca.pem"))
        .expect("the plugin wrote ca.pem in the lightning dir");
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("ca.pem parses"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTPS client builds");
    let expected = getinfo_from_lightningd(&gateway).await;
    let getinfo = async |when: &str| {
        let response = https
            .post(format!("https://localhost:{}/v1/getinfo", gateway.port))
            .header("Rune", &gateway.rune)
            .json(&json!({}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("HTTPS getinfo {when}: {e:?}"));
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "HTTPS getinfo {when}: {body}");
        assert_eq!(
            body, expected,
            "HTTPS getinfo {when}: not lightningd's result"
        );
    };
    getinfo("before the floods").await;
    for flood in [Flood::OneGiantLine, Flood::ManyHeaders] {
        let label = format!("https {flood:?}");
        let (ca, port) = (ca_pem.clone(), gateway.port);
        let flooding = async move {
            tokio::task::spawn_blocking(move || flood_tls(&ca, port, flood))
                .await
                .expect("the TLS flood thread panicked")
        };
        check_flood(&gateway, &label, flooding, async || {
            getinfo(&format!("after the {label} flood")).await;
        })
        .await;
    }
    gateway.node.assert_no_violations();
}

/// Sends `GET /v1/list-methods` with `headers` header lines in all (`Host` and `Connection`
/// included) and returns the status line of the answer.
async fn status_with_header_count(port: u16, headers: usize) -> String {
    let mut request =
        String::from("GET /v1/list-methods HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 2..headers {
        request.push_str(&format!("X-h{i}: v\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to the plugin: {e}"));
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let (received, end, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        !matches!(end, End::StillOpen),
        "{headers} headers: no answer within 10 s"
    );
    String::from_utf8_lossy(&received)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_request_with_more_than_100_headers_gets_a_431() {
    let gateway = Gateway::start().await;
    assert_eq!(
        status_with_header_count(gateway.port, 100).await,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        status_with_header_count(gateway.port, 101).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

/// One HTTP/2 connection may have at most 32 requests in flight (hyper's default is 200):
/// the server says so in its SETTINGS, which clients obey.
#[tokio::test]
async fn an_http2_connection_gets_at_most_32_concurrent_streams() {
    let gateway = Gateway::start().await;
    let tcp = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    // One exchange, so the server's SETTINGS have been applied.
    let request = http::Request::post(format!("{}/v1/getinfo", gateway.base))
        .header("rune", &gateway.rune)
        .body(())
        .expect("a request");
    client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request, true).expect("sent");
    let response = response.await.expect("an answer");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(client.current_max_send_streams(), 32);
}
