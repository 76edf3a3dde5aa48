//! The OpenAPI document served at `/swagger.json` (by `swagger.rs`, with Swagger UI).
//!
//! The document describes the node as it is: one `POST /v1/<command>` per command in
//! lightningd's `help` (its usage string gives the parameters: bracketed ones are optional),
//! the routes other plugins registered, `/v1/list-methods` and `/v1/notifications`. The
//! commands are read from `help` at startup and when plugins start or stop. The document
//! itself (~400 KB of JSON) is built when it is first asked for after a change (new
//! commands, a route registered or removed), off the async workers, and kept until the next
//! change: a node whose operators never open Swagger UI never holds it. Each build hands the
//! heap it used and freed back to the system.

use crate::http::registered_routes::Route;
use crate::lightningd::rpc::LightningRpc;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    Paths, PathsBuilder, Ref, Required, ResponseBuilder, ResponsesBuilder,
};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/swagger.json";
/// Where Swagger UI lives when `clnrest-swagger-root` is `/`.
pub const DEFAULT_UI_PATH: &str = "/swagger-ui";

const RUNE_SCHEME: &str = "rune";
const ERROR_SCHEMA: &str = "Error";

/// One command from lightningd's `help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub params: Vec<Param>,
    pub description: Option<String>,
}

/// One parameter from a usage string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub required: bool,
    /// Values listed in the usage (`subcommand=start|stop`).
    pub choices: Vec<String>,
}

impl Command {
    /// Parses a `help` entry's usage, e.g. `invoice amount_msat label description [expiry]`.
    pub fn from_usage(usage: &str, description: Option<String>) -> Option<Command> {
        let mut tokens = usage.split_whitespace();
        let name = tokens.next()?.to_string();
        let params = tokens.filter_map(Param::from_token).collect();
        Some(Command {
            name,
            params,
            description,
        })
    }
}

impl Param {
    /// One usage token: `name`, `[name]` (optional) or `name=a|b` (listed values). Markers
    /// such as `(DEPRECATED!)` are not parameters.
    fn from_token(token: &str) -> Option<Param> {
        if token.starts_with('(') {
            return None;
        }
        let required = !token.starts_with('[');
        let inner = token.trim_start_matches('[').trim_end_matches(']');
        let (name, choices) = match inner.split_once('=') {
            Some((name, values)) => (name, values.split('|').map(str::to_string).collect()),
            None => (inner, Vec::new()),
        };
        (!name.is_empty()).then(|| Param {
            name: name.to_string(),
            required,
            choices,
        })
    }
}

/// The document, built on demand and forgotten when what it describes changes.
///
/// A change never waits for a build in progress: it bumps `generation`, and a document is
/// served only if it was built at the current generation. Changes come from lightningd's
/// notification loop, which must not wait, and building takes tens of milliseconds.
#[derive(Default)]
pub struct ApiDocument {
    commands: RwLock<Arc<Vec<Command>>>,
    /// Counts the changes to the commands and routes.
    generation: AtomicU64,
    /// The document's JSON and the generation it was built at.
    json: RwLock<Option<(u64, Bytes)>>,
    /// Held while building, so that concurrent requests build the document once.
    building: Mutex<()>,
}

impl ApiDocument {
    /// The current document as JSON, built now (with the routes `routes` gives) if a change
    /// made it out of date. Blocking: building it takes tens of milliseconds.
    pub fn json(&self, routes: impl FnOnce() -> Vec<Route>) -> Bytes {
        if let Some(json) = self.built() {
            return json;
        }
        let _building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        // Another request may have built it while this one waited.
        if let Some(json) = self.built() {
            return json;
        }
        // Read before what it describes: a change from here on makes this build out of date.
        let generation = self.generation.load(Ordering::Acquire);
        let commands = self
            .commands
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let document = build(&commands, &routes());
        let json = Bytes::from(document.to_json().unwrap_or_else(|_| "{}".to_string()));
        drop(document);
        *self.json.write().unwrap_or_else(|e| e.into_inner()) = Some((generation, json.clone()));
        // Building the document allocates ~10 MiB of short-lived objects (utoipa's model of
        // ~150 operations) for a ~400 KB result: give them back at once.
        crate::memory::release_freed_memory();
        json
    }

    /// The built document, if it describes the current commands and routes.
    fn built(&self) -> Option<Bytes> {
        let current = self.generation.load(Ordering::Acquire);
        match &*self.json.read().unwrap_or_else(|e| e.into_inner()) {
            Some((generation, json)) if *generation == current => Some(json.clone()),
            _ => None,
        }
    }

