//! `application/x-www-form-urlencoded` in both directions, with bracket syntax for nesting.
//!
//! Decoding: `form_urlencoded` splits the body and percent-decodes; the keys are then read as
//! `name[seg][seg]...`, where a segment is an index (`[0]`), an append (`[]`) or a member name
//! (`[label]`), and built into nested objects and arrays:
//! - `a=1&b=2` → `{"a":"1","b":"2"}`; a repeated key `a=1&a=2` → `{"a":["1","2"]}`;
//! - `k[1]=b&k[0]=a` → `{"k":["a","b"]}` (ordered by index, sparse indices compacted; indices
//!   live in a `BTreeMap`, so `k[999999999]=x` allocates nothing big);
//! - `k[]=a&k[]=b` appends; `o[x]=1&o[y][0]=2` → `{"o":{"x":"1","y":["2"]}}`;
//! - values are strings, except exactly `true`/`false`, which are booleans;
//! - a key used both as a value and as a container, a level mixing indices and names, a
//!   malformed key, nesting deeper than [`MAX_DEPTH`] segments or invalid UTF-8 → 400.
//!
//! Encoding flattens the result the same way (`invoices[0][label]=x`), with keys and values
//! percent-encoded by `form_urlencoded::Serializer` (so brackets are sent as `%5B`/`%5D`, which
//! every form decoder, ours included, reads back as brackets).

use super::{text_value, Format};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The most bracket segments a key may have (`a[b][c]` has 2).
pub(super) const MAX_DEPTH: usize = 32;

fn bad(reason: impl Into<String>) -> ApiError {
    Format::Form.bad_body(reason)
}

/// One bracket segment of a key.
#[derive(Debug, PartialEq)]
enum Segment<'a> {
    /// `[]`
    Append,
    /// `[3]`
    Index(u64),
    /// `[label]`
    Name(&'a str),
}

/// A value being built.
#[derive(Debug)]
enum Node {
    /// Values assigned directly to the key, in order (more than one becomes an array).
    Values(Vec<Value>),
    /// Members named by `[name]` segments (or the top level).
    Named(BTreeMap<String, Node>),
    /// Members placed by `[index]` / `[]` segments.
    Indexed(BTreeMap<u64, Node>),
}

/// Decodes a form body into params (always an object, `None` if there are no pairs).
pub(super) fn decode(body: &[u8]) -> Result<Option<Value>, ApiError> {
    check_utf8(body)?;
    let mut top: BTreeMap<String, Node> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        let (name, segments) = parse_key(&key)?;
        let slot = top
            .entry(name.to_string())
            .or_insert_with(|| Node::Values(Vec::new()));
        insert(
            slot,
            name.to_string(),
            &segments,
            text_value(value.into_owned()),
        )?;
    }
    if top.is_empty() {
        return Ok(None);
    }
    let mut members = Map::new();
    for (name, node) in top {
        members.insert(name, to_value(node));
    }
    Ok(Some(Value::Object(members)))
}

/// `form_urlencoded` decodes invalid UTF-8 lossily; we refuse it instead. Percent-decodes the
/// whole body (`&` and `=` are ASCII, so a sequence split by them is invalid here too) and
/// checks the result.
fn check_utf8(body: &[u8]) -> Result<(), ApiError> {
    let mut decoded = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte == b'%' {
            if let [hi, lo, tail @ ..] = rest {
                if let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo)) {
                    decoded.push(hi * 16 + lo);
                    rest = tail;
                    continue;
                }
            }
        }
        decoded.push(byte);
    }
    std::str::from_utf8(&decoded)
        .map(|_| ())
        .map_err(|e| bad(format!("not UTF-8 once percent-decoded ({e})")))
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Splits `name[a][0][]` into its name and segments.
fn parse_key(key: &str) -> Result<(&str, Vec<Segment<'_>>), ApiError> {
    let malformed = || {
        bad(format!(
            "malformed key '{}': expected name, name[member], name[0] or name[]",
            super::echo(key)
        ))
    };
    let (name, mut rest) = match key.find('[') {
        Some(open) => (key.get(..open).unwrap_or(""), key.get(open..).unwrap_or("")),
        None => (key, ""),
    };
    if name.is_empty() || name.contains(']') {
        return Err(malformed());
    }
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if segments.len() == MAX_DEPTH {
            return Err(bad(format!(
                "key '{}' is nested deeper than {MAX_DEPTH} levels",
                super::echo(key)
            )));
        }
        let inner_and_tail = rest.strip_prefix('[').ok_or_else(malformed)?;
        let (inner, tail) = inner_and_tail.split_once(']').ok_or_else(malformed)?;
        if inner.contains('[') {
            return Err(malformed());
        }
        segments.push(if inner.is_empty() {
            Segment::Append
        } else if inner.bytes().all(|b| b.is_ascii_digit()) {
            Segment::Index(
                inner
                    .parse()
                    .map_err(|_| bad(format!("index too large in key '{}'", super::echo(key))))?,
            )
        } else {
            Segment::Name(inner)
        });
        rest = tail;
    }
    Ok((name, segments))
}

