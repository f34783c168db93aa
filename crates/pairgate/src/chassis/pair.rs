//! The pair: both chassis, their detectors, and which one is primary.
//!
//! Primary rules (docs/design.md): only an `in_sync` chassis is primary; the
//! preferred one when both are in sync and no primary has been chosen yet;
//! otherwise the current primary stays primary while it is in sync — there
//! is no automatic failback, so a flapping chassis cannot flap the room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::chassis::detector::{ChassisState, DetectorHandle};
use crate::chassis::upstream::Upstream;

/// One chassis: how to reach it, and what we believe about it.
pub struct Member {
    pub index: usize,
    pub upstream: Arc<Upstream>,
    pub detector: DetectorHandle,
    /// Why the last health probe failed (a refused certificate says so), for the status page.
    pub last_error: Arc<Mutex<Option<String>>>,
    /// A full resync asked for (divergence, admin, anti-entropy, pairing).
    pub resync: Arc<crate::recovery::resync_request::ResyncFlag>,
    /// Full resyncs completed (imported) since the gateway started.
    pub resyncs_done: Arc<std::sync::atomic::AtomicU64>,
    /// Attempts of full resyncs that failed (and were retried) since start.
    pub resyncs_failed: Arc<std::sync::atomic::AtomicU64>,
    /// Attempts made of the resync under way (0 when none is).
    pub resync_attempt: Arc<std::sync::atomic::AtomicU64>,
    /// The entry whose outcome here is unknown and that this chassis waits to
    /// be rebuilt for (firmware without `Idempotency-Key`); 0: none.
    pub unknown_outcome: Arc<AtomicU64>,
    /// The most journal entries on their way to it at once since the
    /// gateway started (its applier's window; 1 when sent one at a time).
    pub most_in_flight: Arc<AtomicU64>,
    /// Its applier is inside a full resync (waiting for its source, or
    /// rebuilding): it sends this chassis no entry meanwhile.
    pub rebuilding: Arc<std::sync::atomic::AtomicBool>,
    /// Taken out for maintenance by an operator (`POST /_pairgate/maintenance`).
    pub maintenance: std::sync::atomic::AtomicBool,
    /// What its firmware offers, once known (`recovery/discovery.rs`).
    pub features: Mutex<Option<crate::chassis::features::Discovered>>,
}

pub struct Pair {
    pub members: [Member; 2],
    preferred: usize,
    /// The chosen primary; kept while none serves (see [`Pair::primary`]).
    primary: Mutex<Option<usize>>,
    /// Times the primary moved from one chassis to the other, whatever moved
    /// it (a failed request, a detector, an operator, maintenance).
    failovers: AtomicU64,
    /// Per chassis, the highest journal seq whose effect a client may have
    /// seen through it: every entry committed when it answered a read, and
    /// every mutation answered with its answer. A read from the *other*
    /// chassis waits until that one has applied this far ([`Pair::must_have`]):
    /// a read that fails over never shows less than one before it showed.
    shown: [AtomicU64; 2],
}

impl Pair {
    pub fn new(members: [Member; 2], preferred: usize) -> Pair {
        Pair { members, preferred: preferred.min(1), primary: Mutex::new(None), failovers: AtomicU64::new(0), shown: Default::default() }
    }

    pub fn other(i: usize) -> usize {
        1 - i
    }

    /// Whether chassis `i` works with translated IDs (its firmware cannot be
    /// given the IDs clients see: no `id_block`, or caught not honouring
    /// it); `None` until its features are known.
    pub fn translated(&self, i: usize) -> Option<bool> {
        self.members[i].features.lock().as_ref().map(|d| !d.has(crate::chassis::features::Feature::IdBlock))
    }

    pub fn state(&self, i: usize) -> ChassisState {
        self.members[i].detector.state()
    }

    /// The chassis that answers reads and whose answer a mutation returns, if
    /// any is in sync. Re-evaluated on every call from the detectors' states.
    pub fn primary(&self) -> Option<usize> {
        let mut p = self.primary.lock();
        let serving = |i: usize| self.state(i).serves();
        let next = match *p {
            Some(cur) if serving(cur) => Some(cur),
            Some(cur) if serving(Self::other(cur)) => Some(Self::other(cur)),
            None if serving(self.preferred) => Some(self.preferred),
            None if serving(Self::other(self.preferred)) => Some(Self::other(self.preferred)),
            _ => None,
        };
        if next != *p {
            match (*p, next) {
                (Some(_), Some(n)) => tracing::warn!(primary = %self.members[n].upstream.name, "primary chassis changed"),
                (None, Some(n)) => tracing::info!(primary = %self.members[n].upstream.name, "primary chassis chosen"),
                _ => {}
            }
            // Keep the last primary while none serves, so that the one that
            // comes back first does not override a still-valid choice.
            if let Some(n) = next {
                self.moved(*p, n);
                *p = next;
            }
        }
        next
    }

