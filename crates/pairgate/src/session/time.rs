//! Wall-clock milliseconds, the session store's one time unit.
//!
//! Session times are persisted and must mean the same after a gateway restart, so
//! they are wall-clock (Unix epoch) rather than `Instant`s; milliseconds so that a
//! short idle timeout in a test is exact. A clock before 1970 reads as 0 instead of
//! failing: every session then looks old, which errs on the side of logging in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(duration_ms).unwrap_or(0)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Epoch milliseconds as a `SystemTime`.
pub(crate) fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
