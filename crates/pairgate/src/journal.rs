//! The journal: every mutation the gateway accepts, durable before it is sent to
//! either chassis, kept until both chassis have applied it.
//!
//! docs/design.md ("Sequencer and ID blocks", "Journal", "Appliers") asks for three things
//! this module and [`crate::journal::writer`] provide together:
//! - **one order**: each mutation gets the next seq (1, 2, 3, … with no gaps) and, if
//!   its route rule asks, a block of fresh ids from the gateway's own counter, which
//!   never goes back (see [`crate::journal::writer`]);
//! - **nothing acknowledged is lost**: an entry is committed to SQLite (WAL,
//!   `synchronous=FULL`, so fsynced) before `append` returns, and group commit keeps
//!   that from costing one fsync per request;
//! - **replay**: each chassis' applier reads entries in seq order (a [`Follower`], or
//!   [`Journal::entries_after`]) and reports progress with [`Journal::mark_applied`];
//!   entries both chassis applied are truncated.
//!
//! # Secrets at rest
//! A body that carries a secret (a [`Draft`] with `seal_body`: its route rule names
//! a `secret_fields` pointer the body holds, or no rule describes the request) is
//! sealed by the writer with the entry's seq and gateway id as associated data and
//! stored that way ([`BodyFormat::Sealed`]), in the database and in the entries the
//! appliers receive; [`Journal::body`] opens it right before it is sent. Client
//! fingerprints are keyed ([`Journal::request_fingerprint`]). Both keys come from
//! `journal.key` in the state directory (0600, created on first open, see
//! `keys.rs`). The directory is 0700, the database file 0600 from creation, and
//! `secure_delete` zeroes truncated entries.
//!
//! # What a crash can lose
//! Nothing `append` returned. Applied positions are written lazily (with the next
//! commit, or within `applied_flush_interval` when idle), so a crash may forget the
//! last few `mark_applied` calls: those entries are replayed after the restart, which
//! is safe because each carries `Idempotency-Key: <gateway id>/<seq>` and its id block
//! (a chassis answers a replayed create with `id_in_use`). Client idempotency records
//! not yet journaled are lost on purpose (see `client_keys.rs`).
//!
//! # The `max_entries` rule (and `max_bytes`)
//! Entries are kept for the slower chassis up to `max_entries`, and up to `max_bytes`
//! of stored entries ([`Entry::stored_bytes`]: method, path, headers, body, account,
//! client key); past either the oldest are deleted anyway so a chassis that is down
//! for long cannot fill the disk (the newest entry is always kept). That
//! chassis then has `applied + 1 < oldest_available()`, [`Journal::needs_full_resync`]
//! says so, and its follower fails with [`JournalError::Truncated`]; after the full
//! resync the caller records the resync's seq with `mark_applied`.
//!
//! # Threads
//! All writes go through the sequencer's writer thread (appends, applied positions,
//! truncation, drops, client key answers), so there is one writer and never a lock
//! conflict inside the gateway. Queries use a small pool of read-only connections
//! (WAL readers never wait for the writer) and are synchronous: they are short point
//! or range reads; a caller reading large ranges on a runtime thread should use
//! `spawn_blocking` (the [`Follower`] does).

pub(crate) mod client_keys;
mod config;
mod entry;
mod error;
mod follower;
pub mod id_map;
mod keys;
pub(crate) mod lock;
mod readers;
pub(crate) mod schema;
pub(crate) mod shared;
pub(crate) mod sql_u64;
pub(crate) mod store;
pub(crate) mod verified;
pub mod writer;

pub use writer::Sequencer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

pub use client_keys::{ClientKeyState, ClientResponse};
pub use config::JournalConfig;
pub use entry::{BodyFormat, Draft, Entry, IdBlock, MAX_ID};
pub use error::JournalError;
pub use follower::Follower;
pub use id_map::MapChange;
pub use keys::JOURNAL_KEY_FILE;
pub use shared::JournalStats;
pub use verified::VerifiedPoint;

