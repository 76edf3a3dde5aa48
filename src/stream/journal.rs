//! The notification journal: every notification lightningd sends gets a sequence number
//! (from 1, per process), the most recent ones are retained, and subscribers read them in
//! order.
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

/// Serializes as `{"seq": n, "topic": "...", "payload": {...}}`, the data of the
/// `notification` event for clients that asked for sequence numbers.
pub struct Sequenced<'a>(&'a Notification);

impl Serialize for Sequenced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let payload = self.0.raw_payload().map_err(S::Error::custom)?;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("seq", &self.0.seq)?;
        map.serialize_entry("topic", self.0.topic())?;
        map.serialize_entry("payload", payload)?;
        map.end()
    }
}

impl<'a> From<&'a Notification> for Sequenced<'a> {
    fn from(n: &'a Notification) -> Self {
        Sequenced(n)
    }
}

/// A client asked to resume from a point the journal no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// What the client asked for.
    pub since: u64,
    /// The oldest sequence number still retained (the next one if none is).
    pub oldest: u64,
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

/// The journal; shared by the notification handler and every stream.
pub struct Journal {
    store: Store,
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

    /// The last sequence number handed out (0 before the first notification).
    pub fn last_seq(&self) -> u64 {
        lock(&self.store).next_seq - 1
    }

    /// Subscribes to live notifications, first replaying every retained one after `since`.
    pub fn subscribe(&self, since: Option<u64>) -> Subscription {
        let retained = lock(&self.store);
        let (backlog, gap) = match since {
            None => (VecDeque::new(), None),
            Some(since) => {
                let oldest = retained.oldest();
                // A `since` beyond anything handed out comes from an earlier plugin process
                // (sequence numbers restart at 1): replay everything, and say so.
                let from_earlier_process = since >= retained.next_seq;
                let gap =
                    (from_earlier_process || since + 1 < oldest).then_some(Gap { since, oldest });
                let after = if from_earlier_process { 0 } else { since };
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
        let mut sub = journal.subscribe(Some(3));
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
        let mut sub = journal.subscribe(Some(2));
        assert_eq!(
            sub.take_gap(),
            Some(Gap {
                since: 2,
                oldest: 8
            })
        );
        assert_eq!(seqs(&mut sub), vec![8, 9, 10]);
        // Exactly at the edge: nothing is missing.
        assert_eq!(journal.subscribe(Some(7)).take_gap(), None);
    }

    #[test]
    fn resume_from_an_earlier_process_replays_everything_after_a_gap() {
        let journal = Journal::default();
        for _ in 0..3 {
            append(&journal, "t", "{}");
        }
        let mut sub = journal.subscribe(Some(5000));
        assert_eq!(
            sub.take_gap(),
            Some(Gap {
                since: 5000,
                oldest: 1
            })
        );
        assert_eq!(seqs(&mut sub), vec![1, 2, 3]);
        assert_eq!(journal.subscribe(Some(3)).take_gap(), None);
    }

    #[test]
    fn retention_is_bounded_by_bytes_too() {
        let journal = Journal::new(1000, 100);
        for _ in 0..10 {
            append(&journal, "topic", &format!("\"{}\"", "x".repeat(40)));
        }
        let mut sub = journal.subscribe(Some(0));
        assert_eq!(
            sub.take_gap(),
            Some(Gap {
                since: 0,
                oldest: 9
            })
        );
        assert_eq!(seqs(&mut sub), vec![9, 10]);
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
        let mut behind = journal.subscribe(Some(6));
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
        let mut resumed = journal.subscribe(Some(0));
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
            serde_json::to_string(&Sequenced::from(&n)).unwrap(),
            r#"{"seq":1,"topic":"invoice_creation","payload":{"msat":10000,"label":"x"}}"#
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
