//! Media types: which formats a request body may use, which one a response is written in
//! (content negotiation), and the conversions between them and lightningd's JSON.
//!
//! This file owns [`Format`] (parsing `Content-Type`, negotiating `Accept`), the two dispatch
//! functions [`decode_params`] and [`encode_result`], and the JSON and YAML conversions, which
//! are a few lines each. XML lives in [`xml`], `application/x-www-form-urlencoded` in [`form`].
//!
//! Rules shared by every format:
//! - an empty (or whitespace-only) body means "no params" (`Ok(None)`);
//! - params must be an object (named) or an array (positional);
//! - nothing here panics on input: every failure is a 4xx [`ApiError`].

mod form;
mod xml;

use crate::error::ApiError;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

/// A representation we can read a request body from and write a result in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Xml,
    Form,
}

/// Every format, in the order that breaks ties in content negotiation.
const ALL: [Format; 4] = [Format::Json, Format::Yaml, Format::Xml, Format::Form];

/// The list of media types we read and write, for error messages.
const SUPPORTED: &str =
    "application/json, application/yaml, application/xml, application/x-www-form-urlencoded";

/// The longest piece of a client's header we repeat back in an error message.
const MAX_ECHO: usize = 100;

/// How specifically an `Accept` media range names a format; higher wins ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    /// `*/*`
    Any,
    /// `application/*`, `text/*`
    AnySubtype,
    /// `application/vnd.example+json`: a type we do not know, with a suffix we do.
    Suffix,
    /// `application/json` or one of its aliases.
    Exact,
}

impl Format {
    /// The body format named by a request's `Content-Type` (absent means JSON).
    pub fn from_content_type(content_type: Option<&str>) -> Result<Format, ApiError> {
        let raw = match content_type.map(str::trim) {
            None | Some("") => return Ok(Format::Json),
            Some(raw) => raw,
        };
        let unsupported = |what: &str| {
            ApiError::UnsupportedMediaType(format!(
                "'{}' is not a supported request body type; supported: {SUPPORTED}",
                echo(what)
            ))
        };
        let mime: mime::Mime = raw.parse().map_err(|_| unsupported(raw))?;
        let format = match classify(&mime) {
            Some((format, Specificity::Exact | Specificity::Suffix)) => format,
            _ => return Err(unsupported(mime.essence_str())),
        };
        if let Some(charset) = mime.get_param(mime::CHARSET) {
            let charset = charset.as_str();
            let utf8 = ["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|ok| charset.eq_ignore_ascii_case(ok));
            if !utf8 {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "charset '{}' is not supported; request bodies must be UTF-8",
                    echo(charset)
                )));
            }
        }
        Ok(format)
    }

    /// The response format chosen from a request's `Accept` (absent means JSON).
    ///
    /// Follows RFC 9110 §12.5.1: each format takes the q-value of the most specific range that
    /// matches it (so `*/*, application/json;q=0` excludes JSON only); the format with the
    /// highest q wins, ties go to the more specific range, then to the order Json, Yaml, Xml,
    /// Form. Entries that do not parse are skipped; a header with no entry that parses is
    /// treated as absent.
    pub fn negotiate(accept: Option<&str>) -> Result<Format, ApiError> {
        let Some(accept) = accept else {
            return Ok(Format::Json);
        };
        // Per format: (specificity of the best matching range, q at that specificity).
        let mut best: [Option<(Specificity, u16)>; 4] = [None; 4];
        let mut any_valid = false;
        for entry in split_list(accept) {
            let Some((mime, q)) = parse_range(entry) else {
                continue;
            };
            any_valid = true;
            for (slot, format) in best.iter_mut().zip(ALL) {
                let Some(spec) = matches(&mime, format) else {
                    continue;
                };
                *slot = match *slot {
                    Some((old, _)) if old > spec => *slot,
                    Some((old, old_q)) if old == spec => Some((spec, old_q.max(q))),
                    _ => Some((spec, q)),
                };
            }
        }
        if !any_valid {
            return Ok(Format::Json);
        }
        let mut chosen: Option<(u16, Specificity, Format)> = None;
        for (slot, format) in best.iter().zip(ALL) {
            let Some((spec, q)) = *slot else { continue };
            if q == 0 {
                continue;
            }
            // Strictly better only: earlier formats win exact ties.
            if chosen.is_none_or(|(bq, bspec, _)| (q, spec) > (bq, bspec)) {
                chosen = Some((q, spec, format));
            }
        }
        chosen.map(|(_, _, format)| format).ok_or_else(|| {
            ApiError::NotAcceptable(format!(
                "none of the media types in Accept can be produced; available: {SUPPORTED}"
            ))
        })
    }

    /// The `Content-Type` a response in this format carries.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
            Format::Xml => "application/xml",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }

    /// The format's name in `Invalid <name> body` messages.
    fn label(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Xml => "XML",
            Format::Form => "form",
        }
    }

    /// A 400 for a body that does not parse in this format.
    fn bad_body(self, reason: impl Into<String>) -> ApiError {
        ApiError::BadBody {
            format: self.label(),
            reason: reason.into(),
        }
    }
}