    /// Replaces the commands (from a fresh `help`); the document is rebuilt when next asked
    /// for.
    pub fn set_commands(&self, commands: Vec<Command>) {
        *self.commands.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(commands);
        self.changed();
    }

    /// The registered routes changed; the document is rebuilt when next asked for.
    pub fn routes_changed(&self) {
        self.changed();
    }

    /// Makes the built document out of date, and lets go of it.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.json.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Reads `help` and gives the document its commands; retried a few times at startup, when
/// lightningd may still be busy starting.
pub async fn refresh_from_help(rpc: &LightningRpc, document: &ApiDocument) {
    for attempt in 0..5u32 {
        match rpc.help().await {
            Ok(help) => {
                let commands = help
                    .into_iter()
                    .filter_map(|h| Command::from_usage(&h.command, h.description))
                    .collect();
                document.set_commands(commands);
                return;
            }
            Err(e) => {
                tracing::debug!("help for the API document failed (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

/// Builds the document.
pub fn build(commands: &[Command], routes: &[Route]) -> OpenApi {
    let mut paths = PathsBuilder::new()
        .path(
            "/v1/{rpc_method}",
            PathItem::new(HttpMethod::Post, generic_method_operation()),
        )
        .path(
            "/v1/list-methods",
            PathItem::new(HttpMethod::Get, list_methods_operation()),
        )
        .path(
            "/v1/notifications",
            PathItem::new(HttpMethod::Get, notifications_operation()),
        )
        .path(
            crate::metrics::route::PATH,
            PathItem::new(HttpMethod::Get, metrics_operation()),
        )
        .build();
    for command in commands {
        add_operation(
            &mut paths,
            &format!("/v1/{}", command.name),
            HttpMethod::Post,
            command_operation(command),
        );
    }
    for route in routes {
        if let Some(method) = http_method(&route.http_method) {
            add_operation(
                &mut paths,
                &format!("/{}", route.path),
                method,
                route_operation(route),
            );
        }
    }

    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Core Lightning REST API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "lightningd's JSON-RPC over REST. Create a rune with \
                     `lightning-cli createrune` and send it in the `Rune` header. \
                     Successful calls answer 201 with lightningd's `result`.",
                )),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    RUNE_SCHEME,
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("rune"))),
                )
                .schema(
                    ERROR_SCHEMA,
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .property("code", ObjectBuilder::new().schema_type(Type::Integer))
                        .property("message", ObjectBuilder::new().schema_type(Type::String))
                        .property("data", ObjectBuilder::new())
                        .required("code")
                        .required("message"),
                )
                .build(),
        ))
        .build()
}

fn add_operation(paths: &mut Paths, path: &str, method: HttpMethod, operation: Operation) {
    let item = PathItem::new(method, operation);
    match paths.paths.get_mut(path) {
        Some(existing) => existing.merge_operations(item),
        None => {
            paths.paths.insert(path.to_string(), item);
        }
    }
}

fn http_method(name: &str) -> Option<HttpMethod> {
    Some(match name {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => return None,
    })
}

