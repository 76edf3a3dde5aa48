//! The plugin handshake as lightningd runs it: the `getmanifest` request, the checks made on
//! the manifest, and the `init` request built from it.
//!
//! - getmanifest.json / plugin-stdin-framing.json: the exact `getmanifest` bytes.
//! - init.json, init-defaults.json: `options` holds the options that are set or have a
//!   default, in manifest order (unset without a default, and unset flags, are absent);
//!   ints are JSON numbers, bools JSON bools, a set flag `true`, multi options JSON arrays.
//!   `configuration` is lightning-dir (the network dir), `rpc-file: "lightning-rpc"`,
//!   `startup: true`, `network: "regtest"` and the fixture's `feature_set`.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::HashSet;

/// Id of the `getmanifest` request (getmanifest.json).
pub const GETMANIFEST_ID: &str = "cln:getmanifest#20";

/// Id of the `init` request (init.json).
pub const INIT_ID: &str = "cln:init#44";

/// The `getmanifest` request, byte for byte as lightningd writes it (before `"\n\n"`).
pub const GETMANIFEST_REQUEST: &str = r#"{"jsonrpc":"2.0","id":"cln:getmanifest#20","method":"getmanifest","params":{"allow-deprecated-apis":true}}"#;

/// Option types lightningd accepts in a manifest. `string-conceal` is listed among the
/// types init.json covers (fixtures README); it is passed as a plain string.
pub const OPTION_TYPES: [&str; 5] = ["string", "int", "bool", "flag", "string-conceal"];

/// The type of a plugin option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionType {
    String,
    Int,
    Bool,
    Flag,
}

/// One entry of the manifest's `options`.
#[derive(Debug, Clone)]
pub struct ManifestOption {
    pub name: String,
    pub kind: OptionType,
    /// The default as init would pass it (already converted), if any.
    pub default: Option<Value>,
    pub multi: bool,
}

/// One entry of the manifest's `rpcmethods`.
#[derive(Debug, Clone)]
pub struct PluginMethod {
    pub name: String,
    pub usage: String,
}

/// A manifest that passed lightningd's checks.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The `result` object as the plugin sent it.
    pub raw: Value,
    pub options: Vec<ManifestOption>,
    pub rpcmethods: Vec<PluginMethod>,
    pub subscriptions: Vec<String>,
    /// Topics the plugin declared it may send (`notifications[].method`).
    pub notifications: Vec<String>,
    pub dynamic: bool,
}

fn require<'a>(object: &'a Value, member: &str, what: &str) -> Result<&'a Value, String> {
    object
        .get(member)
        .ok_or_else(|| format!("{what} has no `{member}`: {object}"))
}

fn optional_array<'a>(result: &'a Value, member: &str) -> Result<&'a [Value], String> {
    match result.get(member) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!("manifest `{member}` is not an array: {other}")),
    }
}

