//! REST routes published by other plugins through our `clnrest-register-path` RPC method:
//! path patterns with `{name}` captures, their validation and conflict rules, the registry
//! requests are matched against, and the two RPC methods (`clnrest-register-path`,
//! `clnrest-list-paths`).
//!
//! A pattern is stored without leading or trailing `/`. Each segment is literal text, or one
//! `{name}` capture with optional literal text before and after it (`v{version}`). Two
//! routes conflict when, for the same HTTP method, some URL could match both.

use serde::Serialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::RwLock;

/// The HTTP methods a route may be registered for.
pub const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// What `checkrune` is asked instead of the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuneRestrictions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodeid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The pattern, without leading/trailing `/`.
    pub path: String,
    pub http_method: String,
    pub rpc_method: String,
    pub rune_required: bool,
    pub rune_restrictions: RuneRestrictions,
    #[serde(skip)]
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture {
        prefix: String,
        name: String,
        suffix: String,
    },
}

/// Why a registration is refused; the text is what `clnrest-register-path` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("Path must not be empty")]
    EmptyPath,
    #[error("Path must not be root")]
    RootPath,
    #[error("Path must not contain empty segments")]
    EmptySegment,
    #[error("Invalid path segment '{0}'")]
    InvalidSegment(String),
    #[error("Invalid path segment '{0}': one capture per segment")]
    SeveralCaptures(String),
    #[error("Wildcards not supported")]
    Wildcard,
    #[error("Invalid capture name '{{{0}}}'")]
    InvalidCaptureName(String),
    #[error("Duplicate capture name '{0}'")]
    DuplicateCapture(String),
    #[error("{0} is not a supported http method!")]
    UnsupportedHttpMethod(String),
    #[error("rune_required must be true for anything but GET requests")]
    RuneRequired,
    #[error("rpc_method must not be empty")]
    EmptyRpcMethod,
    #[error("Path '{path}' would shadow the built-in route {builtin}")]
    ShadowsBuiltin { path: String, builtin: String },
    #[error("Conflicting path '{path}' already exists with http_method: {http_method}")]
    Conflict { path: String, http_method: String },
    #[error("unknown parameter: {0}")]
    UnknownParameter(String),
    #[error("too many parameters")]
    TooManyParameters,
    #[error("params must be an object or an array")]
    ParamsShape,
    #[error("missing required parameter: {0}")]
    MissingParameter(&'static str),
    #[error("{0}: should be a string")]
    NotAString(String),
    #[error("rune_required: should be a boolean")]
    RuneRequiredNotABoolean,
    #[error("rune_restrictions: unknown member {0}")]
    UnknownRestriction(String),
    #[error("rune_restrictions: should be an object")]
    RestrictionsShape,
}

impl Segment {
    fn parse(text: &str) -> Result<Segment, RouteError> {
        let Some(open) = text.find('{') else {
            if text.contains('}') {
                return Err(RouteError::InvalidSegment(text.to_string()));
            }
            return Ok(Segment::Literal(text.to_string()));
        };
        let close = text
            .find('}')
            .filter(|close| *close > open)
            .ok_or_else(|| RouteError::InvalidSegment(text.to_string()))?;
        let name = &text[open + 1..close];
        if name.starts_with('*') {
            return Err(RouteError::Wildcard);
        }
        let (prefix, suffix) = (&text[..open], &text[close + 1..]);
        if suffix.contains(['{', '}']) {
            return Err(RouteError::SeveralCaptures(text.to_string()));
        }
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(RouteError::InvalidCaptureName(name.to_string()));
        }
        Ok(Segment::Capture {
            prefix: prefix.to_string(),
            name: name.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// Whether some URL segment matches both (captures match one or more characters).
    fn overlaps(&self, other: &Segment) -> bool {
        use Segment::*;
        match (self, other) {
            (Literal(a), Literal(b)) => a == b,
            (Literal(text), capture) | (capture, Literal(text)) => capture.capture(text).is_some(),
            (
                Capture {
                    prefix: p1,
                    suffix: s1,
                    ..
                },
                Capture {
                    prefix: p2,
                    suffix: s2,
                    ..
                },
            ) => {
                (p1.starts_with(p2.as_str()) || p2.starts_with(p1.as_str()))
                    && (s1.ends_with(s2.as_str()) || s2.ends_with(s1.as_str()))
            }
        }
    }

    /// The captured value if `text` matches this segment.
    fn capture<'t>(&self, text: &'t str) -> Option<&'t str> {
        match self {
            Segment::Literal(literal) => (literal == text).then_some(""),
            Segment::Capture { prefix, suffix, .. } => {
                let rest = text.strip_prefix(prefix.as_str())?;
                let value = rest.strip_suffix(suffix.as_str())?;
                (!value.is_empty()).then_some(value)
            }
        }
    }
}

