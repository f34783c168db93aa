//! The sequencer: gives every mutation the next seq and its id block, and makes it
//! durable, many mutations per fsync (group commit).
//!
//! # One writer thread
//! A dedicated OS thread owns the SQLite connection that writes. Requests reach it
//! over a channel, each with a oneshot for the answer. The thread takes the first
//! request, then everything else already queued (up to `commit_max_batch` appends,
//! optionally waiting `commit_max_delay` for more), and writes the whole batch in ONE
//! transaction: seqs (strictly increasing, no gaps) and id blocks are assigned from the
//! counters it alone owns, the counters are written in the same transaction, one
//! commit (one fsync) makes the batch durable, and only then is every waiter answered.
//! While that fsync runs the next batch queues up, so the number of fsyncs adapts to
//! the load instead of capping throughput at one per request.
//!
//! Why a thread and not a tokio task with `spawn_blocking`: the writer blocks on
//! fsync for most of its life, holds its connection forever, and must never be
//! starved or moved between threads mid-transaction; a thread of its own says exactly
//! that, costs nothing per batch (no blocking-pool handoff), and works the same from
//! any runtime, or none (tests, tools). Callers only ever `await` a oneshot.
//!
//! Every other write (applied positions, truncation, `drop_entry`, client key
//! answers) goes through the same thread and rides in the same transactions, so the
//! journal has a single writer and never meets a lock conflict of its own making.
//!
//! # Failure
//! If the transaction fails (disk full, I/O error, the database locked by someone
//! else past `busy_timeout`), it is rolled back, every request of the batch gets
//! [`JournalError::CommitFailed`], and the in-memory counters are left as they were:
//! no seq and no id is consumed, the next successful append gets the next seq.
//!
//! Cancelling an `append` (dropping its future, e.g. the client went away) does not
//! withdraw it: once sent it is committed and applied like any other.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::journal::client_keys::now_ms;
use crate::journal::id_map::{self, MapChange};
use crate::journal::lock::DirLock;
use crate::journal::schema::meta_put;
use crate::journal::shared::{Counters, Pending, Shared, State};
use crate::journal::sql_u64::U64;
use crate::journal::store;
use crate::journal::verified;
use crate::journal::{
    BodyFormat, ClientResponse, Draft, Entry, IdBlock, JournalError, JournalStats, TruncateReport, VerifiedPoint, MAX_ID,
};

/// Client idempotency records are expired at most this often.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// The appending side of the journal. Cheap to clone.
#[derive(Clone)]
pub struct Sequencer {
    handle: Arc<WriterHandle>,
}

impl Sequencer {
    pub(crate) fn new(handle: Arc<WriterHandle>) -> Sequencer {
        Sequencer { handle }
    }

    /// Orders and journals one mutation: returns once it is durable, with its seq and
    /// id block. Concurrent appends share commits.
    pub async fn append(&self, draft: Draft) -> Result<Arc<Entry>, JournalError> {
        self.handle.request(|reply| Command::Append(draft, reply)).await
    }

    /// Raises the id counter to at least `floor` (durably) and returns the counter. It
    /// never goes down. The gateway calls it with (highest id on either chassis + 1)
    /// before the first mutation; until it has been called once, appends that want ids
    /// fail with [`JournalError::IdFloorNotSet`] rather than hand out ids the chassis
    /// already use. `floor` must be below 2^53.
    pub async fn ensure_id_floor(&self, floor: u64) -> Result<u64, JournalError> {
        self.handle.request(|reply| Command::EnsureIdFloor(floor, reply)).await
    }

    /// The next id to hand out; `None` until [`Sequencer::ensure_id_floor`] was first
    /// called (that is how the gateway knows it is starting for the first time).
    pub fn id_counter(&self) -> Option<u64> {
        self.handle.shared.state.lock().next_id
    }

    /// See [`crate::journal::Journal::gateway_id`].
    pub fn gateway_id(&self) -> &str {
        &self.handle.shared.gateway_id
    }

