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

    /// Take the request, if any.
    pub fn take(&self) -> Option<Reason> {
        if self.requested.swap(false, Ordering::SeqCst) {
            Some(self.reason.lock().take().unwrap_or(Reason::Requested))
        } else {
            None
        }
    }
}
