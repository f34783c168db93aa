//! Which journal entries may be on their way to one chassis at the same time.
//!
//! Both chassis must end in the same state, so two entries whose order could
//! change the result — or either one's answer — are applied in journal order
//! on both. Two entries that touch different things (a window on wall 7 and
//! a route of output 3) give the same state and the same answers in either
//! order, so each applier may send them together.
//!
//! What an entry touches comes from its route rule ([`RouteRule::conflicts`],
//! in `gateway.toml`): keys over its path (`wall {id}`), plus the rows it
//! names — its `path_ids` (rows it changes or deletes), its ID block (rows it
//! creates) and its `body_ids` (rows it only refers to). A rule without
//! `conflicts`, a request no rule describes, and a request whose rows cannot
//! be read conflict with everything.
//!
//! [`Conflicts`] and [`Window`] are plain values, decided without I/O: the
//! applier asks, then sends (see [`crate::chassis::applier`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::route::{RouteRule, RouteTable};
use crate::journal::{Entry, IdBlock};

/// What one entry touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflicts {
    /// Everything: applied alone, after every earlier entry and before every later one.
    All,
    Only(Touches),
}

/// The things an entry touches when it does not touch everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touches {
    /// Its rule's `conflicts` keys, rendered (`wall 7`).
    pub keys: Vec<String>,
    /// Rows it changes or deletes (its `path_ids`).
    pub rows: Vec<u64>,
    /// Rows it only refers to (its `body_ids`): two entries that both show
    /// source 5 do not conflict; one that deletes source 5 conflicts with both.
    pub refers: Vec<u64>,
    /// The rows it creates: its ID block.
    pub creates: Option<IdBlock>,
}

impl Touches {
    fn changes(&self, id: u64) -> bool {
        self.rows.contains(&id) || self.creates.is_some_and(|b| (b.base..b.end()).contains(&id))
    }

    /// Whether the two could give another result in the other order.
    fn meets(&self, other: &Touches) -> bool {
        self.keys.iter().any(|k| other.keys.contains(k))
            || self.rows.iter().chain(&self.refers).any(|&id| other.changes(id))
            || other.rows.iter().chain(&other.refers).any(|&id| self.changes(id))
            || matches!((self.creates, other.creates), (Some(a), Some(b)) if a.base < b.end() && b.base < a.end())
    }
}

impl Conflicts {
    /// What `entry` touches by the rules of `routes`. `body` gives the
    /// entry's body as the chassis is sent it (opened, if it was sealed;
    /// `None` if it cannot be read): asked for, and parsed, only when the
    /// rule names rows in it — a sealed body is not opened for a rule that
    /// conflicts with everything anyway.
    pub fn of<B: AsRef<[u8]>>(routes: &RouteTable, entry: &Entry, body: impl FnOnce() -> Option<B>) -> Conflicts {
        let path = entry.path_and_query.split(['?', '#']).next().unwrap_or_default();
        let classified = routes.classify(&entry.method, path);
        match routes.rule(&classified) {
            Some(rule) => Conflicts::by_rule(rule, path, entry.id_block, body),
            None => Conflicts::All,
        }
    }

    fn by_rule<B: AsRef<[u8]>>(rule: &RouteRule, path: &str, creates: Option<IdBlock>, body: impl FnOnce() -> Option<B>) -> Conflicts {
        let Some(keys) = &rule.conflicts else { return Conflicts::All };
        let mut touches = Touches { creates, ..Touches::default() };
        for key in keys {
            match key.render(&rule.path, path) {
                Some(k) => touches.keys.push(k),
                None => return Conflicts::All,
            }
        }
        for (param, _) in &rule.ids.path {
            match rule.path.param(param, path).and_then(|v| v.parse::<u64>().ok()) {
                Some(id) => touches.rows.push(id),
                // Not a number: the chassis will refuse it, but which row
                // it means cannot be told here.
                None => return Conflicts::All,
            }
        }
        if !rule.ids.body.is_empty() {
            let Some(body) = body() else { return Conflicts::All };
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body.as_ref()) else { return Conflicts::All };
            for place in &rule.ids.body {
                for value in place.at.find(&doc) {
                    match value.as_u64() {
                        Some(id) => touches.refers.push(id),
                        None if value.is_null() => {}
                        None => return Conflicts::All,
                    }
                }
            }
        }
        Conflicts::Only(touches)
    }

    /// Whether the two entries must keep their journal order.
    pub fn with(&self, other: &Conflicts) -> bool {
        match (self, other) {
            (Conflicts::Only(a), Conflicts::Only(b)) => a.meets(b),
            _ => true,
        }
    }
}

/// The entries one applier has on their way to its chassis, and how far the
/// chassis has applied everything (its *watermark*: every entry up to it is
/// decided there, whatever is decided beyond it).
#[derive(Debug, Default)]
pub struct Window {
    running: BTreeMap<u64, Conflicts>,
    /// Entries that came back undecided (a resync was asked for instead):
    /// the watermark stays below them until [`Window::reset`].
    stuck: BTreeSet<u64>,
    /// The last seq started (or the position the window was reset to).
    last_started: u64,
}

