//! The large-result case: `listinvoices` with many invoices, straight on the socket and
//! through the plugin, plain and compressed, with the plugin's peak RSS.

use crate::load::{check_result_frame, MAX_FRAME};
use crate::options::{Options, Protocol};
use crate::plugin::{reset_peak, rss, Gateway, PeakWatch};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;

/// One large-result request that takes longer than this is an error.
pub const LARGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends one request straight to the socket and reads its answer without keeping it (as the
/// HTTP client does with the plugin's): (wall time, frame bytes).
pub async fn direct_call(path: &Path, request: &str) -> Result<(Duration, usize), String> {
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
pub struct LargeRun {
    pub wall: Duration,
    /// Body bytes as sent (compressed if asked).
    pub body: usize,
    pub content_encoding: String,
    pub rss_before: u64,
    /// Peak RSS during the request (VmHWM after a reset, or sampled).
    pub rss_peak: u64,
    pub rss_after: u64,
}

pub async fn rest_large(
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

pub struct LargeResult {
    pub invoices: usize,
    pub direct: Vec<(Duration, usize)>,
    pub plain: Vec<LargeRun>,
    pub compressed: Vec<(&'static str, Result<LargeRun, String>)>,
    pub hwm_reset: bool,
}

pub fn run(options: &Options, mock_rt: &Runtime, load_rt: &Runtime) -> Result<LargeResult, String> {
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
