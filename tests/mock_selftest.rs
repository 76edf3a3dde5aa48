//! Self-test of the mock lightningd (`tests/mock_lightningd/`) against the messages captured
//! from a real lightningd (`tests/fixtures/`).
//!
//! Most tests need no plugin: they talk to the mock's `lightning-rpc` with a raw unix socket
//! client and compare what comes back with the fixture files. The plugin side is tested with
//! a small `sh` stand-in plugin, and once with the real clnrest binary.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use mock_lightningd::fixtures::load_fixture;
use mock_lightningd::manifest::{init_request, Manifest, GETMANIFEST_REQUEST};
use mock_lightningd::methods::METHODS;
use mock_lightningd::runes::Rune;
use mock_lightningd::{LogLine, MockLightningd, LIGHTNINGD_VERSION, MAX_LOG_MESSAGE_LEN};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// `assert_eq!` on JSON text: equal values with members in the same order (the crate's
/// serde_json keeps member order, and lightningd's order is what clients see).
macro_rules! assert_same_json {
    ($actual:expr, $expected:expr $(, $($context:tt)+)?) => {
        assert_eq!(($actual).to_string(), ($expected).to_string() $(, $($context)+)?)
    };
}

/// A bare `lightning-rpc` client: writes bytes, reads `"\n\n"`-terminated frames.
struct RawClient {
    stream: UnixStream,
    buffer: Vec<u8>,
}

impl RawClient {
    async fn connect(mock: &MockLightningd) -> RawClient {
        let stream = UnixStream::connect(mock.rpc_path())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", mock.rpc_path().display()));
        RawClient {
            stream,
            buffer: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to lightning-rpc");
    }

    async fn send_json(&mut self, request: &Value) {
        self.send(request.to_string().as_bytes()).await;
    }

    /// The next frame including its `"\n\n"`, or `None` on EOF or after `timeout`.
    async fn try_read_frame(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                return Some(self.buffer.drain(..at + 2).collect());
            }
            let mut chunk = [0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn read_frame(&mut self) -> Vec<u8> {
        self.try_read_frame(READ_TIMEOUT).await.unwrap_or_else(|| {
            panic!(
                "no response frame; buffered: {:?}",
                String::from_utf8_lossy(&self.buffer)
            )
        })
    }

    /// The next response, checked to be compact JSON + `"\n\n"`.
    async fn read_response(&mut self) -> Value {
        let frame = self.read_frame().await;
        let body = &frame[..frame.len() - 2];
        assert!(
            !body.contains(&b'\n') && body.starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":"),
            "not a compact lightningd response: {:?}",
            String::from_utf8_lossy(&frame)
        );
        serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {:?}",
                String::from_utf8_lossy(body)
            )
        })
    }

    async fn call(&mut self, request: &Value) -> Value {
        self.send_json(request).await;
        self.read_response().await
    }

    /// Reads until EOF (or `timeout`); returns what came and whether EOF was seen.
    async fn read_to_close(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut received = std::mem::take(&mut self.buffer);
        loop {
            let mut chunk = [0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
                Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
                Err(_) => return (received, false),
            }
        }
    }
}

fn request(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

/// Sends a fixture's request and returns the mock's response.
async fn send_fixture_request(client: &mut RawClient, fixture: &Value) -> Value {
    client.call(&fixture["request"]).await
}

// --- Plain method results ------------------------------------------------------------

#[tokio::test]
async fn getinfo_is_the_fixture_with_this_lightning_dir() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let fixture = load_fixture("rpc/getinfo.json");
    let response = send_fixture_request(&mut client, &fixture).await;
    let mut expected = fixture["response"].clone();
    expected["result"]["lightning-dir"] = json!(mock.lightning_dir().to_string_lossy());
    assert_same_json!(response, expected);
    assert!(mock.lightning_dir().ends_with("regtest"));
    assert_eq!(response["result"]["version"], json!(LIGHTNINGD_VERSION));
}

#[tokio::test]
async fn getinfo_filter_returns_only_the_filtered_fields() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let fixture = load_fixture("rpc/getinfo-filter.json");
    assert_same_json!(
        send_fixture_request(&mut client, &fixture).await,
        fixture["response"]
    );
}

#[tokio::test]
async fn help_is_the_fixture() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let fixture = load_fixture("rpc/help.json");
    let response = send_fixture_request(&mut client, &fixture).await;
    assert_same_json!(response, fixture["response"]);
    assert_eq!(
        response["result"]["help"].as_array().map(Vec::len),
        Some(213)
    );
}

#[tokio::test]
async fn unknown_methods_give_the_fixture_errors() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    for name in [
        "rpc/unknown-method.json",
        "rpc/listclnrest-notifications.json",
    ] {
        let fixture = load_fixture(name);
        assert_same_json!(
            send_fixture_request(&mut client, &fixture).await,
            fixture["response"],
            "{name}"
        );
    }
}

#[test]
fn method_parameter_lists_are_helps_usage() {
    let help = load_fixture("rpc/help.json");
    let usages: HashMap<&str, &str> = help["response"]["result"]["help"]
        .as_array()
        .expect("help array")
        .iter()
        .filter_map(|entry| entry["command"].as_str())
        .map(|command| command.split_once(' ').unwrap_or((command, "")))
        .collect();
    for method in METHODS {
        let usage: Vec<String> = method
            .params
            .iter()
            .map(|p| {
                if p.required {
                    p.name.to_string()
                } else {
                    format!("[{}]", p.name)
                }
            })
            .collect();
        assert_eq!(
            usages.get(method.name).copied(),
            Some(usage.join(" ").as_str()),
            "parameters of {}",
            method.name
        );
    }
}

// --- Invoices ------------------------------------------------------------------------

