//! Media types: which formats a request body may use, which one a response is written in
//! (content negotiation), and the conversions between them and lightningd's JSON.

use crate::error::ApiError;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

/// A representation we can read a request body from and write a result in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Xml,
    Form,
}

impl Format {
    /// The body format named by a request's `Content-Type` (absent means JSON).
    pub fn from_content_type(_content_type: Option<&str>) -> Result<Format, ApiError> {
        todo!()
    }

    /// The response format chosen from a request's `Accept` (absent means JSON).
    pub fn negotiate(_accept: Option<&str>) -> Result<Format, ApiError> {
        todo!()
    }

    /// The `Content-Type` a response in this format carries.
    pub fn media_type(self) -> &'static str {
        todo!()
    }
}

/// Decodes a request body into lightningd params: `None` when there are none.
pub fn decode_params(_format: Format, _method: &str, _body: &[u8]) -> Result<Option<Value>, ApiError> {
    todo!()
}

/// Encodes lightningd's `result` for the response.
pub fn encode_result(_format: Format, _method: &str, _result: &RawValue) -> Result<Bytes, ApiError> {
    todo!()
}
