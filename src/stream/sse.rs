//! `GET /v1/notifications`: the notification stream as Server-Sent Events, for clients that
//! do not speak Socket.IO (`curl -N` works).
//!
//! One event per notification: `id:` its position `<epoch>-<seq>` (the journal's epoch, which
//! differs in every plugin process, and its sequence number), `event:` its topic, `data:` its
//! payload. `Last-Event-ID` resumes like the Socket.IO `since` (a bare sequence number is
//! still accepted); `?topics=a,b` filters. The rune (header `Rune`) must allow
//! `listclnrest-notifications`, as for Socket.IO.
//!
//! A stream that is cut off (rune revoked, slow consumer) ends with a `disconnect_reason`
//! event. It has a slot of its own, so a full queue never keeps it out: it goes ahead of
//! whatever is still queued, and the stream ends after it.
//!
//! A notification whose topic contains CR or LF (which an `event:` line cannot carry) is
//! skipped, with a log line; the payload is compact JSON, which never contains either.
//!
//! What a stalled client costs is bounded without a rule of its own: the stream is pulled.
//! hyper asks the body for the next event only while its write buffer has room (HTTP/1:
//! under ~408 KiB and 16 chunks, `max_buf_size`; HTTP/2: the stream's send buffer, 400 KiB,
//! and flow control), so a client that stops reading holds at most that, the one event
//! queued here and the one its producer holds; everything else it is owed stays in the
//! journal (one copy for everyone) until it reads on or lags out of it and is cut off.

use crate::error::ApiError;
use crate::http::handlers::RUNE_HEADER;
use crate::state::AppState;
use crate::stream::journal::{Next, Position, Subscription};
use crate::stream::listeners::{Registration, StreamOptions};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A comment line is sent at least this often, so proxies and clients see a live stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Why a `Last-Event-ID` was refused (400).
pub const LAST_EVENT_ID_ERROR: &str =
    "Last-Event-ID must be an event id (<epoch>-<seq>) or a sequence number";

/// How many events wait for the client at most (besides the one its producer holds and the
/// `disconnect_reason` slot): a client that stops reading holds back only its own producer,
/// which cuts it off once what it needs next is no longer retained.
const QUEUE: usize = 1;

#[derive(Deserialize)]
pub struct StreamQuery {
    topics: Option<String>,
}

/// `GET /v1/notifications`.
pub async fn notifications(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rune = headers
        .get(&RUNE_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .ok_or(ApiError::MissingRune)?;
    let since = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(Position::parse)
                .ok_or_else(|| ApiError::BadHeader(LAST_EVENT_ID_ERROR.into()))?,
        ),
    };
    let topics = query.topics.map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    });
    let options = StreamOptions {
        since,
        seq: true,
        topics,
    };
    crate::stream::listeners::authorize(state.rpc(), &rune).await?;
    let subscription = state.journal().subscribe(options.since.clone());
    let registration = state
        .listeners()
        .register(&rune, crate::stream::listeners::Transport::Sse);
    let epoch = state.journal().epoch().to_string();
    let stream = events(subscription, registration, options, epoch);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The event stream: a producer task feeds a small queue, so a client that stops reading
/// holds back only its own producer (which cuts it off once it lags out of the journal). The
/// producer's last word (`disconnect_reason`) has a slot of its own: it is delivered even
/// when the queue is full, ahead of what is queued, and ends the stream.
fn events(
    subscription: Subscription,
    registration: Registration,
    options: StreamOptions,
    epoch: String,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (sender, queue) = mpsc::channel::<Event>(QUEUE);
    let (last_word, last_word_slot) = oneshot::channel::<Event>();
    let producer = Producer {
        subscription,
        registration,
        options,
        epoch,
        events: sender,
        last_word,
    };
    tokio::spawn(producer.run());
    let outlet = Outlet {
        queue,
        last_word: Some(last_word_slot),
        ended: false,
    };
    futures::stream::unfold(outlet, |mut outlet| async move {
        outlet.next().await.map(|event| (Ok(event), outlet))
    })
}

/// The client's end: the queue, and the slot for the producer's last word.
struct Outlet {
    queue: mpsc::Receiver<Event>,
    /// `None` once the producer ended without a last word.
    last_word: Option<oneshot::Receiver<Event>>,
    /// The last word was delivered: nothing follows it.
    ended: bool,
}

