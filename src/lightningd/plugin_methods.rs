//! The RPC methods this plugin adds to lightningd: `clnrest-register-path`, through which
//! other plugins publish REST routes, and `clnrest-list-paths`.

use crate::http::registered_routes::{list_result, route_from_params};
use crate::state::AppState;
use crate::webhooks::methods as webhook_methods;
use serde_json::{json, Value};

pub const REGISTER_PATH: &str = "clnrest-register-path";
pub const LIST_PATHS: &str = "clnrest-list-paths";
/// Our methods that change what the REST server routes, or mint runes: for plugins and
/// operators only, never called on behalf of a REST client (a rune allowing one of them would
/// otherwise grant any route, or any rune).
pub const FOR_PLUGINS_ONLY: &[&str] = &[
    REGISTER_PATH,
    super::connect::CONNECT,
    // Webhooks send the node's notifications anywhere: for the operator only.
    webhook_methods::ADD,
    webhook_methods::LIST,
    webhook_methods::REMOVE,
];

/// Who a [`FOR_PLUGINS_ONLY`] method is for, as the REST refusal names it.
pub fn intended_for(method: &str) -> &'static str {
    if method == super::connect::CONNECT || webhook_methods::is_webhook_method(method) {
        "lightning-cli"
    } else {
        "plugins"
    }
}
pub const REGISTER_PATH_USAGE: &str =
    "path rpc_method [http_method] [rune_required] [rune_restrictions]";

/// lightningd's code for invalid params, used for every refused registration.
const INVALID_PARAMS: i64 = -32602;

/// `clnrest-register-path`: validates and stores a route; `{}` on success.
pub async fn register_path(
    plugin: cln_plugin::Plugin<AppState>,
    params: Value,
) -> Result<Value, cln_plugin::Error> {
    let state = plugin.state();
    let registered = route_from_params(&params).and_then(|route| state.routes().register(route));
    match registered {
        Ok(()) => {
            state.api_document().routes_changed();
            Ok(json!({}))
        }
        // cln-plugin turns an error whose text is a JSON error object into that object.
        Err(refusal) => Err(cln_plugin::anyhow!(
            json!({"code": INVALID_PARAMS, "message": refusal.to_string()}).to_string()
        )),
    }
}

/// `clnrest-list-paths`: every registered route with its HTTP method and rune rules.
pub async fn list_paths(
    plugin: cln_plugin::Plugin<AppState>,
    _params: Value,
) -> Result<Value, cln_plugin::Error> {
    Ok(list_result(plugin.state().routes()))
}
