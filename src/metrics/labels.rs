//! The labels of the request and lightningd-call series, kept to a bounded set: what kind of
//! route a request took ([`RouteKind`]), and which lightningd method it was for
//! ([`MethodLabel`]: only names lightningd's `help` lists, anything else is `other`).
//!
//! A label costs no allocation on the hot path: kinds are an enum, known method names are
//! interned once (`Arc<str>`) when `help` is read and handed out by reference count.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use rustc_hash::FxHashSet;
use std::fmt::Write;
use std::sync::{Arc, RwLock};

/// What a request was, by the route that served it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RouteKind {
    /// `/v1/<method>`: a lightningd method called through REST.
    Rest,
    /// A path another plugin registered (`clnrest-register-path`).
    Registered,
    /// `GET /v1/list-methods`.
    ListMethods,
    /// `GET /v1/notifications` (Server-Sent Events).
    Notifications,
    /// `/socket.io/...` (handshakes, long-polling, websocket upgrades).
    SocketIo,
    /// `/swagger.json` and Swagger UI.
    Swagger,
    /// `GET /metrics`.
    Metrics,
    /// Anything else: unknown paths, CORS preflights.
    Other,
}

impl RouteKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Rest => "rest",
            RouteKind::Registered => "registered",
            RouteKind::ListMethods => "list_methods",
            RouteKind::Notifications => "notifications",
            RouteKind::SocketIo => "socketio",
            RouteKind::Swagger => "swagger",
            RouteKind::Metrics => "metrics",
            RouteKind::Other => "other",
        }
    }
}

impl EncodeLabelValue for RouteKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// The `method` label: a lightningd method name, bounded to the ones lightningd knows.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum MethodLabel {
    /// The request is not a method call (Swagger UI, Socket.IO, ...): empty.
    None,
    /// A method lightningd's last `help` listed.
    Known(Arc<str>),
    /// A name lightningd does not know (or not yet: before the first `help`).
    Other,
}

impl MethodLabel {
    /// The label value.
    pub fn as_str(&self) -> &str {
        match self {
            MethodLabel::None => "",
            MethodLabel::Known(name) => name,
            MethodLabel::Other => "other",
        }
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// `clnrest_http_requests_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: RouteKind,
    pub method: MethodLabel,
    /// The HTTP status answered; 499 when the client went away before the answer.
    pub status: u16,
}

/// `clnrest_http_request_duration_seconds`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub kind: RouteKind,
    pub method: MethodLabel,
}

/// The lightningd-call series' labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: MethodLabel,
}

/// The lightningd-call error counter's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallErrorLabels {
    pub method: MethodLabel,
    /// `lightningd` (it answered with an error) or `unreachable` (no answer).
    pub error: &'static str,
}

/// The method names lightningd's last `help` listed, interned.
#[derive(Default)]
pub struct KnownMethods {
    names: RwLock<FxHashSet<Arc<str>>>,
}

impl KnownMethods {
    /// Replaces the known names with the commands of `help`'s usage strings (the first word
    /// of each, e.g. `invoice` of `invoice amount_msat label ...`).
    pub fn replace(&self, usage: &[String]) {
        let names: FxHashSet<Arc<str>> = usage
            .iter()
            .filter_map(|u| u.split_whitespace().next())
            .map(Arc::from)
            .collect();
        *self.names.write().unwrap_or_else(|e| e.into_inner()) = names;
    }

    /// The label for `name`: itself if lightningd knows it, else `other`.
    pub fn label(&self, name: &str) -> MethodLabel {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        match names.get(name) {
            Some(known) => MethodLabel::Known(known.clone()),
            None => MethodLabel::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_methods_lightningd_listed_are_labels() {
        let known = KnownMethods::default();
        assert_eq!(known.label("getinfo"), MethodLabel::Other);
        known.replace(&[
            "getinfo".into(),
            "invoice amount_msat label description".into(),
        ]);
        assert_eq!(known.label("getinfo").as_str(), "getinfo");
        assert_eq!(known.label("invoice").as_str(), "invoice");
        assert_eq!(known.label("invoice amount_msat").as_str(), "other");
        assert_eq!(known.label("x".repeat(1000).as_str()).as_str(), "other");
        known.replace(&["invoice".into()]);
        assert_eq!(known.label("getinfo").as_str(), "other");
    }
}
