//! [`AuthError`]: why a request's gateway token was refused.
//!
//! Each variant is one 401 answer in the chassis' error shape, so the web client
//! reacts to the gateway exactly as it would to a chassis (show the login page).
//! The variants say no more than the client needs: which check failed is logged by
//! the caller at debug level, the token itself never.

/// A refused gateway token. Every variant is HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` token (or an empty one).
    #[error("this request needs a session: log in first")]
    MissingToken,
    /// Not a token this gateway issued: malformed, a wrong signature, an algorithm
    /// other than HS256 (`none` included), or claims that do not fit.
    #[error("the session token is not valid: log in again")]
    InvalidToken,
    /// The session outlived its absolute lifetime or sat idle too long.
    #[error("the session has expired: log in again")]
    Expired,
    /// The session was ended (logout, or the account's sessions were revoked).
    #[error("the session has ended: log in again")]
    Revoked,
}

impl AuthError {
    /// The `error.code` of the 401 answer.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken => "invalid_token",
            AuthError::Expired => "expired",
            AuthError::Revoked => "revoked",
        }
    }

    /// The `error.message` of the 401 answer: a human sentence.
    pub fn message(self) -> String {
        self.to_string()
    }

    /// The HTTP status: always 401.
    pub fn status(self) -> u16 {
        401
    }

    /// The answer's body, `{"error": {"code", "message"}}` as a chassis sends it.
    pub fn body(self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.message()}})
    }
}

/// The token of an `Authorization` header value, `Bearer <token>` (scheme matched
/// case-insensitively, as RFC 7235 says). Anything else is
/// [`AuthError::MissingToken`]: a request without a usable bearer token has no
/// session, whatever else it carries.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::MissingToken)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_bodies() {
        assert_eq!(AuthError::Expired.code(), "expired");
        assert_eq!(AuthError::Revoked.body()["error"]["code"], "revoked");
        assert_eq!(AuthError::MissingToken.status(), 401);
        assert!(!AuthError::InvalidToken.message().is_empty());
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("Basic abc")), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("abc")), Err(AuthError::MissingToken));
    }
}
