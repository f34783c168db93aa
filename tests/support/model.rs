//! Checks b and c: the checker's own model of the acknowledged history,
//! compared with both chassis' `GET /system/export`.
//!
//! Every key a client writes is written by that client only, one operation
//! after the other (see `workload`), so the final value of a key must be the
//! last *acknowledged* write — or a later write whose outcome stayed unknown
//! (it may have landed). A write certainly not applied is never a candidate.
//! Journal order makes anything else impossible: an unknown write journaled
//! before an acknowledged one cannot be applied after it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::checks::Check;
use crate::history::{position, signature_size, signature_source, ClientLog, Mutation, MutationRecord, Outcome};
use crate::site::NAMES;

/// The rows of `table` in an export (empty if absent).
pub fn rows<'a>(export: &'a Value, table: &str) -> Vec<&'a Value> {
    export["tables"][table]["rows"].as_array().map(|r| r.iter().collect()).unwrap_or_default()
}

fn by_id<'a>(export: &'a Value, table: &str) -> BTreeMap<u64, &'a Value> {
    rows(export, table).into_iter().filter_map(|r| Some((r["id"].as_u64()?, r))).collect()
}

/// The values a key may end with: the last acknowledged write's (or
/// `initial` if none was), plus every write after it whose outcome is unknown.
pub fn allowed_finals<T: Clone + PartialEq>(initial: T, writes: &[(T, &Outcome)]) -> Vec<T> {
    let last_ack = writes.iter().rposition(|(_, o)| matches!(o, Outcome::Acked(_)));
    let mut allowed = vec![match last_ack {
        Some(i) => writes[i].0.clone(),
        None => initial,
    }];
    let after = last_ack.map_or(0, |i| i + 1);
    for (v, o) in &writes[after..] {
        if matches!(o, Outcome::Unknown) && !allowed.contains(v) {
            allowed.push(v.clone());
        }
    }
    allowed
}

fn all(logs: &[ClientLog]) -> impl Iterator<Item = &MutationRecord> {
    logs.iter().flat_map(|l| l.mutations.iter())
}

fn acked_id(m: &MutationRecord) -> Option<u64> {
    m.acked().and_then(|b| b["id"].as_u64())
}

/// Every deletion/close of `id` matching `is_it`: acknowledged? possibly?
fn removal(logs: &[ClientLog], is_it: impl Fn(&Mutation) -> bool) -> (bool, bool) {
    let mut certainly = false;
    let mut maybe = false;
    for m in all(logs).filter(|m| is_it(&m.op)) {
        match m.outcome {
            Outcome::Acked(_) => certainly = true,
            Outcome::Unknown => maybe = true,
            _ => {}
        }
    }
    (certainly, maybe)
}

/// A row as both chassis must agree on it: without `password_hash`, whose
/// salt differs per chassis by design (the digest leaves it out too).
fn comparable(row: &Value) -> Value {
    let mut r = row.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("password_hash");
    }
    r
}

/// The tables of an export as both chassis must agree on them: rows
/// [`comparable`], counters left out (a chassis numbering its own rows has
/// counters of its own).
pub fn comparable_tables(export: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (t, table) in export["tables"].as_object().into_iter().flatten() {
        let rows: Vec<Value> = table["rows"].as_array().into_iter().flatten().map(comparable).collect();
        out.insert(t.clone(), Value::from(rows));
    }
    Value::Object(out)
}

