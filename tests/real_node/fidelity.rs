//! The mock lightningd against the real one, request by request: the same list of HTTP
//! requests goes to the plugin inside the mock (`tests/mock_lightningd/`) and inside a real
//! regtest lightningd, and the answers must agree: status codes, `Content-Type`, error `code`s
//! and `message`s exactly, and the shape of every JSON body (members and JSON types,
//! recursively). Values such as ids, hashes and timestamps differ from node to node, so only
//! shapes are compared for them. Non-JSON bodies (YAML, XML, form, HTML) must have the same
//! content type and be non-empty on both sides.
//!
//! Each side uses runes made by its own `createrune` with the same restrictions, and its own
//! invoice labels (`fid-mock-...`, `fid-real-...`; messages are compared with the label
//! prefix put back to `{L}`). The mock acts as a `--developer` node, as the real nodes of this
//! tier are started (`node.rs`): a bad parameter is then refused with its value in the
//! message. On failure the test lists every difference, each with the
//! request and both answers.

use crate::node::RealNode;
use crate::support::{block_on, client};
use crate::Test;
use mock_lightningd::MockLightningd;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub const TESTS: &[Test] = &[(
    "fidelity::the_mock_answers_like_the_real_node",
    the_mock_answers_like_the_real_node,
)];

/// The placeholder for a side's label prefix in paths and bodies.
const LABEL: &str = "{L}";

/// Which `Rune` header a request carries.
#[derive(Clone, Copy, Debug)]
enum RuneHeader {
    /// No header.
    Missing,
    /// The side's rune of this kind (see [`rune_kinds`]).
    Made(&'static str),
    /// This text on both sides.
    Literal(&'static str),
    /// A valid rune made by another node (checkrune-c-foreign-rune.json).
    Foreign,
}

/// What of an answer is compared.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Compare {
    /// Status, content type and body (JSON shape, or non-empty for other formats).
    Body,
    /// Status and content type only; the body is not read (event streams never end, the
    /// OpenAPI document lists each node's own commands).
    Head,
}

/// One HTTP request of the list.
#[derive(Clone, Debug)]
struct Request {
    http_method: &'static str,
    /// May contain [`LABEL`].
    path: &'static str,
    rune: RuneHeader,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    /// May contain [`LABEL`].
    body: Option<String>,
    compare: Compare,
}

impl Request {
    fn new(http_method: &'static str, path: &'static str) -> Request {
        Request {
            http_method,
            path,
            rune: RuneHeader::Made("unrestricted"),
            content_type: None,
            accept: None,
            body: None,
            compare: Compare::Body,
        }
    }

    fn rune(mut self, rune: RuneHeader) -> Request {
        self.rune = rune;
        self
    }

    fn json(mut self, body: Value) -> Request {
        self.content_type = Some("application/json");
        self.body = Some(body.to_string());
        self
    }

    fn body(mut self, content_type: &'static str, body: &str) -> Request {
        self.content_type = Some(content_type);
        self.body = Some(body.to_string());
        self
    }

    fn accept(mut self, accept: &'static str) -> Request {
        self.accept = Some(accept);
        self
    }

    fn head_only(mut self) -> Request {
        self.compare = Compare::Head;
        self
    }