    /// The last committed seq.
    pub fn last_seq(&self) -> u64 {
        self.handle.shared.state.lock().last_seq
    }

    /// Commits, entries, batch sizes (since open) and position.
    pub fn stats(&self) -> JournalStats {
        self.handle.shared.stats()
    }
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// Verified points to record: (chassis index, point).
pub(crate) type VerifiedRows = Vec<(usize, VerifiedPoint)>;

/// What handles ask the writer thread to do.
pub(crate) enum Command {
    Append(Draft, Reply<Arc<Entry>>),
    EnsureIdFloor(u64, Reply<u64>),
    DropEntry(u64, Reply<()>),
    Truncate(Reply<TruncateReport>),
    FinishClientKey {
        account: String,
        key: String,
        response: ClientResponse,
        reply: Reply<()>,
    },
    /// Record these chassis' verified points (chassis index, point).
    SetVerified(VerifiedRows, Reply<()>),
    /// Change ID maps (see `id_map.rs`).
    ChangeMap(Vec<MapChange>, Reply<()>),
    /// Record the entry on its way to a chassis (chassis index, seq).
    SetSending(usize, u64, Reply<()>),
    /// Applied positions changed: write them within `applied_flush_interval` (or with
    /// the next commit, whichever comes first).
    AppliedChanged,
}

/// The handles' link to the writer thread. Dropping the last one closes the channel
/// and waits for the thread to finish its batch and exit, which also releases the
/// directory lock, so the journal can be opened again right away.
pub(crate) struct WriterHandle {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    pub(crate) shared: Arc<Shared>,
}

impl WriterHandle {
    pub(crate) fn send(&self, cmd: Command) -> Result<(), JournalError> {
        match &self.tx {
            Some(tx) => tx.send(cmd).map_err(|_| JournalError::Closed),
            None => Err(JournalError::Closed),
        }
    }

    pub(crate) async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| JournalError::Closed)?
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the journal writer thread panicked");
            }
        }
    }
}

/// Starts the writer thread on an opened, recovered database.
pub(crate) fn start(conn: Connection, lock: DirLock, shared: Arc<Shared>) -> Result<Arc<WriterHandle>, JournalError> {
    let (tx, rx) = mpsc::channel();
    let (last_seq, oldest, next_id) = {
        let st = shared.state.lock();
        (st.last_seq, st.oldest, st.next_id)
    };
    let sizes: VecDeque<(u64, u64)> = store::entry_sizes(&conn).map_err(JournalError::storage)?.into();
    let stored_bytes = sizes.iter().map(|(_, b)| b).sum();
    let writer = Writer {
        sizes,
        stored_bytes,
        conn,
        rx,
        shared: shared.clone(),
        last_seq,
        oldest,
        next_id,
        flush_due: None,
        next_housekeeping: Instant::now(),
        _lock: lock,
    };
    let thread = std::thread::Builder::new()
        .name("pairgate-journal".to_owned())
        .spawn(move || writer.run())
        .map_err(|e| JournalError::Thread(Arc::new(e)))?;
    Ok(Arc::new(WriterHandle { tx: Some(tx), thread: Some(thread), shared }))
}

