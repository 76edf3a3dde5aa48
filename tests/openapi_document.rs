//! The OpenAPI document at `/swagger.json`: built from lightningd's `help` (one POST path per
//! command, its usage's parameters as the body schema), the registered routes, the fixed
//! routes, and rebuilt when plugins start or stop.
//!
//! The last three tests run external tools, so they are `#[ignore]`d: run them with
//! `cargo test --test openapi_document -- --ignored` (as `.ci/run` does after installing
//! them; then a missing tool is a failure): `openapi-spec-validator` and `schemathesis`
//! (PyPI), and Swagger UI in headless Chromium through `playwright-core` (`tests/e2e/`).

use mock_lightningd::gateway::{json_of, Gateway};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Every status a call can answer, each documented.
const CALL_STATUSES: [&str; 10] = [
    "201", "400", "401", "403", "404", "406", "413", "415", "500", "503",
];
const ERROR_REF: &str = "#/components/schemas/Error";

/// A command of the fixture's `help`: its name and its parameters (name, required).
struct HelpCommand {
    name: String,
    params: Vec<(String, bool)>,
}

/// The 213 commands of fixtures/rpc/help.json, parsed from their usage strings: each token
/// after the name is a parameter, `[bracketed]` ones optional, `name=a|b` lists values;
/// `(DEPRECATED!)` is a marker, not a parameter.
fn help_commands() -> Vec<HelpCommand> {
    let help = mock_lightningd::fixtures::fixtures().help_result["help"]
        .as_array()
        .expect("help.json has a help array")
        .clone();
    help.iter()
        .map(|entry| {
            let usage = entry["command"].as_str().expect("a usage string");
            let mut tokens = usage.split_whitespace();
            let name = tokens.next().expect("a command name").to_string();
            let params = tokens
                .filter(|token| !token.starts_with('('))
                .map(|token| {
                    let required = !token.starts_with('[');
                    let inner = token.trim_start_matches('[').trim_end_matches(']');
                    let name = inner.split('=').next().unwrap_or(inner);
                    (name.to_string(), required)
                })
                .collect();
            HelpCommand { name, params }
        })
        .collect()
}

