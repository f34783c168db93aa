//! The campaign's evidence in the clients' numbering.
//!
//! A chassis whose firmware lacks `id_block` holds its rows under IDs of its
//! own; the gateway's map (`GET /_pairgate/idmap/{chassis}`) says which
//! client ID each stands for. Before the checks compare the two chassis with
//! each other and with what the clients were told, each translated chassis'
//! export and `/hardware/outputs` are rewritten into client IDs here — and
//! the map itself is checked against that chassis' own rows (check m): every
//! entry names a row the chassis holds, every row it holds has an entry, no
//! two client IDs share a row.
//!
//! Which columns hold IDs is the reference chassis' schema, written here once
//! and on purpose not read from `gateway.toml`: the checker must not trust
//! the rules it checks.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::checks::Check;
use crate::site::NAMES;

/// Export columns that hold IDs: (export table, column, table the ID names).
/// A column whose value is an array holds one ID per element. Tables keyed by
/// what they describe (routes by output, cascade links by number, the one
/// superior) keep their keys on every chassis.
pub const ID_COLUMNS: &[(&str, &str, &str)] = &[
    ("users", "id", "users"),
    ("sources", "id", "sources"),
    ("sources", "subordinate_id", "subordinates"),
    ("walls", "id", "walls"),
    ("screens", "id", "screens"),
    ("screens", "wall_id", "walls"),
    ("windows", "id", "windows"),
    ("windows", "wall_id", "walls"),
    ("windows", "source_id", "sources"),
    ("scenes", "id", "scenes"),
    ("scenes", "wall_id", "walls"),
    ("scene_items", "id", "scene_items"),
    ("scene_items", "scene_id", "scenes"),
    ("scene_items", "source_id", "sources"),
    ("plans", "id", "plans"),
    ("schedules", "id", "schedules"),
    ("schedules", "plan_ids", "plans"),
    ("kvm_hosts", "id", "kvm_hosts"),
    ("kvm_seats", "id", "kvm_seats"),
    ("kvm_seats", "host_id", "kvm_hosts"),
    ("subordinates", "id", "subordinates"),
    ("cascade_links", "source_id", "sources"),
];

/// One chassis' map as the gateway reports it.
#[derive(Clone, Debug, Default)]
pub struct IdMap {
    /// (table, chassis ID) → client ID.
    to_client: HashMap<(String, u64), u64>,
    /// (table, client ID) → chassis ID.
    to_native: HashMap<(String, u64), u64>,
    /// What is wrong with the map on its own (two clients on one row…).
    pub problems: Vec<String>,
}

impl IdMap {
    /// `[{table, client, chassis}]`, as `GET /_pairgate/idmap/{chassis}` answers.
    pub fn parse(v: &Value) -> Result<IdMap, String> {
        let entries = v.as_array().ok_or_else(|| format!("the id map is not a list: {v}"))?;
        let mut m = IdMap::default();
        for e in entries {
            let (Some(table), Some(client), Some(native)) = (e["table"].as_str(), e["client"].as_u64(), e["chassis"].as_u64()) else {
                return Err(format!("an id map entry without table, client and chassis: {e}"));
            };
            if let Some(other) = m.to_client.insert((table.to_string(), native), client) {
                m.problems.push(format!("{table}: client ids {other} and {client} both stand for chassis row {native}"));
            }
            if let Some(other) = m.to_native.insert((table.to_string(), client), native) {
                m.problems.push(format!("{table}: client id {client} stands for chassis rows {other} and {native}"));
            }
        }
        Ok(m)
    }

    pub fn is_empty(&self) -> bool {
        self.to_native.is_empty()
    }

    pub fn len(&self) -> usize {
        self.to_native.len()
    }

    /// The chassis' own ID for a client ID.
    pub fn native(&self, table: &str, client: u64) -> Option<u64> {
        self.to_native.get(&(table.to_string(), client)).copied()
    }

    fn client(&self, table: &str, native: u64) -> Option<u64> {
        self.to_client.get(&(table.to_string(), native)).copied()
    }
}

