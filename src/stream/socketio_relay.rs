//! The live fan-out to Socket.IO clients: one task reads the journal and hands each
//! notification to every client that has caught up with it.
//!
//! A client's own delivery task (in `socketio.rs`) replays what it asked to resume and
//! whatever arrived while it did; once its journal subscription has nothing more ready it
//! [`Relay::join`]s, saying the last sequence number it delivered. From then on the relay
//! delivers to it: one task, woken once per notification, encoding each notification once
//! per event shape and putting it in each client's send queue. This costs far less per
//! client than a task per client woken for every notification.
//!
//! No loss, in order: the relay tracks the last sequence number it relayed. A client that
//! joins behind it first gets the missing ones from the journal's retained entries; one that
//! joins ahead of it (its own subscription ran ahead of the relay) waits until the relay
//! reaches it.
//!
//! What a delivery costs is mostly its client's write (a `sendto` per flush of the client's
//! writer, which sends everything queued when it runs: ~5 us of the plugin's CPU on
//! loopback). So while notifications keep coming the relay hands them out at most once per
//! [`hold`], several to a client at once; a lone notification goes at once. The hold grows
//! with the number of clients, up to [`RELAY_HOLD`] at 1,000: the writes a second stay
//! within [`WRITES_PER_SECOND`] whatever the rate of notifications, and a node with a few
//! listeners is not delayed at all.
//!
//! # What a slow client costs
//!
//! socketioxide gives every client a send queue of its own, and each message in it is that
//! client's private copy (socketioxide encodes per client; its broadcasts share one copy but
//! cannot say which client's queue was full). Our websocket endpoint's outboxes share the
//! packet text, but the websocket's write buffer and the kernel's socket buffer hold copies
//! too. So the relay never lets a queue grow: a websocket client's [`Window`]
//! (`send_window.rs`) is what the relay put in its queue minus what its connection has taken
//! since (the bytes written to its TCP connection, counted by `http::connection_limit`). The
//! relay puts a notification in the queue only while that is below `WINDOW_BYTES`; otherwise
//! the client falls behind, and what it is owed stays in the journal, which holds every
//! retained notification once for everyone. The relay feeds a client that is behind from the
//! journal as its connection takes what is queued: on every pass over new notifications and
//! every [`REFILL_INTERVAL`] between them. The window is larger than a pass's batch of typical
//! notifications, so a client that reads keeps up with a burst (with 64 KiB and a refill only
//! on the tick, a reading client fell 4 MiB behind in a burst of 2 KiB notifications and was
//! cut off). A stalled websocket client thus holds at most about `WINDOW_BYTES` (plus one
//! message) of copies, besides its position in the journal.
//!
//! The slow-consumer rule counts what a client is owed, queued or still in the journal: more
//! than `SUBSCRIBER_QUEUE` messages or more than [`QUEUE_BYTES`] bytes, and it is disconnected
//! as a slow consumer at once (nobody waits for it), as is one whose send queue is full or
//! whose next notification the journal no longer retains.
//!
//! A client on long-polling has the same window, counted in what its polls took, and once it
//! upgrades to a websocket (the clients' default) in what that connection takes
//! (`send_window.rs`, fed by the middleware in `socketio_sessions.rs`). Polling sessions also
//! take `clnrest-max-connections` slots, and engine.io closes a session that stops polling
//! (no pong within the ping interval and timeout).

use crate::state::AppState;
use crate::stream::journal::{Next, Notification, Position, Sequenced, Subscription};
use crate::stream::listeners::StreamOptions;
use crate::stream::send_window::Window;
use crate::stream::socketio::SUBSCRIBER_QUEUE;
use crate::stream::socketio_client::{event_packet, Client, Undelivered};
use serde_json::value::RawValue;
use socketioxide::socket::Sid;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

/// How many ready notifications the relay hands out before letting other tasks run.
const RELAY_BATCH: usize = 64;

