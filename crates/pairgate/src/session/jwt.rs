//! The gateway token: an HS256 JWT naming a session record.
//!
//! The token is signed so that the front can refuse forgeries without touching the
//! database, and it names a session record (`sid`) so that a token can still be
//! ended before it expires (logout, revoked account): a JWT alone cannot be
//! revoked. Only HS256 is accepted, checked explicitly on the header before
//! anything else, so neither `alg: none` nor an algorithm switch gets a say.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::auth_error::AuthError;
use super::ring_provider;
use super::role::Role;

/// A token longer than this is refused unread: ours are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// The claims of a gateway token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The session record's id.
    pub sid: String,
    /// The account name.
    pub sub: String,
    /// The account's role when the session was issued (informative: the record's
    /// role is the one that counts).
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds: the session's absolute lifetime.
    pub exp: u64,
}

/// Signs and checks gateway tokens with the configured secret.
pub(crate) struct TokenCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenCodec {
    pub(crate) fn new(secret: &[u8]) -> Self {
        ring_provider::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        // The gateway both issues and checks its tokens: there is no clock skew to
        // allow for, and a minute of leeway would stretch every lifetime.
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenCodec { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    /// A signed token for `claims`.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// The claims of `token` if it is one of ours and not past its `exp`.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::InvalidToken);
        }
        // Explicit, before the library's own check: a header that does not parse
        // (`"alg": "none"` does not) or names anything but HS256 is not ours.
        match decode_header(token) {
            Ok(header) if header.alg == Algorithm::HS256 => {}
            _ => return Err(AuthError::InvalidToken),
        }
        match decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            // The signature is checked before the claims, so "expired" is only
            // ever said of a token we really issued.
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(AuthError::Expired),
            Err(_) => Err(AuthError::InvalidToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::time::now_ms;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp_from_now_s: i64) -> Claims {
        let now = now_ms() / 1000;
        Claims { sid: "s1".into(), sub: "admin".into(), role: Role::Admin, iat: now, exp: now.saturating_add_signed(exp_from_now_s) }
    }

    #[test]
    fn signs_and_verifies() {
        let codec = TokenCodec::new(SECRET);
        let c = claims(60);
        let Ok(token) = codec.sign(&c) else { panic!("sign") };
        assert_eq!(codec.verify(&token), Ok(c));
    }

    #[test]
    fn past_exp_is_expired_and_other_secret_is_invalid() {
        let codec = TokenCodec::new(SECRET);
        let Ok(old) = codec.sign(&claims(-5)) else { panic!("sign") };
        assert_eq!(codec.verify(&old), Err(AuthError::Expired));
        let other = TokenCodec::new(b"another secret, also 32 bytes long!");
        let Ok(foreign) = other.sign(&claims(60)) else { panic!("sign") };
        assert_eq!(codec.verify(&foreign), Err(AuthError::InvalidToken));
        assert_eq!(codec.verify(""), Err(AuthError::MissingToken));
        assert_eq!(codec.verify("a.b.c"), Err(AuthError::InvalidToken));
        assert_eq!(codec.verify(&"x".repeat(MAX_TOKEN_LEN + 1)), Err(AuthError::InvalidToken));
    }
}
