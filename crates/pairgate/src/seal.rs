//! Sealing secrets at rest: one AEAD (ChaCha20-Poly1305, ring) under a 256-bit
//! key that lives in its own file, mode 0600, generated on first use.
//!
//! Two parts of the gateway keep secrets on disk and both use this module:
//! - the session store seals each account's password (`credentials.key`,
//!   [`crate::session`]);
//! - the journal seals mutation bodies that carry a secret (a user's password,
//!   the cascade superior's) and keys the client idempotency fingerprints
//!   (`journal.key`, [`crate::journal`]).
//!
//! A database alone (a backup, a copy attached to a bug report) then reveals no
//! secret, and any change to a sealed record is detected rather than decrypted
//! into garbage.
//!
//! Each record is `version (1) | nonce (12) | ciphertext | tag (16)`. Nonces are
//! random: records are written once per login or per secret-bearing mutation,
//! far below the 2^32 messages where random 96-bit nonces would start to risk a
//! repeat. Every caller binds a record to where it belongs with the associated
//! data (the account name, the journal entry's gateway id and seq), so a record
//! copied elsewhere does not open.
//!
//! Key files are never replaced: an existing key file that others may read, or
//! of the wrong length, is refused (the error says what to do) — replacing it
//! would make everything sealed under it unreadable, and a key others could read
//! may already be known.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Length of the key in a key file.
pub(crate) const KEY_LEN: usize = 32;
/// First byte of every sealed record.
const FORMAT_V1: u8 = 1;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be created, opened or read.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a usable key (its mode or its length).
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
}

/// Sealing or opening one record failed. Deliberately without detail: the
/// record is either sealed under another key, damaged, or bound to another place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the system random source failed")]
    Random,
    #[error("the record is too long to seal")]
    TooLong,
    #[error("the record cannot be opened with this key (another key, damaged, or not bound to this place)")]
    Open,
}

/// The key of a key file, read or created (see [`Sealer::open_or_create`]).
pub(crate) fn key_from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let rng = SystemRandom::new();
    match read_key(path)? {
        Some(bytes) => Ok(bytes),
        None => create_key(path, &rng),
    }
}

/// Seals and opens records with one key.
pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// Reads the key file at `path`, creating it (0600, random key) if it does
    /// not exist.
    pub(crate) fn open_or_create(path: &Path) -> Result<Self, KeyFileError> {
        let bytes = key_from_file(path)?;
        Sealer::from_key(&bytes).ok_or_else(|| unusable(path, format!("not a {KEY_LEN}-byte key")))
    }

    /// A sealer for `key` (exactly [`KEY_LEN`] bytes).
    pub(crate) fn from_key(key: &[u8]) -> Option<Self> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).ok()?;
        Some(Sealer { key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }

    /// Seals `plain`, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        // Room for the tag up front, so the buffer never reallocates and leaves a
        // plain-text copy behind in freed memory.
        let mut buf = Zeroizing::new(Vec::with_capacity(plain.len() + CHACHA20_POLY1305.tag_len()));
        buf.extend_from_slice(plain);
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *buf)
            .map_err(|_| SealError::TooLong)?;
        let mut record = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        record.push(FORMAT_V1);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&buf);
        Ok(record)
    }

    /// Opens a record made by [`seal`](Self::seal) with the same `aad`.
    pub(crate) fn open(&self, aad: &[u8], record: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (version, rest) = record.split_first().ok_or(SealError::Open)?;
        if *version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self.key.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| SealError::Open)?.len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn unusable(path: &Path, reason: String) -> KeyFileError {
    KeyFileError::Unusable { path: path.to_path_buf(), reason }
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> KeyFileError + 'a {
    move |source| KeyFileError::Io { path: path.to_path_buf(), action, source }
}

/// The key in `path`, or `None` if there is no such file.
fn read_key(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyFileError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "open")(e)),
    };
    let meta = file.metadata().map_err(io_error(path, "stat"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unusable(
            path,
            format!(
                "mode is {mode:04o}, others may have read the key; if nobody did, make it 0600 (chmod 600), \
                 otherwise move it away (what it sealed becomes unreadable) and restart"
            ),
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN));
    // Read one byte more than a key: a longer file is as wrong as a shorter one.
    file.take(KEY_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io_error(path, "read"))?;
    if bytes.len() != KEY_LEN {
        return Err(unusable(path, format!("expected exactly {KEY_LEN} bytes")));
    }
    Ok(Some(bytes))
}

/// Creates the key file with a fresh random key. The key is written to a
/// temporary file first and then linked into place, so the key file is either
/// absent or complete; if another process linked its key first, that one wins and
/// is read back.
fn create_key(path: &Path, rng: &SystemRandom) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
    rng.fill(&mut key).map_err(|_| unusable(path, "the system random source failed".to_string()))?;
    let tmp = tmp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&tmp, "remove a stale temporary key file")(e)),
    }
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_error(&tmp, "create"))?;
    let written = file.write_all(&key).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    if let Err(e) = fs::remove_file(&tmp) {
        tracing::warn!(path = %tmp.display(), "could not remove the temporary key file: {e}");
    }
    match linked {
        Ok(()) => {
            sync_parent(path);
            tracing::info!(path = %path.display(), "created a key file");
            Ok(key)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            read_key(path)?.ok_or_else(|| unusable(path, "vanished while being created".to_string()))
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
        if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
            tracing::debug!(dir = %dir.display(), "could not fsync the directory of a new key file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(dir: &Path) -> Sealer {
        match Sealer::open_or_create(&dir.join("k")) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn round_trip_bound_to_its_place() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = sealer(dir.path());
        let Ok(record) = s.seal(b"here", b"p@ss w0rd") else { panic!("seal") };
        assert!(!record.windows(9).any(|w| w == b"p@ss w0rd"));
        assert_eq!(s.open(b"here", &record).ok().as_deref().map(Vec::as_slice), Some(&b"p@ss w0rd"[..]));
        assert_eq!(s.open(b"there", &record), Err(SealError::Open));
        let mut flipped = record.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert!(s.open(b"here", &flipped).is_err());
        assert!(s.open(b"here", &record[..5]).is_err());
        assert!(s.open(b"here", &[]).is_err());
        // An empty plain text seals too.
        let Ok(empty) = s.seal(b"here", b"") else { panic!("seal empty") };
        assert_eq!(s.open(b"here", &empty).map(|p| p.len()), Ok(0));
        // The same key is read back on reopen; another key does not open it.
        assert!(sealer(dir.path()).open(b"here", &record).is_ok());
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(sealer(other.path()).open(b"here", &record).is_err());
    }

    #[test]
    fn key_file_is_0600_and_a_readable_or_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let _ = sealer(dir.path());
        let path = dir.path().join("k");
        let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("k.tmp").exists());
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
        assert!(matches!(Sealer::open_or_create(&path), Err(KeyFileError::Unusable { .. })));
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let _ = fs::write(&path, b"short");
        assert!(matches!(Sealer::open_or_create(&path), Err(KeyFileError::Unusable { .. })));
    }
}