    /// The primary as last decided, without deciding again (what
    /// [`Pair::primary`] does, and records): for watchers, which must not
    /// change the pair by looking at it.
    pub fn last_primary(&self) -> Option<usize> {
        *self.primary.lock()
    }

    /// Make `i` primary (admin action, or after a failover decided by a request).
    pub fn set_primary(&self, i: usize) {
        let mut p = self.primary.lock();
        self.moved(*p, i.min(1));
        *p = Some(i.min(1));
    }

    /// Count a move of the primary from `from` to `to` (the first choice is none).
    fn moved(&self, from: Option<usize>, to: usize) {
        if from.is_some_and(|f| f != to) {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Times the primary moved from one chassis to the other since start.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// The chassis preferred as primary (`gateway.toml`).
    pub fn preferred(&self) -> usize {
        self.preferred
    }

    /// Chassis `i` answered a client at a moment when the journal ended at
    /// `seq`, or with the answer of entry `seq`: what it showed may hold any
    /// entry up to `seq`.
    pub fn showed(&self, i: usize, seq: u64) {
        self.shown[i.min(1)].fetch_max(seq, Ordering::AcqRel);
    }

    /// How far chassis `i` must have applied the journal before it answers a
    /// read: as far as anything the other chassis showed a client (its own
    /// answers never go back: one chassis' state only moves forward).
    pub fn must_have(&self, i: usize) -> u64 {
        self.shown[Self::other(i.min(1))].load(Ordering::Acquire)
    }

    /// The order to try chassis in for a read: primary first, then the other
    /// one if it is in sync too.
    pub fn read_order(&self) -> Vec<usize> {
        match self.primary() {
            Some(p) if self.state(Self::other(p)).serves() => vec![p, Self::other(p)],
            Some(p) => vec![p],
            None => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chassis::detector::ChassisState::{Down, InSync};

    fn pair() -> (Pair, [tokio::sync::watch::Sender<ChassisState>; 2]) {
        let member = |index: usize, name: &str| {
            let (detector, state) = DetectorHandle::fixed(name, InSync);
            let url = crate::config::ChassisUrl::parse("http://127.0.0.1:1").unwrap();
            let upstream = Arc::new(Upstream::new(name, url, None, std::time::Duration::from_secs(1)).unwrap());
            let m = Member {
                index,
                upstream,
                detector,
                last_error: Arc::default(),
                resync: Arc::default(),
                resyncs_done: Arc::default(),
                resyncs_failed: Arc::default(),
                resync_attempt: Arc::default(),
                unknown_outcome: Arc::default(),
                most_in_flight: Arc::default(),
                rebuilding: Arc::default(),
                maintenance: Default::default(),
                features: Default::default(),
            };
            (m, state)
        };
        let ((a, sa), (b, sb)) = (member(0, "a"), member(1, "b"));
        (Pair::new([a, b], 0), [sa, sb])
    }

    #[test]
    fn every_move_of_the_primary_counts_as_a_failover_whatever_moved_it() {
        let (pair, states) = pair();
        assert_eq!(pair.primary(), Some(0), "the preferred one first");
        assert_eq!(pair.failovers(), 0, "the first choice is no failover");
        // The primary's detector says down: the next look moves it.
        states[0].send_replace(Down);
        assert_eq!(pair.primary(), Some(1));
        assert_eq!(pair.failovers(), 1);
        // Back in sync: no automatic failback, nothing counted.
        states[0].send_replace(InSync);
        assert_eq!(pair.primary(), Some(1));
        assert_eq!(pair.failovers(), 1);
        // An operator (or a request's failover) moves it; the same choice again does not count.
        pair.set_primary(0);
        pair.set_primary(0);
        assert_eq!(pair.failovers(), 2);
        // Both down, then the other one back first: the last primary was 0, so that is a move.
        states[0].send_replace(Down);
        states[1].send_replace(Down);
        assert_eq!(pair.primary(), None);
        states[1].send_replace(InSync);
        assert_eq!(pair.primary(), Some(1));
        assert_eq!(pair.failovers(), 3);
    }
}
