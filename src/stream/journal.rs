//! The notification journal: every notification lightningd sends gets a sequence number
//! (from 1, per process), the most recent ones are retained, and subscribers read them in
//! order.
//!
//! Sequence numbers restart at 1 with every plugin process, so a number alone does not say
//! which process handed it out. Each journal has an [`epoch`](Journal::epoch), a random name
//! for this process's numbering; a client's resume [`Position`] `<epoch>-<seq>` names both,
//! and one from another epoch is answered with a [`Gap`] and everything retained.
//!
//! [`Journal::append`] never waits: it is called from the plugin's stdin loop, and lightningd
//! must never be slowed down by a client. The retained entries are the only copy: each
//! subscriber keeps its position (a sequence number) and reads the next entry from the
//! journal, woken by a `watch` channel when one is appended; a resuming one first replays a
//! snapshot of what it missed, taken when it subscribes. A subscriber that falls so far
//! behind that the entry it needs is no longer retained (more than [`RETAINED_COUNT`]
//! notifications, or [`RETAINED_BYTES`] of them) is told it [`Lagged`](Next::Lagged) and is
//! cut off by its delivery task, without delaying anyone else.

use bytes::{BufMut, Bytes, BytesMut};
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// How many notifications the journal keeps for resuming and lagging subscribers.
pub const RETAINED_COUNT: usize = 10_000;
/// How many bytes of payload the journal keeps at most.
pub const RETAINED_BYTES: usize = 64 * 1024 * 1024;

/// How large the blocks that hold the retained notifications' text are.
///
/// Notifications arrive among the many short-lived allocations of parsing them; kept one
/// allocation each, the 10,000 retained ones pin pages all over the heap that the allocator
/// can then never give back (the soak's RSS grew by a step at the second burst). In blocks,
/// they fill whole pages, which are freed together as the journal moves on.
const BLOCK_SIZE: usize = 64 * 1024;

/// The room left in a block below which the next notification starts a new one. A payload
/// that outgrows the room left moves, with its topic, to a new block of at least
/// [`BLOCK_SIZE`] (`BytesMut` keeps the block size it started with).
const BLOCK_MIN_ROOM: usize = 4 * 1024;

/// One notification as lightningd sent it.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Position in this process's stream, from 1.
    pub seq: u64,
    topic_len: usize,
    /// The topic then the payload's JSON text, a slice of a block shared with neighbours.
    text: Bytes,
}

impl Notification {
    /// The topic, e.g. `invoice_payment`.
    pub fn topic(&self) -> &str {
        text(self.text.get(..self.topic_len))
    }

    /// The topic's object as JSON text, e.g. `{"msat":10000,"preimage":"...","label":"x"}`.
    pub fn payload(&self) -> &str {
        text(self.text.get(self.topic_len..))
    }

    /// The payload as raw JSON, for serializing it as it is.
    fn raw_payload(&self) -> Result<&RawValue, serde_json::Error> {
        serde_json::from_str(self.payload())
    }

    /// The `params` object as lightningd sent it: `{"<topic>": <payload>}`, the data of the
    /// Socket.IO `message` event.
    pub fn params(&self) -> Params<'_> {
        Params(self)
    }

    fn size(&self) -> usize {
        self.text.len()
    }
}

/// A part of a notification's text as `&str`. Both parts were written whole as UTF-8 in
/// `Journal::append` (a `&str`, then serde_json's output), so this always succeeds; only the
/// part asked for is checked.
fn text(part: Option<&[u8]>) -> &str {
    part.and_then(|bytes| std::str::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// Serializes as `{"<topic>": <payload>}`.
pub struct Params<'a>(&'a Notification);

impl Serialize for Params<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let payload = self.0.raw_payload().map_err(S::Error::custom)?;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0.topic(), payload)?;
        map.end()
    }
}

/// Serializes as `{"seq": n, "epoch": "...", "topic": "...", "payload": {...}}`, the data of
/// the `notification` event for clients that asked for sequence numbers.
pub struct Sequenced<'a> {
    notification: &'a Notification,
    epoch: &'a str,
}

impl<'a> Sequenced<'a> {
    /// `notification`, numbered in the journal of `epoch`.
    pub fn new(notification: &'a Notification, epoch: &'a str) -> Sequenced<'a> {
        Sequenced {
            notification,
            epoch,
        }
    }
}

