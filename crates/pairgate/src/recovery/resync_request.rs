//! A request to rebuild one chassis with a full resync, and why: set by
//! whoever finds the chassis diverged (the answer table, anti-entropy, an
//! applier, an operator), taken by that chassis' applier.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::sync::Notify;

/// Why a chassis is resynced (for logs and the status page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    DigestMismatch,
    Divergence,
    JournalTruncated,
    Requested,
    InitialPairing,
    /// An entry's outcome on a chassis that cannot recognise a repeat (no
    /// `Idempotency-Key`) is unknown: never resent blindly, the chassis is
    /// rebuilt instead.
    UnknownOutcome,
}

/// A pending request to resync one chassis.
#[derive(Default)]
pub struct ResyncFlag {
    requested: AtomicBool,
    /// Why (a lock that cannot be poisoned: nothing is lost to a panic elsewhere).
    reason: parking_lot::Mutex<Option<Reason>>,
    pub wake: Notify,
}

impl ResyncFlag {
    pub fn request(&self, reason: Reason) {
        *self.reason.lock() = Some(reason);
        self.requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether a request waits to be taken.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Take the request, if any.
    pub fn take(&self) -> Option<Reason> {
        if self.requested.swap(false, Ordering::SeqCst) {
            Some(self.reason.lock().take().unwrap_or(Reason::Requested))
        } else {
            None
        }
    }
}

/// What each chassis stands at when one waits to be rebuilt for an entry
/// whose outcome on it is unknown (firmware without `Idempotency-Key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standoff {
    /// Each chassis' applied position in the journal.
    pub applied: [u64; 2],
    /// Each chassis' entry of unknown outcome it waits to be rebuilt for (0: none).
    pub unknown: [u64; 2],
    /// Whether each chassis' applier is inside a full resync (waiting for
    /// its source or rebuilding): it sends that chassis nothing meanwhile.
    pub rebuilding: [bool; 2],
    /// The chassis preferred as primary.
    pub preferred: usize,
}

impl Standoff {
    /// Whether chassis `me` keeps its state as it is, its entry of unknown
    /// outcome counted as applied, instead of waiting to be rebuilt: only
    /// when the other waits to be rebuilt too (neither could ever be the
    /// other's source), nobody decided that entry (so no client was told it
    /// happened: whichever state is kept loses nothing acknowledged), and
    /// either the other may not keep its own (its entry was decided here) or
    /// `me` applied more of the journal (a tie: the preferred one). The other
    /// is then rebuilt from it. Both sides decide alike from the same facts.
    pub fn keeps_its_state(&self, me: usize) -> bool {
        let peer = 1 - me.min(1);
        let me = me.min(1);
        let waits = |i: usize| self.unknown[i] != 0 && self.rebuilding[i];
        // Nobody decided `i`'s entry, and nobody can now (both are parked).
        let may_keep = |i: usize| waits(0) && waits(1) && self.applied[1 - i] < self.unknown[i];
        let wins = self.applied[me] > self.applied[peer] || (self.applied[me] == self.applied[peer] && me == self.preferred);
        may_keep(me) && (!may_keep(peer) || wins)
    }
}

#[cfg(test)]
mod tests {
    use super::Standoff;

    fn standoff(applied: [u64; 2], unknown: [u64; 2]) -> Standoff {
        Standoff { applied, unknown, rebuilding: [true, true], preferred: 0 }
    }

    #[test]
    fn the_same_entry_unknown_on_both_the_preferred_keeps_its_state() {
        let s = standoff([4, 4], [5, 5]);
        assert!(s.keeps_its_state(0));
        assert!(!s.keeps_its_state(1), "exactly one keeps its state");
        let s = Standoff { preferred: 1, ..s };
        assert!(s.keeps_its_state(1) && !s.keeps_its_state(0));
    }

    #[test]
    fn the_one_that_applied_more_keeps_its_state_whoever_is_preferred() {
        // b decided entry 5; its outcome on a is unknown, and 6 on b.
        let s = standoff([4, 5], [5, 6]);
        assert!(s.keeps_its_state(1));
        assert!(!s.keeps_its_state(0));
    }

    #[test]
    fn an_entry_the_other_decided_is_never_given_up() {
        // a's unknown entry 5 was decided by b (it may have been answered to
        // a client): a waits for b, whatever the counts say.
        let s = Standoff { applied: [4, 5], unknown: [5, 0], rebuilding: [true, false], preferred: 0 };
        assert!(!s.keeps_its_state(0));
    }

    #[test]
    fn one_whose_entry_the_other_decided_leaves_the_keeping_to_the_other_even_if_preferred() {
        // a counted entry 5 as applied (b decided it) and waits for a
        // comparison; b's 7 is unknown, a decided up to 6 like b.
        let s = standoff([6, 6], [5, 7]);
        assert!(!s.keeps_its_state(0), "b decided a's entry: a may not keep its state");
        assert!(s.keeps_its_state(1), "else both would wait for good");
    }

    #[test]
    fn a_peer_that_is_only_down_or_not_waiting_is_waited_for() {
        let down = Standoff { applied: [4, 4], unknown: [5, 0], rebuilding: [true, false], preferred: 0 };
        assert!(!down.keeps_its_state(0), "a peer down without an unknown outcome comes back and is the source");
        let not_rebuilding = Standoff { rebuilding: [true, false], ..standoff([4, 4], [5, 5]) };
        assert!(!not_rebuilding.keeps_its_state(0));
        let nothing_unknown = standoff([4, 4], [0, 5]);
        assert!(!nothing_unknown.keeps_its_state(0), "a chassis not waiting for an unknown outcome has nothing to keep");
    }
}
