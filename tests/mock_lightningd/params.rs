//! lightningd's parameter handling: named (object) or positional (array) `params` checked
//! against a method's parameter list.
//!
//! Like lightningd's `param()`, members are handled in the order they were sent: an unknown
//! name or a value of the wrong type fails at once, and missing required parameters are
//! reported after all given ones were accepted, the first missing one in list order
//! (invoice-missing-params.json, invoice-unknown-param.json, invoice-bad-param-type.json).
//! A positional `null` counts as not given.

use super::jsonrpc::{RpcError, INVALID_PARAMS};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// Checks one parameter value; `Err` holds lightningd's "should be ..." wording.
pub type Check = fn(&Value) -> Result<(), &'static str>;

/// One entry of a method's parameter list (the order of `help`'s usage string).
pub struct ParamSpec {
    pub name: &'static str,
    pub required: bool,
    pub check: Check,
}

/// A required parameter.
pub const fn required(name: &'static str, check: Check) -> ParamSpec {
    ParamSpec {
        name,
        required: true,
        check,
    }
}

/// An optional parameter.
pub const fn optional(name: &'static str, check: Check) -> ParamSpec {
    ParamSpec {
        name,
        required: false,
        check,
    }
}

/// A request's `params` member as sent, object members kept in their order.
#[derive(Debug, Clone)]
pub enum RawParams {
    Absent,
    Object(Vec<(String, Value)>),
    Array(Vec<Value>),
    /// Neither object nor array (refused before any method runs).
    Other(Value),
}

impl RawParams {
    /// Parses the raw `params` text of a request.
    pub fn parse(raw: Option<&RawValue>) -> Result<RawParams, serde_json::Error> {
        let Some(raw) = raw else {
            return Ok(RawParams::Absent);
        };
        let text = raw.get();
        match text.trim_start().as_bytes().first() {
            Some(b'{') => Ok(RawParams::Object(
                serde_json::from_str::<OrderedMembers>(text)?.0,
            )),
            Some(b'[') => Ok(RawParams::Array(serde_json::from_str(text)?)),
            _ => Ok(RawParams::Other(serde_json::from_str(text)?)),
        }
    }

    /// The params as a plain JSON value (`null` when absent).
    pub fn to_value(&self) -> Value {
        match self {
            RawParams::Absent => Value::Null,
            RawParams::Object(members) => {
                Value::Object(members.iter().cloned().collect::<Map<_, _>>())
            }
            RawParams::Array(items) => Value::Array(items.clone()),
            RawParams::Other(value) => value.clone(),
        }
    }
}

/// Object members in the order they appear in the text.
struct OrderedMembers(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = OrderedMembers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(OrderedMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Parameters accepted for a method, indexed by its parameter list.
pub struct Params {
    specs: &'static [ParamSpec],
    values: Vec<Option<Value>>,
}

impl Params {
    /// The value given for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let index = self.specs.iter().position(|spec| spec.name == name)?;
        self.values[index].as_ref()
    }

    /// A string parameter.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// An unsigned integer parameter (lightningd also reads numbers written as strings).
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(value_as_u64)
    }

    /// A boolean parameter (lightningd also reads `"true"`/`"false"`).
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(value_as_bool)
    }
}

