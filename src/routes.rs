//! The REST handlers: `POST /v1/<method>` (any lightningd method, rune-checked),
//! `GET /v1/list-methods`, and the JSON answers for unknown paths and wrong HTTP methods.
//!
//! Every refusal the request itself earns (406, 403, 413, 415, 400) is decided before
//! anything is sent to lightningd; then `checkrune`, then the method: nothing else is called.

use crate::error::ApiError;
use crate::format::{decode_params, encode_result, Format};
use crate::rpc::RpcResult;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt::Write;

/// The largest request body we accept.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The header carrying the caller's rune (header names are case-insensitive).
pub static RUNE_HEADER: HeaderName = HeaderName::from_static("rune");

/// Methods after which connected notification listeners' runes are checked again.
const REVOKING_METHODS: [&str; 2] = ["blacklistrune", "destroyrune"];

/// `POST /v1/<method>`.
pub async fn call_method(
    State(state): State<AppState>,
    method: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(method) = method.map_err(|_| ApiError::PathNotFound)?;
    let response_format = Format::negotiate(header_text(&headers, &header::ACCEPT)?)?;
    let rune = rune_of(&headers)?;
    let body = read_body(&headers, body).await?;
    let params = if body.is_empty() {
        None
    } else {
        let format = Format::from_content_type(header_text(&headers, &header::CONTENT_TYPE)?)?;
        decode_params(format, &method, &body)?
    };
    // checkrune sees exactly the params the method will get.
    let params = params.unwrap_or_else(|| Value::Object(Map::new()));
    crate::rune::check(state.rpc(), &rune, &method, Some(&params)).await?;
    let result = state.rpc().call(&method, &params).await?;
    if REVOKING_METHODS.contains(&method.as_str()) {
        state.subscribers().request_recheck();
    }
    respond(StatusCode::CREATED, response_format, &method, result)
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
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    Ok(response)
}

/// `GET /v1/list-methods`: every command lightningd's `help` lists, one block each.
pub async fn list_methods(State(state): State<AppState>) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    struct Help {
        help: Vec<HelpEntry>,
    }
    #[derive(Deserialize)]
    struct HelpEntry {
        command: String,
    }
    let help: Help = state
        .rpc()
        .call("help", &Map::new())
        .await?
        .decode()
        .map_err(|e| ApiError::Internal(format!("unexpected help result: {e}")))?;
    let separator = "-".repeat(80);
    let mut page = String::new();
    for entry in help.help {
        let _ = write!(
            page,
            "Command: {}\n{separator}\n",
            html_escape(&entry.command)
        );
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
fn rune_of(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers.get(&RUNE_HEADER).ok_or(ApiError::MissingRune)?;
    Ok(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] without buffering it.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(e) => Err(ApiError::BodyRead(e.to_string())),
    }
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
