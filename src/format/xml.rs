//! XML in both directions: request bodies (`<method><key>value</key></method>`) into
//! lightningd params, and lightningd results into `<method>...</method>` documents.
//!
//! Mapping (both directions):
//! - the root element is named after the method;
//! - child elements are object members; a repeated element is an array;
//! - text is a string, except exactly `true`/`false`, which are booleans; an empty element is
//!   `""` (and `null` is written as an empty element);
//! - arrays directly inside arrays are written as repeated `<item>` elements;
//! - attributes are ignored, a DTD is skipped and never expanded: only the five predefined
//!   entities and character references are resolved, any other reference is a 400.
//!
//! Decoding walks quick-xml's events with an explicit stack (never recursion), limited to
//! [`MAX_DEPTH`] nested elements.

use super::{text_value, Format};
use crate::error::ApiError;
use quick_xml::events::{BytesDecl, BytesEnd, BytesRef, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};
use serde_json::{Map, Value};

/// The deepest element nesting a request body may have, the root counting as 1.
pub(super) const MAX_DEPTH: usize = 64;

/// The element used for a member of an array that is itself in an array.
const ITEM: &str = "item";

fn bad(reason: impl Into<String>) -> ApiError {
    Format::Xml.bad_body(reason)
}

/// An element being read: its name, the members built from its children so far, its text.
struct Open {
    name: String,
    members: Map<String, Value>,
    has_children: bool,
    text: String,
}

impl Open {
    fn new(name: String) -> Self {
        Open {
            name,
            members: Map::new(),
            has_children: false,
            text: String::new(),
        }
    }

    /// Adds a child element's value; a name seen before turns the member into an array.
    /// (An element's own value is never an array, so an array here always means "repeated".)
    fn add_child(&mut self, name: String, value: Value) {
        self.has_children = true;
        match self.members.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                self.members.insert(name, value);
            }
        }
    }

    /// The element's value once its end tag is read.
    fn finish(self) -> Result<Value, ApiError> {
        if !self.has_children {
            return Ok(text_value(self.text));
        }
        if !is_blank(&self.text) {
            return Err(bad(format!(
                "element <{}> mixes text with child elements",
                self.name
            )));
        }
        Ok(Value::Object(self.members))
    }
}

fn is_blank(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Where the reader is in the document.
enum Stage {
    /// Before the root element: only the prolog (declaration, comments, DTD) may appear.
    Prolog,
    /// Inside the root element; the stack is never empty here.
    Root(Vec<Open>),
    /// After the root element: only comments, processing instructions and blanks.
    Done(Option<Value>),
}

/// Decodes an XML request body whose root element must be named after `method`.
pub(super) fn decode(method: &str, body: &[u8]) -> Result<Option<Value>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| bad(format!("not UTF-8 ({e})")))?;
    let expected = xml_name(method);
    let mut reader = Reader::from_str(text);
    let mut stage = Stage::Prolog;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| bad(format!("{e} (at byte {})", reader.error_position())))?;
        stage = match (stage, event) {
            (stage, Event::Comment(_) | Event::PI(_) | Event::Decl(_)) => stage,
            (Stage::Prolog, Event::DocType(_)) => Stage::Prolog,
            (stage @ (Stage::Prolog | Stage::Done(_)), Event::Text(t)) => {
                if !is_blank(&content(t.xml10_content())?) {
                    return Err(bad(outside_root(&stage)));
                }
                stage
            }
            (Stage::Prolog, Event::Start(start)) => {
                Stage::Root(vec![Open::new(root_name(&start, &expected)?)])
            }
            (Stage::Prolog, Event::Empty(start)) => {
                root_name(&start, &expected)?;
                Stage::Done(None)
            }
            (Stage::Root(mut stack), event) => match step(&mut stack, event)? {
                Some(root) => Stage::Done(root),
                None => Stage::Root(stack),
            },
            (Stage::Done(params), Event::Eof) => return Ok(params),
            (Stage::Prolog, Event::Eof) => return Err(bad("no root element")),
            (stage, _) => return Err(bad(outside_root(&stage))),
        };
    }
}

fn outside_root(stage: &Stage) -> &'static str {
    match stage {
        Stage::Done(_) => "content after the root element",
        _ => "content before the root element",
    }
}

