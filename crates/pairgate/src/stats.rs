//! The gateway's counters, for the status page (`status.rs`); every part
//! that counts something holds an `Arc` of them.

use std::sync::atomic::AtomicU64;

/// Counters for the status page.
#[derive(Default)]
pub struct Stats {
    pub divergences: AtomicU64,
    /// Writes to the session store that failed (logged at error level).
    pub store_errors: AtomicU64,
    pub mutations: AtomicU64,
    /// Client reads answered or refused (each client's, shared or not).
    pub reads: AtomicU64,
    /// Client reads answered with an identical read's chassis request
    /// (`coalesce.rs`): `reads` minus these were sent.
    pub coalesced_reads: AtomicU64,
    pub failed_reads: AtomicU64,
}
