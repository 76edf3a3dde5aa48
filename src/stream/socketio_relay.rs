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
//! reaches it. A client whose send queue is full (more than `SUBSCRIBER_QUEUE` messages
//! waiting) is disconnected as a slow consumer at once: nobody waits for it.

use crate::state::AppState;
use crate::stream::journal::{Next, Notification, Position, Sequenced};
use crate::stream::listeners::StreamOptions;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many ready notifications the relay hands out before letting other tasks run.
const RELAY_BATCH: usize = 64;

/// A client handed over to the relay.
pub struct Member {
    pub socket: SocketRef,
    pub options: StreamOptions,
    /// The last sequence number the client received.
    pub delivered: u64,
    /// Cancelled when the client disconnects.
    pub closed: CancellationToken,
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

/// Why a client could not be given a notification.
pub enum Undelivered {
    /// Its send queue is full.
    SlowConsumer,
    /// It is gone.
    Closed,
}

impl Undelivered {
    /// What follows for the client: a slow consumer is disconnected, a gone one forgotten.
    pub fn end(self, socket: SocketRef) {
        match self {
            Undelivered::SlowConsumer => disconnect(socket, "slow consumer"),
            Undelivered::Closed => {}
        }
    }
}

impl From<SendError> for Undelivered {
    fn from(error: SendError) -> Undelivered {
        match error {
            SendError::Socket(SocketError::InternalChannelFull) => Undelivered::SlowConsumer,
            _ => Undelivered::Closed,
        }
    }
}

/// One notification encoded once in each event shape, as clients receive it.
pub struct Encoded<'a> {
    notification: &'a Notification,
    /// The journal's epoch, which `notification` events carry.
    epoch: &'a str,
    message: Option<Box<RawValue>>,
    sequenced: Option<Box<RawValue>>,
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

    /// Puts the notification in `socket`'s send queue as the event `options` asked for
    /// (`notification` with a sequence number, else `message`), unless its topic is filtered
    /// out. Never waits.
    pub fn emit(&mut self, socket: &SocketRef, options: &StreamOptions) -> Result<(), SendError> {
        if !options.wants(self.notification.topic()) {
            return Ok(());
        }
        let (notification, epoch) = (self.notification, self.epoch);
        if options.seq {
            let data = cached(&mut self.sequenced, || Sequenced::new(notification, epoch));
            socket.emit("notification", data)
        } else {
            let data = cached(&mut self.message, || notification.params());
            socket.emit("message", data)
        }
    }
}

/// The JSON text of `make()`, computed on first use.
fn cached<T: serde::Serialize>(
    slot: &mut Option<Box<RawValue>>,
    make: impl FnOnce() -> T,
) -> &RawValue {
    slot.get_or_insert_with(|| {
        // Both shapes are a string key and JSON text lightningd sent: encoding cannot fail.
        serde_json::value::to_raw_value(&make()).unwrap_or_default()
    })
}

struct Relaying {
    state: AppState,
    /// The last sequence number handed to every member.
    relayed: u64,
    members: HashMap<Sid, Member>,
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
        waiting: Vec::new(),
    };
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Join(member)) => relaying.admit(member),
                Some(Command::Leave(sid)) => {
                    relaying.members.remove(&sid);
                }
                None => return,
            },
            next = subscription.next() => {
                // Take what else is ready too (up to a batch): each client then gets the
                // whole batch at once, and its writer sends several messages per write.
                let mut batch = Vec::new();
                let mut next = Some(next);
                while let Some(ready) = next.take() {
                    match ready {
                        Next::Notification(notification) => batch.push(notification),
                        Next::Lagged => {
                            relaying.relay(&batch);
                            batch.clear();
                            // The relay itself fell a whole queue behind: pick up from the
                            // journal.
                            subscription = relaying
                                .state
                                .journal()
                                .subscribe(Some(Position::Seq(relaying.relayed)));
                            if let Some(gap) = subscription.take_gap() {
                                relaying.lost(gap.oldest - 1);
                            }
                        }
                        Next::Closed => return,
                    }
                    if batch.len() < RELAY_BATCH {
                        next = subscription.try_next();
                    }
                }
                relaying.relay(&batch);
                tokio::task::yield_now().await;
            }
        }
    }
}

impl Relaying {
    fn admit(&mut self, member: Member) {
        if member.closed.is_cancelled() {
            return;
        }
        if member.delivered > self.relayed {
            self.waiting.push(member);
            return;
        }
        // Give it what the relay already handed to the others since.
        let Some(missed) = self
            .state
            .journal()
            .retained_between(member.delivered, self.relayed)
        else {
            return Undelivered::SlowConsumer.end(member.socket);
        };
        let epoch = self.state.journal().epoch();
        for notification in &missed {
            let mut encoded = Encoded::new(notification, epoch);
            if let Err(e) = encoded.emit(&member.socket, &member.options) {
                return Undelivered::from(e).end(member.socket);
            }
        }
        self.members.insert(member.socket.id, member);
    }

    /// Hands consecutive notifications to every member, member by member.
    fn relay(&mut self, batch: &[Notification]) {
        let Some(last) = batch.last() else {
            return;
        };
        let state = self.state.clone();
        let epoch = state.journal().epoch();
        let mut encoded: Vec<Encoded> = batch.iter().map(|n| Encoded::new(n, epoch)).collect();
        let mut dropped = Vec::new();
        for (sid, member) in &self.members {
            for notification in encoded.iter_mut() {
                if let Err(e) = notification.emit(&member.socket, &member.options) {
                    dropped.push((*sid, Undelivered::from(e)));
                    break;
                }
            }
        }
        for (sid, why) in dropped {
            if let Some(member) = self.members.remove(&sid) {
                why.end(member.socket);
            }
        }
        self.relayed = last.seq;
        self.admit_waiting();
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
        for (_, member) in self.members.drain() {
            Undelivered::SlowConsumer.end(member.socket);
        }
        self.relayed = through;
        self.admit_waiting();
    }
}

/// How long we keep trying to disconnect a client whose send buffer is full.
const DISCONNECT_RETRY: Duration = Duration::from_millis(100);
const DISCONNECT_ATTEMPTS: u32 = 600;

/// Disconnects a client. Its send buffer may be full, which makes socketioxide refuse the
/// disconnect packet: retry in the background until there is room or the transport closes.
pub fn disconnect(socket: SocketRef, reason: &str) {
    tracing::info!("disconnecting Socket.IO client {}: {reason}", socket.id);
    tokio::spawn(async move {
        for _ in 0..DISCONNECT_ATTEMPTS {
            if !socket.connected() || socket.clone().disconnect().is_ok() {
                return;
            }
            tokio::time::sleep(DISCONNECT_RETRY).await;
        }
    });
}