/// Splits a pattern or URL path into segments, ignoring leading/trailing `/`.
fn split(path: &str) -> Vec<&str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

impl Route {
    /// Validates a registration (everything but conflicts with other routes).
    pub fn new(
        path: &str,
        rpc_method: &str,
        http_method: &str,
        rune_required: bool,
        rune_restrictions: RuneRestrictions,
    ) -> Result<Route, RouteError> {
        if path.is_empty() {
            return Err(RouteError::EmptyPath);
        }
        if path.trim_matches('/').is_empty() {
            return Err(RouteError::RootPath);
        }
        let http_method = http_method.to_ascii_uppercase();
        if !HTTP_METHODS.contains(&http_method.as_str()) {
            return Err(RouteError::UnsupportedHttpMethod(http_method));
        }
        if !rune_required && http_method != "GET" {
            return Err(RouteError::RuneRequired);
        }
        if rpc_method.is_empty() {
            return Err(RouteError::EmptyRpcMethod);
        }
        let segments = split(path)
            .into_iter()
            .map(Segment::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if segments
            .iter()
            .any(|s| matches!(s, Segment::Literal(l) if l.is_empty()))
        {
            return Err(RouteError::EmptySegment);
        }
        let mut names = HashSet::new();
        for segment in &segments {
            if let Segment::Capture { name, .. } = segment {
                if !names.insert(name.as_str()) {
                    return Err(RouteError::DuplicateCapture(name.clone()));
                }
            }
        }
        Ok(Route {
            path: path.trim_matches('/').to_string(),
            http_method,
            rpc_method: rpc_method.to_string(),
            rune_required,
            rune_restrictions,
            segments,
        })
    }

    /// Whether some URL could match both routes' paths.
    fn overlaps(&self, other: &Route) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a.overlaps(b))
    }

    /// The captured params if a URL path (its decoded segments) matches this route's path.
    fn captures(&self, parts: &[Cow<'_, str>]) -> Option<Map<String, Value>> {
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut captured = Map::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            let value = segment.capture(part)?;
            if let Segment::Capture { name, .. } = segment {
                captured.insert(name.clone(), Value::String(value.to_string()));
            }
        }
        Some(captured)
    }

    /// Whether a URL path (its decoded segments) matches this route's path.
    fn matches(&self, parts: &[Cow<'_, str>]) -> bool {
        parts.len() == self.segments.len()
            && self
                .segments
                .iter()
                .zip(parts)
                .all(|(segment, part)| segment.capture(part).is_some())
    }

    /// The capture names, in path order (for the OpenAPI document).
    pub fn capture_names(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Capture { name, .. } => Some(name.as_str()),
                Segment::Literal(_) => None,
            })
            .collect()
    }
}

/// A URL path's segments, each percent-decoded once; `None` if one is not UTF-8 then.
///
/// The path is split at its `/` before decoding: an encoded slash (`%2F`) stays inside its
/// segment, so it never matches a literal segment, and a capture's value may contain `/`.
fn decoded_segments(url_path: &str) -> Option<Vec<Cow<'_, str>>> {
    split(url_path)
        .into_iter()
        .map(|part| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .ok()
        })
        .collect()
}

/// What a request path resolves to among the registered routes.
pub enum Resolution {
    /// A route for this path and method, with its captured params.
    Found(Box<Route>, Map<String, Value>),
    /// The path is registered, but not for this method.
    WrongMethod(String),
    NotRegistered,
}

/// A path of ours that no registered route may match, since registered routes are looked up
/// first and would take it over.
struct BuiltinPath {
    /// Its segments, e.g. `["v1", "notifications"]`.
    segments: Vec<String>,
    /// Whether everything below it is ours too (Socket.IO, Swagger UI's files).
    with_subpaths: bool,
    /// How the refusal names it.
    name: String,
}

impl BuiltinPath {
    fn new(path: &str, with_subpaths: bool, name: String) -> BuiltinPath {
        BuiltinPath {
            segments: split(path).into_iter().map(str::to_string).collect(),
            with_subpaths,
            name,
        }
    }

    /// Whether some URL that is ours would reach `route` instead.
    fn shadowed_by(&self, route: &Route) -> bool {
        let n = self.segments.len();
        let lengths_fit = if self.with_subpaths {
            route.segments.len() >= n
        } else {
            route.segments.len() == n
        };
        lengths_fit
            && route
                .segments
                .iter()
                .zip(&self.segments)
                .all(|(segment, part)| segment.capture(part).is_some())
    }
}

