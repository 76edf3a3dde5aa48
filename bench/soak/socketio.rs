//! Socket.IO clients (engine.io v4 / Socket.IO v5 over a websocket, by hand): churning
//! ones and steady ones.

use crate::shared::{Rng, Shared, Source};
use crate::support::socketio_client::{self, number_after, BeforeAck, Ws};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Churning clients stay connected this long (uniformly random, whole milliseconds).
pub const CHURN_STAY_MIN: Duration = Duration::from_secs(1);
pub const CHURN_STAY_MAX: Duration = Duration::from_secs(20);
/// Pause between a churning client's disconnect and its next connect (random up to this).
pub const CHURN_AWAY_MAX: Duration = Duration::from_millis(500);
/// One websocket + Socket.IO handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Closing a websocket politely (our close frame, then the server's).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting before a retry after a failed connection.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The string right after `key` (e.g. `"topic":"`), up to the next quote.
pub fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    Some(&rest[..rest.find('"')?])
}

pub fn excerpt(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let ellipsis = if end < text.len() { "…" } else { "" };
    format!("{}{ellipsis}", &text[..end])
}

/// Websocket, engine.io open, Socket.IO connect to `/` with `auth`; returns after the
/// server's connect ack. Bounded by [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str, auth: &Value) -> Result<Ws, String> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        socketio_client::handshake(url, auth, BeforeAck::Fail),
    )
    .await
    .map_err(|_| format!("no connect ack within {CONNECT_TIMEOUT:?}"))?
}

/// Socket.IO disconnect, websocket close, and waiting (bounded) for the server's close.
pub async fn leave(mut ws: Ws) {
    let polite = async {
        let _ = ws.send(Message::text("41")).await;
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, polite).await;
}

/// What one frame from the server means to a client.
pub enum Frame {
    /// A `42[...]` event: its text after `42`.
    Event(String),
    /// Something we answered (a ping) or ignore.
    Handled,
    /// The server ended the connection, or it broke.
    Ended(String),
}

pub async fn read_frame(ws: &mut Ws) -> Frame {
    let text = match ws.next().await {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(frame))) => {
            return Frame::Ended(format!("websocket closed: {frame:?}"))
        }
        Some(Ok(_)) => return Frame::Handled,
        Some(Err(e)) => return Frame::Ended(format!("websocket error: {e}")),
        None => return Frame::Ended("connection ended".into()),
    };
    let text = text.as_str();
    if let Some(event) = text.strip_prefix("42") {
        Frame::Event(event.to_string())
    } else if text == "2" {
        match ws.send(Message::text("3")).await {
            Ok(()) => Frame::Handled,
            Err(e) => Frame::Ended(format!("cannot answer a ping: {e}")),
        }
    } else if text.starts_with("41") || text == "1" {
        Frame::Ended(format!("server disconnected the client ({text})"))
    } else {
        Frame::Event(text.to_string())
    }
}

#[derive(Default)]
pub struct ChurnResult {
    pub connects: u64,
    pub messages: u64,
}

/// Connects, stays a random 1-20 s, leaves, and again, while `churn` says so.
pub async fn churn_client(
    url: String,
    rune: String,
    seed: u64,
    shared: Arc<Shared>,
    mut churn: watch::Receiver<bool>,
    stop: CancellationToken,
) -> ChurnResult {
    let mut result = ChurnResult::default();
    let mut rng = Rng::new(seed);
    let auth = json!({ "rune": rune });
    // Spread the first connections over the first seconds.
    let first = rng.duration(Duration::ZERO, CHURN_STAY_MIN * 2);
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = stop.cancelled() => return result,
    }
    loop {
        // Wait until churn is allowed.
        tokio::select! {
            allowed = churn.wait_for(|on| *on) => if allowed.is_err() { return result },
            _ = stop.cancelled() => return result,
        }
        let mut ws = tokio::select! {
            connected = connect(&url, &auth) => match connected {
                Ok(ws) => ws,
                Err(e) => {
                    shared.error(Source::SocketIo, format!("churning client: {e}"));
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => continue,
                        _ = stop.cancelled() => return result,
                    }
                }
            },
            _ = stop.cancelled() => return result,
        };
        result.connects += 1;
        shared.count(&shared.churn_connects);
        shared.churn_connected.fetch_add(1, Ordering::SeqCst);
        let stay = tokio::time::sleep(rng.duration(CHURN_STAY_MIN, CHURN_STAY_MAX));
        tokio::pin!(stay);
        let mut ended = None;
        loop {
            let frame = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = churn.wait_for(|on| !*on) => break,
                _ = &mut stay => break,
                frame = read_frame(&mut ws) => frame,
            };
            match frame {
                Frame::Event(event) if event.starts_with("[\"message\"") => result.messages += 1,
                Frame::Event(event) => {
                    shared.error(
                        Source::SocketIo,
                        format!(
                            "churning client got an unexpected frame: {}",
                            excerpt(&event)
                        ),
                    );
                }
                Frame::Handled => {}
                Frame::Ended(reason) => {
                    ended = Some(reason);
                    break;
                }
            }
        }
        match ended {
            Some(reason) => shared.error(
                Source::SocketIo,
                format!("churning client lost its connection before leaving: {reason}"),
            ),
            None => leave(ws).await,
        }
        shared.churn_connected.fetch_sub(1, Ordering::SeqCst);
        let away = rng.duration(Duration::ZERO, CHURN_AWAY_MAX);
        tokio::select! {
            _ = tokio::time::sleep(away) => {}
            _ = stop.cancelled() => return result,
        }
    }
}