fn is_hex32(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Member names in order (the crate's serde_json keeps member order).
fn member_names(value: &Value) -> Vec<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn invoice_and_listinvoices_have_the_fixture_shapes() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let fixture = load_fixture("rpc/invoice.json");
    let response = send_fixture_request(&mut client, &fixture).await;
    let (result, expected) = (&response["result"], &fixture["response"]["result"]);
    assert_eq!(member_names(result), member_names(expected));
    assert_eq!(response["id"], fixture["response"]["id"]);
    assert!(is_hex32(&result["payment_hash"]) && is_hex32(&result["payment_secret"]));
    assert_ne!(
        result["payment_hash"], expected["payment_hash"],
        "fresh hash per invoice"
    );
    assert!(result["bolt11"]
        .as_str()
        .is_some_and(|b| b.starts_with("lnbcrt500n1")));
    assert_eq!(result["created_index"], json!(1));
    assert_eq!(result["warning_capacity"], expected["warning_capacity"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires_at = result["expires_at"]
        .as_u64()
        .expect("expires_at is a number");
    assert!(expires_at.abs_diff(now + 604_800) < 5);

    let fixture = load_fixture("rpc/listinvoices.json");
    let response = send_fixture_request(&mut client, &fixture).await;
    let listed = &response["result"]["invoices"];
    let expected = &fixture["response"]["result"]["invoices"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(member_names(&listed[0]), member_names(&expected[0]));
    for member in [
        "label",
        "amount_msat",
        "status",
        "description",
        "created_index",
    ] {
        assert_eq!(listed[0][member], expected[0][member], "{member}");
    }
    assert_eq!(listed[0]["bolt11"], result["bolt11"]);
    assert_eq!(listed[0]["payment_hash"], result["payment_hash"]);
}

#[tokio::test]
async fn invoice_errors_are_the_fixture_errors() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    send_fixture_request(&mut client, &load_fixture("rpc/invoice.json")).await;
    for name in [
        "rpc/invoice-duplicate-label.json",
        "rpc/invoice-missing-params.json",
        "rpc/invoice-bad-param-type.json",
        "rpc/invoice-unknown-param.json",
    ] {
        let fixture = load_fixture(name);
        assert_same_json!(
            send_fixture_request(&mut client, &fixture).await,
            fixture["response"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn invoice_takes_positional_params_in_helps_order() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let response = client
        .call(&request(
            1,
            "invoice",
            json!(["2000msat", 42, "positional", 60]),
        ))
        .await;
    assert!(response["result"]["bolt11"]
        .as_str()
        .is_some_and(|b| b.starts_with("lnbcrt20n1")));
    let listed = client
        .call(&request(2, "listinvoices", json!(["42"])))
        .await;
    let invoice = &listed["result"]["invoices"][0];
    assert_eq!(invoice["label"], json!("42"));
    assert_eq!(invoice["amount_msat"], json!(2000));
    assert_eq!(invoice["description"], json!("positional"));
    let missing = client
        .call(&request(3, "invoice", json!([1000, "only-label"])))
        .await;
    assert_eq!(
        missing["error"],
        json!({"code": -32602, "message": "missing required parameter: description"})
    );
}

#[tokio::test]
async fn waitanyinvoice_returns_when_an_invoice_is_paid_or_times_out() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    client
        .call(&request(
            1,
            "invoice",
            json!({"amount_msat": 1000, "label": "pay-me", "description": "d"}),
        ))
        .await;
    let timed_out = client
        .call(&request(2, "waitanyinvoice", json!({"timeout": 0})))
        .await;
    assert_eq!(timed_out["error"]["code"], json!(904));
    client
        .send_json(&request(3, "waitanyinvoice", json!({})))
        .await;
    assert!(client
        .try_read_frame(Duration::from_millis(200))
        .await
        .is_none());
    assert!(mock.pay_invoice("pay-me").await);
    let paid = client.read_response().await;
    assert_eq!(paid["id"], json!(3));
    assert_eq!(paid["result"]["label"], json!("pay-me"));
    assert_eq!(paid["result"]["status"], json!("paid"));
    assert_eq!(paid["result"]["pay_index"], json!(1));
}

#[tokio::test]
async fn add_invoices_fills_listinvoices() {
    let mock = MockLightningd::without_plugin().await;
    mock.add_invoices(1000);
    let mut client = RawClient::connect(&mock).await;
    let response = client.call(&request(1, "listinvoices", json!({}))).await;
    let invoices = response["result"]["invoices"].as_array().expect("invoices");
    assert_eq!(invoices.len(), 1000);
    assert_eq!(invoices[999]["created_index"], json!(1000));
}

// --- Runes ---------------------------------------------------------------------------

/// Creates runes 0, 1, 2 with the createrune fixture requests; maps each rune the fixture
/// node made to the mock's rune with the same unique id.
async fn create_fixture_runes(client: &mut RawClient) -> HashMap<String, String> {
    let mut runes = HashMap::new();
    for name in [
        "rpc/createrune-unrestricted.json",
        "rpc/createrune-method-invoice.json",
        "rpc/createrune-readonly.json",
    ] {
        let fixture = load_fixture(name);
        let response = send_fixture_request(client, &fixture).await;
        let (ours, theirs) = (&response["result"], &fixture["response"]["result"]);
        assert_eq!(member_names(ours), member_names(theirs), "{name}");
        assert_eq!(ours["unique_id"], theirs["unique_id"], "{name}");
        assert_eq!(
            ours["warning_unrestricted_rune"], theirs["warning_unrestricted_rune"],
            "{name}"
        );
        let (our_rune, their_rune) = (
            ours["rune"].as_str().unwrap(),
            theirs["rune"].as_str().unwrap(),
        );
        let (our_bytes, their_bytes) = (
            URL_SAFE.decode(our_rune).unwrap(),
            URL_SAFE.decode(their_rune).unwrap(),
        );
        assert_eq!(
            our_bytes[32..],
            their_bytes[32..],
            "{name}: restriction string"
        );
        assert_ne!(
            our_bytes[..32],
            their_bytes[..32],
            "{name}: authcode is this node's"
        );
        runes.insert(their_rune.to_string(), our_rune.to_string());
    }
    runes
}

fn with_rune(mut request: Value, runes: &HashMap<String, String>) -> Value {
    if let Some(ours) = request["params"]["rune"]
        .as_str()
        .and_then(|r| runes.get(r))
    {
        request["params"]["rune"] = json!(ours);
    }
    request
}

const CHECKRUNE_FIXTURES: [&str; 9] = [
    "rpc/checkrune-a-unrestricted-getinfo.json",
    "rpc/checkrune-b-method-invoice-vs-getinfo.json",
    "rpc/checkrune-b2-method-invoice-vs-invoice.json",
    "rpc/checkrune-c-foreign-rune.json",
    "rpc/checkrune-d-garbage.json",
    "rpc/checkrune-d2-empty-string.json",
    "rpc/checkrune-e-readonly-vs-listclnrest-notifications.json",
    "rpc/checkrune-f-readonly-vs-invoice.json",
    "rpc/checkrune-no-method.json",
];

#[tokio::test]
async fn createrune_and_every_checkrune_case_match_the_fixtures() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let runes = create_fixture_runes(&mut client).await;
    for name in CHECKRUNE_FIXTURES {
        let fixture = load_fixture(name);
        let response = client
            .call(&with_rune(fixture["request"].clone(), &runes))
            .await;
        assert_same_json!(response, fixture["response"], "{name}");
    }
}

#[tokio::test]
async fn runes_are_url_safe_base64_with_padding() {
    let mock = MockLightningd::without_plugin().await;
    for _ in 0..50 {
        let rune = mock.create_rune(json!([["method=invoice"]]));
        let bytes = URL_SAFE.decode(&rune).expect("padded URL-safe base64");
        assert_eq!(URL_SAFE.encode(&bytes), rune);
        assert!(!rune.contains('+') && !rune.contains('/'));
    }
}

/// Replaces run-dependent values (rune text, last-use time) by markers.
fn without_run_values(mut showrunes: Value) -> Value {
    for entry in showrunes["runes"].as_array_mut().into_iter().flatten() {
        entry["rune"] = json!("<rune>");
        if entry.get("last_used").is_some() {
            entry["last_used"] = json!("<time>");
        }
    }
    showrunes
}

#[tokio::test]
async fn showrunes_match_the_fixtures() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let runes = create_fixture_runes(&mut client).await;
    for name in CHECKRUNE_FIXTURES {
        client
            .call(&with_rune(load_fixture(name)["request"].clone(), &runes))
            .await;
    }
    for name in [
        "rpc/showrunes-all.json",
        "rpc/showrunes-with-rune.json",
        "rpc/showrunes-foreign-rune.json",
    ] {
        let fixture = load_fixture(name);
        let response = client
            .call(&with_rune(fixture["request"].clone(), &runes))
            .await;
        assert_same_json!(
            without_run_values(response["result"].clone()),
            without_run_values(fixture["response"]["result"].clone()),
            "{name}"
        );
        assert!(
            response["result"]["runes"][0]["last_used"].is_f64(),
            "{name}"
        );
    }
    let foreign = load_fixture("rpc/showrunes-foreign-rune.json");
    let response = client.call(&foreign["request"]).await;
    assert_eq!(
        response["result"]["runes"][0]["rune"],
        foreign["request"]["params"]["rune"]
    );
}

async fn checkrune(client: &mut RawClient, rune: &str, method: &str, params: Value) -> Value {
    client
        .call(&request(
            "c",
            "checkrune",
            json!({"rune": rune, "method": method, "params": params}),
        ))
        .await
}

#[tokio::test]
async fn pname_parr_and_integer_restrictions() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let label = mock.create_rune(json!([["pnamelabel=x"]]));
    assert_eq!(
        checkrune(&mut client, &label, "invoice", json!({"label": "x"})).await["result"],
        json!({"valid": true})
    );
    assert_eq!(
        checkrune(&mut client, &label, "invoice", json!([1000, "x", "d"])).await["error"],
        json!({"code": 1502, "message": "Not permitted: parameter label not present"}),
        "a pname restriction refuses array params"
    );
    let parr = mock.create_rune(json!(["parr1=x"]));
    assert_eq!(
        checkrune(&mut client, &parr, "invoice", json!([1000, "x", "d"])).await["result"],
        json!({"valid": true})
    );
    assert_eq!(
        checkrune(&mut client, &parr, "invoice", json!({"label": "x"})).await["error"]["code"],
        json!(1502)
    );
    let amount = mock.create_rune(json!([["pnameamountmsat<2000"]]));
    assert_eq!(
        checkrune(
            &mut client,
            &amount,
            "invoice",
            json!({"amount_msat": 1000})
        )
        .await["result"],
        json!({"valid": true})
    );
    assert_eq!(
        checkrune(
            &mut client,
            &amount,
            "invoice",
            json!({"amount_msat": 3000})
        )
        .await["error"],
        json!({"code": 1502, "message": "Not permitted: parameter amountmsat is greater or equal to 2000"})
    );
    let either = mock.create_rune(json!([
        ["method=getinfo", "method^list"],
        ["method/listpeers"]
    ]));
    assert_eq!(
        checkrune(&mut client, &either, "listinvoices", json!({})).await["result"],
        json!({"valid": true})
    );
    assert_eq!(
        checkrune(&mut client, &either, "listpeers", json!({})).await["error"]["message"],
        json!("Not permitted: method is equal to listpeers")
    );
    let positional = client
        .call(&request(
            "p",
            "checkrune",
            json!([either, null, "invoice", {}]),
        ))
        .await;
    assert_eq!(
        positional["error"]["message"],
        json!("Not permitted: method is not equal to getinfo AND method does not start with list")
    );
}

#[tokio::test]
async fn id_restrictions_compare_the_given_nodeid() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let node_id = load_fixture("rpc/getinfo.json")["response"]["result"]["id"].clone();
    let rune = mock.create_rune(json!([[format!("id={}", node_id.as_str().unwrap())]]));
    let check = |nodeid: Value| {
        request(
            "n",
            "checkrune",
            json!({"rune": rune, "nodeid": nodeid, "method": "getinfo"}),
        )
    };
    assert_eq!(
        client.call(&check(node_id.clone())).await["result"],
        json!({"valid": true})
    );
    let other = format!("03{}", "ab".repeat(32));
    assert_eq!(
        client.call(&check(json!(other))).await["error"]["code"],
        json!(1502)
    );
    assert_eq!(
        client.call(&check(json!("not-a-node"))).await["error"]["message"],
        json!("nodeid: should be a node id: invalid token (see logs for details)")
    );
}

#[tokio::test]
async fn blacklisted_runes_are_refused() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let rune0 = mock.create_rune(Value::Null);
    let rune1 = mock.create_rune(Value::Null);
    let listed = client
        .call(&request(1, "blacklistrune", json!({"start": 1})))
        .await;
    assert_eq!(
        listed["result"],
        json!({"blacklist": [{"start": 1, "end": 1}]})
    );
    assert_eq!(
        checkrune(&mut client, &rune0, "getinfo", json!({})).await["result"],
        json!({"valid": true})
    );
    assert_eq!(
        checkrune(&mut client, &rune1, "getinfo", json!({})).await["error"],
        json!({"code": 1503, "message": "Not authorized: Blacklisted rune"})
    );
    let relisted = client
        .call(&request(
            2,
            "blacklistrune",
            json!({"start": 1, "relist": true}),
        ))
        .await;
    assert_eq!(relisted["result"], json!({"blacklist": []}));
}

