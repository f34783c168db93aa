//! The read-body phase: a request's body read in full, bounded in size and
//! in time (see `limits.rs`).

use axum::body::{Body, Bytes};

use crate::error::GatewayError;

/// Read a body up to `limit` bytes (413 beyond it; 408 if it does not arrive
/// within `listen.body_timeout_ms`, see `limits.rs`). `limit` is
/// `listen.max_body_bytes`, or less for a request no session vouches for.
///
/// An oversized body is still read to its end (discarded, up to a bound) so
/// the client receives the 413 instead of a connection reset mid-upload.
pub async fn read(body: Body, limit: u64) -> Result<Bytes, GatewayError> {
    use crate::limits::{BodyError, DRAIN_AT_MOST};
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return Err(match BodyError::of(&e) {
                    Some(BodyError::Timeout(t)) => GatewayError::BodyTimeout(t.as_millis()),
                    Some(BodyError::TooLarge(max)) => GatewayError::BodyTooLarge(max.min(limit)),
                    None => GatewayError::BadBody(e.to_string()),
                })
            }
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_AT_MOST {
                break;
            }
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit {
        return Err(GatewayError::BodyTooLarge(limit));
    }
    Ok(buf.freeze())
}

/// What a request no session vouches for may send (a login, `/_pairgate`).
pub fn unauthenticated_limit(cfg: &crate::config::Config) -> u64 {
    crate::limits::UNAUTHENTICATED_MAX_BODY_BYTES.min(cfg.listen.max_body_bytes)
}