impl Serialize for Sequenced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let n = self.notification;
        let payload = n.raw_payload().map_err(S::Error::custom)?;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("seq", &n.seq)?;
        map.serialize_entry("epoch", self.epoch)?;
        map.serialize_entry("topic", n.topic())?;
        map.serialize_entry("payload", payload)?;
        map.end()
    }
}

/// Where a client resumes: after a sequence number, with or without the epoch that numbered
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A bare sequence number (`since: 41`, `Last-Event-ID: 41`), as clients from before
    /// epochs send it: taken as this process's number when this process has handed it out.
    Seq(u64),
    /// `<epoch>-<seq>`: a sequence number of the process whose journal had `epoch`.
    InEpoch { epoch: String, seq: u64 },
}

impl Position {
    /// Reads `41` or `<epoch>-<seq>` (an epoch is letters and digits).
    pub fn parse(text: &str) -> Option<Position> {
        let text = text.trim();
        if let Some(seq) = parse_seq(text) {
            return Some(Position::Seq(seq));
        }
        let (epoch, seq) = text.rsplit_once('-')?;
        Position::in_epoch(epoch, parse_seq(seq)?)
    }

    /// `seq` of `epoch`, if `epoch` is a well-formed epoch.
    pub fn in_epoch(epoch: &str, seq: u64) -> Option<Position> {
        let well_formed = !epoch.is_empty()
            && epoch.len() <= MAX_EPOCH_LEN
            && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
        well_formed.then(|| Position::InEpoch {
            epoch: epoch.to_string(),
            seq,
        })
    }
}

/// The longest epoch a position may name (ours are [`EPOCH_LEN`]; a little room for others).
const MAX_EPOCH_LEN: usize = 64;
/// How many hex digits an epoch has.
const EPOCH_LEN: usize = 16;

/// Digits only (no sign, no `+`), as a `u64`.
fn parse_seq(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Seq(seq) => write!(f, "{seq}"),
            Position::InEpoch { epoch, seq } => write!(f, "{epoch}-{seq}"),
        }
    }
}

/// A fresh epoch: 16 hex digits, random (from the OS, through std's hasher keys) and mixed
/// with the time and process id, so two plugin processes never share one in practice.
fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    format!("{:0EPOCH_LEN$x}", hasher.finish())
}

/// A client asked to resume from a point the journal no longer holds: after notifications
/// that were dropped, or a position of another plugin process (another epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// What the client asked for.
    pub since: Position,
    /// The oldest sequence number still retained (the next one if none is).
    pub oldest: u64,
    /// This journal's epoch: `oldest` and what follows are numbered in it.
    pub epoch: String,
}

/// `{"since": N, "oldest": M}` for a bare `since` (as before epochs), else
/// `{"since": "<epoch>-<seq>", "oldest": M, "epoch": "<this epoch>"}`.
impl Serialize for Gap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.since {
            Position::Seq(since) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("since", since)?;
                map.serialize_entry("oldest", &self.oldest)?;
                map.end()
            }
            since @ Position::InEpoch { .. } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("since", &since.to_string())?;
                map.serialize_entry("oldest", &self.oldest)?;
                map.serialize_entry("epoch", &self.epoch)?;
                map.end()
            }
        }
    }
}

/// What a subscriber receives next.
#[derive(Debug)]
pub enum Next {
    Notification(Notification),
    /// The subscriber fell so far behind that the next notification it needs is no longer
    /// retained.
    Lagged,
    /// The journal is gone (the plugin is stopping).
    Closed,
}

struct Retained {
    entries: VecDeque<Notification>,
    bytes: usize,
    next_seq: u64,
    /// Where the next notifications' text goes: the unused end of the current block.
    block: BytesMut,
}

impl Retained {
    /// Writes `topic` then `payload`'s JSON text into the current block (a new one if little
    /// room is left), serializing the payload there directly.
    fn store_text(&mut self, topic: &str, payload: &Value) -> serde_json::Result<Bytes> {
        if self.block.capacity() - self.block.len() < topic.len() + BLOCK_MIN_ROOM {
            self.block = BytesMut::with_capacity(BLOCK_SIZE.max(topic.len() + BLOCK_MIN_ROOM));
        }
        self.block.extend_from_slice(topic.as_bytes());
        if let Err(e) = serde_json::to_writer((&mut self.block).writer(), payload) {
            self.block.clear();
            return Err(e);
        }
        Ok(self.block.split().freeze())
    }