impl Window {
    /// A window after `position`: every entry up to it counts as applied.
    pub fn new(position: u64) -> Window {
        Window { last_started: position, ..Window::default() }
    }

    /// Start afresh after `position` (a full resync imported up to it).
    pub fn reset(&mut self, position: u64) {
        *self = Window::new(position);
    }

    /// Whether an entry touching `what` may be started now with at most
    /// `limit` on their way: no running entry conflicts with it, and nothing
    /// came back undecided.
    pub fn admits(&self, what: &Conflicts, limit: usize) -> bool {
        self.stuck.is_empty() && self.running.len() < limit.max(1) && self.running.values().all(|r| !r.with(what))
    }

    /// Entry `seq` (the next in journal order) is on its way.
    pub fn start(&mut self, seq: u64, what: Conflicts) {
        self.last_started = self.last_started.max(seq);
        self.running.insert(seq, what);
    }

    /// Entry `seq` came back: decided (`true`), or not (a resync was asked for).
    pub fn finish(&mut self, seq: u64, decided: bool) {
        self.running.remove(&seq);
        if !decided {
            self.stuck.insert(seq);
        }
    }

    /// Every entry up to this one is decided on the chassis.
    pub fn watermark(&self) -> u64 {
        let lowest_open = self.running.keys().next().into_iter().chain(self.stuck.iter().next()).min();
        match lowest_open {
            Some(&seq) => seq.saturating_sub(1),
            None => self.last_started,
        }
    }

    /// The last entry started: everything up to it is on its way or back.
    pub fn last_started(&self) -> u64 {
        self.last_started
    }