/// Checks the root element's name and returns it.
fn root_name(start: &BytesStart<'_>, expected: &str) -> Result<String, ApiError> {
    let name = element_name(start)?;
    if name != expected {
        return Err(bad(format!(
            "the root element must be <{expected}> (the method name), not <{name}>"
        )));
    }
    Ok(name)
}

fn element_name(start: &BytesStart<'_>) -> Result<String, ApiError> {
    std::str::from_utf8(start.name().as_ref())
        .map(str::to_string)
        .map_err(|e| bad(format!("element name is not UTF-8 ({e})")))
}

fn content<E: std::fmt::Display>(
    decoded: Result<std::borrow::Cow<'_, str>, E>,
) -> Result<String, ApiError> {
    decoded
        .map(|c| c.into_owned())
        .map_err(|e| bad(e.to_string()))
}

/// Handles one event inside the root element. Returns `Some(params)` when the root closes.
fn step(stack: &mut Vec<Open>, event: Event<'_>) -> Result<Option<Option<Value>>, ApiError> {
    let depth = stack.len();
    let Some(top) = stack.last_mut() else {
        return Err(bad("unbalanced elements"));
    };
    match event {
        Event::Start(start) => {
            if depth >= MAX_DEPTH {
                return Err(bad(format!(
                    "elements nested deeper than {MAX_DEPTH} levels"
                )));
            }
            stack.push(Open::new(element_name(&start)?));
        }
        Event::Empty(start) => {
            if depth >= MAX_DEPTH {
                return Err(bad(format!(
                    "elements nested deeper than {MAX_DEPTH} levels"
                )));
            }
            top.add_child(element_name(&start)?, Value::String(String::new()));
        }
        Event::Text(t) => top.text.push_str(&checked(content(t.xml10_content())?)?),
        Event::CData(c) => top.text.push_str(&checked(content(c.decode())?)?),
        Event::GeneralRef(r) => top.text.push(resolve(&r)?),
        Event::End(_) => {
            // quick-xml has already checked that the end tag matches.
            let Some(done) = stack.pop() else {
                return Err(bad("unbalanced elements"));
            };
            let name = done.name.clone();
            match stack.last_mut() {
                Some(parent) => parent.add_child(name, done.finish()?),
                None if !done.has_children && is_blank(&done.text) => return Ok(Some(None)),
                None if !done.has_children => {
                    return Err(bad(format!(
                        "the root element <{name}> must contain one element per parameter, not text"
                    )))
                }
                None => return Ok(Some(Some(done.finish()?))),
            }
        }
        Event::Eof => {
            return Err(bad(format!(
                "unexpected end of document inside <{}>",
                top.name
            )))
        }
        Event::Comment(_) | Event::PI(_) => {}
        Event::Decl(_) | Event::DocType(_) => {
            return Err(bad("declaration inside an element"));
        }
    }
    Ok(None)
}

/// Refuses text with characters XML 1.0 does not allow (NUL and most C0 controls).
fn checked(text: String) -> Result<String, ApiError> {
    match text.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(bad(format!(
            "character U+{:04X} is not allowed in XML",
            u32::from(c)
        ))),
        None => Ok(text),
    }
}

/// XML 1.0 `Char` (Rust's `char` already excludes surrogates).
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Resolves a reference: a character reference or one of the five predefined entities.
/// Nothing else is expanded (a DTD is never read), so anything else is refused.
fn resolve(reference: &BytesRef<'_>) -> Result<char, ApiError> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| bad(format!("bad character reference: {e}")))?
    {
        return match is_xml_char(c) {
            true => Ok(c),
            false => Err(bad(format!(
                "character reference to U+{:04X}, which XML does not allow",
                u32::from(c)
            ))),
        };
    }
    let name = content(reference.decode())?;
    match name.as_str() {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(bad(format!(
            "undefined entity &{name}; (only the predefined XML entities are accepted)"
        ))),
    }
}

/// Makes any string a valid XML element name, deterministically: characters that may not
/// appear in a name (and `:`, which would mean a namespace prefix) become `_`; a name that
/// is empty, starts with a character that may not start a name (a digit, `-`, `.`) or starts
/// with `xml` in any case (reserved) gets a `_` prefix.
pub(super) fn xml_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    let reserved = name
        .get(..3)
        .is_some_and(|start| start.eq_ignore_ascii_case("xml"));
    if reserved || !name.chars().next().is_some_and(is_name_start_char) {
        name.insert(0, '_');
    }
    name
}

