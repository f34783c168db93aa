//! Check g: every successful read a client made saw that client's own
//! acknowledged writes — its windows where it last put them, its source
//! under the name it last gave it.
//!
//! The register check (e) covers one key shared by everyone; this one covers
//! every key a client owns, at every read, which is where a stale read after
//! a failover (a chassis serving before it caught up) would show. A client
//! is sequential, so at the moment of a read the set of its writes that
//! must be visible is exact: acknowledged before the read began. Writes
//! with an unknown outcome make their value *allowed*, not required.

use std::collections::BTreeMap;

use crate::checks::Check;
use crate::clock::secs;
use crate::history::{ClientLog, Mutation, MutationRecord, Outcome, Read, ReadRecord, Seen};

enum Event<'a> {
    Write(&'a MutationRecord),
    Read(&'a ReadRecord),
}

#[derive(Default)]
struct Own {
    /// window id → (wall, values it may be at); removed once a close was tried.
    windows: BTreeMap<u64, (u64, Vec<u64>)>,
    /// source id → names it may have.
    names: BTreeMap<u64, Vec<String>>,
}

/// After a write: the acknowledged value replaces the allowed set, an
/// unknown one joins it, a certainly-not-applied one changes nothing.
fn update<T: PartialEq>(allowed: &mut Vec<T>, v: T, o: &Outcome) {
    match o {
        Outcome::Acked(_) => *allowed = vec![v],
        Outcome::Unknown if !allowed.contains(&v) => allowed.push(v),
        _ => {}
    }
}

pub fn check(logs: &[ClientLog]) -> Check {
    let mut c = Check::new("g", "every read saw its client's own acknowledged writes");
    let mut checked = 0usize;
    for log in logs {
        let mut events: Vec<(i64, Event)> = log.mutations.iter().map(|m| (m.start_us(), Event::Write(m))).collect();
        events.extend(log.reads.iter().map(|r| (r.attempt.start_us, Event::Read(r))));
        events.sort_by_key(|e| e.0);
        let mut own = Own::default();
        for (_, e) in events {
            match e {
                Event::Write(m) => match &m.op {
                    Mutation::OpenWindow { wall, value, .. } => {
                        if let Some(id) = m.acked().and_then(|b| b["id"].as_u64()) {
                            own.windows.insert(id, (*wall, vec![*value]));
                        }
                    }
                    Mutation::MoveWindow { id, value, .. } => {
                        if let Some((_, allowed)) = own.windows.get_mut(id) {
                            update(allowed, *value, &m.outcome);
                        }
                    }
                    Mutation::CloseWindow { id, .. } => {
                        if matches!(m.outcome, Outcome::Acked(_) | Outcome::Unknown) {
                            own.windows.remove(id);
                        }
                    }
                    Mutation::RenameSource { id, name } => {
                        let allowed = own.names.entry(*id).or_insert_with(|| vec![format!("Input {id}")]);
                        update(allowed, name.clone(), &m.outcome);
                    }
                    _ => {}
                },
                Event::Read(r) => match (&r.read, &r.seen) {
                    (Read::Windows { wall }, Seen::Windows(seen)) => {
                        for (id, (w, allowed)) in own.windows.iter().filter(|(_, (w, _))| w == wall) {
                            checked += 1;
                            match seen.iter().find(|s| s.0 == *id) {
                                Some((_, v)) if allowed.contains(v) => {}
                                Some((_, v)) => c.problems.push(format!(
                                    "client {} read wall {w} at {}: window {id} at value {v}, but its acknowledged history allows only {allowed:?}",
                                    log.client,
                                    secs(r.attempt.start_us)
                                )),
                                None => c.problems.push(format!(
                                    "client {} read wall {w} at {}: its acknowledged window {id} is missing",
                                    log.client,
                                    secs(r.attempt.start_us)
                                )),
                            }
                        }
                    }
                    (Read::Source { id }, Seen::Name(name)) => {
                        if let Some(allowed) = own.names.get(id) {
                            checked += 1;
                            if !allowed.contains(name) {
                                c.problems.push(format!(
                                    "client {} read source {id} at {}: name {name:?}, but its acknowledged history allows only {allowed:?}",
                                    log.client,
                                    secs(r.attempt.start_us)
                                ));
                            }
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    c.note = format!("{checked} own keys checked at reads");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Attempt;
    use serde_json::json;

    fn at(t: i64) -> Attempt {
        Attempt { start_us: t, end_us: t + 5, status: Some(200), detail: String::new() }
    }
    fn write(t: i64, op: Mutation, outcome: Outcome) -> MutationRecord {
        MutationRecord { client: 0, key: format!("k{t}"), op, attempts: vec![at(t)], outcome }
    }
    fn read_wall(t: i64, seen: Vec<(u64, u64)>) -> ReadRecord {
        ReadRecord { client: 0, read: Read::Windows { wall: 1 }, attempt: at(t), value: None, seen: Seen::Windows(seen) }
    }

    #[test]
    fn stale_and_missing_windows_are_caught() {
        let acked = |id: u64| Outcome::Acked(json!({"id": id}));
        let log = ClientLog {
            client: 0,
            user: "admin".into(),
            mutations: vec![
                write(10, Mutation::OpenWindow { wall: 1, sig: 1, value: 100 }, acked(5)),
                write(30, Mutation::MoveWindow { wall: 1, id: 5, value: 200 }, acked(5)),
                write(50, Mutation::MoveWindow { wall: 1, id: 5, value: 300 }, Outcome::Unknown),
            ],
            reads: vec![
                read_wall(20, vec![(5, 100)]), // fine
                read_wall(25, vec![]),         // missing
                read_wall(40, vec![(5, 100)]), // stale: 200 was acknowledged
                read_wall(60, vec![(5, 300)]), // the unknown move landed: fine
                read_wall(70, vec![(5, 200)]), // or it did not (yet): fine
            ],
        };
        let c = check(&[log]);
        assert_eq!(c.problems.len(), 2, "{:#?}", c.problems);
        assert!(c.problems[0].contains("missing"));
        assert!(c.problems[1].contains("allows only [200]"));
    }
}
