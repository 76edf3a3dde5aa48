//! The publisher: one task that keeps a connection to the broker and publishes every
//! notification of the journal to the exchange, in journal order, on one channel in
//! publisher-confirm mode.
//!
//! It keeps one number, `settled`: every notification up to it is confirmed by the broker
//! (or was lost to the journal's retention). Up to [`WINDOW`] messages are in flight after
//! it. When the connection or the channel fails, or the broker refuses a message (a negative
//! confirm), the session ends; the next one reads the journal again from `settled`, so what
//! was published and not confirmed is published again (at least once: a consumer may see a
//! message twice after a reconnection, never a confirmed one missing). Between sessions it
//! waits with an exponential backoff and jitter (a connection lost within
//! `STABLE_CONNECTION` of opening counts as one more failure).
//!
//! Nothing here is on the path of lightningd's notifications or of a request: the journal
//! never waits for a subscriber, and this task only reads it.

use super::stats::BrokerStats;
use super::{AmqpSettings, Timings};
use crate::metrics::delivery::DeliveryMeter;
use crate::state::AppState;
use crate::stream::journal::{Next, Notification, Position, Sequenced, Subscription};
use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicPublishArguments, Channel, ConfirmSelectArguments, ExchangeDeclareArguments,
};
use amqprs::connection::Connection;
use amqprs::tls::TlsAdaptor;
use amqprs::{
    Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return, DELIVERY_MODE_PERSISTENT,
};
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Most messages published and not yet confirmed.
pub const WINDOW: usize = 1024;
/// While notifications keep coming, those that arrived are published together this often
/// (the most it adds to a message's latency).
pub const BATCH_LINGER: Duration = Duration::from_millis(5);
/// How long connecting may take: TCP, TLS, the AMQP handshake, the channel, the exchange.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection must have lasted for the backoff to start again from the first
/// delay after it is lost.
const STABLE_CONNECTION: Duration = Duration::from_secs(60);
/// The longest routing key AMQP carries (a short string); longer topics are cut to it.
const MAX_ROUTING_KEY: usize = 255;
/// The exchange type of an exchange the publisher creates.
const EXCHANGE_TYPE: &str = "topic";
/// AMQP's reply code for a missing exchange.
const NOT_FOUND: u16 = 404;

/// What the client's callbacks tell the publisher.
#[derive(Debug)]
enum Event {
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64 },
    ChannelClosed { code: u16, text: String },
    ConnectionClosed { code: u16, text: String },
}

/// The callbacks of the connection and of its channels: each forwards what it is told.
struct Forward(mpsc::UnboundedSender<Event>);

impl Forward {
    fn send(&self, event: Event) {
        // The receiver is gone only once the session has ended: nothing is waiting for it.
        let _ = self.0.send(event);
    }
}

#[async_trait::async_trait]
impl ConnectionCallback for Forward {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        self.send(Event::ConnectionClosed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }
    async fn blocked(&mut self, _: &Connection, reason: String) {
        tracing::info!("AMQP broker: the broker blocks publishing for now ({reason})");
    }
    async fn unblocked(&mut self, _: &Connection) {
        tracing::info!("AMQP broker: the broker accepts publishing again");
    }
    async fn secret_updated(&mut self, _: &Connection) {}
}