/// XML 1.0 (5th ed.) `NameStartChar`, without `:`.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (5th ed.) `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Encodes a result as `<?xml ...?><method>...</method>`. Never fails.
pub(super) fn encode(method: &str, value: &Value) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new());
    // Writing into a Vec cannot fail, so every io::Result below is Ok and safely ignored.
    let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    write_single(&mut writer, &xml_name(method), value);
    writer.into_inner()
}

/// Writes an object member: an array as one element per item (nothing for an empty array),
/// anything else as one element.
fn write_member(writer: &mut Writer<Vec<u8>>, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_single(writer, name, item);
            }
        }
        _ => write_single(writer, name, value),
    }
}

/// Writes one element named `name` holding `value` (an array as `<item>` children).
fn write_single(writer: &mut Writer<Vec<u8>>, name: &str, value: &Value) {
    if value.is_null() {
        let _ = writer.write_event(Event::Empty(BytesStart::new(name)));
        return;
    }
    let _ = writer.write_event(Event::Start(BytesStart::new(name)));
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                write_member(writer, &xml_name(key), member);
            }
        }
        Value::Array(items) => {
            for item in items {
                write_single(writer, ITEM, item);
            }
        }
        Value::String(s) => write_text(writer, s),
        Value::Bool(b) => write_text(writer, if *b { "true" } else { "false" }),
        Value::Number(n) => write_text(writer, &n.to_string()),
        Value::Null => {}
    }
    let _ = writer.write_event(Event::End(BytesEnd::new(name)));
}

