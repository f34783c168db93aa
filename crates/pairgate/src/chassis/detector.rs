//! The chassis state machine: one small task per chassis, fed by a channel
//! of [`Signal`]s (health probes, request failures, the applier's progress),
//! publishing its [`ChassisState`] on a watch channel.
//!
//! Each state is an async method that runs until the state ends and returns
//! the next one, so the transitions read top to bottom:
//!
//! ```text
//! in_sync ──refused / no good probe for down_after──▶ down
//! in_sync ──fell behind (missed grace, failed attempt)──▶ catching_up
//! down ──probe answers──▶ catching_up
//! catching_up ──caught up and digests equal──▶ in_sync
//! catching_up ──refused / no good probe for down_after──▶ down
//! any but down ──resync──▶ full_resync ──resync done──▶ catching_up
//! full_resync ──refused──▶ down
//! any ──hold (maintenance)──▶ down, until released
//! ```
//!
//! The applier sends `CaughtUp` only after comparing digests with the peer,
//! so no chassis becomes `in_sync` on trust.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChassisState {
    /// Applied everything the journal holds; may be primary and serve reads.
    InSync,
    /// Unreachable. Its applier waits; nothing is sent to it.
    Down,
    /// Reachable but behind: its applier replays the journal. No reads.
    CatchingUp,
    /// Being rebuilt from the other chassis (export, import, replay).
    FullResync,
}

impl ChassisState {
    pub fn serves(self) -> bool {
        self == ChassisState::InSync
    }

    /// The name the status page and the dashboard show (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            ChassisState::InSync => "in_sync",
            ChassisState::Down => "down",
            ChassisState::CatchingUp => "catching_up",
            ChassisState::FullResync => "full_resync",
        }
    }
}

impl std::fmt::Display for ChassisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rest of the gateway tells the detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `GET /system/health` answered 200.
    ProbeOk,
    /// A probe or a request could not connect: down at once.
    Refused,
    /// A probe or request got no answer, a 5xx, or timed out.
    Failed,
    /// It missed the secondary grace or an attempt failed: it is behind.
    FellBehind,
    /// Its applier has applied the journal's last entry and the digests agree.
    CaughtUp,
    /// Its applier starts a full resync.
    Resync,
    /// The full resync finished (import done); replay follows.
    ResyncDone,
    /// Taken out for maintenance (true) or given back (false).
    Hold(bool),
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct DetectorHandle {
    pub name: String,
    tx: mpsc::Sender<Signal>,
    state: watch::Receiver<ChassisState>,
}

impl DetectorHandle {
    /// Tell the detector something. Never blocks the request path: if the
    /// channel is full the signal is dropped (the next probe repeats it).
    pub fn signal(&self, s: Signal) {
        let _ = self.tx.try_send(s);
    }

    pub fn state(&self) -> ChassisState {
        *self.state.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<ChassisState> {
        self.state.clone()
    }

    /// A handle whose state the test sets (no detector task behind it).
    #[cfg(test)]
    pub fn fixed(name: &str, initial: ChassisState) -> (DetectorHandle, watch::Sender<ChassisState>) {
        let (tx, _rx) = mpsc::channel(1);
        let (state_tx, state) = watch::channel(initial);
        (DetectorHandle { name: name.to_string(), tx, state }, state_tx)
    }
}

struct Detector {
    name: String,
    rx: mpsc::Receiver<Signal>,
    tx: watch::Sender<ChassisState>,
    down_after: Duration,
}

/// Start a detector in `initial` state.
pub fn spawn(tasks: &crate::tasks::Tasks, name: &str, initial: ChassisState, down_after: Duration) -> DetectorHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (state_tx, state_rx) = watch::channel(initial);
    let d = Detector { name: name.to_string(), rx, tx: state_tx, down_after };
    tasks.spawn("detector", d.run(initial));
    DetectorHandle { name: name.to_string(), tx, state: state_rx }
}

impl Detector {
    async fn run(mut self, mut state: ChassisState) {
        loop {
            let next = match state {
                ChassisState::InSync => self.in_sync().await,
                ChassisState::Down => self.down().await,
                ChassisState::CatchingUp => self.catching_up().await,
                ChassisState::FullResync => self.full_resync().await,
            };
            let Some(next) = next else { return };
            if next != state {
                tracing::info!(chassis = %self.name, from = ?state, to = ?next, "chassis state");
                state = next;
                self.tx.send_replace(state);
            }
        }
    }

    /// Serving. Leaves on a refusal, on `down_after` without a good probe, or
    /// when it falls behind.
    async fn in_sync(&mut self) -> Option<ChassisState> {
        self.reachable(|s| match s {
            Signal::FellBehind => Some(ChassisState::CatchingUp),
            Signal::Resync => Some(ChassisState::FullResync),
            _ => None,
        })
        .await
    }

    /// Replaying. Caught up (and verified): in sync; unreachable: down.
    async fn catching_up(&mut self) -> Option<ChassisState> {
        self.reachable(|s| match s {
            Signal::CaughtUp => Some(ChassisState::InSync),
            Signal::Resync => Some(ChassisState::FullResync),
            _ => None,
        })
        .await
    }