impl Outlet {
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        let Some(slot) = self.last_word.as_mut() else {
            return self.queue.recv().await;
        };
        tokio::select! {
            // The producer fills the slot before it lets go of the queue: when the queue
            // ends, a last word is already there to be seen first.
            biased;
            word = slot => match word {
                Ok(word) => {
                    self.ended = true;
                    Some(word)
                }
                Err(_) => {
                    self.last_word = None;
                    self.queue.recv().await
                }
            },
            event = self.queue.recv() => event,
        }
    }
}

/// Reads the journal for one stream and queues its events.
struct Producer {
    subscription: Subscription,
    registration: Registration,
    options: StreamOptions,
    epoch: String,
    events: mpsc::Sender<Event>,
    last_word: oneshot::Sender<Event>,
}

impl Producer {
    async fn run(mut self) {
        if let Some(gap) = self.subscription.take_gap() {
            let data = serde_json::to_string(&gap).unwrap_or_default();
            if let Err(end) = self.queue(Event::default().event("gap").data(data)).await {
                return self.end(end);
            }
        }
        loop {
            let next = tokio::select! {
                next = self.subscription.next() => next,
                reason = &mut self.registration.revoked => {
                    return self.end(End::Revoked(reason.unwrap_or_default()));
                }
                _ = self.events.closed() => return,
            };
            let notification = match next {
                Next::Notification(notification) => notification,
                Next::Lagged => return self.end(End::SlowConsumer),
                Next::Closed => return,
            };
            if !self.options.wants(notification.topic()) {
                continue;
            }
            if !sse_can_carry(notification.topic()) {
                tracing::warn!(
                    "skipping notification {} on an SSE stream: its topic {:?} contains a line \
                     break, which an SSE event name cannot carry",
                    notification.seq,
                    truncated(notification.topic(), 64)
                );
                continue;
            }
            let event = Event::default()
                .id(format!("{}-{}", self.epoch, notification.seq))
                .event(notification.topic())
                .data(notification.payload());
            drop(notification);
            if let Err(end) = self.queue(event).await {
                return self.end(end);
            }
        }
    }

    /// Queues `event`, waiting for room, and meanwhile still noticing a revoked rune and the
    /// subscription falling out of the journal.
    async fn queue(&mut self, event: Event) -> Result<(), End> {
        tokio::select! {
            biased;
            reason = &mut self.registration.revoked => Err(End::Revoked(reason.unwrap_or_default())),
            _ = self.subscription.lagged() => Err(End::SlowConsumer),
            sent = self.events.send(event) => sent.map_err(|_| End::Gone),
        }
    }

    /// Ends the stream: its last word, if it has one, goes in the reserved slot.
    fn end(self, end: End) {
        let reason = match end {
            End::Revoked(reason) => format!("rune revoked: {reason}"),
            End::SlowConsumer => {
                tracing::info!("closing an SSE stream: slow consumer");
                "slow consumer".to_string()
            }
            End::Gone => return,
        };
        let data = serde_json::json!({ "reason": reason }).to_string();
        let _ = self
            .last_word
            .send(Event::default().event("disconnect_reason").data(data));
    }
}

/// Why a stream ends early.
enum End {
    /// lightningd's reason.
    Revoked(String),
    SlowConsumer,
    /// The client went away.
    Gone,
}

/// Whether `topic` can be an SSE event name: no CR or LF (anything else is text an `event:`
/// line carries).
fn sse_can_carry(topic: &str) -> bool {
    !topic.contains(['\r', '\n'])
}

/// At most `max` characters of `text`, for a log line.
fn truncated(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_what_an_event_name_cannot_carry() {
        assert!(sse_can_carry("invoice_payment"));
        assert!(sse_can_carry("a\u{0}b \t\u{2028}é"));
        assert!(!sse_can_carry("a\nb"));
        assert!(!sse_can_carry("a\rb"));
        assert!(!sse_can_carry("\r\n"));
        // Every topic it accepts makes an event without panicking.
        let _ = Event::default().event("a\u{0}b \t\u{2028}é");
    }

    #[test]
    fn truncation_is_on_a_char_boundary() {
        assert_eq!(truncated("ééé", 2), "éé");
        assert_eq!(truncated("ab", 5), "ab");
    }
}
