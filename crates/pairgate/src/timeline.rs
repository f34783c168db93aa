//! The dashboard's timeline: what happened to the pair, newest last —
//! failovers, chassis state changes, resyncs, divergences and the admin
//! actions taken — kept in memory (the last [`KEPT`] events) and pushed to
//! every open dashboard (`proxy/dashboard.rs`, over SSE).
//!
//! The pair's own changes are found by comparing two [`View`]s of it, a
//! moment apart: [`changes`] is a pure function from two views to the events
//! between them (unit-tested as values), and [`watch`] is the small task that
//! takes a view every [`WATCH_EVERY`] and records what `changes` says. Admin
//! actions are recorded where they are taken ([`Timeline::record`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::chassis::detector::ChassisState;

/// How many events the timeline keeps (older ones are dropped).
pub const KEPT: usize = 500;

/// How often [`watch`] looks at the primary and the counters when no
/// chassis changed state (a state change wakes it at once).
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What kind of thing happened (the dashboard colours by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Another chassis became primary, or none is.
    Failover,
    /// A chassis' state changed (`down`, `catching_up`, `in_sync`, …).
    State,
    /// A full resync finished or failed.
    Resync,
    /// The two chassis were found to differ.
    Divergence,
    /// An operator's action: resync, primary, maintenance, reload.
    Admin,
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Increasing from 1 in this process: a dashboard that reconnects skips
    /// what it has.
    pub id: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub kind: Kind,
    /// The chassis it is about, if one.
    pub chassis: Option<String>,
    /// What happened, for a person.
    pub text: String,
}

/// The timeline itself: the recent events and the live feed of new ones.
pub struct Timeline {
    recent: Mutex<VecDeque<Event>>,
    next: AtomicU64,
    feed: broadcast::Sender<Event>,
}

impl Default for Timeline {
    fn default() -> Timeline {
        Timeline::new()
    }
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline { recent: Mutex::new(VecDeque::with_capacity(KEPT)), next: AtomicU64::new(1), feed: broadcast::channel(256).0 }
    }

    /// Add an event (and log it at info level).
    pub fn record(&self, kind: Kind, chassis: Option<&str>, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(target: "pairgate::timeline", kind = ?kind, chassis = chassis.unwrap_or("-"), "{text}");
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut recent = self.recent.lock();
        // The id is taken under the lock: the list stays in id order.
        let event = Event { id: self.next.fetch_add(1, Ordering::Relaxed), at_ms, kind, chassis: chassis.map(str::to_string), text };
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // No dashboard open is not an error.
        let _ = self.feed.send(event);
    }

    /// The events kept, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.recent.lock().iter().cloned().collect()
    }

    /// New events from now on (a receiver that falls behind by more than
    /// the channel holds is told it lagged, and reads [`Timeline::recent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.feed.subscribe()
    }
}

/// What [`changes`] compares: the pair at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub names: [String; 2],
    pub states: [ChassisState; 2],
    pub primary: Option<usize>,
    pub resyncs_done: [u64; 2],
    pub resyncs_failed: [u64; 2],
    pub divergences: u64,
}

/// The events between two views of the pair, in a fixed order: states, then
/// the primary, then resyncs, then divergences.
pub fn changes(before: &View, after: &View) -> Vec<(Kind, Option<String>, String)> {
    let mut out = Vec::new();
    for i in 0..2 {
        let name = &after.names[i];
        if before.states[i] != after.states[i] {
            out.push((Kind::State, Some(name.clone()), format!("chassis {name}: {} → {}", before.states[i], after.states[i])));
        }
    }
    if before.primary != after.primary {
        let names = &after.names;
        let text = match (before.primary, after.primary) {
            (Some(p), Some(q)) => {
                format!("failover: primary chassis {} → chassis {} (chassis {} is {})", names[p], names[q], names[p], after.states[p])
            }
            (None, Some(q)) => format!("primary: chassis {} (no chassis was primary)", names[q]),
            (Some(p), None) => format!("no primary: chassis {} is {} and no chassis is in sync", names[p], after.states[p]),
            (None, None) => String::new(),
        };
        out.push((Kind::Failover, after.primary.map(|i| names[i].clone()), text));
    }
    for i in 0..2 {
        let name = &after.names[i];
        let done = after.resyncs_done[i].saturating_sub(before.resyncs_done[i]);
        if done > 0 {
            out.push((Kind::Resync, Some(name.clone()), format!("chassis {name}: full resync done (imported from the other)")));
        }
        let failed = after.resyncs_failed[i].saturating_sub(before.resyncs_failed[i]);
        if failed > 0 {
            out.push((Kind::Resync, Some(name.clone()), format!("chassis {name}: a full resync attempt failed ({failed}); retried")));
        }
    }
    let diverged = after.divergences.saturating_sub(before.divergences);
    if diverged > 0 {
        out.push((Kind::Divergence, None, format!("the chassis answered differently {diverged} time(s): the lagging one is rebuilt")));
    }
    out
}