use shared::{Counters, Shared, State};
use writer::{Command, WriterHandle};

/// The query and bookkeeping side of the journal. Cheap to clone; every clone talks to
/// the same writer. The writer stops (and the directory lock is released) when the
/// last `Journal`, [`Sequencer`] and [`Follower`] are dropped.
#[derive(Clone)]
pub struct Journal {
    handle: Arc<WriterHandle>,
}

/// What a truncation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncateReport {
    /// Entries deleted by this commit (applied by every chassis, or over `max_entries`
    /// or `max_bytes`).
    pub removed: u64,
    pub oldest_available: u64,
}

/// Opens (creating if needed) the journal in `dir` (made 0700): `journal.sqlite`, the
/// lock file `journal.lock` and the key file `journal.key`, all 0600. Recovers the last seq, the id counter, the gateway id and each
/// chassis' applied seq, and starts the writer thread.
///
/// Fails with [`JournalError::Locked`] if another process (or another `open` in this
/// one) has the journal open.
pub fn open(dir: impl AsRef<Path>, config: JournalConfig) -> Result<(Journal, Sequencer), JournalError> {
    config.validate()?;
    let dir = dir.as_ref();
    crate::state_dir::ensure_private_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    let lock = lock::DirLock::acquire(dir)?;
    let keys = keys::JournalKeys::open_or_create(dir)?;
    let path = dir.join(schema::DB_FILE);
    let mut conn = schema::open_writer(&path, config.busy_timeout)?;
    let rec = schema::init_and_recover(&mut conn, &config.chassis)?;
    let verified = verified::read_all(&conn, &config.chassis)?;
    let sending_at_open = schema::read_sending(&conn, &config.chassis)?;
    tracing::info!(
        path = %path.display(),
        gateway_id = %rec.gateway_id,
        last_seq = rec.last_seq,
        oldest = rec.oldest,
        next_id = ?rec.next_id,
        applied = ?rec.applied,
        ?verified,
        "journal opened"
    );

    let (entries_tx, _) = broadcast::channel(config.broadcast_capacity);
    let (last_seq_tx, _) = watch::channel(rec.last_seq);
    let shared = Arc::new(Shared {
        gateway_id: rec.gateway_id,
        // Positive as an SQLite integer.
        incarnation: rand::random::<u64>() >> 1,
        keys,
        readers: readers::ReaderPool::new(path),
        state: Mutex::new(State {
            last_seq: rec.last_seq,
            oldest: rec.oldest,
            next_id: rec.next_id,
            applied: rec.applied,
            applied_dirty: false,
            verified,
            void: rec.void,
            pending: HashMap::new(),
            next_token: 0,
        }),
        counters: Counters::default(),
        commit_seconds: crate::metrics::commit_histogram(),
        entries_tx,
        last_seq_tx,
        sending_at_open,
        config,
    });
    {
        // Void entries right after an applied position (a drop whose applied update was
        // not yet written) count as applied, as they did before the restart.
        let mut st = shared.state.lock();
        for idx in 0..st.applied.len() {
            st.skip_void(idx);
        }
    }
    let handle = writer::start(conn, lock, shared)?;
    Ok((Journal { handle: handle.clone() }, Sequencer::new(handle)))
}

impl Journal {
    pub(crate) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// This gateway's id: random, generated when the journal was created, never
    /// changed. The origin in `Idempotency-Key: <gateway id>/<seq>`.
    pub fn gateway_id(&self) -> &str {
        &self.shared().gateway_id
    }

