//! lightningd's notifications, as delivered to our `"*"` subscription: each goes into the
//! [`Journal`](crate::journal::Journal), and `shutdown` also stops the plugin.
//!
//! The handler runs synchronously inside cln-plugin's dispatch loop (cln-plugin spawns a task
//! per notification, which would lose their order), so it must never wait.

use crate::state::AppState;
use serde_json::Value;
use std::future::{ready, Ready};

/// Handles one notification; `params` is `{"<topic>": {...}}`.
pub fn on_notification(
    plugin: cln_plugin::Plugin<AppState>,
    params: Value,
) -> Ready<Result<(), cln_plugin::Error>> {
    record(plugin.state(), params);
    ready(Ok(()))
}

/// Journals the notification and reacts to `shutdown` (after clients were given it).
pub fn record(state: &AppState, params: Value) {
    let Value::Object(members) = params else {
        tracing::warn!("ignoring a notification whose params are not an object");
        return;
    };
    for (topic, payload) in members {
        let shutdown = topic == "shutdown";
        match serde_json::value::to_raw_value(&payload) {
            Ok(payload) => {
                state.journal().append(topic, payload);
            }
            Err(e) => tracing::warn!("cannot record a {topic} notification: {e}"),
        }
        if shutdown {
            tracing::info!("lightningd is shutting down: stopping the REST server");
            state.begin_shutdown();
        }
    }
}
