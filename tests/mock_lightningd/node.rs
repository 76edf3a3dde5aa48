//! The mock node's shared state: its stores, the record of RPC calls, the fault switches and
//! the link to the plugin.

use super::datastore::Datastore;
use super::faults::FaultSwitches;
use super::invoices::InvoiceStore;
use super::plugin_link::PluginLink;
use super::random::Random;
use super::runes::RuneRegistry;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// One request received on `lightning-rpc`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub method: String,
    /// `params` as sent (`null` when absent).
    pub params: Value,
    /// Which connection it came on (numbered from 0 in accept order).
    pub connection_id: u64,
}

/// Everything the socket server and the method implementations share.
pub struct Node {
    /// The network directory (`<lightning-dir>/regtest`), the `lightning-dir` of init/getinfo.
    pub lightning_dir: PathBuf,
    pub random: Random,
    pub runes: Mutex<RuneRegistry>,
    pub invoices: InvoiceStore,
    pub datastore: Mutex<Datastore>,
    pub faults: Arc<FaultSwitches>,
    /// getinfo's `blockheight` (fixtures/rpc/getinfo.json: 0, a lone regtest node).
    pub blockheight: u64,
    /// Whether the node acts as if started with `--developer` (see
    /// [`super::MockLightningdBuilder::developer`]).
    pub developer: bool,
    calls: Mutex<Vec<RecordedCall>>,
    /// Whether calls are recorded (benchmarks and soaks turn it off to keep memory flat).
    recording: AtomicBool,
    plugin: RwLock<Option<Arc<PluginLink>>>,
}

/// Locks a mutex, ignoring poisoning by a panicked test thread.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    pub fn new(lightning_dir: PathBuf, developer: bool) -> Node {
        Node {
            lightning_dir,
            developer,
            random: Random::new(),
            runes: Mutex::default(),
            invoices: InvoiceStore::default(),
            datastore: Mutex::default(),
            faults: Arc::default(),
            blockheight: 0,
            calls: Mutex::default(),
            recording: AtomicBool::new(true),
            plugin: RwLock::default(),
        }
    }

    pub fn record_call(&self, call: RecordedCall) {
        if self.recording.load(Ordering::Relaxed) {
            lock(&self.calls).push(call);
        }
    }

    /// Turns the record of calls on or off (off also forgets the calls recorded so far).
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
        if !on {
            lock(&self.calls).clear();
        }
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.calls).clone()
    }

    /// Attaches the plugin once its manifest was accepted.
    pub fn set_plugin(&self, plugin: Arc<PluginLink>) {
        *self.plugin.write().unwrap_or_else(|e| e.into_inner()) = Some(plugin);
    }

    /// The plugin, if one was attached.
    pub fn plugin(&self) -> Option<Arc<PluginLink>> {
        self.plugin
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The running plugin that registered `method` in its manifest, if any.
    pub fn plugin_serving(&self, method: &str) -> Option<Arc<PluginLink>> {
        self.plugin().filter(|plugin| plugin.serves(method))
    }

    /// Sends a notification to the plugin if it subscribed to `topic` (see
    /// [`PluginLink::notify`]); returns whether it was sent.
    pub async fn notify_plugin(&self, topic: &str, payload: Value) -> bool {
        match self.plugin() {
            Some(plugin) => plugin.notify(topic, payload).await,
            None => false,
        }
    }
}