    fn describe(&self) -> String {
        let mut text = format!("{} {}", self.http_method, self.path);
        match self.rune {
            RuneHeader::Missing => text.push_str(" (no rune)"),
            RuneHeader::Made(kind) => text.push_str(&format!(" (rune {kind})")),
            RuneHeader::Literal(rune) => text.push_str(&format!(" (rune {rune:?})")),
            RuneHeader::Foreign => text.push_str(" (foreign rune)"),
        }
        if let Some(content_type) = self.content_type {
            text.push_str(&format!(" Content-Type: {content_type}"));
        }
        if let Some(accept) = self.accept {
            text.push_str(&format!(" Accept: {accept}"));
        }
        if let Some(body) = &self.body {
            text.push_str(&format!(" body: {body}"));
        }
        text
    }
}

fn post(path: &'static str) -> Request {
    Request::new("POST", path)
}

/// The runes each side makes with its own `createrune`: a name and the restrictions.
fn rune_kinds() -> Vec<(&'static str, Value)> {
    vec![
        ("unrestricted", Value::Null),
        ("readonly", json!("readonly")),
        ("method-invoice", json!([["method=invoice"]])),
        ("amount-below-1000", json!([["pnameamount_msat<1000"]])),
        ("rate-1", json!([["rate=1"]])),
        // The plugin never passes `nodeid` to checkrune: "id not present".
        (
            "id",
            json!([["id=022d223620a359a47ff7f7ac447c85c46c923da53389221a0054c11c1e3ca31d59"]]),
        ),
        // Blacklisted right after it is made.
        ("blacklisted", Value::Null),
    ]
}

/// The requests, in the order they are sent (later ones depend on earlier ones: the
/// duplicate label, the second use of the rate-limited rune, the datastore entries).
fn requests() -> Vec<Request> {
    use RuneHeader::*;
    let invoice = |suffix: &str, amount: u64| json!({"amount_msat": amount, "label": format!("{LABEL}-{suffix}"), "description": "fidelity"});
    vec![
        // Each route, with an unrestricted rune.
        post("/v1/getinfo"),
        post("/v1/getinfo").json(json!({})),
        post("/v1/invoice").json(invoice("a", 1000)),
        post("/v1/invoice").json(json!([2000, format!("{LABEL}-positional"), "by position"])),
        post("/v1/invoice").json(json!({"amount_msat": "any", "label": format!("{LABEL}-any"), "description": "any"})),
        post("/v1/listinvoices"),
        post("/v1/listinvoices").json(json!({"label": format!("{LABEL}-a")})),
        post("/v1/listinvoices").json(json!({"label": "no-such-label"})),
        post("/v1/datastore").json(json!({"key": ["fidelity", "a"], "string": "hello"})),
        post("/v1/datastore").json(json!({"key": ["fidelity", "b", "c"], "hex": "00ff"})),
        post("/v1/listdatastore").json(json!({"key": ["fidelity"]})),
        post("/v1/listdatastore").json(json!({"key": ["fidelity", "a"]})),
        post("/v1/listdatastore").json(json!({"key": ["fidelity", "nothing"]})),
        post("/v1/deldatastore").json(json!({"key": ["fidelity", "a"]})),
        post("/v1/listdatastore").json(json!({"key": ["fidelity"]})),
        // Methods failing in lightningd.
        post("/v1/invoice").json(invoice("a", 1000)),
        post("/v1/invoice").json(json!({"amount_msat": "lots", "label": format!("{LABEL}-bad"), "description": "d"})),
        post("/v1/invoice").json(json!({"amount_msat": 1000})),
        post("/v1/invoice").json(json!({"amount_msat": 1000, "label": format!("{LABEL}-unknown"), "description": "d", "bogus": 1})),
        post("/v1/invoice").json(json!([1000])),
        post("/v1/datastore").json(json!({"key": ["fidelity", "b", "c"], "hex": "00"})),
        post("/v1/datastore").json(json!({"key": ["fidelity", "new"], "string": "x", "mode": "must-replace"})),
        post("/v1/deldatastore").json(json!({"key": ["fidelity", "a"]})),
        post("/v1/listinvoices").json(json!({"bogus": true})),
        post("/v1/nosuchmethod"),
        // Routes without a rune.
        Request::new("GET", "/v1/list-methods").rune(Missing),
        Request::new("GET", "/swagger.json").rune(Missing).head_only(),
        // The notification stream.
        Request::new("GET", "/v1/notifications").head_only(),
        Request::new("GET", "/v1/notifications").rune(Made("readonly")).head_only(),
        Request::new("GET", "/v1/notifications").rune(Missing),
        Request::new("GET", "/v1/notifications").rune(Literal("garbage")),
        Request::new("GET", "/v1/notifications").rune(Made("method-invoice")),
        // Refusals, and what the same runes allow.
        post("/v1/getinfo").rune(Missing),
        post("/v1/getinfo").rune(Literal("garbage")),
        post("/v1/getinfo").rune(Literal("")),
        post("/v1/getinfo").rune(Foreign),
        post("/v1/getinfo").rune(Made("blacklisted")),
        post("/v1/invoice").rune(Made("readonly")).json(invoice("readonly", 1000)),
        post("/v1/getinfo").rune(Made("readonly")),
        post("/v1/listinvoices").rune(Made("readonly")),
        post("/v1/getinfo").rune(Made("method-invoice")),
        post("/v1/invoice").rune(Made("method-invoice")).json(invoice("method-invoice", 1000)),
        post("/v1/invoice").rune(Made("amount-below-1000")).json(invoice("small", 500)),
        post("/v1/invoice").rune(Made("amount-below-1000")).json(invoice("large", 5000)),
        post("/v1/invoice").rune(Made("amount-below-1000")).json(json!([500, format!("{LABEL}-small-positional"), "d"])),
        post("/v1/getinfo").rune(Made("amount-below-1000")),
        post("/v1/getinfo").rune(Made("rate-1")),
        post("/v1/getinfo").rune(Made("rate-1")),
        post("/v1/listinvoices").rune(Made("rate-1")),
        post("/v1/getinfo").rune(Made("id")),
        // Refusals of the HTTP layer.
        Request::new("GET", "/v1/getinfo"),
        Request::new("PUT", "/v1/getinfo"),
        Request::new("DELETE", "/v1/invoice"),
        Request::new("GET", "/nowhere"),
        post("/v2/getinfo"),
        post("/v1/getinfo").body("text/plain", "hello"),
        post("/v1/getinfo").body("application/octet-stream", "\u{1}\u{2}"),
        post("/v1/getinfo").accept("image/png"),
        post("/v1/getinfo").accept("text/html"),
        post("/v1/getinfo").body("application/json", "{not json"),
        post("/v1/getinfo").body("application/yaml", "key: [unclosed"),
        post("/v1/getinfo").body("application/xml", "<getinfo><unclosed></getinfo>"),
        post("/v1/getinfo").body("application/json", "\"a string\""),
        // Each body format.
        post("/v1/invoice").body(
            "application/yaml",
            "amount_msat: 3000\nlabel: {L}-yaml\ndescription: in yaml\n",
        ),
        post("/v1/listdatastore").body(
            "application/xml",
            "<listdatastore><key>fidelity</key><key>b</key></listdatastore>",
        ),
        post("/v1/invoice").body(
            "application/xml",
            "<invoice><amount_msat>4000</amount_msat><label>{L}-xml</label><description>in xml</description></invoice>",
        ),
        post("/v1/invoice").body(
            "application/x-www-form-urlencoded",
            "amount_msat=5000&label={L}-form&description=in+form",
        ),
        post("/v1/listdatastore").body(
            "application/x-www-form-urlencoded",
            "key[0]=fidelity&key[1]=b",
        ),
        post("/v1/listinvoices").body("application/yaml", "label: {L}-yaml\n"),
        // Each Accept format.
        post("/v1/getinfo").accept("application/json"),
        post("/v1/getinfo").accept("*/*"),
        post("/v1/getinfo").accept("application/yaml"),
        post("/v1/listinvoices").accept("application/xml"),
        post("/v1/listinvoices").accept("application/x-www-form-urlencoded"),
        post("/v1/getinfo").accept("application/xml;q=0.5, application/yaml"),
        post("/v1/nosuchmethod").accept("application/yaml"),
    ]
}

/// One side: the plugin inside the mock or inside the real node.
struct Side {
    name: &'static str,
    base: String,
    rpc_path: std::path::PathBuf,
    runes: HashMap<&'static str, String>,
    /// What [`LABEL`] stands for on this side.
    label_prefix: String,
}

/// What came back.
struct Answer {
    status: u16,
    content_type: String,
    body: Body,
}

enum Body {
    Json(Value),
    /// Not JSON (or not JSON-typed): the text.
    Text(String),
    /// Not read.
    Unread,
    /// The request failed.
    Failed(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}] ", self.status, self.content_type)?;
        match &self.body {
            Body::Json(value) => {
                let text = value.to_string();
                if text.len() > 600 {
                    write!(f, "{}...", prefix(&text, 600))
                } else {
                    write!(f, "{text}")
                }
            }
            Body::Text(text) => write!(f, "({} bytes) {:?}", text.len(), prefix(text, 120)),
            Body::Unread => write!(f, "(body not read)"),
            Body::Failed(error) => write!(f, "request failed: {error}"),
        }
    }
}

