//! Housekeeping while the gateway runs: the journal trimmed of what both
//! chassis applied, and the sessions' last activity persisted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::answers::Answers;
use crate::chassis::attempts::Attempts;
use crate::chassis::pair::Pair;
use crate::journal::Journal;
use crate::session::broker::Broker;
use crate::stats::Stats;

/// Runs for the gateway's life, every second: drop journal entries both
/// chassis applied (and enforce `max_entries` and `max_bytes`), and forget
/// the answer slots and attempts of those entries.
pub async fn trim_journal(journal: Journal, pair: Arc<Pair>, attempts: Arc<Attempts>, answers: Arc<Answers>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = journal.truncate().await {
            tracing::warn!("journal truncation: {e}");
        }
        let applied: Result<Vec<u64>, _> = pair.members.iter().map(|m| journal.applied(&m.upstream.name)).collect();
        match applied {
            Ok(a) => {
                let both = a.into_iter().min().unwrap_or(0);
                attempts.forget_through(both);
                answers.forget_through(both);
            }
            Err(e) => tracing::error!("reading the applied positions: {e}"),
        }
    }
}

/// Runs for the gateway's life, every 30 s: persist sessions' last activity
/// (the store writes it lazily). The gateway flushes once more when it stops.
pub async fn flush_sessions(broker: Arc<Broker>, stats: Arc<Stats>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        flush_once(&broker, &stats).await;
    }
}

/// One flush of the session store; a failure is logged and counted (status
/// `store_errors`), and the next flush writes what this one could not.
pub async fn flush_once(broker: &Arc<Broker>, stats: &Stats) {
    let b = broker.clone();
    let failed = match tokio::task::spawn_blocking(move || b.store.flush()).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("the flush task: {e}"),
    };
    stats.store_errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!("persisting the sessions' last activity: {failed}");
}
