//! Every way an HTTP request can fail, and the one place where each failure becomes a status
//! code and a JSON body.
//!
//! Error bodies are always JSON objects with at least `code` and `message`. Errors that come
//! from lightningd (a refused rune, a failed method) are passed through byte for byte, so a
//! client sees exactly what lightningd said, `data` and all.

use crate::lightningd::rpc::{RpcError, RpcErrorObject};
use crate::lightningd::rune::RuneError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// JSON-RPC "method not found": used by lightningd for unknown commands and by us for
/// unknown paths.
pub const CODE_METHOD_NOT_FOUND: i64 = -32601;
/// lightningd's "not authorized" rune error code.
pub const CODE_RUNE_NOT_AUTHORIZED: i64 = 1501;
/// JSON-RPC "parse error": a request body that does not parse in its declared format.
pub const CODE_PARSE_ERROR: i64 = -32700;
/// JSON-RPC "invalid request": a request we refuse for its shape (media types, size).
pub const CODE_INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "invalid params".
pub const CODE_INVALID_PARAMS: i64 = -32602;
/// JSON-RPC "internal error": lightningd cannot be reached, or we failed ourselves.
pub const CODE_INTERNAL: i64 = -32603;

/// Why a request was not answered with a result.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the path.
    #[error("Path not found")]
    PathNotFound,
    /// `/v1/<method>` requested with something other than POST.
    #[error("Path invalid, http_method must be POST for CLN methods")]
    MethodNotPost,
    /// A path registered by a plugin, requested with an HTTP method it was not registered for.
    #[error("Dynamic path: {path} has no http_method:{method} registered")]
    DynamicWrongMethod { path: String, method: String },
    /// A body param has the name of a value captured from the path.
    #[error("Duplicate key: {0}")]
    DuplicateKey(String),
    /// A body or query parameters sent to a registered route that needs no rune (its path
    /// pattern): such a route takes its path captures only.
    #[error(
        "Route {0} needs no rune, so it takes nothing but its path captures: send no request \
         body and no query parameters"
    )]
    ParamsWithoutRune(String),
    /// No `Rune` header.
    #[error("Not authorized: Missing rune")]
    MissingRune,
    /// `checkrune` refused the rune; lightningd's error object is passed through.
    #[error("rune refused by lightningd")]
    RuneRefused(RpcErrorObject),
    /// The method itself failed in lightningd; its error object is passed through.
    #[error("lightningd returned an error")]
    Lightningd(RpcErrorObject),
    /// lightningd's RPC socket cannot be reached or broke while we waited. The reason is
    /// logged, never sent: it may name the socket's path.
    #[error("lightningd is unreachable")]
    Unreachable(String),
    /// A method this plugin adds for other plugins (it changes routing) or for operators (it
    /// mints runes) asked through REST.
    #[error(
        "{0} is for {who}, not REST clients",
        who = crate::lightningd::plugin_methods::intended_for(.0)
    )]
    ForPluginsOnly(String),
    /// A lightningd command that changes the state of the connection it arrives on, which
    /// clnrest shares between all its clients.
    #[error(
        "{0} is not available through REST: it changes the state of the lightningd \
         connection, which clnrest shares between all clients"
    )]
    ConnectionScoped(String),
    /// No representation the client accepts.
    #[error("Not acceptable: {0}")]
    NotAcceptable(String),
    /// The body's media type is not one we decode.
    #[error("Unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The body is larger than we accept.
    #[error("Payload too large: the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body would decode to more values than we decode for one request.
    #[error(
        "Payload too large: the request body holds too many values (decoded, they would take \
         more than {limit} bytes)"
    )]
    TooManyValues { limit: usize },
    /// The body did not arrive in time (too slowly, or not whole within the deadline).
    #[error(
        "Request timeout: the request body must arrive at 16 KiB/s or faster after the first \
         5 s, and whole within 30 s"
    )]
    BodyTimeout,
    /// Too many request bodies are being read and decoded at once.
    #[error("Busy: too many request bodies are being read at once, try again shortly")]
    Busy,
    /// The body does not parse in its declared format.
    #[error("Invalid {format} body: {reason}")]
    BadBody {
        format: &'static str,
        reason: String,
    },
    /// A request header we cannot use.
    #[error("{0}")]
    BadHeader(String),
    /// The request could not be read (client went away, broken chunking, ...).
    #[error("Could not read the request body: {0}")]
    BodyRead(String),
    /// A failure of ours that the client cannot fix.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::PathNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotPost | ApiError::DynamicWrongMethod { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::DuplicateKey(_) | ApiError::ParamsWithoutRune(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingRune | ApiError::ForPluginsOnly(_) | ApiError::ConnectionScoped(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::RuneRefused(_) => StatusCode::UNAUTHORIZED,
            ApiError::Lightningd(e) if e.code == CODE_METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            ApiError::Lightningd(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyValues { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadBody { .. } | ApiError::BadHeader(_) | ApiError::BodyRead(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `code` member of the JSON body for errors we raise ourselves.
    fn code(&self) -> i64 {
        match self {
            ApiError::PathNotFound
            | ApiError::MethodNotPost
            | ApiError::DynamicWrongMethod { .. } => CODE_METHOD_NOT_FOUND,
            ApiError::DuplicateKey(_) | ApiError::ParamsWithoutRune(_) => CODE_INVALID_PARAMS,
            ApiError::MissingRune => CODE_RUNE_NOT_AUTHORIZED,
            ApiError::RuneRefused(e) | ApiError::Lightningd(e) => e.code,
            ApiError::BadBody { .. } => CODE_PARSE_ERROR,
            ApiError::NotAcceptable(_)
            | ApiError::UnsupportedMediaType(_)
            | ApiError::PayloadTooLarge { .. }
            | ApiError::TooManyValues { .. }
            | ApiError::BodyTimeout
            | ApiError::BadHeader(_)
            | ApiError::BodyRead(_)
            | ApiError::ForPluginsOnly(_)
            | ApiError::ConnectionScoped(_) => CODE_INVALID_REQUEST,
            ApiError::Unreachable(_) | ApiError::Internal(_) | ApiError::Busy => CODE_INTERNAL,
        }
    }

    /// The JSON body of the response.
    pub fn body(&self) -> Bytes {
        match self {
            ApiError::RuneRefused(e) | ApiError::Lightningd(e) => {
                Bytes::copy_from_slice(e.raw.get().as_bytes())
            }
            other => {
                let body = serde_json::json!({"code": other.code(), "message": other.to_string()});
                Bytes::from(body.to_string())
            }
        }
    }
}

impl From<RpcError> for ApiError {
    fn from(error: RpcError) -> Self {
        match error {
            RpcError::Lightningd(e) => ApiError::Lightningd(e),
            RpcError::Unreachable(reason) => ApiError::Unreachable(reason),
        }
    }
}

impl From<RuneError> for ApiError {
    fn from(error: RuneError) -> Self {
        match error {
            RuneError::Refused(e) => ApiError::RuneRefused(e),
            RuneError::Unreachable(reason) => ApiError::Unreachable(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unreachable(reason) = &self {
            tracing::debug!("answering 503: lightningd is unreachable: {reason}");
        }
        let mut response = (self.status(), self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let ApiError::Busy = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn lightningd_errors_pass_through_unchanged() {
        let raw = RawValue::from_string(
            r#"{"code":900,"message":"Duplicate label 'x'","data":{"a":1}}"#.to_string(),
        )
        .unwrap();
        let err = ApiError::Lightningd(RpcErrorObject { code: 900, raw });
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            &err.body()[..],
            br#"{"code":900,"message":"Duplicate label 'x'","data":{"a":1}}"#
        );
    }

    #[test]
    fn unknown_command_is_404() {
        let err = ApiError::Lightningd(RpcErrorObject::new(-32601, "Unknown command 'x'"));
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn unreachable_body_keeps_the_reason_out() {
        let err = ApiError::Unreachable("cannot connect to /home/x/lightning-rpc: gone".into());
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            &err.body()[..],
            br#"{"code":-32603,"message":"lightningd is unreachable"}"#
        );
    }

    #[test]
    fn missing_rune_body_is_exact() {
        assert_eq!(
            &ApiError::MissingRune.body()[..],
            br#"{"code":1501,"message":"Not authorized: Missing rune"}"#
        );
    }
}
