//! Checks of things the configuration names but does not contain: certificate and
//! key files, secret files, the state directory, environment variables.
//!
//! They run after the whole file has been validated, so a structural mistake further
//! down is reported before a missing file further up, and they can be switched off
//! ([`FileChecks::Skip`]) to check a configuration on a machine other than the one
//! it is for (CI, a laptop, tests). The contents read here are dropped at once: the
//! configuration only ever holds where a secret is, never the secret.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;

use super::error::Problem;

/// Whether loading also checks the files and environment variables the
/// configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChecks {
    /// Check them: what `pairgate --config` and `check-config` do by default.
    Check,
    /// Check only the file itself (`--no-file-checks`).
    Skip,
}

/// What a named file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A PEM file with at least one certificate.
    Certificate,
    /// A PEM file with a private key.
    PrivateKey,
    /// A non-empty secret (password, token, signing key).
    Secret,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    File {
        key: String,
        path: PathBuf,
        expect: Expect,
    },
    /// May be missing (the gateway creates it), but if it exists it is a directory.
    StateDir {
        key: String,
        path: PathBuf,
    },
    Env {
        name: String,
    },
}

/// One deferred check and where its value is written.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub span: Range<usize>,
    pub target: Target,
}

/// Enough for any certificate chain or secret; a bigger file is not what it claims.
const READ_LIMIT: u64 = 1024 * 1024;

impl Target {
    pub(crate) fn check(&self) -> Result<(), Problem> {
        match self {
            Target::File { key, path, expect } => {
                let bad = |reason: String| Problem::BadFile { key: key.clone(), path: path.clone(), reason };
                let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be opened: {e}")))?;
                if !meta.is_file() {
                    return Err(bad("is not a regular file".to_string()));
                }
                let mut bytes = Vec::new();
                File::open(path)
                    .and_then(|f| f.take(READ_LIMIT).read_to_end(&mut bytes))
                    .map_err(|e| bad(format!("cannot be read: {e}")))?;
                let text = String::from_utf8_lossy(&bytes);
                match expect {
                    Expect::Certificate if !text.contains("-----BEGIN CERTIFICATE-----") => {
                        Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string()))
                    }
                    Expect::PrivateKey if !(text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----")) => {
                        Err(bad("holds no PEM private key (-----BEGIN … PRIVATE KEY-----)".to_string()))
                    }
                    Expect::Secret if text.trim().is_empty() => Err(bad("is empty".to_string())),
                    _ => Ok(()),
                }
            }
            Target::StateDir { key, path } => match std::fs::metadata(path) {
                Ok(meta) if !meta.is_dir() => {
                    Err(Problem::BadFile { key: key.clone(), path: path.clone(), reason: "exists and is not a directory".to_string() })
                }
                _ => Ok(()),
            },
            Target::Env { name } => match std::env::var_os(name) {
                Some(v) if !v.is_empty() => Ok(()),
                _ => Err(Problem::EnvUnset { name: name.clone() }),
            },
        }
    }
}
