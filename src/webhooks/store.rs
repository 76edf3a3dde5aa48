//! Where webhooks are kept: their definitions in lightningd's datastore, and each
//! endpoint's pending deliveries in a file of its own under the node directory.
//!
//! Datastore: one entry per endpoint at `["clnrest", "webhooks", <id>]`, a JSON string
//! [`EndpointConfig`] (the secret included: the plugin signs with it after a restart).
//!
//! Pending file, `<lightning-dir>/clnrest-webhooks/<id>.jsonl`, one JSON object a line,
//! appended as things happen:
//! - `{"id":"<epoch>-<seq>","body":{...}}`: an event to deliver, its body exactly as it is
//!   sent (and signed);
//! - `{"acked":"<epoch>-<seq>"}`: the receiver acknowledged that event (and, deliveries
//!   being in order, every one before it).
//!
//! Reading it back replays both, which leaves the events still to deliver, in order. The
//! file is emptied whenever nothing is pending and rewritten with only the pending events
//! when acknowledged ones make up most of it, so it stays about the size of the backlog,
//! which is bounded in bytes ([`Spool::push`]).

use crate::lightningd::rpc::LightningRpc;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The datastore key under which every endpoint has its entry.
pub const DATASTORE_KEY: [&str; 2] = ["clnrest", "webhooks"];
/// The folder of pending files, in the lightning directory.
pub const PENDING_DIR: &str = "clnrest-webhooks";

/// One endpoint as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub id: String,
    pub url: String,
    /// `None`: every topic.
    pub topics: Option<Vec<String>>,
    pub allow_http: bool,
    /// `whsec_<base64>`.
    pub secret: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// Stores a new endpoint (`must-create`: ids are random, a clash is refused, not replaced).
pub async fn save(rpc: &LightningRpc, endpoint: &EndpointConfig) -> anyhow::Result<()> {
    let text = serde_json::to_string(endpoint)?;
    let key = [DATASTORE_KEY[0], DATASTORE_KEY[1], endpoint.id.as_str()];
    rpc.call(
        "datastore",
        &json!({"key": key, "string": text, "mode": "must-create"}),
    )
    .await?;
    Ok(())
}

/// Removes an endpoint's entry.
pub async fn delete(rpc: &LightningRpc, id: &str) -> anyhow::Result<()> {
    let key = [DATASTORE_KEY[0], DATASTORE_KEY[1], id];
    rpc.call("deldatastore", &json!({ "key": key })).await?;
    Ok(())
}

/// Every stored endpoint; entries that do not read as one are logged and skipped.
pub async fn load(rpc: &LightningRpc) -> anyhow::Result<Vec<EndpointConfig>> {
    #[derive(Deserialize)]
    struct Listed {
        datastore: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        key: Vec<String>,
        string: Option<String>,
    }
    let listed: Listed = rpc
        .call("listdatastore", &json!({ "key": DATASTORE_KEY }))
        .await?
        .decode()?;
    let mut endpoints = Vec::new();
    for entry in listed.datastore {
        if entry.key.len() != 3 {
            continue;
        }
        match entry
            .string
            .as_deref()
            .map(serde_json::from_str::<EndpointConfig>)
        {
            Some(Ok(endpoint)) if endpoint.id == entry.key[2] => endpoints.push(endpoint),
            _ => tracing::warn!(
                "ignoring datastore entry {:?}: not a webhook definition",
                entry.key
            ),
        }
    }
    Ok(endpoints)
}

/// An event waiting for delivery.
#[derive(Debug, Clone)]
pub struct Event {
    /// `<epoch>-<seq>`: the `webhook-id`.
    pub id: String,
    /// The request body, exactly as signed.
    pub body: Bytes,
}

