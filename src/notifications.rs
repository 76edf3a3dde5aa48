//! lightningd's notifications, as delivered to our `"*"` subscription.
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
    if params.get("shutdown").is_some() {
        tracing::info!("lightningd is shutting down: stopping the REST server");
        plugin.state().begin_shutdown();
    }
    ready(Ok(()))
}
