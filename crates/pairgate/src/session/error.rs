//! [`SessionError`]: the session store's own failures (files, database, keys).
//!
//! These are the gateway's problems, not the client's: the front answers them with
//! a 5xx and logs them. So every variant says which file or which step failed, and
//! none carries a secret: passwords, tokens and keys are never part of an error,
//! only the account name or the path they belong to.

use std::path::PathBuf;

/// A failure of the session store itself.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A file or directory of the store could not be created, read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite database failed.
    #[error("session database {path}: {action}: {source}")]
    Db {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer gateway; this one will not guess at it.
    #[error("session database {path}: schema version {found} is newer than this gateway's ({supported}); run the newer gateway")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    /// The credentials key file exists but cannot be used.
    #[error("credentials key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// The configured JWT secret is too short to sign tokens safely.
    #[error("the JWT secret is {len} bytes; at least {min} are needed (e.g. 64 random hex characters in jwt_secret_file)")]
    WeakJwtSecret { len: usize, min: usize },
    /// A lifetime or timeout in the configuration is zero.
    #[error("session setting {name} must be greater than zero")]
    ZeroDuration { name: &'static str },
    /// The account name is empty or too long to be one.
    #[error("invalid account name (empty or longer than {max} bytes)")]
    InvalidUsername { max: usize },
    /// The user id does not fit the database (chassis ids are below 2^53).
    #[error("user id {0} is out of range")]
    UserIdOutOfRange(u64),
    /// Signing a token failed (should not happen with an HMAC key).
    #[error("could not sign a session token: {0}")]
    Sign(String),
    /// Sealing a password failed (the system random source failed).
    #[error("could not seal the credentials of account {username:?}")]
    Seal { username: String },
    /// A stored password could not be unsealed: the credentials key file changed
    /// or the record is damaged. The account must log in again to store it anew.
    #[error(
        "the stored credentials of account {username:?} cannot be unsealed (was the credentials key file replaced?); they are replaced on the account's next login"
    )]
    Unseal { username: String },
}