/// Whether either chassis' map (as read) has entries: its IDs are its own.
pub fn any_translated(maps: &[Result<IdMap, String>; 2]) -> bool {
    maps.iter().any(|m| m.as_ref().is_ok_and(|m| !m.is_empty()))
}

fn rewrite(map: &IdMap, names: &str, v: &mut Value, at: &str, problems: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for item in items {
                rewrite(map, names, item, at, problems);
            }
        }
        Value::Number(_) => {
            let Some(native) = v.as_u64() else { return };
            match map.client(names, native) {
                Some(client) => *v = Value::from(client),
                None => problems.push(format!("{at}: {names} {native} has no map entry")),
            }
        }
        _ => {}
    }
}

/// `export` (a `/_sim/export` document) with every ID in client IDs; what
/// could not be translated, and each map entry naming no row, as problems.
pub fn export_in_client_ids(export: &Value, map: &IdMap) -> (Value, Vec<String>) {
    let mut out = export.clone();
    let mut problems = Vec::new();
    let mut held: HashSet<(String, u64)> = HashSet::new();
    for (table, column, names) in ID_COLUMNS {
        let Some(rows) = out["tables"][*table]["rows"].as_array_mut() else { continue };
        for row in rows {
            let own = row["id"].as_u64();
            if *column == "id" {
                if let Some(id) = own {
                    held.insert((table.to_string(), id));
                }
            }
            if let Some(v) = row.get_mut(*column) {
                rewrite(map, names, v, &format!("{table} row {}", own.unwrap_or(0)), &mut problems);
            }
        }
    }
    for ((table, native), client) in &map.to_client {
        if !held.contains(&(table.clone(), *native)) {
            problems.push(format!("map entry {table} {client} → {native} names no row the chassis holds"));
        }
    }
    problems.sort();
    (out, problems)
}

/// `/hardware/outputs` with each output's `window_ids` in client IDs.
pub fn outputs_in_client_ids(outputs: &Value, map: &IdMap) -> (Value, Vec<String>) {
    let mut out = outputs.clone();
    let mut problems = Vec::new();
    for o in out.as_array_mut().into_iter().flatten() {
        let at = format!("output {}", o["output"]);
        if let Some(ids) = o.get_mut("window_ids") {
            rewrite(map, "windows", ids, &at, &mut problems);
        }
    }
    (out, problems)
}

/// A row's stacking height replaced by its rank among its siblings (the
/// windows of one wall, the items of one scene). A chassis rebuilt through
/// its ordinary API stacks its windows in the same order but numbers `z`
/// its own way: the order is what shows on the wall, so the order is what
/// both chassis must agree on.
pub fn z_as_rank(export: &mut Value) {
    for (table, parent) in [("windows", "wall_id"), ("scene_items", "scene_id")] {
        let Some(rows) = export["tables"][table]["rows"].as_array_mut() else { continue };
        let mut by_parent: BTreeMap<u64, Vec<(u64, u64, usize)>> = BTreeMap::new();
        for (k, r) in rows.iter().enumerate() {
            let (p, z, id) = (r[parent].as_u64().unwrap_or(0), r["z"].as_u64().unwrap_or(0), r["id"].as_u64().unwrap_or(0));
            by_parent.entry(p).or_default().push((z, id, k));
        }
        for mut siblings in by_parent.into_values() {
            siblings.sort();
            for (rank, (_, _, k)) in siblings.into_iter().enumerate() {
                rows[k]["z"] = Value::from(rank as u64);
            }
        }
    }
}