fn the_mock_answers_like_the_real_node() {
    let real_node = RealNode::start_http();
    let foreign_rune = foreign_rune();
    let requests = requests();
    let http = client();
    let differences = block_on(async {
        let port = MockLightningd::free_port();
        // The real node runs with `--developer` (node.rs), and so does the mock.
        let mock = MockLightningd::builder()
            .options(json!({"clnrest-port": port, "clnrest-protocol": "http"}))
            .developer(true)
            .start()
            .await;
        assert_eq!(
            mock.init_result(),
            &json!({}),
            "the plugin refused to start in the mock"
        );
        wait_listening(port).await;
        let mut mock_side = Side {
            name: "mock",
            base: format!("http://127.0.0.1:{port}"),
            rpc_path: mock.rpc_path(),
            runes: HashMap::new(),
            label_prefix: "fid-mock".into(),
        };
        let mut real_side = Side {
            name: "real",
            base: real_node.base_url(),
            rpc_path: real_node.rpc_path.clone(),
            runes: HashMap::new(),
            label_prefix: "fid-real".into(),
        };
        for side in [&mut mock_side, &mut real_side] {
            make_runes(side).await;
        }

        let mut differences = Vec::new();
        for (index, request) in requests.iter().enumerate() {
            let mock_answer = send(&http, &mock_side, request, &foreign_rune).await;
            let real_answer = send(&http, &real_side, request, &foreign_rune).await;
            let found = compare(&mock_answer, &real_answer);
            if !found.is_empty() {
                differences.push(format!(
                    "#{index} {}\n  differences:\n    {}\n  mock: {mock_answer}\n  real: {real_answer}",
                    request.describe(),
                    found.join("\n    ")
                ));
            }
        }
        let violations = mock.violations();
        if !violations.is_empty() {
            differences.push(format!(
                "the plugin broke lightningd's protocol in the mock:\n  {}",
                violations.join("\n  ")
            ));
        }
        differences
    });
    assert!(
        requests.len() >= 40,
        "only {} requests compared",
        requests.len()
    );
    assert!(
        differences.is_empty(),
        "{} of {} requests answered differently (the real node is right):\n\n{}",
        differences.len(),
        requests.len(),
        differences.join("\n\n")
    );
    eprintln!(
        "fidelity: {} requests compared, no difference",
        requests.len()
    );
}

