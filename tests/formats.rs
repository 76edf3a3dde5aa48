//! Request bodies by `Content-Type` and responses by `Accept` (docs/api.md, src/format/):
//! the params lightningd receives for each body format, the refusals decided before
//! anything reaches lightningd (400, 406, 413, 415), and responses that parse back to
//! lightningd's result in every format.

use mock_lightningd::fixtures::fixtures;
use mock_lightningd::gateway::Gateway;
use mock_lightningd::RecordedCall;
use quick_xml::events::Event;
use quick_xml::Reader;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap())
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
    /// What lightningd received for this request.
    calls: Vec<RecordedCall>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("status {}: not JSON ({e}): {}", self.status, self.text))
    }

    /// Asserts a JSON error: status, `application/json`, the code, and the message's start.
    fn assert_error(&self, status: u16, code: i64, message_start: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            content_type(&self.headers),
            Some("application/json"),
            "error bodies are JSON: {}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.text);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(message_start),
            "message {message:?} should start with {message_start:?}"
        );
        assert_eq!(
            body.as_object().map(Map::len),
            Some(2),
            "code and message only: {}",
            self.text
        );
    }

    /// Asserts the request reached lightningd as checkrune then `method`, both with `params`.
    fn assert_params(&self, gateway: &Gateway, method: &str, params: Value) {
        assert_eq!(self.status, 201, "{}", self.text);
        let methods: Vec<&str> = self.calls.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(methods, ["checkrune", method]);
        assert_eq!(
            self.calls[0].params,
            json!({"rune": gateway.rune, "method": method, "params": params}),
            "checkrune's params"
        );
        assert_eq!(self.calls[1].params, params, "{method}'s params");
    }
}

/// `POST /v1/<method>` with the rune, this `Content-Type` (if any), `Accept` (if any) and body.
async fn send(
    gateway: &Gateway,
    method: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mark = gateway.settled().await;
    let mut request = gateway
        .post(method)
        .header("Rune", &gateway.rune)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.expect("the request is answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    Answer {
        status,
        headers,
        text,
        calls: gateway.calls_since(mark),
    }
}

fn expected_getinfo(gateway: &Gateway) -> Value {
    let mut result = fixtures().getinfo_result.clone();
    result["lightning-dir"] = json!(gateway.node.lightning_dir().to_string_lossy());
    result["blockheight"] = json!(0);
    result
}

/// Asks the mock directly on its socket (not through the plugin).
async fn direct_rpc(gateway: &Gateway, method: &str, params: Value) -> Value {
    gateway.lightningd_call(method, params).await["result"].clone()
}

/// Reads an XML document the way docs/api.md describes it: child elements are members, a
/// repeated element an array, text a string. Returns the root's name and value.
fn parse_xml(text: &str) -> (String, Value) {
    struct Open {
        name: String,
        members: Map<String, Value>,
        text: String,
        children: bool,
    }
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root = None;
    let finish = |open: Open| -> Value {
        if open.children {
            Value::Object(open.members)
        } else {
            Value::String(open.text)
        }
    };
    let add = |parent: &mut Open, name: String, value: Value| {
        parent.children = true;
        match parent.members.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                parent.members.insert(name, value);
            }
        }
    };
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("bad XML ({e}): {text}"))
        {
            Event::Start(start) => stack.push(Open {
                name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
                members: Map::new(),
                text: String::new(),
                children: false,
            }),
            Event::Empty(start) => {
                let name = String::from_utf8(start.name().as_ref().to_vec()).unwrap();
                match stack.last_mut() {
                    Some(parent) => add(parent, name, Value::String(String::new())),
                    None => root = Some((name, Value::String(String::new()))),
                }
            }
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().unwrap() {
                    Some(c) => c,
                    None => match &*r.decode().unwrap() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => panic!("unknown entity {other}"),
                    },
                };
                if let Some(open) = stack.last_mut() {
                    open.text.push(c);
                }
            }
            Event::End(_) => {
                let done = stack.pop().expect("balanced elements");
                let name = done.name.clone();
                let value = finish(done);
                match stack.last_mut() {
                    Some(parent) => add(parent, name, value),
                    None => root = Some((name, value)),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    root.unwrap_or_else(|| panic!("no root element: {text}"))
}

/// What a JSON value looks like once written as XML and read back: scalars are text, an
/// empty array is nothing, a one-item array is that item.
fn as_xml_reads_it(value: &Value) -> Option<Value> {
    Some(match value {
        Value::Null => Value::String(String::new()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => Value::String(s.clone()),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().filter_map(as_xml_reads_it).collect();
            match items.len() {
                0 => return None,
                1 => items.remove(0),
                _ => Value::Array(items),
            }
        }
        Value::Object(members) => Value::Object(
            members
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), as_xml_reads_it(v)?)))
                .collect(),
        ),
    })
}