/// The longest the relay holds new notifications while they keep coming (a full batch goes
/// at once): with 1,000 clients at 100 notifications/s each client gets two per write
/// instead of one, which is what a delivery costs most (docs/performance.md, issue 17).
/// Slower streams are not delayed; one notification waits at most this long.
pub const RELAY_HOLD: Duration = Duration::from_millis(20);

/// The writes a second the hold aims to stay within, all clients together.
pub const WRITES_PER_SECOND: u32 = 50_000;

/// How long the relay holds new notifications for `clients` clients: long enough that
/// handing them out as often as allowed writes at most [`WRITES_PER_SECOND`] times a second,
/// at most [`RELAY_HOLD`], in whole milliseconds (tokio's timers' resolution: below 50
/// clients there is no hold).
pub fn hold(clients: usize) -> Duration {
    let clients = u32::try_from(clients).unwrap_or(u32::MAX);
    let hold = (Duration::from_secs(1) / WRITES_PER_SECOND)
        .saturating_mul(clients)
        .min(RELAY_HOLD);
    Duration::from_millis(hold.as_millis() as u64)
}

/// The most a client may be owed (queued for it, or waiting for it in the journal), in
/// bytes of the events it receives, before it is cut off as a slow consumer.
pub const QUEUE_BYTES: u64 = 4 * 1024 * 1024;

/// How often the relay looks again at clients that are behind, to feed them from the
/// journal as their connections take what is queued.
pub const REFILL_INTERVAL: Duration = Duration::from_millis(5);

/// How many notifications the relay reads from the journal at once for a client that is
/// behind.
const REFILL_BATCH: u64 = 64;

/// A client handed over to the relay.
pub struct Member {
    pub client: Client,
    pub options: StreamOptions,
    /// The last sequence number the client received.
    pub delivered: u64,
    /// Cancelled when the client disconnects.
    pub closed: CancellationToken,
    pub window: Window,
}

enum Command {
    Join(Member),
    Leave(Sid),
}

/// The handle the Socket.IO handlers use to hand clients to the relay task.
#[derive(Clone)]
pub struct Relay {
    commands: mpsc::UnboundedSender<Command>,
}

impl Relay {
    /// Starts the relay task; it reads the journal from its current end and stops when the
    /// journal closes or every handle is dropped.
    pub fn start(state: AppState) -> Relay {
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(state, receiver));
        Relay { commands }
    }

    /// Hands a caught-up client to the relay.
    pub fn join(&self, member: Member) {
        let _ = self.commands.send(Command::Join(member));
    }

    /// Forgets a disconnected client.
    pub fn leave(&self, sid: Sid) {
        let _ = self.commands.send(Command::Leave(sid));
    }
}

/// One notification encoded once in each event shape, as clients receive it: the event's
/// data for socketioxide's clients, the whole packet for ours.
pub struct Encoded<'a> {
    notification: &'a Notification,
    /// The journal's epoch, which `notification` events carry.
    epoch: &'a str,
    message: Option<Shape>,
    sequenced: Option<Shape>,
}

/// An event's data and, once one of our websocket clients wanted it, its packet.
struct Shape {
    data: Box<RawValue>,
    packet: Option<Utf8Bytes>,
}

impl<'a> Encoded<'a> {
    pub fn new(notification: &'a Notification, epoch: &'a str) -> Encoded<'a> {
        Encoded {
            notification,
            epoch,
            message: None,
            sequenced: None,
        }
    }

    /// Puts the notification in `client`'s send queue as the event `options` asked for
    /// (`notification` with a sequence number, else `message`), unless its topic is filtered
    /// out. Never waits. Returns the bytes queued (0 when filtered out).
    pub fn emit(&mut self, client: &Client, options: &StreamOptions) -> Result<usize, Undelivered> {
        if !options.wants(self.notification.topic()) {
            return Ok(0);
        }
        let (notification, epoch) = (self.notification, self.epoch);
        let (event, shape) = if options.seq {
            let shape = cached(&mut self.sequenced, || Sequenced::new(notification, epoch));
            ("notification", shape)
        } else {
            (
                "message",
                cached(&mut self.message, || notification.params()),
            )
        };
        let Shape { data, packet } = shape;
        let packet = || {
            packet
                .get_or_insert_with(|| event_packet(event, data.get()))
                .clone()
        };
        client.emit(event, data, packet)
    }
}

