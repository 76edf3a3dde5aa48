//! The RPC methods the mock implements, with their parameter lists, and the dispatch of a
//! call: a method the plugin registered goes to the plugin, one of these is run here, any
//! other is `-32601` "Unknown command '<method>'" (unknown-method.json,
//! listclnrest-notifications.json).
//!
//! Parameter lists are in `help`'s order (help.json usage strings; the self-test checks them),
//! which is also how positional params are mapped.

use super::datastore::MODES;
use super::fixtures::fixtures;
use super::invoices::{InvoiceQuery, NewInvoice, DEFAULT_EXPIRY_SECS};
use super::jsonrpc::{apply_filter, RpcError, INVALID_PARAMS, METHOD_NOT_FOUND, WAIT_TIMEOUT};
use super::node::{lock, Node};
use super::params::{
    any, boolean, hex32, optional, parse_params, required, string, string_or_number, unsigned,
    unsigned32, value_as_u64, ParamSpec, Params, RawParams,
};
use super::runes::{
    parse_restrictions_param, CheckRequest, Rune, SHOULD_BE_BASE64, WARNING_UNRESTRICTED_RUNE,
};
use serde_json::{json, Value};
use std::time::Duration;

/// A method implemented here.
pub struct MethodSpec {
    pub name: &'static str,
    pub params: &'static [ParamSpec],
    /// Whether lightningd writes its database for it (serialized by the
    /// `serialize_writes` fault).
    pub writes_database: bool,
}

const fn method(
    name: &'static str,
    params: &'static [ParamSpec],
    writes_database: bool,
) -> MethodSpec {
    MethodSpec {
        name,
        params,
        writes_database,
    }
}

/// Every method the mock implements.
pub const METHODS: &[MethodSpec] = &[
    method("getinfo", &[], false),
    method("help", &[optional("command", string)], false),
    method(
        "createrune",
        &[
            optional("rune", rune),
            optional("restrictions", restrictions),
        ],
        true,
    ),
    method(
        "checkrune",
        &[
            required("rune", rune),
            optional("nodeid", node_id),
            optional("method", string),
            optional("params", any),
        ],
        true,
    ),
    method("showrunes", &[optional("rune", rune)], false),
    method(
        "blacklistrune",
        &[
            optional("start", unsigned),
            optional("end", unsigned),
            optional("relist", boolean),
        ],
        false,
    ),
    method(
        "invoice",
        &[
            required("amount_msat", msat_or_any),
            required("label", string_or_number),
            required("description", string),
            optional("expiry", unsigned),
            optional("fallbacks", any),
            optional("preimage", hex32),
            optional("exposeprivatechannels", any),
            optional("cltv", unsigned32),
            optional("deschashonly", boolean),
            optional("dev-routes", any),
        ],
        true,
    ),
    method(
        "listinvoices",
        &[
            optional("label", string_or_number),
            optional("invstring", string),
            optional("payment_hash", hex32),
            optional("offer_id", string),
            optional("index", index),
            optional("start", unsigned),
            optional("limit", unsigned32),
        ],
        false,
    ),
    method(
        "datastore",
        &[
            required("key", datastore_key),
            optional("string", string),
            optional("hex", hex),
            optional("mode", mode),
            optional("generation", unsigned),
        ],
        true,
    ),
    method(
        "deldatastore",
        &[
            required("key", datastore_key),
            optional("generation", unsigned),
        ],
        true,
    ),
    method("listdatastore", &[optional("key", datastore_key)], false),
    method(
        "waitanyinvoice",
        &[
            optional("lastpay_index", unsigned),
            optional("timeout", unsigned),
        ],
        false,
    ),
    method("waitinvoice", &[required("label", string_or_number)], false),
    method(
        "waitblockheight",
        &[
            required("blockheight", unsigned32),
            optional("timeout", unsigned32),
        ],
        false,
    ),
];

