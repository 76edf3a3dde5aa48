//! The plugin under test: started by the mock lightningd (`Gateway`), and its memory read
//! from /proc.

use crate::large::LARGE_TIMEOUT;
use crate::options::Protocol;
use crate::support::procfs;
use mock_lightningd::MockLightningd;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The plugin's memory, from /proc/<pid>/status.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    /// VmRSS, bytes.
    pub now: u64,
    /// VmHWM (peak since start or the last reset), bytes.
    pub peak: u64,
    /// RssAnon (heap, stacks), bytes.
    pub anon: u64,
    /// RssFile (the binary's and libraries' pages touched), bytes.
    pub file: u64,
    pub threads: u64,
}

pub fn rss(pid: u32) -> Rss {
    let status = procfs::status(pid);
    Rss {
        now: status.rss_kib * 1024,
        peak: status.hwm_kib * 1024,
        anon: status.anon_kib * 1024,
        file: status.file_kib * 1024,
        threads: status.threads,
    }
}

/// Resets VmHWM to the current RSS (`echo 5 > clear_refs`); false if not permitted.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

pub struct Gateway {
    pub node: MockLightningd,
    pub protocol: Protocol,
    pub port: u16,
    pub pid: u32,
    pub rune: String,
    pub ca_pem: Option<Vec<u8>>,
}

impl Gateway {
    /// Starts the plugin; must run on the mock's runtime (its tasks stay there).
    pub async fn start(protocol: Protocol) -> Result<Gateway, String> {
        Gateway::start_in(protocol, None).await
    }

    /// Starts the plugin in `lightning_dir` (certificates already there are reused), or in a
    /// fresh temporary one.
    pub async fn start_in(
        protocol: Protocol,
        lightning_dir: Option<&Path>,
    ) -> Result<Gateway, String> {
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

    pub fn url(&self, path: &str) -> String {
        // The server certificate names 127.0.0.1 (clnrest-host) as well as localhost.
        match self.protocol {
            Protocol::Http => format!("http://127.0.0.1:{}{path}", self.port),
            Protocol::Https => format!("https://127.0.0.1:{}{path}", self.port),
        }
    }

    /// An HTTP/1.1 client; `keep_alive: false` opens a new connection for every request.
    pub fn client(&self, keep_alive: bool, timeout: Duration) -> Result<reqwest::Client, String> {
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

    pub fn set_service_time(&self, service_time_us: u64) {
        let faults = self.node.faults();
        faults.set_delay("checkrune", Duration::from_micros(service_time_us));
        faults.serialize_writes(service_time_us > 0);
    }
}

pub struct PluginMemory {
    pub service_time_us: u64,
    pub protocol: Protocol,
    /// Whether this start found the certificates of an earlier one (the usual restart).
    pub certificates_reused: bool,
    /// Right after init was answered.
    pub at_init: Rss,
    /// Half a second later (start-up work, such as reading `help` for the method list, done).
    pub idle: Rss,
    pub after_top: Option<(usize, Rss)>,
}

impl PluginMemory {
    /// `gateway`'s memory now that it has idled, with `at_init` read right after its start.
    pub fn idle(
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

/// An HTTPS plugin's memory when it starts in a lightning-dir where an earlier start left its
/// certificates, as on every start of a node's plugin but the first.
pub fn restarted_https_memory(mock_rt: &Runtime) -> Result<PluginMemory, String> {
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

/// Peak RSS of `pid` while `work` runs: VmHWM after a reset if allowed, else sampled.
pub struct PeakWatch {
    pub pid: u32,
    pub hwm_reset: bool,
    pub stop: Arc<AtomicBool>,
    pub sampled: Arc<AtomicU64>,
    pub sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakWatch {
    pub fn start(pid: u32, can_reset: bool) -> PeakWatch {
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

    pub fn finish(mut self) -> u64 {
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
