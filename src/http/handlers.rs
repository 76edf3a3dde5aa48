//! The REST handlers: `POST /v1/<method>` (any lightningd method, rune-checked),
//! routes other plugins registered, `GET /v1/list-methods`, and the JSON answers for unknown
//! paths and wrong HTTP methods.
//!
//! Every refusal the request itself earns (403 for a method REST never calls, 406, 403,
//! 413, 415, 400) is decided before anything is sent to lightningd; then `checkrune`, then
//! the method: nothing else is called.

use crate::error::ApiError;
use crate::format::{decode_params, encode_result, Format};
use crate::http::registered_routes::{Resolution, RuneRestrictions};
use crate::lightningd::plugin_methods::FOR_PLUGINS_ONLY;
use crate::lightningd::rpc::{RpcResult, CONNECTION_SCOPED};
use crate::state::AppState;
use axum::body::{Body, BodyDataStream};
use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::Write;
use tokio::sync::Semaphore;

/// The largest request body we accept.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Bytes of request bodies being read, decoded and held at once, across every request: a
/// body's bytes as they arrive, then what decoding it takes ([`VALUE_COST`] per value, at
/// most [`MAX_DECODED_BYTES`]). Beyond it a request waits up to [`BUDGET_WAIT`], then gets
/// 503 with `Retry-After`. Requests without a body never wait.
///
/// Requests that cost at most [`SMALL_REQUEST_BYTES`] (nearly every real one) draw on a pool
/// of their own, [`SMALL_BODY_BUDGET`], so they never queue behind large bodies: the waiting
/// is first come, first served, and one waiting 8 MiB body would otherwise hold up every
/// `getinfo` behind it.
pub const BODY_BUDGET: usize = 64 * 1024 * 1024;
/// See [`BODY_BUDGET`].
pub const SMALL_BODY_BUDGET: usize = 8 * 1024 * 1024;
/// The most a request may cost and still draw on [`SMALL_BODY_BUDGET`].
pub const SMALL_REQUEST_BYTES: usize = 64 * 1024;
/// What one decoded value may cost (a `serde_json::Value` with its share of the vector or
/// map holding it, rounded up).
pub const VALUE_COST: usize = 128;
/// The most one request's body and decoded params may cost; more is 413 before decoding.
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;
/// How long a request waits for room in [`BODY_BUDGET`].
pub const BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// The whole body must have arrived within this, from the request's start (408 otherwise).
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// After [`BODY_GRACE`], a body must keep arriving at [`BODY_MIN_RATE`] bytes per second on
/// average (408 otherwise).
pub const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// See [`BODY_GRACE`].
pub const BODY_MIN_RATE: u64 = 16 * 1024;
/// Bodies larger than this are decoded on a blocking thread, not on an async worker.
const DECODE_INLINE_UP_TO: usize = 16 * 1024;

static BUDGET: Semaphore = Semaphore::const_new(BODY_BUDGET);
static SMALL_BUDGET: Semaphore = Semaphore::const_new(SMALL_BODY_BUDGET);

/// A request's share of the body budget ([`BODY_BUDGET`] or, while small, [`SMALL_BODY_BUDGET`]),
/// given back when dropped.
#[derive(Default)]
struct Charge {
    bytes: usize,
    /// Whether `bytes` came from [`BUDGET`] rather than [`SMALL_BUDGET`].
    large: bool,
}

impl Charge {
    /// Takes `more` bytes, waiting at most [`BUDGET_WAIT`]. A request that outgrows
    /// [`SMALL_REQUEST_BYTES`] takes its whole charge from the large pool and gives back
    /// what it held in the small one.
    async fn grow(&mut self, more: usize) -> Result<(), ApiError> {
        if more == 0 {
            return Ok(());
        }
        let total = self.bytes.saturating_add(more);
        if !self.large && total <= SMALL_REQUEST_BYTES {
            take(&SMALL_BUDGET, more).await?;
        } else if self.large {
            take(&BUDGET, more).await?;
        } else {
            take(&BUDGET, total).await?;
            SMALL_BUDGET.add_permits(self.bytes);
            self.large = true;
        }
        self.bytes = total;
        Ok(())
    }
}

