//! What the benches' `--lightningd PATH` modes share: a plugin binary under test (ours, and
//! the one `--compare` names), run inside a real regtest lightningd started by
//! `tests/real_node/node.rs` (included here, so a bench has one copy of it), and the facts a
//! report prints about that node.

#[path = "../../tests/real_node/node.rs"]
pub mod node;

use node::{fake_bitcoind, NodeConfig, RealNode, LIGHTNINGD_VAR};
use std::path::{Path, PathBuf};

/// A plugin binary under test.
pub struct Subject {
    pub label: String,
    pub binary: PathBuf,
}

/// This tree's plugin, then the `--compare` binary if given.
pub fn subjects(compare: Option<&Path>) -> Result<Vec<Subject>, String> {
    let mut subjects = vec![Subject {
        label: "clnrest (this tree)".into(),
        binary: PathBuf::from(env!("CARGO_BIN_EXE_clnrest")),
    }];
    if let Some(compare) = compare {
        let binary = compare
            .canonicalize()
            .map_err(|e| format!("--compare {}: {e}", compare.display()))?;
        subjects.push(Subject {
            label: format!("compared: {}", binary.display()),
            binary,
        });
    }
    Ok(subjects)
}

/// Checks `--lightningd` and the fake Bitcoin backend and makes `node.rs` use that binary;
/// returns its canonical path. Call it before any thread of the bench exists (it sets an
/// environment variable).
pub fn use_lightningd(lightningd: &Path) -> Result<PathBuf, String> {
    let lightningd = lightningd
        .canonicalize()
        .map_err(|e| format!("--lightningd {}: {e}", lightningd.display()))?;
    std::env::set_var(LIGHTNINGD_VAR, &lightningd);
    let backend = fake_bitcoind();
    if !backend.is_file() {
        return Err(format!(
            "the fake Bitcoin backend {} is missing",
            backend.display()
        ));
    }
    Ok(lightningd)
}

/// `lightningd --version`, or `unknown`.
pub fn lightningd_version(lightningd: &Path) -> String {
    std::process::Command::new(lightningd)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Where the nodes' directories go: `--node-dir`, else /dev/shm (a tmpfs: lightningd writes
/// its database on every `checkrune` and `invoice`), else the temp dir.
pub fn node_parent(node_dir: Option<&Path>) -> PathBuf {
    match node_dir {
        Some(dir) => dir.to_path_buf(),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    }
}

/// A running node whose clnrest is a subject's binary.
pub struct PluginNode {
    pub node: RealNode,
    pub port: u16,
    pub lightningd_pid: u32,
    pub plugin_pid: u32,
}

/// Starts a node in `directory` with `subject`'s binary as its clnrest and `config`'s options
/// (e.g. [`NodeConfig::http`]). Panics with the node's log when lightningd does not come up
/// (`node.rs`).
pub fn start_plugin_node(
    subject: &Subject,
    directory: &Path,
    mut config: NodeConfig,
) -> Result<PluginNode, String> {
    std::fs::create_dir_all(directory)
        .map_err(|e| format!("cannot create {}: {e}", directory.display()))?;
    config.plugin = Some(subject.binary.clone());
    config.directory = Some(directory.to_path_buf());
    let node = RealNode::start(config);
    let port = node
        .rest_port()
        .ok_or("the node config has no clnrest-port")?;
    let lightningd_pid = node.pid().ok_or("lightningd is not running")?;
    let file_name = subject
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("no file name in {}", subject.binary.display()))?;
    let plugin_pid = node
        .plugin_pid(file_name)
        .ok_or_else(|| format!("lightningd runs no process named {file_name}"))?;
    Ok(PluginNode {
        node,
        port,
        lightningd_pid,
        plugin_pid,
    })
}
