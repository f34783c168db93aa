//! The pair: both chassis, their detectors, and which one is primary.
//!
//! Primary rules (DESIGN.md): only an `in_sync` chassis is primary; the
//! preferred one when both are in sync and no primary has been chosen yet;
//! otherwise the current primary stays primary while it is in sync — there
//! is no automatic failback, so a flapping chassis cannot flap the room.

use std::sync::{Arc, Mutex};

use crate::detector::{ChassisState, DetectorHandle};
use crate::upstream::Upstream;

/// One chassis: how to reach it, and what we believe about it.
pub struct Member {
    pub index: usize,
    pub upstream: Arc<Upstream>,
    pub detector: DetectorHandle,
    /// Why the last health probe failed (a refused certificate says so), for the status page.
    pub last_error: Arc<Mutex<Option<String>>>,
    /// A full resync asked for (divergence, admin, anti-entropy, pairing).
    pub resync: Arc<crate::resync::ResyncFlag>,
    /// Full resyncs completed (imported) since the gateway started.
    pub resyncs_done: Arc<std::sync::atomic::AtomicU64>,
    /// Attempts of full resyncs that failed (and were retried) since start.
    pub resyncs_failed: Arc<std::sync::atomic::AtomicU64>,
    /// Attempts made of the resync under way (0 when none is).
    pub resync_attempt: Arc<std::sync::atomic::AtomicU64>,
}

pub struct Pair {
    pub members: [Member; 2],
    preferred: usize,
    primary: Mutex<Option<usize>>,
}

impl Pair {
    pub fn new(members: [Member; 2], preferred: usize) -> Pair {
        Pair { members, preferred: preferred.min(1), primary: Mutex::new(None) }
    }

    pub fn other(i: usize) -> usize {
        1 - i
    }

    pub fn state(&self, i: usize) -> ChassisState {
        self.members[i].detector.state()
    }

    /// The chassis that answers reads and whose answer a mutation returns, if
    /// any is in sync. Re-evaluated on every call from the detectors' states.
    pub fn primary(&self) -> Option<usize> {
        let mut p = self.primary.lock().unwrap_or_else(|e| e.into_inner());
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
            if next.is_some() {
                *p = next;
            }
        }
        next
    }

    /// Make `i` primary (admin action, or after a failover decided by a request).
    pub fn set_primary(&self, i: usize) {
        *self.primary.lock().unwrap_or_else(|e| e.into_inner()) = Some(i.min(1));
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