/// Takes `bytes` permits from `pool` for good (a [`Charge`] gives them back), waiting at most
/// [`BUDGET_WAIT`].
async fn take(pool: &'static Semaphore, bytes: usize) -> Result<(), ApiError> {
    let permits = u32::try_from(bytes).map_err(|_| ApiError::Busy)?;
    match tokio::time::timeout(BUDGET_WAIT, pool.acquire_many(permits)).await {
        Ok(Ok(permit)) => {
            permit.forget();
            Ok(())
        }
        _ => Err(ApiError::Busy),
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let pool = if self.large { &BUDGET } else { &SMALL_BUDGET };
            pool.add_permits(self.bytes);
        }
    }
}

/// How much of a refused body we read before giving up on the connection.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;
/// How long we read a refused body before giving up on the connection.
const DISCARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The header carrying the caller's rune (header names are case-insensitive).
pub static RUNE_HEADER: HeaderName = HeaderName::from_static("rune");

/// Methods after which connected notification listeners' runes are checked again.
const REVOKING_METHODS: [&str; 2] = ["blacklistrune", "destroyrune"];

/// `POST /v1/<method>`.
pub async fn call_method(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    // The request taken whole: the `HeaderMap` and `Uri` extractors would clone them.
    let (parts, body) = request.into_parts();
    // From the URI rather than a path parameter, so the same handler serves POST on
    // `/v1/notifications` and `/v1/list-methods` (lightningd has a `notifications` command).
    let method = parts
        .uri
        .path()
        .strip_prefix("/v1/")
        .and_then(|m| percent_encoding::percent_decode_str(m).decode_utf8().ok())
        .filter(|m| !m.is_empty() && !m.contains('/'))
        .ok_or(ApiError::PathNotFound)?;
    let call = Call {
        rpc_method: &method,
        path: "v1/<method>",
        captured: Map::new(),
        query: parts.uri.query(),
        rune_required: true,
        restrictions: &RuneRestrictions::default(),
    };
    execute(&state, call, &parts.headers, body).await
}

/// Requests to paths other plugins registered: matched before the routes above.
///
/// First, for every request, the percent-encoded letters, digits and `-._~` in the path are
/// decoded (RFC 3986 says `%69` and `i` are the same URL there), so built-in and registered
/// routes alike see `/v1/getinfo` for `/v1/get%69nfo`. Other encodings stay: the built-in
/// `/v1/<method>` decodes its method once, registered routes decode each segment once
/// ([`crate::http::registered_routes::RegisteredRoutes::resolve`]), and an encoded `/`
/// never makes a new segment.
pub async fn dispatch_registered(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(uri) = with_unreserved_decoded(request.uri()) {
        *request.uri_mut() = uri;
    }
    if state.routes().is_empty() {
        return next.run(request).await;
    }
    let resolution = state
        .routes()
        .resolve(request.method().as_str(), request.uri().path());
    match resolution {
        Resolution::NotRegistered => next.run(request).await,
        Resolution::WrongMethod(path) => ApiError::DynamicWrongMethod {
            path,
            method: request.method().to_string(),
        }
        .into_response(),
        Resolution::Found(route, captured) => {
            let (parts, body) = request.into_parts();
            let call = Call {
                rpc_method: &route.rpc_method,
                path: &route.path,
                captured,
                query: parts.uri.query(),
                rune_required: route.rune_required,
                restrictions: &route.rune_restrictions,
            };
            execute(&state, call, &parts.headers, body)
                .await
                .into_response()
        }
    }
}