/// The writer thread's state. `last_seq`, `oldest` and `next_id` are the
/// authoritative values; `shared.state` mirrors them after each commit.
struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    last_seq: u64,
    oldest: u64,
    next_id: Option<u64>,
    /// `(seq, Entry::stored_bytes)` of every stored entry, oldest first, and their sum:
    /// what the `max_bytes` rule counts.
    sizes: VecDeque<(u64, u64)>,
    stored_bytes: u64,
    /// When set, applied positions are waiting to be written by then.
    flush_due: Option<Instant>,
    next_housekeeping: Instant,
    _lock: DirLock,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = match self.flush_due {
                None => match self.rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => break,
                },
                Some(due) => match self.rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(cmd) => Some(cmd),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let batch = self.gather(first);
            let flush_now = self.flush_due.is_some_and(|due| Instant::now() >= due);
            if batch.is_empty() {
                if !flush_now {
                    continue;
                }
                if !self.shared.state.lock().applied_dirty {
                    // An earlier commit already wrote them: nothing to flush.
                    self.flush_due = None;
                    continue;
                }
            }
            self.commit(batch);
        }
        // Every handle is gone: write the last applied positions, so a clean shutdown
        // replays nothing.
        if self.shared.state.lock().applied_dirty {
            self.commit(Vec::new());
        }
        tracing::debug!(last_seq = self.last_seq, "journal writer stopped");
    }

    /// The first command plus whatever else is queued, up to `commit_max_batch`
    /// appends, waiting up to `commit_max_delay` for more once an append is in hand.
    fn gather(&mut self, first: Option<Command>) -> Vec<Command> {
        let mut batch = Vec::new();
        let Some(first) = first else { return batch };
        let mut appends = 0;
        self.take(first, &mut batch, &mut appends);
        let max = self.shared.config.commit_max_batch;
        let deadline = Instant::now() + self.shared.config.commit_max_delay;
        while appends < max {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if appends == 0 || now >= deadline {
                        break;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(cmd) => cmd,
                        Err(_) => break,
                    }
                }
            };
            self.take(cmd, &mut batch, &mut appends);
        }
        batch
    }

    fn take(&mut self, cmd: Command, batch: &mut Vec<Command>, appends: &mut usize) {
        match cmd {
            Command::AppliedChanged => {
                if self.flush_due.is_none() {
                    self.flush_due = Some(Instant::now() + self.shared.config.applied_flush_interval);
                }
            }
            cmd => {
                if matches!(cmd, Command::Append(..)) {
                    *appends += 1;
                }
                batch.push(cmd);
            }
        }
    }

    /// One transaction for the whole batch, then memory, subscribers and waiters.
    fn commit(&mut self, batch: Vec<Command>) {
        let (applied, applied_dirty) = {
            let mut st = self.shared.state.lock();
            let dirty = std::mem::replace(&mut st.applied_dirty, false);
            (st.applied.clone(), dirty)
        };
        let mut plan = self.plan(batch, &applied);
        let started = std::time::Instant::now();
        let written = self.write(&mut plan, &applied, applied_dirty);
        self.shared.commit_seconds.observe(started.elapsed().as_secs_f64());
        match written {
            Ok(report) => self.committed(plan, report),
            Err(e) => self.failed(plan, e, applied_dirty),
        }
    }

    /// Phase 1, in memory only: seqs, id blocks and checks, against local copies of the
    /// counters (so a failed commit leaves the real ones untouched).
    fn plan(&self, batch: Vec<Command>, applied: &[u64]) -> Plan {
        let mut plan = Plan::new(self.last_seq, self.next_id);
        let st = self.shared.state.lock();
        for cmd in batch {
            match cmd {
                Command::Append(draft, reply) => {
                    let result = plan.stage_append(draft, &st, &self.shared);
                    plan.appends.push(Job { reply, result });
                }
                Command::EnsureIdFloor(floor, reply) => {
                    let result = if floor >= MAX_ID {
                        Err(JournalError::IdFloorTooHigh(floor))
                    } else {
                        // Ids start at 1 at the lowest: 0 is not an id anywhere.
                        let next = plan.next_id.unwrap_or(1).max(floor).max(1);
                        plan.next_id = Some(next);
                        Ok(next)
                    };
                    plan.floors.push(Job { reply, result });
                }
                Command::DropEntry(seq, reply) => {
                    let refusal = if seq == 0 || seq > self.last_seq {
                        Some("it was never committed")
                    } else if seq < self.oldest {
                        Some("it is no longer kept")
                    } else if st.void.contains(&seq) || plan.drops.iter().any(|(s, j)| *s == seq && j.result.is_ok()) {
                        Some("it is already dropped")
                    } else if applied.iter().any(|&a| a >= seq) {
                        Some("a chassis has applied it")
                    } else {
                        None
                    };
                    let result = match refusal {
                        Some(reason) => Err(JournalError::NotDroppable { seq, reason }),
                        None => Ok(()),
                    };
                    plan.drops.push((seq, Job { reply, result }));
                }
                Command::Truncate(reply) => plan.truncates.push(reply),
                Command::SetVerified(points, reply) => plan.verified.push((points, reply)),
                Command::ChangeMap(changes, reply) => plan.maps.push((changes, reply)),
                Command::SetSending(idx, seq, reply) => plan.sending.push((idx, seq, reply)),
                Command::FinishClientKey { account, key, response, reply } => {
                    let pending = st.pending.get(&(account.clone(), key.clone())).cloned();
                    plan.finishes.push(Finish { account, key, response, pending, job: Job { reply, result: Ok(()) } });
                }
                Command::AppliedChanged => {}
            }
        }
        plan
    }

    /// Phase 2: the batch, the counters, the applied positions and truncation in one
    /// transaction.
    fn write(&mut self, plan: &mut Plan, applied: &[u64], applied_dirty: bool) -> rusqlite::Result<Written> {
        let now_ms = now_ms();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

        for job in &plan.appends {
            if let Ok(entry) = &job.result {
                store::insert_entry(&tx, entry)?;
            }
        }
        for row in &plan.key_rows {
            store::put_client_key_in_flight(&tx, &row.account, &row.key, &row.fingerprint, row.seq, now_ms)?;
        }
        for (seq, job) in &plan.drops {
            if job.result.is_ok() {
                store::set_void(&tx, *seq)?;
                store::delete_client_keys_of_seq(&tx, *seq)?;
            }
        }
        for f in &mut plan.finishes {
            let known = f.pending.as_ref().map(|p| (p.fingerprint.as_str(), p.seq));
            if !store::put_client_key_done(&tx, &f.account, &f.key, known, &f.response, now_ms)? {
                f.job.result = Err(JournalError::UnknownClientKey);
            }
        }
        if plan.last_seq != self.last_seq {
            meta_put(&tx, "last_seq", U64(plan.last_seq))?;
        }
        if plan.next_id != self.next_id {
            if let Some(next) = plan.next_id {
                meta_put(&tx, "next_id", U64(next))?;
            }
        }
        if applied_dirty {
            for (name, seq) in self.shared.config.chassis.iter().zip(applied) {
                store::put_applied(&tx, name, *seq)?;
            }
        }
        for (points, _) in &plan.verified {
            for (idx, point) in points {
                if let Some(name) = self.shared.config.chassis.get(*idx) {
                    meta_put(&tx, &verified::meta_key(name), verified::encode(point))?;
                }
            }
        }
        for (idx, seq, _) in &plan.sending {
            if let Some(name) = self.shared.config.chassis.get(*idx) {
                meta_put(&tx, &crate::journal::schema::sending_key(name), U64(*seq))?;
            }
        }
        for (changes, _) in &plan.maps {
            for change in changes {
                if let Some(name) = self.shared.config.chassis.get(change.chassis()) {
                    id_map::apply(&tx, name, change)?;
                }
            }
        }

        // Truncation: what every chassis applied, then the max_entries rule, then the
        // max_bytes rule.
        let min_applied = applied.iter().copied().min().unwrap_or(0);
        let applied_floor = (min_applied + 1).max(self.oldest);
        let max = self.shared.config.max_entries;
        let keep_from = if plan.last_seq + 1 > applied_floor.saturating_add(max) { plan.last_seq + 1 - max } else { applied_floor };
        let keep_from = byte_floor(&self.sizes, self.stored_bytes, self.shared.config.max_bytes, plan, keep_from);
        let removed = if keep_from > self.oldest { store::delete_before(&tx, keep_from)? } else { 0 };

        let now = Instant::now();
        let mut expired = 0;
        if now >= self.next_housekeeping {
            let ttl_ms = i64::try_from(self.shared.config.client_key_ttl.as_millis()).unwrap_or(i64::MAX);
            expired = store::expire_client_keys(&tx, now_ms.saturating_sub(ttl_ms), self.shared.config.client_key_max)?;
            self.next_housekeeping = now + HOUSEKEEPING_EVERY;
        }

        tx.commit()?;
        if expired > 0 {
            tracing::debug!(expired, "expired client idempotency records");
        }
        Ok(Written { oldest: keep_from, removed, dropped_unapplied: keep_from.saturating_sub(applied_floor) })
    }

    fn committed(&mut self, plan: Plan, written: Written) {
        let shared = Arc::clone(&self.shared);
        let previous_last = self.last_seq;
        self.last_seq = plan.last_seq;
        self.next_id = plan.next_id;
        self.oldest = written.oldest;
        for entry in plan.appends.iter().filter_map(|j| j.result.as_ref().ok()) {
            self.sizes.push_back((entry.seq, entry.stored_bytes()));
            self.stored_bytes += entry.stored_bytes();
        }
        while let Some(&(seq, bytes)) = self.sizes.front() {
            if seq >= self.oldest {
                break;
            }
            self.stored_bytes -= bytes;
            self.sizes.pop_front();
        }

        let dirty = {
            let mut st = shared.state.lock();
            st.last_seq = self.last_seq;
            st.next_id = self.next_id;
            st.oldest = self.oldest;
            for (seq, job) in &plan.drops {
                if job.result.is_ok() {
                    st.void.insert(*seq);
                    st.pending.retain(|_, p| p.seq != Some(*seq));
                    if st.applied.iter().any(|&a| a >= *seq) {
                        // mark_applied raced the drop (see Journal::drop_entry): the entry was
                        // applied somewhere after all. The digest comparison will catch it.
                        tracing::error!(seq, "journal entry dropped as unapplied, but a chassis reported applying it meanwhile");
                    }
                }
            }
            for (points, _) in &plan.verified {
                for (idx, point) in points {
                    if let Some(slot) = st.verified.get_mut(*idx) {
                        *slot = Some(point.clone());
                    }
                }
            }
            let oldest = self.oldest;
            st.void = st.void.split_off(&oldest);
            for idx in 0..st.applied.len() {
                st.skip_void(idx);
            }
            for row in &plan.key_rows {
                if let Some(p) = st.pending.get_mut(&(row.account.clone(), row.key.clone())) {
                    if p.token == row.token {
                        p.seq = Some(row.seq);
                    }
                }
            }
            for f in &plan.finishes {
                if let (Some(mine), Ok(())) = (&f.pending, &f.job.result) {
                    let id = (f.account.clone(), f.key.clone());
                    if st.pending.get(&id).is_some_and(|p| p.token == mine.token) {
                        st.pending.remove(&id);
                    }
                }
            }
            st.applied_dirty
        };
        self.schedule_flush(dirty, false);

        let appended = plan.appends.iter().filter(|j| j.result.is_ok()).count() as u64;
        let c = &shared.counters;
        Counters::add(&c.commits, 1);
        Counters::add(&c.entries, appended);
        c.largest_batch.fetch_max(appended, Ordering::Relaxed);
        if written.dropped_unapplied > 0 {
            Counters::add(&c.dropped_for_max_entries, written.dropped_unapplied);
            tracing::warn!(
                dropped = written.dropped_unapplied,
                oldest_kept = written.oldest,
                max_entries = shared.config.max_entries,
                max_bytes = shared.config.max_bytes,
                "journal over max_entries or max_bytes: dropped entries a lagging chassis has not applied; it needs a full resync"
            );
        }

        // Subscribers first, so that when `append` returns the entry is visible everywhere.
        for job in &plan.appends {
            if let Ok(entry) = &job.result {
                // No receivers is fine: appliers read the database when they start.
                let _ = shared.entries_tx.send(Arc::clone(entry));
            }
        }
        if self.last_seq != previous_last {
            shared.last_seq_tx.send_replace(self.last_seq);
        }
        plan.reply(Ok(TruncateReport { removed: written.removed, oldest_available: written.oldest }));
    }

    fn failed(&mut self, plan: Plan, error: rusqlite::Error, applied_dirty: bool) {
        let error = Arc::new(error);
        tracing::error!(%error, appends = plan.appends.len(), "journal commit failed; every request of the batch gets an error");
        Counters::add(&self.shared.counters.failed_commits, 1);
        if applied_dirty {
            self.shared.state.lock().applied_dirty = true;
        }
        self.schedule_flush(applied_dirty, true);
        plan.reply(Err(error));
    }

    /// Applied positions still unwritten are written by `flush_due`. After a failure the
    /// deadline restarts, so a broken disk is retried at that pace, not in a busy loop.
    fn schedule_flush(&mut self, dirty: bool, after_failure: bool) {
        let fresh = Instant::now() + self.shared.config.applied_flush_interval;
        self.flush_due = match (dirty, after_failure) {
            (false, _) => None,
            (true, true) => Some(fresh),
            (true, false) => Some(self.flush_due.unwrap_or(fresh)),
        };
    }
}