/// A JSON value flattened with bracket syntax, as docs/api.md describes the form encoding.
fn flatten(path: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                let key = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}[{key}]")
                };
                flatten(key, member, out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(format!("{path}[{index}]"), item, out);
            }
        }
        Value::Null => out.push((path, String::new())),
        Value::String(s) => out.push((path, s.clone())),
        other => out.push((path, other.to_string())),
    }
}

/// Stores two entries under `fmt` so listdatastore has a list result with two-part keys.
async fn two_datastore_entries(gateway: &Gateway) -> Value {
    for (name, data) in [("a", "one & <two>"), ("b", "three")] {
        let answer = send(
            gateway,
            "datastore",
            None,
            None,
            json!({"key": ["fmt", name], "string": data}).to_string(),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    let answer = send(
        gateway,
        "listdatastore",
        None,
        None,
        json!({"key": ["fmt"]}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let result = answer.json();
    assert_eq!(result["datastore"].as_array().map(Vec::len), Some(2));
    result
}

// ---------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn json_object_and_array_bodies_reach_lightningd_as_sent() {
    let gateway = Gateway::start().await;
    for (n, content_type) in [
        Some("application/json"),
        None,
        Some("application/json; charset=utf-8"),
        Some("text/json"),
    ]
    .into_iter()
    .enumerate()
    {
        let object =
            json!({"key": ["fmt", format!("json{n}")], "string": "named", "mode": "must-create"});
        let answer = send(
            &gateway,
            "datastore",
            content_type,
            None,
            object.to_string(),
        )
        .await;
        answer.assert_params(&gateway, "datastore", object);
    }

    let array = json!([["fmt", "array"], "positional"]);
    let answer = send(
        &gateway,
        "datastore",
        Some("application/json"),
        None,
        array.to_string(),
    )
    .await;
    answer.assert_params(&gateway, "datastore", array);
    let stored = direct_rpc(&gateway, "listdatastore", json!({"key": ["fmt", "array"]})).await;
    assert_eq!(stored["datastore"][0]["string"], "positional");
}

#[tokio::test]
async fn yaml_bodies_become_the_same_params() {
    let gateway = Gateway::start().await;
    let answer = send(
        &gateway,
        "datastore",
        Some("application/yaml"),
        None,
        "key:\n  - fmt\n  - yaml\nstring: from yaml\n",
    )
    .await;
    answer.assert_params(
        &gateway,
        "datastore",
        json!({"key": ["fmt", "yaml"], "string": "from yaml"}),
    );
    let answer = send(
        &gateway,
        "datastore",
        Some("application/x-yaml"),
        None,
        "- [fmt, yaml2]\n- positional\n",
    )
    .await;
    answer.assert_params(
        &gateway,
        "datastore",
        json!([["fmt", "yaml2"], "positional"]),
    );
    let answer = send(
        &gateway,
        "invoice",
        Some("text/yaml"),
        None,
        "amount_msat: 1000\nlabel: yaml-invoice\ndescription: d\n",
    )
    .await;
    answer.assert_params(
        &gateway,
        "invoice",
        json!({"amount_msat": 1000, "label": "yaml-invoice", "description": "d"}),
    );
}

#[tokio::test]
async fn xml_bodies_take_the_method_as_root_and_repeat_elements_for_arrays() {
    let gateway = Gateway::start().await;
    let answer = send(
        &gateway,
        "listdatastore",
        Some("application/xml"),
        None,
        "<listdatastore><key>project</key></listdatastore>",
    )
    .await;
    answer.assert_params(&gateway, "listdatastore", json!({"key": "project"}));

    let answer = send(
        &gateway,
        "datastore",
        Some("application/xml"),
        None,
        "<?xml version=\"1.0\"?>\n<datastore>\n  <key>fmt</key>\n  <key>xml</key>\n  \
         <string>a &amp; b</string>\n</datastore>\n",
    )
    .await;
    answer.assert_params(
        &gateway,
        "datastore",
        json!({"key": ["fmt", "xml"], "string": "a & b"}),
    );
    let stored = direct_rpc(&gateway, "listdatastore", json!({"key": ["fmt", "xml"]})).await;
    assert_eq!(stored["datastore"][0]["string"], "a & b");

    let answer = send(
        &gateway,
        "listdatastore",
        Some("text/xml"),
        None,
        "<listdatastore><key>fmt</key><key>xml</key></listdatastore>",
    )
    .await;
    answer.assert_params(&gateway, "listdatastore", json!({"key": ["fmt", "xml"]}));
}

#[tokio::test]
async fn form_bodies_use_bracket_syntax_for_arrays() {
    let gateway = Gateway::start().await;
    let answer = send(
        &gateway,
        "listdatastore",
        Some("application/x-www-form-urlencoded"),
        None,
        "key[0]=a&key[1]=b",
    )
    .await;
    answer.assert_params(&gateway, "listdatastore", json!({"key": ["a", "b"]}));

    let answer = send(
        &gateway,
        "datastore",
        Some("application/x-www-form-urlencoded"),
        None,
        "key%5B0%5D=fmt&key%5B1%5D=form&string=hello+form%21",
    )
    .await;
    answer.assert_params(
        &gateway,
        "datastore",
        json!({"key": ["fmt", "form"], "string": "hello form!"}),
    );
    let stored = direct_rpc(&gateway, "listdatastore", json!({"key": ["fmt", "form"]})).await;
    assert_eq!(stored["datastore"][0]["string"], "hello form!");
}

#[tokio::test]
async fn bodies_that_do_not_parse_are_400_naming_the_format_and_reach_nothing() {
    let gateway = Gateway::start().await;
    let cases = [
        ("application/json", "{\"key\": ", "Invalid JSON body: "),
        (
            "application/json",
            "\"just a string\"",
            "Invalid JSON body: ",
        ),
        ("application/yaml", "key: [1, 2", "Invalid YAML body: "),
        (
            "application/xml",
            "<listdatastore><key>x</listdatastore>",
            "Invalid XML body: ",
        ),
        (
            "application/xml",
            "<getinfo><key>x</key></getinfo>",
            "Invalid XML body: ",
        ),
        (
            "application/x-www-form-urlencoded",
            "key[0=a",
            "Invalid form body: ",
        ),
    ];
    for (content_type, body, message) in cases {
        let answer = send(&gateway, "listdatastore", Some(content_type), None, body).await;
        answer.assert_error(400, -32700, message);
        assert_eq!(
            answer.calls,
            [],
            "{content_type} {body:?}: lightningd saw nothing"
        );
    }
}

#[tokio::test]
async fn unsupported_body_types_are_415_and_reach_nothing() {
    let gateway = Gateway::start().await;
    for content_type in ["text/plain", "image/png", "multipart/form-data; boundary=x"] {
        let answer = send(
            &gateway,
            "invoice",
            Some(content_type),
            None,
            "amount_msat=1000",
        )
        .await;
        answer.assert_error(415, -32600, "Unsupported media type: ");
        assert_eq!(answer.calls, [], "{content_type}: lightningd saw nothing");
    }
}

/// Sends `head` then `body` on a raw connection while reading the answer (write errors are
/// ignored: the plugin may answer and close before the body is sent). Returns the answer.
async fn raw_upload(port: u16, head: String, body: Vec<Vec<u8>>) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(head.as_bytes()).await?;
        for piece in body {
            writer.write_all(&piece).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let read = async {
        let mut response = Vec::new();
        let _ = reader.read_to_end(&mut response).await;
        response
    };
    let (_, response) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(write, read) })
            .await
            .expect("answered within 10 s");
    String::from_utf8_lossy(&response).into_owned()
}

/// Asserts a raw HTTP answer is the 413 JSON error.
fn assert_raw_413(response: &str) {
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "expected a 413: {response}"
    );
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete answer");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], -32600);
    assert!(body["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Payload too large: "));
}

