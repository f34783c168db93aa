//! One clock for the whole campaign: every record (requests, faults) is a
//! number of microseconds since the campaign started, so that a failed read
//! can be compared with the fault windows and operations can be ordered for
//! the linearizability check. Monotonic (`Instant`), never the wall clock.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    t0: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { t0: Instant::now() }
    }

    /// Microseconds since the start.
    pub fn now_us(&self) -> i64 {
        i64::try_from(self.t0.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    pub fn instant_at(&self, us: i64) -> Instant {
        self.t0 + Duration::from_micros(us.max(0) as u64)
    }
}

/// `12.345s` for a microsecond timestamp, as schedules and reports print it.
pub fn secs(us: i64) -> String {
    format!("{:.3}s", us as f64 / 1e6)
}