/// `uri` with the percent-encoded unreserved characters of its path decoded; `None` if it
/// has none.
fn with_unreserved_decoded(uri: &Uri) -> Option<Uri> {
    let path = decode_unreserved(uri.path())?;
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// `path` with each `%XX` that encodes a letter, digit, `-`, `.`, `_` or `~` replaced by that
/// character; `None` if there is none. Other `%XX` (including `%25`, `%2F`) are kept as
/// they are, so nothing is decoded twice.
pub fn decode_unreserved(path: &str) -> Option<String> {
    fn hex(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = path.as_bytes();
    let mut decoded: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'%', &bytes[at..]) {
        at += found;
        let value = bytes
            .get(at + 1)
            .and_then(|h| hex(*h))
            .zip(bytes.get(at + 2).and_then(|l| hex(*l)))
            .map(|(high, low)| high << 4 | low)
            .filter(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c));
        match value {
            Some(c) => {
                let out = decoded.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[copied..at]);
                out.push(c);
                at += 3;
                copied = at;
            }
            None => at += 1,
        }
    }
    let mut out = decoded?;
    out.extend_from_slice(&bytes[copied..]);
    // Only ASCII replaced ASCII.
    String::from_utf8(out).ok()
}

/// One call to lightningd on behalf of an HTTP request.
struct Call<'a> {
    rpc_method: &'a str,
    /// The route's path pattern, for messages.
    path: &'a str,
    /// Values captured from the path, merged into the params.
    captured: Map<String, Value>,
    /// The request's query string: ignored, except on a route without a rune, which
    /// refuses one.
    query: Option<&'a str>,
    /// `false` only on a registered GET route that needs no rune: anyone may call it, so it
    /// gets its path captures and nothing else.
    rune_required: bool,
    /// What checkrune is asked instead of the method and params (registered routes).
    restrictions: &'a RuneRestrictions,
}

/// The request pipeline: every refusal the request earns, then checkrune, then the method.
async fn execute(
    state: &AppState,
    call: Call<'_>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Refusals decided from the method and headers alone still read (and discard) the body:
    // a client that is still uploading would otherwise see a broken pipe instead of our
    // answer.
    let accept = header_text(headers, &header::ACCEPT)?;
    let checked = callable(call.rpc_method)
        .and_then(|()| Format::negotiate(accept))
        .and_then(|format| {
            let rune = if call.rune_required {
                Some(rune_of(headers)?)
            } else {
                None
            };
            Ok((format, rune))
        });
    let (response_format, rune) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            discard(body.into_data_stream()).await;
            return Err(refusal);
        }
    };
    if !call.rune_required {
        // Anyone may call this route: whatever else they send would reach the method
        // unchecked.
        let refusal = || ApiError::ParamsWithoutRune(call.path.to_string());
        if call.query.is_some_and(|query| !query.is_empty()) {
            discard(body.into_data_stream()).await;
            return Err(refusal());
        }
        if !body_is_empty(headers, body).await? {
            return Err(refusal());
        }
        let params = Value::Object(call.captured);
        let result = state.rpc().call(call.rpc_method, &params).await?;
        return respond(
            StatusCode::CREATED,
            response_format,
            call.rpc_method,
            result,
        );
    }
    // Held until the call is over: the body and the params decoded from it live until then.
    let mut charge = Charge::default();
    let body = read_body(headers, body, &mut charge).await?;
    let params = if body.is_empty() {
        None
    } else {
        let format = Format::from_content_type(header_text(headers, &header::CONTENT_TYPE)?)?;
        decode(format, call.rpc_method, body, &mut charge).await?
    };
    let params = merge_captured(params, call.captured)?;
    if let Some(rune) = rune {
        // checkrune sees exactly the params the method will get, unless the route says
        // otherwise.
        let restrictions = call.restrictions;
        crate::lightningd::rune::check_as(
            state.rpc(),
            &rune,
            restrictions.nodeid.as_deref(),
            restrictions.method.as_deref().unwrap_or(call.rpc_method),
            Some(restrictions.params.as_ref().unwrap_or(&params)),
        )
        .await?;
    }
    let result = state.rpc().call(call.rpc_method, &params).await?;
    if REVOKING_METHODS.contains(&call.rpc_method) {
        state.listeners().request_recheck();
    }
    respond(
        StatusCode::CREATED,
        response_format,
        call.rpc_method,
        result,
    )
}