/// One endpoint's pending deliveries: in memory, in order, and mirrored to its file.
pub struct Spool {
    path: PathBuf,
    /// Opened for appending; `None` if it cannot be written (the backlog is then kept in
    /// memory only, which the log says once).
    file: Option<File>,
    queue: VecDeque<Event>,
    /// Bytes of the pending bodies.
    pending_bytes: usize,
    /// Bytes in the file (pending events, acknowledged ones and acks).
    file_bytes: u64,
    max_bytes: usize,
    /// Events dropped to keep the backlog within `max_bytes`, since the start.
    dropped: u64,
    /// The file could not be written: said once in the log.
    memory_only: bool,
}

/// One line of a pending file.
#[derive(Deserialize)]
struct Line<'a> {
    id: Option<String>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    acked: Option<String>,
}

impl Spool {
    /// The pending file of endpoint `id` in `dir`.
    pub fn path(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.jsonl"))
    }

    /// Opens (creating) the pending file at `path`, and takes back what it still holds to
    /// deliver.
    pub fn open(path: PathBuf, max_bytes: usize) -> Spool {
        let mut spool = Spool {
            path,
            file: None,
            queue: VecDeque::new(),
            pending_bytes: 0,
            file_bytes: 0,
            max_bytes,
            dropped: 0,
            memory_only: false,
        };
        match std::fs::read(&spool.path) {
            Ok(text) => spool.replay(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read {}: {e}", spool.path.display()),
        }
        // Rewritten with only what is pending (also creates it).
        spool.rewrite();
        spool
    }

    fn replay(&mut self, text: &[u8]) {
        let mut unreadable = 0;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Line>(line) {
                Ok(Line {
                    id: Some(id),
                    body: Some(body),
                    ..
                }) => {
                    let body = Bytes::copy_from_slice(body.get().as_bytes());
                    self.pending_bytes += body.len();
                    self.queue.push_back(Event { id, body });
                }
                Ok(Line {
                    acked: Some(acked), ..
                }) => {
                    if let Some(at) = self.queue.iter().position(|e| e.id == acked) {
                        for event in self.queue.drain(..=at) {
                            self.pending_bytes -= event.body.len();
                        }
                    }
                }
                // A line cut short when the plugin was killed mid-write, most likely.
                _ => unreadable += 1,
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                "{}: skipped {unreadable} unreadable line(s)",
                self.path.display()
            );
        }
    }