/// The built-in paths for Swagger UI at `swagger_root` (as `clnrest-swagger-root` says).
fn builtin_paths(swagger_root: &str) -> Vec<BuiltinPath> {
    let ui = if swagger_root == "/" {
        crate::http::openapi::DEFAULT_UI_PATH
    } else {
        swagger_root
    };
    vec![
        BuiltinPath::new("v1/list-methods", false, "GET /v1/list-methods".into()),
        BuiltinPath::new("v1/notifications", false, "GET /v1/notifications".into()),
        BuiltinPath::new("socket.io", true, "/socket.io/".into()),
        BuiltinPath::new(
            crate::metrics::route::PATH,
            false,
            format!("GET {}", crate::metrics::route::PATH),
        ),
        BuiltinPath::new(
            crate::http::openapi::DOCUMENT_PATH,
            false,
            format!("GET {}", crate::http::openapi::DOCUMENT_PATH),
        ),
        BuiltinPath::new(ui, true, format!("Swagger UI at {ui}")),
    ]
}

/// The registry of routes other plugins registered.
pub struct RegisteredRoutes {
    routes: RwLock<Vec<Route>>,
    builtin: Vec<BuiltinPath>,
}

impl Default for RegisteredRoutes {
    /// A registry for Swagger UI at its default place.
    fn default() -> Self {
        RegisteredRoutes::new("/")
    }
}

impl RegisteredRoutes {
    /// An empty registry that keeps registrations off our own routes, with Swagger UI at
    /// `swagger_root`.
    pub fn new(swagger_root: &str) -> RegisteredRoutes {
        RegisteredRoutes {
            routes: RwLock::new(Vec::new()),
            builtin: builtin_paths(swagger_root),
        }
    }