    pub fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// Nothing on its way and nothing undecided.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.stuck.is_empty()
    }

    /// Something came back undecided: nothing more starts before a reset.
    pub fn is_stuck(&self) -> bool {
        !self.stuck.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::route::{ConflictKey, PathPattern, RouteKind, RuleMethod};
    use crate::ids::pointer::WildPointer;
    use crate::ids::rules::{IdAt, RouteIds, Table};

    fn rule(method: RuleMethod, path: &str, keys: Option<&[&str]>, path_ids: &[&str], body_ids: &[&str]) -> RouteRule {
        let pattern = PathPattern::parse(path).unwrap_or_else(|e| panic!("{e}"));
        let conflicts = keys.map(|ks| ks.iter().map(|k| ConflictKey::parse(k, &pattern).unwrap_or_else(|e| panic!("{e}"))).collect());
        let table = |name: &str| Table::from(name);
        RouteRule {
            method,
            path: pattern,
            kind: RouteKind::Mutate,
            id_block: Some(1),
            ends_sessions_of: None,
            secret_fields: Vec::new(),
            ids: RouteIds {
                path: path_ids.iter().map(|p| (p.to_string(), table("rows"))).collect(),
                body: body_ids
                    .iter()
                    .map(|p| IdAt { at: WildPointer::parse(p).unwrap_or_else(|e| panic!("{e}")), table: table("rows") })
                    .collect(),
                ..RouteIds::default()
            },
            compare_ignores: Vec::new(),
            fills: Vec::new(),
            conflicts,
            line: 1,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(
            vec![
                rule(RuleMethod::Post, "/walls/{id}/windows", Some(&["wall {id}"]), &["id"], &["/source_id"]),
                rule(RuleMethod::Put, "/walls/{id}/windows/{wid}", Some(&["wall {id}"]), &["id", "wid"], &["/source_id"]),
                rule(RuleMethod::Put, "/matrix/{output}", Some(&["output {output}"]), &[], &[]),
                rule(RuleMethod::Delete, "/scenes/{id}", Some(&[]), &["id"], &[]),
                rule(RuleMethod::Delete, "/sources/{id}", None, &["id"], &[]),
            ],
            8,
        )
    }

    fn entry(seq: u64, method: &str, path: &str, block: Option<(u64, u64)>) -> Entry {
        Entry {
            seq,
            method: method.into(),
            path_and_query: path.into(),
            headers: Vec::new(),
            body: bytes::Bytes::new(),
            body_format: crate::journal::BodyFormat::Plain,
            id_block: block.map(|(base, count)| IdBlock { base, count }),
            account: "admin".into(),
            client_key: None,
            epoch: None,
        }
    }

    fn of(method: &str, path: &str, body: &str, block: Option<(u64, u64)>) -> Conflicts {
        Conflicts::of(&table(), &entry(1, method, path, block), || Some(body.as_bytes()))
    }

    #[test]
    fn the_body_is_read_only_when_the_rule_names_ids_in_it() {
        let asked = std::cell::Cell::new(0);
        let body = || {
            asked.set(asked.get() + 1);
            Some(br#"{"source_id":5}"#.as_slice())
        };
        let t = table();
        // No `conflicts` (everything), or no body_ids: the body is not needed.
        assert_eq!(Conflicts::of(&t, &entry(1, "DELETE", "/sources/5", None), body), Conflicts::All);
        assert!(matches!(Conflicts::of(&t, &entry(2, "PUT", "/matrix/3", None), body), Conflicts::Only(_)));
        assert_eq!(asked.get(), 0);
        let Conflicts::Only(win) = Conflicts::of(&t, &entry(3, "PUT", "/walls/7/windows/70", None), body) else { panic!("a window") };
        assert_eq!((asked.get(), win.refers), (1, vec![5]));
        // A body that cannot be read: alone.
        assert_eq!(Conflicts::of(&t, &entry(4, "PUT", "/walls/7/windows/70", None), || None::<&[u8]>), Conflicts::All);
    }

    #[test]
    fn different_walls_and_outputs_do_not_conflict_the_same_wall_does() {
        let win7 = of("PUT", "/walls/7/windows/70", r#"{"x":1}"#, None);
        let win8 = of("PUT", "/walls/8/windows/80?x=1", r#"{"x":1}"#, None);
        let other7 = of("PUT", "/walls/7/windows/71", r#"{"x":2}"#, None);
        let route3 = of("PUT", "/matrix/3", r#"{"input":1}"#, None);
        let route4 = of("PUT", "/matrix/4", r#"{"input":1}"#, None);
        assert!(!win7.with(&win8) && !win8.with(&win7));
        assert!(!win7.with(&route3), "a window on wall 7 and a route of output 3");
        assert!(!route3.with(&route4));
        assert!(win7.with(&other7), "two windows of one wall: their z order");
        assert!(route3.with(&of("PUT", "/matrix/3", r#"{"input":2}"#, None)));
    }

    #[test]
    fn a_row_created_or_deleted_conflicts_with_what_names_it() {
        // A window created on wall 8 showing source 5, with block 100+1 ...
        let create = of("POST", "/walls/8/windows", r#"{"source_id":5,"x":0,"y":0,"w":1,"h":1}"#, Some((100, 1)));
        // ... and an entry that names the window it created, on another wall key.
        let scene_gone = of("DELETE", "/scenes/100", "", None);
        assert!(create.with(&scene_gone) && scene_gone.with(&create), "a row of the block is named");
        assert!(!create.with(&of("DELETE", "/scenes/101", "", None)));
        // Both only show source 5: no conflict; deleting source 5 conflicts with everything.
        let shows5 = of("PUT", "/walls/9/windows/90", r#"{"source_id":5}"#, None);
        assert!(!create.with(&shows5), "two references to one row");
        assert!(of("DELETE", "/sources/5", "", None).with(&shows5));
    }

    #[test]
    fn what_cannot_be_told_conflicts_with_everything() {
        let win7 = of("PUT", "/walls/7/windows/70", "{}", None);
        for all in [
            of("POST", "/users", "{}", Some((1, 1))),           // no rule
            of("DELETE", "/sources/5", "", None),               // a rule without `conflicts`
            of("PUT", "/walls/x/windows/70", "{}", None),       // a row that is no number
            of("PUT", "/walls/9/windows/90", "not json", None), // body rows unreadable
            of("PUT", "/walls/9/windows/90", r#"{"source_id":"five"}"#, None),
        ] {
            assert_eq!(all, Conflicts::All);
            assert!(all.with(&win7) && win7.with(&all));
        }
        assert_ne!(of("PUT", "/walls/9/windows/90", r#"{"source_id":null}"#, None), Conflicts::All);
    }

    #[test]
    fn the_window_keeps_conflicting_entries_apart_and_the_watermark_below_what_is_open() {
        let w = |wall: u64| of("PUT", &format!("/walls/{wall}/windows/{}", wall * 10), "{}", None);
        let mut window = Window::new(10);
        assert_eq!(window.watermark(), 10);
        assert!(window.admits(&w(1), 4));
        window.start(11, w(1));
        assert!(window.admits(&w(2), 4));
        window.start(12, w(2));
        assert!(!window.admits(&w(1), 4), "wall 1 is on its way");
        assert!(!window.admits(&Conflicts::All, 4));
        window.start(13, w(3));
        assert!(!window.admits(&w(4), 3), "the limit");
        assert_eq!(window.watermark(), 10);
        window.finish(12, true);
        window.finish(13, true);
        assert_eq!(window.watermark(), 10, "11 is still open");
        window.finish(11, true);
        assert_eq!(window.watermark(), 13);
        assert!(window.is_idle());
        window.start(14, w(1));
        window.start(15, w(2));
        window.finish(14, false);
        window.finish(15, true);
        assert_eq!(window.watermark(), 13, "14 came back undecided");
        assert!(window.is_stuck() && !window.admits(&w(5), 4));
        window.reset(20);
        assert!(window.is_idle() && window.watermark() == 20);
    }
}
