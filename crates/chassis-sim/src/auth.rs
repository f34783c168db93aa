//! Passwords (argon2) and the request extractors that authenticate a call.
//!
//! [`Auth`] is "a valid session"; [`Mutation`] is a valid session plus what a
//! mutating request carries in its headers (`Idempotency-Key`, `X-Id-Block`,
//! `X-Origin-Seq`). Both run before the body is read, so an unauthenticated
//! request is refused before its body is even parsed.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::chassis::{Chassis, MutationCtx};
use crate::error::ApiError;
use crate::ids::{IdBlock, HEADER as ID_BLOCK_HEADER};
use crate::model::Role;
use crate::session::Session;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A real hash of a random password, verified against when the username is
/// unknown so that a login's timing does not reveal which accounts exist.
pub fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&format!("{:x}", rand::random::<u128>())).unwrap_or_default()).clone()
}

/// The bearer token of a request (`Authorization: Bearer …`, or `?token=`
/// for the events socket, which browsers cannot give headers).
pub fn token_of(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(t.trim().to_string());
        }
    }
    query?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string)
}

/// A request with a valid session.
pub struct Auth(pub Session);

impl Auth {
    pub fn require(&self, role: Role, action: &'static str) -> Result<(), ApiError> {
        require(&self.0, role, action)
    }
}

fn require(s: &Session, role: Role, action: &'static str) -> Result<(), ApiError> {
    if s.role.allows(role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden { role: s.role.as_str(), action })
    }
}

fn authenticate(chassis: &Chassis, parts: &Parts) -> Result<Session, ApiError> {
    let token = token_of(&parts.headers, parts.uri.query()).ok_or(ApiError::MissingToken)?;
    chassis.sessions().check(&token)
}

impl FromRequestParts<Arc<Chassis>> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, chassis: &Arc<Chassis>) -> Result<Self, Self::Rejection> {
        authenticate(chassis, parts).map(Auth)
    }
}

/// A mutating request: a valid session and the replay/id headers.
pub struct Mutation(pub MutationCtx);

impl Mutation {
    pub fn require(&self, role: Role, action: &'static str) -> Result<(), ApiError> {
        require(&self.0.session, role, action)
    }
}

impl FromRequestParts<Arc<Chassis>> for Mutation {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, chassis: &Arc<Chassis>) -> Result<Self, Self::Rejection> {
        let session = authenticate(chassis, parts)?;
        let header = |name: &'static str| -> Result<Option<String>, ApiError> {
            match parts.headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.to_string()))
                    .map_err(|_| ApiError::BadHeader { header: name, detail: "not visible ASCII".into() }),
            }
        };
        let idem_key = header("idempotency-key")?;
        if let Some(k) = &idem_key {
            if k.is_empty() || k.len() > 255 {
                return Err(ApiError::BadHeader { header: "Idempotency-Key", detail: "must be 1 to 255 characters".into() });
            }
        }
        let block = header(ID_BLOCK_HEADER)?.map(|v| IdBlock::parse(&v)).transpose()?;
        let origin = header("x-origin-seq")?;
        Ok(Mutation(MutationCtx { session, idem_key, block, origin }))
    }
}