    /// The built-in route `route` would take over, if any.
    fn shadowed_builtin(&self, route: &Route) -> Option<String> {
        // `v1/{x}` (or `{a}/{b}`, `v{n}/{m}`) would take every `POST /v1/<method>`.
        let every_method = route.segments.len() == 2
            && route.segments[0].capture("v1").is_some()
            && matches!(&route.segments[1], Segment::Capture { prefix, suffix, .. }
                if prefix.is_empty() && suffix.is_empty());
        if every_method {
            return Some("POST /v1/<method>".into());
        }
        self.builtin
            .iter()
            .find(|builtin| builtin.shadowed_by(route))
            .map(|builtin| builtin.name.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Route>> {
        self.routes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Route>> {
        self.routes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a route unless it conflicts with one already registered for the same method.
    pub fn register(&self, route: Route) -> Result<(), RouteError> {
        if let Some(builtin) = self.shadowed_builtin(&route) {
            return Err(RouteError::ShadowsBuiltin {
                path: route.path,
                builtin,
            });
        }
        let mut routes = self.write();
        if let Some(existing) = routes
            .iter()
            .find(|r| r.http_method == route.http_method && r.overlaps(&route))
        {
            return Err(RouteError::Conflict {
                path: existing.path.clone(),
                http_method: existing.http_method.clone(),
            });
        }
        tracing::info!(
            "registered {} /{} -> {}",
            route.http_method,
            route.path,
            route.rpc_method
        );
        routes.push(route);
        Ok(())
    }

    /// Removes the routes that lead to any of `rpc_methods`; returns how many went.
    pub fn remove_methods(&self, rpc_methods: &[String]) -> usize {
        let mut routes = self.write();
        let before = routes.len();
        routes.retain(|r| !rpc_methods.contains(&r.rpc_method));
        before - routes.len()
    }

    /// Every registered route.
    pub fn list(&self) -> Vec<Route> {
        self.read().clone()
    }

    /// Whether nothing is registered (the common case: requests skip matching).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The `rpc_method` of the route a request would reach, without its captures (for the
    /// metrics' labels).
    pub fn rpc_method_for(&self, http_method: &str, url_path: &str) -> Option<String> {
        let parts = decoded_segments(url_path)?;
        self.read()
            .iter()
            .find(|route| route.http_method == http_method && route.matches(&parts))
            .map(|route| route.rpc_method.clone())
    }

    /// Finds the route for a request's path (percent-encoded, as sent; decoded here once,
    /// segment by segment: literals and captures are compared with the decoded text).
    pub fn resolve(&self, http_method: &str, url_path: &str) -> Resolution {
        let Some(parts) = decoded_segments(url_path) else {
            return Resolution::NotRegistered;
        };
        let routes = self.read();
        let mut path_registered = None;
        for route in routes.iter() {
            if let Some(captured) = route.captures(&parts) {
                if route.http_method == http_method {
                    return Resolution::Found(Box::new(route.clone()), captured);
                }
                path_registered.get_or_insert_with(|| route.path.clone());
            }
        }
        match path_registered {
            Some(path) => Resolution::WrongMethod(path),
            None => Resolution::NotRegistered,
        }
    }
}

/// Parses `clnrest-register-path` params (by name or by position) into a route.
pub fn route_from_params(params: &Value) -> Result<Route, RouteError> {
    const ORDER: [&str; 5] = [
        "path",
        "rpc_method",
        "http_method",
        "rune_required",
        "rune_restrictions",
    ];
    let named: Map<String, Value> = match params {
        Value::Object(map) => {
            if let Some(unknown) = map.keys().find(|k| !ORDER.contains(&k.as_str())) {
                return Err(RouteError::UnknownParameter(unknown.clone()));
            }
            map.clone()
        }
        Value::Array(items) => {
            if items.len() > ORDER.len() {
                return Err(RouteError::TooManyParameters);
            }
            ORDER
                .iter()
                .zip(items)
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        }
        Value::Null => Map::new(),
        _ => return Err(RouteError::ParamsShape),
    };
    let string = |name: &'static str| -> Result<Option<&str>, RouteError> {
        match named.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RouteError::NotAString(name.to_string())),
        }
    };
    let path = string("path")?.ok_or(RouteError::MissingParameter("path"))?;
    let rpc_method = string("rpc_method")?.ok_or(RouteError::MissingParameter("rpc_method"))?;
    let http_method = string("http_method")?.unwrap_or("POST");
    let rune_required = match named.get("rune_required") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(RouteError::RuneRequiredNotABoolean),
    };
    let rune_restrictions = match named.get("rune_restrictions") {
        None | Some(Value::Null) => RuneRestrictions::default(),
        Some(Value::Object(r)) => {
            if let Some(unknown) = r
                .keys()
                .find(|k| !["nodeid", "method", "params"].contains(&k.as_str()))
            {
                return Err(RouteError::UnknownRestriction(unknown.clone()));
            }
            let text = |name: &str| match r.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(RouteError::NotAString(format!("rune_restrictions.{name}"))),
            };
            RuneRestrictions {
                nodeid: text("nodeid")?,
                method: text("method")?,
                params: r.get("params").filter(|p| !p.is_null()).cloned(),
            }
        }
        Some(_) => return Err(RouteError::RestrictionsShape),
    };
    Route::new(
        path,
        rpc_method,
        http_method,
        rune_required,
        rune_restrictions,
    )
}

