//! Answer slots: where each chassis' applier leaves what it got for one
//! journal entry, and where the request that made the entry waits for it.
//!
//! One slot per seq, two places in it (one per chassis). The applier fills
//! its place ([`Answers::fill`]); the request reads both with a deadline
//! ([`Slot::wait`]) and hands the pair to the answer table
//! ([`crate::verdict`]). A slot is made by whichever comes first, the
//! request or a report, so nothing can be missed however the two race; the
//! request removes it once answered ([`Answers::done`]), and slots nobody
//! waits for (replays after a restart, a late secondary's report) are dropped
//! once both chassis applied them ([`Answers::forget_through`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::chassis::upstream::Outcome;

/// What the two chassis reported for one seq (`None`: nothing yet).
pub type Reported = [Option<Outcome>; 2];

/// The slot of one seq.
pub struct Slot {
    reported: watch::Sender<Reported>,
}

impl Slot {
    fn new() -> Slot {
        Slot { reported: watch::Sender::new([None, None]) }
    }

    /// Wait until `done` holds for what was reported, or `deadline`; return
    /// what was reported by then.
    pub async fn wait(&self, done: impl Fn(&Reported) -> bool, deadline: tokio::time::Instant) -> Reported {
        let mut rx = self.reported.subscribe();
        // `wait_for` checks the current value first, so a report made before
        // this call counts.
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|r| done(r))).await;
        let now = rx.borrow().clone();
        now
    }

    /// [`Slot::wait`], or less: also over as soon as `gone` completes (the
    /// chassis waited for went down: it is sent nothing while down, so it
    /// reports nothing before the deadline). What was reported by then.
    pub async fn wait_unless(
        &self,
        done: impl Fn(&Reported) -> bool,
        deadline: tokio::time::Instant,
        gone: impl std::future::Future<Output = ()>,
    ) -> Reported {
        tokio::select! {
            got = self.wait(done, deadline) => got,
            () = gone => self.reported.borrow().clone(),
        }
    }
}

/// Every seq's slot.
#[derive(Default)]
pub struct Answers {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
}

impl Answers {
    /// The slot of `seq`, made if it is not there yet.
    pub fn slot(&self, seq: u64) -> Arc<Slot> {
        self.slots.lock().entry(seq).or_insert_with(|| Arc::new(Slot::new())).clone()
    }

    /// Chassis `chassis` got `outcome` for `seq`. The first decided answer is
    /// kept; a later outcome (a retry's) replaces only a failure.
    pub fn fill(&self, seq: u64, chassis: usize, outcome: Outcome) {
        let slot = self.slot(seq);
        slot.reported.send_if_modified(|r| {
            let Some(place) = r.get_mut(chassis) else { return false };
            if place.as_ref().and_then(Outcome::decided).is_some() {
                return false;
            }
            *place = Some(outcome);
            true
        });
    }

    /// The request of `seq` has answered its client: its slot goes.
    pub fn done(&self, seq: u64) {
        self.slots.lock().remove(&seq);
    }

    /// Drop the slots up to `seq` (both chassis applied them) that no request
    /// holds.
    pub fn forget_through(&self, seq: u64) {
        self.slots.lock().retain(|&s, slot| s > seq || Arc::strong_count(slot) > 1);
    }

    /// Slots held now (for tests and the status page).
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chassis::upstream::Answered;
    use std::time::Duration;

    fn ok() -> Outcome {
        Outcome::Answered(Answered { status: 201, content_type: None, body: bytes::Bytes::from_static(b"{}") })
    }
    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_for_a_chassis_that_went_down_ends_then_not_at_the_deadline() {
        let answers = Answers::default();
        answers.fill(5, 0, ok());
        let slot = answers.slot(5);
        let started = tokio::time::Instant::now();
        let down = async { tokio::time::sleep(Duration::from_millis(10)).await };
        let got = slot.wait_unless(|r| r[1].is_some(), started + Duration::from_millis(200), down).await;
        assert_eq!(started.elapsed(), Duration::from_millis(10), "over when the chassis went down");
        assert!(got[0].is_some() && got[1].is_none(), "what was reported by then");
        // Never gone: the report, or the deadline, ends it as before.
        let never = std::future::pending::<()>();
        let started = tokio::time::Instant::now();
        let got = slot.wait_unless(|r| r[1].is_some(), started + Duration::from_millis(200), never).await;
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert!(got[1].is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_made_before_the_request_waits_is_not_missed() {
        let answers = Answers::default();
        answers.fill(7, 0, ok());
        let got = answers.slot(7).wait(|r| r[0].is_some(), soon()).await;
        assert!(got[0].as_ref().and_then(Outcome::decided).is_some());
        assert!(got[1].is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_request_sees_the_report_when_it_comes_and_the_deadline_bounds_it() {
        let answers = Arc::new(Answers::default());
        let slot = answers.slot(3);
        let filler = answers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            filler.fill(3, 1, ok());
        });
        let got = slot.wait(|r| r[1].is_some(), soon()).await;
        assert!(got[1].is_some());
        // Nothing for chassis 0: the wait ends at the deadline with what there is.
        let start = tokio::time::Instant::now();
        let got = slot.wait(|r| r[0].is_some(), start + Duration::from_millis(200)).await;
        assert!(got[0].is_none());
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_decided_answer_is_kept_and_a_failure_is_replaced() {
        let answers = Answers::default();
        answers.fill(1, 0, Outcome::NoAnswer("timeout".into()));
        answers.fill(1, 0, ok());
        answers.fill(1, 0, Outcome::Refused("later retry".into()));
        let got = answers.slot(1).wait(|_| true, soon()).await;
        assert!(got[0].as_ref().and_then(Outcome::decided).is_some());
    }

    #[test]
    fn slots_go_when_answered_or_when_nobody_waits_and_both_applied() {
        let answers = Answers::default();
        let held = answers.slot(5);
        answers.fill(5, 0, ok());
        answers.fill(6, 0, ok());
        answers.fill(9, 1, ok());
        answers.forget_through(8);
        assert_eq!(answers.len(), 2, "5 is held by its request, 9 is not applied by both yet");
        drop(held);
        answers.done(5);
        answers.forget_through(9);
        assert!(answers.is_empty());
    }
}
