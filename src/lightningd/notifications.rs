//! lightningd's notifications, as delivered to our `"*"` subscription: each goes into the
//! [`Journal`](crate::stream::journal::Journal); `plugin_started`/`plugin_stopped` also refresh the API
//! description (and a stopped plugin's routes go), and `shutdown` stops the plugin.
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
    for (topic, payload) in &members {
        if let Err(e) = state.journal().append(topic, payload) {
            tracing::warn!("cannot record a {topic} notification: {e}");
        }
        if let Some(stopped) = plugin_methods_stopped(topic, payload) {
            let removed = state.routes().remove_methods(&stopped);
            if removed > 0 {
                tracing::info!("removed {removed} route(s) of a stopped plugin");
                state.api_document().routes_changed();
            }
        }
        if topic == "plugin_started" || topic == "plugin_stopped" {
            tokio::spawn(describe_api(state.clone()));
        }
        if topic == "shutdown" {
            tracing::info!("lightningd is shutting down: stopping the REST server");
            state.begin_shutdown();
        }
    }
}

/// The methods of a stopped plugin, from a `plugin_stopped` payload.
fn plugin_methods_stopped(topic: &str, payload: &Value) -> Option<Vec<String>> {
    if topic != "plugin_stopped" {
        return None;
    }
    let methods = payload.get("methods")?.as_array()?;
    Some(
        methods
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}

/// Rebuilds the OpenAPI document from lightningd's `help` (at startup and when plugins come
/// and go, since they add and remove commands).
pub async fn describe_api(state: AppState) {
    crate::http::openapi::refresh_from_help(state.rpc(), state.api_document()).await;
}