/// Refuses the methods no REST request may call, whatever its rune: ours that change
/// routing, and lightningd's that change the state of the (shared) connection.
fn callable(rpc_method: &str) -> Result<(), ApiError> {
    if FOR_PLUGINS_ONLY.contains(&rpc_method) {
        return Err(ApiError::ForPluginsOnly(rpc_method.to_string()));
    }
    if CONNECTION_SCOPED.contains(&rpc_method) {
        return Err(ApiError::ConnectionScoped(rpc_method.to_string()));
    }
    Ok(())
}

/// The body's params with the path's captures added; no params at all means `{}`.
fn merge_captured(params: Option<Value>, captured: Map<String, Value>) -> Result<Value, ApiError> {
    match params {
        None => Ok(Value::Object(captured)),
        Some(Value::Object(mut named)) => {
            for (name, value) in captured {
                if named.contains_key(&name) {
                    return Err(ApiError::DuplicateKey(name));
                }
                named.insert(name, value);
            }
            Ok(Value::Object(named))
        }
        Some(positional) if captured.is_empty() => Ok(positional),
        Some(_) => Err(ApiError::BadBody {
            format: "JSON",
            reason: "params must be named (an object) on a path with captures".into(),
        }),
    }
}

/// Writes a result in the negotiated format. JSON is lightningd's own bytes, untouched.
fn respond(
    status: StatusCode,
    format: Format,
    method: &str,
    result: RpcResult,
) -> Result<Response, ApiError> {
    let body = match format {
        Format::Json => result.bytes(),
        other => {
            let raw = result
                .raw()
                .map_err(|e| ApiError::Internal(format!("lightningd's result is not JSON: {e}")))?;
            encode_result(other, method, raw)?
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    Ok(response)
}

/// `GET /v1/list-methods`: every command lightningd's `help` lists, one block each, from
/// the `help` read for the API document (at startup and when plugins start or stop), not a
/// `help` call per request.
pub async fn list_methods(State(state): State<AppState>) -> Result<Response, ApiError> {
    let commands = state.rpc().help_commands().await?;
    let separator = "-".repeat(80);
    let mut page = String::new();
    for command in commands.iter() {
        let _ = write!(page, "Command: {}\n{separator}\n", html_escape(command));
    }
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

/// Any method but POST on `/v1/<method>`.
pub async fn method_not_post() -> ApiError {
    ApiError::MethodNotPost
}

/// Any path no route matches.
pub async fn path_not_found() -> ApiError {
    ApiError::PathNotFound
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::BadHeader(format!("The {name} header is not visible ASCII"))),
    }
}

/// The `Rune` header; a rune that is not text is still passed on, for lightningd to refuse.
fn rune_of(headers: &HeaderMap) -> Result<Cow<'_, str>, ApiError> {
    let value = headers.get(&RUNE_HEADER).ok_or(ApiError::MissingRune)?;
    Ok(String::from_utf8_lossy(value.as_bytes()))
}

/// Decodes a body's params once their cost fits in the budget: refused (413) before decoding
/// if it could take more than [`MAX_DECODED_BYTES`]; decoded on a blocking thread if large.
async fn decode(
    format: Format,
    rpc_method: &str,
    body: Bytes,
    charge: &mut Charge,
) -> Result<Option<Value>, ApiError> {
    let inline = body.len() <= DECODE_INLINE_UP_TO;
    let count = if inline {
        crate::format::value_count_bound(format, &body)
    } else {
        let body = body.clone();
        tokio::task::spawn_blocking(move || crate::format::value_count_bound(format, &body))
            .await
            .map_err(|e| ApiError::Internal(format!("reading the body failed: {e}")))?
    };
    let cost = count.saturating_mul(VALUE_COST);
    if cost.saturating_add(body.len()) > MAX_DECODED_BYTES {
        return Err(ApiError::TooManyValues {
            limit: MAX_DECODED_BYTES,
        });
    }
    charge.grow(cost).await?;
    if inline {
        return decode_params(format, rpc_method, &body);
    }
    let rpc_method = rpc_method.to_string();
    tokio::task::spawn_blocking(move || decode_params(format, &rpc_method, &body))
        .await
        .map_err(|e| ApiError::Internal(format!("decoding the body failed: {e}")))?
}

