//! `journal.key`: what keeps secrets in the journal unreadable at rest.
//!
//! One 256-bit key in its own file in the state directory (mode 0600, created on
//! first open, never replaced; see [`crate::seal`]). Two keys are derived from it
//! with HKDF-SHA256, one per purpose:
//! - **bodies**: a mutation body that carries a secret (the route rule's
//!   `secret_fields`, or any mutation no rule describes) is stored sealed with
//!   ChaCha20-Poly1305, bound to the entry (gateway id and seq) by the
//!   associated data, and opened only by the applier right before sending it;
//! - **fingerprints**: a client `Idempotency-Key` record keeps a fingerprint of
//!   its request; HMAC-SHA256 under this key rather than a bare hash, so the
//!   stored fingerprint of a request carrying a password is no offline oracle
//!   for guessing that password.
//!
//! Losing the file makes the sealed bodies still in the journal unreadable: the
//! appliers answer those entries with an error instead of sending them, and a
//! new key is created for what comes next.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use ring::hkdf::{self, KeyType, HKDF_SHA256};
use ring::hmac;
use zeroize::Zeroizing;

use super::JournalError;
use crate::seal::{self, KeyFileError, SealError, Sealer, KEY_LEN};

/// The key file in the state directory.
pub const JOURNAL_KEY_FILE: &str = "journal.key";

const HKDF_SALT: &[u8] = b"pairgate journal.key v1";
const BODY_INFO: &[u8] = b"entry bodies: chacha20-poly1305";
const FINGERPRINT_INFO: &[u8] = b"client key fingerprints: hmac-sha256";
/// Prefix of an entry body's associated data (then the gateway id, 0, the seq).
const BODY_AAD_PREFIX: &[u8] = b"pairgate journal body v1\0";

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The two derived keys.
pub(crate) struct JournalKeys {
    bodies: Sealer,
    fingerprints: hmac::Key,
}

impl fmt::Debug for JournalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JournalKeys(<redacted>)")
    }
}

impl JournalKeys {
    /// Reads `dir/journal.key`, creating it if it does not exist.
    pub(crate) fn open_or_create(dir: &Path) -> Result<JournalKeys, JournalError> {
        let path = dir.join(JOURNAL_KEY_FILE);
        let master = seal::key_from_file(&path).map_err(|e| match e {
            KeyFileError::Io { path, action, source } => JournalError::Key { path, reason: format!("{action}: {source}") },
            KeyFileError::Unusable { path, reason } => JournalError::Key { path, reason },
        })?;
        let prk = hkdf::Salt::new(HKDF_SHA256, HKDF_SALT).extract(&master);
        let derive = |info: &[u8]| -> Result<Zeroizing<Vec<u8>>, JournalError> {
            let mut out = Zeroizing::new(vec![0u8; KEY_LEN]);
            let infos = [info];
            prk.expand(&infos, Len(KEY_LEN))
                .and_then(|okm| okm.fill(&mut out[..]))
                .map_err(|_| JournalError::Key { path: path.clone(), reason: "deriving the journal's keys failed".into() })?;
            Ok(out)
        };
        let body_key = derive(BODY_INFO)?;
        let fingerprint_key = derive(FINGERPRINT_INFO)?;
        let bodies = Sealer::from_key(&body_key)
            .ok_or_else(|| JournalError::Key { path: path.clone(), reason: "not a ChaCha20-Poly1305 key".into() })?;
        Ok(JournalKeys { bodies, fingerprints: hmac::Key::new(hmac::HMAC_SHA256, &fingerprint_key) })
    }

    /// Seals the body of entry `seq`.
    pub(crate) fn seal_body(&self, gateway_id: &str, seq: u64, body: &[u8]) -> Result<Bytes, SealError> {
        self.bodies.seal(&body_aad(gateway_id, seq), body).map(Bytes::from)
    }

    /// Opens the sealed body of entry `seq`.
    pub(crate) fn open_body(&self, gateway_id: &str, seq: u64, record: &[u8]) -> Result<Bytes, SealError> {
        self.bodies.open(&body_aad(gateway_id, seq), record).map(|plain| Bytes::copy_from_slice(&plain))
    }

    /// HMAC-SHA256 over the method, the target and the body, each length-prefixed
    /// so no two different requests collide by shifting bytes between fields; hex.
    pub(crate) fn fingerprint(&self, method: &str, path_and_query: &str, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.fingerprints);
        for part in [method.as_bytes(), path_and_query.as_bytes(), body] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        hex::encode(ctx.sign().as_ref())
    }
}

fn body_aad(gateway_id: &str, seq: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(BODY_AAD_PREFIX.len() + gateway_id.len() + 9);
    aad.extend_from_slice(BODY_AAD_PREFIX);
    aad.extend_from_slice(gateway_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path) -> JournalKeys {
        JournalKeys::open_or_create(dir).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn bodies_open_only_for_their_entry_and_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let k = keys(dir.path());
        let body = br#"{"username":"carol","password":"hunter2-secret"}"#;
        let sealed = k.seal_body("g1", 7, body).unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.windows(14).any(|w| w == b"hunter2-secret"));
        assert_eq!(k.open_body("g1", 7, &sealed).ok().as_deref(), Some(&body[..]));
        assert_eq!(k.open_body("g1", 8, &sealed), Err(SealError::Open), "another seq");
        assert_eq!(k.open_body("g2", 7, &sealed), Err(SealError::Open), "another gateway");
        // Reopened: the same key. Another directory: another key.
        assert!(keys(dir.path()).open_body("g1", 7, &sealed).is_ok());
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(other.path()).open_body("g1", 7, &sealed), Err(SealError::Open));
    }

    #[test]
    fn fingerprints_are_keyed_and_separate_fields() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let k = keys(dir.path());
        assert_ne!(k.fingerprint("POST", "/a", b"bc"), k.fingerprint("POST", "/ab", b"c"));
        assert_eq!(k.fingerprint("POST", "/a", b"x"), k.fingerprint("POST", "/a", b"x"));
        assert_eq!(k.fingerprint("POST", "/a", b"x").len(), 64);
        // Not the unkeyed hash, and another key gives another fingerprint.
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(k.fingerprint("POST", "/a", b"x"), keys(other.path()).fingerprint("POST", "/a", b"x"));
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [&b"POST"[..], b"/a", b"x"] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        assert_ne!(k.fingerprint("POST", "/a", b"x"), hex::encode(h.finalize()));
        assert_eq!(std::fs::metadata(dir.path().join(JOURNAL_KEY_FILE)).map(|m| m.len()).ok(), Some(KEY_LEN as u64));
    }
}