/// The spec of an implemented method.
pub fn method_spec(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// Whether a call of `method` writes lightningd's database.
pub fn writes_database(method: &str) -> bool {
    method_spec(method).is_some_and(|m| m.writes_database)
}

/// One call as the socket server hands it over.
pub struct Call<'a> {
    pub method: &'a str,
    /// The request's `id` as sent.
    pub id: &'a Value,
    pub params: &'a RawParams,
    /// The `params` JSON text as sent (passed through to the plugin).
    pub raw_params: Option<&'a str>,
    /// The request's top-level `filter`, if any.
    pub filter: Option<&'a Value>,
}

/// Runs a call: plugin method, implemented method, or unknown.
pub async fn call(node: &Node, call: Call<'_>) -> Result<Value, RpcError> {
    if let Some(plugin) = node.plugin_serving(call.method) {
        // Filters on plugin methods are not applied by the mock.
        return plugin.forward(call.id, call.method, call.raw_params).await;
    }
    let Some(spec) = method_spec(call.method) else {
        return Err(unknown_command(call.method));
    };
    let params = parse_params(spec.params, call.params, node.developer)?;
    let result = run(node, spec.name, &params).await?;
    Ok(match call.filter {
        Some(filter) => apply_filter(&result, filter),
        None => result,
    })
}

/// `-32601` "Unknown command '<method>'" (unknown-method.json).
pub fn unknown_command(method: &str) -> RpcError {
    RpcError::new(METHOD_NOT_FOUND, format!("Unknown command '{method}'"))
}

async fn run(node: &Node, method: &str, params: &Params) -> Result<Value, RpcError> {
    match method {
        "getinfo" => Ok(getinfo(node)),
        "help" => help(node, params),
        "createrune" => Ok(createrune(node, params)),
        "checkrune" => checkrune(node, params),
        "showrunes" => Ok(showrunes(node, params)),
        "blacklistrune" => blacklistrune(node, params),
        "invoice" => invoice(node, params).await,
        "listinvoices" => Ok(listinvoices(node, params)),
        "datastore" => datastore(node, params),
        "deldatastore" => deldatastore(node, params),
        "listdatastore" => Ok(listdatastore(node, params)),
        "waitanyinvoice" => {
            let lastpay_index = params.u64("lastpay_index").unwrap_or(0);
            let timeout = params.u64("timeout").map(Duration::from_secs);
            node.invoices.wait_any(lastpay_index, timeout).await
        }
        "waitinvoice" => node.invoices.wait(&label_text(params.get("label"))).await,
        "waitblockheight" => waitblockheight(node, params).await,
        other => Err(unknown_command(other)),
    }
}

/// getinfo.json's result with this node's `lightning-dir`.
fn getinfo(node: &Node) -> Value {
    let mut result = fixtures().getinfo_result.clone();
    result["lightning-dir"] = json!(node.lightning_dir.to_string_lossy());
    result["blockheight"] = json!(node.blockheight);
    result
}

/// help.json's result plus `"<name> <usage>"` for each plugin method, sorted like
/// lightningd's list; with `command`, only that entry (not captured in the fixtures).
fn help(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let mut result = fixtures().help_result.clone();
    let mut entries: Vec<Value> = result["help"].as_array().cloned().unwrap_or_default();
    if let Some(manifest) = node.plugin().as_ref().and_then(|p| p.manifest().cloned()) {
        for method in manifest.rpcmethods {
            if !entries.iter().any(|e| command_name(e) == method.name) {
                entries.push(json!({"command": format!("{} {}", method.name, method.usage)}));
            }
        }
    }
    entries.sort_by(|a, b| command_name(a).cmp(command_name(b)));
    if let Some(command) = params.str("command") {
        entries.retain(|e| command_name(e) == command);
        if entries.is_empty() {
            // Not captured in the fixtures.
            return Err(unknown_command(command));
        }
    }
    result["help"] = Value::Array(entries);
    Ok(result)
}

fn command_name(entry: &Value) -> &str {
    entry["command"]
        .as_str()
        .and_then(|c| c.split(' ').next())
        .unwrap_or_default()
}

