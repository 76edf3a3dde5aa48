//! Who is listening to notifications, under which rune, and what they asked for; and the
//! revocation check that cuts off listeners whose rune lightningd no longer accepts.
//!
//! Runes can be blacklisted or expire while a client is connected. Every connected
//! listener's rune is re-checked with `checkrune` periodically ([`RECHECK_INTERVAL`]) and at
//! once when [`Listeners::request_recheck`] is called (after a `blacklistrune` passes
//! through the REST API). A refused rune ends its listeners with lightningd's reason.

use crate::lightningd::rpc::LightningRpc;
use crate::lightningd::rune::{self, RuneError};
use crate::stream::journal::Position;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// The method a rune must allow to receive notifications.
pub const NOTIFICATIONS_METHOD: &str = "listclnrest-notifications";
/// How often every listener's rune is checked again.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What a listener asked for, from its Socket.IO auth payload or its SSE request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Resume after this position.
    pub since: Option<Position>,
    /// Receive `notification` events with sequence numbers instead of `message`.
    pub seq: bool,
    /// Only these topics (all when `None`).
    pub topics: Option<HashSet<String>>,
}

impl StreamOptions {
    /// Reads the options from a Socket.IO auth payload (any JSON; unknown members ignored).
    pub fn from_auth(auth: &Value) -> Result<StreamOptions, String> {
        let Some(auth) = auth.as_object() else {
            return Ok(StreamOptions::default());
        };
        let since = match auth.get("since") {
            None | Some(Value::Null) => None,
            Some(v) => Some(position_of(v).ok_or(SINCE_ERROR)?),
        };
        let seq = match auth.get("seq") {
            None | Some(Value::Null) => false,
            Some(v) => v.as_bool().ok_or("`seq` must be true or false")?,
        };
        let topics = match auth.get("topics") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<HashSet<_>>>()
                    .ok_or("`topics` must be a list of topic names")?,
            ),
            Some(_) => return Err("`topics` must be a list of topic names".into()),
        };
        Ok(StreamOptions { since, seq, topics })
    }

    /// Whether a notification of `topic` goes to this listener.
    pub fn wants(&self, topic: &str) -> bool {
        self.topics.as_ref().is_none_or(|t| t.contains(topic))
    }
}

/// Why a `since` was refused.
const SINCE_ERROR: &str =
    "`since` must be a position: \"<epoch>-<seq>\", {\"epoch\": \"<epoch>\", \
                           \"seq\": <seq>}, or a bare sequence number (a non-negative integer)";

/// A `since` of the auth payload: a non-negative integer (a bare sequence number), a string
/// `"<epoch>-<seq>"` (or of digits only), or `{"epoch": "<epoch>", "seq": <seq>}`.
fn position_of(since: &Value) -> Option<Position> {
    match since {
        Value::Number(n) => n.as_u64().map(Position::Seq),
        Value::String(text) => Position::parse(text),
        Value::Object(members) => {
            let epoch = members.get("epoch")?.as_str()?;
            let seq = members.get("seq")?.as_u64()?;
            Position::in_epoch(epoch, seq)
        }
        _ => None,
    }
}

/// Asks lightningd whether `rune` may receive notifications.
pub async fn authorize(rpc: &LightningRpc, rune: &str) -> Result<(), RuneError> {
    crate::lightningd::rune::check(rpc, rune, NOTIFICATIONS_METHOD, None).await
}

/// Whether a connected listener's rune still allows notifications; `Err(Refused)` only for
/// a refusal that lasts. A rate-limited rune is not spent on it: `checkrune` is asked only
/// when `showrunes` gives a reason to (an accepted check would use up the allowance its own
/// REST calls need), and "too soon" is no reason to cut anyone off.
async fn still_allowed(rpc: &LightningRpc, rune: &str) -> Result<(), RuneError> {
    if rune::has_rate_limit(rune) && !rune::may_be_revoked(rpc, rune).await? {
        return Ok(());
    }
    match authorize(rpc, rune).await {
        Err(RuneError::Refused(error)) if error.message() == rune::TOO_SOON => Ok(()),
        other => other,
    }
}

/// How a listener receives notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    SocketIo,
    Sse,
}

struct Listener {
    rune: Arc<str>,
    transport: Transport,
    revoke: oneshot::Sender<String>,
}

/// The registry of connected listeners.
#[derive(Default)]
pub struct Listeners {
    next_id: AtomicU64,
    listeners: Mutex<HashMap<u64, Listener>>,
    recheck: Notify,
}

