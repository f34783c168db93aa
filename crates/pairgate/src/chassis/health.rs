//! Health probes: every `health_interval`, `GET /api/v1/system/health` on each
//! chassis, reported to its detector. A refused connection is reported as
//! such (the detector marks the chassis down at once); a timeout or a 5xx as
//! a failure (down after `down_after` without a good probe).

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use reqwest::Method;

use crate::chassis::detector::{DetectorHandle, Signal};
use crate::chassis::upstream::{Outcome, Upstream};

/// Runs for the gateway's life (a task in [`crate::tasks::Tasks`]): one
/// probe every `interval`, reported to the chassis' detector; the last
/// failure kept in `last_error` for the status page.
pub async fn probe(upstream: Arc<Upstream>, detector: DetectorHandle, last_error: Arc<Mutex<Option<String>>>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A probe may take at most one interval, so a hung chassis keeps
        // being reported as failing at the probe rate.
        let outcome = upstream.json(Method::GET, "/api/v1/system/health", None, None, interval).await;
        let signal = match &outcome {
            Outcome::Answered(a) if a.status == 200 => Signal::ProbeOk,
            Outcome::Refused(_) => Signal::Refused,
            _ => Signal::Failed,
        };
        let error = (signal != Signal::ProbeOk).then(|| outcome.describe());
        let mut last = last_error.lock();
        if error.is_some() && *last != error {
            tracing::warn!(chassis = %upstream.name, "health probe: {}", outcome.describe());
        }
        *last = error;
        drop(last);
        detector.signal(signal);
    }
}