#[async_trait::async_trait]
impl ChannelCallback for Forward {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        self.send(Event::ChannelClosed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        self.send(Event::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        self.send(Event::Nack {
            tag: nack.delivery_tag(),
        });
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// An open connection with its publishing channel (confirm mode, exchange checked).
struct Session {
    connection: Connection,
    channel: Channel,
    events: mpsc::UnboundedReceiver<Event>,
}

/// A message published and not confirmed yet.
struct InFlight {
    /// The channel's delivery tag (1, 2, ... in publishing order).
    tag: u64,
    seq: u64,
    sent: Instant,
    confirmed: bool,
}

/// Why a session ended.
enum End {
    /// The plugin is stopping.
    JournalClosed,
    /// The connection, the channel or a message failed; reconnect.
    Lost(String),
}

struct Publisher {
    state: AppState,
    settings: AmqpSettings,
    stats: Arc<BrokerStats>,
    /// The `clnrest_delivery_*{sink="broker"}` series of `GET /metrics`.
    meter: Arc<DeliveryMeter>,
    /// When the oldest notification not confirmed yet was first published (or, in an
    /// outage, found waiting): the delivery lag's start.
    waiting_since: Option<Instant>,
    epoch: String,
    /// Every notification up to this sequence number is confirmed or lost to the journal.
    settled: u64,
}

/// Publishes until the plugin stops, reconnecting as needed. Logs a lost or refused
/// connection once, and its restoration once; each retry only at debug level.
pub async fn run(state: AppState, settings: AmqpSettings, timings: Timings) {
    let stats = state.broker().clone();
    stats.set_enabled();
    let epoch = state.journal().epoch().to_string();
    let meter = state
        .metrics()
        .publishers()
        .register("broker", settings.exchange.clone());
    let mut publisher = Publisher {
        state,
        settings,
        stats,
        meter,
        waiting_since: None,
        epoch,
        settled: 0,
    };
    let url = publisher.settings.url.to_string();
    let exchange = publisher.settings.exchange.clone();
    let mut failures: u32 = 0;
    let mut down = false;
    let mut ever_connected = false;
    // Read the system's CA certificates once, not at every reconnection.
    let tls = publisher
        .settings
        .url
        .tls_adaptor()
        .map_err(|e| format!("TLS setup: {e}"));
    loop {
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tls = tls.as_ref().map_err(Clone::clone)?;
            connect(&publisher.settings, tls.as_ref()).await
        });
        match connecting.await {
            Ok(Ok(session)) => {
                publisher.stats.set_connected(true);
                publisher.meter.set_failing(false);
                if down {
                    tracing::info!(
                        "AMQP broker {url} reachable again: publishing resumes after \
                         notification {}",
                        publisher.settled
                    );
                } else if !ever_connected {
                    tracing::info!("publishing notifications to AMQP exchange {exchange} at {url}");
                }
                ever_connected = true;
                let connected_at = Instant::now();
                let end = publisher.publish(session).await;
                publisher.stats.set_connected(false);
                publisher.stats.set_in_flight(0);
                match end {
                    End::JournalClosed => return,
                    End::Lost(reason) => {
                        publisher.stats.failed();
                        publisher.meter.record_failure();
                        publisher.meter.set_failing(true);
                        // A connection that fails soon after it opened (a flapping broker, a
                        // refused message) backs off further, as a failed attempt would.
                        failures = if connected_at.elapsed() < STABLE_CONNECTION {
                            failures.saturating_add(1)
                        } else {
                            1
                        };
                        down = true;
                        tracing::warn!(
                            "AMQP broker {url}: connection lost ({reason}); REST and Socket.IO \
                             go on; reconnecting with backoff, then publishing resumes after \
                             notification {}",
                            publisher.settled
                        );
                    }
                }
            }
            failed => {
                let reason = match failed {
                    Ok(Err(reason)) => reason,
                    _ => format!("no answer within {CONNECT_TIMEOUT:?}"),
                };
                publisher.stats.failed();
                publisher.meter.record_failure();
                publisher.meter.set_failing(true);
                failures = failures.saturating_add(1);
                if down {
                    tracing::debug!("AMQP broker {url}: attempt {failures} failed: {reason}");
                } else {
                    down = true;
                    tracing::warn!(
                        "AMQP broker {url}: cannot connect ({reason}); REST and Socket.IO go \
                         on; retrying with backoff"
                    );
                }
            }
        }
        // Waits, keeping the metrics' backlog and lag current meanwhile.
        let until = tokio::time::Instant::now() + timings.backoff(failures);
        loop {
            publisher.report_waiting();
            let now = tokio::time::Instant::now();
            if now >= until {
                break;
            }
            tokio::time::sleep((until - now).min(Duration::from_secs(1))).await;
        }
    }
}

/// Opens the connection and the publishing channel, and makes sure the exchange exists: an
/// existing one is used as it is (whatever its type); a missing one is created as a durable
/// topic exchange.
async fn connect(settings: &AmqpSettings, tls: Option<&TlsAdaptor>) -> Result<Session, String> {
    let arguments = settings.url.connection_arguments(tls);
    let connection = Connection::open(&arguments)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, mut events) = mpsc::unbounded_channel();
    connection
        .register_callback(Forward(sender.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let exchange = &settings.exchange;
    let channel = open_channel(&connection, &sender).await?;
    let existing = ExchangeDeclareArguments::new(exchange, EXCHANGE_TYPE)
        .passive(true)
        .finish();
    let channel = match channel.exchange_declare(existing).await {
        Ok(()) => channel,
        Err(e) => match closed_channel(&mut events) {
            Some((NOT_FOUND, _)) => {
                let channel = open_channel(&connection, &sender).await?;
                let created = ExchangeDeclareArguments::new(exchange, EXCHANGE_TYPE)
                    .durable(true)
                    .finish();
                channel.exchange_declare(created).await.map_err(|e| {
                    match closed_channel(&mut events) {
                        Some((code, text)) => {
                            format!("cannot create exchange {exchange}: {code} {text}")
                        }
                        None => format!("cannot create exchange {exchange}: {e}"),
                    }
                })?;
                tracing::info!("AMQP broker: created the durable topic exchange {exchange}");
                channel
            }
            Some((code, text)) => return Err(format!("exchange {exchange}: {code} {text}")),
            None => return Err(format!("exchange {exchange}: {e}")),
        },
    };
    channel
        .confirm_select(ConfirmSelectArguments::default())
        .await
        .map_err(|e| format!("publisher confirms: {e}"))?;
    Ok(Session {
        connection,
        channel,
        events,
    })
}

async fn open_channel(
    connection: &Connection,
    sender: &mpsc::UnboundedSender<Event>,
) -> Result<Channel, String> {
    let channel = connection
        .open_channel(None)
        .await
        .map_err(|e| format!("cannot open a channel: {e}"))?;
    channel
        .register_callback(Forward(sender.clone()))
        .await
        .map_err(|e| format!("cannot open a channel: {e}"))?;
    Ok(channel)
}

/// The code and text of a channel the broker closed, if it did (told before the failed call
/// returned: the client runs the callback before it drops the call's waiter).
fn closed_channel(events: &mut mpsc::UnboundedReceiver<Event>) -> Option<(u16, String)> {
    while let Ok(event) = events.try_recv() {
        if let Event::ChannelClosed { code, text } = event {
            return Some((code, text));
        }
    }
    None
}

impl Publisher {
    /// Publishes from `settled` on until the session fails or the journal closes.
    ///
    /// A notification that comes after a quiet spell is published at once; then, while more
    /// keep coming, those that arrived are published together every [`BATCH_LINGER`] (one
    /// wake-up of this task, of the client's writer and, mostly, one multiple confirm from
    /// the broker per batch, instead of one of each per message).
    async fn publish(&mut self, mut session: Session) -> End {
        let after = self.settled;
        let mut subscription = self
            .state
            .journal()
            .subscribe(Position::in_epoch(&self.epoch, after));
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        if let Some(gap) = subscription.take_gap() {
            self.note_gap(after + 1..=gap.oldest.saturating_sub(1), &in_flight);
        }
        let mut next_tag: u64 = 1;
        let batch = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(batch);
        // Gathering: the subscription is read when `batch` is over, not as notifications come.
        let mut gathering = false;
        let end = {
            let closed = session.connection.listen_network_io_failure();
            tokio::pin!(closed);
            loop {
                let room = in_flight.len() < WINDOW;
                let outcome = tokio::select! {
                    biased;
                    event = session.events.recv() => match event {
                        Some(Event::Ack { tag, multiple }) => {
                            self.confirm(&mut in_flight, tag, multiple);
                            continue;
                        }
                        Some(Event::Nack { tag }) => {
                            let seq = in_flight.iter().find(|f| f.tag == tag).map_or(0, |f| f.seq);
                            break End::Lost(format!(
                                "the broker refused {}-{seq} (negative confirm)",
                                self.epoch
                            ));
                        }
                        Some(Event::ChannelClosed { code, text }) => {
                            break End::Lost(format!("the broker closed the channel: {code} {text}"));
                        }
                        Some(Event::ConnectionClosed { code, text }) => {
                            break End::Lost(format!("the broker closed the connection: {code} {text}"));
                        }
                        None => break End::Lost("the client stopped".to_string()),
                    },
                    _ = &mut closed => break End::Lost("connection closed".to_string()),
                    () = &mut batch, if gathering && room => {
                        let mut sent = 0;
                        let mut outcome = Ok(());
                        while in_flight.len() < WINDOW {
                            let Some(next) = subscription.try_next() else {
                                break;
                            };
                            outcome = self
                                .handle(next, &session, &mut subscription, &mut in_flight, &mut next_tag)
                                .await
                                .map(|published| sent += usize::from(published));
                            if outcome.is_err() {
                                break;
                            }
                        }
                        // Quiet: back to publishing the next notification as it comes.
                        gathering = sent > 0;
                        outcome
                    },
                    next = subscription.next(), if !gathering && room => {
                        gathering = true;
                        self.handle(next, &session, &mut subscription, &mut in_flight, &mut next_tag)
                            .await
                            .map(|_| ())
                    },
                };
                if let Err(end) = outcome {
                    break end;
                }
                if gathering {
                    batch
                        .as_mut()
                        .reset(tokio::time::Instant::now() + BATCH_LINGER);
                }
                self.report_backlog();
            }
        };
        if session.connection.is_open() {
            let _ = tokio::time::timeout(Duration::from_secs(1), session.connection.close()).await;
        }
        end
    }

    /// Publishes a notification the subscription gave (`Ok(true)`), or follows it past a
    /// gap; `Err` ends the session.
    async fn handle(
        &mut self,
        next: Next,
        session: &Session,
        subscription: &mut Subscription,
        in_flight: &mut VecDeque<InFlight>,
        next_tag: &mut u64,
    ) -> Result<bool, End> {
        match next {
            Next::Notification(notification) => {
                match self.send(&session.channel, &notification).await {
                    Ok(true) => {
                        in_flight.push_back(InFlight {
                            tag: *next_tag,
                            seq: notification.seq,
                            sent: Instant::now(),
                            confirmed: false,
                        });
                        *next_tag += 1;
                        self.stats.published(in_flight.len());
                        self.waiting_since.get_or_insert_with(Instant::now);
                        Ok(true)
                    }
                    Ok(false) => {
                        if in_flight.is_empty() {
                            self.settle_to(notification.seq, 0);
                        }
                        Ok(false)
                    }
                    Err(reason) => Err(End::Lost(reason)),
                }
            }
            Next::Lagged => {
                let lost = subscription.skip_lost();
                self.note_gap(lost, in_flight);
                Ok(false)
            }
            Next::Closed => Err(End::JournalClosed),
        }
    }

    /// Publishes one notification; `Ok(false)` if it cannot be encoded (logged, skipped).
    async fn send(&self, channel: &Channel, notification: &Notification) -> Result<bool, String> {
        let body = match serde_json::to_vec(&Sequenced::new(notification, &self.epoch)) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(
                    "AMQP broker: cannot encode notification {}: {e}; not published",
                    notification.seq
                );
                return Ok(false);
            }
        };
        let id = format!("{}-{}", self.epoch, notification.seq);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let properties = BasicProperties::default()
            .with_content_type("application/json")
            .with_delivery_mode(DELIVERY_MODE_PERSISTENT)
            .with_message_id(&id)
            .with_timestamp(timestamp)
            .with_app_id("clnrest")
            .finish();
        let arguments =
            BasicPublishArguments::new(&self.settings.exchange, routing_key(notification.topic()));
        channel
            .basic_publish(properties, body, arguments)
            .await
            .map_err(|e| format!("publishing failed: {e}"))?;
        Ok(true)
    }

