//! A mock `lightningd` for integration tests: it runs the real plugin binary the way
//! lightningd v26.06 does and serves `lightning-rpc` like it, as captured in
//! `tests/fixtures/` (see its README.md).
//!
//! A crate of the workspace that the tests and benches depend on. [`MockLightningd`] owns a temp
//! lightning-dir, the socket server, and the plugin process with its stdio.
//!
//! Files: `manifest.rs` (handshake messages and manifest checks), `plugin_link.rs` (plugin
//! stdio), `rpc_socket.rs` (socket server and framing), `methods.rs` (RPC methods),
//! `params.rs` (parameter parsing), `runes.rs`, `invoices.rs`, `datastore.rs` (stores),
//! `faults.rs` (fault switches), `jsonrpc.rs` (errors and frames), `fixtures.rs`,
//! `random.rs`, `node.rs` (shared state); `gateway.rs` (the plugin over HTTP with a client)
//! and `hostile_bodies.rs` (attacking clients) sit on top for the tests and benches;
//! `rabbitmq.rs` starts a private RabbitMQ server for the broker test and bench.

// Each test file uses a different part of the mock.
#![allow(dead_code)]

pub mod client_tls;
mod datastore;
pub mod faults;
pub mod fixtures;
pub mod gateway;
pub mod hostile_bodies;
mod invoices;
pub mod jsonrpc;
pub mod manifest;
pub mod methods;
mod node;
pub mod params;
mod plugin_link;
pub mod rabbitmq;
mod random;
pub mod raw_http;
mod rpc_socket;
pub mod runes;
pub mod websocket_frames;

pub use faults::Faults;
pub use node::RecordedCall;
pub use plugin_link::LogLine;

/// Longest log message a plugin may send before it counts as a violation.
pub const MAX_LOG_MESSAGE_LEN: usize = plugin_link::MAX_LOG_MESSAGE_LEN;

use fixtures::fixtures;
use manifest::{init_request, Manifest, GETMANIFEST_ID, GETMANIFEST_REQUEST, INIT_ID};
use node::Node;
use plugin_link::PluginLink;
use rpc_socket::SocketControl;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};

/// `LIGHTNINGD_VERSION` lightningd sets for its plugins (plugin-process.json).
pub const LIGHTNINGD_VERSION: &str = "v26.06-258-g090f4b0";

/// How long the mock waits for the plugin's getmanifest and init replies.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The plugin binary cargo built beside the running test or bench: `CLNREST_BIN` if set,
/// else `<target>/<profile>/clnrest`, next to the `deps/` folder the executable runs from
/// (cargo builds a package's binaries before its integration tests and benches).
pub fn plugin_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLNREST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from <target>/<profile>/deps");
    profile_dir.join("clnrest")
}

/// How to start a [`MockLightningd`].
pub struct MockLightningdBuilder {
    options: Value,
    lightning_dir: Option<PathBuf>,
    include_defaults: bool,
    plugin: Option<PathBuf>,
    plugin_args: Vec<String>,
    plugin_env: Vec<(String, String)>,
    developer: bool,
}

impl MockLightningdBuilder {
    /// An environment variable for the plugin process (besides the test's own).
    pub fn plugin_env(mut self, name: &str, value: &str) -> Self {
        self.plugin_env.push((name.to_string(), value.to_string()));
        self
    }

    /// clnrest option values, a JSON object (`{"clnrest-port": 3010, ...}`).
    pub fn options(mut self, options: Value) -> Self {
        self.options = options;
        self
    }