impl Manifest {
    /// Checks a `getmanifest` reply the way lightningd would. `builtin_commands` are the
    /// commands lightningd already has (a plugin may not register one of them again).
    pub fn from_reply(
        reply: &Value,
        builtin_commands: &HashSet<String>,
    ) -> Result<Manifest, String> {
        if let Some(error) = reply.get("error") {
            return Err(format!(
                "plugin answered getmanifest with an error: {error}"
            ));
        }
        let result = require(reply, "result", "getmanifest reply")?;
        if !result.is_object() {
            return Err(format!("getmanifest `result` is not an object: {result}"));
        }
        let Value::Array(raw_options) = require(result, "options", "manifest")? else {
            return Err("manifest `options` is not an array".to_string());
        };
        let mut options = Vec::new();
        for raw in raw_options {
            let option = check_option(raw)?;
            if options
                .iter()
                .any(|o: &ManifestOption| o.name == option.name)
            {
                return Err(format!("manifest declares option `{}` twice", option.name));
            }
            options.push(option);
        }
        let Value::Array(raw_methods) = require(result, "rpcmethods", "manifest")? else {
            return Err("manifest `rpcmethods` is not an array".to_string());
        };
        let mut rpcmethods: Vec<PluginMethod> = Vec::new();
        for raw in raw_methods {
            let name = match raw.get("name") {
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                _ => return Err(format!("rpcmethod without a `name`: {raw}")),
            };
            let usage = match raw.get("usage") {
                None => String::new(),
                Some(Value::String(usage)) => usage.clone(),
                Some(other) => {
                    return Err(format!("rpcmethod `{name}` usage is not a string: {other}"))
                }
            };
            if let Some(description) = raw.get("description") {
                if !description.is_string() {
                    return Err(format!("rpcmethod `{name}` description is not a string"));
                }
            }
            if builtin_commands.contains(&name) || rpcmethods.iter().any(|m| m.name == name) {
                return Err(format!(
                    "rpcmethod `{name}` is already registered (lightningd refuses the plugin)"
                ));
            }
            rpcmethods.push(PluginMethod { name, usage });
        }
        let Value::Array(raw_subscriptions) = require(result, "subscriptions", "manifest")? else {
            return Err("manifest `subscriptions` is not an array".to_string());
        };
        let subscriptions = raw_subscriptions
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                format!("manifest `subscriptions` must be strings: {raw_subscriptions:?}")
            })?;
        let Value::Bool(dynamic) = require(result, "dynamic", "manifest")? else {
            return Err("manifest `dynamic` is not a bool".to_string());
        };
        for hook in optional_array(result, "hooks")? {
            if !hook.get("name").is_some_and(Value::is_string) {
                return Err(format!("manifest hook without a `name`: {hook}"));
            }
        }
        let notifications = optional_array(result, "notifications")?
            .iter()
            .map(|n| n.get("method").and_then(Value::as_str).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("manifest `notifications` entries need a string `method`")?;
        for member in ["nonnumericids", "cancheckpoint"] {
            if result.get(member).is_some_and(|v| !v.is_boolean()) {
                return Err(format!("manifest `{member}` is not a bool"));
            }
        }
        if result.get("featurebits").is_some_and(|v| !v.is_object()) {
            return Err("manifest `featurebits` is not an object".to_string());
        }
        if optional_array(result, "custommessages")?
            .iter()
            .any(|m| !m.is_u64())
        {
            return Err("manifest `custommessages` must be message type numbers".to_string());
        }
        Ok(Manifest {
            raw: result.clone(),
            options,
            rpcmethods,
            subscriptions,
            notifications,
            dynamic: *dynamic,
        })
    }

    /// init's `options`: each option in manifest order with the value `given` for it
    /// (converted to its type), else its default when `include_defaults`, else absent.
    pub fn init_options(
        &self,
        given: &Value,
        include_defaults: bool,
    ) -> Result<OrderedObject, String> {
        let given = match given {
            Value::Null => serde_json::Map::new(),
            Value::Object(members) => members.clone(),
            other => return Err(format!("plugin options must be a JSON object, not {other}")),
        };
        if let Some(unknown) = given
            .keys()
            .find(|k| !self.options.iter().any(|o| &o.name == *k))
        {
            return Err(format!(
                "option `{unknown}` is not in the plugin's manifest (lightningd would not start)"
            ));
        }
        let mut options = Vec::new();
        for option in &self.options {
            let value = match given.get(&option.name) {
                Some(value) => convert_option(option.kind, option.multi, value)
                    .map_err(|e| format!("option `{}`: {e}", option.name))?,
                None if include_defaults => option.default.clone(),
                None => None,
            };
            if let Some(value) = value {
                options.push((option.name.clone(), value));
            }
        }
        Ok(OrderedObject(options))
    }

    /// Whether lightningd sends `topic` to this plugin: subscribed by name, or to `"*"` for
    /// every topic but `log` (fixtures README, wildcard-summary.json).
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s == topic || (s == "*" && topic != "log"))
    }
}

