//! A private RabbitMQ server for the broker tests and benches: Debian's `rabbitmq-server`
//! package run as a child process, with its node name, ports (AMQP, distribution and its own
//! epmd), data and logs under a temporary directory, so it clashes neither with a system
//! broker nor with another test's server.
//!
//! Used by tests/broker.rs and bench/events (`--amqp`).

use crate::MockLightningd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a server may take to start listening.
pub const BROKER_START: Duration = Duration::from_secs(90);

/// The server script of Debian's package, run directly (`/usr/sbin/rabbitmq-server` switches
/// to the `rabbitmq` user and its system directories); `RABBITMQ_SERVER` overrides it.
pub fn server_script() -> PathBuf {
    std::env::var_os("RABBITMQ_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server"))
}

/// A RabbitMQ node: everything under `dir`. Stopped (with its epmd) when dropped.
pub struct RabbitMq {
    dir: tempfile::TempDir,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    name: String,
    server: Option<std::process::Child>,
}

impl RabbitMq {
    /// Prepares a node without starting it.
    pub fn new() -> RabbitMq {
        let dir = tempfile::tempdir().expect("a temporary directory for RabbitMQ");
        let port = MockLightningd::free_port();
        RabbitMq {
            name: format!("clnrest-test-{port}@localhost"),
            dir,
            port,
            dist_port: MockLightningd::free_port(),
            epmd_port: MockLightningd::free_port(),
            server: None,
        }
    }

    /// Starts the node (again, with the same data) and waits until it accepts connections;
    /// panics if it cannot.
    pub async fn start(&mut self) {
        if let Err(e) = self.try_start().await {
            panic!("{e}");
        }
    }

    /// [`RabbitMq::start`], with an error instead of a panic (for the benches).
    pub async fn try_start(&mut self) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let base = self.dir.path();
        let out_path = base.join("server.out");
        let out = std::fs::File::create(&out_path)
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot reopen {}: {e}", out_path.display()))?;
        std::fs::write(base.join("enabled_plugins"), "[].\n")
            .map_err(|e| format!("cannot write enabled_plugins: {e}"))?;
        let server = std::process::Command::new(server_script())
            .current_dir(base)
            // The Erlang cookie goes to $HOME.
            .env("HOME", base)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_PID_FILE", base.join("rabbitmq.pid"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                base.join("enabled_plugins"),
            )
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", base.join("plugins-expand"))
            .env("RABBITMQ_CONFIG_FILE", base.join("rabbitmq"))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                base.join("advanced.config"),
            )
            .env("RABBITMQ_CONF_ENV_FILE", base.join("rabbitmq-env.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: stopping it stops the script, the VM and its helpers.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", server_script().display()))?;
        self.server = Some(server);
        let deadline = Instant::now() + BROKER_START;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if Instant::now() >= deadline {
                return Err(format!(
                    "RabbitMQ did not listen within {BROKER_START:?}: {}",
                    std::fs::read_to_string(&out_path).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Stops the node (SIGTERM to its process group: RabbitMQ's orderly shutdown) and waits
    /// for it to exit.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let Ok(group) = i32::try_from(server.id()) else {
            return;
        };
        // SAFETY: kill(2) on the process group this process started.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        // The script exits once the VM has (after its orderly shutdown).
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && matches!(server.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; whatever of the group is left.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = server.wait();
    }

    /// The server's processes now (its process group: the script, the Erlang VM and its
    /// helpers), from `/proc`; none if it is not started.
    pub fn processes(&self) -> Vec<u32> {
        let Some(group) = self.server.as_ref().map(std::process::Child::id) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| process_group(*pid) == Some(group))
            .collect()
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.port)
    }
}

/// The process group of `pid` (`/proc/<pid>/stat`'s fifth field).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(2)?.parse().ok()
}

impl Default for RabbitMq {
    fn default() -> RabbitMq {
        RabbitMq::new()
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.stop();
        // The node started its own epmd (on our port), which outlives it: stop that one.
        let _ = std::process::Command::new("epmd")
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