    /// Use this network directory (created if missing) instead of `<temp dir>/regtest`.
    pub fn lightning_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lightning_dir = Some(dir.into());
        self
    }

    /// Whether init passes the manifest's defaults for options not given (default `true`,
    /// as lightningd does).
    pub fn include_defaults(mut self, include: bool) -> Self {
        self.include_defaults = include;
        self
    }

    /// Run another executable as the plugin.
    pub fn plugin_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.plugin = Some(path.into());
        self
    }

    /// Arguments for the plugin executable (lightningd passes none; for stand-in plugins
    /// such as `sh -c <script>`).
    pub fn plugin_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.plugin_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Act like a lightningd started with `--developer` (default `false`, like the node the
    /// fixtures were captured from; the real-node tier starts its nodes with it). The one
    /// difference modelled: a parameter of the wrong type is refused with the offending value,
    /// `<param>: <should be...>: invalid token '<JSON text>'`, instead of `invalid token (see
    /// logs for details)`.
    pub fn developer(mut self, developer: bool) -> Self {
        self.developer = developer;
        self
    }

    /// Serve only the socket, with no plugin.
    pub fn without_plugin(mut self) -> Self {
        self.plugin = None;
        self
    }

    /// Creates the lightning-dir, serves `lightning-rpc`, and runs the plugin through
    /// getmanifest and init. Panics with the reason if the plugin fails the handshake.
    pub async fn start(self) -> MockLightningd {
        let (temp_dir, lightning_dir) = match self.lightning_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("mock-lightningd-")
                    .tempdir()
                    .unwrap_or_else(|e| panic!("cannot create a temp lightning-dir: {e}"));
                let dir = temp.path().join("regtest");
                (Some(temp), dir)
            }
        };
        std::fs::create_dir_all(&lightning_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", lightning_dir.display()));
        let node = Arc::new(Node::new(lightning_dir.clone(), self.developer));
        let socket = SocketControl::new(lightning_dir.join("lightning-rpc"), Arc::clone(&node));
        socket.listen().unwrap_or_else(|e| {
            panic!(
                "cannot listen on {}/lightning-rpc: {e}",
                lightning_dir.display()
            )
        });
        let faults = Faults::new(Arc::clone(&node.faults), Arc::clone(&socket));
        let mut mock = MockLightningd {
            node,
            socket,
            faults,
            child: None,
            pid: None,
            plugin: None,
            init_result: Value::Null,
            restart: None,
            _temp_dir: temp_dir,
        };
        if let Some(path) = self.plugin {
            let restart = Restart {
                path,
                args: self.plugin_args,
                env: self.plugin_env,
                options: self.options,
                include_defaults: self.include_defaults,
            };
            mock.start_plugin(&restart).await;
            mock.restart = Some(restart);
        }
        mock
    }
}

/// A running mock lightningd (see the module docs). Dropping it kills the plugin.
pub struct MockLightningd {
    node: Arc<Node>,
    socket: Arc<SocketControl>,
    faults: Faults,
    child: Option<tokio::sync::Mutex<Child>>,
    pid: Option<u32>,
    plugin: Option<Arc<PluginLink>>,
    init_result: Value,
    /// How the plugin was started, to start it again.
    restart: Option<Restart>,
    _temp_dir: Option<tempfile::TempDir>,
}

/// What [`MockLightningd::restart_plugin`] starts the plugin with again.
struct Restart {
    path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    options: Value,
    include_defaults: bool,
}

impl MockLightningd {
    /// Starts the clnrest plugin with `options` (a JSON object of option values).
    pub async fn start(options: Value) -> MockLightningd {
        MockLightningd::builder().options(options).start().await
    }

    /// A builder, set up for the clnrest binary, no options, with defaults.
    pub fn builder() -> MockLightningdBuilder {
        MockLightningdBuilder {
            options: Value::Object(Default::default()),
            lightning_dir: None,
            include_defaults: true,
            plugin: Some(plugin_binary()),
            plugin_args: Vec::new(),
            plugin_env: Vec::new(),
            developer: false,
        }
    }

    /// Only the `lightning-rpc` socket, no plugin.
    pub async fn without_plugin() -> MockLightningd {
        MockLightningd::builder().without_plugin().start().await
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
    }

    /// Kills the plugin, as if it crashed or the node was killed, and starts it again the
    /// way it was started first (same options and environment); the node's state (datastore,
    /// invoices, runes) is kept.
    pub async fn restart_plugin(&mut self) {
        self.kill().await;
        let _ = self.wait_exit(Duration::from_secs(10)).await;
        let restart = self.restart.take().expect("restart_plugin needs a plugin");
        self.start_plugin(&restart).await;
        self.restart = Some(restart);
    }