fn check_option(raw: &Value) -> Result<ManifestOption, String> {
    let name = match raw.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err(format!("option without a `name`: {raw}")),
    };
    let kind = match raw.get("type").and_then(Value::as_str) {
        Some("string" | "string-conceal") => OptionType::String,
        Some("int") => OptionType::Int,
        Some("bool") => OptionType::Bool,
        Some("flag") => OptionType::Flag,
        _ => {
            return Err(format!(
                "option `{name}` has type {} (lightningd accepts only {OPTION_TYPES:?})",
                raw.get("type").unwrap_or(&Value::Null)
            ))
        }
    };
    if !raw.get("description").is_some_and(Value::is_string) {
        return Err(format!("option `{name}` has no string `description`"));
    }
    let multi = match raw.get("multi") {
        None => false,
        Some(Value::Bool(multi)) => *multi,
        Some(other) => return Err(format!("option `{name}` multi is not a bool: {other}")),
    };
    if multi && matches!(kind, OptionType::Bool | OptionType::Flag) {
        return Err(format!(
            "option `{name}`: only string and int options can be multi"
        ));
    }
    for member in ["dynamic", "deprecated"] {
        if raw.get(member).is_some_and(|v| !v.is_boolean()) {
            return Err(format!("option `{name}` {member} is not a bool"));
        }
    }
    let default = match raw.get("default") {
        None | Some(Value::Null) => None,
        // A flag is absent from init unless set (init-defaults.json), whatever its default.
        Some(_) if kind == OptionType::Flag => None,
        Some(default) => convert_option(kind, multi, default)
            .map_err(|e| format!("option `{name}` default: {e}"))?,
    };
    Ok(ManifestOption {
        name,
        kind,
        default,
        multi,
    })
}

/// An option value as init passes it; `None` for an unset flag.
fn convert_option(kind: OptionType, multi: bool, value: &Value) -> Result<Option<Value>, String> {
    if multi {
        let items = match value {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        let converted = items
            .iter()
            .map(|item| convert_scalar(kind, item)?.ok_or_else(|| format!("bad value {item}")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some(Value::Array(converted)));
    }
    convert_scalar(kind, value)
}

fn convert_scalar(kind: OptionType, value: &Value) -> Result<Option<Value>, String> {
    let bad = || Err(format!("{value} is not a valid {kind:?} value"));
    Ok(Some(match (kind, value) {
        (OptionType::String, Value::String(_)) => value.clone(),
        (OptionType::String, Value::Number(n)) => Value::String(n.to_string()),
        (OptionType::String, Value::Bool(b)) => Value::String(b.to_string()),
        (OptionType::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => value.clone(),
        (OptionType::Int, Value::String(text)) => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return bad(),
        },
        (OptionType::Bool, Value::Bool(_)) => value.clone(),
        (OptionType::Bool, Value::String(text)) if text == "true" || text == "false" => {
            Value::Bool(text == "true")
        }
        (OptionType::Flag, Value::Bool(true)) => Value::Bool(true),
        (OptionType::Flag, Value::Bool(false)) => return Ok(None),
        _ => return bad(),
    }))
}

/// A JSON object whose members serialize in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedObject(pub Vec<(String, Value)>);

impl Serialize for OrderedObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// `feature_set` in the member order lightningd writes it (plugin-stdin-framing.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureSet {
    init: String,
    node: String,
    channel: String,
    invoice: String,
    bolt12_offer: String,
    bolt12_invreq: String,
    bolt12_invoice: String,
    channel_type: String,
}

#[derive(Serialize)]
struct InitRequest<'a> {
    jsonrpc: &'static str,
    id: &'static str,
    method: &'static str,
    params: InitParams<'a>,
}

#[derive(Serialize)]
struct InitParams<'a> {
    options: &'a OrderedObject,
    configuration: Configuration<'a>,
}

#[derive(Serialize)]
struct Configuration<'a> {
    #[serde(rename = "lightning-dir")]
    lightning_dir: &'a str,
    #[serde(rename = "rpc-file")]
    rpc_file: &'static str,
    startup: bool,
    network: &'static str,
    feature_set: FeatureSet,
}

/// The `init` request (before `"\n\n"`), member order as in plugin-stdin-framing.json.
pub fn init_request(options: &OrderedObject, lightning_dir: &str, feature_set: &Value) -> String {
    let feature_set: FeatureSet = serde_json::from_value(feature_set.clone())
        .unwrap_or_else(|e| panic!("fixture feature_set has an unexpected shape: {e}"));
    let request = InitRequest {
        jsonrpc: "2.0",
        id: INIT_ID,
        method: "init",
        params: InitParams {
            options,
            configuration: Configuration {
                lightning_dir,
                rpc_file: "lightning-rpc",
                startup: true,
                network: "regtest",
                feature_set,
            },
        },
    };
    serde_json::to_string(&request).unwrap_or_else(|e| panic!("cannot serialize init: {e}"))
}