/// Record what changes in the pair: looked at whenever a chassis' state
/// changes (`states`, each detector's watch: no passing state is missed)
/// and every [`WATCH_EVERY`] (the primary and the counters). `view` takes
/// one view; it runs until the gateway's tasks are stopped.
pub async fn watch(
    timeline: std::sync::Arc<Timeline>,
    mut states: [tokio::sync::watch::Receiver<ChassisState>; 2],
    view: impl Fn() -> View + Send + 'static,
) {
    let mut before = view();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let [s0, s1] = &mut states;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = s0.changed() => if changed.is_err() { return },
            changed = s1.changed() => if changed.is_err() { return },
        }
        let mut after = view();
        // The state each watch saw, not a later one the view may already hold.
        after.states = [*s0.borrow_and_update(), *s1.borrow_and_update()];
        for (kind, chassis, text) in changes(&before, &after) {
            timeline.record(kind, chassis.as_deref(), text);
        }
        before = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChassisState::*;

    fn view(states: [ChassisState; 2], primary: Option<usize>) -> View {
        View { names: ["a".into(), "b".into()], states, primary, resyncs_done: [0, 0], resyncs_failed: [0, 0], divergences: 0 }
    }

    fn texts(before: &View, after: &View) -> Vec<(Kind, Option<String>, String)> {
        changes(before, after)
    }

    #[test]
    fn nothing_changed_is_no_event() {
        let v = view([InSync, InSync], Some(0));
        assert!(changes(&v, &v.clone()).is_empty());
    }

    #[test]
    fn a_dead_primary_is_a_state_change_then_a_failover() {
        let before = view([InSync, InSync], Some(0));
        let after = view([Down, InSync], Some(1));
        assert_eq!(
            texts(&before, &after),
            vec![
                (Kind::State, Some("a".into()), "chassis a: in_sync → down".into()),
                (Kind::Failover, Some("b".into()), "failover: primary chassis a → chassis b (chassis a is down)".into()),
            ]
        );
    }

    #[test]
    fn the_first_primary_and_the_last_one_lost() {
        let none = view([Down, Down], None);
        let first = view([InSync, Down], Some(0));
        assert_eq!(texts(&none, &first)[1], (Kind::Failover, Some("a".into()), "primary: chassis a (no chassis was primary)".into()));
        assert_eq!(texts(&first, &none)[1], (Kind::Failover, None, "no primary: chassis a is down and no chassis is in sync".into()));
    }

    #[test]
    fn counters_that_moved_are_events_and_counters_never_go_back() {
        let before = view([InSync, CatchingUp], Some(0));
        let mut after = before.clone();
        after.resyncs_done = [0, 1];
        after.resyncs_failed = [2, 0];
        after.divergences = 3;
        let got = texts(&before, &after);
        assert_eq!(
            got.iter().map(|(k, c, _)| (*k, c.clone())).collect::<Vec<_>>(),
            vec![(Kind::Resync, Some("a".into())), (Kind::Resync, Some("b".into())), (Kind::Divergence, None),]
        );
        assert!(got[0].2.contains("failed (2)"), "{got:?}");
        assert!(got[2].2.contains("3 time(s)"), "{got:?}");
        // A restart's counters start at 0 again: no event, no underflow.
        assert!(texts(&after, &before).is_empty());
    }

    #[test]
    fn the_timeline_keeps_the_last_events_in_order_and_feeds_subscribers() {
        let t = Timeline::new();
        let mut rx = t.subscribe();
        for i in 0..KEPT + 3 {
            t.record(Kind::Admin, None, format!("action {i}"));
        }
        let recent = t.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].text, "action 3");
        assert!(recent.windows(2).all(|w| w[0].id + 1 == w[1].id));
        // A subscriber that fell behind is told so (and reads `recent`), then goes on.
        assert!(matches!(rx.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))));
        assert!(rx.try_recv().is_ok_and(|e| e.text.starts_with("action ")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_sees_each_state_a_detector_passes_through() {
        let t = std::sync::Arc::new(Timeline::new());
        let (tx0, rx0) = tokio::sync::watch::channel(InSync);
        let (_tx1, rx1) = tokio::sync::watch::channel(InSync);
        let view = move || view([InSync, InSync], Some(0));
        let task = tokio::spawn(watch(t.clone(), [rx0, rx1], view));
        tokio::task::yield_now().await;
        // Faster than the tick: down, then back, then in sync again.
        for s in [Down, CatchingUp, InSync] {
            tx0.send_replace(s);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let texts: Vec<String> = t.recent().into_iter().map(|e| e.text).collect();
        assert_eq!(texts, vec!["chassis a: in_sync → down", "chassis a: down → catching_up", "chassis a: catching_up → in_sync"]);
        task.abort();
    }
}
