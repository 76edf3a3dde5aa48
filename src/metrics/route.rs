//! `GET /metrics`: the scrape, for a rune that `checkrune` allows to call
//! `listclnrest-metrics` (a name no lightningd command has: runes grant it like a method).
//!
//! The rune comes in the `Rune` header, or as `Authorization: Bearer <rune>`, which is what a
//! Prometheus scrape config's `authorization` sends. No rune: 403, a refused one: 401, with
//! the same bodies as every REST route (`error.rs`).

use crate::error::ApiError;
use crate::http::handlers::RUNE_HEADER;
use crate::metrics::exposition;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

/// Where the scrape is served.
pub const PATH: &str = "/metrics";

/// The method a rune must allow to read the metrics.
pub const METRICS_METHOD: &str = "listclnrest-metrics";

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rune = rune_of(&headers).ok_or(ApiError::MissingRune)?;
    crate::lightningd::rune::check(state.rpc(), &rune, METRICS_METHOD, None).await?;
    // Reading /proc and encoding every series: off the async workers.
    let text = tokio::task::spawn_blocking(move || exposition::render(&state))
        .await
        .map_err(|e| ApiError::Internal(format!("collecting the metrics failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response())
}

/// The rune from the `Rune` header, or else from `Authorization: Bearer <rune>`.
fn rune_of(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    if let Some(value) = headers.get(&RUNE_HEADER) {
        return Some(String::from_utf8_lossy(value.as_bytes()));
    }
    let authorization = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, credentials) = authorization.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !credentials.starts_with(b" ") {
        return None;
    }
    let rune = String::from_utf8_lossy(credentials).trim().to_string();
    (!rune.is_empty()).then_some(Cow::Owned(rune))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn rune(pairs: &[(&str, &str)]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        rune_of(&headers).map(Cow::into_owned)
    }

    #[test]
    fn the_rune_header_or_a_bearer_token() {
        assert_eq!(rune(&[("rune", "abc")]).as_deref(), Some("abc"));
        assert_eq!(
            rune(&[("authorization", "Bearer abc")]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            rune(&[("authorization", "bearer   abc ")]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            rune(&[("rune", "r"), ("authorization", "Bearer b")]).as_deref(),
            Some("r")
        );
        for refused in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(rune(&[("authorization", refused)]), None, "{refused}");
        }
        assert_eq!(rune(&[]), None);
    }
}