    /// The oldest sequence number still retained (the next one if none is).
    fn oldest(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |n| n.seq)
    }

    /// The entries from sequence number `seq` on (none if it is not appended yet); `None` if
    /// `seq` is no longer retained.
    fn entries_from(&self, seq: u64) -> Option<impl Iterator<Item = &Notification>> {
        let skip = seq.checked_sub(self.oldest())?;
        Some(
            self.entries
                .iter()
                .skip(usize::try_from(skip).unwrap_or(usize::MAX)),
        )
    }
}

/// The retained entries, shared by the journal and every subscription.
type Store = Arc<Mutex<Retained>>;

fn lock(store: &Store) -> MutexGuard<'_, Retained> {
    // Every critical section leaves `Retained` consistent, so a poisoned lock is usable.
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`Journal::retained`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedSize {
    /// Notifications retained.
    pub count: usize,
    /// Their size as counted against [`RETAINED_BYTES`].
    pub bytes: usize,
}

/// The journal; shared by the notification handler and every stream.
pub struct Journal {
    store: Store,
    /// The name of this journal's numbering (this plugin process's).
    epoch: String,
    /// The last sequence number appended; subscribers wait for it to change. Dropping the
    /// journal closes every subscription.
    appended: watch::Sender<u64>,
    max_count: usize,
    max_bytes: usize,
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new(RETAINED_COUNT, RETAINED_BYTES)
    }
}

impl Journal {
    pub fn new(max_count: usize, max_bytes: usize) -> Journal {
        Journal {
            store: Arc::new(Mutex::new(Retained {
                entries: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                block: BytesMut::new(),
            })),
            epoch: new_epoch(),
            appended: watch::Sender::new(0),
            max_count: max_count.max(1),
            max_bytes,
        }
    }

    /// Records a notification and wakes every subscriber; returns its sequence number.
    ///
    /// Fails, and appends nothing, only if `payload` cannot be written as JSON.
    pub fn append(&self, topic: &str, payload: &Value) -> serde_json::Result<u64> {
        let seq = {
            let mut retained = lock(&self.store);
            let text = retained.store_text(topic, payload)?;
            let seq = retained.next_seq;
            retained.next_seq += 1;
            let notification = Notification {
                seq,
                topic_len: topic.len(),
                text,
            };
            retained.bytes += notification.size();
            retained.entries.push_back(notification);
            while retained.entries.len() > self.max_count
                || (retained.bytes > self.max_bytes && retained.entries.len() > 1)
            {
                if let Some(old) = retained.entries.pop_front() {
                    retained.bytes -= old.size();
                }
            }
            seq
        };
        self.appended.send_replace(seq);
        Ok(seq)
    }

    /// The name of this journal's numbering, different in every plugin process: positions
    /// are `<epoch>-<seq>`.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The last sequence number handed out (0 before the first notification).
    pub fn last_seq(&self) -> u64 {
        lock(&self.store).next_seq - 1
    }

    /// How much the journal retains now (for the metrics).
    pub fn retained(&self) -> RetainedSize {
        let retained = lock(&self.store);
        RetainedSize {
            count: retained.entries.len(),
            bytes: retained.bytes,
        }
    }

    /// Subscribes to live notifications, first replaying every retained one after `since`.
    ///
    /// A position of another epoch, or one beyond anything handed out (a bare number from an
    /// earlier process), replays everything retained after a [`Gap`].
    pub fn subscribe(&self, since: Option<Position>) -> Subscription {
        let retained = lock(&self.store);
        let (backlog, gap) = match since {
            None => (VecDeque::new(), None),
            Some(position) => {
                let oldest = retained.oldest();
                let (since, same_epoch) = match &position {
                    Position::Seq(seq) => (*seq, true),
                    Position::InEpoch { epoch, seq } => (*seq, *epoch == self.epoch),
                };
                // Sequence numbers restart at 1 in every process: a position of another
                // process is not one of ours, whatever its number.
                let from_elsewhere = !same_epoch || since >= retained.next_seq;
                let gap = (from_elsewhere || since + 1 < oldest).then(|| Gap {
                    since: position,
                    oldest,
                    epoch: self.epoch.clone(),
                });
                let after = if from_elsewhere { 0 } else { since };
                // Taken now, so appends during the replay cannot push it out of reach.
                let backlog = retained
                    .entries_from((after + 1).max(oldest))
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                (backlog, gap)
            }
        };
        let position = backlog
            .front()
            .map_or(retained.next_seq - 1, |n: &Notification| n.seq - 1);
        Subscription {
            store: self.store.clone(),
            appended: self.appended.subscribe(),
            backlog,
            gap,
            position,
        }
    }

