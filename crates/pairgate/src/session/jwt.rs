//! The gateway token: an HS256 JWT naming a session record.
//!
//! The token is signed so that the front can refuse forgeries without touching the
//! database, and it names a session record (`sid`) so that a token can still be
//! ended before it expires (logout, revoked account): a JWT alone cannot be
//! revoked. Only HS256 is accepted, checked explicitly on the header before
//! anything else, so neither `alg: none` nor an algorithm switch gets a say.
//!
//! A token whose signature was checked once is remembered with its claims
//! (byte for byte, at most [`MAX_REMEMBERED`] tokens): every later request
//! with it costs a map lookup and an `exp` comparison instead of base64,
//! HMAC and JSON (about a tenth of a proxied read's CPU). Revocation is not
//! affected: the session record is consulted on every request either way.

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::auth_error::AuthError;
use super::ring_provider;
use super::role::Role;

/// A token longer than this is refused unread: ours are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// Verified tokens remembered at most; past it the memory starts afresh
/// (about 1.5 MB at most: a token and its claims are a few hundred bytes).
pub(crate) const MAX_REMEMBERED: usize = 4096;

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
    /// Tokens whose signature this codec checked, with their claims.
    verified: RwLock<HashMap<Box<str>, Claims>>,
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
        TokenCodec {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: RwLock::new(HashMap::new()),
        }
    }

    /// A signed token for `claims`.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// The claims of `token` if it is one of ours and not past its `exp`.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, crate::session::time::now_ms() / 1000)
    }

    /// [`TokenCodec::verify`] at `now` (Unix seconds) for a remembered token.
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let remembered = self.verified.read().get(token).cloned();
        if let Some(claims) = remembered {
            // The library's rule with no leeway: valid up to and including `exp`.
            if claims.exp < now {
                self.verified.write().remove(token);
                return Err(AuthError::Expired);
            }
            return Ok(claims);
        }
        let claims = self.check(token)?;
        let mut verified = self.verified.write();
        if verified.len() >= MAX_REMEMBERED {
            verified.clear();
        }
        verified.insert(token.into(), claims.clone());
        Ok(claims)
    }

    /// The signature and claims check itself.
    fn check(&self, token: &str) -> Result<Claims, AuthError> {
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
    fn a_remembered_token_is_refused_once_past_its_exp() {
        let codec = TokenCodec::new(SECRET);
        let c = claims(60);
        let Ok(token) = codec.sign(&c) else { panic!("sign") };
        assert_eq!(codec.verify(&token), Ok(c.clone()));
        assert_eq!(codec.verified.read().len(), 1, "remembered after the first check");
        assert_eq!(codec.verify_at(&token, c.exp), Ok(c.clone()), "valid up to its exp");
        assert_eq!(codec.verify_at(&token, c.exp + 1), Err(AuthError::Expired));
        assert!(codec.verified.read().is_empty(), "forgotten once expired");
    }

    #[test]
    fn only_the_exact_token_is_remembered_and_the_memory_is_bounded() {
        let codec = TokenCodec::new(SECRET);
        let Ok(token) = codec.sign(&claims(60)) else { panic!("sign") };
        assert!(codec.verify(&token).is_ok());
        // One character inside the signature changed: not the remembered token.
        let mut forged = token.clone().into_bytes();
        let at = forged.len() - 5;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap_or_default();
        assert_eq!(codec.verify(&forged), Err(AuthError::InvalidToken));
        for i in 0..MAX_REMEMBERED + 1 {
            let mut c = claims(60);
            c.sid = format!("s{i}");
            let Ok(t) = codec.sign(&c) else { panic!("sign") };
            assert!(codec.verify(&t).is_ok());
        }
        assert!(codec.verified.read().len() <= MAX_REMEMBERED);
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