    /// The body to send for `entry`: as stored, or opened if it is sealed. A sealed
    /// body that does not open (the key file was replaced or lost, the entry was
    /// altered) is [`JournalError::Unseal`]: the entry must not be sent.
    pub fn body(&self, entry: &Entry) -> Result<Bytes, JournalError> {
        match entry.body_format {
            BodyFormat::Plain => Ok(Bytes::clone(&entry.body)),
            BodyFormat::Sealed => {
                let shared = self.shared();
                shared.keys.open_body(&shared.gateway_id, entry.seq, &entry.body).map_err(|_| JournalError::Unseal { seq: entry.seq })
            }
        }
    }

    /// The fingerprint [`Journal::begin_client_key`] compares: HMAC-SHA256 (keyed with
    /// this journal's key, so a stored fingerprint is no oracle for a password in the
    /// body) over the method, the target and the body, each length-prefixed so no two
    /// different requests collide by shifting bytes between fields.
    pub fn request_fingerprint(&self, method: &str, path_and_query: &str, body: &[u8]) -> String {
        self.shared().keys.fingerprint(method, path_and_query, body)
    }

    /// [`Journal::request_fingerprint`] of the request `entry` was made from.
    pub fn entry_fingerprint(&self, entry: &Entry) -> Result<String, JournalError> {
        let body = self.body(entry)?;
        Ok(self.request_fingerprint(&entry.method, &entry.path_and_query, &body))
    }

