//! `GET /v1/notifications`: the notification stream as Server-Sent Events, for clients that
//! do not speak Socket.IO (`curl -N` works).
//!
//! One event per notification: `id:` its sequence number, `event:` its topic, `data:` its
//! payload. `Last-Event-ID` resumes like the Socket.IO `since`; `?topics=a,b` filters. The
//! rune (header `Rune`) must allow `listclnrest-notifications`, as for Socket.IO.
//!
//! A notification whose topic contains CR or LF (which an `event:` line cannot carry) is
//! skipped, with a log line; the payload is compact JSON, which never contains either.

use crate::error::ApiError;
use crate::http::handlers::RUNE_HEADER;
use crate::state::AppState;
use crate::stream::journal::{Next, Subscription};
use crate::stream::listeners::{Registration, StreamOptions};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// A comment line is sent at least this often, so proxies and clients see a live stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadHeader("Last-Event-ID must be a sequence number".into())
                })?,
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
    let subscription = state.journal().subscribe(options.since);
    let registration = state.listeners().register(&rune);
    let stream = events(subscription, registration, options);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The event stream: a producer task feeds a one-slot channel, so a client that stops
/// reading holds back only its own producer (whose journal subscription then lags and ends).
fn events(
    subscription: Subscription,
    registration: Registration,
    options: StreamOptions,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (sender, receiver) = mpsc::channel::<Event>(1);
    tokio::spawn(produce(subscription, registration, options, sender));
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    })
}

async fn produce(
    mut subscription: Subscription,
    mut registration: Registration,
    options: StreamOptions,
    events: mpsc::Sender<Event>,
) {
    let closing = |reason: &str| {
        let data = serde_json::json!({ "reason": reason }).to_string();
        Event::default().event("disconnect_reason").data(data)
    };
    if let Some(gap) = subscription.take_gap() {
        let data = serde_json::to_string(&gap).unwrap_or_default();
        if events
            .send(Event::default().event("gap").data(data))
            .await
            .is_err()
        {
            return;
        }
    }
    loop {
        let next = tokio::select! {
            next = subscription.next() => next,
            reason = &mut registration.revoked => {
                let reason = format!("rune revoked: {}", reason.unwrap_or_default());
                let _ = events.try_send(closing(&reason));
                return;
            }
            _ = events.closed() => return,
        };
        let notification = match next {
            Next::Notification(notification) => notification,
            Next::Lagged => {
                tracing::info!("closing an SSE stream: slow consumer");
                let _ = events.try_send(closing("slow consumer"));
                return;
            }
            Next::Closed => return,
        };
        if !options.wants(notification.topic()) {
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
            .id(notification.seq.to_string())
            .event(notification.topic())
            .data(notification.payload());
        if events.send(event).await.is_err() {
            return;
        }
    }
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