#[tokio::test]
async fn bodies_over_8_mib_are_413_and_reach_nothing() {
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    let size = 9 * 1024 * 1024;

    // With a Content-Length.
    let head = format!(
        "POST /v1/listdatastore HTTP/1.1\r\nHost: 127.0.0.1\r\nRune: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n",
        gateway.rune
    );
    let mut body = b"{\"key\": \"".to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    let response = raw_upload(gateway.port, head, vec![body]).await;
    assert_raw_413(&response);

    // Chunked, without a Content-Length: the limit is enforced while reading.
    let head = format!(
        "POST /v1/listdatastore HTTP/1.1\r\nHost: 127.0.0.1\r\nRune: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        gateway.rune
    );
    let mut chunks = Vec::new();
    for _ in 0..9 {
        let mut chunk = format!("{:x}\r\n", 1024 * 1024).into_bytes();
        chunk.extend(std::iter::repeat_n(b' ', 1024 * 1024));
        chunk.extend_from_slice(b"\r\n");
        chunks.push(chunk);
    }
    chunks.push(b"0\r\n\r\n".to_vec());
    let response = raw_upload(gateway.port, head, chunks).await;
    assert_raw_413(&response);

    assert_eq!(gateway.calls_since(mark), [], "lightningd saw nothing");
    // The plugin still answers.
    let answer = send(&gateway, "getinfo", None, None, "").await;
    assert_eq!(answer.status, 201, "{}", answer.text);
}