fn rune(value: &Value) -> Result<(), &'static str> {
    value
        .as_str()
        .and_then(Rune::decode)
        .map(drop)
        .ok_or(SHOULD_BE_BASE64)
}

/// A node id: 33-byte compressed public key in hex. Not captured in the fixtures.
fn node_id(value: &Value) -> Result<(), &'static str> {
    match value.as_str() {
        Some(id)
            if id.len() == 66
                && (id.starts_with("02") || id.starts_with("03"))
                && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(())
        }
        _ => Err("should be a node id"),
    }
}

/// Not captured in the fixtures.
fn restrictions(value: &Value) -> Result<(), &'static str> {
    parse_restrictions_param(value)
        .map(drop)
        .ok_or("not a valid restriction (should be array)")
}

fn decoded_rune(params: &Params) -> Option<Rune> {
    params.str("rune").and_then(Rune::decode)
}

/// createrune-*.json: `{"rune","unique_id"}` (+ the warning when unrestricted).
fn createrune(node: &Node, params: &Params) -> Value {
    let base = decoded_rune(params);
    let extra = params
        .get("restrictions")
        .and_then(parse_restrictions_param)
        .unwrap_or_default();
    let created = lock(&node.runes).create(base.as_ref(), extra, &node.random);
    let mut result = json!({"rune": created.text, "unique_id": created.unique_id});
    if created.unrestricted {
        result["warning_unrestricted_rune"] = json!(WARNING_UNRESTRICTED_RUNE);
    }
    result
}

/// checkrune-*.json: `{"valid":true}` or the 1501/1502 errors.
fn checkrune(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let Some(rune) = decoded_rune(params) else {
        return Err(RpcError::bad_param("rune", SHOULD_BE_BASE64));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let request = CheckRequest {
        method: params.str("method"),
        nodeid: params.str("nodeid"),
        params: params.get("params"),
        now: now.as_secs() as i64,
    };
    lock(&node.runes).check(&rune, &request, now.as_secs_f64())?;
    Ok(json!({"valid": true}))
}

/// showrunes-*.json.
fn showrunes(node: &Node, params: &Params) -> Value {
    let runes = lock(&node.runes);
    match (params.str("rune"), decoded_rune(params)) {
        (Some(text), Some(rune)) => runes.show(Some((text, &rune))),
        _ => runes.show(None),
    }
}

/// `{"blacklist":[{"start","end"}...]}`. Not captured in the fixtures.
fn blacklistrune(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let range = match (params.u64("start"), params.u64("end")) {
        (None, None) => None,
        (Some(start), None) => Some((start, start)),
        (Some(start), Some(end)) if end >= start => Some((start, end)),
        // Not captured in the fixtures.
        (None, Some(_)) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "Can not specify end without start",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(RpcError::bad_param(
                "end",
                "must be greater than or equal to start",
            ))
        }
    };
    let relist = params.bool("relist").unwrap_or(false);
    Ok(lock(&node.runes).blacklist(range, relist))
}

/// `amount_msat`: a positive msat amount (number, or string of digits with an optional
/// `msat`/`sat` suffix) or `"any"`. Text from invoice-bad-param-type.json.
fn msat_or_any(value: &Value) -> Result<(), &'static str> {
    parse_msat(value)
        .map(drop)
        .ok_or("should be positive msat or 'any'")
}

/// `Some(None)` for "any", `Some(Some(msat))` for an amount.
fn parse_msat(value: &Value) -> Option<Option<u64>> {
    if value.as_str() == Some("any") {
        return Some(None);
    }
    let msat = match value {
        Value::Number(_) => value_as_u64(value)?,
        Value::String(text) => {
            let (digits, factor) = match text.strip_suffix("msat") {
                Some(digits) => (digits, 1),
                None => match text.strip_suffix("sat") {
                    Some(digits) => (digits, 1000),
                    None => (text.as_str(), 1),
                },
            };
            value_as_u64(&json!(digits))?.checked_mul(factor)?
        }
        _ => return None,
    };
    (msat > 0).then_some(Some(msat))
}