/// `rate=N` as a real node counts it: "too soon" until 60/N s after the last accepted use,
/// and a refused check neither counts nor writes `last_used`.
#[tokio::test]
async fn rate_restrictions_refuse_until_their_interval_has_passed() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let too_soon = json!({"code": 1502, "message": "Not permitted: too soon"});
    let once = mock.create_rune(json!([["rate=1"]]));
    assert_eq!(
        checkrune(&mut client, &once, "getinfo", json!({})).await["result"],
        json!({"valid": true})
    );
    assert_eq!(
        checkrune(&mut client, &once, "getinfo", json!({})).await["error"],
        too_soon
    );
    // 120 a minute: one every half second.
    let fast = mock.create_rune(json!([["rate=120"], ["method=getinfo"]]));
    assert_eq!(
        checkrune(&mut client, &fast, "invoice", json!({})).await["error"]["message"],
        json!("Not permitted: method is not equal to getinfo")
    );
    let shown = client
        .call(&request("s", "showrunes", json!({"rune": fast})))
        .await;
    assert!(
        shown["result"]["runes"][0].get("last_used").is_none(),
        "a refused check wrote last_used: {shown}"
    );
    assert_eq!(
        checkrune(&mut client, &fast, "getinfo", json!({})).await["result"],
        json!({"valid": true}),
        "a refused check counted as a use"
    );
    assert_eq!(
        checkrune(&mut client, &fast, "getinfo", json!({})).await["error"],
        too_soon
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        checkrune(&mut client, &fast, "getinfo", json!({})).await["result"],
        json!({"valid": true})
    );
    for (restriction, message) in [
        ("rate=0", "Not permitted: malformed rate"),
        ("rate=abc", "Not permitted: malformed rate"),
        ("rate>1", "Not permitted: rate operator must be ="),
    ] {
        let rune = mock.create_rune(json!([[restriction]]));
        assert_eq!(
            checkrune(&mut client, &rune, "getinfo", json!({})).await["error"]["message"],
            json!(message),
            "{restriction}"
        );
    }
}