fn operation_id(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The responses every call can give.
fn call_responses() -> ResponsesBuilder {
    ResponsesBuilder::new()
        .response("201", json_response("lightningd's result", None))
        .response("400", error_response("The body does not parse"))
        .response("401", error_response("checkrune refused the rune"))
        .response("403", error_response("No Rune header"))
        .response("404", error_response("Unknown method"))
        .response("406", error_response("No acceptable response format"))
        .response("413", error_response("Body over 8 MiB"))
        .response("415", error_response("Unsupported body format"))
        .response("500", error_response("lightningd returned an error"))
        .response("503", error_response("lightningd is unreachable"))
}

/// The responses of a `GET` that checks a rune: `200` with `content_type`, or why not.
fn rune_checked_get(description: &str, content_type: &str, missing_rune: &str) -> ResponsesBuilder {
    ResponsesBuilder::new()
        .response(
            "200",
            ResponseBuilder::new()
                .description(description)
                .content(content_type, ContentBuilder::new().build()),
        )
        .response("401", error_response("checkrune refused the rune"))
        .response("403", error_response(missing_rune))
        .response("503", error_response("lightningd is unreachable"))
}

fn params_body(
    schema: ObjectBuilder,
    required: bool,
) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .description(Some("The method's parameters"))
        .required(Some(if required {
            Required::True
        } else {
            Required::False
        }))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

fn command_operation(command: &Command) -> Operation {
    let mut schema = ObjectBuilder::new().schema_type(Type::Object);
    let mut any_required = false;
    for param in &command.params {
        // help gives no types: any JSON value, unless the usage lists the values.
        let mut property = ObjectBuilder::new().schema_type(SchemaType::AnyValue);
        if !param.choices.is_empty() {
            property = property
                .schema_type(Type::String)
                .enum_values(Some(param.choices.clone()));
        }
        schema = schema.property(&param.name, property);
        if param.required {
            schema = schema.required(&param.name);
            any_required = true;
        }
    }
    let usage = std::iter::once(command.name.clone())
        .chain(command.params.iter().map(|p| {
            if p.required {
                p.name.clone()
            } else {
                format!("[{}]", p.name)
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    OperationBuilder::new()
        .operation_id(Some(operation_id(&command.name)))
        .summary(Some(command.name.clone()))
        .description(Some(match &command.description {
            Some(description) => format!("{description}\n\nUsage: `{usage}`"),
            None => format!("Usage: `{usage}`"),
        }))
        .tag("lightningd")
        .request_body(Some(params_body(schema, any_required)))
        .responses(call_responses())
        .security(SecurityRequirement::new(RUNE_SCHEME, Vec::<String>::new()))
        .build()
}

fn route_operation(route: &Route) -> Operation {
    let mut operation = OperationBuilder::new()
        .operation_id(Some(operation_id(&format!(
            "plugin_{}_{}",
            route.http_method, route.path
        ))))
        .summary(Some(format!("Calls {}", route.rpc_method)))
        .description(Some(format!(
            "Registered by a plugin: calls `{}` with the path's captures and the body's \
             named parameters.",
            route.rpc_method
        )))
        .tag("plugins")
        .responses(call_responses());
    for name in route.capture_names() {
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if route.http_method != "GET" {
        operation = operation.request_body(Some(params_body(
            ObjectBuilder::new().schema_type(Type::Object),
            false,
        )));
    }
    if route.rune_required {
        operation = operation.security(SecurityRequirement::new(RUNE_SCHEME, Vec::<String>::new()));
    }
    operation.build()
}

fn generic_method_operation() -> Operation {
    OperationBuilder::new()
        .operation_id(Some("clnrest_call_rpc_method"))
        .summary(Some("Call any lightningd method"))
        .description(Some(
            "Calls the lightningd JSON-RPC method named in the path with the body's \
             parameters (an object for named parameters, an array for positional ones) \
             after lightningd's `checkrune` has accepted the `Rune` header for this method \
             and these parameters.",
        ))
        .tag("lightningd")
        .parameter(
            ParameterBuilder::new()
                .name("rpc_method")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("lightningd method, e.g. getinfo"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .request_body(Some(params_body(
            ObjectBuilder::new().schema_type(Type::Object),
            false,
        )))
        .responses(call_responses())
        .security(SecurityRequirement::new(RUNE_SCHEME, Vec::<String>::new()))
        .build()
}

fn list_methods_operation() -> Operation {
    OperationBuilder::new()
        .operation_id(Some("clnrest_list_methods"))
        .summary(Some("List lightningd's commands"))
        .description(Some(
            "Every command lightningd's `help` lists. Needs no rune.",
        ))
        .tag("clnrest")
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("One block per command")
                        .content("text/html", ContentBuilder::new().build()),
                )
                .response("503", error_response("lightningd is unreachable")),
        )
        .build()
}

fn notifications_operation() -> Operation {
    OperationBuilder::new()
        .operation_id(Some("clnrest_notifications"))
        .summary(Some(
            "Stream lightningd's notifications (Server-Sent Events)",
        ))
        .description(Some(
            "One event per notification: `id` its sequence number, `event` its topic, \
             `data` its payload. `Last-Event-ID` resumes; `?topics=a,b` filters. The rune \
             must allow `listclnrest-notifications`.",
        ))
        .tag("clnrest")
        .parameter(
            ParameterBuilder::new()
                .name("topics")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some("Comma-separated topics to receive"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .responses(rune_checked_get(
            "The event stream",
            "text/event-stream",
            "No Rune header",
        ))
        .security(SecurityRequirement::new(RUNE_SCHEME, Vec::<String>::new()))
        .build()
}

fn metrics_operation() -> Operation {
    OperationBuilder::new()
        .operation_id(Some("clnrest_metrics"))
        .summary(Some("Metrics in the Prometheus text format"))
        .description(Some(
            "Requests, lightningd calls, connections, listeners, the journal, deliveries and \
             the process (docs/operations.md). The rune must allow `listclnrest-metrics`; it \
             may also come as `Authorization: Bearer <rune>`.",
        ))
        .tag("clnrest")
        .responses(rune_checked_get("The metrics", "text/plain", "No rune"))
        .security(SecurityRequirement::new(RUNE_SCHEME, Vec::<String>::new()))
        .build()
}

fn json_response(description: &str, schema: Option<Ref>) -> ResponseBuilder {
    let content = match schema {
        Some(schema) => ContentBuilder::new().schema(Some(schema)).build(),
        None => ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
            .build(),
    };
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}

fn error_response(description: &str) -> ResponseBuilder {
    json_response(description, Some(Ref::from_schema_name(ERROR_SCHEMA)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::registered_routes::route_from_params;
    use serde_json::{json, Value};

    fn document(commands: &[&str], routes: &[Route]) -> Value {
        let commands: Vec<Command> = commands
            .iter()
            .filter_map(|u| Command::from_usage(u, None))
            .collect();
        serde_json::from_str(&build(&commands, routes).to_json().unwrap()).unwrap()
    }

    #[test]
    fn usage_strings_become_parameters() {
        let command = Command::from_usage(
            "invoice amount_msat label description [expiry] [fallbacks]",
            None,
        )
        .unwrap();
        assert_eq!(command.name, "invoice");
        let names: Vec<(&str, bool)> = command
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.required))
            .collect();
        assert_eq!(
            names,
            [
                ("amount_msat", true),
                ("label", true),
                ("description", true),
                ("expiry", false),
                ("fallbacks", false)
            ]
        );
        let dev = Command::from_usage("dev subcommand=crash|rhash|slowcmd", None).unwrap();
        assert_eq!(dev.params[0].name, "subcommand");
        assert_eq!(dev.params[0].choices, ["crash", "rhash", "slowcmd"]);
        let reckless =
            Command::from_usage("reckless command target/subcommand [target]", None).unwrap();
        let names: Vec<&str> = reckless.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["command", "target/subcommand", "target"]);
        let old = Command::from_usage("old x (DEPRECATED!)", None).unwrap();
        assert_eq!(old.params.len(), 1);
    }

    #[test]
    fn every_command_gets_a_post_path_with_its_body_schema() {
        let doc = document(&["invoice amount_msat label [expiry]", "getinfo "], &[]);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let invoice = &doc["paths"]["/v1/invoice"]["post"];
        let schema = &invoice["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["required"], json!(["amount_msat", "label"]));
        assert!(schema["properties"]["expiry"].is_object());
        assert_eq!(invoice["security"], json!([{"rune": []}]));
        for status in [
            "201", "400", "401", "403", "404", "406", "413", "415", "500", "503",
        ] {
            assert!(invoice["responses"][status].is_object(), "missing {status}");
        }
        assert!(doc["paths"]["/v1/getinfo"]["post"].is_object());
        assert!(doc["paths"]["/v1/list-methods"]["get"].is_object());
        assert!(doc["paths"]["/v1/notifications"]["get"].is_object());
        assert!(doc["paths"]["/metrics"]["get"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["rune"],
            json!({"type": "apiKey", "name": "rune", "in": "header"})
        );
    }

    #[test]
    fn registered_routes_appear_with_their_captures() {
        let route = route_from_params(&json!({
            "path": "v1/keys/{keyset_id}", "rpc_method": "getkeys",
            "http_method": "GET", "rune_required": false
        }))
        .unwrap();
        let doc = document(&[], &[route]);
        let get = &doc["paths"]["/v1/keys/{keyset_id}"]["get"];
        assert_eq!(get["parameters"][0]["name"], "keyset_id");
        assert_eq!(get["parameters"][0]["in"], "path");
        assert!(get.get("security").is_none());
    }

    #[test]
    fn the_document_is_built_when_asked_for_and_again_only_after_a_change() {
        let api = ApiDocument::default();
        let paths = |json: Bytes| -> Vec<String> {
            let doc: Value = serde_json::from_slice(&json).unwrap();
            doc["paths"].as_object().unwrap().keys().cloned().collect()
        };
        let mut builds = 0;
        let first = paths(api.json(|| {
            builds += 1;
            Vec::new()
        }));
        assert!(!first.contains(&"/v1/getinfo".to_string()), "{first:?}");
        // Unchanged: served as built, the routes are not even asked for.
        api.json(|| {
            builds += 1;
            Vec::new()
        });
        assert_eq!(builds, 1);

        api.set_commands(vec![Command::from_usage("getinfo", None).unwrap()]);
        assert!(paths(api.json(Vec::new)).contains(&"/v1/getinfo".to_string()));

        let route = route_from_params(&json!({"path": "v1/keys", "rpc_method": "getkeys"}));
        api.routes_changed();
        let with_route = paths(api.json(|| vec![route.unwrap()]));
        assert!(
            with_route.contains(&"/v1/keys".to_string()),
            "{with_route:?}"
        );
        assert!(with_route.contains(&"/v1/getinfo".to_string()));
    }
}
