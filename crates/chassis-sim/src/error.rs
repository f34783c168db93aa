//! The chassis' error answers: every failure is an HTTP status plus
//! `{"error": {"code": "snake_case_code", "message": "human sentence"}}`.
//!
//! One enum, so a handler cannot invent a status without a code, and the
//! codes the contract names (`already_logged_in`, `id_in_use`,
//! `id_block_exhausted`, …) are spelled in exactly one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400: JSON, but a field has the wrong type, is missing, is unknown or out of range.
    #[error("the request body does not fit this endpoint: {0}")]
    InvalidBody(String),
    /// 400: a header the chassis reads is malformed.
    #[error("header {header} is malformed: {detail}")]
    BadHeader { header: &'static str, detail: String },
    /// 400: a path id that is not a positive integer below 2^53.
    #[error("'{0}' is not a valid id (ids are positive integers below 2^53)")]
    InvalidId(String),
    /// 401: no token given.
    #[error("this endpoint needs a session: log in and send 'Authorization: Bearer <token>'")]
    MissingToken,
    /// 401: the token is unknown or expired.
    #[error("the session token is unknown or has expired: log in again")]
    InvalidToken,
    /// 401: the token was revoked by a forced login of the same account.
    #[error("this session was ended by a newer login of the same account")]
    SessionPreempted,
    /// 401: wrong username or password.
    #[error("wrong username or password")]
    BadCredentials,
    /// 403: the session's role does not allow this.
    #[error("role '{role}' may not {action}")]
    Forbidden { role: &'static str, action: &'static str },
    /// 404: no such object.
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: u64 },
    /// 404: no such route.
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// 409: a second login for an account that has a live session.
    #[error("account '{0}' is already logged in; log in with \"force\": true to end that session")]
    AlreadyLoggedIn(String),
    /// 409: a create names an id that is already in use.
    #[error("id {id} is already in use in table {table}")]
    IdInUse { table: &'static str, id: u64 },
    /// 409: any other conflict with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the body is larger than the limit.
    #[error("the request body is larger than the limit of {0} bytes")]
    BodyTooLarge(usize),
    /// 415: a body that does not say it is JSON.
    #[error("the request body must be JSON (Content-Type: application/json), not '{0}'")]
    UnsupportedMediaType(String),
    /// 422: the request would create more rows than its X-Id-Block holds.
    #[error("the request creates more rows than its X-Id-Block holds ({0} ids)")]
    IdBlockExhausted(u64),
    /// 422: any other semantically invalid request.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 500/503: injected by the /_sim fault hooks.
    #[error("fault injected by the simulator's test hooks")]
    InjectedFault { status: StatusCode },
    /// 500: the state file could not be written; nothing was changed.
    #[error("the chassis could not store the change: {0}")]
    Storage(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_) | InvalidBody(_) | BadHeader { .. } | InvalidId(_) => StatusCode::BAD_REQUEST,
            MissingToken | InvalidToken | SessionPreempted | BadCredentials => StatusCode::UNAUTHORIZED,
            Forbidden { .. } => StatusCode::FORBIDDEN,
            NotFound { .. } | NoRoute(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AlreadyLoggedIn(_) | IdInUse { .. } | Conflict { .. } => StatusCode::CONFLICT,
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IdBlockExhausted(_) | Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            InjectedFault { status } => *status,
            Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            InvalidBody(_) => "invalid_body",
            BadHeader { .. } => "bad_header",
            InvalidId(_) => "invalid_id",
            MissingToken => "missing_token",
            InvalidToken => "invalid_session",
            SessionPreempted => "session_preempted",
            BadCredentials => "bad_credentials",
            Forbidden { .. } => "forbidden",
            NotFound { .. } => "not_found",
            NoRoute(_) => "no_such_endpoint",
            MethodNotAllowed => "method_not_allowed",
            AlreadyLoggedIn(_) => "already_logged_in",
            IdInUse { .. } => "id_in_use",
            Conflict { code, .. } => code,
            BodyTooLarge(_) => "body_too_large",
            UnsupportedMediaType(_) => "unsupported_media_type",
            IdBlockExhausted(_) => "id_block_exhausted",
            Invalid { code, .. } => code,
            InjectedFault { .. } => "injected_fault",
            Storage(_) => "storage_error",
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
    }

    pub fn not_found(kind: &'static str, id: u64) -> ApiError {
        ApiError::NotFound { kind, id }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