/// Explanations as a real node words them (seen with checkrune on lightningd v26.06).
#[tokio::test]
async fn refusals_are_explained_like_a_real_node() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let cases = [
        (
            "pnameamount_msat<1000",
            json!({"amount_msat": 5000}),
            "parameter amount_msat is greater or equal to 1000",
        ),
        (
            "pnameamount_msat<1000",
            json!({"amount_msat": "500"}),
            "parameter amount_msat is not an integer field",
        ),
        (
            "pnameamount_msat<1000",
            json!([500]),
            "parameter amount_msat not present",
        ),
        ("pnamea_b=1", json!({"ab": 1}), "parameter a_b not present"),
        (
            "parr0<1000",
            json!([5000]),
            "parameter #0 is greater or equal to 1000",
        ),
        ("parr0<1000", json!({"a": 1}), "parameter #0 not present"),
        (
            "pnum<2",
            json!({"a": 1, "b": 2, "c": 3}),
            "number of parameters is greater or equal to 2",
        ),
        (
            "pnamelabel!",
            json!({"label": "x"}),
            "parameter label is present",
        ),
        (
            "method{a",
            json!({}),
            "method is equal to or ordered after a",
        ),
        (
            "method}z",
            json!({}),
            "method is equal to or ordered before z",
        ),
        ("method>3", json!({}), "method is not an integer field"),
        ("time<1", json!({}), "time is greater or equal to 1"),
        // The plugin never passes `nodeid`.
        (
            "id=022d223620a359a47ff7f7ac447c85c46c923da53389221a0054c11c1e3ca31d59",
            json!({}),
            "id not present",
        ),
        ("nodeid=x", json!({}), "nodeid not present"),
        ("foo=1", json!({}), "foo not present"),
    ];
    for (restriction, params, why) in cases {
        let rune = mock.create_rune(json!([[restriction]]));
        assert_eq!(
            checkrune(&mut client, &rune, "invoice", params.clone()).await["error"],
            json!({"code": 1502, "message": format!("Not permitted: {why}")}),
            "{restriction} with {params}"
        );
    }
    for (restriction, params) in [
        ("pnameab=1", json!({"a_b": 1})),
        ("pnamelabel=5", json!({"label": 5})),
        ("pnamelabel=true", json!({"label": true})),
        ("pnamelabel!", json!({})),
        ("pnameamount_msat<1000", json!({"amount_msat": -5})),
    ] {
        let rune = mock.create_rune(json!([[restriction]]));
        assert_eq!(
            checkrune(&mut client, &rune, "invoice", params.clone()).await["result"],
            json!({"valid": true}),
            "{restriction} with {params}"
        );
    }
}

#[tokio::test]
async fn deldatastore_removes_an_entry_and_returns_it() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let stored = client
        .call(&request(
            1,
            "datastore",
            json!({"key": ["d", "a"], "string": "x"}),
        ))
        .await;
    let entry = json!({"key": ["d", "a"], "generation": 0, "hex": "78", "string": "x"});
    assert_eq!(stored["result"], entry);
    assert_eq!(
        client
            .call(&request(
                2,
                "deldatastore",
                json!({"key": ["d", "a"], "generation": 5})
            ))
            .await["error"],
        json!({"code": 1201, "message": "generation is different"})
    );
    assert_eq!(
        client
            .call(&request(3, "deldatastore", json!({"key": ["d"]})))
            .await["error"],
        json!({"code": 1200, "message": "Key does not exist"}),
        "a key with entries below it only"
    );
    assert_eq!(
        client
            .call(&request(4, "deldatastore", json!([["d", "a"]])))
            .await["result"],
        entry
    );
    assert_eq!(
        client
            .call(&request(5, "deldatastore", json!({"key": ["d", "a"]})))
            .await["error"],
        json!({"code": 1200, "message": "Key does not exist"})
    );
    assert_eq!(
        client
            .call(&request(6, "listdatastore", json!({"key": ["d"]})))
            .await["result"],
        json!({"datastore": []})
    );
}

/// `--developer` shows the offending value instead of pointing to the logs.
#[tokio::test]
async fn a_developer_node_words_bad_params_with_the_value() {
    for (developer, token) in [(false, "(see logs for details)"), (true, "'\"lots\"'")] {
        let mock = MockLightningd::builder()
            .without_plugin()
            .developer(developer)
            .start()
            .await;
        let mut client = RawClient::connect(&mock).await;
        let answer = client
            .call(&request(
                1,
                "invoice",
                json!({"amount_msat": "lots", "label": "z", "description": "z"}),
            ))
            .await;
        assert_eq!(
            answer["error"],
            json!({"code": -32602, "message": format!("amount_msat: should be positive msat or 'any': invalid token {token}")}),
            "developer {developer}"
        );
    }
}

#[test]
fn rune_text_round_trips() {
    let fixture = load_fixture("rpc/createrune-readonly.json");
    let text = fixture["response"]["result"]["rune"].as_str().unwrap();
    let rune = Rune::decode(text).expect("fixture rune decodes");
    assert_eq!(rune.unique_id(), Some("2"));
    assert_eq!(
        rune.restriction_string(),
        "=2&method^list|method^get|method=summary&method/listdatastore"
    );
    assert_eq!(rune.encode(), text);
    assert!(Rune::decode("this-is-not-a-rune!").is_none());
    assert!(Rune::decode("").is_none());
    assert!(
        Rune::decode(&URL_SAFE.encode([7u8; 31])).is_none(),
        "too short"
    );
}

// --- Datastore -----------------------------------------------------------------------

#[tokio::test]
async fn datastore_and_listdatastore() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let stored = client
        .call(&request(
            1,
            "datastore",
            json!({"key": ["a", "b"], "string": "hello"}),
        ))
        .await;
    assert_eq!(
        stored["result"],
        json!({"key": ["a", "b"], "generation": 0, "hex": "68656c6c6f", "string": "hello"})
    );
    let again = client
        .call(&request(
            2,
            "datastore",
            json!({"key": ["a", "b"], "string": "x"}),
        ))
        .await;
    assert_eq!(
        again["error"],
        json!({"code": 1202, "message": "Key already exists"})
    );
    let replaced = client
        .call(&request(
            3,
            "datastore",
            json!([["a", "b"], null, "00ff", "create-or-replace"]),
        ))
        .await;
    assert_eq!(
        replaced["result"],
        json!({"key": ["a", "b"], "generation": 1, "hex": "00ff"})
    );
    let top = client.call(&request(4, "listdatastore", json!({}))).await;
    assert_eq!(top["result"], json!({"datastore": [{"key": ["a"]}]}));
    let below = client
        .call(&request(5, "listdatastore", json!({"key": "a"})))
        .await;
    assert_eq!(below["result"]["datastore"][0]["key"], json!(["a", "b"]));
    assert_eq!(below["result"]["datastore"][0]["hex"], json!("00ff"));
}