/// The lowest seq to keep so that what is stored after this batch, from `keep_from`
/// on, is at most `max_bytes` (never past the newest entry, which is always kept).
/// Amortised cost: the entries it decides to drop.
fn byte_floor(sizes: &VecDeque<(u64, u64)>, stored_bytes: u64, max_bytes: u64, plan: &Plan, keep_from: u64) -> u64 {
    let new = plan.appends.iter().filter_map(|j| j.result.as_ref().ok()).map(|e| (e.seq, e.stored_bytes()));
    let mut total = stored_bytes + new.clone().map(|(_, b)| b).sum::<u64>();
    let mut keep_from = keep_from;
    for (seq, bytes) in sizes.iter().copied().chain(new) {
        if seq < keep_from {
            total = total.saturating_sub(bytes);
        } else if total > max_bytes && seq < plan.last_seq {
            total = total.saturating_sub(bytes);
            keep_from = seq + 1;
        } else {
            break;
        }
    }
    keep_from
}

/// A request of a batch and its staged answer (`Ok` = to be written).
struct Job<T> {
    reply: Reply<T>,
    result: Result<T, JournalError>,
}

impl<T> Job<T> {
    /// Sends the staged answer, or, if the commit failed, the failure (keeping a
    /// request's own rejection, which did not depend on the commit).
    fn reply(self, commit: &Result<(), Arc<rusqlite::Error>>) {
        let answer = match (commit, self.result) {
            (Err(e), Ok(_)) => Err(JournalError::CommitFailed(Arc::clone(e))),
            (_, result) => result,
        };
        // The waiter may have gone away (its request was cancelled); that is fine.
        let _ = self.reply.send(answer);
    }
}

