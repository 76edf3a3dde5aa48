//! The rest bench's command line.

use crate::support::args::{ArgError, CommandLine};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
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
  --tls-new-connections   HTTPS instead: POST /v1/getinfo with a new connection per
                          request, full TLS handshakes, then resumed sessions (no ceiling)
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }
}

pub struct Options {
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: Vec<usize>,
    pub service_times_us: Vec<u64>,
    pub protocols: Vec<Protocol>,
    pub handshake: Duration,
    pub invoices: usize,
    pub large_repeats: usize,
    pub breakdown: bool,
    pub strict: bool,
    /// `--lightningd`: the real-node mode.
    pub lightningd: Option<PathBuf>,
    /// `--compare`: a second plugin binary, real-node mode only.
    pub compare: Option<PathBuf>,
    pub rounds: usize,
    pub node_dir: Option<PathBuf>,
    pub client_threads: usize,
    /// `--tls-new-connections`, real-node mode only.
    pub tls_new_connections: bool,
}

impl Options {
    pub fn parse() -> Result<Options, ArgError> {
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
            tls_new_connections: false,
        };
        let mut line = CommandLine::from_env();
        while let Some(flag) = line.next_option()? {
            match flag.as_str() {
                "--strict" => options.strict = true,
                "--no-breakdown" => options.breakdown = false,
                "--tls-new-connections" => options.tls_new_connections = true,
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