// --- Framing (rpc/framing.json) ------------------------------------------------------

fn framing() -> Value {
    load_fixture("rpc/framing.json")
}

#[tokio::test]
async fn pipelined_requests_in_one_write_are_all_answered() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let two = format!(
        "{}{}",
        request("a", "getinfo", json!({})),
        request("b", "getinfo", json!({}))
    );
    client.send(two.as_bytes()).await;
    let ids = [
        client.read_response().await["id"].clone(),
        client.read_response().await["id"].clone(),
    ];
    assert_eq!(
        json!(ids),
        framing()["pipelined_two_in_one_write_no_separator"]["answered_ids_in_arrival_order"]
    );

    let three = format!(
        "{}\n\n{}\n\n{}\n\n",
        request(1, "getinfo", json!({})),
        request(2, "no-such-method", json!({})),
        request(3, "getinfo", json!({}))
    );
    client.send(three.as_bytes()).await;
    let mut ids = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let response = client.read_response().await;
        ids.push(response["id"].clone());
        kinds.push(if response.get("result").is_some() {
            "result"
        } else {
            "error"
        });
    }
    let expected = &framing()["pipelined_three_with_blank_lines"];
    assert_eq!(json!(ids), expected["answered_ids_in_arrival_order"]);
    assert_eq!(json!(kinds), expected["kinds"]);
}

#[tokio::test]
async fn fifty_quick_pipelined_requests_come_back_in_order() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let methods = [
        "getinfo",
        "listinvoices",
        "no-such-method",
        "listdatastore",
        "showrunes",
    ];
    let batch: String = (0..50)
        .map(|i| request(i, methods[i % methods.len()], json!({})).to_string())
        .collect();
    client.send(batch.as_bytes()).await;
    let mut order = Vec::new();
    for _ in 0..50 {
        order.push(client.read_response().await["id"].clone());
    }
    assert_eq!(
        json!(order),
        framing()["pipelined_50_mixed_methods"]["arrival_order"]
    );
}

#[tokio::test]
async fn a_request_split_across_writes_is_answered_once_complete() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let text = request("split", "getinfo", json!({})).to_string();
    let (first, second) = text.split_at(text.len() / 2);
    client.send(first.as_bytes()).await;
    assert!(client
        .try_read_frame(Duration::from_millis(200))
        .await
        .is_none());
    client.send(second.as_bytes()).await;
    assert_eq!(client.read_response().await["id"], json!("split"));
    assert_eq!(
        framing()["request_split_over_writes"]["answered"],
        json!(true)
    );
}

#[tokio::test]
async fn a_slow_request_does_not_hold_back_a_fast_one() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let started = Instant::now();
    client
        .send_json(&request(
            "slow",
            "waitblockheight",
            json!({"blockheight": 1000, "timeout": 1}),
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .send_json(&request("fast", "getinfo", json!({})))
        .await;
    let fast = client.read_response().await;
    assert_eq!(fast["id"], json!("fast"));
    assert!(started.elapsed() < Duration::from_millis(800));
    let slow = client.read_response().await;
    assert_eq!(slow["id"], json!("slow"));
    assert!(started.elapsed() >= Duration::from_secs(1));
    let expected = &framing()["slow_then_fast_on_one_connection"]["arrivals"][1]["error"];
    assert_eq!(&slow["error"], expected);
    let reached = client
        .call(&request(
            "now",
            "waitblockheight",
            json!({"blockheight": 0}),
        ))
        .await;
    assert_eq!(reached["result"], json!({"blockheight": 0}));
}

#[tokio::test]
async fn ids_are_echoed_as_sent() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let fixture = framing();
    for (case, raw_id) in [
        ("id_int", "7"),
        ("id_string", "\"x:y/1\""),
        ("id_null", "null"),
        ("id_float", "1.5"),
    ] {
        let sent = fixture[case]["request_id"].clone();
        assert_eq!(sent.to_string(), raw_id);
        client.send_json(&request(sent, "getinfo", json!({}))).await;
        let frame = client.read_frame().await;
        let prefix = format!("{{\"jsonrpc\":\"2.0\",\"id\":{raw_id},\"result\":");
        assert!(
            frame.starts_with(prefix.as_bytes()),
            "{case}: {}",
            String::from_utf8_lossy(&frame[..80])
        );
        assert_eq!(fixture[case]["response_id"], fixture[case]["request_id"]);
    }
}

#[tokio::test]
async fn malformed_requests_get_the_fixture_replies() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let fixture = framing();
    let no_id = client
        .call(&json!({"jsonrpc": "2.0", "method": "getinfo", "params": {}}))
        .await;
    assert_same_json!(no_id, fixture["request_without_id"]["response"]);
    client
        .send(br#"{"id":"nojsonrpc","method":"getinfo","params":{}}"#)
        .await;
    assert_same_json!(
        client.read_response().await,
        fixture["request_without_jsonrpc_field"]["response"]
    );
}

#[tokio::test]
async fn invalid_json_gets_the_fixture_reply_and_the_connection_stays_open() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    client
        .send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":getinfo}\n\n")
        .await;
    let frame = client.read_frame().await;
    let expected = framing()["invalid_json"]["raw_reply"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(String::from_utf8_lossy(&frame), expected);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client.call(&request(2, "getinfo", json!({}))).await["id"],
        json!(2)
    );
}

#[tokio::test]
async fn params_may_be_absent() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    let response = client
        .call(&json!({"jsonrpc": "2.0", "id": 1, "method": "getinfo"}))
        .await;
    assert!(response["result"]["id"].is_string());
}

#[tokio::test]
async fn calls_and_connections_are_recorded() {
    let mock = MockLightningd::without_plugin().await;
    let mut first = RawClient::connect(&mock).await;
    first.call(&request(1, "getinfo", json!({}))).await;
    first.call(&request(2, "listinvoices", json!(["x"]))).await;
    let mut second = RawClient::connect(&mock).await;
    second.call(&request(3, "getinfo", json!({"x": 1}))).await;
    assert_eq!(mock.connections_accepted(), 2);
    let calls = mock.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (
            calls[1].method.as_str(),
            &calls[1].params,
            calls[1].connection_id
        ),
        ("listinvoices", &json!(["x"]), 0)
    );
    let getinfos = mock.calls_of("getinfo");
    assert_eq!(getinfos.len(), 2);
    assert_eq!(
        (getinfos[1].connection_id, &getinfos[1].params),
        (1, &json!({"x": 1}))
    );
}