    /// The oldest pending event.
    pub fn front(&self) -> Option<&Event> {
        self.queue.front()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `event` after the others. If the backlog then holds more than its bound, the
    /// oldest events after the first (which may be in flight) are dropped, down to three
    /// quarters of it; returns how many.
    pub fn push(&mut self, event: Event) -> usize {
        let line = format!(
            "{{\"id\":{},\"body\":{}}}\n",
            serde_json::Value::String(event.id.clone()),
            String::from_utf8_lossy(&event.body)
        );
        self.pending_bytes += event.body.len();
        self.queue.push_back(event);
        if self.pending_bytes > self.max_bytes && self.queue.len() > 2 {
            let target = self.max_bytes / 4 * 3;
            let mut dropped = 0;
            while self.pending_bytes > target && self.queue.len() > 2 {
                if let Some(old) = self.queue.remove(1) {
                    self.pending_bytes -= old.body.len();
                    dropped += 1;
                }
            }
            self.dropped += dropped as u64;
            self.rewrite();
            return dropped;
        }
        self.append(line.as_bytes());
        0
    }

    /// The receiver acknowledged `id`: if it is the oldest event, it is no longer pending.
    pub fn ack(&mut self, id: &str) {
        if self.queue.front().is_none_or(|e| e.id != id) {
            return;
        }
        if let Some(event) = self.queue.pop_front() {
            self.pending_bytes -= event.body.len();
        }
        if self.queue.is_empty() {
            self.truncate();
        } else if self.file.is_some()
            && self.file_bytes > 2 * self.pending_bytes as u64 + 1024 * 1024
        {
            self.rewrite();
        } else {
            let line = format!("{{\"acked\":{}}}\n", Value::String(id.to_string()));
            self.append(line.as_bytes());
        }
    }

    /// Deletes the file (the endpoint was removed).
    pub fn remove_file(&mut self) {
        self.file = None;
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }

    fn append(&mut self, line: &[u8]) {
        if let Some(file) = self.file.as_mut() {
            match file.write_all(line) {
                Ok(()) => self.file_bytes += line.len() as u64,
                Err(e) => self.give_up_file(e),
            }
        }
    }

    fn truncate(&mut self) {
        if let Some(file) = self.file.as_ref() {
            match file.set_len(0) {
                Ok(()) => self.file_bytes = 0,
                Err(e) => self.give_up_file(e),
            }
        }
    }

    /// Writes the pending events to a new file that replaces the old one.
    fn rewrite(&mut self) {
        let temporary = self.path.with_extension("jsonl.tmp");
        let mut text = Vec::with_capacity(self.pending_bytes + 64 * self.queue.len());
        for event in &self.queue {
            text.extend_from_slice(b"{\"id\":");
            text.extend_from_slice(Value::String(event.id.clone()).to_string().as_bytes());
            text.extend_from_slice(b",\"body\":");
            text.extend_from_slice(&event.body);
            text.extend_from_slice(b"}\n");
        }
        let written = std::fs::write(&temporary, &text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match written {
            Ok(file) => {
                self.file = Some(file);
                self.file_bytes = text.len() as u64;
            }
            Err(e) => self.give_up_file(e),
        }
    }

    fn give_up_file(&mut self, e: std::io::Error) {
        if !self.memory_only {
            self.memory_only = true;
            tracing::warn!(
                "cannot write {}: {e}; pending webhook deliveries are kept in memory only \
                 and will not survive a restart",
                self.path.display()
            );
        }
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Event {
        Event {
            id: format!("e-{seq}"),
            body: Bytes::from(format!(
                r#"{{"seq":{seq},"payload":{{"x":"{}"}}}}"#,
                "y".repeat(10)
            )),
        }
    }

    fn ids(spool: &Spool) -> Vec<String> {
        spool.queue.iter().map(|e| e.id.clone()).collect()
    }

    #[test]
    fn pending_events_survive_reopening_and_acks_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = Spool::path(dir.path(), "w1");
        let mut spool = Spool::open(path.clone(), usize::MAX);
        for seq in 1..=4 {
            spool.push(event(seq));
        }
        spool.ack("e-1");
        spool.ack("e-3"); // not the oldest: ignored
        spool.ack("e-2");
        drop(spool);
        let mut spool = Spool::open(path.clone(), usize::MAX);
        assert_eq!(ids(&spool), ["e-3", "e-4"]);
        assert_eq!(spool.front().unwrap().body, event(3).body);
        spool.ack("e-3");
        spool.ack("e-4");
        assert!(spool.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        spool.push(event(5));
        drop(spool);
        assert_eq!(ids(&Spool::open(path, usize::MAX)), ["e-5"]);
    }

    #[test]
    fn a_line_cut_short_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = Spool::path(dir.path(), "w2");
        let mut spool = Spool::open(path.clone(), usize::MAX);
        spool.push(event(1));
        drop(spool);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"id":"e-2","bo"#).unwrap();
        assert_eq!(ids(&Spool::open(path, usize::MAX)), ["e-1"]);
    }

    #[test]
    fn the_backlog_is_bounded_in_bytes_keeping_the_oldest_and_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = Spool::path(dir.path(), "w3");
        let size = event(1).body.len();
        let mut spool = Spool::open(path.clone(), size * 8);
        let mut dropped = 0;
        for seq in 1..=20 {
            dropped += spool.push(event(seq));
        }
        assert!(spool.pending_bytes() <= size * 8);
        assert_eq!(spool.dropped(), dropped as u64);
        assert_eq!(spool.len() as u64 + spool.dropped(), 20);
        let kept = ids(&spool);
        assert_eq!(kept[0], "e-1");
        assert_eq!(kept.last().unwrap(), "e-20");
        drop(spool);
        assert_eq!(ids(&Spool::open(path, size * 8)), kept);
    }
}
