//! Sealing account passwords at rest.
//!
//! The gateway must be able to log in to a chassis on a user's behalf long after
//! the user typed the password (a chassis restarted, someone preempted the
//! gateway's session, the gateway itself restarted). So it keeps the password,
//! but sealed with [`crate::seal`] (ChaCha20-Poly1305 under the key in
//! `credentials.key`, mode 0600, generated on first use). The account name is
//! the associated data, so a record copied onto another account's row does not
//! unseal.

use std::path::Path;

use crate::seal::{KeyFileError, Sealer};

use super::error::SessionError;
use super::secret::Secret;

/// Prefix of the associated data (followed by the account name).
const AAD_PREFIX: &[u8] = b"pairgate credentials v1\0";

/// Seals and unseals account passwords with the key from the key file.
pub(crate) struct CredentialSealer {
    sealer: Sealer,
}

impl CredentialSealer {
    /// Reads the key file at `path`, creating it (0600, random key) if it does
    /// not exist. An existing key file that others can read, or of the wrong
    /// length, is refused rather than used or replaced: replacing it would make
    /// every stored password unreadable.
    pub(crate) fn open_or_create(path: &Path) -> Result<Self, SessionError> {
        let sealer = Sealer::open_or_create(path).map_err(|e| match e {
            KeyFileError::Io { path, action, source } => SessionError::Io { path, action, source },
            KeyFileError::Unusable { path, reason } => SessionError::KeyFile { path, reason },
        })?;
        Ok(CredentialSealer { sealer })
    }

    /// Seals `password` for `username`.
    pub(crate) fn seal(&self, username: &str, password: &str) -> Result<Vec<u8>, SessionError> {
        self.sealer.seal(&aad(username), password.as_bytes()).map_err(|_| SessionError::Seal { username: username.to_string() })
    }

    /// Unseals a record made by [`seal`](Self::seal) for the same `username`.
    pub(crate) fn unseal(&self, username: &str, record: &[u8]) -> Result<Secret, SessionError> {
        let unseal_error = || SessionError::Unseal { username: username.to_string() };
        let plain = self.sealer.open(&aad(username), record).map_err(|_| unseal_error())?;
        let text = std::str::from_utf8(&plain).map_err(|_| unseal_error())?;
        Ok(Secret::new(text))
    }
}

fn aad(username: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + username.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(username.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sealer(dir: &Path) -> CredentialSealer {
        match CredentialSealer::open_or_create(&dir.join("k")) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn seal_round_trip_bound_to_the_account() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = sealer(dir.path());
        let Ok(record) = s.seal("admin", "p@ss w0rd") else { panic!("seal") };
        assert!(!record.windows(9).any(|w| w == b"p@ss w0rd"));
        assert_eq!(s.unseal("admin", &record).map(|p| p.expose().to_string()).ok().as_deref(), Some("p@ss w0rd"));
        // Another account's row, a flipped bit, a truncated record: all refused.
        assert!(matches!(s.unseal("ops", &record), Err(SessionError::Unseal { .. })));
        let mut flipped = record.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert!(s.unseal("admin", &flipped).is_err());
        assert!(s.unseal("admin", &record[..5]).is_err());
        assert!(s.unseal("admin", &[]).is_err());
        // The same key is read back on reopen.
        let again = sealer(dir.path());
        assert!(again.unseal("admin", &record).is_ok());
    }

    #[test]
    fn refuses_a_readable_or_short_key_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let _ = sealer(dir.path());
        let path = dir.path().join("k");
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
        assert!(matches!(CredentialSealer::open_or_create(&path), Err(SessionError::KeyFile { .. })));
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let _ = fs::write(&path, b"short");
        assert!(matches!(CredentialSealer::open_or_create(&path), Err(SessionError::KeyFile { .. })));
    }
}