/// Checks `raw` against `specs` the way lightningd's `param()` does. `developer`: the node
/// runs with `--developer`, which words a bad value with the value itself
/// ([`RpcError::bad_param_token`]) instead of "(see logs for details)".
pub fn parse_params(
    specs: &'static [ParamSpec],
    raw: &RawParams,
    developer: bool,
) -> Result<Params, RpcError> {
    let bad_param = |name: &str, should: &str, value: &Value| {
        if developer {
            RpcError::bad_param_token(name, should, value)
        } else {
            RpcError::bad_param(name, should)
        }
    };
    let mut values: Vec<Option<Value>> = vec![None; specs.len()];
    match raw {
        RawParams::Absent => {}
        RawParams::Object(members) => {
            for (name, value) in members {
                let Some(index) = specs.iter().position(|spec| spec.name == name) else {
                    // Exact text from invoice-unknown-param.json.
                    return Err(RpcError::new(
                        INVALID_PARAMS,
                        format!(
                            "unknown parameter: {name}, this may be caused by a failure to \
                             autodetect key=value-style parameters. Please try using the -k \
                             flag and explicit key=value pairs of parameters."
                        ),
                    ));
                };
                if values[index].is_some() {
                    // Not captured in the fixtures.
                    return Err(RpcError::new(
                        INVALID_PARAMS,
                        format!("duplicate json names: {name}"),
                    ));
                }
                (specs[index].check)(value).map_err(|should| bad_param(name, should, value))?;
                values[index] = Some(value.clone());
            }
        }
        RawParams::Array(items) => {
            if items.len() > specs.len() {
                // Not captured in the fixtures.
                return Err(RpcError::new(
                    INVALID_PARAMS,
                    format!(
                        "too many parameters: got {}, expected {}",
                        items.len(),
                        specs.len()
                    ),
                ));
            }
            for (index, value) in items.iter().enumerate() {
                if value.is_null() {
                    continue;
                }
                (specs[index].check)(value)
                    .map_err(|should| bad_param(specs[index].name, should, value))?;
                values[index] = Some(value.clone());
            }
        }
        RawParams::Other(_) => {
            // Not captured in the fixtures.
            return Err(RpcError::new(
                INVALID_PARAMS,
                "Expected array or object for params",
            ));
        }
    }
    if let Some(missing) = specs
        .iter()
        .zip(&values)
        .find(|(spec, value)| spec.required && value.is_none())
    {
        // Exact text from invoice-missing-params.json.
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("missing required parameter: {}", missing.0.name),
        ));
    }
    Ok(Params { specs, values })
}

/// A JSON number or numeric string as `u64`.
pub fn value_as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok()
        }
        _ => None,
    }
}

/// A JSON bool or `"true"`/`"false"` string.
pub fn value_as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text == "true" => Some(true),
        Value::String(text) if text == "false" => Some(false),
        _ => None,
    }
}

// The "should be ..." texts below follow lightningd's wording but were not captured in the
// fixtures (only "should be positive msat or 'any'" and "should be base64 string" were).

/// Any JSON value.
pub fn any(_: &Value) -> Result<(), &'static str> {
    Ok(())
}

/// A JSON string. Not captured in the fixtures.
pub fn string(value: &Value) -> Result<(), &'static str> {
    value.as_str().map(drop).ok_or("should be a string")
}

/// An unsigned 64-bit integer. Not captured in the fixtures.
pub fn unsigned(value: &Value) -> Result<(), &'static str> {
    value_as_u64(value)
        .map(drop)
        .ok_or("should be an unsigned 64 bit integer")
}

/// A 32-bit integer. Not captured in the fixtures.
pub fn unsigned32(value: &Value) -> Result<(), &'static str> {
    value_as_u64(value)
        .filter(|n| *n <= u64::from(u32::MAX))
        .map(drop)
        .ok_or("should be an integer")
}

/// A boolean. Not captured in the fixtures.
pub fn boolean(value: &Value) -> Result<(), &'static str> {
    value_as_bool(value)
        .map(drop)
        .ok_or("should be 'true' or 'false'")
}

/// A string or a number (invoice labels). Not captured in the fixtures.
pub fn string_or_number(value: &Value) -> Result<(), &'static str> {
    match value {
        Value::String(_) | Value::Number(_) => Ok(()),
        _ => Err("should be a string or a number"),
    }
}

/// A 32-byte hex string (preimages, hashes). Not captured in the fixtures.
pub fn hex32(value: &Value) -> Result<(), &'static str> {
    match value.as_str() {
        Some(text) if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err("should be a 32 byte hex value"),
    }
}
