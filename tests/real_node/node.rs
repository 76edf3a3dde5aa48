//! A real regtest `lightningd` for the real-node tier and the benches: started fresh in a
//! temporary directory with free ports, the project's fake Bitcoin backend
//! (`contrib/regtest/fake_bitcoind.py`) in place of `bcli`, and our plugin binary as
//! `--plugin`. The binary comes from `LIGHTNINGD` (see [`lightningd_binary`]).
//!
//! Everything here is blocking (std processes and a std unix socket): the tests drive HTTP
//! from their own tokio runtime, and a node is started and stopped around that.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that names the lightningd binary the tier runs against.
pub const LIGHTNINGD_VAR: &str = "LIGHTNINGD";

/// How long a node may take to start (it takes well under a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The lightningd binary named by `LIGHTNINGD`, if set (relative paths are taken from the
/// repository root, where `.ci/run` sets it).
pub fn lightningd_binary() -> Option<PathBuf> {
    let value = std::env::var_os(LIGHTNINGD_VAR)?;
    if value.is_empty() {
        return None;
    }
    let path = PathBuf::from(value);
    Some(if path.is_absolute() {
        path
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    })
}

/// The project's fake Bitcoin backend plugin.
pub fn fake_bitcoind() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/regtest/fake_bitcoind.py")
}

/// A plugin written for the tests (`tests/real_node/plugins/<name>`).
pub fn test_plugin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/real_node/plugins")
        .join(name)
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The plugin binary loaded as `--plugin` (`None`: no clnrest at all).
    pub plugin: Option<PathBuf>,
    /// `clnrest-*` options as `(name, value)`, passed as `--name=value`.
    pub options: Vec<(String, String)>,
    /// Other plugins to load (`--plugin=`), e.g. test plugins.
    pub extra_plugins: Vec<PathBuf>,
    /// Wait until the plugin accepts TCP connections on `clnrest-port` (when it is set).
    pub wait_for_rest: bool,
    /// Where the node lives (`None`: a new temporary directory).
    pub directory: Option<PathBuf>,
}

impl NodeConfig {
    /// Our plugin over plain HTTP on a free port.
    pub fn http() -> NodeConfig {
        NodeConfig::with_options(&[("clnrest-protocol", "http")])
    }

    /// Our plugin on a free port with these options (and its default protocol, HTTPS, unless
    /// one of them sets it).
    pub fn with_options(options: &[(&str, &str)]) -> NodeConfig {
        let mut config = NodeConfig {
            plugin: Some(PathBuf::from(env!("CARGO_BIN_EXE_clnrest"))),
            options: vec![("clnrest-port".into(), free_port().to_string())],
            extra_plugins: Vec::new(),
            wait_for_rest: true,
            directory: None,
        };
        config.set_options(options);
        config
    }

    /// Our plugin with exactly these options: no port is added (for refusal tests).
    pub fn exactly(options: &[(&str, &str)]) -> NodeConfig {
        let mut config = NodeConfig::with_options(options);
        config.options.retain(|(name, _)| name != "clnrest-port");
        config.set_options(options);
        config.wait_for_rest = false;
        config
    }

    /// Sets (or replaces) options.
    pub fn set_options(&mut self, options: &[(&str, &str)]) {
        for (name, value) in options {
            self.options.retain(|(existing, _)| existing != name);
            self.options.push((name.to_string(), value.to_string()));
        }
    }

    /// The value of an option, if set.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A running regtest lightningd (stopped and killed when dropped).
pub struct RealNode {
    /// Keeps the temporary directory alive (when the node made its own).
    _temp: Option<tempfile::TempDir>,
    child: Option<Child>,
    pub config: NodeConfig,
    /// `--lightning-dir`.
    pub lightning_dir: PathBuf,
    /// The network directory (`<lightning-dir>/regtest`), where certificates go.
    pub network_dir: PathBuf,
    pub rpc_path: PathBuf,
    pub log_path: PathBuf,
}

impl RealNode {
    /// Starts a node with our plugin over HTTP on a free port.
    pub fn start_http() -> RealNode {
        RealNode::start(NodeConfig::http())
    }

