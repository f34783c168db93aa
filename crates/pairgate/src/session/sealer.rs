//! Sealing account passwords at rest.
//!
//! The gateway must be able to log in to a chassis on a user's behalf long after
//! the user typed the password (a chassis restarted, someone preempted the
//! gateway's session, the gateway itself restarted). So it keeps the password,
//! but sealed: ChaCha20-Poly1305 (ring) under a 256-bit key that lives in its own
//! file, mode 0600, generated on first use. The database alone (a backup, a copy
//! sent with a bug report) then reveals nothing, and any change to a sealed record
//! is detected rather than decrypted into garbage.
//!
//! Each record is `version (1) | nonce (12) | ciphertext | tag (16)`. Nonces are
//! random: a record is written once per successful login, far below the 2^32
//! messages where random 96-bit nonces would start to risk a repeat. The account
//! name is the associated data, so a record copied onto another account's row
//! does not unseal.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::error::SessionError;
use super::secret::Secret;

/// Length of the key in the key file.
const KEY_LEN: usize = 32;
/// First byte of every sealed record.
const FORMAT_V1: u8 = 1;
/// Prefix of the associated data (followed by the account name).
const AAD_PREFIX: &[u8] = b"pairgate credentials v1\0";

/// Seals and unseals account passwords with the key from the key file.
pub(crate) struct CredentialSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl CredentialSealer {
    /// Reads the key file at `path`, creating it (0600, random key) if it does
    /// not exist. An existing key file that others can read, or of the wrong
    /// length, is refused rather than used or replaced: replacing it would make
    /// every stored password unreadable.
    pub(crate) fn open_or_create(path: &Path) -> Result<Self, SessionError> {
        let rng = SystemRandom::new();
        let bytes = match read_key(path)? {
            Some(bytes) => bytes,
            None => create_key(path, &rng)?,
        };
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| key_error(path, format!("not a {KEY_LEN}-byte key")))?;
        Ok(CredentialSealer { key: LessSafeKey::new(unbound), rng })
    }

    /// Seals `password` for `username`.
    pub(crate) fn seal(&self, username: &str, password: &str) -> Result<Vec<u8>, SessionError> {
        let seal_error = || SessionError::Seal { username: username.to_string() };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| seal_error())?;
        // Room for the tag up front, so the buffer never reallocates and leaves a
        // plain-text copy behind in freed memory.
        let mut buf = Zeroizing::new(Vec::with_capacity(password.len() + CHACHA20_POLY1305.tag_len()));
        buf.extend_from_slice(password.as_bytes());
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(username)), &mut *buf)
            .map_err(|_| seal_error())?;
        let mut record = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        record.push(FORMAT_V1);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&buf);
        Ok(record)
    }

    /// Unseals a record made by [`seal`](Self::seal) for the same `username`.
    pub(crate) fn unseal(&self, username: &str, record: &[u8]) -> Result<Secret, SessionError> {
        let unseal_error = || SessionError::Unseal { username: username.to_string() };
        let (version, rest) = record.split_first().ok_or_else(unseal_error)?;
        if *version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(unseal_error());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unseal_error())?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self.key.open_in_place(nonce, Aad::from(aad(username)), &mut buf).map_err(|_| unseal_error())?;
        let text = std::str::from_utf8(plain).map_err(|_| unseal_error())?;
        Ok(Secret::new(text))
    }
}

fn aad(username: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + username.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(username.as_bytes());
    aad
}

fn key_error(path: &Path, reason: String) -> SessionError {
    SessionError::KeyFile { path: path.to_path_buf(), reason }
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> SessionError + 'a {
    move |source| SessionError::Io { path: path.to_path_buf(), action, source }
}

/// The key in `path`, or `None` if there is no such file.
fn read_key(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, SessionError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "open")(e)),
    };
    let meta = file.metadata().map_err(io_error(path, "stat"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_error(path, format!("mode is {mode:04o}, others may read it; make it 0600 (chmod 600)")));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN));
    // Read one byte more than a key: a longer file is as wrong as a shorter one.
    file.take(KEY_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io_error(path, "read"))?;
    if bytes.len() != KEY_LEN {
        return Err(key_error(path, format!("expected exactly {KEY_LEN} bytes")));
    }
    Ok(Some(bytes))
}

/// Creates the key file with a fresh random key. The key is written to a
/// temporary file first and then linked into place, so the key file is either
/// absent or complete; if another process linked its key first, that one wins and
/// is read back.
fn create_key(path: &Path, rng: &SystemRandom) -> Result<Zeroizing<Vec<u8>>, SessionError> {
    let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
    rng.fill(&mut key).map_err(|_| key_error(path, "the system random source failed".to_string()))?;
    let tmp = tmp_path(path);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_error(&tmp, "create"))?;
    let written = file.write_all(&key).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            tracing::info!(path = %path.display(), "created the credentials key file");
            Ok(key)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            read_key(path)?.ok_or_else(|| key_error(path, "vanished while being created".to_string()))
        }
        Err(e) => Err(io_error(path, "create")(e)),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a new directory entry durable (best effort: some file systems refuse to
/// fsync a directory, and the key is already on disk).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
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
