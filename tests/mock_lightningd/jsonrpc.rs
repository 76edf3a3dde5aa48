//! JSON-RPC 2.0 pieces as lightningd writes them: error objects, response frames, `filter`.
//!
//! Every response lightningd writes on `lightning-rpc` is compact JSON with the members in the
//! order `jsonrpc`, `id`, `result`|`error`, followed by exactly `"\n\n"`
//! (fixtures/rpc/framing.json, every `rpc/*.json` `bytes_after_response`).

use serde_json::{json, Value};

/// JSON-RPC "Invalid Request" (framing.json: no id, no `jsonrpc`, invalid JSON).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Method not found" (unknown-method.json).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "Invalid params" (invoice-*.json, checkrune-d*.json).
pub const INVALID_PARAMS: i64 = -32602;
/// lightningd `PLUGIN_TERMINATED`. Not captured in the fixtures.
pub const PLUGIN_TERMINATED: i64 = -4;
/// lightningd `LIGHTNINGD` generic failure. Not captured in the fixtures.
pub const LIGHTNINGD: i64 = -1;
/// `INVOICE_LABEL_ALREADY_EXISTS` (invoice-duplicate-label.json).
pub const INVOICE_LABEL_ALREADY_EXISTS: i64 = 900;
/// `INVOICE_EXPIRED_DURING_WAIT`. Not captured in the fixtures.
pub const INVOICE_EXPIRED_DURING_WAIT: i64 = 903;
/// `INVOICE_WAIT_TIMED_OUT`. Not captured in the fixtures.
pub const INVOICE_WAIT_TIMED_OUT: i64 = 904;
/// `DATASTORE_DEL_DOES_NOT_EXIST` (deldatastore of a missing key; seen on a real node, not in
/// the fixtures).
pub const DATASTORE_DEL_DOES_NOT_EXIST: i64 = 1200;
/// `DATASTORE_DEL_WRONG_GENERATION` (seen on a real node, not in the fixtures).
pub const DATASTORE_DEL_WRONG_GENERATION: i64 = 1201;
/// `DATASTORE_UPDATE_ALREADY_EXISTS`. Not captured in the fixtures.
pub const DATASTORE_UPDATE_ALREADY_EXISTS: i64 = 1202;
/// `DATASTORE_UPDATE_DOES_NOT_EXIST`. Not captured in the fixtures.
pub const DATASTORE_UPDATE_DOES_NOT_EXIST: i64 = 1203;
/// `DATASTORE_UPDATE_WRONG_GENERATION`. Not captured in the fixtures.
pub const DATASTORE_UPDATE_WRONG_GENERATION: i64 = 1204;
/// `RUNE_NOT_AUTHORIZED` (checkrune-c-foreign-rune.json).
pub const RUNE_NOT_AUTHORIZED: i64 = 1501;
/// `RUNE_NOT_PERMITTED` (checkrune-b/f).
pub const RUNE_NOT_PERMITTED: i64 = 1502;
/// `RUNE_BLACKLISTED` "Not authorized: Blacklisted rune" (seen on a real node, not in the
/// fixtures).
pub const RUNE_BLACKLISTED: i64 = 1503;
/// `WAIT_TIMEOUT` of `waitblockheight` (framing.json `slow_then_fast_on_one_connection`).
pub const WAIT_TIMEOUT: i64 = 2000;

/// An error object as lightningd puts it in a response: `{"code", "message", ["data"]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError(Value);

impl RpcError {
    /// `{"code": code, "message": message}`.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError(json!({"code": code, "message": message.into()}))
    }

    /// An error object relayed as received (e.g. from the plugin).
    pub fn from_object(object: Value) -> RpcError {
        RpcError(object)
    }

    /// `-32602` "`<param>`: `<should>`: invalid token (see logs for details)": lightningd's
    /// bad-parameter wording (invoice-bad-param-type.json, checkrune-d-garbage.json).
    pub fn bad_param(param: &str, should: &str) -> RpcError {
        RpcError::new(
            INVALID_PARAMS,
            format!("{param}: {should}: invalid token (see logs for details)"),
        )
    }

    /// [`RpcError::bad_param`] as a node started with `--developer` words it: the offending
    /// token's JSON text instead of the pointer to the logs, e.g. `amount_msat: should be
    /// positive msat or 'any': invalid token '"lots"'` (seen on a real node).
    pub fn bad_param_token(param: &str, should: &str, token: &Value) -> RpcError {
        RpcError::new(
            INVALID_PARAMS,
            format!("{param}: {should}: invalid token '{token}'"),
        )
    }

    /// The error code, if the object has one.
    pub fn code(&self) -> Option<i64> {
        self.0["code"].as_i64()
    }

    /// The error object.
    pub fn object(&self) -> &Value {
        &self.0
    }
}

/// A response frame: `{"jsonrpc":"2.0","id":<id>,"result"|"error":...}` + `"\n\n"`.
/// `raw_id` is the request's id JSON text exactly as the client sent it.
pub fn response_frame(raw_id: &str, outcome: &Result<Value, RpcError>) -> Vec<u8> {
    let (member, body) = match outcome {
        Ok(result) => ("result", result),
        Err(error) => ("error", &error.0),
    };
    let mut frame = format!("{{\"jsonrpc\":\"2.0\",\"id\":{raw_id},\"{member}\":");
    frame.push_str(&body.to_string());
    frame.push_str("}\n\n");
    frame.into_bytes()
}

/// The reply to a request lightningd cannot attribute to an id (`"id":null`).
pub fn malformed_request_frame(message: &str) -> Vec<u8> {
    response_frame("null", &Err(RpcError::new(INVALID_REQUEST, message)))
}

/// Applies a request's top-level `filter` member to a result, like lightningd does
/// (getinfo-filter.json: only the fields marked `true` come back). An object filter keeps
/// the listed members (recursing into nested filters); a one-element array filter applies
/// its element to every item of an array.
pub fn apply_filter(value: &Value, filter: &Value) -> Value {
    match (value, filter) {
        (_, Value::Bool(true)) => value.clone(),
        (Value::Object(members), Value::Object(wanted)) => Value::Object(
            members
                .iter()
                .filter_map(|(name, member)| match wanted.get(name) {
                    None | Some(Value::Bool(false)) => None,
                    Some(sub) => Some((name.clone(), apply_filter(member, sub))),
                })
                .collect(),
        ),
        (Value::Array(items), Value::Array(element_filter)) if element_filter.len() == 1 => {
            Value::Array(
                items
                    .iter()
                    .map(|item| apply_filter(item, &element_filter[0]))
                    .collect(),
            )
        }
        _ => value.clone(),
    }
}