/// Fetches `/swagger.json`.
async fn fetch_document(gateway: &Gateway) -> Value {
    let response = gateway
        .http
        .get(gateway.url("/swagger.json"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /swagger.json failed: {e}"));
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let (status, document) = json_of(response).await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    document
}

/// Polls `/swagger.json` (built asynchronously) until `ready` holds, for up to 20 s.
async fn document_when(gateway: &Gateway, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let document = fetch_document(gateway).await;
        if ready(&document) {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the document to have {what}; paths: {:?}; plugin logs: {:?}",
            document["paths"]
                .as_object()
                .map(|p| p.keys().cloned().collect::<Vec<_>>()),
            gateway.node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The document once every help command is in it.
async fn complete_document(gateway: &Gateway) -> Value {
    let commands = help_commands();
    document_when(gateway, "every help command", |document| {
        commands
            .iter()
            .all(|c| document["paths"][format!("/v1/{}", c.name)]["post"].is_object())
    })
    .await
}

/// One JSON-RPC call on the mock's `lightning-rpc`, as a plugin makes it.
async fn rpc(gateway: &Gateway, method: &str, params: Value) -> Value {
    gateway.lightningd_call(method, params).await
}

async fn register(gateway: &Gateway, params: Value) {
    let reply = rpc(gateway, "clnrest-register-path", params.clone()).await;
    assert_eq!(reply["result"], json!({}), "registering {params}: {reply}");
}

/// Registers `routes` (`clnrest-register-path` params by name), in order, and returns the
/// document once each of them is in it.
async fn document_with_routes(gateway: &Gateway, routes: &[Value]) -> Value {
    let mut operations = Vec::new();
    for route in routes {
        register(gateway, route.clone()).await;
        let path = route["path"].as_str().expect("a route has a path");
        let method = route["http_method"].as_str().unwrap_or("POST");
        operations.push((
            format!("/{}", path.trim_matches('/')),
            method.to_ascii_lowercase(),
        ));
    }
    let what = format!("the registered routes {operations:?}");
    document_when(gateway, &what, |document| {
        operations
            .iter()
            .all(|(path, method)| document["paths"][path][method].is_object())
    })
    .await
}

/// [`CALL_STATUSES`], sorted as [`sorted_keys`] lists them.
fn sorted_call_statuses() -> Vec<String> {
    let mut statuses: Vec<String> = CALL_STATUSES.iter().map(|s| s.to_string()).collect();
    statuses.sort();
    statuses
}

/// Waits up to 10 s until lightningd's `help` was called more than `before` times (the
/// document is rebuilt from it); `after` says what should have caused the call.
async fn wait_for_help_call(gateway: &Gateway, before: usize, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.node.calls_of("help").len() <= before {
        assert!(Instant::now() < deadline, "no help call after {after}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn every_help_command_is_a_post_path_with_its_usage_parameters() {
    let gateway = Gateway::start().await;
    let commands = help_commands();
    assert_eq!(commands.len(), 213, "fixtures/rpc/help.json");
    let document = complete_document(&gateway).await;
    assert!(
        document["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let mut problems = Vec::new();
    // `reckless` (a parameter named `target/subcommand`) has its own test below.
    for command in commands.iter().filter(|c| c.name != "reckless") {
        let path = format!("/v1/{}", command.name);
        let item = &document["paths"][&path];
        // POST, and GET only where clnrest has its own route (`GET /v1/notifications` is the
        // event stream; lightningd also has a `notifications` command).
        let methods = sorted_keys(item);
        let allowed: &[&str] = if path == "/v1/notifications" {
            &["get", "post"]
        } else {
            &["post"]
        };
        if methods != allowed {
            problems.push(format!("{path}: methods {methods:?}, expected {allowed:?}"));
        }
        let operation = &item["post"];
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        if schema["type"] != "object" {
            problems.push(format!("{path}: body schema is not an object: {schema}"));
        }
        let expected: BTreeMap<&str, bool> = command
            .params
            .iter()
            .map(|(name, required)| (name.as_str(), *required))
            .collect();
        let properties: BTreeSet<String> = sorted_keys(&schema["properties"]).into_iter().collect();
        let expected_properties: BTreeSet<String> =
            expected.keys().map(|k| k.to_string()).collect();
        if properties != expected_properties {
            problems.push(format!(
                "{path}: properties {properties:?}, usage has {expected_properties:?}"
            ));
        }
        let required = string_set(&schema["required"]);
        let expected_required: BTreeSet<String> = expected
            .iter()
            .filter(|(_, required)| **required)
            .map(|(name, _)| name.to_string())
            .collect();
        if required != expected_required {
            problems.push(format!(
                "{path}: required {required:?}, usage requires {expected_required:?}"
            ));
        }
        if !expected_required.is_empty() && operation["requestBody"]["required"] != json!(true) {
            problems.push(format!(
                "{path}: has required parameters but the body is optional"
            ));
        }
        if operation["security"] != json!([{"rune": []}]) {
            problems.push(format!("{path}: security {}", operation["security"]));
        }
        let statuses = sorted_keys(&operation["responses"]);
        if statuses != sorted_call_statuses() {
            problems.push(format!("{path}: responses {statuses:?}"));
        }
        for status in &CALL_STATUSES[1..] {
            let schema = &operation["responses"][*status]["content"]["application/json"]["schema"];
            if schema["$ref"] != ERROR_REF {
                problems.push(format!(
                    "{path}: {status} is not the error schema: {schema}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The plugin's own commands come from the (mock's) help too.
    assert!(document["paths"]["/v1/clnrest-register-path"]["post"].is_object());
}

/// lightningd names parameters with any text (`reckless command target/subcommand [target]`:
/// a required `target/subcommand`, an optional `target`); the body schema keeps the names whole.
#[tokio::test]
async fn parameter_names_with_punctuation_are_kept_whole() {
    let gateway = Gateway::start().await;
    let document = complete_document(&gateway).await;
    let schema = &document["paths"]["/v1/reckless"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(
        sorted_keys(&schema["properties"]),
        ["command", "target", "target/subcommand"],
        "usage: reckless command target/subcommand [target]; schema: {schema}"
    );
    assert_eq!(
        string_set(&schema["required"]),
        BTreeSet::from(["command".to_string(), "target/subcommand".to_string()]),
        "usage: reckless command target/subcommand [target]; schema: {schema}"
    );
}

/// `help` gives no types: a parameter's schema accepts any JSON value (lightningd takes
/// `amount_msat` as a number or a string), except the values a usage lists (`name=a|b`).
#[tokio::test]
async fn usage_parameters_claim_no_type_help_does_not_give() {
    let gateway = Gateway::start().await;
    let document = complete_document(&gateway).await;
    let mut typed = Vec::new();
    for command in help_commands() {
        let path = format!("/v1/{}", command.name);
        let properties = &document["paths"][&path]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["properties"];
        for (name, schema) in properties.as_object().into_iter().flatten() {
            if schema.get("enum").is_none() && schema.get("type").is_some() {
                typed.push(format!("{path} {name}: {schema}"));
            }
        }
    }
    assert!(
        typed.is_empty(),
        "{} parameter(s) with a type help does not give, e.g.:\n{}",
        typed.len(),
        typed[..typed.len().min(5)].join("\n")
    );
    let dev = &document["paths"]["/v1/dev"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["subcommand"];
    assert_eq!(dev["enum"], json!(["crash", "rhash", "slowcmd"]), "{dev}");
}

/// Operation ids are unique (OpenAPI requires it; generated clients name methods after them).
#[tokio::test]
async fn operation_ids_are_unique() {
    let gateway = Gateway::start().await;
    complete_document(&gateway).await;
    let document = document_with_routes(
        &gateway,
        &[json!({"path": "v1/keys/{keyset_id}", "rpc_method": "listdatastore", "http_method": "GET"})],
    )
    .await;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let here = format!("{method} {path}");
            if let Some(first) = seen.insert(id.to_string(), here.clone()) {
                duplicates.push(format!("'{id}': {first} and {here}"));
            }
        }
    }
    assert!(
        duplicates.is_empty(),
        "duplicate operationIds:\n{}",
        duplicates.join("\n")
    );
}

#[tokio::test]
async fn components_define_the_rune_scheme_and_the_error_schema() {
    let gateway = Gateway::start().await;
    let document = complete_document(&gateway).await;
    let components = &document["components"];
    assert_eq!(
        components["securitySchemes"]["rune"],
        json!({"type": "apiKey", "in": "header", "name": "rune"})
    );
    let error = &components["schemas"]["Error"];
    assert_eq!(error["type"], "object", "{error}");
    assert_eq!(error["properties"]["code"]["type"], "integer", "{error}");
    assert_eq!(error["properties"]["message"]["type"], "string", "{error}");
    assert_eq!(
        string_set(&error["required"]),
        BTreeSet::from(["code".to_string(), "message".to_string()])
    );
    // A spot check of one command in full.
    let invoice = &document["paths"]["/v1/invoice"]["post"];
    let schema = &invoice["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        schema["required"],
        json!(["amount_msat", "label", "description"])
    );
    assert_eq!(
        sorted_keys(&schema["properties"]),
        [
            "amount_msat",
            "cltv",
            "deschashonly",
            "description",
            "dev-routes",
            "expiry",
            "exposeprivatechannels",
            "fallbacks",
            "label",
            "preimage"
        ]
    );
    let getinfo = &document["paths"]["/v1/getinfo"]["post"];
    let schema = &getinfo["requestBody"]["content"]["application/json"]["schema"];
    assert!(sorted_keys(&schema["properties"]).is_empty(), "{schema}");
    assert!(string_set(&schema["required"]).is_empty(), "{schema}");
}

#[tokio::test]
async fn list_methods_and_notifications_are_documented() {
    let gateway = Gateway::start().await;
    let document = complete_document(&gateway).await;
    let list_methods = &document["paths"]["/v1/list-methods"];
    assert_eq!(sorted_keys(list_methods), ["get"]);
    assert!(
        list_methods["get"]["responses"]["200"]["content"]["text/html"].is_object(),
        "{list_methods}"
    );
    assert!(
        list_methods["get"].get("security").is_none(),
        "list-methods needs no rune: {list_methods}"
    );
    // GET is the event stream; POST is lightningd's own `notifications` command.
    let notifications = &document["paths"]["/v1/notifications"];
    assert_eq!(sorted_keys(notifications), ["get", "post"]);
    assert!(
        notifications["get"]["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "{notifications}"
    );
    assert_eq!(notifications["get"]["security"], json!([{"rune": []}]));
}

#[tokio::test]
async fn registered_routes_appear_with_their_methods_and_captures() {
    let gateway = Gateway::start().await;
    complete_document(&gateway).await;
    let routes = [
        json!({"path": "/v1/keys/{keyset_id}", "rpc_method": "listdatastore", "http_method": "GET", "rune_required": false}),
        json!({"path": "v1/keys/{keyset_id}", "rpc_method": "datastore", "http_method": "delete"}),
        json!({"path": "v{version}/wallet/{name}/go", "rpc_method": "getinfo"}),
    ];
    let document = document_with_routes(&gateway, &routes).await;

    let keys = &document["paths"]["/v1/keys/{keyset_id}"];
    assert_eq!(sorted_keys(keys), ["delete", "get"], "{keys}");
    for method in ["get", "delete"] {
        let parameters = &keys[method]["parameters"];
        assert_eq!(
            parameters,
            &json!([{"name": "keyset_id", "in": "path", "required": true, "schema": {"type": "string"}}]),
            "{method}"
        );
        assert_eq!(
            sorted_keys(&keys[method]["responses"]),
            sorted_call_statuses(),
            "{method}"
        );
    }
    // rune_required false: no security requirement; true: the rune scheme.
    assert!(keys["get"].get("security").is_none(), "{}", keys["get"]);
    assert_eq!(keys["delete"]["security"], json!([{"rune": []}]));

    let wallet = &document["paths"]["/v{version}/wallet/{name}/go"];
    assert_eq!(sorted_keys(wallet), ["post"], "{wallet}");
    let names: Vec<&Value> = wallet["post"]["parameters"]
        .as_array()
        .expect("path parameters")
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("version"), &json!("name")]);
    assert!(wallet["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["in"] == "path" && p["required"] == true));
    assert!(wallet["post"]["requestBody"]["content"]["application/json"].is_object());
    assert_eq!(wallet["post"]["security"], json!([{"rune": []}]));
    // The help-based paths are still all there.
    assert!(document["paths"]["/v1/getinfo"]["post"].is_object());
}

#[tokio::test]
async fn plugin_notifications_rebuild_the_document() {
    let gateway = Gateway::start().await;
    complete_document(&gateway).await;
    document_with_routes(
        &gateway,
        &[json!({"path": "v1/cashu/keys/{keyset_id}", "rpc_method": "cashu-getkeys", "http_method": "GET", "rune_required": false})],
    )
    .await;

    // plugin_started: lightningd's help is read again.
    let cashu = json!({"plugin_name": "cashu.py", "plugin_path": "/plugins/cashu.py", "methods": ["cashu-getkeys"]});
    let helps = gateway.node.calls_of("help").len();
    assert!(gateway.node.notify("plugin_started", cashu.clone()).await);
    wait_for_help_call(&gateway, helps, "plugin_started").await;
    let document = complete_document(&gateway).await;
    assert!(document["paths"]["/v1/cashu/keys/{keyset_id}"]["get"].is_object());

    // plugin_stopped: its route leaves the document, which is rebuilt from help again.
    let helps = gateway.node.calls_of("help").len();
    assert!(gateway.node.notify("plugin_stopped", cashu).await);
    let document = document_when(&gateway, "no stopped plugin's route", |d| {
        d["paths"].get("/v1/cashu/keys/{keyset_id}").is_none()
    })
    .await;
    assert!(document["paths"]["/v1/getinfo"]["post"].is_object());
    wait_for_help_call(&gateway, helps, "plugin_stopped").await;
    complete_document(&gateway).await;
}

// ---- External tools (ignored by default; .ci/run runs them with --ignored) ----

/// The external checks share 2 cores: one at a time.
static EXTERNAL_TOOLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What an external check starts with: its turn at the external tools (held while the
/// guard lives) and a gateway whose document is complete.
async fn external_check() -> (tokio::sync::MutexGuard<'static, ()>, Gateway) {
    let one_at_a_time = EXTERNAL_TOOLS.lock().await;
    let gateway = Gateway::start().await;
    complete_document(&gateway).await;
    (one_at_a_time, gateway)
}

/// The repository root.
fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<cargo target dir>/e2e` (CARGO_TARGET_TMPDIR is `<target>/tmp`).
fn e2e_output_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("e2e")
}

struct ToolRun {
    success: bool,
    stdout: String,
    stderr: String,
}

impl ToolRun {
    fn transcript(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    /// Asserts the tool succeeded; `failure` says what a failure means.
    #[track_caller]
    fn assert_success(&self, failure: &str) {
        assert!(self.success, "{failure}:\n{}", self.transcript());
    }

    #[track_caller]
    fn assert_stdout_contains(&self, text: &str) {
        assert!(self.stdout.contains(text), "{}", self.transcript());
    }
}

/// Runs a tool to completion (killed after `limit`); a tool that cannot start fails the test.
async fn run_tool(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
    limit: Duration,
) -> ToolRun {
    println!("running: {program} {}", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} cannot be run ({e}): run .ci/run's install step"));
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("waiting for {program}: {e}"));
    let run = ToolRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    println!(
        "{program} exited with {}\n{}",
        output.status,
        run.transcript()
    );
    run
}

#[tokio::test]
#[ignore = "needs openapi-spec-validator (PyPI)"]
async fn openapi_spec_validator_accepts_the_document() {
    let (_one_at_a_time, gateway) = external_check().await;
    // With registered routes too (captures, several methods on one path, no-rune GET).
    let routes = [
        json!({"path": "v1/keys/{keyset_id}", "rpc_method": "listdatastore", "http_method": "GET", "rune_required": false}),
        json!({"path": "v1/keys/{keyset_id}", "rpc_method": "datastore", "http_method": "PUT"}),
        json!({"path": "v{version}/wallet/{name}/go", "rpc_method": "getinfo"}),
    ];
    let document = document_with_routes(&gateway, &routes).await;
    // Kept under target/e2e/ for a look after a failure.
    let dir = e2e_output_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join("swagger.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let file_arg = file.to_string_lossy().into_owned();
    let run = run_tool(
        "python3",
        &[
            "-m",
            "openapi_spec_validator",
            "--schema",
            "3.1",
            "--validation-errors",
            "all",
            &file_arg,
        ],
        &[],
        &repo_dir(),
        Duration::from_secs(120),
    )
    .await;
    run.assert_success("openapi-spec-validator rejects the document");
    run.assert_stdout_contains("OK");
}

#[tokio::test]
#[ignore = "needs schemathesis (PyPI)"]
async fn schemathesis_finds_no_server_errors_but_lightningd_pass_through() {
    let (_one_at_a_time, gateway) = external_check().await;
    let work = tempfile::tempdir().expect("a temp dir");
    let junit = work.path().join("junit.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    let document_url = gateway.url("/swagger.json");
    let rune_header = format!("Rune: {}", gateway.rune);
    let hooks_dir = repo_dir().join("tests/e2e");
    let hooks_dir = hooks_dir.to_string_lossy().into_owned();
    let run = run_tool(
        "schemathesis",
        &[
            "run",
            &document_url,
            "--url",
            &gateway.base,
            "--checks",
            "only_lightningd_errors",
            "--include-path-regex",
            "^/v1/(getinfo|invoice|listinvoices|datastore|listdatastore|list-methods)$",
            "-H",
            &rune_header,
            "--max-examples",
            "50",
            "--seed",
            "20260601",
            "--workers",
            "1",
            "--request-timeout",
            "15",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            &junit_arg,
        ],
        &[
            ("SCHEMATHESIS_HOOKS", "schemathesis_hooks"),
            ("PYTHONPATH", &hooks_dir),
        ],
        work.path(),
        Duration::from_secs(240),
    )
    .await;
    run.assert_success(
        "schemathesis found server errors other than lightningd's pass-through (or failed)",
    );
    // It really tested the operations it was given.
    let report = std::fs::read_to_string(&junit).unwrap_or_default();
    for operation in [
        "POST /v1/getinfo",
        "POST /v1/invoice",
        "POST /v1/listinvoices",
        "POST /v1/datastore",
        "POST /v1/listdatastore",
        "GET /v1/list-methods",
    ] {
        assert!(
            report.contains(operation),
            "{operation} was not tested; junit report:\n{report}\n{}",
            run.transcript()
        );
    }
    // And its requests reached lightningd with the rune.
    assert!(!gateway.node.calls_of("invoice").is_empty());
    assert!(!gateway.node.calls_of("checkrune").is_empty());
}

#[tokio::test]
#[ignore = "needs Chromium and playwright-core (tests/e2e)"]
async fn swagger_ui_executes_getinfo_in_a_browser() {
    let (_one_at_a_time, gateway) = external_check().await;
    let screenshot = e2e_output_dir().join("swagger-getinfo.png");
    let _ = std::fs::remove_file(&screenshot);
    let screenshot_arg = screenshot.to_string_lossy().into_owned();
    let run = run_tool(
        "node",
        &[
            "tests/e2e/swagger_ui.mjs",
            &gateway.base,
            &gateway.rune,
            &screenshot_arg,
        ],
        &[],
        &repo_dir(),
        Duration::from_secs(180),
    )
    .await;
    run.assert_success("Swagger UI check failed");
    run.assert_stdout_contains("response status: 201");
    let size = std::fs::metadata(&screenshot)
        .map(|m| m.len())
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", screenshot.display()));
    assert!(size > 1000, "screenshot is {size} bytes");
    // The browser's request went through checkrune with the rune it was given.
    let checks = gateway.node.calls_of("checkrune");
    assert!(
        checks
            .iter()
            .any(|c| c.params["rune"] == json!(gateway.rune) && c.params["method"] == "getinfo"),
        "{checks:?}"
    );
    assert_eq!(gateway.node.calls_of("getinfo").len(), 1);
    println!("screenshot: {}", screenshot.display());
}
