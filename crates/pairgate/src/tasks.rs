//! The gateway's background tasks, tracked: every one is told to stop and
//! every one is awaited when the gateway stops (mini-redis's server is the
//! model). Appliers, detectors, health probes, pairing, anti-entropy, the
//! journal's trimming, the session flush and the events hubs all run here.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where background tasks are spawned. Cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Run `task` until it ends or the gateway stops; told to stop, it is
    /// dropped at its next await (every task here may be: what it was doing
    /// is in the journal and is taken up at the next start).
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => tracing::trace!(task = name, "stopped"),
                _ = task => tracing::trace!(task = name, "ended"),
            }
        });
    }

    /// Whether the gateway is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Tell every task to stop and wait for all of them, at most `limit`.
    /// Returns how many had not ended by then (0 when all did).
    pub async fn stop(&self, limit: Duration) -> usize {
        self.tracker.close();
        self.stop.cancel();
        match tokio::time::timeout(limit, self.tracker.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tracker.len(),
        }
    }

    /// How many tasks run now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_tells_every_task_and_waits_for_each() {
        let tasks = Tasks::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        for _ in 0..3 {
            tasks.spawn("forever", std::future::pending());
        }
        // A task holding a sender: when it is dropped, the sender goes with it.
        tasks.spawn("holder", async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        tasks.spawn("short", async {});
        tokio::task::yield_now().await;
        assert_eq!(tasks.len(), 4, "the short one ended by itself");
        assert_eq!(tasks.stop(Duration::from_secs(1)).await, 0);
        assert!(tasks.is_empty());
        assert!(rx.recv().await.is_none(), "every task was dropped, with what it held");
        assert!(tasks.stopping());
    }
}
