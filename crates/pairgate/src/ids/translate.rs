//! Rewriting IDs, as pure functions over one chassis' map: a request on its
//! way to a chassis gets that chassis' IDs ([`path_to_native`],
//! [`body_to_native`]); an answer or an event on its way back gets client
//! IDs ([`answer_to_client`], [`event_to_client`]); a create's answer says
//! which chassis IDs the rows of its block took ([`created`]), a delete's
//! path which entry ends ([`forgotten`]).
//!
//! Where IDs live comes from the route rules ([`RouteIds`]); the callers
//! (appliers, the read path, the event relay, the comparison) choose the
//! map and do the I/O.

use std::fmt;

use bytes::Bytes;
use serde_json::Value;

use super::map::ChassisMap;
use super::rules::{EventIds, IdAt, RouteIds, Table};
use crate::config::{PathPattern, Segment};
use crate::journal::IdBlock;

/// An ID the map has no entry for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub table: Table,
    pub id: u64,
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.table, self.id)
    }
}

/// `path_and_query` with every ID path parameter replaced by the chassis'
/// ID. The query is kept as it is; a parameter that is not a number is left
/// alone (the chassis answers it as it would).
pub fn path_to_native(pattern: &PathPattern, ids: &RouteIds, path_and_query: &str, map: &ChassisMap) -> Result<String, Unmapped> {
    if ids.path.is_empty() {
        return Ok(path_and_query.to_string());
    }
    let (path, query) = match path_and_query.find('?') {
        Some(q) => path_and_query.split_at(q),
        None => (path_and_query, ""),
    };
    let Some(body) = path.strip_prefix('/') else { return Ok(path_and_query.to_string()) };
    let mut out = String::with_capacity(path_and_query.len());
    for (k, part) in body.split('/').enumerate() {
        out.push('/');
        let table = match pattern.segments().get(k) {
            Some(Segment::Param(name)) => ids.param_table(name),
            _ => None,
        };
        match (table, part.parse::<u64>()) {
            (Some(table), Ok(client)) => match map.native(table, client) {
                Some(native) => out.push_str(&native.to_string()),
                None => return Err(Unmapped { table: table.clone(), id: client }),
            },
            _ => out.push_str(part),
        }
    }
    out.push_str(query);
    Ok(out)
}

/// The body with every ID at the rule's `body_ids` places replaced by the
/// chassis' ID. A body that is empty, not JSON, or holds none is sent as it
/// came.
pub fn body_to_native(ids: &RouteIds, body: &Bytes, map: &ChassisMap) -> Result<Bytes, Unmapped> {
    if ids.body.is_empty() || body.is_empty() {
        return Ok(body.clone());
    }
    let Ok(mut doc) = serde_json::from_slice::<Value>(body) else { return Ok(body.clone()) };
    let mut miss = None;
    let mut changed = false;
    for place in &ids.body {
        place.at.for_each_mut(&mut doc, &mut |v| {
            let Some(client) = v.as_u64() else { return };
            match map.native(&place.table, client) {
                Some(native) => {
                    changed |= native != client;
                    *v = Value::from(native);
                }
                None => {
                    miss.get_or_insert(Unmapped { table: place.table.clone(), id: client });
                }
            }
        });
    }
    if let Some(m) = miss {
        return Err(m);
    }
    if !changed {
        return Ok(body.clone());
    }
    Ok(Bytes::from(doc.to_string()))
}

/// The rows a create made, as (table, client ID, chassis ID): the k-th ID
/// found at the rule's `creates` places (in order, each in document order)
/// took the k-th ID of the entry's block. More rows than the block holds is
/// an error (the rule's `id_block` is too small, or `creates` names the
/// wrong places).
pub fn created(ids: &RouteIds, answer: &Value, block: Option<IdBlock>) -> Result<Vec<(Table, u64, u64)>, String> {
    if ids.creates.is_empty() {
        return Ok(Vec::new());
    }
    let Some(block) = block else { return Err("the rule says the request creates rows, but it was given no id block".into()) };
    let mut out = Vec::new();
    for place in &ids.creates {
        for v in place.at.find(answer) {
            let Some(native) = v.as_u64() else { continue };
            let k = out.len() as u64;
            if k >= block.count {
                return Err(format!(
                    "the answer shows more new rows than its block of {} ids ({} at {})",
                    block.count, place.table, place.at
                ));
            }
            out.push((place.table.clone(), block.base + k, native));
        }
    }
    Ok(out)
}