/// A listener's place in the registry; dropping it unregisters the listener.
pub struct Registration {
    registry: Arc<Listeners>,
    id: u64,
    /// Resolves with lightningd's reason when the rune is revoked.
    pub revoked: oneshot::Receiver<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Listener>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a listener authorized by `rune`, receiving over `transport`.
    pub fn register(self: &Arc<Self>, rune: &str, transport: Transport) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (revoke, revoked) = oneshot::channel();
        self.lock().insert(
            id,
            Listener {
                rune: Arc::from(rune),
                transport,
                revoke,
            },
        );
        Registration {
            registry: self.clone(),
            id,
            revoked,
        }
    }

    /// How many listeners are connected.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// How many listeners are connected over `transport`.
    pub fn count(&self, transport: Transport) -> usize {
        self.lock()
            .values()
            .filter(|l| l.transport == transport)
            .count()
    }

    /// Whether no listener is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the revocation loop to check every rune now.
    pub fn request_recheck(&self) {
        self.recheck.notify_one();
    }

    /// Checks every distinct rune once; listeners whose rune is refused for good are revoked.
    pub async fn recheck(&self, rpc: &LightningRpc) {
        let runes: HashSet<Arc<str>> = self.lock().values().map(|l| l.rune.clone()).collect();
        let count = runes.len();
        for rune in runes {
            match still_allowed(rpc, &rune).await {
                Ok(()) => {}
                Err(RuneError::Refused(error)) => {
                    let reason = error.message();
                    let revoked: Vec<Listener> = {
                        let mut listeners = self.lock();
                        let ids: Vec<u64> = listeners
                            .iter()
                            .filter(|(_, l)| l.rune == rune)
                            .map(|(id, _)| *id)
                            .collect();
                        ids.iter().filter_map(|id| listeners.remove(id)).collect()
                    };
                    tracing::info!(
                        "{} no longer allows notifications ({reason}): disconnecting {} listener(s)",
                        rune::log_name(&rune),
                        revoked.len()
                    );
                    for listener in revoked {
                        let _ = listener.revoke.send(reason.clone());
                    }
                }
                // lightningd unreachable: keep listeners; the next round checks again.
                Err(e) => tracing::debug!("rune re-check skipped: {e}"),
            }
        }
        tracing::debug!("re-checked {count} listener rune(s)");
    }

    /// Re-checks runes every [`RECHECK_INTERVAL`] and whenever asked, until dropped.
    pub async fn revocation_loop(self: Arc<Self>, rpc: Arc<LightningRpc>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RECHECK_INTERVAL) => {}
                _ = self.recheck.notified() => {}
            }
            if !self.is_empty() {
                self.recheck(&rpc).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_payload_options() {
        let opts = StreamOptions::from_auth(&json!({
            "rune": "x", "since": 7, "seq": true, "topics": ["invoice_payment"]
        }))
        .unwrap();
        assert_eq!(opts.since, Some(Position::Seq(7)));
        assert!(opts.seq);
        assert!(opts.wants("invoice_payment"));
        assert!(!opts.wants("connect"));
        assert_eq!(
            StreamOptions::from_auth(&json!(null)).unwrap(),
            StreamOptions::default()
        );
        assert!(StreamOptions::default().wants("anything"));
    }

    #[test]
    fn since_is_a_bare_number_an_epoch_dash_seq_string_or_an_object() {
        let since = |v: Value| StreamOptions::from_auth(&json!({ "since": v })).map(|o| o.since);
        let qualified = Some(Position::InEpoch {
            epoch: "3f9a1c0e5b7d2a48".into(),
            seq: 41,
        });
        assert_eq!(since(json!(41)), Ok(Some(Position::Seq(41))));
        assert_eq!(since(json!("41")), Ok(Some(Position::Seq(41))));
        assert_eq!(since(json!("3f9a1c0e5b7d2a48-41")), Ok(qualified.clone()));
        assert_eq!(
            since(json!({"epoch": "3f9a1c0e5b7d2a48", "seq": 41})),
            Ok(qualified)
        );
        assert_eq!(since(Value::Null), Ok(None));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("x-y"),
            json!(""),
            json!(true),
            json!({"epoch": "e"}),
            json!({"seq": 4}),
            json!({"epoch": 5, "seq": 4}),
            json!({"epoch": "e f", "seq": 4}),
            json!({"epoch": "e", "seq": -4}),
            json!([1]),
        ] {
            let error = since(bad.clone()).unwrap_err();
            assert!(
                error.starts_with("`since` must be a position"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn bad_auth_payload_options_are_explained() {
        assert!(StreamOptions::from_auth(&json!({"since": -1}))
            .unwrap_err()
            .contains("since"));
        assert!(StreamOptions::from_auth(&json!({"topics": "connect"}))
            .unwrap_err()
            .contains("topics"));
        assert!(StreamOptions::from_auth(&json!({"seq": "yes"}))
            .unwrap_err()
            .contains("seq"));
    }

    #[test]
    fn registrations_unregister_on_drop() {
        let subscribers = Arc::new(Listeners::default());
        let a = subscribers.register("r1", Transport::Sse);
        let _b = subscribers.register("r2", Transport::SocketIo);
        assert_eq!(subscribers.len(), 2);
        assert_eq!(subscribers.count(Transport::Sse), 1);
        drop(a);
        assert_eq!(subscribers.len(), 1);
        assert_eq!(subscribers.count(Transport::Sse), 0);
        assert_eq!(subscribers.count(Transport::SocketIo), 1);
    }
}