    /// Marks `tag` (and, if `multiple`, every one before it) confirmed, and settles the
    /// confirmed messages at the front.
    fn confirm(&mut self, in_flight: &mut VecDeque<InFlight>, tag: u64, multiple: bool) {
        let Some(first) = in_flight.front().map(|f| f.tag) else {
            return;
        };
        if multiple {
            for message in in_flight.iter_mut().take_while(|f| f.tag <= tag) {
                message.confirmed = true;
            }
        } else if let Some(message) = tag
            .checked_sub(first)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| in_flight.get_mut(index))
        {
            message.confirmed = true;
        }
        let mut count = 0;
        let mut last = None;
        while let Some(message) = in_flight.pop_front() {
            if !message.confirmed {
                in_flight.push_front(message);
                break;
            }
            count += 1;
            last = Some(message);
        }
        if let Some(message) = last {
            self.settled = message.seq;
            self.stats
                .confirmed(count, message.seq, message.sent.elapsed());
            self.meter.record_delivered(count);
            self.waiting_since = in_flight.front().map(|f| f.sent);
            self.report_backlog();
        }
        self.stats.set_in_flight(in_flight.len());
    }

    /// The metrics' backlog (notifications in the journal not confirmed yet; their bytes are
    /// not counted) and lag.
    fn report_backlog(&self) {
        let backlog = self.state.journal().last_seq().saturating_sub(self.settled);
        self.meter.set_backlog(backlog, 0);
        self.meter
            .set_in_delivery_since(self.waiting_since.filter(|_| backlog > 0));
    }

    /// [`Publisher::report_backlog`] between connections: what waits has been waiting since
    /// it was first published, or found waiting.
    fn report_waiting(&mut self) {
        let backlog = self.state.journal().last_seq().saturating_sub(self.settled);
        if backlog == 0 {
            self.waiting_since = None;
        } else {
            self.waiting_since.get_or_insert_with(Instant::now);
        }
        self.report_backlog();
    }

    /// Everything up to `seq` is settled without being confirmed (`lost` of them dropped).
    fn settle_to(&mut self, seq: u64, lost: u64) {
        self.settled = self.settled.max(seq);
        self.stats.skipped_to(self.settled, lost);
    }

    /// Logs (and counts) notifications after `after` that the journal dropped before they
    /// were published.
    fn note_gap(&mut self, missed: RangeInclusive<u64>, in_flight: &VecDeque<InFlight>) {
        if missed.is_empty() {
            return;
        }
        let lost = missed.end() - missed.start() + 1;
        tracing::warn!(
            "AMQP broker: {lost} notification(s) ({}..={}) were dropped from the journal \
             (it keeps the last {}) before they could be published; they will never reach \
             the broker",
            missed.start(),
            missed.end(),
            crate::stream::journal::RETAINED_COUNT,
        );
        if in_flight.is_empty() {
            self.settle_to(*missed.end(), lost);
        } else {
            // Settled once the messages in flight before the gap are confirmed.
            self.stats.skipped_to(0, lost);
        }
    }
}

/// The topic as a routing key: AMQP carries at most 255 bytes (cut at a character boundary;
/// the body keeps the whole topic).
fn routing_key(topic: &str) -> &str {
    if topic.len() <= MAX_ROUTING_KEY {
        return topic;
    }
    let mut end = MAX_ROUTING_KEY;
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    &topic[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_are_cut_to_255_bytes_at_a_character_boundary() {
        assert_eq!(routing_key("invoice_payment"), "invoice_payment");
        let long = format!("{}é", "a".repeat(254));
        assert_eq!(routing_key(&long), "a".repeat(254));
        assert_eq!(routing_key(&"b".repeat(300)).len(), 255);
    }
}