/// What a create left on a chassis, as a listing read since shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Landed {
    /// Exactly one row matches: the create's answer would have been this
    /// row (the rule's `creates` places find in it one row the map does not
    /// know yet).
    Row(Value),
    /// No row matches: the create did not land.
    Absent,
    /// Cannot tell, and why.
    Unsure(String),
}

/// Whether a create (`rule`, the block it was given, `body` as the chassis
/// got it: in the chassis' IDs) landed, from a `listing` of its collection
/// read afterwards from the same chassis, in its IDs: the objects in the
/// listing that hold every field of the body with the body's value, and
/// that, taken as the create's answer, name exactly one new row the map has
/// no client ID for. A row the map knows is some other create's; an
/// unmapped row that does not hold the body's values is none of this one's
/// (a row made behind the gateway's back).
pub fn landed(rule: &RouteIds, block: Option<IdBlock>, body: &Value, listing: &Value, map: &ChassisMap) -> Landed {
    if rule.creates.is_empty() {
        return Landed::Unsure("its rule creates no rows".into());
    }
    let Some(fields) = body.as_object() else { return Landed::Unsure("its body is not a JSON object".into()) };
    let mut objects = Vec::new();
    collect_objects(listing, &mut objects);
    let mut found: Vec<&Value> = Vec::new();
    for object in objects {
        let holds_body = object.as_object().is_some_and(|o| fields.iter().all(|(k, v)| o.get(k) == Some(v)));
        if !holds_body {
            continue;
        }
        match created(rule, object, block) {
            Ok(rows) if rows.len() == 1 && rows.iter().all(|(table, _, native)| map.client(table, *native).is_none()) => found.push(object),
            _ => {}
        }
    }
    match found.as_slice() {
        [] => Landed::Absent,
        [row] => Landed::Row((*row).clone()),
        more => Landed::Unsure(format!("{} unmapped rows hold its values", more.len())),
    }
}

/// Every JSON object in `doc`, outermost first.
fn collect_objects<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    match doc {
        Value::Object(o) => {
            out.push(doc);
            o.values().for_each(|v| collect_objects(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_objects(v, out)),
        _ => {}
    }
}

/// The rows a create made when it recreated a row clients already know
/// (a rebuild through the API): the IDs at the rule's `creates` places in
/// `client` (the row as clients see it) and in `answer` (the chassis'
/// answer), paired in order, as (table, client ID, chassis ID).
pub fn created_pairs(ids: &RouteIds, client: &Value, answer: &Value) -> Result<Vec<(Table, u64, u64)>, String> {
    let wanted = ids_in(ids.creates.iter(), client);
    let got = ids_in(ids.creates.iter(), answer);
    if wanted.len() != got.len() {
        return Err(format!("the answer shows {} new rows where {} were recreated", got.len(), wanted.len()));
    }
    Ok(wanted.into_iter().zip(got).map(|((table, client), (_, native))| (table, client, native)).collect())
}

/// Rewrites every ID at `places` of `doc` to its client ID; an ID the map
/// does not know becomes `null` and is returned, so the caller can say so
/// (a row the gateway never saw created: changed behind its back).
fn places_to_client<'a>(places: impl Iterator<Item = &'a IdAt>, doc: &mut Value, map: &ChassisMap) -> Vec<Unmapped> {
    let mut misses = Vec::new();
    for place in places {
        place.at.for_each_mut(doc, &mut |v| {
            let Some(native) = v.as_u64() else { return };
            match map.client(&place.table, native) {
                Some(client) => *v = Value::from(client),
                None => {
                    misses.push(Unmapped { table: place.table.clone(), id: native });
                    *v = Value::Null;
                }
            }
        });
    }
    misses
}

/// An answer's IDs (the rule's `creates` and `answer_ids` places) in client IDs.
pub fn answer_to_client(ids: &RouteIds, answer: &mut Value, map: &ChassisMap) -> Vec<Unmapped> {
    places_to_client(ids.answer_places(), answer, map)
}