/// What a notification counts for in a client's [`QUEUE_BYTES`] while it waits in the
/// journal: its text and the envelope around it (close to what [`Encoded::emit`] queues).
fn weight(notification: &Notification) -> u64 {
    const ENVELOPE: usize = 96;
    (notification.topic().len() + notification.payload().len() + ENVELOPE) as u64
}

/// The JSON text of `make()`, computed on first use.
fn cached<T: serde::Serialize>(slot: &mut Option<Shape>, make: impl FnOnce() -> T) -> &mut Shape {
    slot.get_or_insert_with(|| Shape {
        // Both shapes are a string key and JSON text lightningd sent: encoding cannot fail.
        data: serde_json::value::to_raw_value(&make()).unwrap_or_default(),
        packet: None,
    })
}

/// A member and what it is owed beyond its send queue.
struct Joined {
    member: Member,
    /// Notifications after `member.delivered` up to the relay's position that it wants and
    /// that are not in its queue yet (they are in the journal), and their weight.
    owed: usize,
    owed_bytes: u64,
}

impl Joined {
    /// Whether the member is behind the relay (owed notifications wait in the journal).
    fn behind(&self, relayed: u64) -> bool {
        self.member.delivered < relayed
    }

    /// Counts `notification` as owed, if the member wants it.
    fn owe(&mut self, notification: &Notification) {
        if self.member.options.wants(notification.topic()) {
            self.owed += 1;
            self.owed_bytes += weight(notification);
        }
    }

    /// Whether the member is owed more than the slow-consumer rule allows.
    fn over_limit(&self) -> bool {
        self.owed > SUBSCRIBER_QUEUE
            || self.member.window.in_flight() + self.owed_bytes > QUEUE_BYTES
    }

    /// Emits `notification` (the next one after `delivered`) if there is room: `Ok(false)`
    /// when there is none and the member is now behind.
    fn offer(&mut self, notification: &mut Encoded) -> Result<bool, Undelivered> {
        let member = &mut self.member;
        if member.options.wants(notification.notification.topic()) {
            if !member.window.has_room() {
                return Ok(false);
            }
            let bytes = notification.emit(&member.client, &member.options)?;
            member.window.sent(bytes);
        }
        member.delivered = notification.notification.seq;
        Ok(true)
    }

    /// Feeds the member from the journal up to `relayed` while its window has room.
    fn refill(&mut self, state: &AppState, relayed: u64) -> Result<(), Undelivered> {
        let epoch = state.journal().epoch();
        while self.behind(relayed) && self.member.window.has_room() {
            let upto = relayed.min(self.member.delivered + REFILL_BATCH);
            let missed = state
                .journal()
                .retained_between(self.member.delivered, upto)
                .ok_or(Undelivered::SlowConsumer)?;
            for notification in &missed {
                let wanted = self.member.options.wants(notification.topic());
                if !self.offer(&mut Encoded::new(notification, epoch))? {
                    return Ok(());
                }
                if wanted {
                    self.owed = self.owed.saturating_sub(1);
                    self.owed_bytes = self.owed_bytes.saturating_sub(weight(notification));
                }
            }
        }
        Ok(())
    }
}

struct Relaying {
    state: AppState,
    /// The last sequence number handed to every member (or owed to it).
    relayed: u64,
    members: HashMap<Sid, Joined>,
    /// Members that are behind the relay, fed from the journal as their windows allow.
    behind: HashSet<Sid>,
    /// Clients that joined ahead of the relay, admitted when it reaches them.
    waiting: Vec<Member>,
}