/// A client key whose request became entry `seq` in this batch.
struct KeyRow {
    account: String,
    key: String,
    fingerprint: String,
    seq: u64,
    token: u64,
}

struct Finish {
    account: String,
    key: String,
    response: ClientResponse,
    /// The key as taken in this process, if it was.
    pending: Option<Pending>,
    job: Job<()>,
}

/// A batch, staged.
struct Plan {
    /// The last seq once this batch is committed.
    last_seq: u64,
    next_id: Option<u64>,
    appends: Vec<Job<Arc<Entry>>>,
    key_rows: Vec<KeyRow>,
    floors: Vec<Job<u64>>,
    drops: Vec<(u64, Job<()>)>,
    truncates: Vec<Reply<TruncateReport>>,
    finishes: Vec<Finish>,
    /// Verified points to record (chassis index, point), and who waits for them.
    verified: Vec<(VerifiedRows, Reply<()>)>,
    /// ID map changes, and who waits for them.
    maps: Vec<(Vec<MapChange>, Reply<()>)>,
    /// Entries on their way (chassis index, seq), and who waits.
    sending: Vec<(usize, u64, Reply<()>)>,
}

/// What the transaction did besides the batch.
struct Written {
    oldest: u64,
    removed: u64,
    /// Entries deleted by the max_entries or max_bytes rule that some chassis had not
    /// applied.
    dropped_unapplied: u64,
}

