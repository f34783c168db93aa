//! The translation a chassis without `id_block` needs, put together: the
//! route rules (where IDs live), the `[[event]]` rules and both chassis'
//! maps. Appliers, the read path, the event relay and the comparison ask
//! it; a chassis with `id_block` is never asked about (its IDs are the
//! clients').

use bytes::Bytes;
use serde_json::Value;

use super::map::{ChassisMap, SharedMaps};
use super::rules::{EventIds, RouteIds};
use super::translate::{self, Unmapped};
use crate::chassis::upstream::Answered;
use crate::config::{PathPattern, RouteTable};
use crate::journal::{IdBlock, JournalError, MapChange};

pub struct Translator {
    /// The route rules that run now (a reload swaps them: `src/reload.rs`).
    routes: arc_swap::ArcSwap<RouteTable>,
    events: Vec<EventIds>,
    pub maps: SharedMaps,
}

/// Why a decided answer could not be taken into the map.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{0}")]
    Rule(String),
    #[error("recording the new rows' ids: {0}")]
    Journal(#[from] JournalError),
}

impl Translator {
    pub fn new(routes: RouteTable, events: Vec<EventIds>, maps: SharedMaps) -> Translator {
        Translator { routes: arc_swap::ArcSwap::from_pointee(routes), events, maps }
    }

    /// From now on, translate by these route rules (a reload).
    pub fn set_routes(&self, routes: RouteTable) {
        self.routes.store(std::sync::Arc::new(routes));
    }

    /// The deciding rule's path pattern and ids, for a request.
    /// (A copy: the rules may be swapped by a reload meanwhile.)
    fn rule(&self, method: &str, path_and_query: &str) -> Option<(PathPattern, RouteIds)> {
        let routes = self.routes.load();
        let c = routes.classify(method, path_and_query);
        let rule = routes.rules().get(c.rule_index?)?;
        (!rule.ids.is_empty()).then(|| (rule.path.clone(), rule.ids.clone()))
    }

    /// The request as chassis `i` must get it: path and body in its IDs.
    pub fn request(&self, i: usize, method: &str, path_and_query: &str, body: &Bytes) -> Result<(String, Bytes), Unmapped> {
        self.request_with(&self.maps.view(i), method, path_and_query, body)
    }

    /// [`Translator::request`] with a map of one's own (a rebuild builds
    /// the target's new map as it goes).
    pub fn request_with(&self, map: &ChassisMap, method: &str, path_and_query: &str, body: &Bytes) -> Result<(String, Bytes), Unmapped> {
        let Some((pattern, ids)) = self.rule(method, path_and_query) else {
            return Ok((path_and_query.to_string(), body.clone()));
        };
        let path = translate::path_to_native(&pattern, &ids, path_and_query, map)?;
        let body = translate::body_to_native(&ids, body, map)?;
        Ok((path, body))
    }

    /// The rows a recreating create made (see [`translate::created_pairs`]),
    /// by the rule of `method path`.
    pub fn created_pairs(
        &self,
        method: &str,
        path: &str,
        client: &Value,
        answer: &Value,
    ) -> Result<Vec<(super::rules::Table, u64, u64)>, String> {
        match self.rule(method, path) {
            Some((_, ids)) => translate::created_pairs(&ids, client, answer),
            None => Ok(Vec::new()),
        }
    }

    /// What a create (`method path`, its block, `native_body` as chassis
    /// `i` got it) left on chassis `i`, from a listing of its collection
    /// read there since (see [`translate::landed`]).
    pub fn landed(
        &self,
        i: usize,
        method: &str,
        path: &str,
        block: Option<IdBlock>,
        native_body: &Value,
        listing: &Value,
    ) -> translate::Landed {
        match self.rule(method, path) {
            Some((_, ids)) => translate::landed(&ids, block, native_body, listing, &self.maps.view(i)),
            None => translate::Landed::Unsure("no route rule names its IDs".into()),
        }
    }

    /// Takes a decided answer of chassis `i` to a mutation into its map: the
    /// rows a create made (onto the entry's block), the row a delete ended.
    /// Durable before it returns.
    pub async fn learn(
        &self,
        i: usize,
        method: &str,
        path_and_query: &str,
        block: Option<IdBlock>,
        a: &Answered,
    ) -> Result<(), LearnError> {
        let Some((pattern, ids)) = self.rule(method, path_and_query) else { return Ok(()) };
        let mut changes = Vec::new();
        if a.is_success() && !ids.creates.is_empty() {
            let doc: Value = serde_json::from_slice(&a.body)
                .map_err(|e| LearnError::Rule(format!("a create answered {} with no JSON: {e}", a.status)))?;
            let rows = translate::created(&ids, &doc, block).map_err(LearnError::Rule)?;
            changes.extend(rows.into_iter().map(|(table, client, native)| MapChange::Put { chassis: i, table, client, native }));
        }
        if a.is_success() || a.status == 404 {
            if let Some((table, client)) = translate::forgotten(&pattern, &ids, path_and_query) {
                changes.push(MapChange::Forget { chassis: i, table, client });
            }
        }
        Ok(self.maps.change(changes).await?)
    }