async fn run(state: AppState, mut commands: mpsc::UnboundedReceiver<Command>) {
    let relayed = state.journal().last_seq();
    // Resuming from `relayed` is exact: the journal replays whatever was appended in between.
    let mut subscription = state.journal().subscribe(Some(Position::Seq(relayed)));
    let mut relaying = Relaying {
        state,
        relayed,
        members: HashMap::new(),
        behind: HashSet::new(),
        waiting: Vec::new(),
    };
    let mut last_relay = tokio::time::Instant::now();
    let mut refill = tokio::time::interval(REFILL_INTERVAL);
    refill.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Join(member)) => relaying.admit(member),
                Some(Command::Leave(sid)) => {
                    relaying.members.remove(&sid);
                    relaying.behind.remove(&sid);
                }
                None => return,
            },
            // Ahead of new notifications, so a burst never starves clients that are behind.
            _ = refill.tick(), if !relaying.behind.is_empty() => relaying.refill(),
            next = subscription.next() => {
                // Take what else is ready too (up to a batch): each client then gets the
                // whole batch at once, and its writer sends several messages per write.
                let mut batch = Vec::new();
                if !relaying.take(&mut subscription, Some(next), &mut batch) {
                    return;
                }
                // Notifications coming faster than one per hold: wait for more, so that each
                // client gets them in one write.
                let until = last_relay + hold(relaying.members.len());
                if batch.len() < RELAY_BATCH && tokio::time::Instant::now() < until {
                    tokio::time::sleep_until(until).await;
                    if !relaying.take(&mut subscription, None, &mut batch) {
                        return;
                    }
                }
                relaying.relay(&batch);
                last_relay = tokio::time::Instant::now();
                tokio::task::yield_now().await;
            }
        }
    }
}

impl Relaying {
    /// Adds `first` (if any) and whatever else the subscription has ready to `batch`, up to
    /// [`RELAY_BATCH`]; relays what it holds and resubscribes when the relay lagged. False
    /// when the journal closed.
    fn take(
        &mut self,
        subscription: &mut Subscription,
        first: Option<Next>,
        batch: &mut Vec<Notification>,
    ) -> bool {
        let mut next = first.or_else(|| subscription.try_next());
        while let Some(ready) = next.take() {
            match ready {
                Next::Notification(notification) => batch.push(notification),
                Next::Lagged => {
                    self.relay(batch);
                    batch.clear();
                    // The relay itself fell out of the journal: go on from what it retains.
                    let lost = subscription.skip_lost();
                    if !lost.is_empty() {
                        self.lost(*lost.end());
                    }
                }
                Next::Closed => return false,
            }
            if batch.len() < RELAY_BATCH {
                next = subscription.try_next();
            }
        }
        true
    }

    fn admit(&mut self, member: Member) {
        if member.closed.is_cancelled() {
            return;
        }
        if member.delivered > self.relayed {
            self.waiting.push(member);
            return;
        }
        // What the relay already handed to the others since is owed to it, from the journal.
        let Some(missed) = self
            .state
            .journal()
            .retained_between(member.delivered, self.relayed)
        else {
            return Undelivered::SlowConsumer.end(member.client);
        };
        let sid = member.client.id();
        let mut joined = Joined {
            member,
            owed: 0,
            owed_bytes: 0,
        };
        for notification in &missed {
            joined.owe(notification);
        }
        drop(missed);
        if joined.behind(self.relayed) {
            if let Err(why) = joined.refill(&self.state, self.relayed) {
                return why.end(joined.member.client);
            }
            if joined.behind(self.relayed) {
                self.behind.insert(sid);
            }
        }
        self.members.insert(sid, joined);
    }

