//! What the appliers are doing with each journal entry right now, as far as the
//! answer table and the other applier need to know:
//!
//! - **on the wire**: an applier *claims* an entry right before it sends it and
//!   releases the claim when the attempt's outcome is known. The answer table
//!   may void an entry (both chassis refused the connection: `not_applied`)
//!   only while nobody holds a claim, and once it is voided no claim is given:
//!   an entry the client was told was not applied is never sent afterwards.
//! - **accepted**: the first decided status each chassis gave an entry. A
//!   replay whose account can no longer log in may run as the gateway's
//!   service account only if the other chassis already accepted (2xx) that
//!   very entry from the account itself (invariant 1).
//!
//! In memory: after a gateway restart nothing is on the wire, and an entry
//! whose acceptance was forgotten is decided on its own merits (its account's
//! login); anti-entropy then catches a difference.

use parking_lot::{Mutex, MutexGuard};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Default)]
struct Inner {
    /// Attempts on the wire, per entry and chassis.
    sending: HashMap<u64, [usize; 2]>,
    voided: HashSet<u64>,
    accepted: BTreeMap<u64, [Option<u16>; 2]>,
}

/// Shared by both appliers and the request path.
#[derive(Default)]
pub struct Attempts {
    inner: Mutex<Inner>,
}

/// An entry on the wire; released on drop.
pub struct Claim<'a> {
    attempts: &'a Attempts,
    seq: u64,
    chassis: usize,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut inner = self.attempts.lock();
        if let Some(n) = inner.sending.get_mut(&self.seq) {
            n[self.chassis] = n[self.chassis].saturating_sub(1);
            if *n == [0, 0] {
                inner.sending.remove(&self.seq);
            }
        }
    }
}

impl Attempts {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Claim `seq` for one attempt to chassis `chassis`, unless it is voided
    /// (here, or durably: `void_in_journal`).
    pub fn claim(&self, seq: u64, chassis: usize, void_in_journal: bool) -> Option<Claim<'_>> {
        let mut inner = self.lock();
        if void_in_journal || inner.voided.contains(&seq) {
            return None;
        }
        let chassis = chassis.min(1);
        inner.sending.entry(seq).or_default()[chassis] += 1;
        Some(Claim { attempts: self, seq, chassis })
    }

    /// Whether an attempt of `seq` to chassis `chassis` is on the wire now.
    pub fn on_the_wire(&self, seq: u64, chassis: usize) -> bool {
        self.lock().sending.get(&seq).is_some_and(|n| n[chassis.min(1)] > 0)
    }

    /// Void `seq` if no attempt is on the wire. After `true`, no claim is
    /// given; the caller then voids it in the journal, and calls
    /// [`Attempts::unvoid`] if that fails.
    pub fn try_void(&self, seq: u64) -> bool {
        let mut inner = self.lock();
        if inner.sending.contains_key(&seq) {
            return false;
        }
        inner.voided.insert(seq);
        true
    }

    /// The journal could not void it: it may be sent again (its answer is then
    /// `outcome_unknown`, never `not_applied`).
    pub fn unvoid(&self, seq: u64) {
        self.lock().voided.remove(&seq);
    }

    /// Whether `seq` was voided here.
    pub fn is_voided(&self, seq: u64) -> bool {
        self.lock().voided.contains(&seq)
    }

    /// Chassis `chassis` decided `seq` with `status` (the first decision counts).
    pub fn record_decided(&self, seq: u64, chassis: usize, status: u16) {
        let mut inner = self.lock();
        let slot = &mut inner.accepted.entry(seq).or_default()[chassis.min(1)];
        if slot.is_none() {
            *slot = Some(status);
        }
    }

    /// The status chassis `chassis` first decided `seq` with, if it did.
    pub fn decided(&self, seq: u64, chassis: usize) -> Option<u16> {
        self.lock().accepted.get(&seq).and_then(|s| s[chassis.min(1)])
    }

    /// Whether the other chassis accepted (2xx) `seq`.
    pub fn accepted_by_other(&self, seq: u64, chassis: usize) -> bool {
        let other = 1 - chassis.min(1);
        self.lock().accepted.get(&seq).and_then(|s| s[other]).is_some_and(|st| (200..300).contains(&st))
    }

    /// Forget what concerns entries up to `seq` (both chassis applied them).
    pub fn forget_through(&self, seq: u64) {
        let mut inner = self.lock();
        inner.accepted = inner.accepted.split_off(&(seq + 1));
        inner.voided.retain(|s| *s > seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voided_entry_gets_no_claim_and_a_claimed_one_cannot_be_voided() {
        let a = Attempts::default();
        let claim = a.claim(7, 1, false).expect("free");
        assert!(!a.try_void(7), "on the wire: not voidable");
        assert!(a.on_the_wire(7, 1) && !a.on_the_wire(7, 0), "on its way to chassis 1 only");
        drop(claim);
        assert!(!a.on_the_wire(7, 1));
        assert!(a.try_void(7));
        assert!(a.claim(7, 0, false).is_none(), "voided: never sent again");
        a.unvoid(7);
        assert!(a.claim(7, 0, false).is_some());
        assert!(a.claim(8, 0, true).is_none(), "void in the journal");
    }

    #[test]
    fn acceptance_is_per_chassis_and_first_decision_wins() {
        let a = Attempts::default();
        assert!(!a.accepted_by_other(3, 1));
        a.record_decided(3, 0, 403);
        a.record_decided(3, 0, 201);
        assert!(!a.accepted_by_other(3, 1), "the first decision (403) counts");
        a.record_decided(4, 0, 201);
        assert!(a.accepted_by_other(4, 1));
        assert!(!a.accepted_by_other(4, 0), "not by itself");
        a.forget_through(4);
        assert!(!a.accepted_by_other(4, 1));
    }
}
