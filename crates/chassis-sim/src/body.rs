//! Request bodies and path ids, parsed with errors in the chassis' own shape.
//!
//! axum's `Json` answers plain-text rejections; an integrator wants the same
//! `{"error": {...}}` everywhere, and a distinction between "not JSON"
//! (`malformed_json`) and "JSON of the wrong shape" (`invalid_body`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::model::MAX_ID;

/// A JSON body deserialised into `T` (request types deny unknown fields).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(axum::http::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::UnsupportedMediaType(ct.chars().take(80).collect()));
            }
        }
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge(limit.unwrap_or(0))
            } else {
                ApiError::MalformedJson(rej.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// The limit in force, recorded so the 413 can say what it is.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Parse JSON text into `T`, separating syntax errors from shape errors.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

/// A path id: a positive integer below 2^53.
pub fn parse_id(raw: &str) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(id) if (1..MAX_ID).contains(&id) => Ok(id),
        _ => Err(ApiError::InvalidId(raw.chars().take(40).collect())),
    }
}