/// Check m: each chassis' map against its own rows (vacuous for a chassis
/// without a map: its IDs are the clients').
pub fn maps_match(maps: &[Result<IdMap, String>; 2], problems: &[Vec<String>; 2]) -> Check {
    let mut c = Check::new("m", "every id map entry names a row of its chassis, and back");
    let mut notes = Vec::new();
    for i in 0..2 {
        match &maps[i] {
            Ok(m) if m.is_empty() => notes.push(format!("{}: own ids", NAMES[i])),
            Ok(m) => {
                notes.push(format!("{}: {} entries", NAMES[i], m.len()));
                c.problems.extend(m.problems.iter().map(|p| format!("chassis {}: {p}", NAMES[i])));
                c.problems.extend(problems[i].iter().map(|p| format!("chassis {}: {p}", NAMES[i])));
            }
            Err(e) => c.problems.push(format!("chassis {}: id map unreadable: {e}", NAMES[i])),
        }
    }
    c.note = notes.join(", ");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map() -> IdMap {
        IdMap::parse(&json!([
            {"table": "walls", "client": 100, "chassis": 1},
            {"table": "windows", "client": 200, "chassis": 7},
            {"table": "windows", "client": 201, "chassis": 9},
            {"table": "sources", "client": 1, "chassis": 1},
            {"table": "plans", "client": 300, "chassis": 2},
            {"table": "plans", "client": 301, "chassis": 3},
            {"table": "schedules", "client": 400, "chassis": 1},
        ]))
        .unwrap()
    }

    #[test]
    fn an_export_is_rewritten_column_by_column_and_arrays_element_by_element() {
        let x = json!({"tables": {
            "walls": {"next_id": 2, "rows": [{"id": 1, "name": "w"}]},
            "windows": {"next_id": 10, "rows": [{"id": 7, "wall_id": 1, "source_id": 1, "z": 5}, {"id": 9, "wall_id": 1, "source_id": 1, "z": 3}]},
            "plans": {"next_id": 4, "rows": [{"id": 2}, {"id": 3}]},
            "schedules": {"next_id": 2, "rows": [{"id": 1, "plan_ids": [3, 2]}]},
            "sources": {"next_id": 2, "rows": [{"id": 1}]},
        }});
        let (mut t, problems) = export_in_client_ids(&x, &map());
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(t["tables"]["windows"]["rows"][0]["id"], 200);
        assert_eq!(t["tables"]["windows"]["rows"][1]["wall_id"], 100);
        assert_eq!(t["tables"]["schedules"]["rows"][0]["plan_ids"], json!([301, 300]));
        z_as_rank(&mut t);
        assert_eq!(t["tables"]["windows"]["rows"][0]["z"], 1);
        assert_eq!(t["tables"]["windows"]["rows"][1]["z"], 0);
    }

    #[test]
    fn a_row_without_an_entry_and_an_entry_without_a_row_are_both_reported() {
        let x = json!({"tables": {
            "walls": {"next_id": 2, "rows": [{"id": 1}]},
            "windows": {"next_id": 10, "rows": [{"id": 7, "wall_id": 1, "source_id": 1}, {"id": 8, "wall_id": 1, "source_id": 1}]},
            "plans": {"next_id": 4, "rows": [{"id": 2}, {"id": 3}]},
            "schedules": {"next_id": 2, "rows": [{"id": 1, "plan_ids": []}]},
            "sources": {"next_id": 2, "rows": [{"id": 1}]},
        }});
        let (_, problems) = export_in_client_ids(&x, &map());
        assert_eq!(
            problems,
            vec![
                "map entry windows 201 → 9 names no row the chassis holds".to_string(),
                "windows row 8: windows 8 has no map entry".to_string()
            ]
        );
        let (o, problems) = outputs_in_client_ids(&json!([{"output": 1, "window_ids": [9, 7, 5]}]), &map());
        assert_eq!(o[0]["window_ids"], json!([201, 200, 5]));
        assert_eq!(problems, vec!["output 1: windows 5 has no map entry".to_string()]);
    }

    #[test]
    fn two_client_ids_on_one_row_are_a_problem_of_the_map() {
        let m =
            IdMap::parse(&json!([{"table": "walls", "client": 1, "chassis": 5}, {"table": "walls", "client": 2, "chassis": 5}])).unwrap();
        assert_eq!(m.problems.len(), 1, "{:?}", m.problems);
        assert!(IdMap::parse(&json!([{"table": "walls"}])).is_err());
    }
}