#[tokio::test]
async fn recording_can_be_switched_off() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    client.call(&request(1, "getinfo", json!({}))).await;
    mock.record_calls(false);
    assert!(mock.calls().is_empty(), "switching off forgets the record");
    client.call(&request(2, "getinfo", json!({}))).await;
    assert!(mock.calls().is_empty(), "no call recorded while off");
    mock.record_calls(true);
    client.call(&request(3, "listinvoices", json!({}))).await;
    assert_eq!(mock.calls().len(), 1);
    assert_eq!(mock.calls()[0].method, "listinvoices");
}

// --- Faults --------------------------------------------------------------------------

#[tokio::test]
async fn delays_apply_per_method_and_globally() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    mock.faults()
        .set_delay("getinfo", Duration::from_millis(300));
    let started = Instant::now();
    client.call(&request(1, "getinfo", json!({}))).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    client.call(&request(2, "listinvoices", json!({}))).await;
    assert!(started.elapsed() < Duration::from_millis(300));
    mock.faults().set_global_delay(Duration::from_millis(200));
    let started = Instant::now();
    client.call(&request(3, "listinvoices", json!({}))).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn sub_millisecond_service_times_are_slept() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    mock.faults()
        .set_delay("getinfo", Duration::from_micros(300));
    let started = Instant::now();
    for id in 0..10 {
        client.call(&request(id, "getinfo", json!({}))).await;
    }
    assert!(started.elapsed() >= Duration::from_micros(3000));
}

#[tokio::test]
async fn serialized_writes_run_one_at_a_time() {
    let mock = MockLightningd::without_plugin().await;
    let rune = mock.create_rune(Value::Null);
    mock.faults()
        .set_delay("checkrune", Duration::from_millis(200));
    let mut client = RawClient::connect(&mock).await;
    for serialized in [false, true] {
        mock.faults().serialize_writes(serialized);
        let started = Instant::now();
        let batch: String = (0..3)
            .map(|i| {
                request(i, "checkrune", json!({"rune": rune, "method": "getinfo"})).to_string()
            })
            .collect();
        client.send(batch.as_bytes()).await;
        for _ in 0..3 {
            assert_eq!(
                client.read_response().await["result"],
                json!({"valid": true})
            );
        }
        let elapsed = started.elapsed();
        if serialized {
            assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
        } else {
            assert!(elapsed < Duration::from_millis(550), "{elapsed:?}");
        }
    }
}