/// The exact media types (canonical first, then aliases) naming each format.
fn aliases(format: Format) -> &'static [&'static str] {
    match format {
        Format::Json => &["application/json", "text/json"],
        Format::Yaml => &[
            "application/yaml",
            "application/x-yaml",
            "text/yaml",
            "text/x-yaml",
        ],
        Format::Xml => &["application/xml", "text/xml"],
        Format::Form => &["application/x-www-form-urlencoded"],
    }
}

/// The structured-syntax suffix (RFC 6839/9512) naming each format, if any.
fn suffix(format: Format) -> Option<&'static str> {
    match format {
        Format::Json => Some("json"),
        Format::Yaml => Some("yaml"),
        Format::Xml => Some("xml"),
        Format::Form => None,
    }
}

/// The format a concrete media type names, and how (exactly or by `+suffix`).
fn classify(mime: &mime::Mime) -> Option<(Format, Specificity)> {
    ALL.into_iter()
        .filter_map(|format| {
            let spec = matches(mime, format)?;
            (spec >= Specificity::Suffix).then_some((format, spec))
        })
        .max_by_key(|&(_, spec)| spec)
}

/// Whether a media range matches a format, and how specifically.
fn matches(range: &mime::Mime, format: Format) -> Option<Specificity> {
    let (ty, sub) = (range.type_().as_str(), range.subtype().as_str());
    let names = aliases(format);
    if ty == "*" {
        return (sub == "*").then_some(Specificity::Any);
    }
    if sub == "*" {
        return names
            .iter()
            .filter_map(|name| name.split_once('/'))
            .any(|(name_ty, _)| name_ty.eq_ignore_ascii_case(ty))
            .then_some(Specificity::AnySubtype);
    }
    let essence = range.essence_str();
    if names.iter().any(|name| name.eq_ignore_ascii_case(essence)) {
        return Some(Specificity::Exact);
    }
    let wanted = suffix(format)?;
    let ours = range.suffix()?;
    (ty.eq_ignore_ascii_case("application") && ours.as_str().eq_ignore_ascii_case(wanted))
        .then_some(Specificity::Suffix)
}

/// Splits a header list on commas that are not inside a quoted string.
fn split_list(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in list.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(list.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(list.get(start..).unwrap_or(""));
    parts
}

/// Parses one `Accept` entry into its media range and q-value in thousandths, or `None` if it
/// is malformed (unparsable type, `*/json`, a q-value outside 0..=1).
fn parse_range(entry: &str) -> Option<(mime::Mime, u16)> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    let mime: mime::Mime = entry.parse().ok()?;
    if mime.type_() == mime::STAR && mime.subtype() != mime::STAR {
        return None;
    }
    let q = match mime.get_param("q") {
        None => 1000,
        Some(q) => parse_qvalue(q.as_str())?,
    };
    Some((mime, q))
}