    /// Starts a node and waits until its RPC answers (and the REST port accepts connections
    /// when `config.wait_for_rest`). Panics with the log's tail when it does not come up.
    pub fn start(config: NodeConfig) -> RealNode {
        let lightningd = lightningd_binary().expect("LIGHTNINGD names a lightningd binary");
        let (temp, lightning_dir) = match &config.directory {
            Some(directory) => (None, directory.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("clnrest-node-")
                    .tempdir()
                    .expect("a temporary directory");
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let network_dir = lightning_dir.join("regtest");
        let log_path = lightning_dir.join("log");
        let mut command = Command::new(&lightningd);
        command
            .arg("--network=regtest")
            .arg(format!("--lightning-dir={}", lightning_dir.display()))
            .arg(format!("--bind-addr=127.0.0.1:{}", free_port()))
            .arg("--disable-plugin=bcli")
            .arg(format!("--plugin={}", fake_bitcoind().display()))
            .arg("--disable-dns")
            .arg(format!("--log-file={}", log_path.display()))
            .arg("--log-level=debug")
            .arg("--developer");
        if let Some(plugin) = &config.plugin {
            command.arg(format!("--plugin={}", plugin.display()));
            for (name, value) in &config.options {
                command.arg(format!("--{name}={value}"));
            }
        }
        for plugin in &config.extra_plugins {
            command.arg(format!("--plugin={}", plugin.display()));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", lightningd.display()));
        let mut node = RealNode {
            _temp: temp,
            child: Some(child),
            rpc_path: network_dir.join("lightning-rpc"),
            network_dir,
            lightning_dir,
            log_path,
            config,
        };
        node.wait_started();
        node
    }

    fn wait_started(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.log().contains("Server started with public key") {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.as_mut().and_then(|c| c.stderr.take()) {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!(
                    "lightningd exited ({status}) before starting:\n{stderr}\n{}",
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "lightningd did not start within {START_TIMEOUT:?}:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.config.wait_for_rest {
            if let Some(port) = self.rest_port() {
                let address = format!("127.0.0.1:{port}");
                while std::net::TcpStream::connect(&address).is_err() {
                    assert!(
                        Instant::now() < deadline,
                        "the plugin does not listen on {address}:\n{}",
                        self.log_tail(40)
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// `clnrest-port`, if set.
    pub fn rest_port(&self) -> Option<u16> {
        self.config.option("clnrest-port")?.parse().ok()
    }

    /// `http://127.0.0.1:<port>` (or https when the protocol is not http).
    pub fn base_url(&self) -> String {
        let scheme = match self.config.option("clnrest-protocol") {
            Some(protocol) if protocol.eq_ignore_ascii_case("http") => "http",
            _ => "https",
        };
        let port = self.rest_port().expect("clnrest-port is set");
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the log contains `needle`; false after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One JSON-RPC call on `lightning-rpc`: `Ok(result)` or `Err(error object)`.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, Value> {
        let mut answer = rpc_call(&self.rpc_path, method, &params)
            .unwrap_or_else(|e| panic!("{method} on {}: {e}", self.rpc_path.display()));
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(answer
                .get_mut("error")
                .map(Value::take)
                .unwrap_or_else(|| json!({"unexpected answer": answer}))),
        }
    }

    /// `rpc` that must succeed.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.rpc(method, params.clone())
            .unwrap_or_else(|error| panic!("{method} {params} failed: {error}"))
    }

    /// A rune made by the node's `createrune` with these restrictions (`Value::Null`: none).
    pub fn create_rune(&self, restrictions: Value) -> String {
        let params = if restrictions.is_null() {
            json!({})
        } else {
            json!({ "restrictions": restrictions })
        };
        self.call("createrune", params)["rune"]
            .as_str()
            .expect("createrune returns a rune")
            .to_string()
    }

    /// The process id of a plugin the node runs, by its path's file name.
    pub fn plugin_pid(&self, file_name: &str) -> Option<u32> {
        let parent = self.child.as_ref()?.id();
        child_processes(parent)
            .into_iter()
            .find(|pid| process_exe_name(*pid).as_deref() == Some(file_name))
    }

    /// The lightningd process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for lightningd to exit by itself; false after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        loop {
            if matches!(child.try_wait(), Ok(Some(_))) {
                self.child = None;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills lightningd with SIGKILL (its plugins are left to notice on their own).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `stop` over RPC, then waits for the process (kills it after 10 s).
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = rpc_call(&self.rpc_path, "stop", &json!({}));
        if !self.wait_exit(Duration::from_secs(10)) {
            self.kill();
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // Plugins that outlive a killed lightningd would keep ports and files.
            let plugins = child_processes(pid);
            self.kill();
            for plugin in plugins {
                // SAFETY: kill(2) with a pid we read from /proc and a valid signal number.
                unsafe { libc::kill(plugin as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

/// One JSON-RPC request on a fresh connection to a `lightning-rpc` socket; the whole answer.
pub fn rpc_call(socket: &Path, method: &str, params: &Value) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    stream.write_all(request.to_string().as_bytes())?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let mut values = serde_json::Deserializer::from_slice(&buffer).into_iter::<Value>();
        if let Some(Ok(value)) = values.next() {
            return Ok(value);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("lightning-rpc closed before answering {method}"),
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// The direct children of a process (from /proc).
pub fn child_processes(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

/// A process's parent id, from /proc/<pid>/stat.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: read after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// The file name of a process's executable, or of its script for an interpreter.
fn process_exe_name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let arguments: Vec<String> = cmdline
        .split(|byte| *byte == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    let program = arguments
        .iter()
        .find(|argument| !argument.starts_with('-'))?;
    let name = Path::new(program).file_name()?.to_str()?.to_string();
    if name.starts_with("python") {
        let script = arguments.get(1)?;
        return Some(Path::new(script).file_name()?.to_str()?.to_string());
    }
    Some(name)
}

/// Whether a process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat.get(end + 2..end + 3))
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}