    /// The part both reachable states share: good probes keep it up, a
    /// refusal or `down_after` of silence takes it down, maintenance holds it;
    /// `next` says where the other signals lead (None: stay).
    async fn reachable(&mut self, next: impl Fn(Signal) -> Option<ChassisState>) -> Option<ChassisState> {
        let mut deadline = Instant::now() + self.down_after;
        loop {
            tokio::select! {
                s = self.rx.recv() => match s? {
                    Signal::ProbeOk => deadline = Instant::now() + self.down_after,
                    Signal::Refused => return Some(ChassisState::Down),
                    Signal::Hold(true) => return self.held().await,
                    other => {
                        if let Some(state) = next(other) {
                            return Some(state);
                        }
                    }
                },
                _ = sleep_until(deadline) => return Some(ChassisState::Down),
            }
        }
    }

    /// Unreachable. The first good probe starts the catch-up.
    async fn down(&mut self) -> Option<ChassisState> {
        loop {
            match self.rx.recv().await? {
                Signal::ProbeOk => return Some(ChassisState::CatchingUp),
                Signal::Hold(true) => return self.held().await,
                _ => {}
            }
        }
    }

    /// In maintenance: reported down whatever the probes say, until released.
    async fn held(&mut self) -> Option<ChassisState> {
        self.tx.send_replace(ChassisState::Down);
        tracing::info!(chassis = %self.name, "taken out for maintenance");
        loop {
            if self.rx.recv().await? == Signal::Hold(false) {
                tracing::info!(chassis = %self.name, "back from maintenance");
                // Down until a probe answers, then catch up and verify.
                return Some(ChassisState::Down);
            }
        }
    }

    /// Being rebuilt. No timeout: an import may take a while; a refusal or
    /// the applier's "done" ends it.
    async fn full_resync(&mut self) -> Option<ChassisState> {
        loop {
            match self.rx.recv().await? {
                Signal::ResyncDone => return Some(ChassisState::CatchingUp),
                Signal::Refused => return Some(ChassisState::Down),
                Signal::Hold(true) => return self.held().await,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn settle() {
        // Let the detector task run (the clock is paused; yielding is enough).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_transition() {
        let d = spawn(&crate::tasks::Tasks::default(), "a", ChassisState::InSync, Duration::from_millis(1500));
        // Probes keep it in sync past down_after.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(500)).await;
            d.signal(Signal::ProbeOk);
            settle().await;
        }
        assert_eq!(d.state(), ChassisState::InSync);
        // Failures alone do not take it down before down_after...
        d.signal(Signal::Failed);
        tokio::time::advance(Duration::from_millis(1400)).await;
        settle().await;
        assert_eq!(d.state(), ChassisState::InSync);
        // ...silence does, within down_after of the last good probe.
        tokio::time::advance(Duration::from_millis(150)).await;
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        // Down ignores everything but a good probe.
        d.signal(Signal::CaughtUp);
        d.signal(Signal::Failed);
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        d.signal(Signal::ProbeOk);
        settle().await;
        assert_eq!(d.state(), ChassisState::CatchingUp);
        d.signal(Signal::CaughtUp);
        settle().await;
        assert_eq!(d.state(), ChassisState::InSync);
        // A refusal is immediate.
        d.signal(Signal::Refused);
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        d.signal(Signal::ProbeOk);
        settle().await;
        assert_eq!(d.state(), ChassisState::CatchingUp);
        // Catching up, then silent: down.
        tokio::time::advance(Duration::from_millis(1600)).await;
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        d.signal(Signal::ProbeOk);
        d.signal(Signal::CaughtUp);
        settle().await;
        assert_eq!(d.state(), ChassisState::InSync);
        // Falling behind while in sync.
        d.signal(Signal::FellBehind);
        settle().await;
        assert_eq!(d.state(), ChassisState::CatchingUp);
        d.signal(Signal::Refused);
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        // Full resync: entered from catching up, left by "done" (not by probes).
        d.signal(Signal::ProbeOk);
        d.signal(Signal::Resync);
        settle().await;
        assert_eq!(d.state(), ChassisState::FullResync);
        tokio::time::advance(Duration::from_secs(10)).await;
        d.signal(Signal::CaughtUp);
        settle().await;
        assert_eq!(d.state(), ChassisState::FullResync, "no timeout, no shortcut while resyncing");
        d.signal(Signal::ResyncDone);
        settle().await;
        assert_eq!(d.state(), ChassisState::CatchingUp);
        d.signal(Signal::CaughtUp);
        settle().await;
        assert_eq!(d.state(), ChassisState::InSync);
        // Maintenance holds it down whatever the probes say.
        d.signal(Signal::Hold(true));
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        d.signal(Signal::ProbeOk);
        d.signal(Signal::CaughtUp);
        settle().await;
        assert_eq!(d.state(), ChassisState::Down);
        d.signal(Signal::Hold(false));
        d.signal(Signal::ProbeOk);
        settle().await;
        assert_eq!(d.state(), ChassisState::CatchingUp);
    }
}
