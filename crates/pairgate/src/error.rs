//! The gateway's own error answers, in the chassis' shape:
//! `{"error": {"code": "snake_case", "message": "human sentence"}}`, so a
//! browser cannot tell whether the gateway or a chassis refused it.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("this endpoint needs a session: log in and send 'Authorization: Bearer <token>'")]
    MissingToken,
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body is larger than the gateway's limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("the request path is refused: {0}; write it plainly (no '.' or '..' segments, no encoded '/' or '\\', no empty segments)")]
    BadPath(String),
    #[error("the request body did not arrive within the gateway's limit of {0} ms; send it faster or in a smaller request")]
    BodyTimeout(u128),
    #[error("the request body could not be read: {0}")]
    BadBody(String),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    #[error("too many failed logins; try again in {0} s")]
    TooManyLogins(u64),
    #[error("no chassis is available right now; nothing was applied, retry shortly")]
    NotApplied,
    #[error("{0}")]
    NotPaired(String),
    #[error("no chassis answered in time; the change may or may not have been applied. It will be applied once a chassis returns; retry with the same Idempotency-Key to get its answer")]
    OutcomeUnknown,
    #[error("no chassis could answer this read: {0}")]
    Unavailable(String),
    #[error("an earlier request with this Idempotency-Key is still being processed")]
    IdempotencyInFlight,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    #[error("the Idempotency-Key header must be 1 to 255 visible characters")]
    BadIdempotencyKey,
    #[error("the gateway could not record the request durably: {0}")]
    Journal(String),
    #[error("the gateway is shutting down; retry on the other gateway or shortly")]
    ShuttingDown,
    #[error("the request took longer than the gateway's limit")]
    Timeout,
    /// A cascade request the gateway's configuration does not allow.
    #[error("{message}")]
    Cascade { code: &'static str, message: String },
    /// The egress could not reach the pair's superior.
    #[error("the superior could not be reached: {0}")]
    SuperiorUnreachable(String),
    /// The gateway failed at something of its own (not a chassis, not the request).
    #[error("the gateway failed: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            MissingToken | Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            BadBody(_) => StatusCode::BAD_REQUEST,
            MalformedJson(_) | BadIdempotencyKey | BadPath(_) => StatusCode::BAD_REQUEST,
            NoRoute(_) => StatusCode::NOT_FOUND,
            TooManyLogins(_) => StatusCode::TOO_MANY_REQUESTS,
            NotApplied | NotPaired(_) | OutcomeUnknown | Unavailable(_) | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            IdempotencyInFlight => StatusCode::CONFLICT,
            IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Journal(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Timeout => StatusCode::GATEWAY_TIMEOUT,
            Cascade { .. } => StatusCode::CONFLICT,
            SuperiorUnreachable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            MissingToken => "missing_token",
            Unauthorized { code, .. } => code,
            Forbidden(_) => "forbidden",
            BodyTooLarge(_) => "body_too_large",
            BodyTimeout(_) => "body_timeout",
            BadBody(_) => "bad_body",
            MalformedJson(_) => "malformed_json",
            BadPath(_) => "bad_path",
            BadIdempotencyKey => "bad_header",
            NoRoute(_) => "no_such_endpoint",
            TooManyLogins(_) => "too_many_logins",
            NotApplied => "not_applied",
            NotPaired(_) => "not_paired",
            OutcomeUnknown => "outcome_unknown",
            Unavailable(_) => "unavailable",
            IdempotencyInFlight => "idempotency_key_in_flight",
            IdempotencyMismatch => "idempotency_key_reused",
            Journal(_) => "journal_error",
            ShuttingDown => "shutting_down",
            Timeout => "timeout",
            Cascade { code, .. } => code,
            SuperiorUnreachable(_) => "superior_unreachable",
            Internal(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::NotApplied | GatewayError::OutcomeUnknown | GatewayError::Unavailable(_) | GatewayError::ShuttingDown => Some(1),
            GatewayError::TooManyLogins(s) => Some(*s),
            _ => None,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after() {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