/// Parses an RFC 9110 qvalue (`0`, `0.5`, `1.000`) into thousandths.
fn parse_qvalue(q: &str) -> Option<u16> {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    for (digit, scale) in frac.bytes().zip([100u16, 10, 1]) {
        thousandths += u16::from(digit - b'0') * scale;
    }
    (thousandths <= 1000).then_some(thousandths)
}

/// A client-supplied string cut to a length fit for an error message.
fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}...", s.get(..cut).unwrap_or("")),
        None => s.to_string(),
    }
}

/// Decodes a request body into lightningd params: `None` when there are none.
pub fn decode_params(format: Format, method: &str, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match format {
        Format::Json => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| format.bad_body(e.to_string()))?;
            params_value(format, value)
        }
        Format::Yaml => {
            let value: Value =
                serde_norway::from_slice(body).map_err(|e| format.bad_body(e.to_string()))?;
            params_value(format, value)
        }
        Format::Xml => xml::decode(method, body),
        Format::Form => form::decode(body),
    }
}

/// An upper bound on the number of values [`decode_params`] builds from `body`, found in one
/// pass without decoding, so that the memory a decode would take can be refused or waited for
/// before it is taken (a `[[],[],...]` body decodes to ~30 times its size).
///
/// - JSON: every value but the first follows a `[`, `,` or `:` outside strings.
/// - YAML: every node follows one of `[{,:-`, a line break or an alias `*` (counted
///   wherever they are: an over-estimate). An alias expands to a copy of its anchor, which
///   the YAML decoder limits on its own.
/// - XML: every value is an element, which starts with `<`.
/// - Form: every value is a pair (`&`) or a level of brackets (`[`).
pub fn value_count_bound(format: Format, body: &[u8]) -> usize {
    let count = |set: &[u8]| body.iter().filter(|b| set.contains(b)).count();
    1 + match format {
        Format::Json => {
            let (mut count, mut in_string, mut escaped) = (0, false, false);
            for &byte in body {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if byte == b'\\' {
                        escaped = true;
                    } else if byte == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                match byte {
                    b'"' => in_string = true,
                    b'[' | b',' | b':' => count += 1,
                    _ => {}
                }
            }
            count
        }
        Format::Yaml => count(b"[{,:-\n*"),
        Format::Xml => count(b"<"),
        Format::Form => count(b"&["),
    }
}

/// Applies the object-or-array rule to a parsed JSON or YAML document.
fn params_value(format: Format, value: Value) -> Result<Option<Value>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(_) | Value::Array(_) => Ok(Some(value)),
        other => Err(format.bad_body(format!(
            "params must be an object (named) or an array (positional), not {}",
            kind(&other)
        ))),
    }
}

/// The JSON kind of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text lightningd's booleans take in XML and form bodies: exactly `true` or `false`
/// become JSON booleans (lightningd refuses a string where it wants a bool); anything else
/// stays a string.
fn text_value(text: String) -> Value {
    match text.as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text),
    }
}