/// Puts `value` at `segments` below `node`; `path` names `node` for error messages.
/// Recursion is bounded by [`MAX_DEPTH`].
fn insert(
    node: &mut Node,
    path: String,
    segments: &[Segment<'_>],
    value: Value,
) -> Result<(), ApiError> {
    let Some((segment, rest)) = segments.split_first() else {
        return match node {
            Node::Values(values) => {
                values.push(value);
                Ok(())
            }
            _ => Err(conflict(&path)),
        };
    };
    // A fresh node becomes the container the segment asks for.
    if matches!(node, Node::Values(values) if values.is_empty()) {
        *node = match segment {
            Segment::Name(_) => Node::Named(BTreeMap::new()),
            Segment::Index(_) | Segment::Append => Node::Indexed(BTreeMap::new()),
        };
    }
    let child = match (node, segment) {
        (Node::Named(members), Segment::Name(name)) => members
            .entry((*name).to_string())
            .or_insert_with(|| Node::Values(Vec::new())),
        (Node::Indexed(items), Segment::Index(index)) => items
            .entry(*index)
            .or_insert_with(|| Node::Values(Vec::new())),
        (Node::Indexed(items), Segment::Append) => {
            let next = match items.last_key_value() {
                None => 0,
                Some((&last, _)) => last
                    .checked_add(1)
                    .ok_or_else(|| bad(format!("too many items in '{}'", super::echo(&path))))?,
            };
            items
                .entry(next)
                .or_insert_with(|| Node::Values(Vec::new()))
        }
        (Node::Values(_), _) => return Err(conflict(&path)),
        (Node::Named(_), _) | (Node::Indexed(_), _) => {
            return Err(bad(format!(
                "key '{}' mixes indexed ([0], []) and named ([name]) members",
                super::echo(&path)
            )))
        }
    };
    let child_path = match segment {
        Segment::Append => format!("{path}[]"),
        Segment::Index(index) => format!("{path}[{index}]"),
        Segment::Name(name) => format!("{path}[{name}]"),
    };
    insert(child, child_path, rest, value)
}

fn conflict(path: &str) -> ApiError {
    bad(format!(
        "key '{}' is used both as a value and as a container",
        super::echo(path)
    ))
}

/// The JSON value of a built node. Recursion is bounded by [`MAX_DEPTH`].
fn to_value(node: Node) -> Value {
    match node {
        Node::Values(mut values) if values.len() == 1 => values.pop().unwrap_or(Value::Null),
        Node::Values(values) => Value::Array(values),
        Node::Named(members) => Value::Object(
            members
                .into_iter()
                .map(|(name, node)| (name, to_value(node)))
                .collect(),
        ),
        Node::Indexed(items) => Value::Array(items.into_values().map(to_value).collect()),
    }
}

/// Encodes a result as `key=value&nested[key]=value&list[0]=value`. A result that is not an
/// object is put under the method's name. Empty arrays and objects produce no pair; `null`
/// is an empty value; booleans and numbers are their JSON text. Never fails.
pub(super) fn encode(method: &str, value: &Value) -> Vec<u8> {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                flatten(&mut serializer, key.clone(), member);
            }
        }
        other => flatten(&mut serializer, method.to_string(), other),
    }
    serializer.finish().into_bytes()
}

