//! The state the writer thread and every handle ([`super::Journal`],
//! [`crate::journal::Sequencer`], followers) share.
//!
//! The writer is the only one that changes `last_seq`, `oldest`, `next_id` and the
//! void set; it keeps its own copies and mirrors them here after each commit, so
//! handles answer from memory. `applied` is changed by handles (`mark_applied`) and
//! snapshotted by the writer at the start of each transaction. The lock is never
//! held across a database call.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

use super::entry::Entry;
use super::keys::JournalKeys;
use super::readers::ReaderPool;
use super::JournalConfig;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) gateway_id: String,
    /// Drawn at random each time the journal is opened, and stored with every
    /// entry appended meanwhile ([`Entry::epoch`]): the key a chassis is sent
    /// with an entry is then never one it saw, even for a seq used again (a
    /// state directory restored from an older copy counts seqs again).
    pub(crate) incarnation: u64,
    /// Seals secret-bearing bodies and keys client fingerprints (`journal.key`).
    pub(crate) keys: JournalKeys,
    pub(crate) config: JournalConfig,
    pub(crate) readers: ReaderPool,
    pub(crate) state: Mutex<State>,
    pub(crate) counters: Counters,
    /// Each group commit's latency (the write and its fsync), observed by the
    /// writer; `/metrics` shows it (`Journal::commit_seconds`).
    pub(crate) commit_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Every committed entry, in seq order, as it is committed.
    pub(crate) entries_tx: broadcast::Sender<Arc<Entry>>,
    /// The last committed seq.
    pub(crate) last_seq_tx: watch::Sender<u64>,
    /// Per chassis, the entry recorded as on its way to it when the journal
    /// was opened ([`super::Journal::mark_sending`]), if any.
    pub(crate) sending_at_open: Vec<Option<u64>>,
}

impl Shared {
    pub(crate) fn chassis_index(&self, name: &str) -> Option<usize> {
        self.config.chassis.iter().position(|c| c == name)
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) last_seq: u64,
    /// The lowest seq still stored; `last_seq + 1` when the journal is empty.
    pub(crate) oldest: u64,
    /// `None` until the id floor was set once.
    pub(crate) next_id: Option<u64>,
    /// Per configured chassis (same order as `config.chassis`).
    pub(crate) applied: Vec<u64>,
    /// `applied` changed since the writer last persisted it.
    pub(crate) applied_dirty: bool,
    /// Per configured chassis, its last verified point (written at once, not lazily).
    pub(crate) verified: Vec<Option<super::VerifiedPoint>>,
    /// Stored entries dropped by `drop_entry`.
    pub(crate) void: BTreeSet<u64>,
    /// Client idempotency keys whose request is in progress in this process.
    pub(crate) pending: HashMap<(String, String), Pending>,
    pub(crate) next_token: u64,
}

impl State {
    /// Moves `applied[idx]` past void entries right after it: a void entry needs no
    /// applying, and without this a chassis whose last entry was voided would never
    /// look caught up.
    pub(crate) fn skip_void(&mut self, idx: usize) {
        let mut seq = self.applied[idx];
        while self.void.contains(&(seq + 1)) {
            seq += 1;
        }
        if seq != self.applied[idx] {
            self.applied[idx] = seq;
            self.applied_dirty = true;
        }
    }

    pub(crate) fn min_applied(&self) -> u64 {
        self.applied.iter().copied().min().unwrap_or(0)
    }
}

/// A client key taken by `begin_client_key` in this process.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) fingerprint: String,
    /// Set once the request became a journal entry.
    pub(crate) seq: Option<u64>,
    /// Tells this taking of the key from a later one with the same key.
    pub(crate) token: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) entries: AtomicU64,
    pub(crate) largest_batch: AtomicU64,
    pub(crate) dropped_for_max_entries: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of the journal's counters (since `open`) and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Transactions committed by the writer (each is one fsync).
    pub commits: u64,
    /// Transactions that failed (every request in them got an error).
    pub failed_commits: u64,
    /// Entries appended.
    pub entries: u64,
    /// The most appends made durable by one commit.
    pub largest_batch: u64,
    /// Entries deleted unapplied because the journal exceeded `max_entries` or `max_bytes`.
    pub dropped_for_max_entries: u64,
    pub last_seq: u64,
    pub oldest_available: u64,
    /// Entries the slowest chassis has not applied yet.
    pub depth: u64,
}

impl Shared {
    pub(crate) fn stats(&self) -> JournalStats {
        let c = &self.counters;
        let st = self.state.lock();
        JournalStats {
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            dropped_for_max_entries: c.dropped_for_max_entries.load(Ordering::Relaxed),
            last_seq: st.last_seq,
            oldest_available: st.oldest,
            depth: st.last_seq.saturating_sub(st.min_applied()),
        }
    }
}