/// An event's (`{"type", "data", …}`) IDs in client IDs, per the
/// `[[event]]` rule of its type; an event of a type no rule names is left
/// as it is.
pub fn event_to_client(rules: &[EventIds], event: &mut Value, map: &ChassisMap) -> Vec<Unmapped> {
    let Some(kind) = event.get("type").and_then(Value::as_str) else { return Vec::new() };
    let Some(rule) = rules.iter().find(|r| r.event_type == kind) else { return Vec::new() };
    let Some(data) = event.get_mut("data") else { return Vec::new() };
    places_to_client(rule.data.iter(), data, map)
}

/// The map entry a successful delete ends: the rule's `forgets` parameter's
/// client ID and table.
pub fn forgotten(pattern: &PathPattern, ids: &RouteIds, path_and_query: &str) -> Option<(Table, u64)> {
    let name = ids.forgets.as_deref()?;
    let table = ids.param_table(name)?;
    let id = pattern.param(name, path_and_query)?.parse().ok()?;
    Some((table.clone(), id))
}

/// Every ID at `places` of `doc`, as (table, ID): what a listing shows.
pub fn ids_in<'a>(places: impl Iterator<Item = &'a IdAt>, doc: &Value) -> Vec<(Table, u64)> {
    let mut out = Vec::new();
    for place in places {
        out.extend(place.at.find(doc).into_iter().filter_map(Value::as_u64).map(|id| (place.table.clone(), id)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::pointer::WildPointer;
    use crate::journal::MapChange;
    use serde_json::json;

    fn at(table: &str, p: &str) -> IdAt {
        IdAt { at: WildPointer::parse(p).unwrap_or_else(|e| panic!("{e}")), table: Table::from(table) }
    }

    fn pattern(p: &str) -> PathPattern {
        PathPattern::parse(p).unwrap_or_else(|e| panic!("{e}"))
    }

    fn map(rows: &[(&str, u64, u64)]) -> ChassisMap {
        let mut m = ChassisMap::default();
        let rows = rows.iter().map(|(t, c, n)| (Table::from(*t), *c, *n)).collect();
        m.apply(&MapChange::Replace { chassis: 0, rows });
        m
    }

    fn window_rule() -> RouteIds {
        RouteIds {
            path: vec![("id".into(), Table::from("walls")), ("wid".into(), Table::from("windows"))],
            body: vec![at("sources", "/source_id")],
            answer: vec![at("windows", "/id"), at("walls", "/wall_id"), at("sources", "/source_id")],
            creates: vec![],
            forgets: Some("wid".into()),
        }
    }

    #[test]
    fn a_create_is_found_in_a_listing_only_as_one_unmapped_row_holding_its_values() {
        let rule = RouteIds { creates: vec![at("windows", "/id")], ..window_rule() };
        let block = Some(IdBlock { base: 2000, count: 1 });
        let body = json!({"source_id": 17, "x": 5, "w": 78});
        let known = map(&[("windows", 1070, 9)]);
        let row = |id: u64, x: u64| json!({"id": id, "wall_id": 4, "source_id": 17, "x": x, "w": 78, "z": 1});
        // Mapped rows are other creates', even with the same values.
        assert_eq!(landed(&rule, block, &body, &json!([row(9, 5)]), &known), Landed::Absent);
        // An unmapped row holding other values was made behind the gateway's back.
        assert_eq!(landed(&rule, block, &body, &json!([row(9, 5), row(12, 6)]), &known), Landed::Absent);
        assert_eq!(landed(&rule, block, &body, &json!([row(9, 5), row(12, 6), row(13, 5)]), &known), Landed::Row(row(13, 5)));
        // Nested in the listing's own document.
        assert_eq!(landed(&rule, block, &body, &json!({"items": [row(13, 5)]}), &known), Landed::Row(row(13, 5)));
        assert!(matches!(landed(&rule, block, &body, &json!([row(13, 5), row(14, 5)]), &known), Landed::Unsure(_)));
        assert!(matches!(landed(&window_rule(), block, &body, &json!([row(13, 5)]), &known), Landed::Unsure(_)), "not a create");
        assert!(matches!(landed(&rule, block, &json!([1]), &json!([row(13, 5)]), &known), Landed::Unsure(_)));
    }

    #[test]
    fn a_request_goes_out_in_the_chassis_ids_and_its_answer_comes_back_in_client_ids() {
        let m = map(&[("walls", 1000, 4), ("windows", 1070, 9), ("sources", 1, 1), ("sources", 1200, 17)]);
        let rule = window_rule();
        let p = pattern("/api/v1/walls/{id}/windows/{wid}");
        assert_eq!(path_to_native(&p, &rule, "/api/v1/walls/1000/windows/1070?x=1000", &m), Ok("/api/v1/walls/4/windows/9?x=1000".into()));
        let body = Bytes::from(r#"{"source_id":1200,"x":1000}"#);
        let sent: Value = serde_json::from_slice(&body_to_native(&rule, &body, &m).unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
        assert_eq!(sent, json!({"source_id": 17, "x": 1000}), "only the places the rule names");
        let mut answer = json!({"id": 9, "wall_id": 4, "source_id": 17, "x": 1000, "z": 9});
        assert!(answer_to_client(&rule, &mut answer, &m).is_empty());
        assert_eq!(answer, json!({"id": 1070, "wall_id": 1000, "source_id": 1200, "x": 1000, "z": 9}));
        assert_eq!(forgotten(&p, &rule, "/api/v1/walls/1000/windows/1070"), Some((Table::from("windows"), 1070)));
    }

    #[test]
    fn an_id_the_map_does_not_know_is_named_never_passed_through() {
        let m = map(&[("walls", 1000, 4)]);
        let rule = window_rule();
        let p = pattern("/api/v1/walls/{id}/windows/{wid}");
        assert_eq!(path_to_native(&p, &rule, "/api/v1/walls/1000/windows/5", &m), Err(Unmapped { table: "windows".into(), id: 5 }));
        let err = body_to_native(&rule, &Bytes::from(r#"{"source_id":3}"#), &m);
        assert_eq!(err, Err(Unmapped { table: "sources".into(), id: 3 }));
        assert_eq!(
            path_to_native(&p, &rule, "/api/v1/walls/1000/windows/top", &m),
            Ok("/api/v1/walls/4/windows/top".into()),
            "not a number: left alone"
        );
        let mut answer = json!({"id": 77, "wall_id": 4, "source_id": null});
        let misses = answer_to_client(&rule, &mut answer, &m);
        assert_eq!(misses, vec![Unmapped { table: "windows".into(), id: 77 }]);
        assert_eq!(answer, json!({"id": null, "wall_id": 1000, "source_id": null}), "an unknown id is not shown as if it were a client's");
    }

    #[test]
    fn a_create_maps_its_rows_onto_its_block_in_creation_order() {
        let rule = RouteIds { creates: vec![at("walls", "/id"), at("screens", "/screens/*/id")], ..RouteIds::default() };
        let answer = json!({"id": 40, "screens": [{"id": 41}, {"id": 43}, {"id": 42}]});
        let block = IdBlock { base: 5000, count: 65 };
        let rows = created(&rule, &answer, Some(block)).unwrap_or_else(|e| panic!("{e}"));
        let t = |s: &str| Table::from(s);
        assert_eq!(rows, vec![(t("walls"), 5000, 40), (t("screens"), 5001, 41), (t("screens"), 5002, 43), (t("screens"), 5003, 42)]);
        assert!(created(&rule, &answer, Some(IdBlock { base: 5000, count: 3 })).is_err(), "more rows than the block");
        assert!(created(&rule, &answer, None).is_err());
        assert_eq!(created(&RouteIds::default(), &answer, None), Ok(vec![]));
    }

    #[test]
    fn events_are_rewritten_by_their_type_and_others_left_alone() {
        let m = map(&[("windows", 1070, 9), ("walls", 1000, 4)]);
        let rules =
            vec![EventIds { event_type: "window.deleted".into(), data: vec![at("windows", "/id"), at("walls", "/wall_id")], line: 1 }];
        let mut e = json!({"seq": 3, "type": "window.deleted", "data": {"id": 9, "wall_id": 4}});
        assert!(event_to_client(&rules, &mut e, &m).is_empty());
        assert_eq!(e, json!({"seq": 3, "type": "window.deleted", "data": {"id": 1070, "wall_id": 1000}}));
        let mut other = json!({"seq": 4, "type": "route.updated", "data": {"output": 9, "input": 4}});
        let before = other.clone();
        assert!(event_to_client(&rules, &mut other, &m).is_empty());
        assert_eq!(other, before);
    }
}