/// One steady client's record of what it received.
#[derive(Default)]
pub struct SteadyResult {
    /// Pushed notifications received, by `soak_n`.
    pub seen: Vec<bool>,
    pub distinct: u64,
    pub duplicates: u64,
    /// Received after a higher `soak_n`.
    pub out_of_order: u64,
    pub max_n: Option<u64>,
    /// The first `soak_n` not received yet (everything below it was).
    pub contiguous: u64,
    pub last_seq: u64,
    /// Sequence numbers skipped, and sequence numbers not above the previous one.
    pub seq_skipped: u64,
    pub seq_backwards: u64,
    /// Notifications not pushed by the harness, by topic.
    pub others: BTreeMap<String, u64>,
    pub gap_events: Vec<String>,
    /// Connections the server ended, or that broke, and failed reconnects.
    pub disconnects: Vec<String>,
}

impl SteadyResult {
    /// Records one `notification` event (the text after `42`); `false` if it has no `seq`.
    pub fn record(&mut self, event: &str) -> bool {
        let Some(seq) = number_after(event, "\"seq\":") else {
            return false;
        };
        if seq <= self.last_seq {
            self.seq_backwards += 1;
        } else {
            self.seq_skipped += seq - self.last_seq - 1;
            self.last_seq = seq;
        }
        let Some(n) = number_after(event, "\"soak_n\":") else {
            let topic = string_after(event, "\"topic\":\"").unwrap_or("?");
            *self.others.entry(topic.to_string()).or_default() += 1;
            return true;
        };
        let index = n as usize;
        if self.seen.len() <= index {
            self.seen.resize(index + 1, false);
        }
        if self.seen[index] {
            self.duplicates += 1;
            return true;
        }
        self.seen[index] = true;
        self.distinct += 1;
        if self.max_n.is_some_and(|max| n < max) {
            self.out_of_order += 1;
        }
        self.max_n = self.max_n.max(Some(n));
        while self.seen.get(self.contiguous as usize) == Some(&true) {
            self.contiguous += 1;
        }
        true
    }
}

/// Connected for the whole run with `seq: true`; checks sequence numbers and `soak_n`.
pub async fn steady_client(
    index: usize,
    url: String,
    rune: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> SteadyResult {
    let mut result = SteadyResult::default();
    let mut first = true;
    while !stop.is_cancelled() {
        // Resume after the last notification seen (0 the first time: everything).
        let auth = json!({ "rune": rune, "seq": true, "since": result.last_seq });
        let mut ws = tokio::select! {
            connected = connect(&url, &auth) => match connected {
                Ok(ws) => ws,
                Err(e) => {
                    let what = format!("steady client {index}: cannot connect: {e}");
                    shared.error(Source::SocketIo, what.clone());
                    result.disconnects.push(what);
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => continue,
                        _ = stop.cancelled() => break,
                    }
                }
            },
            _ = stop.cancelled() => break,
        };
        if first {
            shared.steady_connected.fetch_add(1, Ordering::SeqCst);
            first = false;
        }
        let ended = loop {
            let frame = tokio::select! {
                biased;
                _ = stop.cancelled() => break None,
                frame = read_frame(&mut ws) => frame,
            };
            match frame {
                Frame::Event(event) if event.starts_with("[\"notification\"") => {
                    if !result.record(&event) {
                        shared.error(
                            Source::SocketIo,
                            format!(
                                "steady client {index} got a notification without seq: {}",
                                excerpt(&event)
                            ),
                        );
                    }
                    shared.steady_contiguous[index].store(result.contiguous, Ordering::SeqCst);
                }
                Frame::Event(event) if event.starts_with("[\"gap\"") => {
                    shared.error(
                        Source::SocketIo,
                        format!("steady client {index} got a gap: {}", excerpt(&event)),
                    );
                    result.gap_events.push(event);
                }
                Frame::Event(event) => {
                    shared.error(
                        Source::SocketIo,
                        format!(
                            "steady client {index} got an unexpected frame: {}",
                            excerpt(&event)
                        ),
                    );
                }
                Frame::Handled => {}
                Frame::Ended(reason) => break Some(reason),
            }
        };
        match ended {
            Some(reason) => {
                let what = format!(
                    "steady client {index} lost its connection after seq {}: {reason}",
                    result.last_seq
                );
                shared.error(Source::SocketIo, what.clone());
                result.disconnects.push(what);
            }
            None => {
                leave(ws).await;
                break;
            }
        }
    }
    result
}