    /// The retained notifications with a sequence number in `after + 1 ..= upto`, in order;
    /// `None` if the oldest of them is no longer retained.
    pub fn retained_between(&self, after: u64, upto: u64) -> Option<Vec<Notification>> {
        if after >= upto {
            return Some(Vec::new());
        }
        let wanted = usize::try_from(upto - after).ok()?;
        let retained = lock(&self.store);
        let found: Vec<_> = retained
            .entries_from(after + 1)?
            .take(wanted)
            .cloned()
            .collect();
        (found.len() == wanted).then_some(found)
    }
}

/// One subscriber's view: a backlog to replay, then its position in the journal, from which
/// it reads on.
pub struct Subscription {
    store: Store,
    appended: watch::Receiver<u64>,
    backlog: VecDeque<Notification>,
    gap: Option<Gap>,
    /// The sequence number of the last notification handed out (or, before the first, of
    /// the one just before where the subscription starts).
    position: u64,
}

impl Subscription {
    /// The gap to report before anything else, if the client resumed from too far back.
    pub fn take_gap(&mut self) -> Option<Gap> {
        self.gap.take()
    }

    /// The sequence number of the last notification this subscription handed out; before
    /// the first, the one just before where it starts (so everything after `position()` is
    /// still to come).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next notification, in sequence order and without gaps while the subscriber keeps
    /// up.
    pub async fn next(&mut self) -> Next {
        loop {
            // Marked seen before looking, so an append after the look wakes the wait below.
            self.appended.borrow_and_update();
            if let Some(next) = self.ready() {
                return next;
            }
            if self.appended.changed().await.is_err() {
                return self.ready().unwrap_or(Next::Closed);
            }
        }
    }

