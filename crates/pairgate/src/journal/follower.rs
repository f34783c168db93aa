//! [`Follower`]: the journal in seq order, from any point, for one applier.
//!
//! An applier wants every live entry after the last one its chassis applied, then
//! each new one as soon as it is committed, without ever missing one. The live
//! broadcast alone cannot promise that (it holds a bounded number of entries; an
//! applier stalled on a slow chassis falls off its end), and the database alone
//! would poll. The follower uses both: it subscribes first, then serves
//! - from the database, whenever it is behind what has been committed (at start,
//!   after a broadcast lag, after a gap), in batches read on a blocking thread;
//! - from the broadcast otherwise, sharing the `Arc<Entry>` the sequencer made.
//!
//! Entries at or below its position are discarded, so the two sources never yield an
//! entry twice; void entries (`drop_entry`) are skipped. When the entries it needs
//! were dropped by the `max_entries` or `max_bytes` rule it fails with
//! [`JournalError::Truncated`]: the chassis needs a full resync, after which a new
//! follower starts from the resync's seq.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::entry::Entry;
use super::{Journal, JournalError};

/// Entries read from the database at a time.
const FILL_BATCH: usize = 256;

pub struct Follower {
    journal: Journal,
    rx: broadcast::Receiver<Arc<Entry>>,
    /// The next seq wanted.
    next: u64,
    /// Entries read from the database, not yet returned.
    buf: VecDeque<Arc<Entry>>,
    /// When set, the last database read covered everything up to this seq (what it
    /// did not return was void), so `next` moves past it once `buf` is drained.
    covered: Option<u64>,
}

impl Follower {
    pub(crate) fn new(journal: Journal, after_seq: u64) -> Follower {
        // Subscribe before anything is read, so nothing committed later is missed.
        let rx = journal.shared().entries_tx.subscribe();
        Follower { journal, rx, next: after_seq + 1, buf: VecDeque::new(), covered: None }
    }

    /// The last seq returned or skipped: everything up to it has been seen.
    pub fn position(&self) -> u64 {
        self.next - 1
    }

    /// The next live entry, waiting for it to be committed if need be.
    ///
    /// Cancel-safe (usable in `select!`): nothing is consumed until an entry is
    /// returned; an entry taken off the broadcast by a cancelled call is read back from
    /// the database by the next one.
    pub async fn next(&mut self) -> Result<Arc<Entry>, JournalError> {
        loop {
            if let Some(e) = self.take_buffered() {
                return Ok(e);
            }
            let received = match self.rx.try_recv() {
                Ok(e) => Some(e),
                Err(TryRecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, at = self.next, "journal follower lagged behind the broadcast; reading the database");
                    None
                }
                Err(TryRecvError::Closed) => return Err(JournalError::Closed),
                Err(TryRecvError::Empty) if self.journal.last_seq() >= self.next => None,
                Err(TryRecvError::Empty) => match self.rx.recv().await {
                    Ok(e) => Some(e),
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return Err(JournalError::Closed),
                },
            };
            match received {
                Some(e) if e.seq < self.next => continue,
                Some(e) if e.seq == self.next => {
                    self.next += 1;
                    if self.journal.is_void(e.seq) {
                        continue;
                    }
                    return Ok(e);
                }
                // A gap (entries committed before we subscribed) or a lag: the database
                // has everything committed, including `e`.
                _ => self.fill().await?,
            }
        }
    }

    fn take_buffered(&mut self) -> Option<Arc<Entry>> {
        while let Some(e) = self.buf.pop_front() {
            if e.seq < self.next {
                continue;
            }
            self.next = e.seq + 1;
            if self.journal.is_void(e.seq) {
                continue;
            }
            return Some(e);
        }
        if let Some(upto) = self.covered.take() {
            self.next = self.next.max(upto + 1);
        }
        None
    }

    async fn fill(&mut self) -> Result<(), JournalError> {
        self.check_kept()?;
        let last = self.journal.last_seq();
        let journal = self.journal.clone();
        let after = self.next - 1;
        let got =
            tokio::task::spawn_blocking(move || journal.entries_after(after, FILL_BATCH)).await.map_err(|_| JournalError::Closed)??;
        // Truncation only ever removes the lowest seqs: if `next` is still kept now, the
        // read above saw everything from `next` on (what it skipped was void).
        self.check_kept()?;
        if got.len() < FILL_BATCH {
            self.covered = Some(last);
        }
        self.buf.extend(got);
        Ok(())
    }

    fn check_kept(&self) -> Result<(), JournalError> {
        let oldest = self.journal.oldest_available();
        if self.next < oldest {
            return Err(JournalError::Truncated { wanted: self.next, oldest });
        }
        Ok(())
    }
}