    async fn start_plugin(&mut self, restart: &Restart) {
        let Restart {
            path,
            args,
            env,
            options,
            include_defaults,
        } = restart;
        let (path, include_defaults) = (path.as_path(), *include_defaults);
        let mut child = Command::new(path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.node.lightning_dir)
            .env("LIGHTNINGD_PLUGIN", "1")
            .env("LIGHTNINGD_VERSION", LIGHTNINGD_VERSION)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start plugin {}: {e}", path.display()));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".to_string());
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            panic!("plugin {} started without piped stdio", path.display());
        };
        let link = PluginLink::new(name, stdin);
        link.spawn_stdout_reader(stdout);
        link.spawn_stderr_reader(stderr);
        self.pid = child.id();
        self.child = Some(tokio::sync::Mutex::new(child));
        self.plugin = Some(Arc::clone(&link));

        let reply = self
            .handshake_request(&link, GETMANIFEST_ID, GETMANIFEST_REQUEST)
            .await;
        let builtin_commands: HashSet<String> = fixtures().help_result["help"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["command"].as_str())
            .filter_map(|command| command.split(' ').next())
            .map(str::to_string)
            .collect();
        let manifest = Manifest::from_reply(&reply, &builtin_commands).unwrap_or_else(|e| {
            panic!("mock lightningd refuses the plugin's manifest: {e}\nreply: {reply}")
        });
        let init_options = manifest
            .init_options(options, include_defaults)
            .unwrap_or_else(|e| panic!("mock lightningd cannot pass these options: {e}"));
        link.set_manifest(manifest);
        self.node.set_plugin(Arc::clone(&link));

        let lightning_dir = self.node.lightning_dir.to_string_lossy().into_owned();
        let init = init_request(&init_options, &lightning_dir, &fixtures().feature_set);
        let reply = self.handshake_request(&link, INIT_ID, &init).await;
        let Some(result) = reply.get("result").filter(|r| r.is_object()) else {
            panic!("plugin answered init without a result object: {reply}");
        };
        self.init_result = result.clone();
        if result.get("disable").is_some() {
            // lightningd drops a plugin that disables itself at init.
            link.mark_stopped();
            self.kill().await;
        }
    }

    async fn handshake_request(&self, link: &PluginLink, id: &str, text: &str) -> Value {
        let stderr = || link.stderr_lines().join("\n");
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, link.request(id, text)).await {
            Ok(Some(reply)) => reply,
            Ok(None) => panic!(
                "plugin stopped before answering {id}; violations: {:?}; stderr:\n{}",
                link.violations(),
                stderr()
            ),
            Err(_) => panic!(
                "plugin did not answer {id} within {HANDSHAKE_TIMEOUT:?}; violations: {:?}; stderr:\n{}",
                link.violations(),
                stderr()
            ),
        }
    }

    /// The network directory (`lightning-dir` in init and getinfo).
    pub fn lightning_dir(&self) -> &Path {
        &self.node.lightning_dir
    }

    /// `<lightning-dir>/lightning-rpc`.
    pub fn rpc_path(&self) -> PathBuf {
        self.node.lightning_dir.join("lightning-rpc")
    }

    /// The `result` of the plugin's init reply (`{}` or `{"disable": ...}`); `null`
    /// without a plugin.
    pub fn init_result(&self) -> &Value {
        &self.init_result
    }

    /// The manifest (`result` of getmanifest) the plugin sent.
    pub fn manifest(&self) -> Option<&Value> {
        self.plugin.as_ref()?.manifest().map(|m| &m.raw)
    }

    /// Log lines the plugin sent, in order.
    pub fn logs(&self) -> Vec<LogLine> {
        self.plugin.as_ref().map(|p| p.logs()).unwrap_or_default()
    }

    /// Waits up to `timeout` for a log line matching `predicate` (also among past ones).
    pub async fn wait_for_log(
        &self,
        predicate: impl FnMut(&LogLine) -> bool,
        timeout: Duration,
    ) -> Option<LogLine> {
        self.plugin.as_ref()?.wait_for_log(predicate, timeout).await
    }

    /// Size in bytes of the largest log message the plugin sent.
    pub fn max_log_len(&self) -> usize {
        self.plugin.as_ref().map_or(0, |p| p.max_log_len())
    }

    /// What the plugin did that lightningd would not accept (bad frames, oversized logs...).
    pub fn violations(&self) -> Vec<String> {
        self.plugin
            .as_ref()
            .map(|p| p.violations())
            .unwrap_or_default()
    }

    /// Panics listing the violations, if any.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "the plugin broke lightningd's protocol:\n{}",
            violations.join("\n")
        );
    }

    /// Notifications (other than `log`) the plugin sent to lightningd.
    pub fn plugin_notifications(&self) -> Vec<Value> {
        self.plugin
            .as_ref()
            .map(|p| p.notifications())
            .unwrap_or_default()
    }

    /// Every message written to the plugin's stdin (without the `"\n\n"`).
    pub fn sent_to_plugin(&self) -> Vec<String> {
        self.plugin.as_ref().map(|p| p.sent()).unwrap_or_default()
    }

    /// The plugin's stderr lines so far.
    pub fn plugin_stderr(&self) -> Vec<String> {
        self.plugin
            .as_ref()
            .map(|p| p.stderr_lines())
            .unwrap_or_default()
    }

    /// Sends `{"jsonrpc":"2.0","method":topic,"params":{topic: payload}}` if the plugin
    /// subscribed to `topic` (by name, or `"*"` for anything but `log`); returns whether
    /// it was sent.
    pub async fn notify(&self, topic: &str, payload: Value) -> bool {
        self.node.notify_plugin(topic, payload).await
    }

    /// Writes any JSON to the plugin's stdin (compact, followed by `"\n\n"`).
    pub async fn notify_raw(&self, message: Value) {
        let link = self.plugin.as_ref().expect("notify_raw needs a plugin");
        link.write_frame(&message.to_string())
            .await
            .unwrap_or_else(|e| panic!("cannot write to the plugin's stdin: {e}"));
    }

    /// Like lightningd stopping: sends notifications/shutdown.json if the plugin subscribed
    /// to `shutdown` (returns `true`), else kills it at once (returns `false`).
    pub async fn shutdown(&self) -> bool {
        if self.notify("shutdown", serde_json::json!({})).await {
            return true;
        }
        self.kill().await;
        false
    }

    /// Closes the plugin's stdin.
    pub async fn close_stdin(&self) {
        if let Some(link) = &self.plugin {
            link.close_stdin().await;
        }
    }

    /// Kills the plugin process.
    pub async fn kill(&self) {
        if let Some(child) = &self.child {
            let _ = child.lock().await.start_kill();
        }
    }

    /// Waits up to `timeout` for the plugin to exit.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.as_ref()?.lock().await;
        let status = tokio::time::timeout(timeout, child.wait())
            .await
            .ok()?
            .ok()?;
        if let Some(link) = &self.plugin {
            link.mark_stopped();
        }
        Some(status)
    }

    /// The plugin's process id (for `/proc/<pid>/...`), if a plugin was started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Turns the record of `lightning-rpc` calls on (the default) or off, for long runs
    /// whose calls nobody reads; off also forgets the calls recorded so far.
    pub fn record_calls(&self, on: bool) {
        self.node.set_recording(on);
    }

    /// Turns the record of the plugin's log lines on (the default) or off, for long runs
    /// whose logs nobody reads: a soak's plugin logs one line per request. Off also
    /// forgets the lines recorded so far; lines are still checked for violations.
    pub fn record_logs(&self, on: bool) {
        if let Some(plugin) = &self.plugin {
            plugin.keep_logs(on);
        }
    }

    /// Every call received on `lightning-rpc`, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.node.calls()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Connections accepted on `lightning-rpc` so far.
    pub fn connections_accepted(&self) -> u64 {
        self.socket.connections_accepted()
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Test hook: makes a rune as `createrune` would (`restrictions`: `null`, `"readonly"`
    /// or `[["method=invoice"]]`...), without a recorded call.
    pub fn create_rune(&self, restrictions: Value) -> String {
        let restrictions = match restrictions {
            Value::Null => Vec::new(),
            other => runes::parse_restrictions_param(&other)
                .unwrap_or_else(|| panic!("not valid rune restrictions: {other}")),
        };
        node::lock(&self.node.runes)
            .create(None, restrictions, &self.node.random)
            .text
    }

    /// Test hook: adds `count` unpaid invoices (`synthetic-<n>`) at once.
    pub fn add_invoices(&self, count: usize) {
        self.node.invoices.add_synthetic(count, &self.node.random);
    }

    /// Test hook: pays invoice `label` (waking `waitinvoice`/`waitanyinvoice` and sending
    /// `invoice_payment` if subscribed). `false` if there is no unpaid invoice `label`.
    pub async fn pay_invoice(&self, label: &str) -> bool {
        match self.node.invoices.pay(label) {
            Some(payment) => {
                self.node.notify_plugin("invoice_payment", payment).await;
                true
            }
            None => false,
        }
    }
}

impl Drop for MockLightningd {
    fn drop(&mut self) {
        self.socket.shutdown();
        if let Some(child) = &self.child {
            if let Ok(mut child) = child.try_lock() {
                let _ = child.start_kill();
            }
        }
    }
}