    /// Resolves once the subscription has fallen out of the journal: the notification it
    /// needs next is no longer retained (what [`Next::Lagged`] would say). Pending forever
    /// once the journal is closed. For a delivery task that waits for room to send in.
    pub async fn lagged(&mut self) {
        loop {
            self.appended.borrow_and_update();
            if self.backlog.is_empty()
                && lock(&self.store).entries_from(self.position + 1).is_none()
            {
                return;
            }
            if self.appended.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// After [`Next::Lagged`]: the subscription goes on from the oldest notification still
    /// retained. Returns the sequence numbers it missed (empty if it missed none).
    pub fn skip_lost(&mut self) -> RangeInclusive<u64> {
        let oldest = lock(&self.store).oldest();
        let missed = self.position + 1..=oldest.saturating_sub(1);
        self.position = self.position.max(oldest.saturating_sub(1));
        missed
    }

    /// Like [`Subscription::next`], without waiting: `None` when nothing is ready.
    pub fn try_next(&mut self) -> Option<Next> {
        self.ready().or_else(|| {
            let closed = self.appended.has_changed().is_err();
            closed.then_some(Next::Closed)
        })
    }

    /// The next backlog entry, else the entry after `position` if it has been appended;
    /// `Lagged` if it is gone.
    fn ready(&mut self) -> Option<Next> {
        if let Some(notification) = self.backlog.pop_front() {
            if self.backlog.is_empty() {
                // The replay is over: do not keep its buffer (up to 10,000 entries) for the
                // subscription's lifetime.
                self.backlog = VecDeque::new();
            }
            self.position = notification.seq;
            return Some(Next::Notification(notification));
        }
        let notification = match lock(&self.store).entries_from(self.position + 1) {
            None => return Some(Next::Lagged),
            Some(mut entries) => entries.next()?.clone(),
        };
        self.position = notification.seq;
        Some(Next::Notification(notification))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `payload` (JSON text) and returns its sequence number.
    fn append(journal: &Journal, topic: &str, payload: &str) -> u64 {
        let payload: Value = serde_json::from_str(payload).unwrap();
        journal.append(topic, &payload).unwrap()
    }

    fn seqs(sub: &mut Subscription) -> Vec<u64> {
        let mut out = vec![];
        while let Some(Next::Notification(n)) = sub.try_next() {
            out.push(n.seq);
        }
        out
    }

    #[test]
    fn sequence_numbers_start_at_one_and_live_subscribers_get_everything_in_order() {
        let journal = Journal::default();
        let mut sub = journal.subscribe(None);
        for i in 0..5 {
            assert_eq!(append(&journal, "t", &i.to_string()), i + 1);
        }
        assert_eq!(seqs(&mut sub), vec![1, 2, 3, 4, 5]);
        assert_eq!(journal.last_seq(), 5);
    }

    #[test]
    fn resume_replays_what_came_after_since_then_goes_live() {
        let journal = Journal::default();
        for _ in 0..5 {
            append(&journal, "t", "{}");
        }
        let mut sub = journal.subscribe(Some(Position::Seq(3)));
        append(&journal, "t", "{}");
        assert_eq!(sub.take_gap(), None);
        assert_eq!(seqs(&mut sub), vec![4, 5, 6]);
        assert_eq!(
            sub.backlog.capacity(),
            0,
            "the replayed backlog is released"
        );
    }

    #[test]
    fn resume_from_before_the_journal_reports_a_gap() {
        let journal = Journal::new(3, usize::MAX);
        for _ in 0..10 {
            append(&journal, "t", "{}");
        }
        let mut sub = journal.subscribe(Some(Position::Seq(2)));
        assert_eq!(
            sub.take_gap(),
            Some(Gap {
                since: Position::Seq(2),
                oldest: 8,
                epoch: journal.epoch().to_string(),
            })
        );
        assert_eq!(seqs(&mut sub), vec![8, 9, 10]);
        // Exactly at the edge: nothing is missing.
        assert_eq!(journal.subscribe(Some(Position::Seq(7))).take_gap(), None);
    }

    #[test]
    fn resume_from_an_earlier_process_replays_everything_after_a_gap() {
        let journal = Journal::default();
        for _ in 0..3 {
            append(&journal, "t", "{}");
        }
        let mut sub = journal.subscribe(Some(Position::Seq(5000)));
        assert_eq!(
            sub.take_gap(),
            Some(Gap {
                since: Position::Seq(5000),
                oldest: 1,
                epoch: journal.epoch().to_string(),
            })
        );
        assert_eq!(seqs(&mut sub), vec![1, 2, 3]);
        assert_eq!(journal.subscribe(Some(Position::Seq(3))).take_gap(), None);
    }

    #[test]
    fn every_journal_has_its_own_epoch_of_hex_digits() {
        let (a, b) = (Journal::default(), Journal::default());
        assert_ne!(a.epoch(), b.epoch());
        assert_eq!(a.epoch().len(), EPOCH_LEN);
        assert!(a.epoch().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn positions_parse_as_bare_numbers_or_epoch_dash_seq() {
        assert_eq!(Position::parse("41"), Some(Position::Seq(41)));
        assert_eq!(Position::parse(" 0 "), Some(Position::Seq(0)));
        let qualified = Position::parse("3f9a1c0e5b7d2a48-41").unwrap();
        assert_eq!(
            qualified,
            Position::InEpoch {
                epoch: "3f9a1c0e5b7d2a48".into(),
                seq: 41
            }
        );
        assert_eq!(qualified.to_string(), "3f9a1c0e5b7d2a48-41");
        for bad in [
            "", "-1", "+1", "x", "abc-", "-5", "a-b-c", "ab cd-5", "ab-1.5", "ab-+3",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Position::parse(&format!("{}-1", "a".repeat(65))), None);
    }

    #[test]
    fn a_position_of_this_epoch_resumes_exactly() {
        let journal = Journal::default();
        for _ in 0..5 {
            append(&journal, "t", "{}");
        }
        let here = Position::in_epoch(journal.epoch(), 3).unwrap();
        let mut sub = journal.subscribe(Some(here));
        assert_eq!(sub.take_gap(), None);
        assert_eq!(seqs(&mut sub), vec![4, 5]);
    }

    #[test]
    fn a_position_of_another_epoch_gets_a_gap_and_everything_retained_whatever_its_number() {
        let journal = Journal::new(4, usize::MAX);
        for _ in 0..6 {
            append(&journal, "t", "{}");
        }
        // 2 is below this process's last number (6): as a bare number it would skip 1..=2,
        // but it was handed out by another process.
        for seq in [2, 5, 6, 900] {
            let elsewhere = Position::in_epoch("0123456789abcdef", seq).unwrap();
            let mut sub = journal.subscribe(Some(elsewhere.clone()));
            let gap = sub.take_gap().expect("a gap");
            assert_eq!(
                gap,
                Gap {
                    since: elsewhere,
                    oldest: 3,
                    epoch: journal.epoch().to_string()
                }
            );
            assert_eq!(
                serde_json::to_value(&gap).unwrap(),
                serde_json::json!({
                    "since": format!("0123456789abcdef-{seq}"),
                    "oldest": 3,
                    "epoch": journal.epoch()
                })
            );
            assert_eq!(seqs(&mut sub), vec![3, 4, 5, 6], "since {seq}");
        }
        // Bare numbers keep their old meaning, and their gap its old shape.
        let mut bare = journal.subscribe(Some(Position::Seq(1)));
        let gap = bare.take_gap().expect("2 is no longer retained");
        assert_eq!(
            serde_json::to_value(&gap).unwrap(),
            serde_json::json!({"since": 1, "oldest": 3})
        );
        assert_eq!(journal.subscribe(Some(Position::Seq(2))).take_gap(), None);
        assert_eq!(journal.subscribe(Some(Position::Seq(5))).take_gap(), None);
        // This epoch, past what it handed out: not one of ours either.
        let ahead = Position::in_epoch(journal.epoch(), 7).unwrap();
        let mut sub = journal.subscribe(Some(ahead));
        assert!(sub.take_gap().is_some());
        assert_eq!(seqs(&mut sub), vec![3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn lagged_resolves_once_the_next_needed_entry_is_dropped() {
        let journal = Journal::new(2, usize::MAX);
        let mut sub = journal.subscribe(None);
        append(&journal, "t", "{}");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), sub.lagged());
        assert!(waiting.await.is_err(), "1 is still retained");
        append(&journal, "t", "{}");
        append(&journal, "t", "{}");
        tokio::time::timeout(std::time::Duration::from_secs(5), sub.lagged())
            .await
            .expect("1 was dropped");
        assert!(matches!(sub.try_next(), Some(Next::Lagged)));
    }

    #[test]
    fn retention_is_bounded_by_bytes_too() {
        let journal = Journal::new(1000, 100);
        for _ in 0..10 {
            append(&journal, "topic", &format!("\"{}\"", "x".repeat(40)));
        }
        let mut sub = journal.subscribe(Some(Position::Seq(0)));
        assert_eq!(
            sub.take_gap(),
            Some(Gap {
                since: Position::Seq(0),
                oldest: 9,
                epoch: journal.epoch().to_string(),
            })
        );
        assert_eq!(seqs(&mut sub), vec![9, 10]);
    }

    #[test]
    fn a_lagged_subscriber_skips_what_it_lost_and_goes_on_from_the_oldest_retained() {
        let journal = Journal::new(4, usize::MAX);
        let mut sub = journal.subscribe(None);
        for _ in 0..10 {
            append(&journal, "t", "{}");
        }
        assert!(matches!(sub.try_next(), Some(Next::Lagged)));
        assert_eq!(sub.skip_lost(), 1..=6);
        assert_eq!(seqs(&mut sub), vec![7, 8, 9, 10]);
        // Nothing more was lost.
        assert!(sub.skip_lost().is_empty());
        assert_eq!(sub.position(), 10);
    }

    #[test]
    fn a_subscriber_that_falls_out_of_the_journal_is_told_so_and_others_are_not_affected() {
        let journal = Journal::new(4, usize::MAX);
        let mut slow = journal.subscribe(None);
        let mut fast = journal.subscribe(None);
        for i in 0..10 {
            append(&journal, "t", "{}");
            assert!(matches!(fast.try_next(), Some(Next::Notification(n)) if n.seq == i + 1));
        }
        assert!(matches!(slow.try_next(), Some(Next::Lagged)));
        // Four behind is still within the journal.
        let mut behind = journal.subscribe(Some(Position::Seq(6)));
        assert_eq!(seqs(&mut behind), vec![7, 8, 9, 10]);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken_by_an_append_and_told_when_the_journal_closes() {
        let journal = Arc::new(Journal::default());
        let mut sub = journal.subscribe(None);
        let appender = journal.clone();
        let waiting = tokio::spawn(async move {
            let first = sub.next().await;
            let second = sub.next().await;
            (first, second, sub)
        });
        tokio::task::yield_now().await;
        append(&appender, "t", "1");
        append(&appender, "t", "2");
        let (first, second, mut sub) = waiting.await.unwrap();
        assert!(matches!(first, Next::Notification(n) if n.seq == 1));
        assert!(matches!(second, Next::Notification(n) if n.seq == 2));
        assert!(
            sub.try_next().is_none(),
            "nothing more, and the journal is open"
        );
        append(&appender, "t", "3");
        drop(appender);
        drop(journal);
        // What was appended before the journal closed is still handed out, then `Closed`.
        assert!(matches!(sub.next().await, Next::Notification(n) if n.seq == 3));
        assert!(matches!(sub.next().await, Next::Closed));
        assert!(matches!(sub.try_next(), Some(Next::Closed)));
    }

    #[test]
    fn position_says_what_a_subscription_covered() {
        let journal = Journal::new(3, usize::MAX);
        assert_eq!(journal.subscribe(None).position(), 0);
        for _ in 0..5 {
            append(&journal, "t", "{}");
        }
        let mut live = journal.subscribe(None);
        assert_eq!(live.position(), 5);
        // Resuming from before the journal starts at its oldest entry (3).
        let mut resumed = journal.subscribe(Some(Position::Seq(0)));
        assert_eq!(resumed.position(), 2);
        append(&journal, "t", "{}");
        assert_eq!(seqs(&mut resumed), vec![3, 4, 5, 6]);
        assert_eq!(resumed.position(), 6);
        assert_eq!(seqs(&mut live), vec![6]);
        assert_eq!(live.position(), 6);
    }

    #[test]
    fn retained_between_gives_a_range_or_says_it_is_gone() {
        let journal = Journal::new(3, usize::MAX);
        for _ in 0..5 {
            append(&journal, "t", "{}");
        }
        let seqs_of = |v: Vec<Notification>| v.iter().map(|n| n.seq).collect::<Vec<_>>();
        assert_eq!(
            journal.retained_between(2, 5).map(seqs_of),
            Some(vec![3, 4, 5])
        );
        assert_eq!(journal.retained_between(3, 4).map(seqs_of), Some(vec![4]));
        assert_eq!(journal.retained_between(5, 5).map(seqs_of), Some(vec![]));
        assert!(
            journal.retained_between(1, 5).is_none(),
            "2 is no longer retained"
        );
        assert!(
            journal.retained_between(4, 9).is_none(),
            "6.. were never handed out"
        );
    }

    #[test]
    fn params_and_sequenced_serialize_in_the_client_shapes() {
        let journal = Journal::default();
        let mut sub = journal.subscribe(None);
        append(
            &journal,
            "invoice_creation",
            r#"{"msat":10000,"label":"x"}"#,
        );
        let Some(Next::Notification(n)) = sub.try_next() else {
            panic!("no notification")
        };
        assert_eq!(
            serde_json::to_string(&n.params()).unwrap(),
            r#"{"invoice_creation":{"msat":10000,"label":"x"}}"#
        );
        assert_eq!(
            serde_json::to_string(&Sequenced::new(&n, journal.epoch())).unwrap(),
            format!(
                r#"{{"seq":1,"epoch":"{}","topic":"invoice_creation","payload":{{"msat":10000,"label":"x"}}}}"#,
                journal.epoch()
            )
        );
    }

    #[test]
    fn text_kept_in_shared_blocks_comes_back_whole_across_block_boundaries() {
        let journal = Journal::new(100_000, usize::MAX);
        let mut sub = journal.subscribe(None);
        // ~3 blocks of small notifications, then one larger than a block, then small again.
        let payloads: Vec<String> = (0..2_000)
            .map(|i| format!(r#"{{"label":"inv-{i}","msat":{}}}"#, i * 1000))
            .chain([format!(r#""{}""#, "z".repeat(BLOCK_SIZE + 10))])
            .chain((0..10).map(|i| format!("[{i}]")))
            .collect();
        for (i, payload) in payloads.iter().enumerate() {
            append(&journal, &format!("topic_{}", i % 7), payload);
        }
        for (i, payload) in payloads.iter().enumerate() {
            let Some(Next::Notification(n)) = sub.try_next() else {
                panic!("notification {i} missing")
            };
            assert_eq!(n.topic(), format!("topic_{}", i % 7));
            assert_eq!(n.payload(), payload);
        }
        assert!(sub.try_next().is_none());
    }
}