/// How long a body that has brought `received` bytes so far may take in all: a grace
/// period, then [`BODY_MIN_RATE`], never more than [`BODY_DEADLINE`].
fn body_time_allowed(received: usize) -> std::time::Duration {
    let at_min_rate = std::time::Duration::from_secs_f64(received as f64 / BODY_MIN_RATE as f64);
    (BODY_GRACE + at_min_rate).min(BODY_DEADLINE)
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] without buffering it, within
/// [`body_time_allowed`] (408), each byte charged to the budget before it is kept (503).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    charge: &mut Charge,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        discard(stream).await;
        return Err(too_large);
    }
    let start = tokio::time::Instant::now();
    // A declared length is charged at once; otherwise each chunk as it comes.
    if let Some(len) = declared {
        charge.grow(len as usize).await?;
    }
    let mut buffer = BytesMut::new();
    loop {
        let deadline = start + body_time_allowed(buffer.len());
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?,
            Ok(None) => break,
            Err(_) => return Err(ApiError::BodyTimeout),
        };
        if buffer.len() + chunk.len() > MAX_BODY_BYTES {
            discard(stream).await;
            return Err(too_large);
        }
        if buffer.len() + chunk.len() > charge.bytes {
            charge
                .grow(buffer.len() + chunk.len() - charge.bytes)
                .await?;
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Whether the body is empty, read without keeping any of it: a body that is not is
/// discarded.
async fn body_is_empty(headers: &HeaderMap, body: Body) -> Result<bool, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|len| len > 0) {
        discard(stream).await;
        return Ok(false);
    }
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        if !chunk.is_empty() {
            discard(stream).await;
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads and drops what is left of a refused body, so the client gets to read our answer;
/// bounded in bytes and time, after which the connection is simply closed.
async fn discard(mut stream: BodyDataStream) {
    let mut left = DISCARD_LIMIT;
    let _ = tokio::time::timeout(DISCARD_TIMEOUT, async {
        while let Some(Ok(chunk)) = stream.next().await {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_are_decoded_and_only_once() {
        for (path, expected) in [
            ("/v1/get%69nfo", Some("/v1/getinfo")),
            ("/v1/list%2Dmethods", Some("/v1/list-methods")),
            ("/%76%31/x%2e%5F%7e%41", Some("/v1/x._~A")),
            // Kept: the percent sign itself (so %2569 stays %69), slashes, others.
            ("/v1/get%2569nfo", None),
            ("/v1/a%2Fb%2fc", None),
            ("/v1/a%20b%3A%", None),
            ("/v1/%6", None),
            ("/v1/%zz%6g", None),
            ("/v1/plain", None),
            ("/v1/%2569%69", Some("/v1/%2569i")),
        ] {
            assert_eq!(decode_unreserved(path).as_deref(), expected, "{path}");
        }
    }

    #[test]
    fn the_query_is_kept() {
        let uri: Uri = "/v1/get%69nfo?a=%69".parse().unwrap();
        assert_eq!(
            with_unreserved_decoded(&uri).unwrap().to_string(),
            "/v1/getinfo?a=%69"
        );
        let uri: Uri = "http://h:1/v1/%61".parse().unwrap();
        assert_eq!(
            with_unreserved_decoded(&uri).unwrap().to_string(),
            "http://h:1/v1/a"
        );
    }
}