    /// The last committed seq (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.shared().state.lock().last_seq
    }

    /// The last committed seq, as it changes.
    pub fn watch_last_seq(&self) -> watch::Receiver<u64> {
        self.shared().last_seq_tx.subscribe()
    }

    /// Every entry committed from now on, in seq order. A receiver that lags gets
    /// `Lagged` and must read what it missed with [`Journal::entries_after`]; a
    /// [`Follower`] does that for you.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.shared().entries_tx.subscribe()
    }

    /// Live entries after `after_seq`, in order, then every new one: what an applier
    /// whose chassis applied up to `after_seq` needs.
    pub fn follow(&self, after_seq: u64) -> Follower {
        Follower::new(self.clone(), after_seq)
    }

    /// Up to `limit` live (not void) entries with seq > `after_seq`, in seq order.
    /// Entries no longer kept are simply absent: compare with
    /// [`Journal::oldest_available`].
    pub fn entries_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Arc<Entry>>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.shared().readers.with(|c| store::entries_after(c, after_seq, limit))
    }

    /// One live entry; `None` if it was never committed, is truncated, or is void.
    pub fn get(&self, seq: u64) -> Result<Option<Arc<Entry>>, JournalError> {
        Ok(self.shared().readers.with(|c| store::entry(c, seq))?.map(Arc::new))
    }

    /// Whether `seq` was dropped with [`Journal::drop_entry`] (and is still stored).
    /// An applier retrying an entry checks this before each attempt.
    pub fn is_void(&self, seq: u64) -> bool {
        self.shared().state.lock().void.contains(&seq)
    }

    /// Records that `chassis` has applied every entry up to `seq`. Monotonic: a lower
    /// seq than already recorded is ignored. Void entries right after `seq` count as
    /// applied too. Persisted lazily (see the module docs: a crash replays, safely).
    pub fn mark_applied(&self, chassis: &str, seq: u64) -> Result<(), JournalError> {
        let shared = self.shared();
        let idx = shared.chassis_index(chassis).ok_or_else(|| JournalError::UnknownChassis(chassis.to_owned()))?;
        let notify = {
            let mut st = shared.state.lock();
            if seq > st.last_seq {
                return Err(JournalError::SeqOutOfRange { seq, last: st.last_seq });
            }
            if seq <= st.applied[idx] {
                return Ok(());
            }
            let was_dirty = st.applied_dirty;
            st.applied[idx] = seq;
            st.applied_dirty = true;
            st.skip_void(idx);
            !was_dirty
        };
        if notify {
            self.handle.send(Command::AppliedChanged)?;
        }
        Ok(())
    }

    /// Records, durably, that entry `seq` is about to be sent to `chassis`:
    /// for firmware that cannot recognise a repeat (no `Idempotency-Key`),
    /// so that after a crash the one entry whose outcome is unknown is told
    /// apart from entries that were simply not sent yet. Returns once committed.
    pub async fn mark_sending(&self, chassis: &str, seq: u64) -> Result<(), JournalError> {
        let idx = self.shared().chassis_index(chassis).ok_or_else(|| JournalError::UnknownChassis(chassis.to_owned()))?;
        self.handle.request(|reply| Command::SetSending(idx, seq, reply)).await
    }

    /// The entry that was on its way to `chassis` when the journal was opened
    /// (see [`Journal::mark_sending`]): unknown in outcome if it is past the
    /// chassis' applied position.
    pub fn sending_at_open(&self, chassis: &str) -> Option<u64> {
        let shared = self.shared();
        shared.chassis_index(chassis).and_then(|i| shared.sending_at_open.get(i).copied().flatten())
    }

    /// [`Journal::mark_applied`], committed before it returns (for firmware
    /// without `Idempotency-Key`: a replay after a crash must not resend
    /// what it applied).
    pub async fn mark_applied_durably(&self, chassis: &str, seq: u64) -> Result<(), JournalError> {
        self.mark_applied(chassis, seq)?;
        self.handle.request(Command::Truncate).await.map(|_| ())
    }

    /// The highest seq `chassis` is known to have applied.
    pub fn applied(&self, chassis: &str) -> Result<u64, JournalError> {
        let shared = self.shared();
        let idx = shared.chassis_index(chassis).ok_or_else(|| JournalError::UnknownChassis(chassis.to_owned()))?;
        Ok(shared.state.lock().applied[idx])
    }

    /// The last verified point recorded for `chassis` (see [`VerifiedPoint`]), if any.
    pub fn verified(&self, chassis: &str) -> Result<Option<VerifiedPoint>, JournalError> {
        let shared = self.shared();
        let idx = shared.chassis_index(chassis).ok_or_else(|| JournalError::UnknownChassis(chassis.to_owned()))?;
        Ok(shared.state.lock().verified[idx].clone())
    }

    /// Records, durably and atomically (one transaction, through the writer), the
    /// verified point of each named chassis: returns once it is committed. A seq past
    /// the last committed one or an unknown chassis is refused and nothing is written.
    pub async fn record_verified(&self, points: &[(&str, VerifiedPoint)]) -> Result<(), JournalError> {
        let shared = self.shared();
        let last = shared.state.lock().last_seq;
        let mut rows = Vec::with_capacity(points.len());
        for (name, point) in points {
            let idx = shared.chassis_index(name).ok_or_else(|| JournalError::UnknownChassis((*name).to_owned()))?;
            if point.seq > last {
                return Err(JournalError::SeqOutOfRange { seq: point.seq, last });
            }
            rows.push((idx, point.clone()));
        }
        self.handle.request(|reply| Command::SetVerified(rows, reply)).await
    }

    /// Changes ID maps, durably and atomically (one transaction, through the
    /// writer): returns once committed. An unknown chassis index is refused
    /// and nothing is written.
    pub async fn change_map(&self, changes: Vec<MapChange>) -> Result<(), JournalError> {
        let n = self.shared().config.chassis.len();
        if let Some(bad) = changes.iter().find(|c| c.chassis() >= n) {
            return Err(JournalError::UnknownChassis(format!("#{}", bad.chassis())));
        }
        self.handle.request(|reply| Command::ChangeMap(changes, reply)).await
    }

    /// Every (table, client ID, chassis ID) of `chassis`' map.
    pub fn load_map(&self, chassis: &str) -> Result<Vec<(String, u64, u64)>, JournalError> {
        self.shared().readers.with(|c| id_map::load(c, chassis))
    }

    /// Entries the slowest chassis has not applied yet (`last_seq - min(applied)`).
    pub fn depth(&self) -> u64 {
        let st = self.shared().state.lock();
        st.last_seq.saturating_sub(st.min_applied())
    }

    /// The lowest seq still stored; `last_seq + 1` when the journal is empty.
    pub fn oldest_available(&self) -> u64 {
        self.shared().state.lock().oldest
    }

    /// True when `chassis` missed entries the journal no longer keeps (dropped by the
    /// `max_entries` or `max_bytes` rule): it can only be brought back by a full resync.
    pub fn needs_full_resync(&self, chassis: &str) -> Result<bool, JournalError> {
        let shared = self.shared();
        let idx = shared.chassis_index(chassis).ok_or_else(|| JournalError::UnknownChassis(chassis.to_owned()))?;
        let st = shared.state.lock();
        Ok(st.applied[idx] + 1 < st.oldest)
    }

    /// Deletes now what every chassis has applied (and what exceeds `max_entries` or
    /// `max_bytes`), and
    /// writes the applied positions. The writer also does this with every commit, so
    /// calling it is only needed to force it (before a shutdown, in tests).
    pub async fn truncate(&self) -> Result<TruncateReport, JournalError> {
        self.handle.request(Command::Truncate).await
    }

    /// Drops entry `seq` because it was certainly not applied anywhere (docs/design.md's
    /// answer table: both chassis refused the connection). The entry is marked void,
    /// not deleted, so seqs stay gap-free: followers and `entries_after` skip it,
    /// `mark_applied` steps over it, truncation deletes it with its neighbours, and
    /// client idempotency records pointing at it are forgotten (a retry is new).
    ///
    /// Allowed only while no chassis is recorded as having applied it (`seq >
    /// applied(c)` for every chassis; appliers apply in order, so this is "not reached
    /// by either applier"), and only for a stored, not yet void entry; otherwise
    /// [`JournalError::NotDroppable`]. The caller must make sure no applier is sending
    /// it at the same time (the journal cannot see a request on the wire): appliers
    /// check [`Journal::is_void`] before every attempt.
    pub async fn drop_entry(&self, seq: u64) -> Result<(), JournalError> {
        self.handle.request(|reply| Command::DropEntry(seq, reply)).await
    }

    /// Takes a client `Idempotency-Key` for the request with `fingerprint` (see
    /// [`Journal::request_fingerprint`]). Atomic: of two concurrent begins with the same key
    /// exactly one gets [`ClientKeyState::New`]. After `New`, put the key in the
    /// [`Draft`] (`client_key`) so the record is made durable with the entry, and end
    /// with [`Journal::finish_client_key`] or [`Journal::release_client_key`].
    /// A short synchronous read.
    pub fn begin_client_key(&self, account: &str, key: &str, fingerprint: &str) -> Result<ClientKeyState, JournalError> {
        client_keys::begin(self.shared(), account, key, fingerprint)
    }

    /// Stores the answer for a key (durably, with the next group commit); later begins
    /// with the same key and fingerprint get [`ClientKeyState::Done`]. After a restart,
    /// the applier that replays an entry carrying a client key calls this with the
    /// primary's answer.
    pub async fn finish_client_key(&self, account: &str, key: &str, response: ClientResponse) -> Result<(), JournalError> {
        let (account, key) = (account.to_owned(), key.to_owned());
        self.handle.request(|reply| Command::FinishClientKey { account, key, response, reply }).await
    }

    /// Gives up a key taken with `New` whose request never became a journal entry
    /// (the append failed, the request was rejected before it). Returns false and keeps
    /// the record when the request was journaled: that entry may still be applied.
    pub fn release_client_key(&self, account: &str, key: &str) -> bool {
        client_keys::release(self.shared(), account, key)
    }

    /// Counters and position.
    pub fn stats(&self) -> JournalStats {
        self.shared().stats()
    }

    /// The group commits' latency histogram (shared: observing it here shows in `/metrics`).
    pub fn commit_seconds(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.shared().commit_seconds.clone()
    }
}
