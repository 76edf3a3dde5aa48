//! Where webhooks are kept: their definitions in lightningd's datastore, and each
//! endpoint's pending deliveries in a file of its own under the node directory.
//!
//! Datastore: one entry per endpoint at `["clnrest", "webhooks", <id>]`, a JSON string
//! [`EndpointConfig`] (the secret included: the plugin signs with it after a restart).
//!
//! Pending file, `<lightning-dir>/clnrest-webhooks/<id>.jsonl`, one JSON object a line,
//! appended as things happen:
//! - `{"id":"<epoch>-<seq>","body":{...}}`: an event to deliver, its body exactly as it is
//!   sent (and signed), written as soon as it is queued;
//! - `{"acked":"<epoch>-<seq>"}`: the receiver acknowledged that event (and, deliveries
//!   being in order, every one before it). Acknowledgements are recorded at most every
//!   [`ACK_RECORD_INTERVAL`] (the last one of a burst at most that long after it came), not
//!   one line per event: a plugin stopped in between re-delivers the events acknowledged
//!   since the last record, which at-least-once delivery allows (receivers de-duplicate on
//!   `webhook-id`).
//!
//! Reading it back replays both, which leaves the events still to deliver, in order. The
//! file is emptied when nothing is pending and it has grown past [`COMPACT_BYTES`], and
//! rewritten with only the pending events when acknowledged ones make up most of it, so it
//! stays about the size of the backlog, which is bounded in bytes ([`Spool::push`]).