    /// Chassis `i`'s answer to a request, in client IDs; the IDs the map did
    /// not know (shown as `null`) are returned too. Only a 2xx JSON answer
    /// holds IDs; anything else is passed as it is.
    pub fn answer(&self, i: usize, method: &str, path_and_query: &str, a: &Answered) -> (Answered, Vec<Unmapped>) {
        let Some((_, ids)) = self.rule(method, path_and_query) else { return (a.clone(), Vec::new()) };
        if !a.is_success() {
            return (a.clone(), Vec::new());
        }
        let Ok(mut doc) = serde_json::from_slice::<Value>(&a.body) else { return (a.clone(), Vec::new()) };
        let misses = translate::answer_to_client(&ids, &mut doc, &self.maps.view(i));
        (Answered { status: a.status, content_type: a.content_type.clone(), body: Bytes::from(doc.to_string()) }, misses)
    }

    /// A listing read from chassis `i` (`path` in its IDs), in client IDs,
    /// by the read rule of `GET path`.
    pub fn listing(&self, i: usize, path: &str, doc: &mut Value) -> Vec<Unmapped> {
        match self.rule("GET", path) {
            Some((_, ids)) => translate::answer_to_client(&ids, doc, &self.maps.view(i)),
            None => Vec::new(),
        }
    }

    /// Every (table, ID) the read rule of `GET path` finds in `doc`.
    pub fn ids_in_listing(&self, path: &str, doc: &Value) -> Vec<(super::rules::Table, u64)> {
        match self.rule("GET", path) {
            Some((_, ids)) => translate::ids_in(ids.answer_places(), doc),
            None => Vec::new(),
        }
    }

    /// The tables the read rules of these collections show IDs of.
    pub fn listed_tables(&self, collections: &[crate::config::Collection]) -> std::collections::HashSet<super::rules::Table> {
        collections
            .iter()
            .filter_map(|c| self.rule("GET", &c.path))
            .flat_map(|(_, ids)| ids.answer_places().map(|p| p.table.clone()).collect::<Vec<_>>())
            .collect()
    }

    /// The table of the `{param}` in a `GET path` rule (a collection read
    /// once per row of its parent), if the rules name one.
    pub fn param_table(&self, pattern_path: &str, param: &str) -> Option<super::rules::Table> {
        let (_, ids) = self.rule("GET", pattern_path)?;
        ids.param_table(param).cloned()
    }

    /// The client ID of the account a login on chassis `i` answered with
    /// (`native`, its `user.id`), by the login rule's answer places; `None`
    /// when the map has none.
    pub fn login_user(&self, i: usize, path: &str, native: u64) -> Option<u64> {
        let Some((_, ids)) = self.rule("POST", path) else { return Some(native) };
        let mut doc = serde_json::json!({"user": {"id": native}});
        let misses = translate::answer_to_client(&ids, &mut doc, &self.maps.view(i));
        if !misses.is_empty() {
            return None;
        }
        doc["user"]["id"].as_u64()
    }

    /// An event frame from chassis `i` (JSON text), in client IDs.
    pub fn event(&self, i: usize, frame: &str) -> Result<String, (String, Vec<Unmapped>)> {
        let Ok(mut doc) = serde_json::from_str::<Value>(frame) else { return Ok(frame.to_string()) };
        let misses = translate::event_to_client(&self.events, &mut doc, &self.maps.view(i));
        if misses.is_empty() {
            Ok(doc.to_string())
        } else {
            Err((doc.to_string(), misses))
        }
    }
}

/// How long a read or an event waits for the map to learn a row it shows:
/// the chassis may list (or announce) a new row a moment before its
/// applier has taken the create's answer into the map.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

impl Translator {
    /// [`Translator::answer`], waiting up to [`SETTLE`] for IDs the map does
    /// not know yet to be learnt.
    pub async fn answer_settled(&self, i: usize, method: &str, path_and_query: &str, a: &Answered) -> (Answered, Vec<Unmapped>) {
        let mut changed = self.maps.changed();
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            changed.mark_unchanged();
            let (out, misses) = self.answer(i, method, path_and_query, a);
            if misses.is_empty() || tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return (out, misses);
            }
        }
    }

    /// [`Translator::event`], waiting up to [`SETTLE`] likewise; an ID still
    /// unknown then is sent as `null` (and logged).
    pub async fn event_settled(&self, i: usize, frame: &str) -> String {
        let mut changed = self.maps.changed();
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            changed.mark_unchanged();
            match self.event(i, frame) {
                Ok(text) => return text,
                Err((text, misses)) => {
                    if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                        let misses: Vec<String> = misses.iter().map(ToString::to_string).collect();
                        tracing::warn!(chassis = i, ?misses, "an event names rows the gateway does not know; sent with null");
                        return text;
                    }
                }
            }
        }
    }
}

/// The answer a chassis is said to give a request naming an ID the gateway
/// has no entry for on it: 404, in the chassis' error shape. Nothing is sent.
pub fn unknown_id(u: &Unmapped) -> Answered {
    let body = serde_json::json!({"error": {"code": "not_found", "message": format!("no {} with id {} (no such row on this pair)", u.table, u.id)}});
    Answered {
        status: 404,
        content_type: Some(reqwest::header::HeaderValue::from_static("application/json")),
        body: Bytes::from(body.to_string()),
    }
}
