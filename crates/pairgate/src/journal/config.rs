//! [`JournalConfig`]: the knobs of the journal, with the defaults docs/design.md names.

use std::time::Duration;

use super::JournalError;

/// How the journal is run. `Default` gives chassis `"a"` and `"b"` and the documented
/// defaults; [`JournalConfig::from_config`] takes the `[journal]` section of
/// `gateway.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// The chassis whose applied seqs decide what may be truncated. Exactly the names
    /// the appliers will pass to `mark_applied`.
    pub chassis: Vec<String>,
    /// Entries kept for a lagging chassis; past that the oldest are dropped anyway and
    /// the lagging chassis needs a full resync.
    pub max_entries: u64,
    /// Bytes of stored entries kept at most (see [`super::Entry::stored_bytes`]); past
    /// that the oldest are dropped as with `max_entries`. The newest entry is always
    /// kept, whatever its size.
    pub max_bytes: u64,
    /// At most this many appends are made durable by one commit.
    pub commit_max_batch: usize,
    /// How long the writer may wait for more appends after the first one of a batch.
    /// 0 (the default) never waits: under load, batches form by themselves while the
    /// previous commit's fsync runs, and an idle gateway commits at once.
    pub commit_max_delay: Duration,
    /// How often at most applied positions are written when nothing else is committed.
    /// While mutations flow they ride along with every commit for free.
    pub applied_flush_interval: Duration,
    /// Slots of the live entry broadcast; a follower further behind reads the database.
    pub broadcast_capacity: usize,
    /// How long the writer waits for a database lock held by someone else before the
    /// batch fails.
    pub busy_timeout: Duration,
    /// Client idempotency records are forgotten after this long…
    pub client_key_ttl: Duration,
    /// …or when more than this many are kept (oldest first).
    pub client_key_max: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            chassis: vec!["a".to_owned(), "b".to_owned()],
            max_entries: 100_000,
            max_bytes: crate::config::sections::DEFAULT_JOURNAL_MAX_BYTES,
            commit_max_batch: 1024,
            commit_max_delay: Duration::ZERO,
            applied_flush_interval: Duration::from_millis(200),
            broadcast_capacity: 4096,
            busy_timeout: Duration::from_secs(2),
            client_key_ttl: Duration::from_secs(24 * 3600),
            client_key_max: 100_000,
        }
    }
}

impl JournalConfig {
    /// The `[journal]` section of `gateway.toml`, for the named chassis; everything
    /// the file does not set keeps its default.
    pub fn from_config(section: &crate::config::Journal, chassis: Vec<String>) -> JournalConfig {
        JournalConfig {
            chassis,
            max_entries: section.max_entries,
            max_bytes: section.max_bytes,
            commit_max_batch: usize::try_from(section.commit_max_batch).unwrap_or(usize::MAX),
            commit_max_delay: section.commit_max_delay,
            ..JournalConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), JournalError> {
        if self.chassis.is_empty() {
            return Err(JournalError::Config("at least one chassis is needed"));
        }
        for (i, name) in self.chassis.iter().enumerate() {
            if name.is_empty() {
                return Err(JournalError::Config("chassis names must not be empty"));
            }
            if self.chassis[..i].contains(name) {
                return Err(JournalError::Config("chassis names must be unique"));
            }
        }
        if self.max_entries == 0 {
            return Err(JournalError::Config("max_entries must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(JournalError::Config("max_bytes must be at least 1"));
        }
        if self.commit_max_batch == 0 {
            return Err(JournalError::Config("commit_max_batch must be at least 1"));
        }
        if self.broadcast_capacity == 0 {
            return Err(JournalError::Config("broadcast_capacity must be at least 1"));
        }
        if self.client_key_max == 0 {
            return Err(JournalError::Config("client_key_max must be at least 1"));
        }
        Ok(())
    }
}