use crate::lightningd::rpc::LightningRpc;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The datastore key under which every endpoint has its entry.
pub const DATASTORE_KEY: [&str; 2] = ["clnrest", "webhooks"];
/// The folder of pending files, in the lightning directory.
pub const PENDING_DIR: &str = "clnrest-webhooks";
/// The longest an acknowledgement waits to be recorded in the pending file.
pub const ACK_RECORD_INTERVAL: Duration = Duration::from_millis(100);
/// A pending file with nothing pending is emptied once it is this large.
pub const COMPACT_BYTES: u64 = 1024 * 1024;

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
    /// The last event acknowledged, if that is not recorded in the file yet.
    unrecorded_ack: Option<String>,
    /// When an acknowledgement was last recorded.
    ack_recorded_at: Instant,
    /// Lines are built here, then appended (one write each).
    line: Vec<u8>,
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
            unrecorded_ack: None,
            ack_recorded_at: Instant::now(),
            line: Vec::new(),
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

    /// Queues `event` after the others and appends it to the file. If the backlog then holds
    /// more than its bound, the oldest events after the first (which may be in flight) are
    /// dropped, down to three quarters of it; returns how many.
    pub fn push(&mut self, event: Event) -> usize {
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
        let mut line = std::mem::take(&mut self.line);
        if let Some(event) = self.queue.back() {
            event_line(&mut line, event);
        }
        self.append_line(line);
        0
    }

    /// The receiver acknowledged `id`: if it is the oldest event, it is no longer pending.
    /// That is recorded in the file now if the last record is [`ACK_RECORD_INTERVAL`] old,
    /// else later ([`Spool::ack_due`], [`Spool::record_ack`]).
    pub fn ack(&mut self, id: &str) {
        if self.queue.front().is_none_or(|e| e.id != id) {
            return;
        }
        if let Some(event) = self.queue.pop_front() {
            self.pending_bytes -= event.body.len();
            self.unrecorded_ack = Some(event.id);
        }
        if self.ack_recorded_at.elapsed() >= ACK_RECORD_INTERVAL {
            self.record_ack();
        }
    }

    /// When the acknowledgement waiting to be recorded is due (`None` if none waits).
    pub fn ack_due(&self) -> Option<Instant> {
        self.unrecorded_ack
            .as_ref()
            .map(|_| self.ack_recorded_at + ACK_RECORD_INTERVAL)
    }

    /// Records the last acknowledgement in the file, if it is not yet: an `acked` line, or,
    /// when the acknowledged events make up most of the file, a shorter file.
    pub fn record_ack(&mut self) {
        let Some(id) = self.unrecorded_ack.take() else {
            return;
        };
        self.ack_recorded_at = Instant::now();
        if self.queue.is_empty() && self.file_bytes >= COMPACT_BYTES {
            self.truncate();
        } else if self.file.is_some()
            && self.file_bytes > 2 * self.pending_bytes as u64 + COMPACT_BYTES
        {
            self.rewrite();
        } else {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(b"{\"acked\":");
            json_string(&mut line, &id);
            line.extend_from_slice(b"}\n");
            self.append_line(line);
        }
    }

    /// Deletes the file (the endpoint was removed).
    pub fn remove_file(&mut self) {
        self.file = None;
        self.unrecorded_ack = None;
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }

    /// Appends `line` (built in the spool's reused buffer, taken out of `self.line`) to the
    /// file in one write, and gives the buffer back.
    fn append_line(&mut self, mut line: Vec<u8>) {
        if let Some(file) = self.file.as_mut() {
            match file.write_all(&line) {
                Ok(()) => self.file_bytes += line.len() as u64,
                Err(e) => self.give_up_file(e),
            }
        }
        line.clear();
        self.line = line;
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
            event_line(&mut text, event);
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

/// An acknowledgement not recorded yet is recorded when the spool goes (its endpoint's tasks
/// stop with the runtime); a process killed before that re-delivers it.
impl Drop for Spool {
    fn drop(&mut self) {
        self.record_ack();
    }
}

/// Appends `{"id":"<id>","body":<body>}` and a newline to `out`.
fn event_line(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(b"{\"id\":");
    json_string(out, &event.id);
    out.extend_from_slice(b",\"body\":");
    out.extend_from_slice(&event.body);
    out.extend_from_slice(b"}\n");
}

/// Appends `text` as a JSON string to `out`.
fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec fails only on a serializer error, which a str cannot cause.
    let _ = serde_json::to_writer(&mut *out, text);
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

    /// Acks wait to be recorded however slow the machine is.
    fn hold_acks(spool: &mut Spool) {
        spool.ack_recorded_at = Instant::now() + Duration::from_secs(3600);
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
        spool.push(event(5));
        drop(spool);
        assert_eq!(ids(&Spool::open(path, usize::MAX)), ["e-5"]);
    }

    #[test]
    fn acks_are_recorded_at_most_every_interval_and_a_kill_redelivers_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = Spool::path(dir.path(), "w4");
        let mut spool = Spool::open(path.clone(), usize::MAX);
        for seq in 1..=4 {
            spool.push(event(seq));
        }
        let size = std::fs::metadata(&path).unwrap().len();
        hold_acks(&mut spool);
        spool.ack("e-1");
        assert!(spool.ack_due().is_some(), "waits to be recorded");
        spool.ack("e-2");
        assert!(spool.ack_due().is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert!(spool.ack_due().is_some());
        spool.record_ack();
        assert_eq!(spool.ack_due(), None);
        hold_acks(&mut spool);
        // Killed with e-3 acknowledged but not recorded: it is delivered again.
        spool.ack("e-3");
        assert!(spool.ack_due().is_some());
        std::mem::forget(spool);
        assert_eq!(ids(&Spool::open(path.clone(), usize::MAX)), ["e-3", "e-4"]);
        // An ack made once the interval has passed is recorded at once.
        let mut spool = Spool::open(path.clone(), usize::MAX);
        spool.ack_recorded_at = Instant::now() - ACK_RECORD_INTERVAL;
        spool.ack("e-3");
        assert!(spool.ack_due().is_none());
        std::mem::forget(spool);
        assert_eq!(ids(&Spool::open(path, usize::MAX)), ["e-4"]);
    }

    #[test]
    fn a_file_with_nothing_pending_is_emptied_once_large() {
        let dir = tempfile::tempdir().unwrap();
        let path = Spool::path(dir.path(), "w5");
        let mut spool = Spool::open(path.clone(), usize::MAX);
        let mut seq = 0;
        while std::fs::metadata(&path).unwrap().len() < COMPACT_BYTES {
            seq += 1;
            spool.push(event(seq));
            spool.ack(&format!("e-{seq}"));
            spool.record_ack();
        }
        seq += 1;
        spool.push(event(seq));
        spool.ack(&format!("e-{seq}"));
        spool.record_ack();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        spool.push(event(seq + 1));
        drop(spool);
        assert_eq!(
            ids(&Spool::open(path, usize::MAX)),
            [format!("e-{}", seq + 1)]
        );
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