    /// Hands consecutive notifications to every member, member by member; a member that is
    /// behind, or whose window fills, is owed them.
    fn relay(&mut self, batch: &[Notification]) {
        let Some(last) = batch.last() else {
            return;
        };
        let state = self.state.clone();
        let epoch = state.journal().epoch();
        let mut encoded: Vec<Encoded> = batch.iter().map(|n| Encoded::new(n, epoch)).collect();
        let mut dropped = Vec::new();
        for (sid, joined) in self.members.iter_mut() {
            let mut from = 0;
            if !joined.behind(self.relayed) {
                while let Some(notification) = encoded.get_mut(from) {
                    match joined.offer(notification) {
                        Ok(true) => from += 1,
                        Ok(false) => break,
                        Err(why) => {
                            dropped.push((*sid, why));
                            break;
                        }
                    }
                }
            }
            for notification in &batch[from..] {
                joined.owe(notification);
            }
            if from < batch.len() {
                // Fed from the journal as far as its window allows at once, every pass, not
                // only on the refill tick: a client that reads keeps up with a burst.
                if let Err(why) = joined.refill(&state, last.seq) {
                    dropped.push((*sid, why));
                    continue;
                }
                if joined.behind(last.seq) {
                    self.behind.insert(*sid);
                }
            }
            if joined.over_limit() {
                tracing::info!(
                    "Socket.IO client {sid} is owed {} notifications ({} bytes), {} bytes queued",
                    joined.owed,
                    joined.owed_bytes,
                    joined.member.window.in_flight()
                );
                dropped.push((*sid, Undelivered::SlowConsumer));
            }
        }
        self.relayed = last.seq;
        self.drop_members(dropped);
        self.admit_waiting();
    }

    /// Feeds the members that are behind from the journal, as far as their windows allow.
    fn refill(&mut self) {
        let mut dropped = Vec::new();
        let mut caught_up = Vec::new();
        for sid in &self.behind {
            let Some(joined) = self.members.get_mut(sid) else {
                caught_up.push(*sid);
                continue;
            };
            match joined.refill(&self.state, self.relayed) {
                Ok(()) if !joined.behind(self.relayed) => caught_up.push(*sid),
                Ok(()) => {}
                Err(why) => dropped.push((*sid, why)),
            }
        }
        for sid in caught_up {
            self.behind.remove(&sid);
        }
        self.drop_members(dropped);
    }

    fn drop_members(&mut self, dropped: Vec<(Sid, Undelivered)>) {
        for (sid, why) in dropped {
            self.behind.remove(&sid);
            if let Some(joined) = self.members.remove(&sid) {
                why.end(joined.member.client);
            }
        }
    }

    fn admit_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let relayed = self.relayed;
        let (ready, waiting) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|m: &Member| m.delivered <= relayed);
        self.waiting = waiting;
        for member in ready {
            self.admit(member);
        }
    }

    /// Notifications up to `through` are gone for good before the relay could hand them
    /// out: every member would miss them, so every member is cut off (they can resume).
    fn lost(&mut self, through: u64) {
        tracing::warn!(
            "the Socket.IO relay fell behind the journal's retention: disconnecting {} client(s)",
            self.members.len()
        );
        self.behind.clear();
        for (_, joined) in self.members.drain() {
            Undelivered::SlowConsumer.end(joined.member.client);
        }
        self.relayed = through;
        self.admit_waiting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_grows_with_the_clients_up_to_relay_hold() {
        assert_eq!(hold(0), Duration::ZERO);
        assert_eq!(hold(49), Duration::ZERO);
        assert_eq!(hold(50), Duration::from_millis(1));
        assert_eq!(hold(120), Duration::from_millis(2));
        assert_eq!(hold(1_000), RELAY_HOLD);
        assert_eq!(hold(100_000), RELAY_HOLD);
        assert_eq!(hold(usize::MAX), RELAY_HOLD);
    }
}