impl Plan {
    fn new(last_seq: u64, next_id: Option<u64>) -> Plan {
        Plan {
            last_seq,
            next_id,
            appends: Vec::new(),
            key_rows: Vec::new(),
            floors: Vec::new(),
            drops: Vec::new(),
            truncates: Vec::new(),
            finishes: Vec::new(),
            verified: Vec::new(),
            maps: Vec::new(),
            sending: Vec::new(),
        }
    }

    fn stage_append(&mut self, draft: Draft, st: &State, shared: &Shared) -> Result<Arc<Entry>, JournalError> {
        let seq = self.last_seq + 1;
        // Sealed before anything is consumed, so a failure leaves no gap in the seqs.
        // (Under the state lock: the cipher runs at memory speed, microseconds for the
        // bodies that carry a password.)
        let (body, body_format) = if draft.seal_body {
            let sealed = shared.keys.seal_body(&shared.gateway_id, seq, &draft.body).map_err(|e| {
                tracing::error!(seq, "sealing a journal entry's body failed: {e}");
                JournalError::Seal(e)
            })?;
            (sealed, BodyFormat::Sealed)
        } else {
            (draft.body, BodyFormat::Plain)
        };
        let id_block = match u64::from(draft.id_block) {
            0 => None,
            wanted => {
                let next = self.next_id.ok_or(JournalError::IdFloorNotSet)?;
                // `next` < 2^53 always, so this cannot overflow.
                if next + wanted > MAX_ID {
                    return Err(JournalError::IdsExhausted { next, wanted });
                }
                self.next_id = Some(next + wanted);
                Some(IdBlock { base: next, count: wanted })
            }
        };
        self.last_seq = seq;
        let entry = Arc::new(Entry {
            seq,
            method: draft.method,
            path_and_query: draft.path_and_query,
            headers: draft.headers,
            body,
            body_format,
            id_block,
            account: draft.account,
            client_key: draft.client_key,
            epoch: Some(shared.incarnation),
        });
        if let Some(key) = &entry.client_key {
            // Only a key taken with begin_client_key is recorded: its fingerprint is
            // what a retry is compared with.
            if let Some(p) = st.pending.get(&(entry.account.clone(), key.clone())) {
                self.key_rows.push(KeyRow {
                    account: entry.account.clone(),
                    key: key.clone(),
                    fingerprint: p.fingerprint.clone(),
                    seq: entry.seq,
                    token: p.token,
                });
            }
        }
        Ok(entry)
    }

    fn reply(self, commit: Result<TruncateReport, Arc<rusqlite::Error>>) {
        let status = commit.as_ref().map(|_| ()).map_err(Arc::clone);
        for job in self.appends {
            job.reply(&status);
        }
        for job in self.floors {
            job.reply(&status);
        }
        for (_, job) in self.drops {
            job.reply(&status);
        }
        for f in self.finishes {
            f.job.reply(&status);
        }
        let waiters = self
            .verified
            .into_iter()
            .map(|(_, r)| r)
            .chain(self.maps.into_iter().map(|(_, r)| r))
            .chain(self.sending.into_iter().map(|(_, _, r)| r));
        for reply in waiters {
            let _ = reply.send(status.clone().map_err(JournalError::CommitFailed));
        }
        for reply in self.truncates {
            let _ = reply.send(commit.clone().map_err(JournalError::CommitFailed));
        }
    }
}