/// Where two [`comparable_tables`] differ, for a person: per table, the
/// rows only one side has or has otherwise (at most `most` lines in all).
pub fn table_differences(a: &Value, b: &Value, most: usize) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let (ta, tb) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    let names: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
    for t in names {
        let rows = |x: &serde_json::Map<String, Value>| -> Vec<String> {
            x.get(t).and_then(Value::as_array).into_iter().flatten().map(Value::to_string).collect()
        };
        let (ra, rb) = (rows(ta), rows(tb));
        let only = |x: &[String], y: &[String]| -> Vec<String> { x.iter().filter(|r| !y.contains(r)).cloned().collect() };
        let (only_a, only_b) = (only(&ra, &rb), only(&rb, &ra));
        if only_a.is_empty() && only_b.is_empty() && ra != rb {
            // The same rows, in another order or another number of times.
            let at = ra.iter().zip(&rb).position(|(x, y)| x != y).unwrap_or(ra.len().min(rb.len()));
            if out.len() == most {
                return out;
            }
            out.push(format!(
                "table {t}: the same rows, otherwise listed ({} on a, {} on b; first difference at row {at}: a {} / b {})",
                ra.len(),
                rb.len(),
                ra.get(at).map_or("none", String::as_str),
                rb.get(at).map_or("none", String::as_str)
            ));
        }
        for (side, rows) in [("a", only_a), ("b", only_b)] {
            for r in rows {
                if out.len() == most {
                    return out;
                }
                out.push(format!("table {t}: only chassis {side} has {r}"));
            }
        }
    }
    out
}

/// b. Every acknowledged mutation is on both chassis, with the id it was
/// acknowledged with, and each key ends with an allowed value.
pub fn acknowledged_on_both(logs: &[ClientLog], exports: &[Result<Value, String>; 2], register: (u64, u64)) -> Check {
    let mut c = Check::new("b", "every acknowledged mutation present on both (own model)");
    let mut facts = 0usize;
    // Refused tracked operations: a chassis said "no" to something the model
    // says must work (e.g. moving a window whose create was acknowledged).
    for m in all(logs) {
        if let Outcome::Refused { status, code } = &m.outcome {
            if !m.op.refusal_expected() {
                c.problems.push(format!("client {} {} {} was refused {status} {code}: {:?}", m.client, m.op.name(), m.key, m.op));
            }
        }
    }
    for (i, export) in exports.iter().enumerate() {
        let x = match export {
            Ok(x) => x,
            Err(e) => {
                c.problems.push(format!("export of chassis {} unreadable: {e}", NAMES[i]));
                continue;
            }
        };
        let name = NAMES[i];
        let hosts = by_id(x, "kvm_hosts");
        let seats = by_id(x, "kvm_seats");
        let windows = by_id(x, "windows");
        let sources = by_id(x, "sources");
        let routes = by_id(x, "routes");
        let scenes = by_id(x, "scenes");
        let mut lacks = |what: String| c.problems.push(format!("chassis {name} {what}"));
        for m in all(logs) {
            let Some(id) = acked_id(m) else { continue };
            match &m.op {
                Mutation::CreateHost { name: n, port } => {
                    facts += 1;
                    let (gone, maybe_gone) = removal(logs, |op| *op == Mutation::DeleteHost { id });
                    match hosts.get(&id) {
                        Some(row) if gone => lacks(format!("still has host {id} whose delete was acknowledged: {row}")),
                        Some(row) if row["name"] != n.as_str() || row["port"] != *port => {
                            lacks(format!("has host {id} as {row}, acknowledged as {n:?} port {port} ({})", m.key))
                        }
                        None if !gone && !maybe_gone => {
                            lacks(format!("lacks host {id} {n:?} acknowledged to {} at {}", m.key, crate::clock::secs(m.end_us())))
                        }
                        _ => {}
                    }
                }
                Mutation::CreateSeat { name: n, .. } => {
                    facts += 1;
                    match seats.get(&id) {
                        Some(row) if row["name"] == n.as_str() => {}
                        Some(row) => lacks(format!("has seat {id} as {row}, acknowledged as {n:?} ({})", m.key)),
                        None => lacks(format!("lacks seat {id} {n:?} acknowledged to {}", m.key)),
                    }
                }
                Mutation::SaveScene { name: n, .. } => {
                    facts += 1;
                    match scenes.get(&id) {
                        Some(row) if row["name"] == n.as_str() => {}
                        Some(row) => lacks(format!("has scene {id} as {row}, acknowledged as {n:?} ({})", m.key)),
                        None => lacks(format!("lacks scene {id} {n:?} acknowledged to {}", m.key)),
                    }
                }
                Mutation::OpenWindow { wall, sig, value } => {
                    facts += 1;
                    let (closed, maybe_closed) = removal(logs, |op| *op == Mutation::CloseWindow { wall: *wall, id });
                    let moves: Vec<(u64, &Outcome)> = all(logs)
                        .filter_map(|mv| match mv.op {
                            Mutation::MoveWindow { wall: w, id: i, value } if w == *wall && i == id => Some((value, &mv.outcome)),
                            _ => None,
                        })
                        .collect();
                    let ((w, h), source) = (signature_size(*sig), signature_source(*sig));
                    match windows.get(&id) {
                        Some(row) if closed => lacks(format!("still has window {id} whose close was acknowledged: {row}")),
                        Some(row) => {
                            if row["wall_id"] != *wall || row["w"] != w || row["h"] != h || row["source_id"] != source {
                                lacks(format!(
                                    "has window {id} as {row}, acknowledged on wall {wall} size {w}x{h} source {source} ({})",
                                    m.key
                                ));
                            }
                            let allowed: Vec<(u64, u64)> = allowed_finals(*value, &moves).into_iter().map(position).collect();
                            let at = (row["x"].as_u64().unwrap_or(u64::MAX), row["y"].as_u64().unwrap_or(u64::MAX));
                            if !allowed.contains(&at) {
                                lacks(format!("has window {id} at {at:?}; the acknowledged history allows only {allowed:?}"));
                            }
                        }
                        None if !closed && !maybe_closed => {
                            lacks(format!("lacks window {id} acknowledged to {} at {}", m.key, crate::clock::secs(m.end_us())))
                        }
                        None => {}
                    }
                }
                _ => {}
            }
        }
        // Per-client keys: source names and matrix routes.
        let mut names: BTreeMap<u64, Vec<(String, &Outcome)>> = BTreeMap::new();
        let mut outs: BTreeMap<u32, Vec<(Option<u64>, &Outcome)>> = BTreeMap::new();
        for m in all(logs) {
            match &m.op {
                Mutation::RenameSource { id, name } => names.entry(*id).or_default().push((name.clone(), &m.outcome)),
                Mutation::SetRoute { output, input } => outs.entry(*output).or_default().push((input.map(u64::from), &m.outcome)),
                _ => {}
            }
        }
        for (id, writes) in &names {
            facts += 1;
            let allowed = allowed_finals(format!("Input {id}"), writes);
            let now = sources.get(id).and_then(|r| r["name"].as_str()).unwrap_or("<missing>").to_string();
            if !allowed.contains(&now) {
                lacks(format!("names source {id} {now:?}; the acknowledged history allows only {allowed:?}"));
            }
        }
        for (output, writes) in &outs {
            facts += 1;
            let allowed = allowed_finals(None, writes);
            let now = routes.get(&u64::from(*output)).and_then(|r| r["input"].as_u64());
            if !allowed.contains(&now) {
                lacks(format!("routes output {output} to {now:?}; the acknowledged history allows only {allowed:?}"));
            }
        }
        if !windows.contains_key(&register.1) {
            lacks(format!("lacks the register window {}", register.1));
        }
    }
    c.note = format!("{facts} facts per chassis");
    c
}