#[tokio::test]
async fn drop_connections_closes_open_connections() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    client
        .send_json(&request(
            1,
            "waitblockheight",
            json!({"blockheight": 5, "timeout": 10}),
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    mock.faults().drop_connections();
    let (received, closed) = client.read_to_close(Duration::from_secs(2)).await;
    assert!(closed && received.is_empty());
    let mut again = RawClient::connect(&mock).await;
    assert_eq!(
        again.call(&request(2, "getinfo", json!({}))).await["id"],
        json!(2)
    );
}

#[tokio::test]
async fn refused_connections_fail_until_restored() {
    let mock = MockLightningd::without_plugin().await;
    let mut open = RawClient::connect(&mock).await;
    assert_eq!(
        open.call(&request(0, "getinfo", json!({}))).await["id"],
        json!(0)
    );
    mock.faults().refuse_connections(true);
    assert!(UnixStream::connect(mock.rpc_path()).await.is_err());
    assert_eq!(
        open.call(&request(1, "getinfo", json!({}))).await["id"],
        json!(1),
        "open connections stay"
    );
    mock.faults().refuse_connections(false);
    let mut client = RawClient::connect(&mock).await;
    assert_eq!(
        client.call(&request(2, "getinfo", json!({}))).await["id"],
        json!(2)
    );
    assert_eq!(mock.connections_accepted(), 2);
}

#[tokio::test]
async fn garbage_and_half_responses() {
    let mock = MockLightningd::without_plugin().await;
    let mut client = RawClient::connect(&mock).await;
    mock.faults().garbage_replies(true);
    client.send_json(&request(1, "getinfo", json!({}))).await;
    let frame = client.read_frame().await;
    assert!(serde_json::from_slice::<Value>(&frame[..frame.len() - 2]).is_err());
    mock.faults().garbage_replies(false);
    mock.faults().close_mid_response(true);
    client.send_json(&request(2, "getinfo", json!({}))).await;
    let (received, closed) = client.read_to_close(Duration::from_secs(2)).await;
    assert!(closed);
    assert!(!received.is_empty() && !received.ends_with(b"\n\n"));
    assert!(serde_json::from_slice::<Value>(&received).is_err());
}

// --- Plugin handshake messages -------------------------------------------------------

/// The options of the plugin that captured init.json, as a manifest.
fn capture_plugin_manifest() -> Value {
    json!({"jsonrpc": "2.0", "id": "cln:getmanifest#20", "result": {
        "options": [
            {"name": "capture-string", "type": "string", "default": "default-string", "description": "s"},
            {"name": "capture-int", "type": "int", "default": 42, "description": "i"},
            {"name": "capture-bool", "type": "bool", "default": false, "description": "b"},
            {"name": "capture-flag", "type": "flag", "default": false, "description": "f"},
            {"name": "capture-multi", "type": "string", "multi": true, "description": "m"},
            {"name": "capture-conceal", "type": "string-conceal", "description": "c"},
            {"name": "capture-dynamic", "type": "string", "dynamic": true, "description": "d"}
        ],
        "rpcmethods": [{"name": "capture-log", "usage": "level message", "description": "log"}],
        "subscriptions": ["*"],
        "hooks": [],
        "notifications": [],
        "dynamic": true,
        "featurebits": {},
        "nonnumericids": true
    }})
}

fn capture_plugin_options() -> Value {
    json!({
        "capture-string": "hello world",
        "capture-int": 7,
        "capture-bool": true,
        "capture-flag": true,
        "capture-multi": ["first", "second"],
        "capture-conceal": "s3cret"
    })
}

fn builtin_commands() -> HashSet<String> {
    ["getinfo".to_string()].into()
}

#[test]
fn handshake_bytes_match_the_captured_stdin() {
    let framing = load_fixture("plugin-stdin-framing.json");
    let captured = framing["first_600_bytes"].as_str().unwrap();
    let manifest = Manifest::from_reply(&capture_plugin_manifest(), &builtin_commands())
        .expect("valid manifest");
    let options = manifest
        .init_options(&capture_plugin_options(), true)
        .expect("options");
    let feature_set = &load_fixture("init.json")["params"]["configuration"]["feature_set"];
    let ours = format!(
        "{GETMANIFEST_REQUEST}\n\n{}\n\n",
        init_request(&options, "/var/lib/lightning/regtest", feature_set)
    );
    assert_eq!(&ours[..captured.len()], captured);
    assert_eq!(
        serde_json::from_str::<Value>(GETMANIFEST_REQUEST).unwrap(),
        load_fixture("getmanifest.json")
    );
    let init: Value = serde_json::from_str(&init_request(
        &options,
        "/var/lib/lightning/regtest",
        feature_set,
    ))
    .unwrap();
    assert_eq!(init, load_fixture("init.json"));
}

#[test]
fn init_defaults_match_the_fixture() {
    let manifest = Manifest::from_reply(&capture_plugin_manifest(), &builtin_commands())
        .expect("valid manifest");
    let feature_set = &load_fixture("init.json")["params"]["configuration"]["feature_set"];
    let options = manifest.init_options(&json!({}), true).expect("options");
    let init: Value = serde_json::from_str(&init_request(
        &options,
        "/var/lib/lightning/regtest",
        feature_set,
    ))
    .unwrap();
    assert_eq!(init, load_fixture("init-defaults.json"));
    let bare = manifest.init_options(&json!({}), false).expect("options");
    assert!(bare.0.is_empty());
    assert!(manifest
        .init_options(&json!({"no-such-option": 1}), true)
        .is_err());
    assert!(manifest
        .init_options(&json!({"capture-int": "seven"}), true)
        .is_err());
}

/// A named way to break a valid manifest.
type ManifestBreakage = (&'static str, fn(&mut Value));

#[test]
fn manifests_lightningd_would_refuse_are_refused() {
    let valid = capture_plugin_manifest();
    let broken: [ManifestBreakage; 7] = [
        ("no options", |m| {
            drop(m["result"].as_object_mut().unwrap().remove("options"))
        }),
        ("no rpcmethods", |m| {
            drop(m["result"].as_object_mut().unwrap().remove("rpcmethods"))
        }),
        ("no subscriptions", |m| {
            drop(m["result"].as_object_mut().unwrap().remove("subscriptions"))
        }),
        ("no dynamic", |m| {
            drop(m["result"].as_object_mut().unwrap().remove("dynamic"))
        }),
        ("unknown option type", |m| {
            m["result"]["options"][0]["type"] = json!("integer")
        }),
        ("option without description", |m| {
            drop(
                m["result"]["options"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("description"),
            )
        }),
        ("method shadowing a builtin", |m| {
            m["result"]["rpcmethods"][0]["name"] = json!("getinfo")
        }),
    ];
    assert!(Manifest::from_reply(&valid, &builtin_commands()).is_ok());
    for (case, breaks) in broken {
        let mut manifest = valid.clone();
        breaks(&mut manifest);
        assert!(
            Manifest::from_reply(&manifest, &builtin_commands()).is_err(),
            "{case}"
        );
    }
    let error = json!({"jsonrpc": "2.0", "id": "cln:getmanifest#20", "error": {"code": -1, "message": "no"}});
    assert!(Manifest::from_reply(&error, &builtin_commands()).is_err());
}

#[test]
fn plugin_environment_is_the_fixtures() {
    let process = load_fixture("plugin-process.json");
    assert_eq!(
        process["env"]["LIGHTNINGD_VERSION"],
        json!(LIGHTNINGD_VERSION)
    );
    assert_eq!(process["env"]["LIGHTNINGD_PLUGIN"], json!("1"));
    assert_eq!(
        load_fixture("rpc/getinfo.json")["response"]["result"]["version"],
        json!(LIGHTNINGD_VERSION)
    );
}

// --- A stand-in plugin (sh) ----------------------------------------------------------

/// A plugin written in sh: the capture plugin's options, methods `fake-echo` (returns its
/// params), `fake-fail` (an error), `fake-biglog` (a 5000-byte log line), `fake-warn`
/// (a warn log line); subscribes to `*`; exits on `shutdown`.
const FAKE_PLUGIN: &str = r#"
read -r request; read -r blank
printf '%s\n\n' '{"jsonrpc":"2.0","id":"cln:getmanifest#20","result":{"options":[{"name":"capture-string","type":"string","default":"default-string","description":"s"},{"name":"capture-int","type":"int","default":42,"description":"i"},{"name":"capture-bool","type":"bool","default":false,"description":"b"},{"name":"capture-flag","type":"flag","default":false,"description":"f"},{"name":"capture-multi","type":"string","multi":true,"description":"m"},{"name":"capture-conceal","type":"string","description":"c"}],"rpcmethods":[{"name":"fake-echo","usage":"[anything]","description":"echo"},{"name":"fake-fail","usage":"","description":"fail"},{"name":"fake-biglog","usage":"","description":"big log"},{"name":"fake-warn","usage":"","description":"warn"}],"subscriptions":["*"],"hooks":[],"notifications":[],"dynamic":true,"featurebits":{},"nonnumericids":true}}'
read -r request; read -r blank
printf '%s\n\n' '{"jsonrpc":"2.0","method":"log","params":{"level":"info","message":"fake plugin initialised"}}'
printf '%s\n\n' '{"jsonrpc":"2.0","id":"cln:init#44","result":{}}'
while read -r line; do
  [ -z "$line" ] && continue
  id=$(printf '%s' "$line" | sed -n 's/^{"jsonrpc":"2.0","id":\("[^"]*"\),.*/\1/p')
  case "$line" in
    *'"method":"shutdown"'*) exit 0 ;;
    *'"method":"fake-echo"'*)
      params=$(printf '%s' "$line" | sed -n 's/.*"params":\(.*\)}$/\1/p')
      printf '%s\n\n' "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":{\"params\":$params}}" ;;
    *'"method":"fake-fail"'*)
      printf '%s\n\n' "{\"jsonrpc\":\"2.0\",\"id\":$id,\"error\":{\"code\":1234,\"message\":\"fake failure\"}}" ;;
    *'"method":"fake-biglog"'*)
      big=$(head -c 5000 /dev/zero | tr '\0' x)
      printf '%s\n\n' "{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{\"level\":\"debug\",\"message\":\"$big\"}}"
      printf '%s\n\n' "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":{}}" ;;
    *'"method":"fake-warn"'*)
      printf '%s\n\n' '{"jsonrpc":"2.0","method":"log","params":{"level":"warn","message":"fake warning"}}'
      printf '%s\n\n' "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":{}}" ;;
  esac
done
"#;

async fn start_fake_plugin(options: Value) -> MockLightningd {
    MockLightningd::builder()
        .plugin_path("/bin/sh")
        .plugin_args(["-c", FAKE_PLUGIN])
        .options(options)
        .start()
        .await
}