/// The rune of checkrune-c-foreign-rune.json (made by another node).
fn foreign_rune() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rpc/checkrune-c-foreign-rune.json"
    );
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("JSON");
    fixture["request"]["params"]["rune"]
        .as_str()
        .expect("a rune")
        .to_string()
}

/// Waits until something accepts TCP connections on the port.
async fn wait_listening(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the plugin in the mock does not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes the side's runes with its own `createrune` (and blacklists the `blacklisted` one).
async fn make_runes(side: &mut Side) {
    for (kind, restrictions) in rune_kinds() {
        let params = if restrictions.is_null() {
            json!({})
        } else {
            json!({ "restrictions": restrictions })
        };
        let created = rpc(&side.rpc_path, "createrune", params)
            .await
            .unwrap_or_else(|e| panic!("{}: createrune for {kind}: {e}", side.name));
        if kind == "blacklisted" {
            let unique_id: u64 = created["unique_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("a numeric unique_id");
            rpc(
                &side.rpc_path,
                "blacklistrune",
                json!({ "start": unique_id }),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: blacklistrune: {e}", side.name));
        }
        let rune = created["rune"].as_str().expect("a rune").to_string();
        side.runes.insert(kind, rune);
    }
}

/// One JSON-RPC call on a `lightning-rpc` socket (the mock's or the real one).
async fn rpc(socket: &Path, method: &str, params: Value) -> Result<Value, Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    stream
        .write_all(request.to_string().as_bytes())
        .await
        .expect("write to lightning-rpc");
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(Ok(mut answer)) = serde_json::Deserializer::from_slice(&buffer)
            .into_iter::<Value>()
            .next()
        {
            return match answer.get_mut("result") {
                Some(result) => Ok(result.take()),
                None => Err(answer["error"].take()),
            };
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("an answer within 30 s")
            .expect("read lightning-rpc");
        assert!(n > 0, "lightning-rpc closed before answering {method}");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends a request to one side and reads what `request.compare` needs.
async fn send(http: &reqwest::Client, side: &Side, request: &Request, foreign: &str) -> Answer {
    let path = request.path.replace(LABEL, &side.label_prefix);
    let method = reqwest::Method::from_bytes(request.http_method.as_bytes()).expect("a method");
    let mut builder = http.request(method, format!("{}{path}", side.base));
    match request.rune {
        RuneHeader::Missing => {}
        RuneHeader::Made(kind) => builder = builder.header("Rune", &side.runes[kind]),
        RuneHeader::Literal(text) => builder = builder.header("Rune", text),
        RuneHeader::Foreign => builder = builder.header("Rune", foreign),
    }
    if let Some(content_type) = request.content_type {
        builder = builder.header("Content-Type", content_type);
    }
    if let Some(accept) = request.accept {
        builder = builder.header("Accept", accept);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.replace(LABEL, &side.label_prefix));
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(error) => {
            return Answer {
                status: 0,
                content_type: String::new(),
                body: Body::Failed(error.to_string()),
            }
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match request.compare {
        // Dropping the response closes the connection (an event stream never ends).
        Compare::Head => Body::Unread,
        Compare::Body => match response.text().await {
            Err(error) => Body::Failed(format!("reading the body: {error}")),
            Ok(text) if content_type.starts_with("application/json") => {
                match serde_json::from_str(&text) {
                    Ok(value) => Body::Json(value),
                    Err(_) => Body::Text(text),
                }
            }
            Ok(text) => Body::Text(text),
        },
    };
    Answer {
        status,
        content_type,
        body,
    }
}

/// Every difference between the two answers to one request.
fn compare(mock: &Answer, real: &Answer) -> Vec<String> {
    let mut found = Vec::new();
    if mock.status != real.status {
        found.push(format!(
            "status: mock {}, real {}",
            mock.status, real.status
        ));
    }
    if mock.content_type != real.content_type {
        found.push(format!(
            "content type: mock {:?}, real {:?}",
            mock.content_type, real.content_type
        ));
    }
    match (&mock.body, &real.body) {
        (Body::Unread, Body::Unread) => {}
        (Body::Json(mock_body), Body::Json(real_body)) => {
            for member in ["code", "message"] {
                let (mock_value, real_value) = (
                    normalize(&mock_body[member], "fid-mock"),
                    normalize(&real_body[member], "fid-real"),
                );
                if mock_value != real_value {
                    found.push(format!(
                        "error {member}: mock {mock_value}, real {real_value}"
                    ));
                }
            }
            diff_shape("body", mock_body, real_body, &mut found);
        }
        (Body::Text(mock_text), Body::Text(real_text)) => {
            if mock_text.is_empty() != real_text.is_empty() {
                found.push(format!(
                    "body: mock has {} bytes, real {} bytes",
                    mock_text.len(),
                    real_text.len()
                ));
            }
        }
        _ => found.push("body: not of the same kind (JSON, text, failed)".to_string()),
    }
    found
}

/// At most `len` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, len: usize) -> &str {
    let mut end = len.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A string value with the side's label prefix put back to [`LABEL`].
fn normalize(value: &Value, prefix: &str) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace(prefix, LABEL)),
        other => other.clone(),
    }
}

/// The JSON type of a value.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The shape of a value: its JSON type, members' shapes for an object, the distinct element
/// shapes for an array.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, member)| (name.clone(), shape(member)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            let mut shapes: Vec<Value> = Vec::new();
            for item in items {
                let item_shape = shape(item);
                if !shapes.contains(&item_shape) {
                    shapes.push(item_shape);
                }
            }
            Value::Array(shapes)
        }
        other => json!(type_name(other)),
    }
}