/// The result of `clnrest-list-paths`.
pub fn list_result(routes: &RegisteredRoutes) -> Value {
    json!({ "paths": routes.list() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, method: &str) -> Route {
        Route::new(path, "m", method, true, RuneRestrictions::default()).unwrap()
    }

    fn register_error(params: Value) -> String {
        route_from_params(&params).unwrap_err().to_string()
    }

    #[test]
    fn registration_errors_are_exact() {
        assert_eq!(
            register_error(json!({"path": "/", "rpc_method": "x"})),
            "Path must not be root"
        );
        assert_eq!(
            register_error(json!({"path": "", "rpc_method": "x"})),
            "Path must not be empty"
        );
        assert_eq!(
            register_error(json!({"path": "v1/{*rest}", "rpc_method": "x"})),
            "Wildcards not supported"
        );
        assert_eq!(
            register_error(
                json!({"path": "v1/x", "rpc_method": "x", "http_method": "post", "rune_required": false})
            ),
            "rune_required must be true for anything but GET requests"
        );
        assert_eq!(
            register_error(json!({"path": "v1/x", "rpc_method": "x", "http_method": "TRACE"})),
            "TRACE is not a supported http method!"
        );
    }

    #[test]
    fn params_by_position_and_defaults() {
        let route = route_from_params(&json!(["/v1/keys/{keyset_id}/", "getkeys"])).unwrap();
        assert_eq!(route.path, "v1/keys/{keyset_id}");
        assert_eq!(route.http_method, "POST");
        assert!(route.rune_required);
        let route = route_from_params(&json!(["v1/a", "m", "get", false])).unwrap();
        assert_eq!(route.http_method, "GET");
        assert!(!route.rune_required);
    }

    #[test]
    fn conflicts_are_any_url_matching_both() {
        let routes = RegisteredRoutes::default();
        routes
            .register(route("v{version}/{capture}/go", "POST"))
            .unwrap();
        assert_eq!(
            routes
                .register(route("v1/{capture}/go", "POST"))
                .unwrap_err()
                .to_string(),
            "Conflicting path 'v{version}/{capture}/go' already exists with http_method: POST"
        );
        // Same path, another method: fine.
        routes.register(route("v1/{capture}/go", "GET")).unwrap();
        routes.register(route("keys/{a}", "POST")).unwrap();
        assert!(routes.register(route("keys/{b}", "POST")).is_err());
        // Different literal segments never conflict.
        routes.register(route("w1/{a}", "POST")).unwrap();
        routes.register(route("v1/{a}/stop", "POST")).unwrap();
    }

    #[test]
    fn builtin_routes_are_never_shadowed() {
        let routes = RegisteredRoutes::new("/docs");
        let refusal = |path: &str| match routes.register(route(path, "GET")) {
            Err(RouteError::ShadowsBuiltin { builtin, .. }) => Some(builtin),
            Err(other) => panic!("{path}: {other}"),
            Ok(()) => None,
        };
        assert_eq!(refusal("v1/{x}").as_deref(), Some("POST /v1/<method>"));
        assert_eq!(refusal("{a}/{b}").as_deref(), Some("POST /v1/<method>"));
        assert_eq!(refusal("v1/{x}s").as_deref(), Some("GET /v1/list-methods"));
        assert_eq!(refusal("v1/{x}-keys").as_deref(), None);
        assert_eq!(
            refusal("{a}/notifications").as_deref(),
            Some("GET /v1/notifications")
        );
        assert_eq!(refusal("socket.io/{x}/{y}").as_deref(), Some("/socket.io/"));
        assert_eq!(
            refusal("docs/{file}").as_deref(),
            Some("Swagger UI at /docs")
        );
        assert_eq!(refusal("swagger-ui").as_deref(), None);
        assert_eq!(refusal("metrics").as_deref(), Some("GET /metrics"));
        // A bare capture takes /metrics too (named as the first built-in it would take).
        assert!(refusal("{any}").is_some());
        assert_eq!(refusal("metrics/{x}").as_deref(), None);
    }

    #[test]
    fn the_rpc_method_a_request_would_reach() {
        let routes = RegisteredRoutes::default();
        routes
            .register(
                Route::new(
                    "v1/keys/{id}",
                    "keys",
                    "GET",
                    true,
                    RuneRestrictions::default(),
                )
                .unwrap(),
            )
            .unwrap();
        assert_eq!(
            routes.rpc_method_for("GET", "/v1/keys/a%20b").as_deref(),
            Some("keys")
        );
        assert_eq!(routes.rpc_method_for("POST", "/v1/keys/a"), None);
        assert_eq!(routes.rpc_method_for("GET", "/v1/keys"), None);
    }

    #[test]
    fn resolution_captures_params_and_reports_wrong_methods() {
        let routes = RegisteredRoutes::default();
        routes
            .register(route("v1/keys/{keyset_id}", "GET"))
            .unwrap();
        match routes.resolve("GET", "/v1/keys/abc%20d") {
            Resolution::Found(route, captured) => {
                assert_eq!(route.path, "v1/keys/{keyset_id}");
                assert_eq!(Value::Object(captured), json!({"keyset_id": "abc d"}));
            }
            _ => panic!("not found"),
        }
        assert!(matches!(
            routes.resolve("POST", "/v1/keys/abc"),
            Resolution::WrongMethod(path) if path == "v1/keys/{keyset_id}"
        ));
        assert!(matches!(
            routes.resolve("GET", "/v1/keys"),
            Resolution::NotRegistered
        ));
    }

    #[test]
    fn removal_by_rpc_method() {
        let routes = RegisteredRoutes::default();
        routes.register(route("a/b", "GET")).unwrap();
        assert_eq!(routes.remove_methods(&["m".to_string()]), 1);
        assert!(routes.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn registration_never_panics(path in ".{0,40}", method in "[a-zA-Z]{0,8}") {
            let _ = route_from_params(&json!({"path": path, "rpc_method": "x", "http_method": method}));
        }

        #[test]
        fn resolution_never_panics(pattern in "[a-z{}*/]{1,20}", url in ".{0,40}") {
            let routes = RegisteredRoutes::default();
            if let Ok(route) = route_from_params(&json!({"path": pattern, "rpc_method": "x"})) {
                let _ = routes.register(route);
            }
            let _ = routes.resolve("POST", &url);
        }
    }
}
