//! Anti-entropy: while both chassis are in sync, compare their digests now
//! and then; a difference (a change behind the gateway's back) rebuilds the
//! chassis that left its last verified state, or the secondary if that
//! cannot be shown ([`MismatchTarget`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::chassis::pair::Pair;
use crate::config::Collection;
use crate::journal::Journal;
use crate::recovery::pairing::PairingState;
use crate::recovery::resync::{MismatchTarget, Reason, Resyncer, WriteGate};
use crate::session::broker::Broker;
use crate::stats::Stats;

/// How often anti-entropy compares digests while both chassis are in sync:
/// every 20 health probes (10 s with the default 500 ms). Each check holds
/// new mutations for the few milliseconds two digests take.
pub fn every(health_interval: Duration) -> Duration {
    health_interval * 20
}

/// What anti-entropy works with.
pub struct AntiEntropy {
    pub gate: WriteGate,
    pub journal: Journal,
    pub broker: Arc<Broker>,
    pub pair: Arc<Pair>,
    pub pairing: Arc<PairingState>,
    pub stats: Arc<Stats>,
    pub per_try: Duration,
    pub every: Duration,
    /// What to compare when a chassis has no `/system/digest`.
    pub collections: Arc<[Collection]>,
    pub translator: Arc<crate::ids::translator::Translator>,
}

impl AntiEntropy {
    fn resyncer(&self) -> Resyncer<'_> {
        Resyncer {
            gate: &self.gate,
            journal: &self.journal,
            broker: &self.broker,
            pair: &self.pair,
            per_try: self.per_try,
            collections: &self.collections,
            translator: &self.translator,
        }
    }

    /// Runs for the gateway's life: one check every [`every`], skipped while
    /// a chassis is not in sync or the pair not paired.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let both = (0..2).all(|i| self.pair.state(i).serves());
            let Some(primary) = self.pair.primary() else { continue };
            if !both || !self.pairing.lets_join() {
                continue;
            }
            match self.resyncer().verify(None).await {
                Ok(v) if v.equal() => {}
                Ok(verdict) => {
                    self.stats.divergences.fetch_add(1, Ordering::Relaxed);
                    let target = MismatchTarget::decide(self.resyncer().references(&verdict), primary);
                    let name = &self.pair.members[target.chassis()].upstream.name;
                    match target {
                        MismatchTarget::Diverged(_) => tracing::error!(
                            chassis = %name, seq = verdict.seq,
                            "anti-entropy: digests differ and only this chassis left its last verified state (changed behind the gateway's back); rebuilding it"
                        ),
                        MismatchTarget::Secondary(_) => tracing::error!(
                            chassis = %name, seq = verdict.seq,
                            "anti-entropy: digests differ and mutations were applied since the last verified point, so which one was changed cannot be shown; rebuilding the secondary from the primary"
                        ),
                    }
                    self.pair.members[target.chassis()].resync.request(Reason::DigestMismatch);
                }
                Err(e) => tracing::debug!("anti-entropy check skipped: {e}"),
            }
        }
    }
}