#[tokio::test]
async fn an_http_client_uploading_9_mib_receives_the_413() {
    // What an ordinary client (reqwest/hyper, like Python's requests) sees: it writes the
    // whole body, then reads the answer. If the plugin answers 413 and closes the connection
    // without reading the rest of the body, the client's upload fails (broken pipe /
    // connection reset) and it never sees the 413. Repeated because it is a race.
    let gateway = Gateway::start().await;
    let mark = gateway.settled().await;
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let mut body = String::from("{\"key\": \"");
        body.push_str(&"x".repeat(9 * 1024 * 1024));
        body.push_str("\"}");
        let result = gateway
            .post("listdatastore")
            .header("Rune", &gateway.rune)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        outcomes.push(match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                format!("{status} {text}")
            }
            Err(e) => format!("transport error: {e:?}"),
        });
    }
    let failures: Vec<&String> = outcomes
        .iter()
        .filter(|o| !o.starts_with("413 {\"code\":-32600,\"message\":\"Payload too large: "))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 20 uploads of 9 MiB did not get the 413: {:#?}",
        failures.len(),
        failures
    );
    assert_eq!(gateway.calls_since(mark), [], "lightningd saw nothing");
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn json_is_the_default_response_format() {
    let gateway = Gateway::start().await;
    let expected = expected_getinfo(&gateway);
    for accept in [
        None,
        Some("*/*"),
        Some("application/*"),
        Some("application/json"),
        Some("text/html, */*;q=0.1"),
    ] {
        let answer = send(&gateway, "getinfo", None, accept, "").await;
        assert_eq!(answer.status, 201, "{accept:?}: {}", answer.text);
        assert_eq!(
            content_type(&answer.headers),
            Some("application/json"),
            "{accept:?}"
        );
        assert_eq!(answer.json(), expected, "{accept:?}");
    }
}

#[tokio::test]
async fn yaml_responses_parse_back_to_the_result() {
    let gateway = Gateway::start().await;
    for accept in [
        "application/yaml",
        "application/xml;q=0.5, application/yaml",
    ] {
        let answer = send(&gateway, "getinfo", None, Some(accept), "").await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        assert_eq!(content_type(&answer.headers), Some("application/yaml"));
        let back: Value = serde_norway::from_str(&answer.text)
            .unwrap_or_else(|e| panic!("not YAML ({e}): {}", answer.text));
        assert_eq!(back, expected_getinfo(&gateway), "{}", answer.text);
    }
}