/// Encodes lightningd's `result` for the response.
pub fn encode_result(format: Format, method: &str, result: &RawValue) -> Result<Bytes, ApiError> {
    if format == Format::Json {
        return Ok(Bytes::copy_from_slice(result.get().as_bytes()));
    }
    // `result` is valid JSON already; this only fails past serde_json's nesting limit (128),
    // which lightningd never produces.
    let value: Value = serde_json::from_str(result.get())
        .map_err(|e| ApiError::Internal(format!("cannot re-read lightningd's result: {e}")))?;
    Ok(match format {
        Format::Json => Bytes::copy_from_slice(result.get().as_bytes()),
        Format::Yaml => Bytes::from(
            serde_norway::to_string(&value)
                .map_err(|e| ApiError::Internal(format!("cannot write YAML: {e}")))?,
        ),
        Format::Xml => Bytes::from(xml::encode(method, &value)),
        Format::Form => Bytes::from(form::encode(method, &value)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use proptest::prelude::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn message(err: &ApiError) -> String {
        err.to_string()
    }

    // ---- Content-Type ----------------------------------------------------------------------

    /// Each Content-Type is read as its format.
    fn assert_formats(cases: &[(&str, Format)]) {
        for &(content_type, format) in cases {
            assert_eq!(
                Format::from_content_type(Some(content_type)).unwrap(),
                format,
                "{content_type}"
            );
        }
    }

    #[test]
    fn content_type_missing_or_blank_is_json() {
        assert_eq!(Format::from_content_type(None).unwrap(), Format::Json);
        assert_eq!(Format::from_content_type(Some("")).unwrap(), Format::Json);
        assert_eq!(Format::from_content_type(Some("  ")).unwrap(), Format::Json);
    }

    #[test]
    fn content_type_names_and_aliases() {
        let cases = [
            ("application/json", Format::Json),
            ("text/json", Format::Json),
            ("application/vnd.api+json", Format::Json),
            ("application/problem+json", Format::Json),
            ("application/yaml", Format::Yaml),
            ("application/x-yaml", Format::Yaml),
            ("text/yaml", Format::Yaml),
            ("text/x-yaml", Format::Yaml),
            ("application/xml", Format::Xml),
            ("text/xml", Format::Xml),
            ("application/atom+xml", Format::Xml),
            ("application/x-www-form-urlencoded", Format::Form),
        ];
        assert_formats(&cases);
    }

    #[test]
    fn content_type_is_case_insensitive_and_ignores_parameters() {
        let cases = [
            ("Application/JSON", Format::Json),
            ("application/json; charset=utf-8", Format::Json),
            ("application/json;charset=UTF-8", Format::Json),
            (
                "APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
                Format::Form,
            ),
            ("text/xml; charset=\"utf-8\"", Format::Xml),
            ("application/yaml; version=1.2", Format::Yaml),
            ("application/json; charset=us-ascii", Format::Json),
        ];
        assert_formats(&cases);
    }

    #[test]
    fn content_type_other_charset_is_415() {
        let err = Format::from_content_type(Some("application/json; charset=latin1")).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            message(&err),
            "Unsupported media type: charset 'latin1' is not supported; request bodies must be UTF-8"
        );
    }

    #[test]
    fn content_type_unsupported_is_415_naming_it_and_listing_ours() {
        for content_type in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "*/*",
            "application/*",
        ] {
            let err = Format::from_content_type(Some(content_type)).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}"
            );
        }
        let err = Format::from_content_type(Some("Text/Plain; charset=utf-8")).unwrap_err();
        assert_eq!(
            message(&err),
            "Unsupported media type: 'text/plain' is not a supported request body type; \
             supported: application/json, application/yaml, application/xml, \
             application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn content_type_unparsable_is_415_naming_it() {
        let err = Format::from_content_type(Some("json")).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            message(&err).starts_with("Unsupported media type: 'json' is not"),
            "{err}"
        );
        // A huge header is cut in the message.
        let long = "x".repeat(5000);
        let err = Format::from_content_type(Some(&long)).unwrap_err();
        assert!(message(&err).len() < 400, "{}", message(&err).len());
    }

    // ---- Accept ------------------------------------------------------------------------------

    fn negotiate(accept: &str) -> Format {
        Format::negotiate(Some(accept)).unwrap_or_else(|e| panic!("{accept}: {e}"))
    }

    #[test]
    fn accept_missing_empty_or_wildcard_is_json() {
        assert_eq!(Format::negotiate(None).unwrap(), Format::Json);
        assert_eq!(negotiate(""), Format::Json);
        assert_eq!(negotiate("*/*"), Format::Json);
        assert_eq!(negotiate("application/*"), Format::Json);
        assert_eq!(negotiate("text/*"), Format::Json);
    }

    #[test]
    fn accept_names_and_aliases() {
        let cases = [
            ("application/json", Format::Json),
            ("text/json", Format::Json),
            ("application/yaml", Format::Yaml),
            ("application/x-yaml", Format::Yaml),
            ("text/yaml", Format::Yaml),
            ("TEXT/X-YAML", Format::Yaml),
            ("application/xml", Format::Xml),
            ("text/xml; charset=utf-8", Format::Xml),
            ("application/x-www-form-urlencoded", Format::Form),
            ("application/vnd.example+yaml", Format::Yaml),
        ];
        for (accept, format) in cases {
            assert_eq!(negotiate(accept), format, "{accept}");
        }
    }

    #[test]
    fn accept_honours_q_values() {
        assert_eq!(
            negotiate("application/json;q=0.5, application/xml"),
            Format::Xml
        );
        assert_eq!(
            negotiate("application/json;q=0.5, application/xml;q=0.6"),
            Format::Xml
        );
        assert_eq!(
            negotiate("application/yaml;q=0.9, application/xml;q=0.8"),
            Format::Yaml
        );
        assert_eq!(negotiate("application/xml;q=1.000, */*;q=0.1"), Format::Xml);
        // q=0 excludes, even under a wildcard that would otherwise match.
        assert_eq!(negotiate("*/*, application/json;q=0"), Format::Yaml);
        assert_eq!(
            negotiate("application/*, application/json;q=0, application/yaml;q=0"),
            Format::Xml
        );
        // A browser's header: XML is preferred over */*.
        assert_eq!(
            negotiate("text/html,application/xhtml+xml;q=0.9,application/xml;q=0.9,*/*;q=0.8"),
            Format::Xml
        );
    }

    #[test]
    fn accept_ties_go_to_the_more_specific_range_then_the_fixed_order() {
        assert_eq!(
            negotiate("application/*;q=0.5, application/form;q=0.5, application/xml;q=0.5"),
            Format::Xml
        );
        assert_eq!(
            negotiate("*/*;q=0.5, application/x-www-form-urlencoded;q=0.5"),
            Format::Form
        );
        assert_eq!(negotiate("application/xml, application/yaml"), Format::Yaml);
        assert_eq!(
            negotiate("application/x-www-form-urlencoded, application/xml"),
            Format::Xml
        );
        assert_eq!(negotiate("application/xml, application/json"), Format::Json);
    }

    #[test]
    fn accept_nothing_satisfiable_is_406_listing_ours() {
        for accept in [
            "text/html",
            "image/*",
            "application/json;q=0",
            "*/*;q=0",
            "text/plain, image/png",
        ] {
            let err = Format::negotiate(Some(accept)).unwrap_err();
            assert_eq!(err.status(), StatusCode::NOT_ACCEPTABLE, "{accept}");
            assert_eq!(
                message(&err),
                "Not acceptable: none of the media types in Accept can be produced; available: \
                 application/json, application/yaml, application/xml, \
                 application/x-www-form-urlencoded"
            );
        }
    }

    #[test]
    fn accept_skips_malformed_entries() {
        assert_eq!(negotiate("garbage, application/xml"), Format::Xml);
        assert_eq!(
            negotiate("application/json;q=2, application/yaml;q=0.1"),
            Format::Yaml
        );
        assert_eq!(
            negotiate("application/json;q=abc, application/yaml;q=0.1"),
            Format::Yaml
        );
        assert_eq!(
            negotiate("application/json;q=0.1234, application/xml;q=0.1"),
            Format::Xml
        );
        assert_eq!(negotiate("*/json, ,,application/xml"), Format::Xml);
        assert_eq!(
            negotiate("text/xml;a=\"x,y\";q=0.2, text/plain"),
            Format::Xml
        );
        // No entry parses at all: as if there were no header.
        assert_eq!(negotiate("garbage"), Format::Json);
        assert_eq!(negotiate(",;,"), Format::Json);
    }

    #[test]
    fn media_types() {
        assert_eq!(Format::Json.media_type(), "application/json");
        assert_eq!(Format::Yaml.media_type(), "application/yaml");
        assert_eq!(Format::Xml.media_type(), "application/xml");
        assert_eq!(
            Format::Form.media_type(),
            "application/x-www-form-urlencoded"
        );
        // Every format's own media type reads back as that format, both ways.
        for format in ALL {
            assert_eq!(
                Format::from_content_type(Some(format.media_type())).unwrap(),
                format
            );
            assert_eq!(negotiate(format.media_type()), format);
        }
    }

    // ---- decode: shared and JSON --------------------------------------------------------------

    #[test]
    fn empty_or_blank_body_is_no_params_in_every_format() {
        for format in ALL {
            for body in [&b""[..], b"  \n\t\r\n "] {
                assert_eq!(
                    decode_params(format, "getinfo", body).unwrap(),
                    None,
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn json_objects_and_arrays_pass_as_is() {
        let body = br#"{"key":["project","x"],"n":12345678901234567890,"f":1.5,"b":true,"z":null}"#;
        assert_eq!(
            decode_params(Format::Json, "listdatastore", body).unwrap(),
            Some(
                json!({"key":["project","x"],"n":12345678901234567890u64,"f":1.5,"b":true,"z":null})
            )
        );
        assert_eq!(
            decode_params(Format::Json, "invoice", br#"[1000, "label", "desc"]"#).unwrap(),
            Some(json!([1000, "label", "desc"]))
        );
        assert_eq!(
            decode_params(Format::Json, "getinfo", b"{}").unwrap(),
            Some(json!({}))
        );
        assert_eq!(
            decode_params(Format::Json, "getinfo", b"[]").unwrap(),
            Some(json!([]))
        );
        assert_eq!(
            decode_params(Format::Json, "getinfo", b" null ").unwrap(),
            None
        );
    }

    #[test]
    fn json_scalars_are_400() {
        for (body, kind) in [
            ("1", "a number"),
            ("\"x\"", "a string"),
            ("true", "a boolean"),
        ] {
            let err = decode_params(Format::Json, "getinfo", body.as_bytes()).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                message(&err),
                format!(
                    "Invalid JSON body: params must be an object (named) or an array \
                     (positional), not {kind}"
                )
            );
        }
    }

    #[test]
    fn json_syntax_errors_are_400() {
        for body in [
            &b"{"[..],
            b"{\"a\":}",
            b"[1,]",
            b"{} {}",
            b"\xff\xfe",
            b"{\"a\":\"\xff\"}",
        ] {
            let err = decode_params(Format::Json, "getinfo", body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(message(&err).starts_with("Invalid JSON body: "), "{err}");
        }
    }

    #[test]
    fn json_deep_nesting_is_400_quickly() {
        let start = Instant::now();
        let body = "[".repeat(100_000);
        let err = decode_params(Format::Json, "getinfo", body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(message(&err).contains("recursion limit exceeded"), "{err}");
        let body = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(decode_params(Format::Json, "getinfo", body.as_bytes())
            .unwrap()
            .is_some());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    // ---- decode: YAML -------------------------------------------------------------------------

    #[test]
    fn yaml_objects_and_arrays() {
        let body = b"key:\n  - project\n  - x\nn: 42\nb: true\ns: 'true'\nz: ~\n";
        assert_eq!(
            decode_params(Format::Yaml, "listdatastore", body).unwrap(),
            Some(json!({"key":["project","x"],"n":42,"b":true,"s":"true","z":null}))
        );
        assert_eq!(
            decode_params(Format::Yaml, "invoice", b"- 1000\n- label\n- desc\n").unwrap(),
            Some(json!([1000, "label", "desc"]))
        );
        assert_eq!(
            decode_params(Format::Yaml, "invoice", b"{amount_msat: 1000, label: x}").unwrap(),
            Some(json!({"amount_msat": 1000, "label": "x"}))
        );
        assert_eq!(decode_params(Format::Yaml, "getinfo", b"~").unwrap(), None);
        assert_eq!(
            decode_params(Format::Yaml, "getinfo", b"null\n").unwrap(),
            None
        );
    }

    #[test]
    fn yaml_scalars_and_syntax_errors_are_400() {
        let err = decode_params(Format::Yaml, "getinfo", b"hello").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            message(&err),
            "Invalid YAML body: params must be an object (named) or an array (positional), \
             not a string"
        );
        for body in [
            &b"a: [1, 2"[..],
            b"a: b: c",
            b"---\na: 1\n---\nb: 2\n",
            b"\xff: 1",
            b"? [1]\n: x\n",
        ] {
            let err = decode_params(Format::Yaml, "getinfo", body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body:?}");
            assert!(message(&err).starts_with("Invalid YAML body: "), "{err}");
        }
    }

    #[test]
    fn yaml_billion_laughs_is_400_quickly() {
        let body = "\
a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
";
        let start = Instant::now();
        let err = decode_params(Format::Yaml, "getinfo", body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(message(&err).contains("repetition limit exceeded"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        // Ordinary aliases still work.
        assert_eq!(
            decode_params(Format::Yaml, "x", b"a: &x [1, 2]\nb: *x\n").unwrap(),
            Some(json!({"a": [1, 2], "b": [1, 2]}))
        );
    }

    #[test]
    fn yaml_deep_nesting_is_400_quickly() {
        let start = Instant::now();
        let body = format!("{}1\n", "- ".repeat(100_000));
        let err = decode_params(Format::Yaml, "getinfo", body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(message(&err).starts_with("Invalid YAML body: "), "{err}");
        let body = "[".repeat(100_000);
        let err = decode_params(Format::Yaml, "getinfo", body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    // ---- encode -------------------------------------------------------------------------------

    #[test]
    fn json_result_is_passed_through_byte_for_byte() {
        let result =
            raw(r#"{ "id" : "02ab",  "num_peers":3, "big": 123456789012345678901234567890 }"#);
        let body = encode_result(Format::Json, "getinfo", &result).unwrap();
        assert_eq!(&body[..], result.get().as_bytes());
    }

    #[test]
    fn yaml_result() {
        let result =
            raw(r#"{"id":"02ab","num_peers":3,"flag":true,"list":["a","true"],"none":null}"#);
        let body = encode_result(Format::Yaml, "getinfo", &result).unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            text,
            "id: 02ab\nnum_peers: 3\nflag: true\nlist:\n- a\n- 'true'\nnone: null\n"
        );
        // And it reads back as the same value.
        let back: Value = serde_norway::from_str(text).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(result.get()).unwrap());
    }

    #[test]
    fn encode_dispatches_to_xml_and_form() {
        let result = raw(r#"{"label":"a b","amount_msat":50000}"#);
        assert_eq!(
            &encode_result(Format::Xml, "invoice", &result).unwrap()[..],
            &b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><invoice><label>a b</label><amount_msat>50000</amount_msat></invoice>"[..]
        );
        assert_eq!(
            &encode_result(Format::Form, "invoice", &result).unwrap()[..],
            b"label=a+b&amount_msat=50000"
        );
    }

    #[test]
    fn results_beyond_serde_jsons_nesting_limit_are_internal_errors() {
        // lightningd never sends this; the only way a non-JSON encoder can fail.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = encode_result(Format::Yaml, "x", &raw(&deep)).unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            &encode_result(Format::Json, "x", &raw(&deep)).unwrap()[..],
            deep.as_bytes()
        );
    }

    // ---- properties ---------------------------------------------------------------------------

    fn is_client_error(result: &Result<Option<Value>, ApiError>) -> bool {
        match result {
            Ok(_) => true,
            Err(e) => e.status().is_client_error(),
        }
    }

    /// Any JSON value, nested a few levels, with strings full of JSON's and YAML's
    /// punctuation.
    fn json_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[\\[\\]{},:\"\\\\ \n*&a-z-]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-z:,\\[-]{1,4}", inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// The number of values in `value`, itself included.
    fn values_in(value: &Value) -> usize {
        1 + match value {
            Value::Array(items) => items.iter().map(values_in).sum(),
            Value::Object(members) => members.values().map(values_in).sum(),
            _ => 0,
        }
    }

    #[test]
    fn value_count_bounds_of_small_bodies() {
        assert_eq!(value_count_bound(Format::Json, b"[[],[],[]]"), 7);
        assert_eq!(
            value_count_bound(Format::Json, br#"{"a":"[,:\"[","b":[1,2]}"#),
            6
        );
        assert_eq!(value_count_bound(Format::Form, b"a=1&b[0]=2"), 3);
        assert_eq!(value_count_bound(Format::Xml, b"<m><a>1</a></m>"), 5);
    }

    proptest! {
        /// The bound holds for any JSON and YAML document of any values.
        #[test]
        fn value_count_bound_bounds_the_decoded_values(value in json_tree()) {
            let params = Value::Array(vec![value]);
            for format in [Format::Json, Format::Yaml] {
                let body = match format {
                    Format::Json => serde_json::to_vec(&params).unwrap(),
                    _ => serde_norway::to_string(&params).unwrap().into_bytes(),
                };
                let decoded = decode_params(format, "m", &body).unwrap().unwrap();
                prop_assert!(
                    values_in(&decoded) <= value_count_bound(format, &body),
                    "{:?}: {}", format, String::from_utf8_lossy(&body)
                );
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for format in ALL {
                let result = decode_params(format, "getinfo", &body);
                prop_assert!(is_client_error(&result), "{:?}: {:?}", format, result);
            }
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(body in "\\PC{0,200}") {
            for format in ALL {
                let result = decode_params(format, "getinfo", body.as_bytes());
                prop_assert!(is_client_error(&result), "{:?}: {:?}", format, result);
            }
        }

        #[test]
        fn media_type_parsing_never_panics(header in "\\PC{0,100}") {
            if let Err(e) = Format::from_content_type(Some(&header)) {
                prop_assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            if let Err(e) = Format::negotiate(Some(&header)) {
                prop_assert_eq!(e.status(), StatusCode::NOT_ACCEPTABLE);
            }
        }

        #[test]
        fn accept_lists_never_panic(
            header in "((\\*|application|text|[a-z]{1,4})/(\\*|json|yaml|xml|x-yaml|[a-z+.-]{1,8})(;[ ]?q=[0-9.]{0,5})?(;[a-z]=\"[,; a-z]*\")?[ ,]{0,2}){0,6}"
        ) {
            match Format::negotiate(Some(&header)) {
                Ok(format) => prop_assert!(ALL.contains(&format)),
                Err(e) => prop_assert_eq!(e.status(), StatusCode::NOT_ACCEPTABLE),
            }
        }

        #[test]
        fn json_and_yaml_round_trip_through_encode(value in proptest::collection::btree_map("[a-z_]{1,6}", "\\PC{0,10}", 0..6)) {
            let value = serde_json::to_value(value).unwrap();
            let result = raw(&value.to_string());
            for format in [Format::Json, Format::Yaml] {
                let body = encode_result(format, "x", &result).unwrap();
                let back = decode_params(format, "x", &body).unwrap();
                prop_assert_eq!(back.unwrap_or(json!({})), value.clone());
            }
        }
    }
}