/// Records where the shapes of `mock` and `real` differ, with the path to each place.
fn diff_shape(path: &str, mock: &Value, real: &Value, found: &mut Vec<String>) {
    match (mock, real) {
        (Value::Object(mock_members), Value::Object(real_members)) => {
            for name in real_members.keys() {
                if !mock_members.contains_key(name) {
                    found.push(format!(
                        "{path}.{name}: missing in the mock (real: {})",
                        shape(&real_members[name])
                    ));
                }
            }
            for name in mock_members.keys() {
                if !real_members.contains_key(name) {
                    found.push(format!(
                        "{path}.{name}: only in the mock ({})",
                        shape(&mock_members[name])
                    ));
                }
            }
            for (name, mock_member) in mock_members {
                if let Some(real_member) = real_members.get(name) {
                    diff_shape(&format!("{path}.{name}"), mock_member, real_member, found);
                }
            }
        }
        (Value::Array(mock_items), Value::Array(real_items)) => {
            if mock_items.len() == real_items.len() {
                for (index, (mock_item, real_item)) in mock_items.iter().zip(real_items).enumerate()
                {
                    diff_shape(&format!("{path}[{index}]"), mock_item, real_item, found);
                }
            } else {
                let (mock_shape, real_shape) = (shape(mock), shape(real));
                if mock_shape != real_shape {
                    found.push(format!(
                        "{path}: element shapes differ ({} vs {} elements): mock {mock_shape}, real {real_shape}",
                        mock_items.len(),
                        real_items.len()
                    ));
                }
            }
        }
        _ => {
            if type_name(mock) != type_name(real) {
                found.push(format!(
                    "{path}: mock is {}, real is {}",
                    type_name(mock),
                    type_name(real)
                ));
            }
        }
    }
}