/// Writes escaped text. Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE,
/// U+FFFF) become U+FFFD; `\r` is written as `&#13;` so a reader does not turn it into `\n`.
fn write_text(writer: &mut Writer<Vec<u8>>, text: &str) {
    let clean: String = text
        .chars()
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect();
    let escaped = quick_xml::escape::partial_escape(clean.as_str()).replace('\r', "&#13;");
    let _ = writer.write_event(Event::Text(BytesText::from_escaped(escaped)));
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

    fn decode(method: &str, body: &str) -> Result<Option<Value>, ApiError> {
        decode_params(Format::Xml, method, body.as_bytes())
    }

    fn decoded(method: &str, body: &str) -> Value {
        match decode(method, body) {
            Ok(Some(value)) => value,
            other => panic!("{body}: {other:?}"),
        }
    }

    /// Asserts a 400 whose message is `Invalid XML body: <reason>`, `reason` containing `part`.
    fn refused(method: &str, body: &str, part: &str) {
        match decode(method, body) {
            Err(err) => {
                assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body}");
                let message = err.to_string();
                assert!(message.starts_with("Invalid XML body: "), "{message}");
                assert!(message.contains(part), "{body}: {message:?} lacks {part:?}");
            }
            Ok(value) => panic!("{body}: accepted as {value:?}"),
        }
    }

    fn encoded(method: &str, json: &str) -> String {
        let raw = RawValue::from_string(json.to_string()).unwrap();
        let body = encode_result(Format::Xml, method, &raw).unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn root_named_after_the_method_holds_the_params() {
        assert_eq!(
            decoded(
                "listdatastore",
                "<listdatastore><key>project</key></listdatastore>"
            ),
            json!({"key": "project"})
        );
        assert_eq!(
            decoded(
                "invoice",
                "<?xml version=\"1.0\"?>\n<!-- a comment -->\n<invoice>\n  <amount_msat>1000</amount_msat>\n  \
                 <label>l 1</label>\n  <description> two  words </description>\n</invoice>\n"
            ),
            json!({"amount_msat": "1000", "label": "l 1", "description": " two  words "})
        );
    }

    #[test]
    fn wrong_root_is_400_naming_the_expected_one() {
        let err = decode("listdatastore", "<getinfo><key>x</key></getinfo>").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.to_string(),
            "Invalid XML body: the root element must be <listdatastore> (the method name), not <getinfo>"
        );
        refused(
            "listdatastore",
            "<ListDatastore/>",
            "must be <listdatastore>",
        );
        // A method whose name is not an XML name is expected under its sanitized name.
        assert_eq!(decoded("2fa", "<_2fa><a>1</a></_2fa>"), json!({"a": "1"}));
    }

    #[test]
    fn repeated_elements_are_arrays_and_nested_elements_objects() {
        assert_eq!(
            decoded(
                "listdatastore",
                "<listdatastore><key>a</key><key>b</key><key>c</key><other>o</other></listdatastore>"
            ),
            json!({"key": ["a", "b", "c"], "other": "o"})
        );
        assert_eq!(
            decoded(
                "m",
                "<m><outer><inner>1</inner><list><x>a</x></list><list><x>b</x></list></outer></m>"
            ),
            json!({"outer": {"inner": "1", "list": [{"x": "a"}, {"x": "b"}]}})
        );
    }

    #[test]
    fn exactly_true_and_false_are_booleans() {
        assert_eq!(
            decoded(
                "m",
                "<m><a>true</a><b>false</b><c>True</c><d> true</d><e>1</e><f>truex</f></m>"
            ),
            json!({"a": true, "b": false, "c": "True", "d": " true", "e": "1", "f": "truex"})
        );
    }

    #[test]
    fn empty_elements_are_empty_strings_and_attributes_are_ignored() {
        assert_eq!(
            decoded("m", "<m><a/><b></b><c x=\"1\">v</c><d y='2'/></m>"),
            json!({"a": "", "b": "", "c": "v", "d": ""})
        );
        assert_eq!(decoded("m", "<m a=\"1\"><k>v</k></m>"), json!({"k": "v"}));
    }

    #[test]
    fn empty_root_is_no_params() {
        assert_eq!(decode("getinfo", "<getinfo/>").unwrap(), None);
        assert_eq!(decode("getinfo", "<getinfo></getinfo>").unwrap(), None);
        assert_eq!(
            decode(
                "getinfo",
                "<?xml version=\"1.0\"?>\n<getinfo>\n  </getinfo>\n"
            )
            .unwrap(),
            None
        );
        assert_eq!(
            decode("getinfo", "<getinfo><!-- nothing --></getinfo>").unwrap(),
            None
        );
    }

    #[test]
    fn references_cdata_and_line_ends() {
        assert_eq!(
            decoded(
                "m",
                "<m><a>&lt;&gt;&amp;&apos;&quot;</a><b>&#65;&#x42;&#x1F600;</b><c><![CDATA[<x>&amp;]]></c>\
                 <d>one\r\ntwo&#13;</d></m>"
            ),
            json!({"a": "<>&'\"", "b": "AB\u{1F600}", "c": "<x>&amp;", "d": "one\ntwo\r"})
        );
    }

    #[test]
    fn undefined_entities_are_400_and_dtds_are_never_expanded() {
        refused("m", "<m><a>&nbsp;</a></m>", "undefined entity &nbsp;");
        refused(
            "m",
            "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x \"expanded\">]><m><a>&x;</a></m>",
            "undefined entity &x;",
        );
        // The classic billion laughs: refused at the first reference, instantly.
        let start = Instant::now();
        let bomb = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY lol \"lol\">{}]><m><a>&lol9;</a></m>",
            (1..10)
                .map(|i| format!(
                    "<!ENTITY lol{i} \"{}\">",
                    format!("&lol{};", i - 1).repeat(10)
                ))
                .collect::<String>()
        );
        refused("m", &bomb, "undefined entity &lol9;");
        assert!(start.elapsed() < Duration::from_secs(1));
        // External entities are not fetched either.
        refused(
            "m",
            "<!DOCTYPE m [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><m><a>&xxe;</a></m>",
            "undefined entity &xxe;",
        );
        // A DTD without references is simply skipped.
        assert_eq!(
            decoded("m", "<!DOCTYPE m><m><a>1</a></m>"),
            json!({"a": "1"})
        );
        refused("m", "<m><a>&#0;</a></m>", "bad character reference");
        refused("m", "<m><a>&#xZZ;</a></m>", "bad character reference");
    }

    #[test]
    fn malformed_documents_are_400() {
        refused("m", "<m><a>1</b></m>", "");
        refused("m", "<m><a>1</a>", "unexpected end of document inside <m>");
        refused("m", "<m><a>1", "");
        refused(
            "m",
            "<m>text</m>",
            "the root element <m> must contain one element per parameter",
        );
        refused(
            "m",
            "<m>text<a>1</a></m>",
            "element <m> mixes text with child elements",
        );
        refused(
            "m",
            "<m><o><a>1</a>x</o></m>",
            "element <o> mixes text with child elements",
        );
        refused("m", "<m/><m/>", "content after the root element");
        refused("m", "<m></m>trailing", "content after the root element");
        refused("m", "junk<m></m>", "content before the root element");
        refused("m", "<!-- only a comment -->", "no root element");
        refused("m", "<m><a>a & b</a></m>", "");
        refused(
            "m",
            "<m><a>\u{0}</a></m>",
            "character U+0000 is not allowed in XML",
        );
        refused(
            "m",
            "<m><a><![CDATA[\u{1}]]></a></m>",
            "character U+0001 is not allowed",
        );
        refused("m", "<m><a>&#1;</a></m>", "character reference to U+0001");
        assert_eq!(
            decode_params(Format::Xml, "m", b"<m><a>\xff</a></m>")
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        // Trailing comments and blanks are fine.
        assert_eq!(
            decoded("m", "<m><a>1</a></m>\n<!-- end -->\n"),
            json!({"a": "1"})
        );
    }

    #[test]
    fn nesting_is_limited() {
        let nest = |depth: usize| {
            format!(
                "<m>{}v{}</m>",
                "<a>".repeat(depth - 1),
                "</a>".repeat(depth - 1)
            )
        };
        let mut expected = json!("v");
        for _ in 1..MAX_DEPTH - 1 {
            expected = json!({"a": expected});
        }
        assert_eq!(decoded("m", &nest(MAX_DEPTH)), json!({"a": expected}));
        refused(
            "m",
            &nest(MAX_DEPTH + 1),
            "elements nested deeper than 64 levels",
        );
        let empty_too_deep = format!(
            "<m>{}<a/>{}</m>",
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        refused("m", &empty_too_deep, "nested deeper than 64");
    }

    #[test]
    fn deep_nesting_is_400_quickly() {
        let start = Instant::now();
        let body = format!("<a>{}", "<a>".repeat(100_000));
        refused("a", &body, "elements nested deeper than 64 levels");
        let body = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        refused("a", &body, "elements nested deeper than 64 levels");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn encodes_objects_arrays_and_scalars() {
        assert_eq!(
            encoded(
                "listinvoices",
                r#"{"invoices":[{"label":"x","amount_msat":50000,"paid":true},{"label":"y","none":null}]}"#
            ),
            format!(
                "{DECL}<listinvoices><invoices><label>x</label><amount_msat>50000</amount_msat>\
                 <paid>true</paid></invoices><invoices><label>y</label><none/></invoices></listinvoices>"
            )
        );
        assert_eq!(
            encoded(
                "m",
                r#"{"matrix":[[1,2],[],[3]],"empty":[],"obj":{},"s":""}"#
            ),
            format!(
                "{DECL}<m><matrix><item>1</item><item>2</item></matrix><matrix></matrix>\
                 <matrix><item>3</item></matrix><obj></obj><s></s></m>"
            )
        );
        assert_eq!(
            encoded("m", r#"[1,"a"]"#),
            format!("{DECL}<m><item>1</item><item>a</item></m>")
        );
        assert_eq!(encoded("m", r#""text""#), format!("{DECL}<m>text</m>"));
        assert_eq!(encoded("m", "null"), format!("{DECL}<m/>"));
        assert_eq!(encoded("m", "{}"), format!("{DECL}<m></m>"));
    }

    #[test]
    fn encoding_escapes_text() {
        assert_eq!(
            encoded("m", r#"{"s":"<a> & \"b\" 'c' ]]> \r\n\t\u0001\ufffe é"}"#),
            format!(
                "{DECL}<m><s>&lt;a&gt; &amp; \"b\" 'c' ]]&gt; &#13;\n\t\u{FFFD}\u{FFFD} é</s></m>"
            )
        );
    }

    #[test]
    fn names_are_made_valid_deterministically() {
        let cases = [
            ("label", "label"),
            ("amount_msat", "amount_msat"),
            ("allow-deprecated-apis", "allow-deprecated-apis"),
            ("a.b", "a.b"),
            ("", "_"),
            ("1st", "_1st"),
            ("-x", "_-x"),
            (".x", "_.x"),
            ("xml", "_xml"),
            ("XmLfoo", "_XmLfoo"),
            ("xm", "xm"),
            ("a b", "a_b"),
            ("a:b", "a_b"),
            ("a<b>&\"", "a_b___"),
            ("ünïcode", "ünïcode"),
            ("😀", "😀"),
            ("·x", "_·x"),
        ];
        for (key, name) in cases {
            assert_eq!(xml_name(key), name, "{key:?}");
        }
        assert_eq!(
            encoded("dev-x", r#"{"1":"a","a b":"c","xmlns":"d"}"#),
            format!("{DECL}<dev-x><_1>a</_1><a_b>c</a_b><_xmlns>d</_xmlns></dev-x>")
        );
    }

    /// Object keys that are already XML names (so sanitizing leaves them alone).
    fn key() -> impl Strategy<Value = String> {
        "[a-zA-Z_][a-zA-Z0-9_.-]{0,6}".prop_filter("xml prefix is reserved", |k| {
            !k.to_ascii_lowercase().starts_with("xml")
        })
    }

    /// Non-empty strings other than `true`/`false`, with markup and line-end characters.
    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof!["\\PC{1,12}", "[ \t\r\n<>&'\"\\]a-z]{1,8}"]
            .prop_filter("booleans read back as booleans", |s| {
                s != "true" && s != "false"
            })
            .prop_map(Value::String)
    }

    /// Objects of leaves, non-empty objects, and arrays of two or more leaves or objects:
    /// everything XML can carry without loss.
    fn object() -> impl Strategy<Value = Value> {
        let value = leaf().prop_recursive(3, 24, 4, |inner| {
            let obj = proptest::collection::btree_map(key(), inner, 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
                .boxed();
            prop_oneof![
                obj.clone(),
                proptest::collection::vec(prop_oneof![leaf(), obj], 2..4).prop_map(Value::Array),
            ]
        });
        proptest::collection::btree_map(key(), value, 1..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn xml_round_trips(value in object()) {
            let raw = RawValue::from_string(value.to_string()).unwrap();
            let body = encode_result(Format::Xml, "listinvoices", &raw).unwrap();
            prop_assert_eq!(decode_params(Format::Xml, "listinvoices", &body).unwrap(), Some(value));
        }

        #[test]
        fn encoding_any_json_gives_a_readable_document(value in any_json()) {
            let raw = RawValue::from_string(value.to_string()).unwrap();
            let body = encode_result(Format::Xml, "m", &raw).unwrap();
            // Always well-formed: one root, balanced, every event readable, text legal.
            let text = std::str::from_utf8(&body).unwrap();
            let mut reader = Reader::from_str(text);
            let (mut depth, mut roots) = (0usize, 0usize);
            loop {
                match reader.read_event() {
                    Ok(Event::Start(_)) => {
                        roots += usize::from(depth == 0);
                        depth += 1;
                    }
                    Ok(Event::Empty(_)) => roots += usize::from(depth == 0),
                    Ok(Event::End(_)) => depth -= 1,
                    Ok(Event::Text(t)) => {
                        prop_assert!(depth > 0);
                        prop_assert!(checked(t.xml10_content().unwrap().into_owned()).is_ok());
                    }
                    Ok(Event::GeneralRef(r)) => prop_assert!(resolve(&r).is_ok()),
                    Ok(Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => prop_assert!(false, "{}: {}", text, e),
                }
            }
            prop_assert_eq!((depth, roots), (0, 1));
            // Results that are objects (all of lightningd's) also decode without error.
            if value.is_object() {
                let back = decode_params(Format::Xml, "m", &body);
                prop_assert!(back.is_ok(), "{} -> {:?}", text, back);
            }
        }

        #[test]
        fn xml_like_bytes_never_panic(body in "(<[/!?]?[ma]{1,2}[ =\"'/]{0,2}>|&[a-z#0-9x]{0,4};?|[a-z \\]\\[-]{1,3}|<!\\[CDATA\\[|\\]\\]>|<!--|-->)*") {
            let result = decode_params(Format::Xml, "m", body.as_bytes());
            if let Err(err) = result {
                prop_assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            }
        }
    }

    /// Any JSON value, with arbitrary keys and strings.
    fn any_json() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        scalar.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
