//! Everything the journal and the sequencer can fail with.
//!
//! One enum for both halves because a caller of [`crate::journal::Sequencer::append`]
//! and a caller of [`crate::journal::Journal`] react to the same underlying causes (the
//! database is unwritable, the writer has stopped). Variants that carry a database
//! error hold it in an `Arc` so one commit failure can be handed to every waiter of
//! the batch it sank.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum JournalError {
    /// The state directory (or the lock file in it) could not be created or opened.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: Arc<io::Error> },

    /// Another process (or another `open` in this one) holds the journal. Two writers on
    /// one journal would hand out the same sequence numbers and id blocks.
    #[error("{}: the journal is already open in another gateway process", path.display())]
    Locked { path: PathBuf },

    /// The database could not be opened, configured or recovered.
    #[error("{}: cannot open the journal database: {source}", path.display())]
    Open { path: PathBuf, source: Arc<rusqlite::Error> },

    /// A read (or a write outside the group commit) failed.
    #[error("journal database: {0}")]
    Storage(#[source] Arc<rusqlite::Error>),

    /// The group commit this request was part of failed; nothing of the batch was
    /// recorded and no sequence number or id was consumed.
    #[error("journal commit failed, nothing of this batch was recorded: {0}")]
    CommitFailed(#[source] Arc<rusqlite::Error>),

    /// The database holds something this code never writes.
    #[error("journal database is corrupt: {0}")]
    Corrupt(String),

    /// The database was written by a newer (or unknown) version of the gateway.
    #[error("journal schema version {found} is not supported (this gateway writes version {supported})")]
    SchemaVersion { found: i64, supported: i64 },

    /// The writer thread could not be started.
    #[error("cannot start the journal writer thread: {0}")]
    Thread(#[source] Arc<io::Error>),

    /// The writer thread has stopped (the journal was dropped, or it died).
    #[error("the journal writer has stopped")]
    Closed,

    /// A configuration value is unusable.
    #[error("journal configuration: {0}")]
    Config(&'static str),

    /// An id block was asked for before [`crate::journal::Sequencer::ensure_id_floor`]
    /// was ever called on this journal: the counter would start below ids the chassis
    /// already hold.
    #[error("the id counter has no floor yet: call ensure_id_floor with (highest id on either chassis + 1) before the first mutation")]
    IdFloorNotSet,

    /// The id counter would pass 2^53 (the largest integer a JSON number keeps exactly).
    #[error("id counter exhausted: {wanted} ids asked for at {next}, ids must stay below 2^53")]
    IdsExhausted { next: u64, wanted: u64 },

    /// `ensure_id_floor` was given a floor at or above 2^53.
    #[error("id floor {0} is not below 2^53")]
    IdFloorTooHigh(u64),

    /// A chassis name the journal was not configured with.
    #[error("unknown chassis {0:?}")]
    UnknownChassis(String),

    /// A sequence number past the last committed one.
    #[error("seq {seq} is past the last committed seq {last}")]
    SeqOutOfRange { seq: u64, last: u64 },

    /// `drop_entry` refused: see [`crate::journal::Journal::drop_entry`] for the rule.
    #[error("entry {seq} cannot be dropped: {reason}")]
    NotDroppable { seq: u64, reason: &'static str },

    /// `finish_client_key` for a key that was never begun (or has expired).
    #[error("no idempotency record for this account and key")]
    UnknownClientKey,

    /// The journal's key file (`journal.key`) cannot be read, created or used.
    #[error("journal key file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },

    /// Sealing an entry's body failed (the system random source failed); the
    /// entry was not recorded.
    #[error("could not seal the body of a journal entry: {0}")]
    Seal(crate::seal::SealError),

    /// A sealed body does not open: the journal key file was replaced or lost
    /// since the entry was written, or the entry was altered. The entry must not
    /// be sent to any chassis.
    #[error("the sealed body of journal entry {seq} cannot be opened (was journal.key replaced or lost?); it is not sent to any chassis")]
    Unseal { seq: u64 },

    /// A follower needs an entry the journal no longer keeps (dropped by the
    /// `max_entries` or `max_bytes` rule): the chassis needs a full resync.
    #[error("entry {wanted} is gone (oldest kept: {oldest}): full resync needed")]
    Truncated { wanted: u64, oldest: u64 },
}

impl JournalError {
    pub(crate) fn storage(e: rusqlite::Error) -> JournalError {
        JournalError::Storage(Arc::new(e))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: io::Error) -> JournalError {
        JournalError::Io { path: path.into(), source: Arc::new(e) }
    }
}