#[tokio::test]
async fn xml_responses_are_rooted_at_the_method_and_parse_back() {
    let gateway = Gateway::start().await;
    let answer = send(&gateway, "getinfo", None, Some("application/xml"), "").await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(content_type(&answer.headers), Some("application/xml"));
    let (root, value) = parse_xml(&answer.text);
    assert_eq!(root, "getinfo", "{}", answer.text);
    assert_eq!(
        Some(value),
        as_xml_reads_it(&expected_getinfo(&gateway)),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("<alias>ORANGETRAWL</alias>"));

    // A list: repeated elements.
    let listed = two_datastore_entries(&gateway).await;
    let answer = send(
        &gateway,
        "listdatastore",
        None,
        Some("application/xml"),
        json!({"key": ["fmt"]}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(content_type(&answer.headers), Some("application/xml"));
    let (root, value) = parse_xml(&answer.text);
    assert_eq!(root, "listdatastore");
    assert_eq!(Some(value), as_xml_reads_it(&listed), "{}", answer.text);
    assert_eq!(
        answer.text.matches("<datastore>").count(),
        2,
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn form_responses_flatten_the_result_with_brackets() {
    let gateway = Gateway::start().await;
    let answer = send(
        &gateway,
        "getinfo",
        None,
        Some("application/x-www-form-urlencoded"),
        "",
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(
        content_type(&answer.headers),
        Some("application/x-www-form-urlencoded")
    );
    let pairs: Vec<(String, String)> = form_urlencoded::parse(answer.text.as_bytes())
        .into_owned()
        .collect();
    let mut expected = Vec::new();
    flatten(String::new(), &expected_getinfo(&gateway), &mut expected);
    assert_eq!(pairs, expected, "{}", answer.text);
    assert!(pairs.contains(&("binding[0][type]".into(), "ipv4".into())));

    let listed = two_datastore_entries(&gateway).await;
    let answer = send(
        &gateway,
        "listdatastore",
        None,
        Some("application/x-www-form-urlencoded"),
        json!({"key": ["fmt"]}).to_string(),
    )
    .await;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(answer.text.as_bytes())
        .into_owned()
        .collect();
    let mut expected = Vec::new();
    flatten(String::new(), &listed, &mut expected);
    assert_eq!(pairs, expected, "{}", answer.text);
    assert!(pairs.contains(&("datastore[0][string]".into(), "one & <two>".into())));
}

#[tokio::test]
async fn unacceptable_accept_is_406_before_anything_reaches_lightningd() {
    let gateway = Gateway::start().await;
    let invoice = json!({"amount_msat": 1000, "label": "png", "description": "d"}).to_string();
    for accept in ["image/png", "text/html", "application/json;q=0, image/png"] {
        let answer = send(&gateway, "invoice", None, Some(accept), invoice.clone()).await;
        answer.assert_error(406, -32600, "Not acceptable: ");
        assert_eq!(answer.calls, [], "{accept}: not even checkrune");
    }
    // Without a rune, too: 406 is decided first.
    let mark = gateway.node.calls().len();
    let response = gateway
        .post("invoice")
        .header("Accept", "image/png")
        .body(invoice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 406);
    assert_eq!(gateway.calls_since(mark), []);
    assert_eq!(
        direct_rpc(&gateway, "listinvoices", json!({})).await,
        json!({"invoices": []}),
        "no invoice was created"
    );
}

#[tokio::test]
async fn error_bodies_are_json_whatever_accept_asks_for() {
    let gateway = Gateway::start().await;
    let foreign = mock_lightningd::fixtures::load_fixture("rpc/checkrune-c-foreign-rune.json")
        ["request"]["params"]["rune"]
        .as_str()
        .unwrap()
        .to_string();
    for accept in [
        "application/xml",
        "application/yaml",
        "application/x-www-form-urlencoded",
    ] {
        // 403
        let response = gateway
            .post("getinfo")
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);
        assert_eq!(content_type(response.headers()), Some("application/json"));
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"code":1501,"message":"Not authorized: Missing rune"}"#
        );
        // 401
        let response = gateway
            .post("getinfo")
            .header("Rune", &foreign)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(content_type(response.headers()), Some("application/json"));
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"code":1501,"message":"Not authorized: Not derived from master"}"#
        );
        // 500
        let answer = send(
            &gateway,
            "invoice",
            None,
            Some(accept),
            r#"{"amount_msat": 1000}"#,
        )
        .await;
        assert_eq!(answer.status, 500);
        assert_eq!(content_type(&answer.headers), Some("application/json"));
        assert_eq!(
            answer.text,
            r#"{"code":-32602,"message":"missing required parameter: label"}"#
        );
        // 404 (lightningd's)
        let answer = send(&gateway, "no-such-method", None, Some(accept), "").await;
        assert_eq!(answer.status, 404);
        assert_eq!(content_type(&answer.headers), Some("application/json"));
        assert_eq!(
            answer.text,
            r#"{"code":-32601,"message":"Unknown command 'no-such-method'"}"#
        );
        // 400 and 415
        let answer = send(
            &gateway,
            "getinfo",
            Some("application/json"),
            Some(accept),
            "{",
        )
        .await;
        answer.assert_error(400, -32700, "Invalid JSON body: ");
        let answer = send(&gateway, "getinfo", Some("text/plain"), Some(accept), "x").await;
        answer.assert_error(415, -32600, "Unsupported media type: ");
        // 405 and 404 paths
        for (path, status) in [("/v1/getinfo", 405), ("/nope", 404)] {
            let response = gateway
                .http
                .get(gateway.url(path))
                .header("Accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(content_type(response.headers()), Some("application/json"));
            let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            assert_eq!(body["code"], -32601);
        }
    }
}