/// c. Nothing applied twice, nothing applied that was certainly not, no row
/// nobody asked for, and every id (rows and counters) identical on both.
///
/// `own_counters`: whether the chassis number rows with counters of their
/// own (firmware without `id_block`); then only the rows, in client IDs,
/// must be identical, not the counters.
pub fn once_and_same_ids(
    logs: &[ClientLog],
    exports: &[Result<Value, String>; 2],
    own_walls: [u64; 2],
    register: (u64, u64),
    own_counters: bool,
) -> Check {
    let mut c = Check::new("c", "nothing applied twice; every id identical on both");
    let (Ok(xa), Ok(xb)) = (&exports[0], &exports[1]) else {
        c.problems.push("an export is unreadable (see check b)".into());
        return c;
    };
    // Identical tables: same ids, same rows, same counters.
    let tables: BTreeSet<&String> = xa["tables"].as_object().into_iter().chain(xb["tables"].as_object()).flat_map(|t| t.keys()).collect();
    let mut compared = 0usize;
    for t in tables {
        let (ra, rb) = (by_id(xa, t), by_id(xb, t));
        compared += ra.len();
        let ids_a: BTreeSet<u64> = ra.keys().copied().collect();
        let ids_b: BTreeSet<u64> = rb.keys().copied().collect();
        let only_a: Vec<u64> = ids_a.difference(&ids_b).copied().take(8).collect();
        let only_b: Vec<u64> = ids_b.difference(&ids_a).copied().take(8).collect();
        if !only_a.is_empty() || !only_b.is_empty() {
            c.problems.push(format!("table {t}: ids only on a {only_a:?}, only on b {only_b:?}"));
        }
        for (id, row) in ra.iter().filter(|(id, row)| rb.get(id).is_some_and(|o| comparable(o) != comparable(row))).take(4) {
            c.problems.push(format!("table {t} row {id} differs: a {row} / b {}", rb[id]));
        }
        if !own_counters && xa["tables"][t]["next_id"] != xb["tables"][t]["next_id"] {
            c.problems.push(format!("table {t}: next_id a {} / b {}", xa["tables"][t]["next_id"], xb["tables"][t]["next_id"]));
        }
    }
    // Each logical create at most once, and never when certainly not applied.
    let mut asked: HashMap<(&str, String), &MutationRecord> = HashMap::new();
    for m in all(logs) {
        let key = match &m.op {
            Mutation::CreateHost { name, .. } => ("kvm_hosts", name.clone()),
            Mutation::CreateSeat { name, .. } => ("kvm_seats", name.clone()),
            Mutation::SaveScene { name, .. } => ("scenes", name.clone()),
            Mutation::OpenWindow { wall, sig, .. } => {
                let (w, h) = signature_size(*sig);
                ("windows", format!("{wall}:{w}x{h}:{}", signature_source(*sig)))
            }
            _ => continue,
        };
        asked.insert(key, m);
    }
    for (i, x) in [xa, xb].into_iter().enumerate() {
        let mut seen: HashMap<(&str, String), Vec<u64>> = HashMap::new();
        for table in ["kvm_hosts", "kvm_seats", "scenes"] {
            for row in rows(x, table) {
                let name = row["name"].as_str().unwrap_or("").to_string();
                seen.entry((table, name)).or_default().push(row["id"].as_u64().unwrap_or(0));
            }
        }
        for row in rows(x, "windows") {
            let wall = row["wall_id"].as_u64().unwrap_or(0);
            if own_walls.contains(&wall) && row["id"].as_u64() != Some(register.1) {
                let key = format!("{wall}:{}x{}:{}", row["w"], row["h"], row["source_id"]);
                seen.entry(("windows", key)).or_default().push(row["id"].as_u64().unwrap_or(0));
            }
        }
        for ((table, name), ids) in &seen {
            let what = format!("chassis {}: {table} {name:?}", NAMES[i]);
            match asked.get(&(*table, name.clone())) {
                None => c.problems.push(format!("{what} (ids {ids:?}) was never asked for")),
                Some(m) => {
                    if ids.len() > 1 {
                        c.problems.push(format!("{what} applied {} times (ids {ids:?}) for one logical create {}", ids.len(), m.key));
                    }
                    if m.outcome == Outcome::NotApplied {
                        c.problems.push(format!("{what} (ids {ids:?}) exists though {} was answered not_applied on every attempt", m.key));
                    }
                    if let Some(id) = acked_id(m) {
                        if !ids.contains(&id) && !ids.is_empty() {
                            c.problems.push(format!("{what} has ids {ids:?}, acknowledged as {id} ({})", m.key));
                        }
                    }
                }
            }
        }
    }
    c.note = format!("{compared} rows compared, {} logical creates", asked.len());
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_acknowledged_or_a_later_unknown() {
        let ack = Outcome::Acked(json!({}));
        let (unk, no) = (Outcome::Unknown, Outcome::NotApplied);
        assert_eq!(allowed_finals(0, &[]), vec![0]);
        assert_eq!(allowed_finals(0, &[(1, &ack), (2, &no)]), vec![1]);
        assert_eq!(allowed_finals(0, &[(1, &unk), (2, &ack), (3, &unk), (4, &no)]), vec![2, 3]);
        assert_eq!(allowed_finals(0, &[(1, &unk)]), vec![0, 1]);
    }
}
