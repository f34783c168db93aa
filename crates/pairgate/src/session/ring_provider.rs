//! A `jsonwebtoken` crypto provider backed by ring, HS256 only.
//!
//! Since version 10, `jsonwebtoken` needs a crypto backend: its built-in choices
//! are aws-lc-rs (a C/assembly build the project avoids) and RustCrypto (which
//! brings RSA, P-256, P-384 and Ed25519 stacks the gateway never uses). ring is
//! already in the build as the TLS provider and has a constant-time HMAC, so this
//! provider signs and verifies with it.
//!
//! It knows exactly one algorithm. That is a second lock on the door the token
//! validation already locks (it allows HS256 only): even if a validation were
//! misconfigured, no other algorithm, and no RSA/HMAC key confusion, can verify.
//!
//! The provider is process-wide (`CryptoProvider::install_default`); [`install`]
//! is called before any token is signed or checked. If something else installed a
//! provider first, that one is used (it must then support HS256).

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::hmac;

/// HMAC-SHA256 with one key, as signer and verifier.
struct Hs256(hmac::Key);

impl Hs256 {
    fn new(algorithm: &Algorithm, family: AlgorithmFamily, secret: &[u8]) -> Result<Self> {
        if *algorithm != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        if family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, msg).as_ref().to_vec())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        // ring compares in constant time.
        hmac::verify(&self.0, msg, signature).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256::new(algorithm, key.family(), key.as_bytes())?))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hs256::new(algorithm, key.family(), key.try_get_as_bytes()?)?))
}

/// The provider. JWKs are not supported (the gateway never handles one): its key
/// utilities are `jsonwebtoken`'s "unimplemented" set.
static RING_HS256: CryptoProvider =
    CryptoProvider { signer_factory: signer, verifier_factory: verifier, key_utils: KeyUtils::new_unimplemented() };

/// Installs the provider process-wide, once. Idempotent and cheap after the first
/// call.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if RING_HS256.install_default().is_err() {
            tracing::debug!("a jsonwebtoken crypto provider was already installed; the session store uses it");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_algorithm_but_hs256() {
        let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        assert!(signer(&Algorithm::HS256, &key).is_ok());
        for alg in [Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(signer(&alg, &key).is_err(), "{alg:?} must be refused");
        }
    }

    #[test]
    fn verifies_only_its_own_signatures() {
        let Ok(s) = Hs256::new(&Algorithm::HS256, AlgorithmFamily::Hmac, b"key-one") else { panic!("key") };
        let Ok(other) = Hs256::new(&Algorithm::HS256, AlgorithmFamily::Hmac, b"key-two") else { panic!("key") };
        let Ok(sig) = s.try_sign(b"message") else { panic!("sign") };
        assert!(Verifier::verify(&s, b"message", &sig).is_ok());
        assert!(Verifier::verify(&s, b"messagE", &sig).is_err());
        assert!(Verifier::verify(&other, b"message", &sig).is_err());
    }
}
