//! Request bodies and path ids, parsed with errors in the chassis' own shape.
//!
//! axum's `Json` answers plain-text rejections; an integrator wants the same
//! `{"error": {...}}` everywhere, and a distinction between "not JSON"
//! (`malformed_json`) and "JSON of the wrong shape" (`invalid_body`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
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
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(DEFAULT_LIMIT);
        let _ = state;
        read_limited(req.into_body(), limit).await.and_then(|bytes| parse(&bytes)).map(JsonBody)
    }
}

/// Used when no route set a limit.
const DEFAULT_LIMIT: usize = 1 << 20;

/// Read a body up to `limit` bytes. An oversized body is still read to its
/// end (discarded, up to a bound) so the client gets the 413 rather than a
/// connection reset in the middle of its upload.
async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    const DRAIN_AT_MOST: usize = 64 << 20;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::MalformedJson(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > DRAIN_AT_MOST {
                break;
            }
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit {
        return Err(ApiError::BodyTooLarge(limit));
    }
    Ok(buf.freeze())
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