/// Appends the pairs for `value` found at `path`. Recursion is bounded by serde_json's
/// nesting limit on the parsed result.
fn flatten(serializer: &mut form_urlencoded::Serializer<'_, String>, path: String, value: &Value) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                flatten(serializer, format!("{path}[{key}]"), member);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(serializer, format!("{path}[{index}]"), item);
            }
        }
        Value::Null => {
            serializer.append_pair(&path, "");
        }
        Value::String(s) => {
            serializer.append_pair(&path, s);
        }
        Value::Bool(b) => {
            serializer.append_pair(&path, if *b { "true" } else { "false" });
        }
        Value::Number(n) => {
            serializer.append_pair(&path, &n.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_params, encode_result, Format};
    use super::*;
    use http::StatusCode;
    use proptest::prelude::*;
    use serde_json::json;
    use serde_json::value::RawValue;
    use std::time::{Duration, Instant};

    fn decode(body: &str) -> Result<Option<Value>, ApiError> {
        decode_params(Format::Form, "m", body.as_bytes())
    }

    fn decoded(body: &str) -> Value {
        match decode(body) {
            Ok(Some(value)) => value,
            other => panic!("{body}: {other:?}"),
        }
    }

    /// Asserts a 400 whose message is exactly `Invalid form body: <reason>`.
    fn refused(body: &str, reason: &str) {
        match decode(body) {
            Err(err) => {
                assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body}");
                assert_eq!(
                    err.to_string(),
                    format!("Invalid form body: {reason}"),
                    "{body}"
                );
            }
            Ok(value) => panic!("{body}: accepted as {value:?}"),
        }
    }

    fn encoded(json: &str) -> String {
        let raw = RawValue::from_string(json.to_string()).unwrap();
        let body = encode_result(Format::Form, "listinvoices", &raw).unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn plain_pairs_are_string_members() {
        assert_eq!(decoded("a=1&b=2"), json!({"a": "1", "b": "2"}));
        assert_eq!(
            decoded("label=a+b%20c&description=%E2%82%AC+%26+%3D&empty=&bare"),
            json!({"label": "a b c", "description": "€ & =", "empty": "", "bare": ""})
        );
        assert_eq!(decoded("&&a=1&&"), json!({"a": "1"}));
        assert_eq!(decoded("a=x=y"), json!({"a": "x=y"}));
        assert_eq!(decode("&&").unwrap(), None);
    }

    #[test]
    fn exactly_true_and_false_are_booleans() {
        assert_eq!(
            decoded("a=true&b=false&c=True&d=1&e=%74rue&f=+true"),
            json!({"a": true, "b": false, "c": "True", "d": "1", "e": true, "f": " true"})
        );
    }

    #[test]
    fn repeated_plain_keys_are_arrays() {
        assert_eq!(
            decoded("a=1&a=2&a=3&b=x"),
            json!({"a": ["1", "2", "3"], "b": "x"})
        );
    }

    #[test]
    fn indices_build_ordered_compacted_arrays() {
        assert_eq!(decoded("key[0]=a&key[1]=b"), json!({"key": ["a", "b"]}));
        assert_eq!(decoded("key[1]=b&key[0]=a"), json!({"key": ["a", "b"]}));
        assert_eq!(
            decoded("key[10]=b&key[3]=a&key[999999999]=c"),
            json!({"key": ["a", "b", "c"]})
        );
        assert_eq!(
            decoded("key%5B1%5D=b&key%5b0%5d=a"),
            json!({"key": ["a", "b"]})
        );
        assert_eq!(
            decoded("key[18446744073709551615]=x"),
            json!({"key": ["x"]})
        );
        refused(
            "key[18446744073709551616]=x",
            "index too large in key 'key[18446744073709551616]'",
        );
    }

    #[test]
    fn empty_brackets_append() {
        assert_eq!(decoded("key[]=a&key[]=b"), json!({"key": ["a", "b"]}));
        assert_eq!(decoded("key[5]=a&key[]=b"), json!({"key": ["a", "b"]}));
        assert_eq!(
            decoded("p[][x]=1&p[][x]=2"),
            json!({"p": [{"x": "1"}, {"x": "2"}]})
        );
        refused(
            "key[18446744073709551615]=a&key[]=b",
            "too many items in 'key'",
        );
    }

    #[test]
    fn names_build_nested_objects() {
        assert_eq!(
            decoded("obj[x]=1&obj[y][0]=2&obj[y][1]=3&obj[z][w]=true"),
            json!({"obj": {"x": "1", "y": ["2", "3"], "z": {"w": true}}})
        );
        assert_eq!(
            decoded("invoices[0][label]=x&invoices[0][amount_msat]=50000&invoices[1][label]=y"),
            json!({"invoices": [{"label": "x", "amount_msat": "50000"}, {"label": "y"}]})
        );
        assert_eq!(
            decoded("m[0][0]=a&m[0][1]=b&m[1][0]=c"),
            json!({"m": [["a", "b"], ["c"]]})
        );
        assert_eq!(decoded("o[x]=1&o[x]=2"), json!({"o": {"x": ["1", "2"]}}));
    }

    #[test]
    fn conflicting_keys_are_400_naming_the_key() {
        refused(
            "a=1&a[x]=2",
            "key 'a' is used both as a value and as a container",
        );
        refused(
            "a[x]=2&a=1",
            "key 'a' is used both as a value and as a container",
        );
        refused(
            "a[0]=1&a[0][y]=2",
            "key 'a[0]' is used both as a value and as a container",
        );
        refused(
            "a[0]=1&a[x]=2",
            "key 'a' mixes indexed ([0], []) and named ([name]) members",
        );
        refused(
            "a[x]=1&a[]=2",
            "key 'a' mixes indexed ([0], []) and named ([name]) members",
        );
        refused(
            "o[p][x]=1&o[p][0]=2",
            "key 'o[p]' mixes indexed ([0], []) and named ([name]) members",
        );
    }

    #[test]
    fn malformed_keys_are_400() {
        let expected = |key: &str| {
            format!("malformed key '{key}': expected name, name[member], name[0] or name[]")
        };
        for key in ["[a]", "=x", "a[b", "a]b", "a[b]c", "a[b[c]]", "a[b]]", "[]"] {
            let body = if key.starts_with('=') {
                key.to_string()
            } else {
                format!("{key}=1")
            };
            let name = if key.starts_with('=') { "" } else { key };
            refused(&body, &expected(name));
        }
    }

    #[test]
    fn nesting_is_limited() {
        let key = |depth: usize| format!("a{}", "[b]".repeat(depth));
        let mut expected = json!("1");
        for _ in 0..MAX_DEPTH {
            expected = json!({"b": expected});
        }
        assert_eq!(
            decoded(&format!("{}=1", key(MAX_DEPTH))),
            json!({"a": expected})
        );
        let too_deep = key(MAX_DEPTH + 1);
        refused(
            &format!("{too_deep}=1"),
            &format!("key '{too_deep}' is nested deeper than 32 levels"),
        );
    }

    #[test]
    fn deep_nesting_is_400_quickly() {
        let start = Instant::now();
        let body = format!("a{}=1", "[b]".repeat(100_000));
        let err = decode(&body).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        // The key is cut to 100 characters in the message.
        assert_eq!(
            err.to_string(),
            format!(
                "Invalid form body: key 'a{}...' is nested deeper than 32 levels",
                "[b]".repeat(33)
            )
        );
        let body = format!("a{}=1", "[]".repeat(100_000));
        assert_eq!(decode(&body).unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn invalid_utf8_is_400() {
        for body in [
            &b"a=%FF"[..],
            b"a=\xff",
            b"%C3=x",
            b"a=%E2%82",
            b"a=%E2&%82%AC=b",
            b"a=%ed%a0%80",
        ] {
            let err = decode_params(Format::Form, "m", body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body:?}");
            assert!(
                err.to_string()
                    .starts_with("Invalid form body: not UTF-8 once percent-decoded"),
                "{err}"
            );
        }
        // A literal or encoded U+FFFD is fine; so are stray percent signs (kept literally).
        assert_eq!(
            decoded("a=%EF%BF%BD&b=\u{FFFD}&c=100%&d=%zz%4"),
            json!({"a": "\u{FFFD}", "b": "\u{FFFD}", "c": "100%", "d": "%zz%4"})
        );
    }

    #[test]
    fn encodes_with_bracket_syntax() {
        assert_eq!(
            encoded(r#"{"invoices":[{"label":"x","amount_msat":50000}]}"#),
            "invoices%5B0%5D%5Blabel%5D=x&invoices%5B0%5D%5Bamount_msat%5D=50000"
        );
        let body = encoded(r#"{"invoices":[{"label":"x","amount_msat":50000}]}"#);
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            [
                ("invoices[0][label]".to_string(), "x".to_string()),
                ("invoices[0][amount_msat]".to_string(), "50000".to_string()),
            ]
        );
    }

    #[test]
    fn encodes_scalars_as_their_text() {
        assert_eq!(
            encoded(
                r#"{"s":"a b&c=d€","t":true,"f":false,"n":-1.5,"big":18446744073709551615,"z":null}"#
            ),
            "s=a+b%26c%3Dd%E2%82%AC&t=true&f=false&n=-1.5&big=18446744073709551615&z="
        );
    }

    #[test]
    fn empty_containers_produce_nothing() {
        assert_eq!(encoded("{}"), "");
        assert_eq!(encoded(r#"{"a":[],"b":{},"c":"x"}"#), "c=x");
    }

    #[test]
    fn non_object_results_are_put_under_the_method_name() {
        assert_eq!(
            encoded(r#"["a","b"]"#),
            "listinvoices%5B0%5D=a&listinvoices%5B1%5D=b"
        );
        assert_eq!(encoded(r#""x""#), "listinvoices=x");
        assert_eq!(encoded("null"), "listinvoices=");
    }

    /// Keys the bracket syntax can carry: no brackets, not all digits (those mean indices).
    fn key() -> impl Strategy<Value = String> {
        "[^\\[\\]]{1,6}".prop_filter("digits are indices", |k| {
            !k.bytes().all(|b| b.is_ascii_digit())
        })
    }

    /// Non-empty strings other than `true`/`false`, including form syntax characters.
    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{1,12}",
            "[ +%&=;\\[\\]a-z0-9]{1,8}",
            any::<String>().prop_filter("non-empty", |s| !s.is_empty())
        ]
        .prop_filter("booleans read back as booleans", |s| {
            s != "true" && s != "false"
        })
        .prop_map(Value::String)
    }

    /// Objects of leaves, non-empty objects and non-empty arrays (of anything): everything a
    /// form can carry without loss.
    fn object() -> impl Strategy<Value = Value> {
        let value = leaf().prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::btree_map(key(), inner.clone(), 1..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                proptest::collection::vec(inner, 1..4).prop_map(Value::Array),
            ]
        });
        proptest::collection::btree_map(key(), value, 1..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn form_round_trips(value in object()) {
            let raw = RawValue::from_string(value.to_string()).unwrap();
            let body = encode_result(Format::Form, "listinvoices", &raw).unwrap();
            prop_assert_eq!(decode_params(Format::Form, "listinvoices", &body).unwrap(), Some(value));
        }

        #[test]
        fn form_like_bytes_never_panic(body in "([a-c]{0,2}(\\[[a-c0-9]{0,2}\\]){0,4}(=[a-z%0-9]{0,4})?&?|%[0-9a-fA-F]{0,2})*") {
            match decode_params(Format::Form, "m", body.as_bytes()) {
                Ok(Some(value)) => prop_assert!(value.is_object()),
                Ok(None) => {}
                Err(err) => prop_assert_eq!(err.status(), StatusCode::BAD_REQUEST),
            }
        }
    }
}