/// A label as lightningd keeps it: a string, or a number's text.
fn label_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// invoice.json; sends `invoice_creation` to the plugin if it subscribed.
async fn invoice(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let new = NewInvoice {
        label: label_text(params.get("label")),
        amount_msat: params.get("amount_msat").and_then(parse_msat).flatten(),
        description: params.str("description").unwrap_or_default().to_string(),
        expiry_secs: params.u64("expiry").unwrap_or(DEFAULT_EXPIRY_SECS),
        preimage: params.str("preimage").map(str::to_string),
    };
    let (result, creation) = node.invoices.create(new, &node.random)?;
    node.notify_plugin("invoice_creation", creation).await;
    Ok(result)
}

/// Not captured in the fixtures.
fn index(value: &Value) -> Result<(), &'static str> {
    match value.as_str() {
        Some("created" | "updated") => Ok(()),
        _ => Err("should be 'created' or 'updated'"),
    }
}

/// listinvoices.json.
fn listinvoices(node: &Node, params: &Params) -> Value {
    let query = InvoiceQuery {
        label: params.get("label").map(|l| label_text(Some(l))),
        invstring: params.str("invstring").map(str::to_string),
        payment_hash: params.str("payment_hash").map(str::to_string),
        offer_id: params.str("offer_id").map(str::to_string),
        index: params.str("index").map(str::to_string),
        start: params.u64("start"),
        limit: params.u64("limit"),
    };
    node.invoices.list(&query)
}

/// A datastore key: a string or a non-empty array of strings. Not captured in the fixtures.
fn datastore_key(value: &Value) -> Result<(), &'static str> {
    key_path(value)
        .map(drop)
        .ok_or("should be an array of strings")
}

fn key_path(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(key) => Some(vec![key.clone()]),
        Value::Array(parts) if !parts.is_empty() => parts
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// Not captured in the fixtures.
fn hex(value: &Value) -> Result<(), &'static str> {
    value
        .as_str()
        .and_then(decode_hex)
        .map(drop)
        .ok_or("should be a hex string")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Not captured in the fixtures.
fn mode(value: &Value) -> Result<(), &'static str> {
    match value.as_str() {
        Some(mode) if MODES.contains(&mode) => Ok(()),
        _ => Err("should be one of must-create, must-replace, create-or-replace, must-append, create-or-append"),
    }
}

fn datastore(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let key = params.get("key").and_then(key_path).unwrap_or_default();
    let data = match (params.str("string"), params.str("hex")) {
        // Not captured in the fixtures.
        (Some(_), Some(_)) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "Cannot have both hex and string",
            ))
        }
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(hex)) => decode_hex(hex).unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    let mode = params.str("mode").unwrap_or("must-create");
    lock(&node.datastore).store(key, data, mode, params.u64("generation"))
}

/// The entry removed, as it was (seen on a real node, not in the fixtures).
fn deldatastore(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let key = params.get("key").and_then(key_path).unwrap_or_default();
    lock(&node.datastore).delete(&key, params.u64("generation"))
}

fn listdatastore(node: &Node, params: &Params) -> Value {
    let prefix = params.get("key").and_then(key_path).unwrap_or_default();
    lock(&node.datastore).list(&prefix)
}

/// `{"blockheight":N}` once reached; the node never gets a block, so a higher one times out
/// with `2000` "Timed out." (framing.json). Default timeout 60 s.
async fn waitblockheight(node: &Node, params: &Params) -> Result<Value, RpcError> {
    let wanted = params.u64("blockheight").unwrap_or(0);
    if wanted <= node.blockheight {
        return Ok(json!({"blockheight": node.blockheight}));
    }
    let timeout = params.u64("timeout").unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(timeout)).await;
    Err(RpcError::new(WAIT_TIMEOUT, "Timed out."))
}