#[tokio::test]
async fn fake_plugin_handshake_sends_the_fixture_messages() {
    let mock = start_fake_plugin(capture_plugin_options()).await;
    assert_eq!(mock.init_result(), &json!({}));
    let sent = mock.sent_to_plugin();
    assert_eq!(sent[0], GETMANIFEST_REQUEST);
    let mut expected_init = load_fixture("init.json");
    expected_init["params"]["configuration"]["lightning-dir"] =
        json!(mock.lightning_dir().to_string_lossy());
    assert_eq!(
        serde_json::from_str::<Value>(&sent[1]).unwrap(),
        expected_init
    );
    let line = mock
        .wait_for_log(
            |l| l.message == "fake plugin initialised",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(line.map(|l| l.level), Some("info".to_string()));
    assert!(mock.manifest().is_some_and(|m| m["dynamic"] == json!(true)));
    mock.assert_no_violations();
}

#[tokio::test]
async fn plugin_methods_are_forwarded_like_lightningd_does() {
    let mock = start_fake_plugin(json!({})).await;
    let mut client = RawClient::connect(&mock).await;
    let echoed = client
        .call(&request(3, "fake-echo", json!({"level": "warn", "n": 1})))
        .await;
    assert_eq!(
        echoed,
        json!({"jsonrpc": "2.0", "id": 3, "result": {"params": {"level": "warn", "n": 1}}})
    );
    let echoed = client
        .call(&request("x", "fake-echo", json!(["info", "array"])))
        .await;
    assert_eq!(echoed["result"], json!({"params": ["info", "array"]}));
    let sent: Vec<Value> = mock
        .sent_to_plugin()
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let forwarded: Vec<&Value> = sent
        .iter()
        .filter(|m| m["method"] == json!("fake-echo"))
        .collect();
    let call_fixture = load_fixture("rpcmethod-call.json");
    assert_eq!(
        member_names(forwarded[0]),
        member_names(&call_fixture["object_params"])
    );
    assert_eq!(forwarded[0]["id"], json!("3/cln:fake-echo#45"));
    assert_eq!(forwarded[1]["id"], json!("x/cln:fake-echo#46"));
    assert!(forwarded[1]["params"].is_array() && call_fixture["array_params"]["params"].is_array());
    let failed = client.call(&request(5, "fake-fail", json!({}))).await;
    assert_eq!(
        failed["error"],
        json!({"code": 1234, "message": "fake failure"})
    );
    let help = client
        .call(&request(6, "help", json!({"command": "fake-echo"})))
        .await;
    assert_eq!(
        help["result"]["help"],
        json!([{"command": "fake-echo [anything]"}])
    );
    mock.assert_no_violations();
}

#[tokio::test]
async fn notifications_reach_only_subscribers_and_never_log_to_wildcard() {
    let mock = start_fake_plugin(json!({})).await;
    let connect = load_fixture("notifications/connect.json");
    assert!(
        mock.notify("connect", connect["params"]["connect"].clone())
            .await
    );
    let sent = mock.sent_to_plugin();
    assert_eq!(
        serde_json::from_str::<Value>(sent.last().unwrap()).unwrap(),
        connect
    );
    assert!(
        !mock
            .notify("log", json!({"level": "info", "log": "x"}))
            .await
    );
    let mut client = RawClient::connect(&mock).await;
    client
        .call(&request(
            1,
            "invoice",
            json!({"amount_msat": 50000, "label": "fixture-label", "description": "d"}),
        ))
        .await;
    let creation = mock
        .sent_to_plugin()
        .into_iter()
        .find(|m| m.contains("invoice_creation"))
        .expect("invoice_creation sent");
    let creation: Value = serde_json::from_str(&creation).unwrap();
    let fixture = load_fixture("notifications/invoice_creation.json");
    assert_eq!(
        member_names(&creation["params"]["invoice_creation"]),
        member_names(&fixture["params"]["invoice_creation"])
    );
    assert_eq!(creation["params"]["invoice_creation"]["msat"], json!(50000));
    client.call(&request(2, "fake-warn", json!({}))).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let warning = loop {
        if let Some(w) = mock
            .sent_to_plugin()
            .into_iter()
            .find(|m| m.contains("\"method\":\"warning\""))
        {
            break serde_json::from_str::<Value>(&w).unwrap();
        }
        assert!(Instant::now() < deadline, "no warning notification");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let fixture = load_fixture("notifications/warning.json");
    assert_eq!(
        member_names(&warning["params"]["warning"]),
        member_names(&fixture["params"]["warning"])
    );
    assert_eq!(warning["params"]["warning"]["level"], json!("warn"));
    assert_eq!(warning["params"]["warning"]["log"], json!("fake warning"));
    assert!(mock.shutdown().await);
    assert!(mock
        .wait_exit(Duration::from_secs(5))
        .await
        .is_some_and(|s| s.success()));
    let last: Value = serde_json::from_str(mock.sent_to_plugin().last().unwrap()).unwrap();
    assert_eq!(last, load_fixture("notifications/shutdown.json"));
}

#[tokio::test]
async fn oversized_log_messages_are_violations() {
    let mock = start_fake_plugin(json!({})).await;
    let mut client = RawClient::connect(&mock).await;
    client.call(&request(1, "fake-biglog", json!({}))).await;
    assert_eq!(mock.max_log_len(), 5000);
    assert!(mock.max_log_len() > MAX_LOG_MESSAGE_LEN);
    let violations = mock.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let refused =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mock.assert_no_violations()));
    assert!(refused.is_err());
}

#[tokio::test]
async fn log_lines_are_checked_but_not_kept_while_log_recording_is_off() {
    let mock = start_fake_plugin(json!({})).await;
    let mut client = RawClient::connect(&mock).await;
    let big = |logs: Vec<LogLine>| logs.iter().filter(|l| l.message.len() == 5000).count();
    client.call(&request(1, "fake-biglog", json!({}))).await;
    assert_eq!(big(mock.logs()), 1);
    mock.record_logs(false);
    assert!(
        mock.logs().is_empty(),
        "switching off forgets the lines kept"
    );
    client.call(&request(2, "fake-biglog", json!({}))).await;
    assert!(mock.logs().is_empty(), "no line kept while off");
    assert_eq!(
        mock.violations().len(),
        2,
        "lines are still checked while off"
    );
    mock.record_logs(true);
    client.call(&request(3, "fake-biglog", json!({}))).await;
    assert_eq!(big(mock.logs()), 1);
}

#[tokio::test]
async fn a_dead_plugins_methods_are_unknown() {
    let mock = start_fake_plugin(json!({})).await;
    mock.close_stdin().await;
    assert!(mock.wait_exit(Duration::from_secs(5)).await.is_some());
    let mut client = RawClient::connect(&mock).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = client.call(&request(1, "fake-echo", json!({}))).await;
        if response["error"]["code"] == json!(-32601) {
            assert_eq!(
                response["error"]["message"],
                json!("Unknown command 'fake-echo'")
            );
            break;
        }
        assert!(Instant::now() < deadline, "{response}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- The real plugin -----------------------------------------------------------------

#[tokio::test]
async fn clnrest_completes_the_handshake_over_http() {
    let port = MockLightningd::free_port();
    let mock =
        MockLightningd::start(json!({"clnrest-port": port, "clnrest-protocol": "http"})).await;
    assert_eq!(mock.init_result(), &json!({}));
    mock.assert_no_violations();
    let pid = mock.pid().expect("a started plugin has a pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the plugin is running");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("clnrest"),
        "pid {pid} is not the plugin"
    );
}
